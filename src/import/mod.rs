//! Notices from a staff spreadsheet: a CSV file or an Excel `.xlsx`
//! workbook (its first sheet) whose header row names the columns of
//! `COLUMNS` in any order. Each row becomes a wire notice or a refusal that
//! names the row and the column; the node then judges the rows as one
//! all-or-nothing batch (`service::notices::submit_many`). Used by the
//! console's 批量导入 and by `migrex notice send --file`.

mod fields;
mod xlsx;

pub use fields::{COLUMNS, notice_from_fields, notice_from_fields_all};
pub use xlsx::{MAX_CELLS, MAX_COLUMNS, MAX_INFLATED, read_xlsx};

use crate::domain::FieldError;
use crate::pb;
use std::collections::HashMap;

/// The most rows one file may hold (the batch limit of the desk).
pub const MAX_ROWS: usize = crate::service::notices::MAX_BATCH;

/// A spreadsheet's rows by column name, each with its line (1 = header),
/// and the cells that could not be read as text, by line (an ID number
/// Excel stored as a number).
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<(u64, Cells)>,
    pub cell_errors: HashMap<u64, Vec<FieldError>>,
}

/// One row's non-empty cells by column code. A list, not a map: a row has
/// at most `COLUMNS.len()` cells and 10,000 rows of maps with a string key
/// per cell cost the console's import tens of megabytes (issue 20).
#[derive(Debug, Default, Clone)]
pub struct Cells(Vec<(&'static str, Box<str>)>);

impl Cells {
    /// The cell of `column`, if the row has one.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.0.iter().find(|(c, _)| *c == column).map(|(_, v)| &**v)
    }

    /// Sets `column`'s cell (replacing one the row had).
    pub fn insert(&mut self, column: &'static str, value: String) {
        match self.0.iter_mut().find(|(c, _)| *c == column) {
            Some(cell) => cell.1 = value.into_boxed_str(),
            None => self.0.push((column, value.into_boxed_str())),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every cell is blank.
    pub fn is_blank(&self) -> bool {
        self.0.iter().all(|(_, v)| v.trim().is_empty())
    }
}

impl std::ops::Index<&str> for Cells {
    type Output = str;
    fn index(&self, column: &str) -> &str {
        self.get(column).expect("no such cell")
    }
}

/// One row as judged here: its notice, or every reason it was refused.
pub struct Row {
    pub line: u64,
    pub notice: Result<pb::Notice, Vec<FieldError>>,
}

/// The column a header names: its code (`id_number`) or its Chinese label
/// (身份证号, `domain::label_zh`), a trailing `*` (the template's mark of
/// a required column) ignored.
fn column_named(header: &str) -> Option<&'static str> {
    let h = header.trim().trim_end_matches(['*', '＊']).trim();
    COLUMNS
        .iter()
        .find(|c| **c == h || crate::domain::label_zh(c) == h)
        .copied()
}

/// The header row as column codes (`None` for an empty header cell).
fn headers(cells: impl Iterator<Item = String>) -> Result<Vec<Option<&'static str>>, FieldError> {
    cells
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .map(|h| {
            if h.is_empty() {
                return Ok(None);
            }
            column_named(&h).map(Some).ok_or_else(|| {
                FieldError::new(
                    "header",
                    format!(
                        "unknown column {} (known: {})",
                        crate::domain::quoted(&h),
                        COLUMNS.join(", ")
                    ),
                )
            })
        })
        .collect()
}

fn too_many(n: usize) -> FieldError {
    FieldError::new(
        "file",
        format!("超过 {MAX_ROWS} 行，请拆分文件 (more than {MAX_ROWS} rows ({n}); split the file)"),
    )
}

/// Reads a CSV file (UTF-8, with or without a BOM).
pub fn read_csv(bytes: &[u8]) -> Result<Table, FieldError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = headers(
        reader
            .headers()
            .map_err(|e| FieldError::new("header", format!("no header row: {e}")))?
            .iter()
            .map(str::to_string),
    )?;
    let mut table = Table::default();
    for (i, rec) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| {
            FieldError::new(format!("line {line}"), format!("not a valid CSV row: {e}"))
        })?;
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if table.rows.len() == MAX_ROWS {
            return Err(too_many(MAX_ROWS + 1));
        }
        let mut row = Cells::default();
        // An empty cell is an absent field: not kept (a row of the
        // preview's 24 columns holds about half of them).
        for (h, v) in headers.iter().zip(rec.iter()) {
            if let Some(h) = h
                && !v.trim().is_empty()
            {
                row.insert(h, v.to_string());
            }
        }
        table.rows.push((line, row));
    }
    Ok(table)
}

/// A cell's text. Whole numbers lose no digits and gain no ".0"; a number
/// too long for Excel to hold exactly (an ID number typed as a number) is
/// refused, naming the column; dates become `YYYY-MM-DD`.
fn cell_text(column: &str, line: u64, c: &calamine::Data) -> Result<String, FieldError> {
    use calamine::Data;
    Ok(match c {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) if f.abs() >= 1e15 => {
            return Err(FieldError::new(
                column,
                "a number of 16 or more digits loses its last digits in Excel; format the column as text (文本) and type it again",
            ));
        }
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => {
            // Days since 1899-12-30 (Excel's epoch, leap-year bug included).
            let epoch = time::macros::date!(1899 - 12 - 30);
            let days = d.as_f64().floor() as i64;
            (epoch + time::Duration::days(days))
                .format(time::macros::format_description!("[year]-[month]-[day]"))
                .unwrap_or_default()
        }
        Data::Error(e) => {
            return Err(FieldError::new(
                column,
                format!("row {line}: cell error {e}"),
            ));
        }
    })
}

