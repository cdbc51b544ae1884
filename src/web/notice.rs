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
use crate::service::proofs::{self, Failure, StepCheck};
use crate::service::{notices, replies};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::header;
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
    /// 签名核验: what the journey's signatures say.
    proof: ProofLine,
}

/// 签名核验 on 通报详情, in one line: every signed step verifies (已验证),
/// or the first that does not and why; the evidence file is offered when
/// any step is signed.
#[derive(Default)]
struct ProofLine {
    verified: bool,
    text: String,
    downloadable: bool,
}

/// A journey step's name as clerks say it.
fn step_zh(step: &str) -> &'static str {
    match step.split(' ').next().unwrap_or_default() {
        "notice" => "通报",
        "ack" => "送达确认",
        "receipt" => "签收",
        "feedback" => "核查反馈",
        "withdrawal" => "撤回",
        "deadline_change" => "时限更新",
        "delivery" => "中转送达",
        "reminder" => "催办",
        _ => "其他步骤",
    }
}

fn failure_zh(f: Option<Failure>) -> &'static str {
    match f {
        Some(Failure::Unsigned) => "对方发来时未签名",
        Some(Failure::WrongSigner) => "签名单位不是该步骤的单位",
        Some(Failure::CertificateMissing) => "未保存签名单位的证书",
        Some(Failure::CertificateRefused) => "签名证书未获本网认证机构认可或已吊销",
        Some(Failure::Altered) | None => "记录与签名时的内容不一致，签名后被改动过",
    }
}

fn proof_line(checks: &[StepCheck]) -> ProofLine {
    let names = |pick: &dyn Fn(&StepCheck) -> bool| {
        checks
            .iter()
            .filter(|c| pick(c))
            .map(|c| step_zh(&c.step))
            .collect::<Vec<_>>()
    };
    let signed = names(&|c| c.failure.is_none() && !c.pending);
    let pending = names(&|c| c.pending);
    let downloadable = checks.iter().any(|c| !c.signer.is_empty());
    if let Some(bad) = checks.iter().find(|c| c.failure.is_some()) {
        let others = checks.iter().filter(|c| c.failure.is_some()).count() - 1;
        return ProofLine {
            verified: false,
            text: format!(
                "未通过：{}——{}{}",
                step_zh(&bad.step),
                failure_zh(bad.kind),
                if others > 0 {
                    format!("（另有{others}步未通过）")
                } else {
                    String::new()
                }
            ),
            downloadable,
        };
    }
    let mut text = if signed.is_empty() {
        String::new()
    } else {
        format!(
            "已验证（{}，共{}步，均有对应单位的签名）",
            signed.join("、"),
            signed.len()
        )
    };
    if !pending.is_empty() {
        if !text.is_empty() {
            text.push('；');
        }
        text.push_str(&format!("本地区的{}待发出，发出时签名", pending.join("、")));
    }
    ProofLine {
        verified: true,
        text,
        downloadable,
    }
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
    view.proof = proof_line(&proofs::checks(&ctx, &staff.caller, rec.id()).await?);
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
        proof: ProofLine::default(),
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
            let mut view = page(&ctx, &staff, &rec, f, Some(error))?;
            view.proof = proof_line(&proofs::checks(&ctx, &staff.caller, rec.id()).await?);
            Ok(Html(view.render()?).into_response())
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

/// The notice's evidence file (证据文件): its journey's signed steps, for
/// `migrex verify` on any machine (the download is audited).
pub(crate) async fn evidence(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?.to_string();
    let file = proofs::download(&ctx, &staff.caller, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"evidence-{id}.json\""),
            ),
        ],
        file.to_bytes(),
    )
        .into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: &str, signer: &str, kind: Option<Failure>, pending: bool) -> StepCheck {
        StepCheck {
            step: step.into(),
            signer: signer.into(),
            failure: kind.map(|k| format!("{k:?}")),
            kind,
            pending,
        }
    }

    #[test]
    fn the_proof_line_names_the_step_that_fails_and_what_waits_to_be_signed() {
        let sent = [
            step("notice", "440303", None, false),
            step("ack", "510116", None, false),
            step("withdrawal 01", "", None, true),
        ];
        let line = proof_line(&sent);
        assert!(line.verified && line.downloadable);
        assert_eq!(
            line.text,
            "已验证（通报、送达确认，共2步，均有对应单位的签名）；本地区的撤回待发出，发出时签名"
        );
        let moved = [
            step("notice", "440303", None, false),
            step("ack", "510116", Some(Failure::Altered), false),
            step("receipt 02", "", Some(Failure::Unsigned), false),
        ];
        let line = proof_line(&moved);
        assert!(!line.verified);
        assert_eq!(
            line.text,
            "未通过：送达确认——记录与签名时的内容不一致，签名后被改动过（另有1步未通过）"
        );
        let waiting = proof_line(&[step("notice", "", None, true)]);
        assert!(waiting.verified && !waiting.downloadable);
        assert_eq!(waiting.text, "本地区的通报待发出，发出时签名");
    }
}
