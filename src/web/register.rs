//! 登记通报 (new notice): one form whose fields follow the chosen kind
//! (hidden by `console.js` for the other kinds; all shown without script),
//! district pickers that find a district by code or name, the ID number
//! checked as it is typed, and the reply the destination will ask for and
//! its deadline shown before sending. The node judges what is sent with
//! the same rules as the desk (`service::notices::submit`); a refusal shows
//! the form again with the field and the rule, and stores nothing.

use super::PageError;
use super::session::Staff;
use crate::calendar::DayCount;
use crate::context::NodeCtx;
use crate::domain::{
    Category, NoticeKind, Urgency, category_zh, find_districts, kind_zh, reply_zh, urgency_zh,
};
use crate::import::notice_from_fields;
use crate::service::notices;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::Arc;
use time_tz::OffsetDateTimeExt;

/// One line of the reply policy as the form shows it.
struct PolicyLine {
    key: String,
    label: String,
    reply: &'static str,
    within: String,
    due: String,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    values: HashMap<String, String>,
    error: Option<(String, String)>,
    policy: Vec<PolicyLine>,
    origin: String,
}

impl RegisterPage {
    /// The value typed into field `k` before (kept when the form comes back).
    fn v(&self, k: &str) -> &str {
        self.values.get(k).map_or("", String::as_str)
    }

    fn sel(&self, k: &str, option: &str) -> &'static str {
        if self.v(k) == option { "selected" } else { "" }
    }
}

/// The field a refusal is about, as staff read it (身份证号), whether
/// named by its path or by its spreadsheet column.
pub(super) fn column_label(field: &str) -> String {
    crate::domain::label_zh(crate::import::column_of(field)).to_string()
}

/// The reply policy for every kind, category and urgency, with the
/// deadline a notice received now would get.
fn policy_lines(ctx: &NodeCtx) -> Vec<PolicyLine> {
    let now = ctx.now();
    let mut lines = Vec::new();
    for kind in [
        NoticeKind::Marriage,
        NoticeKind::Pregnancy,
        NoticeKind::Birth,
        NoticeKind::Contraception,
    ] {
        for category in [Category::Notification, Category::VerificationRequest] {
            for urgency in [Urgency::Normal, Urgency::Urgent] {
                let rule = ctx.deadlines.policy.rule_for(category, kind, urgency);
                let due = ctx.deadlines.due(now, rule);
                let last_day = due.at.to_timezone(ctx.deadlines.tz).date();
                lines.push(PolicyLine {
                    key: format!(
                        "{}/{}/{}",
                        kind.as_str_name(),
                        category.as_str_name(),
                        urgency.as_str_name()
                    ),
                    label: format!(
                        "{} · {} · {}",
                        kind_zh(kind as i32),
                        category_zh(category as i32),
                        urgency_zh(urgency as i32)
                    ),
                    reply: reply_zh(rule.reply),
                    within: format!(
                        "{} 个{}",
                        rule.days,
                        if rule.count == DayCount::Working {
                            "工作日"
                        } else {
                            "自然日"
                        }
                    ),
                    due: format!(
                        "{}{}",
                        crate::domain::format_date(last_day),
                        if due.provisional { "（暂定）" } else { "" }
                    ),
                });
            }
        }
    }
    lines
}

fn page(
    ctx: &NodeCtx,
    staff: &Staff,
    values: HashMap<String, String>,
    error: Option<(String, String)>,
) -> Result<Html<String>, PageError> {
    let view = RegisterPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("new"),
        values,
        error,
        policy: policy_lines(ctx),
        origin: crate::report::place(ctx.district.as_str()),
    };
    Ok(Html(view.render()?))
}

pub(crate) async fn form(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
) -> Result<Html<String>, PageError> {
    staff.caller.require_write()?;
    let values = [("kind", "BIRTH"), ("category", "NOTIFICATION")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    page(&ctx, &staff, values, None)
}

/// 登记: the form's notice through the service; on refusal the form again,
/// naming the field and the rule.
pub(crate) async fn submit(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(mut values): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    staff.check_form(values.get("csrf").map_or("", String::as_str))?;
    values.remove("csrf");
    let refused = |field: &str, rule: String| {
        (
            column_label(field),
            crate::domain::field_error_zh(field, &rule),
        )
    };
    let draft = match notice_from_fields(&|k| values.get(k).cloned()) {
        Ok(d) => d,
        Err(e) => {
            let err = refused(&e.field, e.rule.clone());
            return Ok(page(&ctx, &staff, values, Some(err))?.into_response());
        }
    };
    match notices::submit(&ctx, &staff.caller, draft).await {
        Ok(rec) => Ok(
            Redirect::to(&format!("/notices/{}?done=registered", rec.content.id)).into_response(),
        ),
        Err(crate::service::ServiceError::Refused(r)) => {
            let err = refused(&r.field, r.message.clone());
            Ok(page(&ctx, &staff, values, Some(err))?.into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct DistrictQuery {
    #[serde(default)]
    q: String,
}

/// Districts whose code starts with, or whose name contains, `q` (for the
/// pickers; the division table is public).
pub(crate) async fn districts(_staff: Staff, Query(q): Query<DistrictQuery>) -> impl IntoResponse {
    let q: String = q.q.chars().take(20).collect();
    let found: Vec<serde_json::Value> = find_districts(&q, 20)
        .into_iter()
        .map(|(code, name)| serde_json::json!({"code": format!("{code:06}"), "name": name}))
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(found).to_string(),
    )
}
