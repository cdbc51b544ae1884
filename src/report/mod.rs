//! The monthly assessment report (月度通报) a supervisor hands upward: the
//! period's inbound figures in total and per peer (ranked), the last twelve
//! months' timeliness rates, and the overdue list; written as CSV (UTF-8
//! with BOM, opens in Excel) or as one self-contained HTML page with an
//! inline SVG chart. Gathered by `service::reports::monthly` on the node
//! (the web console) or from a node's `Stats` answers (`migrex report`);
//! both write the same document.

mod html;

pub use html::{chart, esc, html_table, to_html};

use crate::domain::county_name;
use crate::pb;
use crate::stats::Period;
use time::Date;

/// One month of the chart: its label (`2026-10`) and its two timely rates.
#[derive(Debug, Clone)]
pub struct MonthRates {
    pub month: String,
    pub timely_receipt: Option<f64>,
    pub timely_feedback: Option<f64>,
}

/// A notice of the overdue list, without the person it is about.
#[derive(Debug, Clone)]
pub struct OverdueLine {
    pub id: String,
    pub peer: String,
    pub kind: i32,
    /// The deadline's local date.
    pub due: String,
    pub days_late: u32,
}

/// One peer's reconciliation (对账) of one month: when this node last
/// compared records with it, on how many notices they differed then, and
/// when both sides last agreed ("" when never).
#[derive(Debug, Clone)]
pub struct ReconciledLine {
    pub peer: String,
    pub month: String,
    pub checked: String,
    pub divergent: u64,
    pub agreed: String,
}

impl ReconciledLine {
    /// A line as the report says it, with instants as local minutes.
    pub fn new(
        tz: &'static time_tz::Tz,
        (peer, month): (String, String),
        checked: time::OffsetDateTime,
        divergent: u64,
        agreed: Option<time::OffsetDateTime>,
    ) -> Self {
        ReconciledLine {
            peer,
            month,
            checked: local_minute(tz, Some(checked)),
            divergent,
            agreed: local_minute(tz, agreed),
        }
    }

    /// The cells of the report's 对账 table.
    pub fn cells(&self) -> Vec<String> {
        vec![
            place(&self.peer),
            self.month.clone(),
            self.checked.clone(),
            if self.divergent == 0 {
                "一致".into()
            } else {
                format!("{} 条不一致", self.divergent)
            },
            if self.agreed.is_empty() {
                "从未一致".into()
            } else {
                self.agreed.clone()
            },
        ]
    }
}

/// The 对账 table's columns.
pub const RECONCILED_COLUMNS: [&str; 5] = [
    "对方 peer",
    "月份 month",
    "最近核对 last checked",
    "结果 result",
    "最近一致 last agreed",
];

/// What a report shows; gathered first, then written in either format.
#[derive(Debug, Clone)]
pub struct MonthlyReport {
    /// The district reported on (制表单位): the node's own code.
    pub district: String,
    /// When the figures were taken, as a local date (制表日期).
    pub made_on: String,
    pub first_day: String,
    pub last_day: String,
    pub summary: pb::TimelinessRow,
    /// Ranked by `rank`.
    pub peers: Vec<pb::TimelinessRow>,
    pub months: Vec<MonthRates>,
    pub overdue: Vec<OverdueLine>,
    /// Reconciliation (对账) with each peer for the period's months.
    pub reconciled: Vec<ReconciledLine>,
}

/// The twelve months that end with the month holding `last`, oldest first.
pub fn twelve_months(last: Date) -> Vec<Period> {
    let mut months = Vec::with_capacity(12);
    let mut m = Period::month_of(last);
    for _ in 0..12 {
        months.push(m);
        m = Period::month_of(m.first.previous_day().expect("a day before"));
    }
    months.reverse();
    months
}

/// A month's label, `2026-10`.
pub fn month_label(p: &Period) -> String {
    format!("{}-{:02}", p.first.year(), u8::from(p.first.month()))
}

