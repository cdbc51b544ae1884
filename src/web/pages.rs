//! The pages staff work in. 待办 (pending): what arrived and still owes our
//! reply, oldest deadline first, with the counts that matter at the top and
//! one action to sign (签收).

use super::session::{Staff, TokenForm};
use super::{PAGE_SIZE, PageError};
use crate::context::NodeCtx;
use crate::domain::{Category, NoticeKind, Urgency, category_zh, kind_zh, mask_id, reply_zh};
use crate::report::place;
use crate::service::notices::PendingQuery;
use crate::service::{Cursor, Page, notices, replies};
use crate::store::{NoticeRecord, PendingCounts};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;
use time::OffsetDateTime;
use time_tz::OffsetDateTimeExt;

/// Days ahead that count as "due soon" (amber): the domain's one rule.
const SOON_DAYS: u32 = crate::domain::DUE_SOON_DAYS;

/// One row of the pending list.
struct PendingRow {
    id: String,
    reference: String,
    kind: &'static str,
    category: &'static str,
    urgent: bool,
    peer: String,
    subject: String,
    id_number: String,
    due: String,
    /// The deadline was counted past the holiday schedule (时限（暂定）).
    provisional: bool,
    days_left: String,
    /// "overdue", "soon" or "".
    class: &'static str,
    needs: &'static str,
    signed: bool,
    /// The viewer may sign for it now (`service::replies::actions`).
    signable: bool,
    duplicate_of: String,
    /// Reminders (催办) the origin sent about it.
    reminders: u32,
}

impl PendingRow {
    fn new(
        r: &NoticeRecord,
        now: OffsetDateTime,
        tz: &'static time_tz::Tz,
        actions: replies::Actions,
    ) -> Self {
        let n = &r.content;
        let subject = n.subject.clone().unwrap_or_default();
        let due = r.life.due_at.map(|d| d.to_timezone(tz));
        let days = due.map(|d| (d.date() - now.to_timezone(tz).date()).whole_days());
        let (class, days_left) = match days {
            Some(_) if r.life.overdue(now) => {
                ("overdue", format!("超时 {} 天", r.life.days_late(now)))
            }
            Some(d) if r.life.due_soon(now) => ("soon", format!("剩 {d} 天")),
            Some(d) => ("", format!("剩 {d} 天")),
            None => ("", String::new()),
        };
        PendingRow {
            id: n.id.clone(),
            reference: n.reference.clone(),
            kind: kind_zh(n.kind),
            category: category_zh(n.category),
            urgent: n.urgency == crate::domain::Urgency::Urgent as i32,
            peer: place(&n.origin),
            subject: subject.name,
            id_number: mask_id(&subject.id_number),
            due: due
                .map(|d| crate::domain::format_date(d.date()))
                .unwrap_or_default(),
            provisional: r.life.due_provisional,
            days_left,
            class,
            needs: reply_zh(r.life.reply_required),
            signed: r.life.acknowledged_at.is_some(),
            signable: actions.sign,
            duplicate_of: r.duplicate_of.clone().unwrap_or_default(),
            reminders: r.life.reminders,
        }
    }
}

#[derive(Template)]
#[template(path = "pending.html")]
struct PendingPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    counts: PendingCounts,
    soon_days: u32,
    rows: Vec<PendingRow>,
    f: PendingParams,
    /// What was just done, said once.
    done: Option<String>,
    /// The filters as a query string, for the next page's link.
    query: String,
    /// The next page's `after`, when there may be one.
    next_page: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct PendingParams {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    urgency: String,
    #[serde(default)]
    overdue: String,
    /// Due within this many days ("" for any).
    #[serde(default)]
    within: String,
    /// Where the page starts: `store::Cursor`'s text ("" for the first).
    #[serde(default)]
    after: String,
    /// What was just done ("signed"), said once above the list.
    #[serde(default)]
    done: String,
    /// How many were signed at once, and how many could not be.
    #[serde(default)]
    signed: String,
    #[serde(default)]
    skipped: String,
}

/// The most days ahead the "due within" filter takes.
const MAX_WITHIN_DAYS: u32 = 3660;

