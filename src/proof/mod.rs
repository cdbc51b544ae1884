//! Proof (issue 23): what a node signs and how anyone checks it. The
//! canonical byte form of notices, acknowledgements and replies
//! (`canonical`), the hash tree over a batch of them (`tree`), and a node's
//! signature over a batch's root (`sign`), a node's signer and the proof
//! as it travels (`signer`). Nothing here touches the store or the network.

pub mod canonical;
pub mod sign;
pub mod signer;
pub mod tree;
#[cfg(test)]
mod vectors;
