//! Monitor commands: `migrex stats` (the timeliness table of SPEC.md
//! section 4) and `migrex overdue`.

use super::staff::{Conn, kind_name, notice_json, status};
use crate::domain::{Direction, county_name};
use crate::pb;
use crate::stats::kind_label;
use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  migrex stats --config n/migrex.toml --period 2026-10\n  migrex stats --config n/migrex.toml --period 2026-Q3 --direction outbound --by peer,kind --json\n\nINBOUND: how this district answers its peers (what it is assessed on); OUTBOUND: how peers answer it.\nRates are absent (-) when nothing was expected yet, never shown as 0% or 100%."
)]
pub struct StatsArgs {
    /// 2026-10 (month), 2026-Q3 (quarter), 2026 (year), or 2026-10-01..2026-10-31.
    #[arg(long)]
    period: String,
    /// inbound (default) or outbound.
    #[arg(long, default_value = "inbound")]
    direction: String,
    /// Group by peer, kind, or peer,kind.
    #[arg(long, default_value = "")]
    by: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
pub struct OverdueArgs {
    /// inbound, outbound, or both (default).
    #[arg(long, default_value = "both")]
    direction: String,
    /// How many to list (one page).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue a listing: the next-page token the previous page printed.
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    conn: Conn,
}

fn direction(field: &str, s: &str, both: bool) -> Result<i32> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "in" | "inbound" => Direction::Inbound as i32,
        "out" | "outbound" => Direction::Outbound as i32,
        "both" | "" if both => 0,
        other => bail!(
            "{field}: '{other}' is not inbound or outbound{}",
            if both { " or both" } else { "" }
        ),
    })
}

/// How wide a string shows in a terminal: CJK characters take two columns.
fn width(s: &str) -> usize {
    s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum()
}

/// Pads to `w` display columns (left-aligned).
pub fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// The figures of a row from "received" to "not yet due", as shown in tables and reports.
pub fn figure_cells(r: &pb::TimelinessRow) -> Vec<String> {
    vec![
        r.received.to_string(),
        r.receipt_expected.to_string(),
        r.acknowledged.to_string(),
        pct(r.receipt_rate),
        pct(r.timely_receipt_rate),
        r.feedback_expected.to_string(),
        r.answered.to_string(),
        pct(r.feedback_rate),
        pct(r.timely_feedback_rate),
        r.overdue_open.to_string(),
        r.not_yet_due.to_string(),
    ]
}

/// A rate as a percentage, "-" when absent.
pub fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// One row as JSON, with the SPEC's names.
pub fn row_json(r: &pb::TimelinessRow) -> Value {
    json!({
        "peer": (!r.peer.is_empty()).then_some(&r.peer),
        "kind": (r.kind != 0).then(|| kind_name(r.kind)),
        "received": r.received,
        "receipt_expected": r.receipt_expected,
        "acknowledged": r.acknowledged,
        "acknowledged_timely": r.acknowledged_timely,
        "receipt_rate": r.receipt_rate,
        "timely_receipt_rate": r.timely_receipt_rate,
        "feedback_expected": r.feedback_expected,
        "answered": r.answered,
        "answered_timely": r.answered_timely,
        "feedback_rate": r.feedback_rate,
        "timely_feedback_rate": r.timely_feedback_rate,
        "overdue_open": r.overdue_open,
        "not_yet_due": r.not_yet_due,
        "reply_latency_days": {"median": r.reply_latency_median_days, "p90": r.reply_latency_p90_days},
        "delivery_lag_seconds": {"median": r.delivery_lag_median_seconds, "p90": r.delivery_lag_p90_seconds},
    })
}