pub(crate) async fn pending(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<PendingParams>,
) -> Result<Html<String>, PageError> {
    // A damaged or forged `after` shows the first page.
    let page = Page::new(PAGE_SIZE, Cursor::parse(&q.after));
    let count = |v: &str| v.parse::<u32>().ok().map(|n| n.min(PAGE_SIZE));
    let done = match (q.done.as_str(), count(&q.signed), count(&q.skipped)) {
        ("signed", Some(n), Some(0) | None) => Some(format!("已签收 {n} 条。")),
        ("signed", Some(n), Some(k)) => Some(format!(
            "已签收 {n} 条；另有 {k} 条未能签收（可能已由他人签收或已被撤回）。"
        )),
        ("signed", None, _) => Some("已签收。".to_string()),
        _ => None,
    };
    let (query, q, filters) = normalized(q);
    let recs = notices::pending(&ctx, &staff.caller, query, page).await?;
    let counts = notices::pending_counts(&ctx, &staff.caller).await?;
    let staff = staff.with_counts(&counts);
    let now = ctx.now();
    let view = PendingPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("pending"),
        counts,
        soon_days: SOON_DAYS,
        next_page: recs.next.map(|c| c.to_string()),
        rows: recs
            .rows
            .iter()
            .map(|r| {
                let actions = replies::actions(&ctx, &staff.caller, r);
                PendingRow::new(r, now, ctx.deadlines.tz, actions)
            })
            .collect(),
        query: filters,
        f: q,
        done,
    };
    Ok(Html(view.render()?))
}

/// The list's filters as the service takes them, as the form shows them,
/// and as a query string (only known values: enum names and digits).
pub(super) fn normalized(mut q: PendingParams) -> (PendingQuery, PendingParams, String) {
    // Unknown values are dropped (shown as "all"), never passed on.
    let kind = NoticeKind::from_str_name(&q.kind);
    let category = Category::from_str_name(&q.category);
    let urgency = Urgency::from_str_name(&q.urgency);
    let within = q
        .within
        .trim()
        .parse::<u32>()
        .ok()
        .map(|d| d.min(MAX_WITHIN_DAYS));
    q.kind = kind.map_or("", |k| k.as_str_name()).into();
    q.category = category.map_or("", |c| c.as_str_name()).into();
    q.urgency = urgency.map_or("", |u| u.as_str_name()).into();
    q.within = within.map(|d| d.to_string()).unwrap_or_default();
    q.overdue = if q.overdue.is_empty() { "" } else { "1" }.into();
    let query = PendingQuery {
        kind,
        category,
        urgency,
        overdue_only: !q.overdue.is_empty(),
        due_within_days: within,
    };
    let filters = format!(
        "kind={}&category={}&urgency={}&overdue={}&within={}",
        q.kind, q.category, q.urgency, q.overdue, q.within
    );
    (query, q, filters)
}

/// 签收所选: signs for the notices ticked on the list (at most a page), each
/// in its own transaction, then back to the list with its filters, saying
/// how many were signed and how many were not (signed by a colleague
/// meanwhile, withdrawn).
pub(crate) async fn acknowledge_many(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<PendingParams>,
    Form(f): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let csrf = f.iter().find(|(k, _)| k == "csrf").map_or("", |(_, v)| v);
    staff.check_form(csrf)?;
    let ids: Vec<&str> = f
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .take(PAGE_SIZE as usize + 1)
        .collect();
    if ids.len() > PAGE_SIZE as usize {
        return Err(PageError::bad_request(format!(
            "一次最多签收 {PAGE_SIZE} 条"
        )));
    }
    let (mut signed, mut not) = (0, 0);
    for id in ids {
        let id = super::parse_id(id)?;
        match replies::acknowledge(&ctx, &staff.caller, id).await {
            Ok(_) => signed += 1,
            Err(crate::service::ServiceError::Refused(_)) => not += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let (_, _, filters) = normalized(q);
    Ok(Redirect::to(&format!(
        "/pending?{filters}&done=signed&signed={signed}&skipped={not}"
    ))
    .into_response())
}

/// 签收: signs for a notice, then back to the list with its filters, saying
/// so.
pub(crate) async fn acknowledge(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<PendingParams>,
    Form(f): Form<TokenForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let id = super::parse_id(&id)?;
    replies::acknowledge(&ctx, &staff.caller, id).await?;
    let (_, _, filters) = normalized(q);
    Ok(Redirect::to(&format!("/pending?{filters}&done=signed")).into_response())
}
