//! `migrex report`: the monthly assessment report (月度通报) a supervisor
//! hands upward, as CSV (UTF-8 with BOM, opens in Excel) or as one
//! self-contained HTML page (inline SVG chart, no network), built from the
//! node's `Stats` answers — the same figures as `migrex stats` and `/metrics`.

use super::args::{Conn, status};
use super::render::row_json;
use crate::domain::Direction;
use crate::pb;
use crate::report::{
    COLUMNS, MonthRates, MonthlyReport, OverdueLine, ReconciledLine, cells, csv_line, esc,
    html_table, month_label, place, rank, to_csv, to_html, twelve_months,
};
use crate::stats::Period;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  migrex report --config n/migrex.toml --period 2026-10 --format html --out 2026-10.html\n  migrex report --config n/migrex.toml --period 2026-10 --format csv --out 2026-10.csv"
)]
pub struct ReportArgs {
    /// The period reported (usually a month, e.g. 2026-10); the chart shows the 12 months up to its end.
    #[arg(long)]
    period: String,
    /// csv or html.
    #[arg(long, default_value = "html")]
    format: String,
    /// The file to write (required for one node; optional with --nodes).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rank several districts: a TOML file of [[nodes]] with url, token and ca (the CA file, relative to this file).
    #[arg(long)]
    nodes: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
}

