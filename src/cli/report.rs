//! `migrex report`: the monthly assessment report (月度通报) a supervisor
//! hands upward, as CSV (UTF-8 with BOM, opens in Excel) or as one
//! self-contained HTML page (inline SVG chart, no network), built from the
//! node's `Stats` answers — the same figures as `migrex stats` and `/metrics`.

use super::args::{Conn, status};
use super::render::{Local, figure_cells, kind_name, pct, row_json};
use crate::domain::{Direction, county_name};
use crate::pb;
use crate::stats::Period;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::fmt::Write as _;
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

/// What a report shows; gathered first, then written in either format.
struct Report {
    first_day: String,
    last_day: String,
    summary: pb::TimelinessRow,
    peers: Vec<pb::TimelinessRow>,
    months: Vec<(String, Option<f64>, Option<f64>)>,
    overdue: Vec<pb::OverdueNotice>,
    local: Local,
}

fn place(code: &str) -> String {
    format!("{code} {}", county_name(code).unwrap_or(""))
}

const COLUMNS: [&str; 12] = [
    "对方 peer",
    "收到 received",
    "应接收 receipt expected",
    "已接收 acknowledged",
    "接收率 receipt rate",
    "接收及时率 timely receipt rate",
    "应反馈 feedback expected",
    "已反馈 answered",
    "反馈率 feedback rate",
    "反馈及时率 timely feedback rate",
    "超时未复 overdue open",
    "未到期 not yet due",
];

fn cells(r: &pb::TimelinessRow, peer: &str) -> Vec<String> {
    [vec![peer.to_string()], figure_cells(r)].concat()
}

