//! The exchange between nodes: receiving notices and replies from peers
//! (`server`), and delivering ours from the outbox (`delivery`).

pub mod delivery;
pub mod server;

use crate::domain::{DomainError, FieldError, Refused};
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

/// A refusal by the domain's rules, as an item error.
pub fn refusal(e: &DomainError) -> crate::pb::ItemError {
    let code = match e.kind {
        Refused::Invalid => Code::InvalidArgument,
        Refused::NotFound => Code::NotFound,
        Refused::NotPermitted => Code::PermissionDenied,
        Refused::WrongState => Code::FailedPrecondition,
        Refused::Exists => Code::AlreadyExists,
        Refused::TooLarge => Code::ResourceExhausted,
        Refused::NotYet => Code::Unavailable,
    };
    item_error(code, e.to_string(), &e.field)
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
