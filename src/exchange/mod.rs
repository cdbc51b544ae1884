//! The exchange between nodes: receiving notices and replies from peers
//! (`server`), delivering ours from the outbox (`delivery`), and keeping
//! the deadlines we stamped true to the holiday schedule (`deadlines`).

pub mod deadlines;
pub mod delivery;
pub mod proofs;
pub mod reconcile;
pub mod relay;
pub mod server;
pub mod workers;

use tonic::Code;

/// Whether a per-item refusal from a peer is final: retrying would only get
/// the same answer, so the item leaves the retry loop (and is reported).
pub fn is_final(code: i32) -> bool {
    matches!(
        Code::from_i32(code),
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
    )
}