async fn gather(a: &ReportArgs) -> Result<Report> {
    let period = Period::parse("--period", &a.period).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    // Ranked by timely feedback rate, then timely receipt rate; rows without a rate last.
    let key = |r: &pb::TimelinessRow| {
        (
            r.timely_feedback_rate.unwrap_or(-1.0),
            r.timely_receipt_rate.unwrap_or(-1.0),
        )
    };
    peers.sort_by(|x, y| {
        key(y)
            .partial_cmp(&key(x))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut months = Vec::new();
    let (mut y, mut m) = (period.last.year(), period.last.month() as i32);
    for _ in 0..12 {
        let label = format!("{y}-{m:02}");
        let r = stats
            .get_timeliness(ask(label.clone(), false))
            .await
            .map_err(status)?
            .into_inner();
        let row = r.rows.first().cloned().unwrap_or_default();
        months.push((label, row.timely_receipt_rate, row.timely_feedback_rate));
        (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    }
    months.reverse();
    let overdue = stats
        .list_overdue(pb::ListOverdueRequest {
            direction: Direction::Inbound as i32,
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .notices;
    Ok(Report {
        local: a.conn.local()?,
        first_day: summary.first_day,
        last_day: summary.last_day,
        summary: summary.rows.first().cloned().unwrap_or_default(),
        peers,
        months,
        overdue,
    })
}

fn csv_line(out: &mut String, cells: &[String]) {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

fn overdue_cells(o: &pb::OverdueNotice, local: Local) -> Vec<String> {
    let n = o.notice.clone().unwrap_or_default();
    let due = local.day(&n.due_at);
    vec![
        n.id,
        place(&n.origin),
        kind_name(n.kind).to_string(),
        due,
        o.days_late.to_string(),
    ]
}

const OVERDUE_COLUMNS: [&str; 5] = [
    "编号 notice id",
    "来自 from",
    "类别 kind",
    "时限 due",
    "超时天数 days late",
];

fn to_csv(r: &Report) -> String {
    let mut out = String::from("\u{feff}");
    csv_line(
        &mut out,
        &[format!(
            "月度通报 assessment report {}..{} (INBOUND: how this district answers its peers)",
            r.first_day, r.last_day
        )],
    );
    out.push_str("\r\n");
    csv_line(&mut out, &COLUMNS.map(String::from));
    csv_line(&mut out, &cells(&r.summary, "合计 all"));
    for p in &r.peers {
        csv_line(&mut out, &cells(p, &place(&p.peer)));
    }
    out.push_str("\r\n");
    csv_line(
        &mut out,
        &[
            "月份 month".into(),
            "接收及时率 timely receipt rate".into(),
            "反馈及时率 timely feedback rate".into(),
        ],
    );
    for (m, rr, fr) in &r.months {
        csv_line(&mut out, &[m.clone(), pct(*rr), pct(*fr)]);
    }
    out.push_str("\r\n");
    csv_line(&mut out, &OVERDUE_COLUMNS.map(String::from));
    for o in &r.overdue {
        csv_line(&mut out, &overdue_cells(o, r.local));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of the two monthly timeliness rates, as inline SVG.
fn chart(months: &[(String, Option<f64>, Option<f64>)]) -> String {
    let (w, h, left, top, bottom) = (720.0, 260.0, 48.0, 16.0, 40.0);
    let plot_h = h - top - bottom;
    let step = (w - left - 16.0) / (months.len().max(2) - 1) as f64;
    let x = |i: usize| left + step * i as f64;
    let y = |v: f64| top + plot_h * (1.0 - v);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"monthly timeliness\">"
    );
    for pctl in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"1\"/>",
            w - 16.0,
            y(pctl),
            y(pctl),
            if pctl == 0.9 { "#d33" } else { "#ddd" }
        );
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{:.0}%</text>",
            left - 6.0,
            y(pctl) + 4.0,
            pctl * 100.0
        );
    }
    for (i, (m, _, _)) in months.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - bottom + 18.0,
            esc(&m[2..])
        );
    }
    for (series, color, pick) in [
        ("接收及时率 timely receipt", "#1f77b4", 1usize),
        ("反馈及时率 timely feedback", "#2ca02c", 2usize),
    ] {
        let points: Vec<(f64, f64)> = months
            .iter()
            .enumerate()
            .filter_map(|(i, m)| if pick == 1 { m.1 } else { m.2 }.map(|v| (x(i), y(v))))
            .collect();
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|(a, b)| format!("{a:.1},{b:.1}"))
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        // Feedback points hollow and larger, so that equal rates do not hide each other.
        let (radius, fill) = if pick == 1 {
            (3.5, color)
        } else {
            (5.5, "none")
        };
        for (a, b) in &points {
            let _ = write!(
                svg,
                "<circle cx=\"{a:.1}\" cy=\"{b:.1}\" r=\"{radius}\" fill=\"{fill}\" stroke=\"{color}\" stroke-width=\"2\"><title>{series}</title></circle>"
            );
        }
        let ly = h - 6.0;
        let lx = if pick == 1 { left } else { left + 260.0 };
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{ly}\" font-size=\"12\">{series}</text>",
            ly - 6.0,
            lx + 16.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn html_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            let _ = write!(t, "<td>{}</td>", esc(c));
        }
        t.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            t,
            "<tr><td colspan=\"{}\">(none 无)</td></tr>",
            headers.len()
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn to_html(r: &Report) -> String {
    let s = &r.summary;
    let tile = |label: &str, v: String| {
        format!(
            "<div class=\"tile\"><div class=\"v\">{}</div><div class=\"l\">{}</div></div>",
            esc(&v),
            esc(label)
        )
    };
    let tiles = [
        tile("收到 received", s.received.to_string()),
        tile("接收率 receipt rate", pct(s.receipt_rate)),
        tile("接收及时率 timely receipt", pct(s.timely_receipt_rate)),
        tile("反馈率 feedback rate", pct(s.feedback_rate)),
        tile("反馈及时率 timely feedback", pct(s.timely_feedback_rate)),
        tile("超时未复 overdue open", s.overdue_open.to_string()),
    ]
    .join("");
    let peers: Vec<Vec<String>> = r
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| [vec![(i + 1).to_string()], cells(p, &place(&p.peer))].concat())
        .collect();
    let mut peer_headers = vec!["名次 rank"];
    peer_headers.extend(COLUMNS);
    let overdue: Vec<Vec<String>> = r
        .overdue
        .iter()
        .map(|o| overdue_cells(o, r.local))
        .collect();
    format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>月度通报 {first}..{last}</title><style>\
body{{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:24px;color:#222}}h1{{font-size:22px}}h2{{font-size:17px;margin-top:28px}}\
.tiles{{display:flex;gap:12px;flex-wrap:wrap}}.tile{{border:1px solid #ccc;border-radius:6px;padding:10px 14px;min-width:120px}}.v{{font-size:22px;font-weight:bold}}.l{{font-size:12px;color:#555}}\
table{{border-collapse:collapse;font-size:13px}}th,td{{border:1px solid #bbb;padding:4px 8px;text-align:right}}th{{background:#f2f2f2}}td:first-child,th:first-child{{text-align:left}}\
@media print{{body{{margin:8mm}}}}</style></head><body>\
<h1>流动人口信息交换 月度通报 — assessment report {first} .. {last}</h1>\
<p>INBOUND: how this district answered its peers. Rates shown as - had nothing to measure. 比率为“-”表示无应答对象。</p>\
<h2>汇总 Summary</h2><div class=\"tiles\">{tiles}</div>\
<h2>按对方地区排名 Peers ranked by timely feedback rate</h2>{peers}\
<h2>近12个月及时率 Timeliness over the last 12 months</h2>{chart}\
<h2>超时未复 Overdue without reply</h2>{overdue}\
</body></html>",
        first = esc(&r.first_day),
        last = esc(&r.last_day),
        peers = html_table(&peer_headers, &peers),
        chart = chart(&r.months),
        overdue = html_table(&OVERDUE_COLUMNS, &overdue),
    )
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
