//! Registering notices (they go to the outbox in the same transaction) and
//! reading them: one, the pending list, any list.

use super::{Listing, Page, Result, audit};
use crate::audit::Access;
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::domain::{
    Category, DomainError, FieldError, NoticeContent, NoticeKind, ParseContext, Refused, ReplySort,
    Urgency, enum_from_wire, ts_to_pb,
};
use crate::pb;
use crate::store::{NoticeFilter, NoticeRecord, PendingCounts, PendingFilter};
use std::collections::HashSet;
use time::OffsetDateTime;
use uuid::Uuid;

/// The most notices one batch may register.
pub const MAX_BATCH: usize = 10_000;

/// Fills in what the node decides (id, origin, created_at, urgency and
/// reply defaults), then parses the notice as a peer would; returns it with
/// the route (prefix) that reaches its destination.
fn prepare(
    ctx: &NodeCtx,
    mut n: pb::Notice,
    now: OffsetDateTime,
) -> std::result::Result<(NoticeContent, String), FieldError> {
    if n.id.trim().is_empty() {
        n.id = Uuid::now_v7().to_string();
    }
    if n.origin.trim().is_empty() {
        n.origin = ctx.district.to_string();
    } else if n.origin.trim() != ctx.district.as_str() {
        return Err(FieldError::new(
            "notice.origin",
            format!(
                "must be this node's district {} (or left empty)",
                ctx.district
            ),
        ));
    }
    n.created_at = Some(ts_to_pb(now));
    let kind: NoticeKind = enum_from_wire("notice.kind", n.kind)?;
    let category: Category = enum_from_wire("notice.category", n.category)?;
    if n.urgency == 0 {
        // A notice about a woman who is pregnant now is urgent by default.
        n.urgency = if kind == NoticeKind::Pregnancy {
            Urgency::Urgent
        } else {
            Urgency::Normal
        } as i32;
    }
    let urgency: Urgency = enum_from_wire("notice.urgency", n.urgency)?;
    let policy = ctx.deadlines.policy.rule_for(category, kind, urgency).reply;
    if n.reply_required == 0 {
        n.reply_required = policy as i32;
    } else if policy == ReplySort::Feedback && n.reply_required == ReplySort::Receipt as i32 {
        return Err(FieldError::new(
            "notice.reply_required",
            "the reply policy requires FEEDBACK for this notice",
        ));
    }
    // A code the directory says was replaced (区划变更) by today goes to its
    // successor, and the notice keeps the code it was addressed to.
    let today = ctx.deadlines.local_date(now);
    n.addressed_to = String::new();
    n.reference = String::new();
    if let Some(successor) = ctx.routes.successor(n.destination.trim(), today) {
        tracing::info!(addressed_to = %n.destination.trim(), destination = %successor, "division code replaced: the notice goes to the successor");
        n.addressed_to = n.destination.trim().to_string();
        n.destination = successor.to_string();
    }
    let content = NoticeContent::parse(&n, &ParseContext { today })?;
    if ctx.district.covers(&content.destination) {
        return Err(FieldError::new(
            "notice.destination",
            format!("{} is served by this node itself", content.destination),
        ));
    }
    let route = ctx.route_for(content.destination.as_str()).ok_or_else(|| {
        FieldError::new(
            "notice.destination",
            format!(
                "no peer route reaches {}; add one with `migrex peer add`",
                content.destination
            ),
        )
    })?;
    Ok((content, route.prefix.to_string()))
}

