//! Excel `.xlsx` workbooks read within bounds. A workbook is a zip archive
//! of XML parts, and both layers can ask for more memory than the node has:
//! a part can inflate a thousandfold (a deflate bomb), a sheet can declare
//! or use a cell at XFD1048576 (calamine's `Range` allocates the whole
//! rectangle up to it), and the shared-string table announces its size
//! (calamine reserves it). So before calamine opens anything:
//!
//! 1. every part is inflated into a counter, never into memory, and the
//!    whole archive may inflate to `MAX_INFLATED` at most;
//! 2. the shared-string table's announced and actual sizes are checked
//!    against `MAX_CELLS`;
//!
//! and then the first sheet is streamed cell by cell
//! (`worksheet_cells_reader`), its declared dimension and every cell's
//! position checked against the import's rows and columns, keeping only
//! the cells under a header. Refusals name the limit, in Chinese first.

use super::{Cells, MAX_ROWS, Table, headers, too_many};
use crate::domain::FieldError;
use std::collections::HashMap;
use std::io::{Cursor, Read, Write};

/// What a workbook's parts may inflate to, all together.
pub const MAX_INFLATED: u64 = 64 << 20;
/// Columns a sheet may use (the import has 24; notes beside them are fine).
pub const MAX_COLUMNS: u32 = 64;
/// Cells read at most: a full sheet of `MAX_ROWS` rows and `MAX_COLUMNS`.
pub const MAX_CELLS: u64 = (MAX_ROWS as u64 + 1) * MAX_COLUMNS as u64;
/// Parts in one archive (a workbook has a dozen or two).
const MAX_PARTS: usize = 1000;
/// How much of the shared-string table's start is kept to read its size.
const HEAD: usize = 64 << 10;

fn refused(rule: String) -> FieldError {
    FieldError::new("file", rule)
}

/// Counts what is written to it; for the shared-string table it also keeps
/// the first `HEAD` bytes and counts the `<si` elements.
#[derive(Default)]
struct Counter {
    bytes: u64,
    head: Option<Vec<u8>>,
    strings: u64,
    /// The last two bytes of the previous write, for a `<si` across writes.
    carry: Vec<u8>,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        if let Some(head) = &mut self.head {
            let room = HEAD.saturating_sub(head.len()).min(buf.len());
            head.extend_from_slice(&buf[..room]);
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(buf);
            self.strings += joined.windows(3).filter(|w| *w == b"<si").count() as u64;
            self.carry = joined[joined.len().saturating_sub(2)..].to_vec();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `uniqueCount` the shared-string table announces in its `<sst>` tag.
fn announced_strings(head: &[u8]) -> Option<u64> {
    let start = head.windows(4).position(|w| w == b"<sst")?;
    let tag = &head[start..];
    let tag = &tag[..tag.iter().position(|&b| b == b'>')?];
    let at = tag
        .windows(13)
        .position(|w| w == b"uniqueCount=\"")
        .map(|p| p + 13)?;
    let digits: Vec<u8> = tag[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits)
        .ok()?
        .parse()
        .ok()
        .or(Some(u64::MAX))
}

/// Inflates every part of the archive into a counter: refused when the
/// whole would pass `MAX_INFLATED`, or the shared strings `MAX_CELLS`.
fn check_archive(bytes: &[u8]) -> Result<(), FieldError> {
    let not_xlsx = |e: &dyn std::fmt::Display| {
        refused(format!("不是 .xlsx 工作簿 (not an .xlsx workbook: {e})"))
    };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| not_xlsx(&e))?;
    if zip.len() > MAX_PARTS {
        return Err(refused(format!(
            "工作簿的部件超过 {MAX_PARTS} 个 (more than {MAX_PARTS} parts in the archive)"
        )));
    }
    let too_big = || {
        refused(format!(
            "工作簿解压后超过 {} MiB，请只保留要导入的工作表 (the workbook inflates to more than {} MiB)",
            MAX_INFLATED >> 20,
            MAX_INFLATED >> 20
        ))
    };
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(|e| not_xlsx(&e))?;
        let shared = part
            .name()
            .map_err(|e| not_xlsx(&e))?
            .ends_with("sharedStrings.xml");
        let mut counter = Counter {
            head: shared.then(Vec::new),
            ..Default::default()
        };
        let left = MAX_INFLATED - total;
        std::io::copy(&mut (&mut part).take(left + 1), &mut counter).map_err(|e| not_xlsx(&e))?;
        total += counter.bytes;
        if total > MAX_INFLATED {
            return Err(too_big());
        }
        if let Some(head) = &counter.head {
            let announced = announced_strings(head).unwrap_or(0);
            if announced > MAX_CELLS || counter.strings > MAX_CELLS {
                return Err(refused(format!(
                    "工作簿的文字单元格超过 {MAX_CELLS} 个 (more than {MAX_CELLS} distinct texts)"
                )));
            }
        }
    }
    Ok(())
}

