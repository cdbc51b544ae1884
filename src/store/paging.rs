//! Keyset paging of the notice lists. A page starts right after the last
//! row of the page before, named by its (time, id) in the list's order, so
//! every page — the first and the thousandth — is an index walk that reads
//! one page of rows; nothing is counted off and thrown away.

use super::micros;
use sqlx::QueryBuilder;
use std::fmt;
use time::OffsetDateTime;

/// Where the next page of a list starts: the last row shown, by the time
/// the list is ordered on (deadline, creation) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: String,
}

impl Cursor {
    /// Reads the text form a page token or a link carries
    /// (`<microseconds since 1970>_<uuid>`); None for anything else.
    pub fn parse(s: &str) -> Option<Cursor> {
        let (us, id) = s.split_once('_')?;
        let us: i64 = us.parse().ok()?;
        // Checked: a forged token far outside the calendar is refused, not a panic.
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()?;
        let id = uuid::Uuid::parse_str(id).ok()?;
        Some(Cursor {
            at,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", micros(self.at), self.id)
    }
}

/// Which way a list runs over its (time, id) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Oldest first (deadlines).
    Ascending,
    /// Newest first (what was sent).
    Descending,
}

/// Ends a list query: only rows after `after` in the order of
/// `(time, id)`, that order, and at most `limit` rows.
pub(super) fn keyset<DB: sqlx::Database>(
    q: &mut QueryBuilder<DB>,
    (time, id): (&str, &str),
    order: Order,
    after: Option<&Cursor>,
    limit: u32,
) where
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let (cmp, dir) = match order {
        Order::Ascending => (">", "ASC"),
        Order::Descending => ("<", "DESC"),
    };
    if let Some(c) = after {
        q.push(format!(" AND ({time}, {id}) {cmp} ("))
            .push_bind(micros(c.at))
            .push(", ")
            .push_bind(c.id.clone())
            .push(")");
    }
    q.push(format!(" ORDER BY {time} {dir}, {id} {dir} LIMIT "))
        .push_bind(i64::from(limit));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_writes_and_nothing_else() {
        let c = Cursor {
            at: time::macros::datetime!(2026-11-23 10:00:00.123456 UTC),
            id: "6f1c2a4e-9f4b-4a53-8a2e-3d8f1b2c4d5e".into(),
        };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        for bad in [
            "",
            "12",
            "x_6f1c2a4e-9f4b-4a53-8a2e-3d8f1b2c4d5e",
            "12_not-a-uuid",
            "9223372036854775807_6f1c2a4e-9f4b-4a53-8a2e-3d8f1b2c4d5e",
            "12_6f1c2a4e-9f4b-4a53-8a2e-3d8f1b2c4d5e' OR 1=1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
