//! 已发送 (sent): the notices this district sent, newest first, with their
//! status and replies; those not yet delivered stand out with their last
//! delivery error; a notice still open can be withdrawn (撤回) with a reason.

use super::PAGE_SIZE;
use super::PageError;
use super::session::Staff;
use crate::context::NodeCtx;
use crate::domain::{NoticeKind, NoticeStatus, kind_zh, mask_id, result_zh, status_zh};
use crate::report::place;
use crate::service::{Cursor, Page, notices, replies};
use crate::store::{NoticeFilter, NoticeRecord};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;

struct SentRow {
    id: String,
    reference: String,
    created: String,
    kind: &'static str,
    peer: String,
    subject: String,
    id_number: String,
    status: &'static str,
    replies: String,
    undelivered: bool,
    attempts: u32,
    last_error: String,
    /// Taken by a relay (中转), waiting for the destination's word.
    relayed: Option<String>,
    withdrawable: bool,
    /// 催办 is offered, and how many were sent.
    remindable: bool,
    reminders: u32,
    /// When the last reply came (Unix seconds, 0 for none): the page marks
    /// rows answered since this browser's last visit (console.js).
    replied_at: i64,
}

impl SentRow {
    /// `actions`: what the viewer may do to it (`service::replies::actions`).
    fn new(r: &NoticeRecord, tz: &'static time_tz::Tz, actions: replies::Actions) -> Self {
        let n = &r.content;
        let s = n.subject.clone().unwrap_or_default();
        let local = |t| super::local(tz, Some(t));
        let mut replies = Vec::new();
        if let (Some(at), Some(by)) = (r.life.acknowledged_at, &r.acknowledged_by) {
            replies.push(format!("签收 {} {by}", local(at)));
        }
        if let (Some(at), Some(f)) = (r.life.answered_at, &r.feedback) {
            replies.push(format!(
                "反馈 {} {} {}",
                local(at),
                result_zh(f.result),
                f.answered_by
            ));
        }
        if let Some(at) = r.withdrawn_at {
            replies.push(format!(
                "{} {} {}",
                super::notice::withdrawal_zh(r.life.answered_at.is_some()),
                local(at),
                r.withdraw_reason.clone().unwrap_or_default()
            ));
        }
        let status = r.life.status;
        SentRow {
            id: n.id.clone(),
            reference: n.reference.clone(),
            created: local(r.life.created_at),
            kind: kind_zh(n.kind),
            peer: place(&n.destination),
            subject: s.name,
            id_number: mask_id(&s.id_number),
            status: status_zh(status),
            replies: replies.join("；"),
            undelivered: status == NoticeStatus::Queued,
            attempts: r.delivery_attempts,
            relayed: r
                .relayed
                .as_ref()
                .map(|(relay, at)| format!("已交中转 {} {}，待对方接收", place(relay), local(*at))),
            last_error: r.last_error.clone().unwrap_or_default(),
            withdrawable: actions.withdraw,
            remindable: actions.remind,
            reminders: r.life.reminders,
            replied_at: [r.life.acknowledged_at, r.life.answered_at]
                .into_iter()
                .flatten()
                .max()
                .map_or(0, |t| t.unix_timestamp()),
        }
    }
}

#[derive(Template)]
#[template(path = "sent.html")]
struct SentPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    rows: Vec<SentRow>,
    /// What was just done, said once.
    done: Option<&'static str>,
    status: String,
    kind: String,
    /// The district filter as typed (a code or a name).
    peer_typed: String,
    /// Why the district filter was not taken.
    error: Option<String>,
    /// The next page's `after`, when there may be one.
    next_page: Option<String>,
    query: String,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct SentParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    peer: String,
    /// Where the page starts: `store::Cursor`'s text ("" for the first).
    #[serde(default)]
    after: String,
    /// What was just done ("withdrawn"), said once above the list.
    #[serde(default)]
    done: String,
}

impl SentParams {
    /// The list's filters: a district by code (its digits) or by a name
    /// one district has; unknown values dropped (shown as "all").
    pub(super) fn filter(&self) -> NoticeFilter {
        let typed = crate::domain::district_typed(&self.peer).unwrap_or_default();
        let peer: String = typed
            .chars()
            .filter(char::is_ascii_digit)
            .take(12)
            .collect();
        NoticeFilter {
            status: NoticeStatus::from_str_name(&self.status),
            kind: NoticeKind::from_str_name(&self.kind),
            peer_prefix: (!peer.is_empty()).then_some(peer),
            ..Default::default()
        }
    }
}

pub(crate) async fn list(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<SentParams>,
) -> Result<Html<String>, PageError> {
    let page = Page::new(PAGE_SIZE, Cursor::parse(&q.after));
    let f = q.filter();
    let recs = notices::sent(&ctx, &staff.caller, f, page).await?;
    let query = format!(
        "status={}&kind={}&peer={}",
        f_status(&q.status),
        f_kind(&q.kind),
        super::url_encode(q.peer.trim())
    );
    let view = SentPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("sent"),
        done: match q.done.as_str() {
            "withdrawn" => Some("已撤回，撤回通知正在发送给对方。"),
            "reminded" => Some("已催办，催办通知正在发送给对方。"),
            _ => None,
        },
        next_page: recs.next.map(|c| c.to_string()),
        rows: recs
            .rows
            .iter()
            .map(|r| {
                let actions = replies::actions(&ctx, &staff.caller, r);
                SentRow::new(r, ctx.deadlines.tz, actions)
            })
            .collect(),
        status: f_status(&q.status).into(),
        kind: f_kind(&q.kind).into(),
        peer_typed: q.peer.trim().chars().take(20).collect(),
        error: (!q.peer.trim().is_empty() && crate::domain::district_typed(&q.peer).is_none())
            .then(|| {
                format!(
                    "“{}”对应的地区不止一个或没有，请填写区划代码或从列表中选择",
                    q.peer.trim()
                )
            }),
        query,
    };
    Ok(Html(view.render()?))
}

/// A status filter as given, when it is one.
fn f_status(s: &str) -> &str {
    NoticeStatus::from_str_name(s).map_or("", |x| x.as_str_name())
}

fn f_kind(s: &str) -> &str {
    NoticeKind::from_str_name(s).map_or("", |x| x.as_str_name())
}

#[derive(serde::Deserialize)]
pub(crate) struct WithdrawForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// 催办: reminds the destination of a notice we sent, then back to 已发送
/// saying so.
pub(crate) async fn remind(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<super::session::TokenForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let id = super::parse_id(&id)?;
    replies::remind(&ctx, &staff.caller, id).await?;
    Ok(Redirect::to("/sent?done=reminded").into_response())
}

/// 撤回: withdraws a notice we sent, with the reason given.
pub(crate) async fn withdraw(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<WithdrawForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let id = super::parse_id(&id)?;
    replies::withdraw(&ctx, &staff.caller, id, &f.reason).await?;
    Ok(Redirect::to("/sent?done=withdrawn").into_response())
}
