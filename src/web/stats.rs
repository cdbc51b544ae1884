//! 统计 (figures): what monitors read. A month, quarter or year, by peer
//! and/or kind, the figures of SPEC.md section 4 in a table, the last twelve
//! months' timely rates as an inline SVG chart, the overdue list (without
//! the people), and the monthly report as CSV or HTML to download. Every
//! role may read it; nothing on it names a person.

use super::PageError;
use super::session::Staff;
use crate::context::NodeCtx;
use crate::domain::{Direction, kind_zh};
use crate::report;
use crate::service::{Page, reports};
use crate::stats::Period;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;
use time_tz::OffsetDateTimeExt;

/// Overdue notices shown on the page (the downloaded report has more).
const OVERDUE_SHOWN: u32 = 50;

#[derive(serde::Deserialize, Default)]
pub(crate) struct StatsParams {
    period: Option<String>,
    by_peer: Option<String>,
    by_kind: Option<String>,
    direction: Option<String>,
}

struct FigureRow {
    peer: String,
    kind: &'static str,
    cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    period: String,
    /// The picker's periods (value, label), and the two quick ones.
    choices: Vec<(String, String)>,
    this_month: String,
    last_month: String,
    period_error: Option<String>,
    first_day: String,
    last_day: String,
    by_peer: bool,
    by_kind: bool,
    outbound: bool,
    columns: Vec<&'static str>,
    rows: Vec<FigureRow>,
    chart: String,
    overdue: Vec<report::OverdueLine>,
    overdue_total_shown: bool,
    /// 催办 per peer in the period: (peer, notices reminded, reminders).
    reminders: Vec<(String, i64, i64)>,
    /// 对账 with each peer for the period's months: the report's cells.
    reconciled: Vec<Vec<String>>,
    reconciled_columns: Vec<&'static str>,
}

impl StatsPage {
    fn kind_zh(&self, k: &i32) -> &'static str {
        kind_zh(*k)
    }
    fn place(&self, code: &str) -> String {
        report::place(code)
    }
}

/// A period as staff write it (2026年12月, 2026年第4季度, 2026年) in the
/// form `Period::parse` reads (2026-12, 2026-Q4, 2026); anything else as
/// given.
fn period_text(s: &str) -> String {
    let s = s.trim();
    let Some((year, rest)) = s.split_once('年') else {
        return s.to_string();
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return year.to_string();
    }
    if let Some(q) = rest.strip_prefix('第').and_then(|r| r.strip_suffix("季度")) {
        let q = match q {
            "一" => "1",
            "二" => "2",
            "三" => "3",
            "四" => "4",
            d => d,
        };
        return format!("{year}-Q{q}");
    }
    match rest.strip_suffix('月').and_then(|m| m.parse::<u8>().ok()) {
        Some(m) => format!("{year}-{m:02}"),
        None => s.to_string(),
    }
}

/// What the picker offers: the last 24 months, 8 quarters and 3 years
/// up to `today`, as (value, label), newest first.
fn choices(today: time::Date) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut y, mut m) = (today.year(), u8::from(today.month()));
    for _ in 0..24 {
        out.push((format!("{y}-{m:02}"), format!("{y}年{m}月")));
        if m == 1 {
            (y, m) = (y - 1, 12);
        } else {
            m -= 1;
        }
    }
    let (mut y, mut q) = (today.year(), (u8::from(today.month()) - 1) / 3 + 1);
    for _ in 0..8 {
        out.push((format!("{y}-Q{q}"), format!("{y}年第{q}季度")));
        if q == 1 {
            (y, q) = (y - 1, 4);
        } else {
            q -= 1;
        }
    }
    for y in (today.year() - 2..=today.year()).rev() {
        out.push((y.to_string(), format!("{y}年")));
    }
    out
}

/// The period asked for, or the current month of the node's timezone; a
/// period that does not read is said (and the current month taken).
fn period_of(ctx: &NodeCtx, given: Option<&str>) -> (String, Period, Option<String>) {
    let today = ctx.now().to_timezone(ctx.deadlines.tz).date();
    let this_month = Period::month_of(today);
    match given.map(period_text).filter(|s| !s.is_empty()) {
        Some(s) => match Period::parse("period", &s) {
            Ok(p) => (s, p, None),
            Err(_) => (
                report::month_label(&this_month),
                this_month,
                Some(format!(
                    "“{s}”不是可用的统计期间，请从列表中选择；下面是本月的数字"
                )),
            ),
        },
        None => (report::month_label(&this_month), this_month, None),
    }
}