/// The timeliness table, with Chinese and English column names.
pub fn print_table(rows: &[pb::TimelinessRow]) {
    let headers: [(&str, &str); 15] = [
        ("对方", "peer"),
        ("类别", "kind"),
        ("收到", "received"),
        ("应接收", "rcpt exp"),
        ("已接收", "ack'd"),
        ("接收率", "rcpt rate"),
        ("接收及时率", "timely rcpt"),
        ("应反馈", "fb exp"),
        ("已反馈", "answered"),
        ("反馈率", "fb rate"),
        ("反馈及时率", "timely fb"),
        ("超时未复", "overdue"),
        ("未到期", "not due"),
        ("回复天数", "reply d med/p90"),
        ("传输秒数", "lag s med/p90"),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                if r.peer.is_empty() {
                    "all".into()
                } else {
                    format!("{} {}", r.peer, county_name(&r.peer).unwrap_or(""))
                },
                kind_label(r.kind).to_string(),
            ]
            .into_iter()
            .chain(figure_cells(r))
            .chain([
                format!(
                    "{}/{}",
                    num(r.reply_latency_median_days, 1),
                    num(r.reply_latency_p90_days, 1)
                ),
                format!(
                    "{}/{}",
                    num(r.delivery_lag_median_seconds, 3),
                    num(r.delivery_lag_p90_seconds, 3)
                ),
            ])
            .collect::<Vec<String>>()
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| width(&c[i]))
                .chain([width(headers[i].0), width(headers[i].1)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| pad(v, *w))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.iter().map(|h| h.0).collect()));
    println!("{}", line(headers.iter().map(|h| h.1).collect()));
    for c in &cells {
        println!("{}", line(c.iter().map(String::as_str).collect()));
    }
}

pub async fn stats(a: StatsArgs) -> Result<()> {
    let by: Vec<String> =
        a.by.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
    if let Some(bad) = by.iter().find(|b| *b != "peer" && *b != "kind") {
        bail!("--by: '{bad}' is not peer, kind or peer,kind");
    }
    let req = pb::GetTimelinessRequest {
        period: a.period.clone(),
        direction: direction("--direction", &a.direction, false)?,
        by_peer: by.iter().any(|b| b == "peer"),
        by_kind: by.iter().any(|b| b == "kind"),
    };
    let r = a
        .conn
        .stats()
        .await?
        .get_timeliness(req)
        .await
        .map_err(status)?
        .into_inner();
    if a.conn.json() {
        println!(
            "{}",
            json!({
                "first_day": r.first_day, "last_day": r.last_day,
                "direction": if r.direction == Direction::Outbound as i32 { "OUTBOUND" } else { "INBOUND" },
                "as_of": r.as_of.map(|t| t.seconds),
                "rows": r.rows.iter().map(row_json).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    let dir = if r.direction == Direction::Outbound as i32 {
        "OUTBOUND: how peers answer us"
    } else {
        "INBOUND: how we answer peers"
    };
    println!("timeliness 时效 {}..{}, {dir}", r.first_day, r.last_day);
    print_table(&r.rows);
    Ok(())
}

pub async fn overdue(a: OverdueArgs) -> Result<()> {
    let req = pb::ListOverdueRequest {
        direction: direction("--direction", &a.direction, true)?,
        page_size: a.limit,
        page_token: a.page_token,
    };
    let r = a
        .conn
        .stats()
        .await?
        .list_overdue(req)
        .await
        .map_err(status)?
        .into_inner();
    if a.conn.json() {
        let items: Vec<Value> = r
            .notices
            .iter()
            .map(|o| {
                let mut v = notice_json(o.notice.as_ref().expect("notice"));
                v["days_late"] = json!(o.days_late);
                v
            })
            .collect();
        println!(
            "{}",
            json!({"notices": items, "next_page_token": r.next_page_token})
        );
        return Ok(());
    }
    println!(
        "{}  {}  {}  {}  {}  days late 超时天数",
        pad("id", 36),
        pad("dir", 3),
        pad("kind", 13),
        pad("peer", 14),
        pad("due", 10)
    );
    for o in &r.notices {
        let n = o.notice.as_ref().expect("notice");
        let inbound = n.direction == Direction::Inbound as i32;
        let peer = if inbound { &n.origin } else { &n.destination };
        let due = super::staff::local_day(&n.due_at);
        println!(
            "{}  {}  {}  {}  {}  {}",
            pad(&n.id, 36),
            pad(if inbound { "in" } else { "out" }, 3),
            pad(kind_name(n.kind), 13),
            pad(peer, 14),
            pad(&due, 10),
            o.days_late
        );
    }
    if r.notices.is_empty() {
        println!("(none overdue)");
    }
    if !r.next_page_token.is_empty() {
        println!("more: --page-token {}", r.next_page_token);
    }
    Ok(())
}
