//! 通报详情: one notice with every field and its journey as a timeline, and,
//! while it awaits our verification, the feedback form (核查反馈): the
//! result as four choices, corrected fields, the responsible district,
//! remarks.

use super::PageError;
use super::session::Staff;
use super::{local, parse_id};
use crate::context::NodeCtx;
use crate::domain::{
    FeedbackResult, Field, category_zh, field_label, fields_zh, kind_zh, reply_zh, result_zh,
    status_zh,
};
use crate::pb;
use crate::report::place;
use crate::service::{notices, replies};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;

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
    head: super::session::Head,
    id: String,
    /// The short reference (编号), "" on notices older than references.
    reference: String,
    title: String,
    status: &'static str,
    fields: Vec<(&'static str, String)>,
    steps: Vec<Step>,
    /// The answer (核查反馈) as given: result, who, when, the corrections
    /// as old value → new value, the responsible district, the remarks.
    answer: Vec<(String, String)>,
    /// The feedback form is offered.
    answerable: bool,
    /// 催办 is offered (a notice of ours, late or due soon).
    remindable: bool,
    /// The fields a correction may name: path, label and value today.
    correctable: Vec<Field>,
    /// The feedback form as typed (empty at first).
    form: FeedbackForm,
    /// The two corrections as typed: (field path, new value).
    picks: Vec<(String, String)>,
    /// Why the answer was refused: the field's label, the reason.
    error: Option<(String, String)>,
    /// What was just done, said once.
    done: Option<&'static str>,
}

/// Every field of a notice as staff read them: where it comes from and
/// goes, then the person's and its kind's fields (`domain::fields_zh`),
/// districts named.
fn fields_of(rec: &crate::store::NoticeRecord) -> Vec<(&'static str, String)> {
    let n = &rec.content;
    let life = &rec.life;
    let mut fields = vec![
        (
            "类别",
            format!("{} · {}", kind_zh(n.kind), category_zh(n.category)),
        ),
        ("来自", place(&n.origin)),
        ("发往", place(&n.destination)),
    ];
    // A field the origin left empty (a child not yet named) is not listed.
    fields.extend(
        fields_zh(n)
            .into_iter()
            .filter(|f| !f.value.is_empty())
            .map(|f| {
                let value = if f.path.ends_with("_district") {
                    place(&f.value)
                } else {
                    f.value
                };
                (f.label, value)
            }),
    );
    fields.push(("需要", reply_zh(life.reply_required).into()));
    if !n.addressed_to.is_empty() {
        fields.insert(
            3,
            (
                "原收件地",
                format!(
                    "{}（区划变更，已由{}承接）",
                    place(&n.addressed_to),
                    place(&n.destination)
                ),
            ),
        );
    }
    if !n.remarks.is_empty() {
        fields.push(("备注", n.remarks.clone()));
    }
    fields
}

#[derive(serde::Deserialize)]
pub(crate) struct ShowParams {
    /// What was just done ("registered", "answered"), said once.
    #[serde(default)]
    done: String,
}

pub(crate) async fn show(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<ShowParams>,
) -> Result<Html<String>, PageError> {
    let rec = notices::get(&ctx, &staff.caller, parse_id(&id)?).await?;
    let done = match q.done.as_str() {
        "registered" => Some("已登记，正在发送给对方。"),
        "answered" => Some("已提交核查反馈，正在发送给来文地区。"),
        _ => None,
    };
    let mut view = page(&ctx, &staff, &rec, FeedbackForm::default(), None)?;
    view.done = done;
    Ok(Html(view.render()?))
}

