//! 批量导入 (bulk import): a CSV or `.xlsx` file from a staff spreadsheet.
//! Every row is judged first and shown (accepted, or refused with its
//! column and reason); only a file whose every row is accepted can then be
//! committed, all rows in one transaction (`service::notices::submit_many`).
//! The preview carries the rows on as CSV in the commit form, which the
//! node judges again: nothing is kept on the server between the two steps.

use super::PageError;
use super::register::column_label;
use super::session::{Staff, Writer};
use crate::context::NodeCtx;
use crate::import::{self, COLUMNS, Table};
use crate::pb;
use crate::service::notices;
use askama::Template;
use axum::extract::{Form, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

/// The largest file accepted.
pub(crate) const MAX_FILE: usize = 8 * 1024 * 1024;

struct RowResult {
    line: u64,
    ok: bool,
    /// Every refusal of the row: the column's label and the reason.
    errors: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    file_name: String,
    error: Option<String>,
    results: Vec<RowResult>,
    refused: usize,
    /// The columns a file may have, as staff call them.
    columns: Vec<&'static str>,
    /// The rows as CSV for the commit form, when every row was accepted.
    data: Option<String>,
    committed: Option<usize>,
}

fn view(staff: &Staff) -> ImportPage {
    ImportPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("import"),
        file_name: String::new(),
        error: None,
        results: Vec::new(),
        refused: 0,
        columns: crate::import::COLUMNS
            .iter()
            .map(|c| crate::domain::label_zh(c))
            .collect(),
        data: None,
        committed: None,
    }
}

pub(crate) async fn form(staff: Staff) -> Result<Html<String>, PageError> {
    staff.caller.require_write()?;
    Ok(Html(view(&staff).render()?))
}

/// The template file staff fill in.
pub(crate) async fn template() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"migrex-import-template.csv\"",
            ),
        ],
        import::template_csv(),
    )
}

/// The rows of a table as CSV with every column (what the commit form carries).
fn to_csv(t: &Table) -> String {
    let mut out = String::new();
    let head: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    crate::report::csv_line(&mut out, &head);
    for (_, row) in &t.rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| row.get(c).unwrap_or_default().to_string())
            .collect();
        crate::report::csv_line(&mut out, &cells);
    }
    out
}

/// Judges every row; commits them all when `commit` and every row passes.
async fn judge(
    ctx: &NodeCtx,
    staff: &Staff,
    table: Table,
    commit: bool,
) -> Result<(Vec<RowResult>, bool), PageError> {
    let mut results = Vec::new();
    let mut drafts: Vec<pb::Notice> = Vec::new();
    let mut lines = Vec::new();
    for row in import::rows(&table) {
        match row.notice {
            Ok(n) => {
                drafts.push(n);
                lines.push(row.line);
            }
            Err(errors) => results.push(refusal(
                row.line,
                errors.iter().map(|e| (e.field.as_str(), e.rule.as_str())),
            )),
        }
    }
    // The notices are all the batch needs from here.
    drop(table);
    let commit = commit && results.is_empty();
    let outcome = notices::submit_many(ctx, &staff.caller, drafts, !commit).await?;
    for (item, line) in outcome.items.iter().zip(lines) {
        results.push(match &item.error {
            Some(e) => refusal(line, [(e.field.as_str(), e.message.as_str())]),
            None => RowResult {
                line,
                ok: true,
                errors: Vec::new(),
            },
        });
    }
    results.sort_by_key(|r| r.line);
    Ok((results, outcome.committed))
}

/// A refused row with its refusals (field, rule) said in Chinese.
fn refusal<'a>(line: u64, errors: impl IntoIterator<Item = (&'a str, &'a str)>) -> RowResult {
    RowResult {
        line,
        ok: false,
        errors: errors
            .into_iter()
            .map(|(field, rule)| {
                (
                    column_label(field),
                    crate::domain::field_error_zh(crate::import::column_of(field), rule),
                )
            })
            .collect(),
    }
}