/// Reads the first sheet of an Excel `.xlsx` workbook, within the bounds
/// above; a reader that panics on a malformed part refuses the file.
pub fn read_xlsx(bytes: &[u8]) -> Result<Table, FieldError> {
    std::panic::catch_unwind(|| {
        check_archive(bytes)?;
        read_sheet(bytes)
    })
    .unwrap_or_else(|_| {
        Err(refused(
            "工作簿无法读取 (the workbook cannot be read)".into(),
        ))
    })
}

fn beyond(row: u32, col: u32) -> Option<FieldError> {
    if row > MAX_ROWS as u32 {
        return Some(too_many(row as usize));
    }
    (col >= MAX_COLUMNS).then(|| {
        refused(format!(
            "工作表使用了第 {} 列，最多 {MAX_COLUMNS} 列 (column {} is beyond the {MAX_COLUMNS} an import may use)",
            col + 1,
            col + 1
        ))
    })
}

fn read_sheet(bytes: &[u8]) -> Result<Table, FieldError> {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| refused(format!("不是 .xlsx 工作簿 (not an .xlsx workbook: {e})")))?;
    let first = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| refused("工作簿中没有工作表 (the workbook has no sheet)".into()))?;
    let unreadable = |e: &dyn std::fmt::Display| {
        refused(format!(
            "第一个工作表无法读取 (the first sheet cannot be read: {e})"
        ))
    };
    let mut cells = book
        .worksheet_cells_reader(&first)
        .map_err(|e| unreadable(&e))?;
    let declared = cells.dimensions();
    if let Some(e) = beyond(declared.end.0, declared.end.1) {
        return Err(e);
    }

    let mut table = Table::default();
    // The header row: its cells as they come, then its names by column.
    let mut header: Option<u32> = None;
    let mut header_cells: Vec<(u32, String)> = Vec::new();
    let mut columns: Option<HashMap<u32, &'static str>> = None;
    let mut row: Option<(u32, Cells)> = None;
    let mut read = 0u64;
    let mut unread: HashMap<u64, Vec<FieldError>> = HashMap::new();
    while let Some(cell) = cells.next_cell().map_err(|e| unreadable(&e))? {
        read += 1;
        if read > MAX_CELLS {
            return Err(refused(format!(
                "工作表的单元格超过 {MAX_CELLS} 个 (more than {MAX_CELLS} cells)"
            )));
        }
        let (r, c) = cell.get_position();
        if let Some(e) = beyond(r, c) {
            return Err(e);
        }
        let value = calamine::Data::from(cell.get_value().clone());
        // The first row with a cell is the header row.
        let h = *header.get_or_insert(r);
        if r == h && columns.is_none() {
            header_cells.push((c, value.to_string()));
            continue;
        }
        if r <= h || row.as_ref().is_some_and(|(at, _)| r < *at) {
            return Err(unreadable(&"its cells are out of order"));
        }
        let names = match &mut columns {
            Some(names) => names,
            None => columns.insert(header_names(std::mem::take(&mut header_cells))?),
        };
        if row.as_ref().is_some_and(|(at, _)| *at != r) {
            push(&mut table, h, row.take())?;
        }
        let (_, cells) = row.get_or_insert_with(|| (r, Cells::default()));
        if let Some(name) = names.get(&c) {
            let line = u64::from(r - h) + 1;
            match super::cell_text(name, line, &value) {
                Ok(text) => cells.insert(name, text),
                // Said on its row, with the row's other errors.
                Err(e) => {
                    cells.insert(name, String::new());
                    unread.entry(line).or_default().push(e);
                }
            }
        }
    }
    let Some(h) = header else {
        return Err(FieldError::new("header", "the first sheet is empty"));
    };
    if columns.is_none() {
        header_names(header_cells)?;
    }
    push(&mut table, h, row)?;
    table.cell_errors = unread;
    Ok(table)
}