async fn gather(a: &ReportArgs) -> Result<MonthlyReport> {
    let period = Period::parse("--period", &a.period).map_err(|e| anyhow::anyhow!("{e}"))?;
    let local = a.conn.local()?;
    let mut stats = a.conn.stats().await?;
    let ask = |period: String, by_peer: bool| pb::GetTimelinessRequest {
        period,
        direction: Direction::Inbound as i32,
        by_peer,
        by_kind: false,
    };
    let summary = stats
        .get_timeliness(ask(a.period.clone(), false))
        .await
        .map_err(status)?
        .into_inner();
    let mut peers = stats
        .get_timeliness(ask(a.period.clone(), true))
        .await
        .map_err(status)?
        .into_inner()
        .rows;
    rank(&mut peers);
    let mut months = Vec::new();
    for m in twelve_months(period.last) {
        let month = month_label(&m);
        let r = stats
            .get_timeliness(ask(month.clone(), false))
            .await
            .map_err(status)?
            .into_inner();
        let row = r.rows.first().cloned().unwrap_or_default();
        months.push(MonthRates {
            month,
            timely_receipt: row.timely_receipt_rate,
            timely_feedback: row.timely_feedback_rate,
        });
    }
    let overdue = stats
        .list_overdue(pb::ListOverdueRequest {
            direction: Direction::Inbound as i32,
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .notices
        .into_iter()
        .map(|o| {
            let n = o.notice.unwrap_or_default();
            OverdueLine {
                due: local.day(&n.due_at),
                id: n.id,
                peer: n.origin,
                kind: n.kind,
                days_late: o.days_late,
            }
        })
        .collect();
    let at = |t: Option<prost_types::Timestamp>| {
        t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
    };
    let reconciled = stats
        .list_reconciliations(pb::ListReconciliationsRequest {
            period: a.period.clone(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .reconciliations
        .into_iter()
        .map(|r| {
            ReconciledLine::new(
                local.0,
                (r.peer, r.period),
                at(r.checked_at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                r.divergent,
                at(r.agreed_at),
            )
        })
        .collect();
    Ok(MonthlyReport {
        reconciled,
        district: summary.district.clone(),
        made_on: local.day(&summary.as_of),
        first_day: summary.first_day,
        last_day: summary.last_day,
        summary: summary.rows.first().cloned().unwrap_or_default(),
        peers,
        months,
        overdue,
    })
}

pub async fn report(a: ReportArgs) -> Result<()> {
    let format = a.format.to_ascii_lowercase();
    if format != "csv" && format != "html" {
        bail!("--format: '{}' is not csv or html", a.format);
    }
    if let Some(nodes) = &a.nodes {
        return ranking(&a, nodes, &format).await;
    }
    let Some(out) = a.out.clone() else {
        bail!("--out: the file to write is required");
    };
    eprintln!("gathering figures for {} …", a.period);
    let r = gather(&a).await?;
    let text = if format == "csv" {
        to_csv(&r)
    } else {
        to_html(&r)
    };
    std::fs::write(&out, text).with_context(|| format!("--out: cannot write {}", out.display()))?;
    if a.conn.json {
        println!(
            "{}",
            serde_json::json!({"out": out, "first_day": r.first_day, "last_day": r.last_day, "summary": row_json(&r.summary)})
        );
    } else {
        println!(
            "report {}..{} written to {}",
            r.first_day,
            r.last_day,
            out.display()
        );
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesFile {
    nodes: Vec<NodeEntry>,
}

#[derive(serde::Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    url: String,
    token: String,
    ca: String,
}

/// Asks one node for its figures; the error says why it did not answer.
async fn ask_node(
    n: NodeEntry,
    base: PathBuf,
    period: String,
) -> Result<(String, pb::TimelinessRow)> {
    let ca = crate::config::resolve(&base, &n.ca);
    let ca_pem = std::fs::read_to_string(&ca).with_context(|| format!("ca {}", ca.display()))?;
    let fut = async {
        let mut stats = crate::client::connect_stats(&n.url, &ca_pem, &n.token).await?;
        let r = stats
            .get_timeliness(pb::GetTimelinessRequest {
                period,
                direction: Direction::Inbound as i32,
                by_peer: false,
                by_kind: false,
            })
            .await
            .map_err(status)?
            .into_inner();
        anyhow::Ok((r.district, r.rows.first().cloned().unwrap_or_default()))
    };
    tokio::time::timeout(std::time::Duration::from_secs(15), fut)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 15 s"))?
}

/// One ranking of several districts for a period, the way a city or
/// province compares them; nodes that do not answer are named.
async fn ranking(a: &ReportArgs, path: &std::path::Path, format: &str) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--nodes: cannot read {}", path.display()))?;
    let file: NodesFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("--nodes {}: {e}", path.display()))?;
    if file.nodes.is_empty() {
        bail!("--nodes {}: no [[nodes]] in it", path.display());
    }
    let base = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    eprintln!("asking {} nodes for {} …", file.nodes.len(), a.period);
    // All nodes at once, each with its own timeout.
    let tasks: Vec<_> = file
        .nodes
        .iter()
        .map(|n| tokio::spawn(ask_node(n.clone(), base.clone(), a.period.clone())))
        .collect();
    let mut ranked = Vec::new();
    let mut silent = Vec::new();
    for (n, task) in file.nodes.iter().zip(tasks) {
        match task.await {
            Ok(Ok(x)) => ranked.push(x),
            Ok(Err(e)) => silent.push((n.url.clone(), format!("{e:#}"))),
            Err(e) => silent.push((n.url.clone(), e.to_string())),
        }
    }
    let key = |r: &pb::TimelinessRow| {
        (
            r.timely_feedback_rate.unwrap_or(-1.0),
            r.feedback_rate.unwrap_or(-1.0),
            r.timely_receipt_rate.unwrap_or(-1.0),
            r.receipt_rate.unwrap_or(-1.0),
        )
    };
    ranked.sort_by(|x, y| {
        key(&y.1)
            .partial_cmp(&key(&x.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .enumerate()
        .map(|(i, (d, r))| [vec![(i + 1).to_string()], cells(r, &place(d))].concat())
        .collect();
    let mut headers = vec!["名次 rank"];
    headers.extend(COLUMNS);
    headers[1] = "地区 district";
    if let Some(out) = &a.out {
        let text = if format == "csv" {
            let mut s = String::from("\u{feff}");
            csv_line(&mut s, &[format!("地区排名 district ranking {}", a.period)]);
            csv_line(
                &mut s,
                &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            );
            for r in &rows {
                csv_line(&mut s, r);
            }
            for (url, e) in &silent {
                csv_line(&mut s, &["未应答 no answer".into(), url.clone(), e.clone()]);
            }
            s
        } else {
            let silent_rows: Vec<Vec<String>> = silent
                .iter()
                .map(|(u, e)| vec![u.clone(), e.clone()])
                .collect();
            format!(
                "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>地区排名 {p}</title><style>body{{font-family:sans-serif;margin:24px}}table{{border-collapse:collapse;font-size:13px}}th,td{{border:1px solid #bbb;padding:4px 8px}}</style></head><body><h1>地区排名 District ranking {p}</h1>{t}<h2>未应答 Nodes that did not answer</h2>{s}</body></html>",
                p = esc(&a.period),
                t = html_table(&headers, &rows),
                s = html_table(&["节点 node", "原因 reason"], &silent_rows)
            )
        };
        std::fs::write(out, text)
            .with_context(|| format!("--out: cannot write {}", out.display()))?;
    }
    if a.conn.json {
        println!(
            "{}",
            serde_json::json!({
                "period": a.period,
                "ranking": ranked.iter().map(|(d, r)| { let mut v = row_json(r); v["district"] = serde_json::json!(d); v }).collect::<Vec<_>>(),
                "no_answer": silent.iter().map(|(u, e)| serde_json::json!({"url": u, "error": e})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "地区排名 district ranking {} (INBOUND: how each district answered its peers)",
            a.period
        );
        for r in &rows {
            println!(
                "{:>3}. {}  received {}  接收率 {}  接收及时率 {}  反馈率 {}  反馈及时率 {}  超时未复 {}",
                r[0],
                super::render::pad(&r[1], 16),
                r[2],
                r[5],
                r[6],
                r[9],
                r[10],
                r[11]
            );
        }
        for (url, e) in &silent {
            println!("  no answer 未应答: {url} — {e}");
        }
    }
    if !silent.is_empty() {
        eprintln!(
            "warning: {} of {} nodes did not answer; they are not in the ranking",
            silent.len(),
            file.nodes.len()
        );
    }
    Ok(())
}