async fn preview_or_commit(
    ctx: &NodeCtx,
    staff: &Staff,
    mut page: ImportPage,
    table: Result<Table, crate::domain::FieldError>,
    commit: bool,
) -> Result<Response, PageError> {
    let table = match table {
        Ok(t) if t.rows.is_empty() => {
            page.error = Some("文件中没有数据行".into());
            return Ok((StatusCode::BAD_REQUEST, Html(page.render()?)).into_response());
        }
        Ok(t) => t,
        Err(e) => {
            let why = crate::domain::field_error_zh(&e.field, &e.rule);
            page.error = Some(match e.field.as_str() {
                "header" => format!("第一行（列名）有误：{why}"),
                _ => format!("文件无法读取：{why}"),
            });
            return Ok((StatusCode::BAD_REQUEST, Html(page.render()?)).into_response());
        }
    };
    // What the commit form carries, made while the table is at hand (a
    // preview's only); the table is then let go before the rows are judged.
    let data = (!commit).then(|| to_csv(&table));
    let (results, committed) = judge(ctx, staff, table, commit).await?;
    page.refused = results.iter().filter(|r| !r.ok).count();
    if committed {
        // Said as a count: a list of 10,000 stored rows tells a clerk nothing.
        page.committed = Some(results.len());
        return Ok((StatusCode::OK, Html(page.render()?)).into_response());
    }
    if page.refused == 0 {
        page.data = data;
    }
    page.results = results;
    let status = if page.refused > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// Gives the allocator's free pages back to the system before a large
/// import: a preview's freed megabytes would otherwise stay resident in one
/// allocator arena while its commit fills another (issue 20: memory).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes
    // the allocator's own locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The uploaded file: every row judged, nothing stored.
pub(crate) async fn upload(
    State(ctx): State<Arc<NodeCtx>>,
    Writer(staff): Writer,
    mut form: Multipart,
) -> Result<Response, PageError> {
    let bad = |m: String| PageError(StatusCode::BAD_REQUEST, m);
    let (mut csrf, mut file) = (String::new(), None);
    while let Some(field) = form.next_field().await.map_err(|e| {
        tracing::info!(error = %e, "console upload failed");
        bad("上传失败，请重新选择文件后再试".to_string())
    })? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("file") => {
                let name = field.file_name().unwrap_or("").to_string();
                let bytes = field.bytes().await.map_err(|e| {
                    tracing::info!(error = %e, "console upload failed");
                    bad("上传失败，请重新选择文件后再试".to_string())
                })?;
                file = Some((name, bytes));
            }
            _ => {}
        }
    }
    staff.check_form(&csrf)?;
    let Some((name, bytes)) = file else {
        return Err(bad("请选择要导入的文件 (file: none chosen)".into()));
    };
    let mut page = view(&staff);
    page.file_name = name.chars().take(100).collect();
    release_freed_memory();
    // Parsed off the async workers (an .xlsx workbook is a zip file).
    let table = tokio::task::spawn_blocking(move || {
        if bytes.starts_with(b"PK") {
            import::read_xlsx(&bytes)
        } else {
            import::read_csv(&bytes)
        }
    })
    .await
    .unwrap_or_else(|_| Err(crate::domain::FieldError::new("file", "文件无法读取")));
    preview_or_commit(&ctx, &staff, page, table, false).await
}

#[derive(serde::Deserialize)]
pub(crate) struct CommitForm {
    #[serde(default)]
    csrf: String,
    data: String,
    #[serde(default)]
    file_name: String,
}

/// 全部登记: the previewed rows, judged again and committed all or nothing.
pub(crate) async fn commit(
    State(ctx): State<Arc<NodeCtx>>,
    Writer(staff): Writer,
    Form(f): Form<CommitForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    release_freed_memory();
    let mut page = view(&staff);
    page.file_name = f.file_name.chars().take(100).collect();
    preview_or_commit(
        &ctx,
        &staff,
        page,
        import::read_csv(f.data.as_bytes()),
        true,
    )
    .await
}