/// The header row's names by column, checked as a CSV's are.
fn header_names(mut cells: Vec<(u32, String)>) -> Result<HashMap<u32, &'static str>, FieldError> {
    cells.sort_by_key(|(c, _)| *c);
    let names = headers(cells.iter().map(|(_, n)| n.clone()))?;
    Ok(cells
        .into_iter()
        .zip(names)
        .filter_map(|((c, _), n)| Some((c, n?)))
        .collect())
}

/// A finished row into the table, unless it is blank.
fn push(table: &mut Table, header: u32, row: Option<(u32, Cells)>) -> Result<(), FieldError> {
    let Some((at, cells)) = row else {
        return Ok(());
    };
    if cells.is_blank() {
        return Ok(());
    }
    if table.rows.len() == MAX_ROWS {
        return Err(too_many(MAX_ROWS + 1));
    }
    table.rows.push((u64::from(at - header) + 1, cells));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(write: impl FnOnce(&mut rust_xlsxwriter::Worksheet)) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        write(book.add_worksheet());
        book.save_to_buffer().unwrap()
    }

    /// A zip archive of the given parts, deflated.
    fn archive(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in parts {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(body).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_sheet_is_read_row_by_row_under_its_header() {
        let bytes = book(|s| {
            s.write_string(0, 0, "destination").unwrap();
            s.write_string(0, 1, "birth_order").unwrap();
            s.write_string(0, 5, "").unwrap();
            s.write_string(1, 0, "510116").unwrap();
            s.write_number(1, 1, 2.0).unwrap();
            s.write_string(1, 7, "a note beside the columns").unwrap();
            s.write_string(3, 0, "440303").unwrap();
        });
        let t = read_xlsx(&bytes).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].0, 2);
        assert_eq!(&t.rows[0].1["destination"], "510116");
        assert_eq!(&t.rows[0].1["birth_order"], "2");
        assert_eq!(t.rows[0].1.len(), 2, "cells without a header are left out");
        assert_eq!((t.rows[1].0, &t.rows[1].1["destination"]), (4, "440303"));
        let e = read_xlsx(&book(|s| {
            s.write_string(0, 0, "colour").unwrap();
        }))
        .unwrap_err();
        assert!(e.rule.contains("colour"), "{e}");
    }

    #[test]
    fn a_cell_far_out_is_refused_before_anything_is_allocated_for_it() {
        // The 1.5 KB workbook that made calamine's Range ask for 512 GiB.
        let bytes = book(|s| {
            s.write_string(0, 0, "destination").unwrap();
            s.write_string(1_048_575, 16_383, "x").unwrap();
        });
        assert!(bytes.len() < 16 << 10);
        let e = read_xlsx(&bytes).unwrap_err();
        assert_eq!(e.field, "file");
        assert!(e.rule.contains("10000"), "{e}");
        // A column beyond the import's, in a small sheet.
        let e = read_xlsx(&book(|s| {
            s.write_string(0, 0, "destination").unwrap();
            s.write_string(1, 100, "x").unwrap();
        }))
        .unwrap_err();
        assert!(e.rule.contains("第 101 列") && e.rule.contains("64"), "{e}");
    }

    #[test]
    fn a_deflate_bomb_is_refused_by_what_it_inflates_to() {
        let big = vec![b'a'; (MAX_INFLATED + 1) as usize];
        let bytes = archive(&[("xl/sharedStrings.xml", &big)]);
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        let e = read_xlsx(&bytes).unwrap_err();
        assert!(e.rule.contains("64 MiB"), "{e}");
    }

    #[test]
    fn a_shared_string_table_that_announces_too_much_is_refused() {
        let sst = b"<?xml version=\"1.0\"?><sst xmlns=\"x\" count=\"1\" uniqueCount=\"999999999999\"><si><t>a</t></si></sst>";
        let e = read_xlsx(&archive(&[("xl/sharedStrings.xml", sst)])).unwrap_err();
        assert!(e.rule.contains(&MAX_CELLS.to_string()), "{e}");
        assert_eq!(announced_strings(b"<sst uniqueCount=\"12\">"), Some(12));
        assert_eq!(announced_strings(b"<sst count=\"3\">"), None);
    }
}
