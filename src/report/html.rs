//! The report as one self-contained HTML page (styles inline, the chart as
//! inline SVG: it opens from a file, with no network).

use super::{COLUMNS, MonthRates, MonthlyReport, OVERDUE_COLUMNS, cells, overdue_cells, pct, zh};
use std::fmt::Write as _;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of the two monthly timeliness rates, as inline SVG.
pub fn chart(months: &[MonthRates]) -> String {
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
    for (i, m) in months.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - bottom + 18.0,
            esc(m.month.get(2..).unwrap_or(&m.month))
        );
    }
    for (series, color, pick) in [
        ("接收及时率", "#1f77b4", 1usize),
        ("反馈及时率", "#2ca02c", 2usize),
    ] {
        let points: Vec<(f64, f64)> = months
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                if pick == 1 {
                    m.timely_receipt
                } else {
                    m.timely_feedback
                }
                .map(|v| (x(i), y(v)))
            })
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

pub fn html_table(headers: &[&str], rows: &[Vec<String>]) -> String {
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
        let _ = write!(t, "<tr><td colspan=\"{}\">无</td></tr>", headers.len());
    }
    t.push_str("</tbody></table>");
    t
}

pub fn to_html(r: &MonthlyReport) -> String {
    let s = &r.summary;
    let tile = |label: &str, v: String| {
        format!(
            "<div class=\"tile\"><div class=\"v\">{}</div><div class=\"l\">{}</div></div>",
            esc(&v),
            esc(label)
        )
    };
    let tiles = [
        tile("收到", s.received.to_string()),
        tile("接收率", pct(s.receipt_rate)),
        tile("接收及时率", pct(s.timely_receipt_rate)),
        tile("反馈率", pct(s.feedback_rate)),
        tile("反馈及时率", pct(s.timely_feedback_rate)),
        tile("超时未复", s.overdue_open.to_string()),
    ]
    .join("");
    // A merged county's row follows its successor's, unranked.
    let mut rank = 0;
    let peers: Vec<Vec<String>> = r
        .peers
        .iter()
        .map(|p| {
            let place = if !super::follows(&r.peers, p) {
                rank += 1;
                rank.to_string()
            } else {
                String::new()
            };
            [vec![place], cells(p, &super::peer_name(p))].concat()
        })
        .collect();
    // The report speaks Chinese only: the bilingual column names keep
    // their Chinese half, kinds likewise.
    let mut peer_headers = vec!["名次"];
    peer_headers.extend(COLUMNS.map(zh));
    let overdue: Vec<Vec<String>> = r
        .overdue
        .iter()
        .map(|o| {
            let mut cells = overdue_cells(o);
            cells[2] = zh(&cells[2]).to_string();
            cells
        })
        .collect();
    format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{district} 月度通报 {first}..{last}</title><style>\
body{{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:24px;color:#222}}h1{{font-size:22px}}h2{{font-size:17px;margin-top:28px}}\
.tiles{{display:flex;gap:12px;flex-wrap:wrap}}.tile{{border:1px solid #ccc;border-radius:6px;padding:10px 14px;min-width:120px}}.v{{font-size:22px;font-weight:bold}}.l{{font-size:12px;color:#555}}\
table{{border-collapse:collapse;font-size:13px}}th,td{{border:1px solid #bbb;padding:4px 8px;text-align:right}}th{{background:#f2f2f2}}td:first-child,th:first-child{{text-align:left}}\
@media print{{body{{margin:8mm}}}}</style></head><body>\
<h1>{district} 流动人口信息交换月度通报</h1>\
<p>统计期间：{first} 至 {last}　制表单位：{district}　制表日期：{made_on}</p>\
<p>本通报统计本地区对各地来文的接收与反馈情况；比率为“-”表示该项无应统计的通报。</p>\
<h2>汇总</h2><div class=\"tiles\">{tiles}</div>\
<h2>按对方地区排名（按反馈及时率）</h2>{peers}\
<h2>近12个月及时率</h2>{chart}\
<h2>超时未复</h2>{overdue}\
<h2>对账（与各地区核对双方记录）</h2>{reconciled}\
</body></html>",
        district = esc(&super::place(&r.district)),
        made_on = esc(&r.made_on),
        first = esc(&r.first_day),
        last = esc(&r.last_day),
        peers = html_table(&peer_headers, &peers),
        chart = chart(&r.months),
        overdue = html_table(&OVERDUE_COLUMNS.map(zh), &overdue),
        reconciled = if r.reconciled.is_empty() {
            "<p>本期尚未与任何地区对账。</p>".to_string()
        } else {
            let rows: Vec<Vec<String>> = r.reconciled.iter().map(|l| l.cells()).collect();
            html_table(&super::RECONCILED_COLUMNS.map(zh), &rows)
        },
    )
}
