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
    first_day: String,
    last_day: String,
    by_peer: bool,
    by_kind: bool,
    outbound: bool,
    columns: &'static [&'static str],
    rows: Vec<FigureRow>,
    chart: String,
    overdue: Vec<report::OverdueLine>,
    overdue_total_shown: bool,
}

impl StatsPage {
    fn kind_zh(&self, k: &i32) -> &'static str {
        kind_zh(*k)
    }
    fn place(&self, code: &str) -> String {
        report::place(code)
    }
}

/// The period asked for, or the current month of the node's timezone.
fn period_of(ctx: &NodeCtx, given: Option<&str>) -> Result<(String, Period), PageError> {
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Period::parse("period", s)
            .map(|p| (s.to_string(), p))
            .map_err(|e| PageError(StatusCode::BAD_REQUEST, format!("统计期间有误：{e}"))),
        None => {
            let today = ctx.now().to_timezone(ctx.deadlines.tz).date();
            let p = Period::month_of(today);
            Ok((report::month_label(&p), p))
        }
    }
}

pub(crate) async fn page(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<StatsParams>,
) -> Result<Html<String>, PageError> {
    let (label, period) = period_of(&ctx, q.period.as_deref())?;
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
        period: label,
        first_day: crate::domain::format_date(period.first),
        last_day: crate::domain::format_date(period.last),
        by_peer,
        by_kind,
        outbound,
        columns: &report::COLUMNS[1..],
        rows,
        chart: report::chart(&months),
        overdue,
        overdue_total_shown: more,
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
    let (label, period) = period_of(&ctx, q.period.as_deref())?;
    let csv = match q.format.as_deref().unwrap_or("csv") {
        "csv" => true,
        "html" => false,
        other => {
            return Err(PageError(
                StatusCode::BAD_REQUEST,
                format!(
                    "format: {} is not csv or html",
                    crate::domain::quoted(other)
                ),
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
