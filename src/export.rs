//! Excel workbooks written for staff: the lists of notices (待办, 已办,
//! 已发送, 综合查询, the overdue list) as `.xlsx` with Chinese headings and
//! every field of each notice's kind, and the import template (Chinese
//! headers, required columns marked `*`, drop-down lists, ID columns as
//! text so that Excel keeps all 18 characters). The records come from the
//! service as the caller may see them (masked for monitors); nothing is
//! unmasked here.

use crate::domain::{
    Direction, category_zh, fields_zh, kind_zh, label_zh, method_zh, result_zh, status_zh,
};
use crate::report::place;
use crate::store::NoticeRecord;
use rust_xlsxwriter::{DataValidation, Format, Workbook, XlsxError};
use time::OffsetDateTime;

/// The most rows one export holds (a page of the lists is 50; an export
/// walks the pages up to this).
pub const MAX_EXPORT_ROWS: usize = 10_000;

/// The MIME type of a workbook.
pub const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Why a workbook could not be written (never the records' fault).
#[derive(Debug, thiserror::Error)]
#[error("writing the workbook: {0}")]
pub struct ExportError(#[from] XlsxError);

/// The fixed columns of a notice list, before the fields of its kinds.
const FIXED: &[&str] = &[
    "编号",
    "方向",
    "登记时间",
    "类别",
    "性质",
    "发出地区",
    "发往地区",
    "姓名",
    "身份证号",
    "状态",
    "时限",
    "超时天数",
    "签收",
    "核查结果",
    "情况说明",
];

/// `records` as one sheet named `title`: the fixed columns, then one
/// column per field of the kinds present (`domain::fields_zh`), at `now`
/// (the days late) in `tz`.
pub fn notices_xlsx(
    title: &str,
    records: &[NoticeRecord],
    now: OffsetDateTime,
    tz: &'static time_tz::Tz,
) -> Result<Vec<u8>, ExportError> {
    let local = |t: Option<OffsetDateTime>| crate::report::local_minute(tz, t);
    // The kind fields, in the order they first appear, minus those the
    // fixed columns show.
    let mut extra: Vec<&'static str> = Vec::new();
    for r in records {
        for f in fields_zh(&r.content) {
            if !matches!(f.path, "subject.name" | "subject.id_number") && !extra.contains(&f.label)
            {
                extra.push(f.label);
            }
        }
    }
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(title)?;
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    for (c, h) in FIXED.iter().chain(extra.iter()).enumerate() {
        sheet.write_with_format(0, c as u16, *h, &bold)?;
    }
    for (i, r) in records.iter().enumerate() {
        let row = i as u32 + 1;
        let n = &r.content;
        let s = n.subject.clone().unwrap_or_default();
        let inbound = r.life.direction == Direction::Inbound;
        let feedback = r.feedback.as_ref();
        let late = if r.life.overdue(now) {
            r.life.days_late(now).to_string()
        } else {
            String::new()
        };
        let cells = [
            n.reference.clone(),
            if inbound { "收到" } else { "发出" }.to_string(),
            local(Some(r.life.created_at)),
            kind_zh(n.kind).to_string(),
            category_zh(n.category).to_string(),
            place(&n.origin),
            place(&n.destination),
            s.name.clone(),
            s.id_number.clone(),
            status_zh(r.life.status).to_string(),
            local(r.life.due_at),
            late,
            match (&r.acknowledged_by, r.life.acknowledged_at) {
                (Some(by), Some(at)) => format!("{} {by}", local(Some(at))),
                _ => String::new(),
            },
            feedback.map_or(String::new(), |f| {
                format!("{} {}", result_zh(f.result), f.answered_by)
            }),
            feedback.map_or(String::new(), |f| f.remarks.clone()),
        ];
        for (c, v) in cells.iter().enumerate() {
            // Every cell as text: ID numbers and references keep every digit.
            sheet.write_with_format(row, c as u16, v.as_str(), &text)?;
        }
        for f in fields_zh(n) {
            if let Some(k) = extra.iter().position(|l| *l == f.label) {
                let col = (FIXED.len() + k) as u16;
                sheet.write_with_format(row, col, f.value.as_str(), &text)?;
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    Ok(book.save_to_buffer()?)
}

/// The columns of the import template that must be filled.
/// (Each kind has its own too: see the import page.)
const REQUIRED: &[&str] = &[
    "destination",
    "kind",
    "category",
    "id_number",
    "name",
    "hukou_district",
    "residence_district",
    "event_date",
];

/// The import template: Chinese headers (`*` for required columns), a
/// drop-down list on every column with a fixed set of values, the ID
/// columns formatted as text, and one example row.
pub fn template_xlsx() -> Result<Vec<u8>, ExportError> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("通报")?;
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    let methods: Vec<&str> = (1..=9).map(method_zh).collect();
    let choices: &[(&str, Vec<&str>)] = &[
        ("kind", vec!["婚姻", "怀孕", "生育", "节育措施"]),
        ("category", vec!["通报", "协查"]),
        ("urgency", vec!["普通", "紧急"]),
        ("reply_required", vec!["签收", "核查反馈"]),
        ("child_sex", vec!["男", "女"]),
        ("within_policy", vec!["是", "否"]),
        ("method", methods),
    ];
    let example = [
        ("destination", "510116"),
        ("kind", "生育"),
        ("category", "通报"),
        ("id_number", "510116199001010022"),
        ("name", "王芳"),
        ("hukou_district", "510116"),
        ("residence_district", "440303"),
        ("event_date", "2026-10-03"),
        ("child_sex", "男"),
        ("birth_order", "1"),
        ("place_of_delivery", "罗湖区人民医院"),
    ];
    for (c, column) in crate::import::COLUMNS.iter().enumerate() {
        let c = c as u16;
        let mark = if REQUIRED.contains(column) { "*" } else { "" };
        sheet.write_with_format(0, c, format!("{}{mark}", label_zh(column)), &bold)?;
        sheet.set_column_format(c, &text)?;
        if let Some((_, values)) = choices.iter().find(|(k, _)| k == column) {
            let list = DataValidation::new().allow_list_strings(values)?;
            sheet.add_data_validation(1, c, 10_000, c, &list)?;
        }
        if let Some((_, v)) = example.iter().find(|(k, _)| k == column) {
            sheet.write_with_format(1, c, *v, &text)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    Ok(book.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_reads_back_as_a_valid_row_with_chinese_headers_and_values() {
        let bytes = template_xlsx().unwrap();
        let table = crate::import::read_xlsx(&bytes).unwrap();
        let rows: Vec<_> = crate::import::rows(&table).collect();
        assert_eq!(rows.len(), 1);
        let n = rows[0].notice.as_ref().unwrap();
        assert_eq!(n.kind, crate::domain::NoticeKind::Birth as i32);
        assert_eq!(n.subject.as_ref().unwrap().id_number, "510116199001010022");
    }
}