/// Each row as a notice or every refusal of it, each naming its column.
/// Lazily: 10,000 judged rows held at once would cost ~9 MB more.
pub fn rows(table: &Table) -> impl Iterator<Item = Row> + '_ {
    table.rows.iter().map(|(line, r)| {
        let unread = table.cell_errors.get(line).cloned().unwrap_or_default();
        // A cell that could not be read is absent to the fields.
        let get = |k: &str| {
            if unread.iter().any(|e| e.field == k) {
                return Some("?".to_string());
            }
            r.get(k).map(str::to_string)
        };
        let notice = match notice_from_fields_all(&get) {
            Ok(n) if unread.is_empty() => Ok(n),
            Ok(_) => Err(unread),
            Err(mut found) => {
                found.retain(|e| !unread.iter().any(|u| u.field == e.field));
                let mut all = unread;
                all.extend(found);
                Err(all)
            }
        };
        Row {
            line: *line,
            notice,
        }
    })
}

/// The spreadsheet column a refusal from the node is about: the last part
/// of its field path (`notice.subject.id_number` → `id_number`), the event
/// dates of every kind being `event_date`.
pub fn column_of(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    match last {
        "registered_on" | "confirmed_on" | "born_on" | "performed_on" => "event_date",
        "subject" => "id_number",
        other => other,
    }
}

/// The template file staff start from: the header row and one example.
pub fn template_csv() -> String {
    let example: HashMap<&str, &str> = [
        ("destination", "510116"),
        ("kind", "BIRTH"),
        ("category", "NOTIFICATION"),
        ("id_number", "510116199001010022"),
        ("name", "王芳"),
        ("hukou_district", "510116"),
        ("residence_district", "440303"),
        ("event_date", "2026-10-03"),
        ("child_sex", "MALE"),
        ("birth_order", "1"),
        ("place_of_delivery", "罗湖区人民医院"),
    ]
    .into_iter()
    .collect();
    let mut out = String::from("\u{feff}");
    crate::report::csv_line(
        &mut out,
        &COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
    );
    crate::report::csv_line(
        &mut out,
        &COLUMNS
            .iter()
            .map(|c| example.get(c).copied().unwrap_or("").to_string())
            .collect::<Vec<_>>(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_name_their_line_and_column() {
        let t = read_csv(
            "\u{feff}destination,kind,category,id_number,name,hukou_district,residence_district,event_date,child_sex,birth_order,place_of_delivery\n\
             510116,BIRTH,NOTIFICATION,510116199001010022,王芳,510116,440303,2026-10-03,MALE,1,医院\n\
             510116,BIRTH,NOTIFICATION,510116199001010022,王芳,510116,440303,2026-10-03,MALE,first,医院\n"
                .as_bytes(),
        )
        .unwrap();
        let r: Vec<Row> = rows(&t).collect();
        assert_eq!(r.len(), 2);
        assert!(r[0].notice.is_ok());
        assert_eq!(r[1].line, 3);
        let e = r[1].notice.as_ref().unwrap_err();
        assert_eq!(e[0].field, "birth_order");
    }

    #[test]
    fn chinese_headers_and_values_are_read_and_every_error_of_a_row_listed() {
        let t = read_csv(
            "发往地区*,类别,性质,身份证号,姓名,户籍地,现居住地,事件日期,子女性别,孩次,分娩地点\n\
             双流区,生育,通报,510116199001010022,王芳,510116,罗湖区,2026-10-03,女,1,医院\n\
             双流区,出生,通报,510116199001010021,,510116,罗湖区,2026-10-03,女,一,医院\n"
                .as_bytes(),
        )
        .unwrap();
        let r: Vec<Row> = rows(&t).collect();
        let n = r[0].notice.as_ref().unwrap();
        assert_eq!(n.destination, "510116", "a district by its name");
        assert_eq!(n.subject.as_ref().unwrap().residence_district, "440303");
        assert_eq!(n.category, crate::domain::Category::Notification as i32);
        let fields: Vec<&str> = r[1]
            .notice
            .as_ref()
            .unwrap_err()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["kind", "id_number", "name"],
            "every error, in order"
        );
    }

    #[test]
    fn unknown_columns_are_refused() {
        let e = read_csv(b"destination,colour\n510116,red\n").unwrap_err();
        assert!(e.rule.contains("colour"), "{e}");
    }

    #[test]
    fn the_template_reads_back_as_a_valid_row() {
        let t = read_csv(template_csv().as_bytes()).unwrap();
        assert!(rows(&t).next().unwrap().notice.is_ok());
    }

    #[test]
    fn field_paths_map_to_columns() {
        assert_eq!(column_of("notice.subject.id_number"), "id_number");
        assert_eq!(column_of("notice.details.birth.born_on"), "event_date");
        assert_eq!(column_of("notice.destination"), "destination");
    }
}