pub(crate) async fn page(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<StatsParams>,
) -> Result<Html<String>, PageError> {
    let (label, period, period_error) = period_of(&ctx, q.period.as_deref());
    let today = ctx.now().to_timezone(ctx.deadlines.tz).date();
    let last_month = Period::month_of(
        Period::month_of(today)
            .first
            .previous_day()
            .expect("a month before exists"),
    );
    let (by_peer, by_kind) = (q.by_peer.is_some(), q.by_kind.is_some());
    let outbound = q.direction.as_deref() == Some("outbound");
    let direction = if outbound {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let r = reports::figures(&ctx, &staff.caller, period, direction, by_peer, by_kind).await?;
    let rows = r
        .rows(&ctx, by_peer, by_kind)
        .iter()
        .map(|row| FigureRow {
            peer: if by_peer {
                report::peer_name(row)
            } else {
                "合计".into()
            },
            kind: if row.kind == 0 {
                "全部"
            } else {
                kind_zh(row.kind)
            },
            cells: report::figure_cells(row),
        })
        .collect();
    let months = reports::monthly_rates(&ctx, &staff.caller, period, direction).await?;
    let reminders = reports::reminders(&ctx, &staff.caller, period, direction).await?;
    let (now, late) = reports::overdue(
        &ctx,
        &staff.caller,
        Some(direction),
        Page::first(OVERDUE_SHOWN + 1),
    )
    .await?;
    let more = late.rows.len() > OVERDUE_SHOWN as usize;
    let overdue = late
        .rows
        .iter()
        .take(OVERDUE_SHOWN as usize)
        .map(|n| reports::overdue_line(n, now, ctx.deadlines.tz))
        .collect();
    let view = StatsPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("stats"),
        choices: {
            let mut c = choices(today);
            if !c.iter().any(|(v, _)| *v == label) {
                c.insert(0, (label.clone(), label.clone()));
            }
            c
        },
        this_month: report::month_label(&Period::month_of(today)),
        last_month: report::month_label(&last_month),
        period_error,
        period: label,
        first_day: crate::domain::format_date(period.first),
        last_day: crate::domain::format_date(period.last),
        by_peer,
        by_kind,
        outbound,
        columns: report::COLUMNS[1..].iter().map(|c| report::zh(c)).collect(),
        rows,
        chart: report::chart(&months),
        overdue,
        overdue_total_shown: more,
        reminders,
        reconciled: reports::reconciled_lines(&ctx, &staff.caller, period)
            .await?
            .iter()
            .map(report::ReconciledLine::cells)
            .collect(),
        reconciled_columns: report::RECONCILED_COLUMNS
            .iter()
            .map(|c| report::zh(c))
            .collect(),
    };
    Ok(Html(view.render()?))
}

#[derive(serde::Deserialize)]
pub(crate) struct ReportParams {
    period: Option<String>,
    format: Option<String>,
}

/// The monthly report (月度通报) as a file to keep: CSV or HTML.
pub(crate) async fn download(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<ReportParams>,
) -> Result<Response, PageError> {
    let (label, period, error) = period_of(&ctx, q.period.as_deref());
    if let Some(e) = error {
        return Err(PageError(StatusCode::BAD_REQUEST, e));
    }
    let csv = match q.format.as_deref().unwrap_or("csv") {
        "csv" => true,
        "html" => false,
        // To read and print in the browser: the same document, shown.
        "print" => {
            let r = reports::monthly(&ctx, &staff.caller, period).await?;
            return Ok((
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    // Its own styles are inline; it runs no script.
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                    ),
                ],
                report::to_html(&r),
            )
                .into_response());
        }
        other => {
            return Err(PageError(
                StatusCode::BAD_REQUEST,
                format!("下载格式“{other}”不可用，请选 CSV 或 HTML"),
            ));
        }
    };
    let r = reports::monthly(&ctx, &staff.caller, period).await?;
    let (body, kind, ext) = if csv {
        (report::to_csv(&r), "text/csv; charset=utf-8", "csv")
    } else {
        (report::to_html(&r), "text/html; charset=utf-8", "html")
    };
    let name: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"migrex-report-{name}.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn periods_as_staff_write_them_are_read() {
        assert_eq!(super::period_text("2026年12月"), "2026-12");
        assert_eq!(super::period_text("2026年第四季度"), "2026-Q4");
        assert_eq!(super::period_text("2026年第3季度"), "2026-Q3");
        assert_eq!(super::period_text(" 2025年 "), "2025");
        assert_eq!(super::period_text("2026-10"), "2026-10");
        let c = super::choices(time::macros::date!(2026 - 01 - 15));
        assert_eq!(c[0], ("2026-01".into(), "2026年1月".into()));
        assert_eq!(c[1], ("2025-12".into(), "2025年12月".into()));
        assert!(c.contains(&("2025-Q4".into(), "2025年第4季度".into())));
    }
}
