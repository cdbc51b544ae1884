//! What monitors read: the timeliness figures (SPEC.md section 4) and the
//! overdue list. Every role may read them.

use super::{Page, Result};
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::domain::Direction;
use crate::stats::{GroupCounts, Period, timeliness};
use crate::store::NoticeRecord;
use time::OffsetDateTime;

/// A timeliness report: its groups and the instant it was taken at.
pub struct Report {
    pub as_of: OffsetDateTime,
    pub groups: Vec<GroupCounts>,
}

/// The figures of `direction` for `period` as they stand now.
pub async fn figures(
    ctx: &NodeCtx,
    _caller: &Caller,
    period: Period,
    direction: Direction,
    by_peer: bool,
    by_kind: bool,
) -> Result<Report> {
    let as_of = ctx.now();
    let groups = timeliness(&ctx.store, period, direction, as_of, by_peer, by_kind).await?;
    Ok(Report { as_of, groups })
}

/// Notices without their reply past their deadline, oldest deadline first;
/// `direction` None means both.
pub async fn overdue(
    ctx: &NodeCtx,
    _caller: &Caller,
    direction: Option<Direction>,
    page: Page,
) -> Result<(OffsetDateTime, Vec<NoticeRecord>)> {
    let now = ctx.now();
    let notices = ctx
        .store
        .overdue(direction, now, page.limit, page.offset)
        .await?;
    Ok((now, notices))
}
