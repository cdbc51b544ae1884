//! Staff and monitor commands against a running node's desk listener.
//! Every command that prints data has `--json`.

use super::notice_fields::{COLUMNS, notice_from_fields};
use crate::client::{self, Desk};
use crate::config::{Config, resolve};
use crate::domain::{
    Category, Direction, FeedbackResult, NoticeKind, NoticeStatus, ReplySort, Urgency, county_name,
    enum_from_name, mask_id,
};
use crate::pb;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The node's desk URL, https://HOST:PORT.
    #[arg(long, env = "MIGREX_NODE")]
    node: Option<String>,
    /// Staff token.
    #[arg(long, env = "MIGREX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The network CA certificate (PEM) that signed the node's certificate.
    #[arg(long, env = "MIGREX_CA")]
    ca: Option<PathBuf>,
    /// Take --node and --ca from this node's migrex.toml (on the node's own machine).
    #[arg(long, env = "MIGREX_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Conn {
    pub(super) async fn desk(&self) -> Result<Desk> {
        let (node, ca_pem, token) = self.target()?;
        Ok(client::connect(&node, &ca_pem, &token).await?)
    }

    pub(super) async fn stats(&self) -> Result<client::Stats> {
        let (node, ca_pem, token) = self.target()?;
        Ok(client::connect_stats(&node, &ca_pem, &token).await?)
    }

    pub(super) fn json(&self) -> bool {
        self.json
    }

    /// The desk URL, the CA certificate (PEM) and the token.
    fn target(&self) -> Result<(String, String, String)> {
        let (mut node, mut ca) = (self.node.clone(), self.ca.clone());
        if let Some(path) = &self.config {
            let (c, base) = Config::load(path)?;
            node = node.or_else(|| {
                Some(format!(
                    "https://{}",
                    c.desk_listen.replace("0.0.0.0", "127.0.0.1")
                ))
            });
            ca = ca.or_else(|| Some(resolve(&base, &c.tls.ca_cert)));
        }
        let node = node.ok_or_else(|| {
            anyhow!("--node: the desk URL is required (or --config with the node's migrex.toml)")
        })?;
        let ca = ca
            .ok_or_else(|| anyhow!("--ca: the network CA certificate is required (or --config)"))?;
        let token = self
            .token
            .clone()
            .ok_or_else(|| anyhow!("--token: a staff token is required (or set MIGREX_TOKEN)"))?;
        let ca_pem = std::fs::read_to_string(&ca)
            .with_context(|| format!("--ca: cannot read {}", ca.display()))?;
        Ok((node, ca_pem, token))
    }
}

/// A gRPC refusal as one line: the code and the node's message (which names the field).
pub(super) fn status(s: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", s.code(), s.message())
}

