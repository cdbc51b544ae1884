//! `migrex notice send|show|withdraw` and `migrex notices`: registering
//! notices (one, or every row of a CSV file, all or nothing), looking them up.

use super::args::{ClassArgs, Conn, KIND_NAMES, PageArgs, opt_enum, status};
use crate::domain::{Direction, NoticeKind, NoticeStatus};
use crate::import::notice_from_fields;
use crate::pb;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum NoticeCommand {
    /// Send a notice, or every row of a CSV file (all or nothing).
    #[command(
        after_help = "Examples:\n  migrex notice send --config n/migrex.toml --destination 510116 --kind BIRTH --category NOTIFICATION \\\n      --id-number 510116199503120029 --name 王芳 --hukou 510116 --residence 440303 \\\n      --event-date 2026-10-03 --child-sex MALE --birth-order 1 --place-of-delivery 罗湖医院\n  migrex notice send --config n/migrex.toml --file notices.csv\n\nCSV columns (header row, any order): id, destination, kind, category, urgency, reply_required, id_number, name,\nhukou_district, residence_district, event_date, spouse_id_number, spouse_name, registry_office, gestational_weeks,\nexpected_delivery_on, within_policy, child_sex, birth_order, child_name, place_of_delivery, method, provider, remarks"
    )]
    Send(Box<SendArgs>),
    /// Show one notice with its whole journey.
    #[command(
        after_help = "Examples:\n  migrex notice show --config ./luohu/migrex.toml 0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11\n  migrex notice show --node https://node.luohu.example:7402 --ca ca.crt 0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11 --json\n  migrex notice show --config ./luohu/migrex.toml --verify 0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11"
    )]
    Show {
        id: String,
        /// Check every signature of the notice's journey (notice,
        /// acknowledgement, each reply) against what this node keeps, and
        /// say which step fails. Reads the node's own database: needs --config.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Write the evidence file of a notice's journey: every step's signed
    /// form, its proof and the signers' certificates, for `migrex verify`
    /// on any machine. It holds the person's details: keep it as such.
    #[command(
        after_help = "Example:\n  migrex notice evidence --config ./luohu/migrex.toml 0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11 --out 0193a5c2-evidence.json\n  migrex verify 0193a5c2-evidence.json --ca ca.crt"
    )]
    Evidence {
        id: String,
        /// The node's migrex.toml (the evidence is read from its database).
        #[arg(long)]
        config: PathBuf,
        /// The file to write (mode 0600); it must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Withdraw a notice this node sent (撤回), until it is answered.
    #[command(
        after_help = "Example:\n  migrex notice withdraw --config ./luohu/migrex.toml 0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11 --reason \"sent to the wrong district\""
    )]
    Withdraw {
        id: String,
        /// Why it is withdrawn (shown to the destination).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// A CSV file of notices (UTF-8, header row); nothing is stored unless every row is valid.
    #[arg(long, conflicts_with = "destination")]
    file: Option<PathBuf>,
    /// Check every row and report, store nothing.
    #[arg(long)]
    dry_run: bool,
    /// The district the notice goes to (6, 9 or 12 digits).
    #[arg(long)]
    destination: Option<String>,
    #[command(flatten)]
    class: ClassArgs,
    /// RECEIPT or FEEDBACK (default: the reply policy).
    #[arg(long)]
    reply_required: Option<String>,
    /// The person's 18-character citizen ID number (身份证号).
    #[arg(long)]
    id_number: Option<String>,
    /// The person's name (姓名).
    #[arg(long)]
    name: Option<String>,
    /// Hukou district (户籍地).
    #[arg(long)]
    hukou: Option<String>,
    /// Residence district (现居住地).
    #[arg(long)]
    residence: Option<String>,
    /// The event's date: registered_on, confirmed_on, born_on or performed_on.
    #[arg(long)]
    event_date: Option<String>,
    /// Marriage: the spouse's ID number.
    #[arg(long)]
    spouse_id_number: Option<String>,
    /// Marriage: the spouse's name.
    #[arg(long)]
    spouse_name: Option<String>,
    /// Marriage: the registry office (登记机关).
    #[arg(long)]
    registry_office: Option<String>,
    /// Pregnancy: weeks of gestation (孕周).
    #[arg(long)]
    gestational_weeks: Option<String>,
    /// Pregnancy: expected delivery date, YYYY-MM-DD.
    #[arg(long)]
    expected_delivery_on: Option<String>,
    /// Pregnancy: true or false (政策内).
    #[arg(long)]
    within_policy: Option<String>,
    /// Birth: MALE or FEMALE.
    #[arg(long)]
    child_sex: Option<String>,
    /// Birth: 1 for the first child, 2 for the second …
    #[arg(long)]
    birth_order: Option<String>,
    /// Birth: the child's name, if given.
    #[arg(long)]
    child_name: Option<String>,
    /// Birth: where the child was born.
    #[arg(long)]
    place_of_delivery: Option<String>,
    /// Contraception method, e.g. IUD_INSERTION.
    #[arg(long)]
    method: Option<String>,
    /// Contraception: who performed it.
    #[arg(long)]
    provider: Option<String>,
    /// Free text (备注).
    #[arg(long)]
    remarks: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
pub struct NoticesArgs {
    /// in (inbound) or out (outbound).
    #[arg(long)]
    direction: Option<String>,
    /// QUEUED, DELIVERED, PENDING, ACKNOWLEDGED, ANSWERED or WITHDRAWN.
    #[arg(long)]
    status: Option<String>,
    /// MARRIAGE, PREGNANCY, BIRTH or CONTRACEPTION.
    #[arg(long)]
    kind: Option<String>,
    /// The other district, or a prefix of it.
    #[arg(long)]
    peer: Option<String>,
    /// A person's ID number: their history.
    #[arg(long)]
    subject: Option<String>,
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    conn: Conn,
}

pub async fn notice(cmd: NoticeCommand) -> Result<()> {
    match cmd {
        NoticeCommand::Send(a) => send(*a).await,
        NoticeCommand::Show {
            id,
            verify: true,
            conn,
        } => super::proofs::verify(&id, &conn).await,
        NoticeCommand::Evidence { id, config, out } => {
            super::proofs::evidence(&id, &config, &out).await
        }
        NoticeCommand::Show { id, conn, .. } => {
            let answer = conn
                .desk()
                .await?
                .get_notice(pb::GetNoticeRequest { id })
                .await;
            conn.show_one(answer)?;
            Ok(())
        }
        NoticeCommand::Withdraw { id, reason, conn } => {
            let answer = conn
                .desk()
                .await?
                .withdraw_notice(pb::WithdrawNoticeRequest { id, reason })
                .await;
            conn.show_one(answer)?;
            Ok(())
        }
    }
}

async fn send(a: SendArgs) -> Result<()> {
    let Some(file) = &a.file else {
        let mut fields: HashMap<&str, Option<String>> = HashMap::new();
        for (k, v) in [
            ("destination", &a.destination),
            ("kind", &a.class.kind),
            ("category", &a.class.category),
            ("urgency", &a.class.urgency),
            ("reply_required", &a.reply_required),
            ("id_number", &a.id_number),
            ("name", &a.name),
            ("hukou_district", &a.hukou),
            ("residence_district", &a.residence),
            ("event_date", &a.event_date),
            ("spouse_id_number", &a.spouse_id_number),
            ("spouse_name", &a.spouse_name),
            ("registry_office", &a.registry_office),
            ("gestational_weeks", &a.gestational_weeks),
            ("expected_delivery_on", &a.expected_delivery_on),
            ("within_policy", &a.within_policy),
            ("child_sex", &a.child_sex),
            ("birth_order", &a.birth_order),
            ("child_name", &a.child_name),
            ("place_of_delivery", &a.place_of_delivery),
            ("method", &a.method),
            ("provider", &a.provider),
            ("remarks", &a.remarks),
        ] {
            fields.insert(k, v.clone());
        }
        let notice = notice_from_fields(&|k| fields.get(k).cloned().flatten())
            .map_err(|e| anyhow!("--{}: {}", e.field.replace('_', "-"), e.rule))?;
        let mut desk = a.conn.desk().await?;
        if a.dry_run {
            let r = desk
                .submit_notices(pb::SubmitNoticesRequest {
                    notices: vec![notice],
                    validate_only: true,
                })
                .await
                .map_err(status)?
                .into_inner();
            if let Some(e) = r.results.first().and_then(|x| x.error.as_ref()) {
                bail!("{}", e.message);
            }
            println!("valid; nothing sent (--dry-run)");
            return Ok(());
        }
        let answer = desk
            .submit_notice(pb::SubmitNoticeRequest {
                notice: Some(notice),
            })
            .await;
        a.conn.show_one(answer)?;
        return Ok(());
    };
    let bytes =
        std::fs::read(file).with_context(|| format!("--file: cannot read {}", file.display()))?;
    let is_xlsx = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    let table = if is_xlsx {
        crate::import::read_xlsx(&bytes)
    } else {
        crate::import::read_csv(&bytes)
    }
    .map_err(|e| anyhow::anyhow!("--file {}: {e}", file.display()))?;
    // Rows the node will judge, and rows refused here already (with their line numbers).
    let mut notices = Vec::new();
    let mut lines = Vec::new();
    let mut refused: Vec<(u64, String)> = Vec::new();
    for row in crate::import::rows(&table) {
        match row.notice {
            Ok(n) => {
                notices.push(n);
                lines.push(row.line);
            }
            Err(e) => refused.push((
                row.line,
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }
    let total = lines.len() + refused.len();
    eprintln!("checking {total} rows of {} …", file.display());
    let mut desk = a.conn.desk().await?;
    let validate_only = a.dry_run || !refused.is_empty();
    let mut committed = false;
    let mut ids = Vec::new();
    for chunk in notices.chunks(10_000).zip(lines.chunks(10_000)) {
        let r = desk
            .submit_notices(pb::SubmitNoticesRequest {
                notices: chunk.0.to_vec(),
                validate_only: validate_only || notices.len() > 10_000,
            })
            .await
            .map_err(status)?
            .into_inner();
        for res in r.results {
            let line = chunk.1[res.index as usize];
            match res.error {
                Some(e) => refused.push((line, e.message)),
                None => ids.push((line, res.notice_id)),
            }
        }
        committed |= r.committed;
    }
    if notices.len() > 10_000 && refused.is_empty() && !a.dry_run {
        bail!(
            "--file: {} rows; send at most 10000 per file so that the import stays all-or-nothing",
            notices.len()
        );
    }
    refused.sort();
    if a.conn.json {
        println!(
            "{}",
            json!({
                "rows": total,
                "accepted": if committed { ids.len() } else { 0 },
                "valid": ids.len(),
                "refused": refused.iter().map(|(l, m)| json!({"line": l, "reason": m})).collect::<Vec<_>>(),
                "committed": committed,
                "notices": ids.iter().map(|(l, id)| json!({"line": l, "id": id})).collect::<Vec<_>>(),
            })
        );
    } else {
        for (line, reason) in &refused {
            println!("line {line}: refused: {reason}");
        }
        if committed {
            println!(
                "{} rows: all {} accepted and queued for delivery",
                total,
                ids.len()
            );
        } else {
            println!(
                "{} rows: {} valid, {} refused; nothing was sent{}",
                total,
                ids.len(),
                refused.len(),
                if a.dry_run {
                    " (--dry-run)"
                } else {
                    " (fix the refused rows and send the file again)"
                }
            );
        }
    }
    if !refused.is_empty() {
        bail!(
            "--file: {} of {total} rows refused; nothing was imported",
            refused.len()
        );
    }
    Ok(())
}

pub async fn notices(a: NoticesArgs) -> Result<()> {
    let direction = match a
        .direction
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => 0,
        Some("in" | "inbound") => Direction::Inbound as i32,
        Some("out" | "outbound") => Direction::Outbound as i32,
        Some(other) => bail!("--direction: '{other}' is not in or out"),
    };
    let req = pb::ListNoticesRequest {
        direction,
        status: opt_enum(
            "--status",
            &a.status,
            NoticeStatus::from_str_name,
            &[
                "QUEUED",
                "DELIVERED",
                "PENDING",
                "ACKNOWLEDGED",
                "ANSWERED",
                "WITHDRAWN",
            ],
        )?,
        kind: opt_enum("--kind", &a.kind, NoticeKind::from_str_name, KIND_NAMES)?,
        peer: a.peer.unwrap_or_default(),
        subject_id_number: a.subject.unwrap_or_default(),
        page_size: a.page.limit,
        page_token: a.page.page_token,
        ..Default::default()
    };
    let answer = a.conn.desk().await?.list_notices(req).await;
    a.conn.show_list(answer)?;
    Ok(())
}
