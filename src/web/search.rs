//! 综合查询 (find a notice again by 身份证号, 姓名 or 编号, in either
//! direction and any status) and 已办 (what this district signed for or
//! answered, latest first). Adapters over `service::search`.

use super::session::Staff;
use super::{PAGE_SIZE, PageError};
use crate::context::NodeCtx;
use crate::domain::{Direction, NoticeKind, NoticeStatus, kind_zh, mask_id, result_zh, status_zh};
use crate::report::place;
use crate::service::search::{Search, Wanted};
use crate::service::{Cursor, Page, ServiceError, search};
use crate::store::NoticeRecord;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use std::sync::Arc;

/// One notice in a list of found or handled notices.
pub(crate) struct FoundRow {
    pub id: String,
    /// The short reference (编号), or "" for notices older than references.
    pub reference: String,
    pub direction: &'static str,
    pub created: String,
    pub kind: &'static str,
    /// The other district.
    pub peer: String,
    pub subject: String,
    pub id_number: String,
    pub status: &'static str,
    /// What was done here and when (已办): 签收 / 反馈 with the clerk.
    pub handled: String,
}

impl FoundRow {
    pub fn new(r: &NoticeRecord, tz: &'static time_tz::Tz) -> Self {
        let n = &r.content;
        let s = n.subject.clone().unwrap_or_default();
        let local = |t| super::local(tz, Some(t));
        let inbound = r.life.direction == Direction::Inbound;
        let handled = match (r.life.answered_at, &r.feedback) {
            (Some(at), Some(f)) => format!(
                "反馈 {} {} {}",
                local(at),
                result_zh(f.result),
                f.answered_by
            ),
            _ => match (r.life.acknowledged_at, &r.acknowledged_by) {
                (Some(at), Some(by)) => format!("签收 {} {by}", local(at)),
                _ => String::new(),
            },
        };
        FoundRow {
            id: n.id.clone(),
            reference: n.reference.clone(),
            direction: if inbound { "收到" } else { "发出" },
            created: local(r.life.created_at),
            kind: kind_zh(n.kind),
            peer: place(if inbound { &n.origin } else { &n.destination }),
            subject: s.name,
            id_number: mask_id(&s.id_number),
            status: status_zh(r.life.status),
            handled,
        }
    }
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    f: SearchParams,
    /// Why the search was not run, naming the field.
    error: Option<(String, String)>,
    /// None before the first search.
    rows: Option<Vec<FoundRow>>,
    query: String,
    next_page: Option<String>,
}

#[derive(serde::Deserialize, Default, Clone)]
pub(crate) struct SearchParams {
    /// 身份证号, 姓名 or 编号.
    #[serde(default)]
    q: String,
    /// "INBOUND", "OUTBOUND" or "" (both).
    #[serde(default)]
    direction: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    /// The other district, by code or name.
    #[serde(default)]
    district: String,
    /// 登记日期 from / to (YYYY-MM-DD, both days included).
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

impl SearchParams {
    fn asked(&self) -> bool {
        [
            &self.q,
            &self.direction,
            &self.kind,
            &self.status,
            &self.district,
            &self.from,
            &self.to,
        ]
        .iter()
        .any(|v| !v.trim().is_empty())
    }

    /// The search as the service takes it, or the field that is wrong and why.
    pub(super) fn search(&self, ctx: &NodeCtx) -> Result<Search, (String, String)> {
        let wanted = Wanted::parse(&self.q).map_err(|_| {
            let why = match self.q.trim().len() {
                15 | 18 => "身份证号有误（位数或校验位不对），请核对后再查",
                _ => "姓名最多 50 个字",
            };
            ("查询内容".to_string(), why.to_string())
        })?;
        let day = |field: &str, v: &str, next: bool| -> Result<_, (String, String)> {
            if v.trim().is_empty() {
                return Ok(None);
            }
            let d = crate::domain::parse_date(field, v.trim()).map_err(|_| {
                (
                    field.to_string(),
                    "请按 年-月-日 填写，例如 2026-12-01".to_string(),
                )
            })?;
            let d = if next { d.next_day().unwrap_or(d) } else { d };
            Ok(Some(ctx.deadlines.start_of_day(d)))
        };
        Ok(Search {
            wanted,
            direction: Direction::from_str_name(&self.direction),
            kind: NoticeKind::from_str_name(&self.kind),
            status: NoticeStatus::from_str_name(&self.status),
            district: self.district.clone(),
            from: day("登记日期（起）", &self.from, false)?,
            to: day("登记日期（止）", &self.to, true)?,
        })
    }

    fn query(&self) -> String {
        let e = |s: &str| super::url_encode(s.trim());
        format!(
            "q={}&direction={}&kind={}&status={}&district={}&from={}&to={}",
            e(&self.q),
            e(&self.direction),
            e(&self.kind),
            e(&self.status),
            e(&self.district),
            e(&self.from),
            e(&self.to)
        )
    }
}

/// 综合查询: the form, and the results once something was asked.
pub(crate) async fn page(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(f): Query<SearchParams>,
) -> Result<Html<String>, PageError> {
    staff.caller.require_personal_data()?;
    let mut view = SearchPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("search"),
        error: None,
        rows: None,
        query: f.query(),
        next_page: None,
        f: f.clone(),
    };
    if f.asked() {
        match f.search(&ctx) {
            Err(e) => view.error = Some(e),
            Ok(s) => {
                let page = Page::new(PAGE_SIZE, Cursor::parse(&f.after));
                match search::search(&ctx, &staff.caller, s, page).await {
                    Ok(found) => {
                        view.next_page = found.next.map(|c| c.to_string());
                        view.rows = Some(
                            found
                                .rows
                                .iter()
                                .map(|r| FoundRow::new(r, ctx.deadlines.tz))
                                .collect(),
                        );
                    }
                    Err(ServiceError::Refused(e)) if e.field == "district" => {
                        view.error = Some((
                            "对方地区".into(),
                            format!(
                                "“{}”不是唯一的地区名称，请填写区划代码或从列表中选择",
                                f.district.trim()
                            ),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(Html(view.render()?))
}

#[derive(Template)]
#[template(path = "handled.html")]
struct HandledPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    rows: Vec<FoundRow>,
    next_page: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct HandledParams {
    #[serde(default)]
    after: String,
}

/// 已办: what this district signed for or answered, latest first.
pub(crate) async fn handled(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Query(q): Query<HandledParams>,
) -> Result<Html<String>, PageError> {
    let page = Page::new(PAGE_SIZE, Cursor::parse(&q.after));
    let found = search::handled(&ctx, &staff.caller, page).await?;
    let view = HandledPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("handled"),
        next_page: found.next.map(|c| c.to_string()),
        rows: found
            .rows
            .iter()
            .map(|r| FoundRow::new(r, ctx.deadlines.tz))
            .collect(),
    };
    Ok(Html(view.render()?))
}