#[derive(Subcommand, Debug)]
pub enum NoticeCommand {
    /// Send a notice, or every row of a CSV file (all or nothing).
    #[command(
        after_help = "Examples:\n  migrex notice send --config n/migrex.toml --destination 510116 --kind BIRTH --category NOTIFICATION \\\n      --id-number 510116199503120029 --name 王芳 --hukou 510116 --residence 440303 \\\n      --event-date 2026-10-03 --child-sex MALE --birth-order 1 --place-of-delivery 罗湖医院\n  migrex notice send --config n/migrex.toml --file notices.csv\n\nCSV columns (header row, any order): id, destination, kind, category, urgency, reply_required, id_number, name,\nhukou_district, residence_district, event_date, spouse_id_number, spouse_name, registry_office, gestational_weeks,\nexpected_delivery_on, within_policy, child_sex, birth_order, child_name, place_of_delivery, method, provider, remarks"
    )]
    Send(Box<SendArgs>),
    /// Show one notice with its whole journey.
    Show {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Withdraw a notice this node sent (撤回), until it is answered.
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
    /// MARRIAGE, PREGNANCY, BIRTH or CONTRACEPTION.
    #[arg(long)]
    kind: Option<String>,
    /// NOTIFICATION (通报) or VERIFICATION_REQUEST (协查).
    #[arg(long)]
    category: Option<String>,
    /// NORMAL or URGENT (default: URGENT for pregnancy, NORMAL otherwise).
    #[arg(long)]
    urgency: Option<String>,
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
    /// How many to list (one page).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue a listing: the next-page token the previous page printed.
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  migrex pending --config n/migrex.toml --overdue\n  migrex pending --node https://10.1.2.3:7402 --ca ca.crt --due-within 3 --json"
)]
pub struct PendingArgs {
    /// MARRIAGE, PREGNANCY, BIRTH or CONTRACEPTION.
    #[arg(long)]
    kind: Option<String>,
    /// NOTIFICATION (通报) or VERIFICATION_REQUEST (协查).
    #[arg(long)]
    category: Option<String>,
    /// NORMAL or URGENT.
    #[arg(long)]
    urgency: Option<String>,
    /// Only notices past their deadline (超时).
    #[arg(long)]
    overdue: bool,
    /// Only notices due within this many days.
    #[arg(long, default_value_t = 0)]
    due_within: u32,
    /// How many to list (one page).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue a listing: the next-page token the previous page printed.
    #[arg(long, default_value = "")]
    page_token: String,
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

fn opt_enum<E: Into<i32>>(
    field: &str,
    v: &Option<String>,
    from: fn(&str) -> Option<E>,
    names: &[&str],
) -> Result<i32> {
    match v {
        None => Ok(0),
        Some(s) => Ok(enum_from_name(field, s, from, names)
            .map_err(|e| anyhow!("{e}"))?
            .into()),
    }
}

const KIND_NAMES: &[&str] = &["MARRIAGE", "PREGNANCY", "BIRTH", "CONTRACEPTION"];

pub async fn notice(cmd: NoticeCommand) -> Result<()> {
    match cmd {
        NoticeCommand::Send(a) => send(*a).await,
        NoticeCommand::Show { id, conn } => {
            let n = conn
                .desk()
                .await?
                .get_notice(pb::GetNoticeRequest { id })
                .await
                .map_err(status)?
                .into_inner();
            print_one(&n, conn.json);
            Ok(())
        }
        NoticeCommand::Withdraw { id, reason, conn } => {
            let n = conn
                .desk()
                .await?
                .withdraw_notice(pb::WithdrawNoticeRequest { id, reason })
                .await
                .map_err(status)?
                .into_inner();
            print_one(&n, conn.json);
            Ok(())
        }
    }
}

async fn send(a: SendArgs) -> Result<()> {
    let Some(file) = &a.file else {
        let mut fields: HashMap<&str, Option<String>> = HashMap::new();
        for (k, v) in [
            ("destination", &a.destination),
            ("kind", &a.kind),
            ("category", &a.category),
            ("urgency", &a.urgency),
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
        let n = desk
            .submit_notice(pb::SubmitNoticeRequest {
                notice: Some(notice),
            })
            .await
            .map_err(status)?
            .into_inner();
        print_one(&n, a.conn.json);
        return Ok(());
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(file)
        .with_context(|| format!("--file: cannot read {}", file.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("--file {}: no header row", file.display()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    if let Some(h) = headers.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        bail!(
            "--file {}: unknown column '{h}' (known: {})",
            file.display(),
            COLUMNS.join(", ")
        );
    }
    // Rows the node will judge, and rows refused here already (with their line numbers).
    let mut notices = Vec::new();
    let mut lines = Vec::new();
    let mut refused: Vec<(u64, String)> = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                refused.push((line, format!("not a valid CSV row: {e}")));
                continue;
            }
        };
        let row: HashMap<&str, String> = headers
            .iter()
            .map(String::as_str)
            .zip(rec.iter().map(str::to_string))
            .collect();
        match notice_from_fields(&|k| row.get(k).cloned()) {
            Ok(n) => {
                notices.push(n);
                lines.push(line);
            }
            Err(e) => refused.push((line, e.to_string())),
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
        page_size: a.limit,
        page_token: a.page_token,
        ..Default::default()
    };
    let r = a
        .conn
        .desk()
        .await?
        .list_notices(req)
        .await
        .map_err(status)?
        .into_inner();
    print_list(&r, a.conn.json);
    Ok(())
}

pub async fn pending(a: PendingArgs) -> Result<()> {
    let req = pb::ListPendingRequest {
        kind: opt_enum("--kind", &a.kind, NoticeKind::from_str_name, KIND_NAMES)?,
        category: opt_enum(
            "--category",
            &a.category,
            Category::from_str_name,
            &["NOTIFICATION", "VERIFICATION_REQUEST"],
        )?,
        urgency: opt_enum(
            "--urgency",
            &a.urgency,
            Urgency::from_str_name,
            &["NORMAL", "URGENT"],
        )?,
        overdue_only: a.overdue,
        due_within_days: a.due_within,
        page_size: a.limit,
        page_token: a.page_token,
    };
    let r = a
        .conn
        .desk()
        .await?
        .list_pending(req)
        .await
        .map_err(status)?
        .into_inner();
    print_list(&r, a.conn.json);
    Ok(())
}

pub async fn ack(a: AckArgs) -> Result<()> {
    let n = a
        .conn
        .desk()
        .await?
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: a.id })
        .await
        .map_err(status)?
        .into_inner();
    print_one(&n, a.conn.json);
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
    let n = a
        .conn
        .desk()
        .await?
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: a.id,
            feedback: Some(fb),
        })
        .await
        .map_err(status)?
        .into_inner();
    print_one(&n, a.conn.json);
    Ok(())
}