/// Orders peers by timely feedback rate, then timely receipt rate; rows
/// without a rate last. A code a division-code change replaced is not
/// ranked on its own: it follows its successor's row (or, without one,
/// stays where its rates put it).
pub fn rank(peers: &mut Vec<pb::TimelinessRow>) {
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
    let follow: Vec<bool> = peers.iter().map(|r| follows(peers, r)).collect();
    let (merged, ranked): (Vec<_>, Vec<_>) = std::mem::take(peers)
        .into_iter()
        .zip(follow)
        .partition(|(_, f)| *f);
    let mut ranked: Vec<_> = ranked.into_iter().map(|(r, _)| r).collect();
    let merged = merged.into_iter().map(|(r, _)| r);
    for m in merged {
        let at = ranked
            .iter()
            .rposition(|r| r.peer == m.successor || r.successor == m.successor)
            .map_or(ranked.len(), |i| i + 1);
        ranked.insert(at, m);
    }
    *peers = ranked;
}

/// Whether `r` is a code a division-code change replaced whose successor
/// has a row of its own among `peers`: it then follows that row, unranked.
pub fn follows(peers: &[pb::TimelinessRow], r: &pb::TimelinessRow) -> bool {
    !r.successor.is_empty() && peers.iter().any(|p| p.peer == r.successor)
}

/// A peer's row as the report names it: its code and county, and for a
/// code a division-code change replaced, where it went and when
/// (`510117 郫都区（2026-12-10 并入 510116 双流区）`).
pub fn peer_name(r: &pb::TimelinessRow) -> String {
    if r.successor.is_empty() {
        place(&r.peer)
    } else {
        format!(
            "{}（{} 并入 {}）",
            place(&r.peer),
            r.successor_since,
            place(&r.successor)
        )
    }
}

/// The Chinese half of a bilingual label (`收到 received` → `收到`).
pub fn zh(label: &str) -> &str {
    match label.split_once(' ') {
        Some((head, _)) if !head.is_ascii() => head,
        _ => label,
    }
}

/// A district as a report names it: its code and its county's name.
/// An instant as staff read it: local date and time to the minute, or "".
pub fn local_minute(tz: &'static time_tz::Tz, t: Option<time::OffsetDateTime>) -> String {
    t.map(|t| {
        let l = time_tz::OffsetDateTimeExt::to_timezone(&t, tz);
        format!(
            "{} {:02}:{:02}",
            crate::domain::format_date(l.date()),
            l.hour(),
            l.minute()
        )
    })
    .unwrap_or_default()
}

pub fn place(code: &str) -> String {
    format!("{code} {}", county_name(code).unwrap_or(""))
}

/// What staff call a notice's kind, with its wire name.
pub fn kind_name(v: i32) -> &'static str {
    match crate::domain::NoticeKind::try_from(v) {
        Ok(crate::domain::NoticeKind::Marriage) => "婚姻 MARRIAGE",
        Ok(crate::domain::NoticeKind::Pregnancy) => "怀孕 PREGNANCY",
        Ok(crate::domain::NoticeKind::Birth) => "生育 BIRTH",
        Ok(crate::domain::NoticeKind::Contraception) => "节育措施 CONTRACEPTION",
        _ => "?",
    }
}

/// A rate as a percentage, "-" when absent.
pub fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// The figures of SPEC.md section 4 of one row, in `COLUMNS` order (after
/// the peer).
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

