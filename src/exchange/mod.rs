//! The exchange between nodes: receiving notices and replies from peers
//! (`server`), and delivering ours from the outbox (`delivery`).

pub mod delivery;
pub mod server;

use crate::domain::FieldError;
use tonic::Code;

/// A refusal of one batch item, as sent in an ack.
pub fn item_error(code: Code, message: impl Into<String>, field: &str) -> crate::pb::ItemError {
    crate::pb::ItemError {
        code: code as i32,
        message: message.into(),
        field: field.to_string(),
    }
}

pub fn invalid(e: FieldError) -> crate::pb::ItemError {
    item_error(Code::InvalidArgument, e.to_string(), &e.field)
}

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