// --- output ---

/// An instant as staff read it: Beijing time (UTC+8), the timezone of the network.
pub fn local(t: &Option<prost_types::Timestamp>) -> Option<OffsetDateTime> {
    Some(
        OffsetDateTime::from_unix_timestamp(t.as_ref()?.seconds)
            .ok()?
            .to_offset(time::macros::offset!(+8)),
    )
}

/// The local calendar date of an instant, or "" when absent.
pub fn local_day(t: &Option<prost_types::Timestamp>) -> String {
    local(t)
        .map(|d| crate::domain::format_date(d.date()))
        .unwrap_or_default()
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<String> {
    local(t)?
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]+08"
        ))
        .ok()
}

fn name_of<E: TryFrom<i32>>(v: i32, f: fn(&E) -> &'static str) -> &'static str {
    E::try_from(v).as_ref().map(f).unwrap_or("?")
}

pub fn kind_name(v: i32) -> &'static str {
    name_of::<NoticeKind>(v, NoticeKind::as_str_name)
}
pub fn status_name(v: i32) -> &'static str {
    name_of::<NoticeStatus>(v, NoticeStatus::as_str_name)
}
pub fn result_name(v: i32) -> &'static str {
    name_of::<FeedbackResult>(v, FeedbackResult::as_str_name)
}

/// A notice as JSON: enum names, RFC 3339 instants.
pub fn notice_json(n: &pb::Notice) -> Value {
    let rfc = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok())
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    let subject = n.subject.clone().unwrap_or_default();
    let details = match &n.details {
        Some(pb::notice::Details::Marriage(m)) => {
            json!({"registered_on": m.registered_on, "spouse_id_number": m.spouse_id_number, "spouse_name": m.spouse_name, "registry_office": m.registry_office})
        }
        Some(pb::notice::Details::Pregnancy(p)) => {
            json!({"confirmed_on": p.confirmed_on, "gestational_weeks": p.gestational_weeks, "expected_delivery_on": p.expected_delivery_on, "within_policy": p.within_policy})
        }
        Some(pb::notice::Details::Birth(b)) => {
            json!({"born_on": b.born_on, "child_sex": name_of::<crate::domain::Sex>(b.child_sex, crate::domain::Sex::as_str_name), "birth_order": b.birth_order, "child_name": b.child_name, "place_of_delivery": b.place_of_delivery})
        }
        Some(pb::notice::Details::Contraception(c)) => {
            json!({"method": name_of::<crate::domain::ContraceptionMethod>(c.method, crate::domain::ContraceptionMethod::as_str_name), "performed_on": c.performed_on, "provider": c.provider})
        }
        None => Value::Null,
    };
    json!({
        "id": n.id,
        "origin": n.origin,
        "destination": n.destination,
        "kind": kind_name(n.kind),
        "category": name_of::<Category>(n.category, Category::as_str_name),
        "urgency": name_of::<Urgency>(n.urgency, Urgency::as_str_name),
        "reply_required": name_of::<ReplySort>(n.reply_required, ReplySort::as_str_name),
        "subject": {"id_number": subject.id_number, "name": subject.name, "hukou_district": subject.hukou_district, "residence_district": subject.residence_district, "birth_date": subject.birth_date},
        "event_date": n.event_date,
        "details": details,
        "remarks": n.remarks,
        "direction": name_of::<Direction>(n.direction, Direction::as_str_name),
        "status": status_name(n.status),
        "created_at": rfc(&n.created_at),
        "received_at": rfc(&n.received_at),
        "due_at": rfc(&n.due_at),
        "acknowledged_at": rfc(&n.acknowledged_at),
        "acknowledged_by": n.acknowledged_by,
        "feedback": n.feedback.as_ref().map(|f| json!({
            "result": result_name(f.result), "remarks": f.remarks, "corrections": f.corrections,
            "responsible_district": f.responsible_district, "answered_by": f.answered_by, "answered_at": rfc(&f.answered_at)})),
        "timely": n.timely,
        "overdue": n.overdue,
        "withdrawn_at": rfc(&n.withdrawn_at),
        "withdraw_reason": n.withdraw_reason,
        "duplicate_of": (!n.duplicate_of.is_empty()).then_some(&n.duplicate_of),
        "delivery_attempts": n.delivery_attempts,
        "last_error": (!n.last_error.is_empty()).then_some(&n.last_error),
    })
}

