//! The pages staff work in. 待办 (pending): what arrived and still owes our
//! reply, oldest deadline first, with the counts that matter at the top and
//! one action to sign (签收).

use super::PageError;
use super::session::{Staff, TokenForm};
use crate::context::NodeCtx;
use crate::domain::{Category, NoticeKind, ReplySort, county_name, mask_id};
use crate::service::notices::PendingQuery;
use crate::service::{Page, notices, replies};
use crate::store::{NoticeRecord, PendingCounts};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;
use time::OffsetDateTime;
use time_tz::OffsetDateTimeExt;

/// Days ahead that count as "due soon" (amber).
const SOON_DAYS: u32 = 3;
/// Rows on one page of a list.
const PAGE_SIZE: u32 = 50;

/// What staff call a notice's kind.
pub(super) fn kind_zh(k: i32) -> &'static str {
    match NoticeKind::try_from(k) {
        Ok(NoticeKind::Marriage) => "婚姻",
        Ok(NoticeKind::Pregnancy) => "怀孕",
        Ok(NoticeKind::Birth) => "生育",
        Ok(NoticeKind::Contraception) => "节育措施",
        _ => "?",
    }
}

pub(super) fn category_zh(c: i32) -> &'static str {
    if c == Category::VerificationRequest as i32 {
        "协查"
    } else {
        "通报"
    }
}

/// A district as staff read it: its code and its county's name.
pub(super) fn place(code: &str) -> String {
    format!("{code} {}", county_name(code).unwrap_or(""))
}

/// One row of the pending list.
struct PendingRow {
    id: String,
    kind: &'static str,
    category: &'static str,
    urgent: bool,
    peer: String,
    subject: String,
    id_number: String,
    due: String,
    days_left: String,
    /// "overdue", "soon" or "".
    class: &'static str,
    needs: &'static str,
    signed: bool,
    duplicate_of: String,
}

impl PendingRow {
    fn new(r: &NoticeRecord, now: OffsetDateTime, tz: &'static time_tz::Tz) -> Self {
        let n = &r.content;
        let subject = n.subject.clone().unwrap_or_default();
        let due = r.life.due_at.map(|d| d.to_timezone(tz));
        let days = due.map(|d| (d.date() - now.to_timezone(tz).date()).whole_days());
        let (class, days_left) = match days {
            Some(d) if r.life.overdue(now) => ("overdue", format!("超时 {} 天", (-d).max(0))),
            Some(d) if d <= i64::from(SOON_DAYS) => ("soon", format!("剩 {d} 天")),
            Some(d) => ("", format!("剩 {d} 天")),
            None => ("", String::new()),
        };
        PendingRow {
            id: n.id.clone(),
            kind: kind_zh(n.kind),
            category: category_zh(n.category),
            urgent: n.urgency == crate::domain::Urgency::Urgent as i32,
            peer: place(&n.origin),
            subject: subject.name,
            id_number: mask_id(&subject.id_number),
            due: due
                .map(|d| crate::domain::format_date(d.date()))
                .unwrap_or_default(),
            days_left,
            class,
            needs: if r.life.reply_required == ReplySort::Feedback {
                "核查反馈"
            } else {
                "签收"
            },
            signed: r.life.acknowledged_at.is_some(),
            duplicate_of: r.duplicate_of.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "pending.html")]
struct PendingPage {
    user: String,
    role: &'static str,
    csrf: String,
    counts: PendingCounts,
    soon_days: u32,
    rows: Vec<PendingRow>,
    overdue_only: bool,
    next_page: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct PendingParams {
    overdue: Option<String>,
    page: Option<u64>,
}

pub(crate) async fn pending(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<PendingParams>,
) -> Result<Html<String>, PageError> {
    let page = Page::new(PAGE_SIZE, q.page.unwrap_or(0));
    let overdue_only = q.overdue.is_some();
    let query = PendingQuery {
        overdue_only,
        ..Default::default()
    };
    let recs = notices::pending(&ctx, &staff.caller, query, page).await?;
    let counts = notices::pending_counts(&ctx, &staff.caller, SOON_DAYS).await?;
    let now = ctx.now();
    let view = PendingPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        counts,
        soon_days: SOON_DAYS,
        next_page: page.next(recs.len()),
        rows: recs
            .iter()
            .map(|r| PendingRow::new(r, now, ctx.deadlines.tz))
            .collect(),
        overdue_only,
    };
    Ok(Html(view.render()?))
}

/// 签收: signs for a notice, then back to the list.
pub(crate) async fn acknowledge(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<TokenForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| {
        PageError(
            axum::http::StatusCode::NOT_FOUND,
            "没有这条通报 (no such notice)".into(),
        )
    })?;
    replies::acknowledge(&ctx, &staff.caller, id).await?;
    Ok(Redirect::to("/pending").into_response())
}