/// Registers one notice and queues it for its destination.
pub async fn submit(ctx: &NodeCtx, caller: &Caller, draft: pb::Notice) -> Result<NoticeRecord> {
    caller.require_write()?;
    let now = ctx.now();
    let (content, route) = prepare(ctx, draft, now)?;
    let mut one = [(content.clone(), route.clone())];
    let audit = registered(ctx, caller, &one);
    ctx.store
        .insert_outbound(&mut one, ctx.deadlines.local_date(now), &audit, now)
        .await?;
    // Read back before the worker is woken: the clerk is answered with the
    // notice as registered (QUEUED), not with whatever delivery has made of
    // it a moment later.
    let record = stored(ctx, &content.id.to_string()).await;
    ctx.wake(&route);
    tracing::info!(notice = %content.id, destination = %content.destination, kind = content.kind().as_str_name(), subject = %content.subject.id_number.masked(), by = %caller.name, "notice queued");
    record
}

/// How one notice of a batch fared.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Its id, once one was known or given.
    pub notice_id: String,
    pub error: Option<DomainError>,
}

/// A batch's outcome: a result per notice, in order, and whether the batch
/// was committed (only when every notice was accepted).
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub items: Vec<BatchItem>,
    pub committed: bool,
}

impl BatchOutcome {
    pub fn refused(&self) -> usize {
        self.items.iter().filter(|i| i.error.is_some()).count()
    }
}

/// Registers a batch all or nothing: every notice is checked, and only if
/// every one is accepted are all committed, in one transaction
/// (`validate_only` checks and commits nothing).
pub async fn submit_many(
    ctx: &NodeCtx,
    caller: &Caller,
    drafts: Vec<pb::Notice>,
    validate_only: bool,
) -> Result<BatchOutcome> {
    caller.require_write()?;
    if drafts.len() > MAX_BATCH {
        return Err(DomainError::new(
            Refused::TooLarge,
            "notices",
            format!("{} in one call; send at most {MAX_BATCH}", drafts.len()),
        )
        .into());
    }
    let now = ctx.now();
    let mut items = Vec::with_capacity(drafts.len());
    let mut ready = Vec::with_capacity(drafts.len());
    let mut seen = HashSet::with_capacity(drafts.len());
    for n in drafts {
        let item = match prepare(ctx, n, now) {
            Ok((c, _)) if !seen.insert(c.id) => BatchItem {
                notice_id: c.id.to_string(),
                error: Some(DomainError::new(
                    Refused::Exists,
                    "notice.id",
                    "appears twice in this batch",
                )),
            },
            Ok((c, route)) => {
                let item = BatchItem {
                    notice_id: c.id.to_string(),
                    error: None,
                };
                ready.push((c, route));
                item
            }
            Err(e) => BatchItem {
                notice_id: String::new(),
                error: Some(e.into()),
            },
        };
        items.push(item);
    }
    let mut outcome = BatchOutcome {
        items,
        committed: false,
    };
    if outcome.refused() > 0 || validate_only {
        return Ok(outcome);
    }
    let audit = registered(ctx, caller, &ready);
    ctx.store
        .insert_outbound(&mut ready, ctx.deadlines.local_date(now), &audit, now)
        .await?;
    outcome.committed = true;
    let mut routes: Vec<&String> = ready.iter().map(|(_, r)| r).collect();
    routes.sort();
    routes.dedup();
    for route in routes {
        ctx.wake(route);
    }
    tracing::info!(count = ready.len(), by = %caller.name, "notices queued from a batch");
    Ok(outcome)
}

/// A notice this node holds, with every detail of its subject (not for
/// monitors).
pub async fn get(ctx: &NodeCtx, caller: &Caller, id: Uuid) -> Result<NoticeRecord> {
    caller.require_personal_data()?;
    let rec = stored(ctx, &id.to_string()).await?;
    audit::record_reads(ctx, caller, "notice.get", std::slice::from_ref(&rec)).await?;
    Ok(rec)
}

/// The audit entries of `caller` registering `notices`.
fn registered(ctx: &NodeCtx, caller: &Caller, notices: &[(NoticeContent, String)]) -> Vec<Access> {
    let ids: Vec<(String, &str)> = notices
        .iter()
        .map(|(c, _)| (c.id.to_string(), c.subject.id_number.as_str()))
        .collect();
    audit::accesses(
        &ctx.audit_key,
        caller,
        "notice.submit",
        ids.iter().map(|(id, subject)| (id.as_str(), *subject)),
    )
}