fn print_one(n: &pb::Notice, as_json: bool) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&notice_json(n)).expect("json")
        );
        return;
    }
    let s = n.subject.clone().unwrap_or_default();
    let place = |c: &str| format!("{c} {}", county_name(c).unwrap_or(""));
    println!("notice      {}", n.id);
    println!(
        "kind        {} / {} / {}  reply: {}",
        kind_name(n.kind),
        name_of::<Category>(n.category, Category::as_str_name),
        name_of::<Urgency>(n.urgency, Urgency::as_str_name),
        name_of::<ReplySort>(n.reply_required, ReplySort::as_str_name)
    );
    println!(
        "route       {} → {}",
        place(&n.origin),
        place(&n.destination)
    );
    println!(
        "subject     {} {} (户籍 {}, 现居 {})",
        s.name, s.id_number, s.hukou_district, s.residence_district
    );
    println!("event date  {}", n.event_date);
    println!(
        "status      {}{}{}",
        status_name(n.status),
        if n.overdue { "  OVERDUE 超时" } else { "" },
        if n.duplicate_of.is_empty() {
            String::new()
        } else {
            format!("  DUPLICATE of {}", n.duplicate_of)
        }
    );
    for (label, t) in [
        ("created", &n.created_at),
        ("received", &n.received_at),
        ("due", &n.due_at),
        ("signed for", &n.acknowledged_at),
        ("withdrawn", &n.withdrawn_at),
    ] {
        if let Some(t) = ts(t) {
            println!("{label:<12}{t}");
        }
    }
    if !n.acknowledged_by.is_empty() {
        println!("signed by   {}", n.acknowledged_by);
    }
    if let Some(f) = &n.feedback {
        println!(
            "feedback    {} by {} at {}  {}",
            result_name(f.result),
            f.answered_by,
            ts(&f.answered_at).unwrap_or_default(),
            f.remarks
        );
        for (k, v) in &f.corrections {
            println!("  corrected {k} = {v}");
        }
        if !f.responsible_district.is_empty() {
            println!("  responsible district {}", place(&f.responsible_district));
        }
    }
    if let Some(t) = n.timely {
        println!(
            "timely      {}",
            if t { "yes 及时" } else { "no (late) 超时" }
        );
    }
    if !n.last_error.is_empty() {
        println!(
            "delivery    {} attempts, last error: {}",
            n.delivery_attempts, n.last_error
        );
    }
}

fn print_list(r: &pb::ListNoticesResponse, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"notices": r.notices.iter().map(notice_json).collect::<Vec<_>>(), "next_page_token": r.next_page_token})
        );
        return;
    }
    println!(
        "{:<36}  {:<3}  {:<13}  {:<6}  {:<12}  {:<10}  {:<20}  {:<12}  flags",
        "id", "dir", "kind", "cat", "peer", "subject", "id number", "status"
    );
    for n in &r.notices {
        let s = n.subject.clone().unwrap_or_default();
        let dir = if n.direction == Direction::Inbound as i32 {
            "in"
        } else {
            "out"
        };
        let peer = if dir == "in" {
            &n.origin
        } else {
            &n.destination
        };
        let mut flags = vec![];
        if n.overdue {
            flags.push("OVERDUE".to_string());
        }
        if !n.duplicate_of.is_empty() {
            flags.push(format!(
                "DUP-OF {}",
                &n.duplicate_of[n.duplicate_of.len().saturating_sub(8)..]
            ));
        }
        if !n.last_error.is_empty() {
            flags.push(format!("RETRYING({})", n.delivery_attempts));
        }
        let due = ts(&n.due_at)
            .map(|d| format!("due {}", &d[..10]))
            .unwrap_or_default();
        flags.insert(0, due);
        println!(
            "{:<36}  {:<3}  {:<13}  {}  {:<12}  {}  {:<20}  {:<12}  {}",
            n.id,
            dir,
            kind_name(n.kind),
            super::monitor::pad(
                if n.category == Category::VerificationRequest as i32 {
                    "协查"
                } else {
                    "通报"
                },
                6
            ),
            peer,
            super::monitor::pad(&s.name, 10),
            mask_id(&s.id_number),
            status_name(n.status),
            flags.join(" ")
        );
    }
    if r.notices.is_empty() {
        println!("(none)");
    }
    if !r.next_page_token.is_empty() {
        println!("more: --page-token {}", r.next_page_token);
    }
}
