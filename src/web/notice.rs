//! 通报详情: one notice with every field and its journey as a timeline, and,
//! while it awaits our verification, the feedback form (核查反馈): the
//! result as four choices, corrected fields, the responsible district,
//! remarks.

use super::PageError;
use super::pages::place;
use super::session::Staff;
use crate::context::NodeCtx;
use crate::domain::{Direction, FeedbackResult, NoticeStatus, ReplySort};
use crate::pb;
use crate::service::{notices, replies};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;
use time::OffsetDateTime;
use time_tz::OffsetDateTimeExt;
use uuid::Uuid;

/// What staff call a feedback result.
pub(super) fn result_zh(r: i32) -> &'static str {
    match FeedbackResult::try_from(r) {
        Ok(FeedbackResult::Confirmed) => "核实无误",
        Ok(FeedbackResult::Corrected) => "核实有误",
        Ok(FeedbackResult::NotFound) => "查无此人",
        Ok(FeedbackResult::NotResponsible) => "不属本辖区",
        _ => "?",
    }
}

fn status_zh(s: NoticeStatus) -> &'static str {
    match s {
        NoticeStatus::Queued => "待发送",
        NoticeStatus::Delivered => "已送达",
        NoticeStatus::Pending => "待签收",
        NoticeStatus::Acknowledged => "已签收",
        NoticeStatus::Answered => "已反馈",
        NoticeStatus::Withdrawn => "已撤回",
        NoticeStatus::Unspecified => "?",
    }
}

/// One step of a notice's journey.
struct Step {
    label: &'static str,
    when: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    user: String,
    role: &'static str,
    csrf: String,
    id: String,
    title: String,
    status: &'static str,
    fields: Vec<(&'static str, String)>,
    steps: Vec<Step>,
    corrections: Vec<(String, String)>,
    /// The feedback form is offered.
    answerable: bool,
}

fn local(tz: &'static time_tz::Tz, t: Option<OffsetDateTime>) -> String {
    t.map(|t| {
        let l = t.to_timezone(tz);
        format!(
            "{} {:02}:{:02}",
            crate::domain::format_date(l.date()),
            l.hour(),
            l.minute()
        )
    })
    .unwrap_or_default()
}

fn parse_id(id: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(id).map_err(|_| {
        PageError(
            StatusCode::NOT_FOUND,
            "没有这条通报 (no such notice)".into(),
        )
    })
}

pub(crate) async fn show(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let rec = notices::get(&ctx, &staff.caller, parse_id(&id)?).await?;
    let tz = ctx.deadlines.tz;
    let n = &rec.content;
    let life = &rec.life;
    let s = n.subject.clone().unwrap_or_default();
    let mut fields = vec![
        (
            "类别",
            format!(
                "{} · {}",
                super::pages::kind_zh(n.kind),
                super::pages::category_zh(n.category)
            ),
        ),
        ("来自", place(&n.origin)),
        ("发往", place(&n.destination)),
        ("当事人", s.name.clone()),
        ("身份证号", s.id_number.clone()),
        ("户籍地", place(&s.hukou_district)),
        ("现居住地", place(&s.residence_district)),
        ("事件日期", n.event_date.clone()),
        (
            "需要",
            if life.reply_required == ReplySort::Feedback {
                "核查反馈"
            } else {
                "签收"
            }
            .into(),
        ),
    ];
    if !n.remarks.is_empty() {
        fields.push(("备注", n.remarks.clone()));
    }
    let mut steps = vec![Step {
        label: "登记",
        when: local(tz, Some(life.created_at)),
        detail: place(&n.origin),
    }];
    if life.received_at.is_some() {
        steps.push(Step {
            label: "送达",
            when: local(tz, life.received_at),
            detail: place(&n.destination),
        });
        steps.push(Step {
            label: "时限",
            when: local(tz, life.due_at),
            detail: String::new(),
        });
    }
    if life.acknowledged_at.is_some() {
        steps.push(Step {
            label: "签收",
            when: local(tz, life.acknowledged_at),
            detail: rec.acknowledged_by.clone().unwrap_or_default(),
        });
    }
    let mut corrections = Vec::new();
    if let Some(f) = &rec.feedback {
        steps.push(Step {
            label: "反馈",
            when: local(tz, life.answered_at),
            detail: format!("{} · {}", result_zh(f.result), f.answered_by),
        });
        corrections = f.corrections.clone().into_iter().collect();
        corrections.sort();
    }
    if rec.withdrawn_at.is_some() {
        steps.push(Step {
            label: "撤回",
            when: local(tz, rec.withdrawn_at),
            detail: rec.withdraw_reason.clone().unwrap_or_default(),
        });
    }
    let answerable = life.direction == Direction::Inbound
        && life.reply_required == ReplySort::Feedback
        && life.answered_at.is_none()
        && life.status != NoticeStatus::Withdrawn
        && staff.caller.role.may_write();
    let view = NoticePage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        id: n.id.clone(),
        title: format!("{} · {}", super::pages::kind_zh(n.kind), s.name),
        status: status_zh(life.status),
        fields,
        steps,
        corrections,
        answerable,
    };
    Ok(Html(view.render()?))
}

#[derive(serde::Deserialize)]
pub(crate) struct FeedbackForm {
    csrf: String,
    result: String,
    #[serde(default)]
    field1: String,
    #[serde(default)]
    value1: String,
    #[serde(default)]
    field2: String,
    #[serde(default)]
    value2: String,
    #[serde(default)]
    responsible_district: String,
    #[serde(default)]
    remarks: String,
}

/// 核查反馈: the form's answer through the service, then back to the notice.
pub(crate) async fn feedback(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<FeedbackForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let uuid = parse_id(&id)?;
    let result = FeedbackResult::from_str_name(&f.result).map_or(0, |r| r as i32);
    let corrections = [(f.field1, f.value1), (f.field2, f.value2)]
        .into_iter()
        .filter(|(k, _)| !k.trim().is_empty())
        .collect();
    let answer = pb::Feedback {
        result,
        remarks: f.remarks,
        corrections,
        responsible_district: f.responsible_district,
        ..Default::default()
    };
    replies::feedback(&ctx, &staff.caller, uuid, &answer).await?;
    Ok(Redirect::to(&format!("/notices/{uuid}")).into_response())
}
