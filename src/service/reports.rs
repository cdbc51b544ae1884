//! What monitors read: the timeliness figures (SPEC.md section 4) and the
//! overdue list. Every role may read them.

use super::{Listing, Page, Result};
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::domain::{Direction, format_date};
use crate::pb;
use crate::report::{self, MonthRates, MonthlyReport, OverdueLine};
use crate::stats::{self, GroupCounts, Period, timeliness};
use crate::store::NoticeRecord;
use time::OffsetDateTime;
use time_tz::OffsetDateTimeExt;

/// A timeliness report: its groups and the instant it was taken at.
pub struct Report {
    pub as_of: OffsetDateTime,
    pub groups: Vec<GroupCounts>,
}

impl Report {
    /// The figures as rows; by peer, a code a division-code change
    /// (区划变更) replaced keeps its own row and names its successor and
    /// since when (`Routes::change_for`, by the node's date today).
    pub fn rows(&self, ctx: &NodeCtx, by_peer: bool, by_kind: bool) -> Vec<pb::TimelinessRow> {
        let mut rows = stats::rows(&self.groups, by_peer, by_kind);
        let today = ctx.deadlines.local_date(self.as_of);
        for r in rows.iter_mut().filter(|r| !r.peer.is_empty()) {
            if let Some(c) = ctx.routes.change_for(&r.peer, today) {
                r.successor = c.successor.to_string();
                r.successor_since = format_date(c.effective);
            }
        }
        rows
    }
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

/// Reminders (催办) per peer: for `Inbound`, those our peers sent us about
/// the notices we received in `period`; for `Outbound`, those we sent.
/// (peer, notices reminded, reminders); counts only, so every role.
pub async fn reminders(
    ctx: &NodeCtx,
    _caller: &Caller,
    period: Period,
    direction: Direction,
) -> Result<Vec<(String, i64, i64)>> {
    let (from, to) = period.bounds(ctx.deadlines.tz);
    Ok(ctx.store.reminders_by_peer(direction, from, to).await?)
}

/// Notices without their reply past their deadline, oldest deadline first;
/// `direction` None means both. Masked for monitors (`service::visible`).
pub async fn overdue(
    ctx: &NodeCtx,
    caller: &Caller,
    direction: Option<Direction>,
    page: Page,
) -> Result<(OffsetDateTime, Listing)> {
    let now = ctx.now();
    let rows = ctx
        .store
        .overdue(direction, now, page.limit, page.after.as_ref())
        .await?;
    super::audit::record_reads(ctx, caller, "report.overdue", &rows).await?;
    Ok((
        now,
        Listing::new(rows, &page, |r| r.life.due_at).visible_to(caller),
    ))
}

/// The most overdue notices a report lists.
const REPORT_OVERDUE: u32 = 1000;

/// The monthly assessment report of `period` (inbound: how this district
/// answers its peers), as it stands now.
pub async fn monthly(ctx: &NodeCtx, caller: &Caller, period: Period) -> Result<MonthlyReport> {
    let inbound = Direction::Inbound;
    let summary = figures(ctx, caller, period, inbound, false, false)
        .await?
        .rows(ctx, false, false);
    let mut peers = figures(ctx, caller, period, inbound, true, false)
        .await?
        .rows(ctx, true, false);
    report::rank(&mut peers);
    let months = monthly_rates(ctx, caller, period, inbound).await?;
    let (now, late) = overdue(ctx, caller, Some(inbound), Page::first(REPORT_OVERDUE)).await?;
    let tz = ctx.deadlines.tz;
    Ok(MonthlyReport {
        district: ctx.district.to_string(),
        made_on: format_date(ctx.deadlines.local_date(now)),
        first_day: format_date(period.first),
        last_day: format_date(period.last),
        summary: summary.into_iter().next().unwrap_or_default(),
        peers,
        months,
        overdue: late.rows.iter().map(|n| overdue_line(n, now, tz)).collect(),
        reconciled: reconciled_lines(ctx, caller, period).await?,
    })
}

/// The timely receipt and feedback rates of the twelve months that end
/// with `period`'s last month (the report's chart).
pub async fn monthly_rates(
    ctx: &NodeCtx,
    _caller: &Caller,
    period: Period,
    direction: Direction,
) -> Result<Vec<MonthRates>> {
    let twelve = report::twelve_months(period.last);
    let span = Period {
        first: twelve[0].first,
        last: twelve[twelve.len() - 1].last,
    };
    let totals = stats::month_totals(&ctx.store, span, direction, ctx.now()).await?;
    let months = twelve
        .iter()
        .map(|m| {
            let month = m.months().and_then(|(key, _)| totals.get(&key));
            let row = stats::rows(
                month.map(std::slice::from_ref).unwrap_or_default(),
                false,
                false,
            )
            .into_iter()
            .next()
            .unwrap_or_default();
            MonthRates {
                month: report::month_label(m),
                timely_receipt: row.timely_receipt_rate,
                timely_feedback: row.timely_feedback_rate,
            }
        })
        .collect();
    Ok(months)
}

/// A notice of the overdue list, without its subject.
pub fn overdue_line(
    n: &NoticeRecord,
    now: OffsetDateTime,
    tz: &'static time_tz::Tz,
) -> OverdueLine {
    OverdueLine {
        // The short reference staff read out (the id for older notices).
        id: if n.content.reference.is_empty() {
            n.content.id.clone()
        } else {
            n.content.reference.clone()
        },
        peer: if n.life.direction == Direction::Inbound {
            n.content.origin.clone()
        } else {
            n.content.destination.clone()
        },
        kind: n.content.kind,
        due: n
            .life
            .due_at
            .map(|d| format_date(d.to_timezone(tz).date()))
            .unwrap_or_default(),
        days_late: n.life.days_late(now),
    }
}

/// Reconciles (对账) this node's month `period` with `peer` now. Figures,
/// not people: monitors, supervisors and administrators; not clerks, whose
/// work it is not. A peer that cannot be reached or asked is `NotYet`.
pub async fn reconcile(
    ctx: &NodeCtx,
    caller: &Caller,
    peer: &str,
    period: &str,
) -> Result<crate::reconcile::Outcome> {
    use crate::domain::{DistrictCode, DomainError, Refused};
    if caller.role == crate::auth::Role::Clerk {
        return Err(DomainError::new(
            Refused::NotPermitted,
            "role",
            "role clerk may not do this: reconciliation is for monitors, supervisors and administrators",
        )
        .into());
    }
    let peer = DistrictCode::parse("peer", peer)?;
    let period = period.trim();
    let p = Period::parse("period", period)?;
    if p.months().is_none_or(|(a, b)| a != b) {
        return Err(DomainError::new(
            Refused::Invalid,
            "period",
            format!("{period:?} is not one month (YYYY-MM)"),
        )
        .into());
    }
    ctx.reconcile(peer.as_str(), period)
        .await
        .map_err(|e| DomainError::new(Refused::NotYet, "peer", e).into())
}

/// The months `period` touches, as YYYY-MM, the latest 24 at most.
fn months_of(period: Period) -> Vec<String> {
    let mut months = Vec::new();
    let mut m = Period::month_of(period.last);
    while m.last >= period.first && months.len() < 24 {
        months.push(report::month_label(&m));
        m = Period::month_of(m.first.previous_day().expect("a day before"));
    }
    months.reverse();
    months
}

/// When this node last reconciled (对账) each peer's records for the
/// months of `period`, and when both sides last agreed: figures, open to
/// every role that reads figures.
pub async fn reconciliations(
    ctx: &NodeCtx,
    _caller: &Caller,
    period: Period,
) -> Result<Vec<crate::store::Reconciled>> {
    Ok(ctx.store.reconciliations(&months_of(period)).await?)
}

/// `reconciliations` as the report and 统计 say them (local minutes).
pub async fn reconciled_lines(
    ctx: &NodeCtx,
    caller: &Caller,
    period: Period,
) -> Result<Vec<report::ReconciledLine>> {
    Ok(reconciliations(ctx, caller, period)
        .await?
        .into_iter()
        .map(|r| {
            report::ReconciledLine::new(
                ctx.deadlines.tz,
                (r.peer, r.period),
                r.checked_at,
                r.divergent,
                r.agreed_at,
            )
        })
        .collect())
}
