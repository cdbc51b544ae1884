//! 导出 Excel: the lists staff work from as `.xlsx` (`export`), through the
//! same service calls as the pages (so the same roles, the same masking
//! for monitors, and every notice in the access audit), walked page by
//! page up to `export::MAX_EXPORT_ROWS`; and the import template.

use super::PageError;
use super::session::Staff;
use crate::context::NodeCtx;
use crate::export::{MAX_EXPORT_ROWS, XLSX_MIME, notices_xlsx, template_xlsx};
use crate::service::{Listing, Page, notices, reports, search};
use crate::store::NoticeRecord;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Every page `next` gives, up to `MAX_EXPORT_ROWS` rows.
async fn walk<F, Fut>(mut next: F) -> Result<Vec<NoticeRecord>, PageError>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = crate::service::Result<Listing>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let listing = next(Page::new(Page::MAX, after)).await?;
        all.extend(listing.rows);
        match listing.next {
            Some(c) if all.len() < MAX_EXPORT_ROWS => after = Some(c),
            _ => break,
        }
    }
    all.truncate(MAX_EXPORT_ROWS);
    Ok(all)
}

/// A workbook as a download named `name`.xlsx (the name in Chinese, with
/// the day).
fn download(
    ctx: &NodeCtx,
    name: &str,
    bytes: Result<Vec<u8>, crate::export::ExportError>,
) -> Response {
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "export failed");
            return PageError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "导出失败，请稍后再试".into(),
            )
            .into_response();
        }
    };
    let day = crate::domain::format_date(ctx.deadlines.local_date(ctx.now()));
    let file = format!("{name}-{day}.xlsx");
    (
        [
            (header::CONTENT_TYPE, XLSX_MIME.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"export-{day}.xlsx\"; filename*=UTF-8''{}",
                    super::url_encode(&file)
                ),
            ),
        ],
        bytes,
    )
        .into_response()
}

fn sheet(ctx: &NodeCtx, name: &str, rows: &[NoticeRecord]) -> Response {
    download(
        ctx,
        name,
        notices_xlsx(name, rows, ctx.now(), ctx.deadlines.tz),
    )
}

/// 待办 as shown, with its filters.
pub(crate) async fn pending(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<super::pages::PendingParams>,
) -> Result<Response, PageError> {
    let (query, _, _) = super::pages::normalized(q);
    let rows = walk(|p| notices::pending(&ctx, &staff.caller, query.clone(), p)).await?;
    Ok(sheet(&ctx, "待办", &rows))
}

/// 已办.
pub(crate) async fn handled(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
) -> Result<Response, PageError> {
    let rows = walk(|p| search::handled(&ctx, &staff.caller, p)).await?;
    Ok(sheet(&ctx, "已办", &rows))
}

/// 已发送, with its filters.
pub(crate) async fn sent(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<super::sent::SentParams>,
) -> Result<Response, PageError> {
    let f = q.filter();
    let rows = walk(|p| notices::sent(&ctx, &staff.caller, f.clone(), p)).await?;
    Ok(sheet(&ctx, "已发送", &rows))
}

/// 综合查询's results.
pub(crate) async fn found(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<super::search::SearchParams>,
) -> Result<Response, PageError> {
    let s = q
        .search(&ctx)
        .map_err(|(field, why)| PageError(StatusCode::BAD_REQUEST, format!("{field}：{why}")))?;
    let rows = walk(|p| search::search(&ctx, &staff.caller, s.clone(), p)).await?;
    Ok(sheet(&ctx, "查询结果", &rows))
}

/// 超时未复: both directions, oldest deadline first (masked for monitors).
pub(crate) async fn overdue(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
) -> Result<Response, PageError> {
    let rows = walk(|p| async {
        reports::overdue(&ctx, &staff.caller, None, p)
            .await
            .map(|(_, l)| l)
    })
    .await?;
    Ok(sheet(&ctx, "超时未复", &rows))
}

/// 导入模板 (.xlsx).
pub(crate) async fn template(State(ctx): State<Arc<NodeCtx>>, _staff: Staff) -> Response {
    download(&ctx, "通报导入模板", template_xlsx())
}
