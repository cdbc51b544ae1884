//! 审计 (access audit): for supervisors and administrators, who looked at a
//! person (by ID number) or what a token or account did (by name or token
//! id), through `service::audit::show`.

use super::PageError;
use super::session::Staff;
use crate::context::NodeCtx;
use crate::service::audit::{self, Inquiry};
use askama::Template;
use axum::extract::{Form, State};
use axum::response::Html;
use std::sync::Arc;

/// The inquiry, posted (an ID number never goes in a URL, where logs and
/// browser history would keep it).
#[derive(serde::Deserialize, Default)]
pub(crate) struct AuditParams {
    #[serde(default)]
    csrf: String,
    subject: Option<String>,
    actor: Option<String>,
}

/// One act: a page view or a reply, with the notices it touched.
struct Line {
    cells: Vec<String>,
    notices: Vec<String>,
}

/// Entries recorded together (the same instant, actor, token, operation
/// and address: one page view lists its fifty notices) as one line.
fn grouped(entries: Vec<crate::audit::Entry>, tz: &'static time_tz::Tz) -> Vec<Line> {
    let mut lines: Vec<(crate::audit::Entry, Vec<String>)> = Vec::new();
    for e in entries {
        if let Some((first, notices)) = lines.last_mut()
            && first.at == e.at
            && first.actor == e.actor
            && first.token == e.token
            && first.operation == e.operation
            && first.address == e.address
        {
            if !e.notice_id.is_empty() {
                notices.push(e.notice_id);
            }
            continue;
        }
        let notices = if e.notice_id.is_empty() {
            Vec::new()
        } else {
            vec![e.notice_id.clone()]
        };
        lines.push((e, notices));
    }
    lines
        .into_iter()
        .map(|(e, notices)| Line {
            cells: vec![
                super::local(tz, Some(e.at)),
                e.actor,
                e.token
                    .map(|t| format!("令牌 {t}"))
                    .unwrap_or_else(|| "网页登录".into()),
                crate::domain::operation_zh(&e.operation),
                e.address,
            ],
            notices,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    /// The ID number asked about, masked (shown above the answer).
    subject: String,
    actor: String,
    asked: bool,
    error: Option<String>,
    lines: Vec<Line>,
}

/// The most entries one inquiry shows.
const SHOWN: u32 = 500;

/// The empty form.
pub(crate) async fn page(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
) -> Result<Html<String>, PageError> {
    answer(&ctx, &staff, AuditParams::default()).await
}

/// The form's answer.
pub(crate) async fn query(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(q): Form<AuditParams>,
) -> Result<Html<String>, PageError> {
    staff.check_form(&q.csrf)?;
    answer(&ctx, &staff, q).await
}

async fn answer(ctx: &NodeCtx, staff: &Staff, q: AuditParams) -> Result<Html<String>, PageError> {
    staff.caller.require_supervisor()?;
    let subject = q.subject.unwrap_or_default().trim().to_string();
    let actor = q.actor.unwrap_or_default().trim().to_string();
    let asked = !subject.is_empty() || !actor.is_empty();
    let mut error = None;
    let mut lines = Vec::new();
    if asked {
        let valid = if subject.is_empty() {
            Ok(())
        } else {
            crate::domain::IdNumber::parse("subject", &subject).map(|_| ())
        };
        match valid {
            Err(e) => error = Some(crate::domain::field_error_zh("id_number", &e.rule)),
            Ok(()) => {
                let inquiry = Inquiry {
                    subject: (!subject.is_empty()).then(|| subject.clone()),
                    actor: (!actor.is_empty()).then(|| actor.clone()),
                    after: 0,
                    limit: SHOWN,
                };
                lines = grouped(
                    audit::show(ctx, &staff.caller, inquiry).await?,
                    ctx.deadlines.tz,
                );
            }
        }
    }
    let view = AuditPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("audit"),
        // The ID number asked about is not written back into the page.
        subject: mask(&subject),
        actor,
        asked,
        error,
        lines,
    };
    Ok(Html(view.render()?))
}

fn mask(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        crate::domain::mask_id(id)
    }
}