/// The notice's page; `form` fills the feedback form (a refused answer
/// comes back with everything typed), `error` says why it was refused.
fn page(
    ctx: &NodeCtx,
    staff: &Staff,
    rec: &crate::store::NoticeRecord,
    form: FeedbackForm,
    error: Option<(String, String)>,
) -> Result<NoticePage, PageError> {
    let tz = ctx.deadlines.tz;
    let n = &rec.content;
    let life = &rec.life;
    let s = n.subject.clone().unwrap_or_default();
    let fields = fields_of(rec);
    let mut steps = vec![Step {
        label: "登记",
        when: local(tz, Some(life.created_at)),
        detail: place(&n.origin),
    }];
    if let Some((relay, at)) = &rec.relayed {
        steps.push(Step {
            label: "交中转",
            when: local(tz, Some(*at)),
            detail: if life.received_at.is_some() {
                place(relay)
            } else {
                format!("{}，待对方接收", place(relay))
            },
        });
    }
    if life.received_at.is_some() {
        steps.push(Step {
            label: "送达",
            when: local(tz, life.received_at),
            detail: place(&n.destination),
        });
        steps.push(Step {
            label: if life.due_provisional {
                "时限（暂定）"
            } else {
                "时限"
            },
            when: local(tz, life.due_at),
            detail: if life.due_provisional {
                "该年节假日安排尚未导入，按普通周末推算；导入后自动更新".into()
            } else {
                String::new()
            },
        });
        for c in &rec.deadline_changes {
            steps.push(Step {
                label: "时限更新",
                when: local(tz, Some(c.changed_at)),
                detail: format!(
                    "{} → {}{}",
                    local(tz, Some(c.previous_due_at)),
                    local(tz, Some(c.due_at)),
                    if c.provisional {
                        "（仍为暂定）"
                    } else {
                        "（依据新导入的节假日安排）"
                    }
                ),
            });
        }
    }
    if life.acknowledged_at.is_some() {
        steps.push(Step {
            label: "签收",
            when: local(tz, life.acknowledged_at),
            detail: rec.acknowledged_by.clone().unwrap_or_default(),
        });
    }
    if life.reminders > 0 {
        steps.push(Step {
            label: "催办",
            when: local(tz, life.reminded_at),
            detail: format!("共 {} 次", life.reminders),
        });
    }
    let mut answer = Vec::new();
    if let Some(f) = &rec.feedback {
        steps.push(Step {
            label: "反馈",
            when: local(tz, life.answered_at),
            detail: format!("{} · {}", result_zh(f.result), f.answered_by),
        });
        answer = answer_of(n, f, local(tz, life.answered_at));
    }
    if rec.withdrawn_at.is_some() {
        steps.push(Step {
            label: withdrawal_zh(life.answered_at.is_some()),
            when: local(tz, rec.withdrawn_at),
            detail: rec.withdraw_reason.clone().unwrap_or_default(),
        });
    }
    let actions = replies::actions(ctx, &staff.caller, rec);
    let answerable = actions.answer;
    let view = NoticePage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head(""),
        id: n.id.clone(),
        reference: n.reference.clone(),
        title: format!("{} · {}", kind_zh(n.kind), s.name),
        status: status_zh(life.status),
        fields,
        steps,
        answer,
        answerable,
        remindable: actions.remind,
        correctable: fields_zh(n),
        picks: vec![
            (form.field1.clone(), form.value1.clone()),
            (form.field2.clone(), form.value2.clone()),
        ],
        form,
        error,
        done: None,
    };
    Ok(view)
}

/// The answer as both sides read it: the result, who answered and when,
/// each correction as its field's label with the value held before and the
/// one given, the responsible district, the remarks.
fn answer_of(n: &pb::Notice, f: &pb::Feedback, when: String) -> Vec<(String, String)> {
    let mut out = vec![
        ("核查结果".to_string(), result_zh(f.result).to_string()),
        ("反馈人".into(), format!("{} · {when}", f.answered_by)),
    ];
    let fields = fields_zh(n);
    let mut corrections: Vec<_> = f.corrections.iter().collect();
    corrections.sort();
    for (path, new) in corrections {
        let old = fields
            .iter()
            .find(|x| x.path == path.as_str())
            .map_or(String::new(), |x| x.value.clone());
        out.push((
            format!("更正：{}", field_label(n, path)),
            format!("{} → {new}", if old.is_empty() { "（空）" } else { &old }),
        ));
    }
    if !f.responsible_district.is_empty() {
        out.push(("应负责地区".into(), place(&f.responsible_district)));
    }
    if !f.remarks.is_empty() {
        out.push(("情况说明".into(), f.remarks.clone()));
    }
    out
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct FeedbackForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
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
    let corrections = [(&f.field1, &f.value1), (&f.field2, &f.value2)]
        .into_iter()
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // A district typed by name is taken when one district has it.
    let district = crate::domain::district_typed(&f.responsible_district)
        .unwrap_or_else(|| f.responsible_district.trim().to_string());
    let answer = pb::Feedback {
        result,
        remarks: f.remarks.clone(),
        corrections,
        responsible_district: district,
        ..Default::default()
    };
    match replies::feedback(&ctx, &staff.caller, uuid, &answer).await {
        Ok(_) => Ok(Redirect::to(&format!("/notices/{uuid}?done=answered")).into_response()),
        Err(crate::service::ServiceError::Refused(e)) => {
            let rec = notices::get(&ctx, &staff.caller, uuid).await?;
            let error = (
                crate::domain::label_zh(&e.field).to_string(),
                crate::domain::refusal_zh(&e),
            );
            Ok(Html(page(&ctx, &staff, &rec, f, Some(error))?.render()?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "sheet.html")]
struct SheetPage {
    id: String,
    reference: String,
    title: String,
    origin: String,
    fields: Vec<(&'static str, String)>,
    due: String,
}

/// 核查单: the printable verification sheet (A4) a clerk takes on a
/// household visit: the notice's fields, room for notes and signatures.
pub(crate) async fn sheet(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let rec = notices::get(&ctx, &staff.caller, parse_id(&id)?).await?;
    let n = &rec.content;
    let view = SheetPage {
        id: n.id.clone(),
        reference: n.reference.clone(),
        title: format!("{}{}核查单", kind_zh(n.kind), category_zh(n.category)),
        origin: place(&n.destination),
        fields: fields_of(&rec),
        due: format!(
            "{}{}",
            local(ctx.deadlines.tz, rec.life.due_at),
            if rec.life.due_provisional {
                "（暂定）"
            } else {
                ""
            }
        ),
    };
    Ok(Html(view.render()?))
}

/// How a withdrawal is named: one that reached the destination after its
/// answer (docs/protocol.md §6) is kept on record but changed nothing.
pub(super) fn withdrawal_zh(answered: bool) -> &'static str {
    if answered {
        "撤回（晚于反馈，未生效）"
    } else {
        "撤回"
    }
}
