//! The staff work of a node, free of any transport: registering notices,
//! the pending list (待办), receipts (签收), verification feedback (核查反馈),
//! withdrawals (撤回), look-ups, and the timeliness figures.
//!
//! Each operation is a function of the node's context, the authenticated
//! caller and domain values, returning domain values or a `ServiceError`.
//! The gRPC `Desk` and `Stats` services, and through them the CLI, are thin
//! adapters over these functions (convert, call, convert back); so is the
//! web console. Roles are checked here, once, for every interface.

pub mod admin;
pub mod audit;
pub mod notices;
pub mod proofs;
pub mod replies;
pub mod reports;
pub mod search;

use crate::auth::Caller;
use crate::domain::{DomainError, FieldError, Refused};
pub use crate::store::Cursor;
use crate::store::{NoticeRecord, StoreError};

/// Why an operation did not happen: refused by a rule (nothing changed),
/// or the store failed (nothing was committed).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Refused(#[from] DomainError),
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Refused(e.into())
    }
}

impl From<StoreError> for ServiceError {
    /// The store's refusals (an id taken, a notice changed meanwhile) are
    /// refusals of the request; anything else is a failure of the store.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(id) => ServiceError::Refused(DomainError::new(
                Refused::Exists,
                "notice.id",
                format!("notice {id} already exists"),
            )),
            StoreError::Stale(id) => ServiceError::Refused(DomainError::new(
                Refused::WrongState,
                "id",
                format!("notice {id} changed meanwhile; look at it again"),
            )),
            other => ServiceError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// One page of a list: at most `limit` items, after the row `after`
/// names (keyset paging: `store::Cursor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Page {
    /// The page size when none is asked for.
    pub const DEFAULT: u32 = 50;
    /// The largest page served.
    pub const MAX: u32 = 1000;

    /// A page of `size` items (0: the default; capped) after `after`.
    pub fn new(size: u32, after: Option<Cursor>) -> Self {
        Page {
            limit: if size == 0 {
                Self::DEFAULT
            } else {
                size.min(Self::MAX)
            },
            after,
        }
    }

    /// The first page of `size` items.
    pub fn first(size: u32) -> Self {
        Self::new(size, None)
    }
}

/// A page of notices and where the next one starts (None: this was the last).
#[derive(Debug, Clone)]
pub struct Listing {
    pub rows: Vec<NoticeRecord>,
    pub next: Option<Cursor>,
}

impl Listing {
    /// `rows` read for `page`, keyed on `at` (the time the list is ordered by).
    fn new(
        rows: Vec<NoticeRecord>,
        page: &Page,
        at: impl Fn(&NoticeRecord) -> Option<time::OffsetDateTime>,
    ) -> Self {
        let next = if rows.len() == page.limit as usize {
            rows.last().and_then(|r| {
                Some(Cursor {
                    at: at(r)?,
                    id: r.id().to_string(),
                })
            })
        } else {
            None
        };
        Listing { rows, next }
    }

    /// The rows as `caller` may see them (see [`visible`]).
    fn visible_to(mut self, caller: &Caller) -> Self {
        self.rows = self.rows.into_iter().map(|r| visible(caller, r)).collect();
        self
    }
}

/// A notice as `caller` may see it: whole for roles that work on people's
/// cases; for a monitor, what figures need and nothing from which a person
/// could be found again — the subject's ID number reduced to its district
/// and check character (`510116***********9`: the birth date it hides is
/// not given elsewhere), no name, sex or birth date, no kind-specific
/// details (spouse, child, place), no free text, no feedback corrections,
/// no peer's error text.
pub fn visible(caller: &Caller, mut rec: NoticeRecord) -> NoticeRecord {
    if caller.sees_personal_data() {
        return rec;
    }
    if let Some(p) = rec.content.subject.as_mut() {
        p.id_number = crate::domain::mask_id_to_district(&p.id_number);
        p.name.clear();
        p.sex = 0;
        p.birth_date.clear();
    }
    rec.last_error = rec.last_error.map(|_| String::new());
    rec.content.details = None;
    rec.content.remarks.clear();
    rec.withdraw_reason = rec.withdraw_reason.map(|_| String::new());
    if let Some(f) = rec.feedback.as_mut() {
        f.corrections.clear();
        f.remarks.clear();
    }
    rec
}