/// The columns of a figures table.
pub const COLUMNS: [&str; 12] = [
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

/// A figures row under `peer`.
pub fn cells(r: &pb::TimelinessRow, peer: &str) -> Vec<String> {
    [vec![peer.to_string()], figure_cells(r)].concat()
}

/// The columns of the overdue list.
pub const OVERDUE_COLUMNS: [&str; 5] = [
    "编号 notice id",
    "来自 from",
    "类别 kind",
    "时限 due",
    "超时天数 days late",
];

pub(crate) fn overdue_cells(o: &OverdueLine) -> Vec<String> {
    vec![
        o.id.clone(),
        place(&o.peer),
        kind_name(o.kind).to_string(),
        o.due.clone(),
        o.days_late.to_string(),
    ]
}

/// Appends one CSV line (RFC 4180 quoting, CRLF).
pub fn csv_line(out: &mut String, cells: &[String]) {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

/// The report as CSV, UTF-8 with a BOM so that Excel reads the Chinese.
pub fn to_csv(r: &MonthlyReport) -> String {
    let mut out = String::from("\u{feff}");
    csv_line(
        &mut out,
        &[format!(
            "{} 月度通报 {}..{}（本地区对来文的接收与反馈）制表日期 {}",
            place(&r.district),
            r.first_day,
            r.last_day,
            r.made_on
        )],
    );
    out.push_str("\r\n");
    csv_line(&mut out, &COLUMNS.map(String::from));
    csv_line(&mut out, &cells(&r.summary, "合计 all"));
    for p in &r.peers {
        csv_line(&mut out, &cells(p, &peer_name(p)));
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
    for m in &r.months {
        csv_line(
            &mut out,
            &[
                m.month.clone(),
                pct(m.timely_receipt),
                pct(m.timely_feedback),
            ],
        );
    }
    out.push_str("\r\n");
    csv_line(&mut out, &OVERDUE_COLUMNS.map(String::from));
    for o in &r.overdue {
        csv_line(&mut out, &overdue_cells(o));
    }
    out.push_str("\r\n");
    csv_line(&mut out, &RECONCILED_COLUMNS.map(String::from));
    for l in &r.reconciled {
        csv_line(&mut out, &l.cells());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_months_end_with_the_period_and_cross_the_year() {
        let last = time::macros::date!(2026 - 02 - 28);
        let m = twelve_months(last);
        assert_eq!(m.len(), 12);
        assert_eq!(month_label(&m[0]), "2025-03");
        assert_eq!(month_label(&m[11]), "2026-02");
        assert_eq!(m[11].last, last);
    }

    #[test]
    fn a_merged_county_follows_its_successor_unranked() {
        let row = |peer: &str, timely: f64, successor: &str| pb::TimelinessRow {
            peer: peer.into(),
            timely_feedback_rate: Some(timely),
            successor: successor.into(),
            successor_since: if successor.is_empty() {
                ""
            } else {
                "2026-12-10"
            }
            .into(),
            ..Default::default()
        };
        let mut peers = vec![
            row("510117", 1.0, "510116"),
            row("440303", 0.9, ""),
            row("510116", 0.5, ""),
            row("330102", 0.95, "330105"),
        ];
        rank(&mut peers);
        let order: Vec<&str> = peers.iter().map(|r| r.peer.as_str()).collect();
        // 330102's successor is not in the report: it keeps its place by rate.
        assert_eq!(order, ["330102", "440303", "510116", "510117"]);
        assert_eq!(
            peer_name(&peers[3]),
            "510117 郫都区（2026-12-10 并入 510116 双流区）"
        );
    }

    #[test]
    fn the_report_names_its_district_and_date_and_speaks_chinese() {
        let r = MonthlyReport {
            district: "440303".into(),
            made_on: "2026-12-06".into(),
            first_day: "2026-11-01".into(),
            last_day: "2026-11-30".into(),
            summary: pb::TimelinessRow::default(),
            peers: vec![pb::TimelinessRow {
                peer: "510116".into(),
                received: 3,
                ..Default::default()
            }],
            months: vec![],
            overdue: vec![OverdueLine {
                id: "n1".into(),
                peer: "510116".into(),
                kind: crate::domain::NoticeKind::Birth as i32,
                due: "2026-11-20".into(),
                days_late: 2,
            }],
            reconciled: vec![ReconciledLine {
                peer: "510116".into(),
                month: "2026-11".into(),
                checked: "2026-12-06 10:00".into(),
                divergent: 2,
                agreed: "2026-12-01 10:00".into(),
            }],
        };
        let html = to_html(&r);
        for want in [
            "440303 罗湖区",
            "制表单位",
            "制表日期：2026-12-06",
            "2 条不一致",
            "最近一致",
            "510116 双流区",
            "生育",
        ] {
            assert!(html.contains(want), "{want}");
        }
        let text: String = html
            .split('<')
            .filter_map(|t| t.split_once('>').map(|(_, text)| text))
            .collect();
        for english in ["received", "rank", "Summary", "BIRTH", "peer", "none"] {
            assert!(!text.contains(english), "{english} in {text}");
        }
        assert!(to_csv(&r).contains("440303 罗湖区 月度通报"));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut s = String::new();
        csv_line(&mut s, &["a,b".into(), "say \"hi\"".into(), "c".into()]);
        assert_eq!(s, "\"a,b\",\"say \"\"hi\"\"\",c\r\n");
    }
}
