//! The gRPC edge of the desk listener (`Desk`, `Stats`) and what every gRPC
//! service of the node shares: how a refusal becomes a status or a batch
//! item error (SPEC.md section 6), paging tokens, the bearer token, and the
//! wire view of a stored notice. The services here are adapters over
//! `service`: convert the request, call, convert the answer.

pub mod codes;
pub mod desk;
pub mod stats;

use crate::auth::{AuthError, Caller};
use crate::context::NodeCtx;
use crate::domain::{DomainError, FieldError, Refused, ts_to_pb};
use crate::pb;
use crate::service::{Cursor, Listing, Page, ServiceError};
use crate::store::{NoticeRecord, StoreError};
use time::OffsetDateTime;
use tonic::{Code, Status};
use uuid::Uuid;

/// The gRPC code of a refusal.
fn code(kind: Refused) -> Code {
    match kind {
        Refused::Invalid => Code::InvalidArgument,
        Refused::NotFound => Code::NotFound,
        Refused::NotPermitted => Code::PermissionDenied,
        Refused::WrongState => Code::FailedPrecondition,
        Refused::Exists => Code::AlreadyExists,
        Refused::TooLarge => Code::ResourceExhausted,
        Refused::NotYet => Code::Unavailable,
    }
}

/// A failure of the store, logged here; the caller learns only to retry.
pub fn internal(e: StoreError) -> Status {
    tracing::error!(error = %e, "store failure");
    Status::internal("the node could not store this; retry later")
}

impl From<DomainError> for Status {
    /// The message starts with the field, as `field: rule`.
    fn from(e: DomainError) -> Self {
        Status::new(code(e.kind), e.to_string())
    }
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        DomainError::from(e).into()
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Refused(r) => r.into(),
            ServiceError::Store(s) => internal(s),
        }
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unknown => Status::unauthenticated(e.to_string()),
            AuthError::BadRole => Status::internal(e.to_string()),
            AuthError::Store(s) => internal(s),
        }
    }
}

/// A refusal of one batch item, as sent in an ack.
pub fn item_error(code: Code, message: impl Into<String>, field: &str) -> pb::ItemError {
    pb::ItemError {
        code: code as i32,
        message: message.into(),
        field: field.to_string(),
    }
}

/// A refusal by the domain's rules, as an item error.
pub fn refusal(e: &DomainError) -> pb::ItemError {
    item_error(code(e.kind), e.to_string(), &e.field)
}

/// Who is calling, from the call's bearer token.
pub async fn caller<T>(ctx: &NodeCtx, req: &tonic::Request<T>) -> Result<Caller, Status> {
    let mut caller = ctx.auth.caller(bearer(req)?, ctx.now()).await?;
    caller.address = req
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    Ok(caller)
}

/// The bearer token of a call (`authorization: Bearer <token>`).
fn bearer<T>(req: &tonic::Request<T>) -> Result<&str, Status> {
    let header = req
        .metadata()
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("authorization: a Bearer token is required"))?
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization: not a valid header value"))?;
    header
        .strip_prefix("Bearer ")
        .ok_or_else(|| Status::unauthenticated("authorization: expected 'Bearer <token>'"))
}

/// The page a request asks for: its size and the token of a previous
/// answer (the text of a `Cursor`).
pub fn page(size: u32, token: &str) -> Result<Page, Status> {
    let after =
        if token.is_empty() {
            None
        } else {
            Some(Cursor::parse(token).ok_or_else(|| {
                Status::invalid_argument("page_token: not a token this node issued")
            })?)
        };
    Ok(Page::new(size, after))
}

/// The token of the page after `l` ("" when it was the last).
pub fn next_token(l: &Listing) -> String {
    l.next.as_ref().map(|c| c.to_string()).unwrap_or_default()
}

/// A notice id in a request.
pub fn notice_id(field: &str, s: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(s.trim()).map_err(|_| {
        Status::invalid_argument(format!(
            "{field}: {} is not a UUID",
            crate::domain::quoted(s)
        ))
    })
}

/// An optional enum filter: 0 means "any".
pub fn filter<E: TryFrom<i32>>(field: &str, v: i32) -> Result<Option<E>, Status> {
    if v == 0 {
        return Ok(None);
    }
    Ok(Some(crate::domain::enum_from_wire::<E>(field, v)?))
}

/// A stored notice as staff tools receive it: the origin's content with
/// this node's view of its life (`timely` and `overdue` at `now`).
pub fn notice_view(rec: &NoticeRecord, now: OffsetDateTime) -> pb::Notice {
    let life = &rec.life;
    let mut n = rec.content.clone();
    n.direction = life.direction as i32;
    n.status = life.status as i32;
    n.received_at = life.received_at.map(ts_to_pb);
    n.due_at = life.due_at.map(ts_to_pb);
    n.due_provisional = life.due_provisional;
    n.deadline_changes = rec.deadline_changes.iter().map(|c| c.to_wire()).collect();
    n.acknowledged_at = life.acknowledged_at.map(ts_to_pb);
    n.acknowledged_by = rec.acknowledged_by.clone().unwrap_or_default();
    n.feedback = rec.feedback.clone();
    n.timely = life.timely();
    n.overdue = life.overdue(now);
    n.withdrawn_at = rec.withdrawn_at.map(ts_to_pb);
    n.withdraw_reason = rec.withdraw_reason.clone().unwrap_or_default();
    n.duplicate_of = rec.duplicate_of.clone().unwrap_or_default();
    n.delivery_attempts = rec.delivery_attempts;
    n.last_error = rec.last_error.clone().unwrap_or_default();
    if let Some((relay, at)) = &rec.relayed {
        n.relayed_by = relay.clone();
        n.relayed_at = Some(ts_to_pb(*at));
    }
    n
}