pub(super) async fn stored(ctx: &NodeCtx, id: &str) -> Result<NoticeRecord> {
    ctx.store
        .get_notice(id)
        .await?
        .ok_or_else(|| not_found(id).into())
}

/// The refusal of a request that names a notice this node does not hold.
pub(super) fn not_found(id: &str) -> DomainError {
    DomainError::new(
        Refused::NotFound,
        "id",
        format!("no notice {id} on this node"),
    )
}

/// What the pending list (待办) may be narrowed to.
#[derive(Debug, Clone, Default)]
pub struct PendingQuery {
    pub kind: Option<NoticeKind>,
    pub category: Option<Category>,
    pub urgency: Option<Urgency>,
    pub overdue_only: bool,
    /// Only what is due within this many days from now.
    pub due_within_days: Option<u32>,
}

/// Inbound notices still owing their reply, oldest deadline first, with
/// the people they are about (not for monitors).
pub async fn pending(
    ctx: &NodeCtx,
    caller: &Caller,
    q: PendingQuery,
    page: Page,
) -> Result<Listing> {
    caller.require_personal_data()?;
    let now = ctx.now();
    let due_before = match q.due_within_days {
        None => None,
        // Anything past the end of time is "everything".
        Some(days) => now.checked_add(time::Duration::days(i64::from(days))),
    };
    let f = PendingFilter {
        kind: q.kind,
        category: q.category,
        urgency: q.urgency,
        overdue_only: q.overdue_only,
        due_before,
        limit: page.limit,
        after: page.after.clone(),
    };
    let rows = ctx.store.list_pending(&f, now).await?;
    audit::record_reads(ctx, caller, "notice.pending", &rows).await?;
    Ok(Listing::new(rows, &page, |r| r.life.due_at))
}

/// How many notices await our reply now: all, overdue, and due soon
/// (`Lifecycle::due_soon`, within `DUE_SOON_DAYS`). Counts only: no
/// personal data, so every role may see them.
pub async fn pending_counts(ctx: &NodeCtx, _caller: &Caller) -> Result<PendingCounts> {
    let now = ctx.now();
    let soon = now + time::Duration::days(i64::from(crate::domain::DUE_SOON_DAYS));
    Ok(ctx.store.pending_counts(now, soon).await?)
}

/// What we sent (已发送), newest first, as `f` narrows them, with the
/// people they are about (not for monitors).
pub async fn sent(
    ctx: &NodeCtx,
    caller: &Caller,
    mut f: NoticeFilter,
    page: Page,
) -> Result<Listing> {
    caller.require_personal_data()?;
    f.direction = Some(crate::domain::Direction::Outbound);
    let listing = list_page(ctx, f, page).await?;
    audit::record_reads(ctx, caller, "notice.sent", &listing.rows).await?;
    Ok(listing)
}

/// Notices of both directions, newest first, as `f` narrows them; masked
/// for monitors (`service::visible`).
pub async fn list(ctx: &NodeCtx, caller: &Caller, f: NoticeFilter, page: Page) -> Result<Listing> {
    if f.subject_id.is_some() {
        // Whether a person is on file is itself a personal detail.
        caller.require_personal_data()?;
    }
    let listing = list_page(ctx, f, page).await?;
    audit::record_reads(ctx, caller, "notice.list", &listing.rows).await?;
    Ok(listing.visible_to(caller))
}

async fn list_page(ctx: &NodeCtx, mut f: NoticeFilter, page: Page) -> Result<Listing> {
    f.limit = page.limit;
    f.after = page.after.clone();
    let rows = ctx.store.list_notices(&f).await?;
    Ok(Listing::new(rows, &page, |r| Some(r.life.created_at)))
}
