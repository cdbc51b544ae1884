//! `migrex pending`, `migrex ack`, `migrex feedback`: the inbox of
//! verification requests and notices (待办), signing for them (签收) and
//! answering them (核查反馈).

use super::args::{ClassArgs, Conn, KIND_NAMES, PageArgs, opt_enum};
use crate::domain::{Category, FeedbackResult, NoticeKind, Urgency, enum_from_name};
use crate::pb;
use anyhow::{Result, anyhow};
use clap::Args;
use std::collections::HashMap;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  migrex pending --config n/migrex.toml --overdue\n  migrex pending --node https://10.1.2.3:7402 --ca ca.crt --due-within 3 --json"
)]
pub struct PendingArgs {
    #[command(flatten)]
    class: ClassArgs,
    /// Only notices past their deadline (超时).
    #[arg(long)]
    overdue: bool,
    /// Only notices due within this many days.
    #[arg(long, default_value_t = 0)]
    due_within: u32,
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
pub struct AckArgs {
    /// The notice id.
    id: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  migrex feedback ID --result confirmed --remarks 已入户核实\n  migrex feedback ID --result corrected --correct name=王芳芳 --correct birth.born_on=2026-10-04\n  migrex feedback ID --result not-responsible --responsible-district 510104"
)]
pub struct FeedbackArgs {
    /// The notice id.
    id: String,
    /// confirmed (核实无误), corrected (核实有误), not-found (查无此人), not-responsible (不属本辖区).
    #[arg(long)]
    result: String,
    /// Free text (备注).
    #[arg(long, default_value = "")]
    remarks: String,
    /// A corrected field, FIELD=VALUE (repeatable; for --result corrected).
    #[arg(long = "correct")]
    corrections: Vec<String>,
    /// The district actually responsible (for --result not-responsible).
    #[arg(long, default_value = "")]
    responsible_district: String,
    #[command(flatten)]
    conn: Conn,
}

pub async fn pending(a: PendingArgs) -> Result<()> {
    let req = pb::ListPendingRequest {
        kind: opt_enum(
            "--kind",
            &a.class.kind,
            NoticeKind::from_str_name,
            KIND_NAMES,
        )?,
        category: opt_enum(
            "--category",
            &a.class.category,
            Category::from_str_name,
            &["NOTIFICATION", "VERIFICATION_REQUEST"],
        )?,
        urgency: opt_enum(
            "--urgency",
            &a.class.urgency,
            Urgency::from_str_name,
            &["NORMAL", "URGENT"],
        )?,
        overdue_only: a.overdue,
        due_within_days: a.due_within,
        page_size: a.page.limit,
        page_token: a.page.page_token,
    };
    let answer = a.conn.desk().await?.list_pending(req).await;
    a.conn.show_list(answer)?;
    Ok(())
}

pub async fn ack(a: AckArgs) -> Result<()> {
    let answer = a
        .conn
        .desk()
        .await?
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: a.id })
        .await;
    a.conn.show_one(answer)?;
    Ok(())
}

pub async fn feedback(a: FeedbackArgs) -> Result<()> {
    let result = enum_from_name(
        "--result",
        &a.result,
        FeedbackResult::from_str_name,
        &["confirmed", "corrected", "not-found", "not-responsible"],
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut corrections = HashMap::new();
    for c in &a.corrections {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow!("--correct: '{c}' is not FIELD=VALUE"))?;
        corrections.insert(k.trim().to_string(), v.trim().to_string());
    }
    let fb = pb::Feedback {
        result: result as i32,
        remarks: a.remarks,
        corrections,
        responsible_district: a.responsible_district,
        ..Default::default()
    };
    let answer = a
        .conn
        .desk()
        .await?
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: a.id,
            feedback: Some(fb),
        })
        .await;
    a.conn.show_one(answer)?;
    Ok(())
}
