//! Proof (issue 23): what a node signs and how anyone checks it. The
//! canonical byte form of notices, acknowledgements and replies
//! (`canonical`), the hash tree over a batch of them (`tree`), and a node's
//! signature over a batch's root (`sign`), a node's signer and the proof
//! as it travels (`signer`). Nothing here touches the store or the network.

/// The step names of a notice's own proofs (a store keeps a proof per
/// step); a reply's step is its id.
pub const NOTICE_STEP: &str = "notice";
pub const ACK_STEP: &str = "ack";

pub mod canonical;
pub mod evidence;
pub mod sign;
pub mod signer;
pub mod tree;
#[cfg(test)]
mod vectors;
