//! The events notices report (subject, kind, event date), and the look-up
//! of a received batch's open events, by which a second notice of the same
//! event is told apart.

use super::notices::PARAMS_PER_LOOKUP;
use super::{Dialect, Result, Tx};
use crate::domain::{Direction, NoticeContent, NoticeStatus};
use sqlx::{QueryBuilder, Row};

/// One event a notice reports: its subject, kind and event date. Two
/// open inbound notices with the same key report the same event twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub subject: String,
    pub kind: i64,
    pub event_date: String,
}

impl EventKey {
    pub fn of(c: &NoticeContent) -> Self {
        EventKey {
            subject: c.subject.id_number.as_str().to_string(),
            kind: c.kind() as i64,
            event_date: crate::domain::format_date(c.event_date()),
        }
    }
}

impl Tx {
    /// For each event of `contents` (subject, kind, event date), the
    /// earliest received still-open inbound notice about it, if any: one
    /// statement per chunk of subjects, walking the event index.
    pub async fn open_events(
        &mut self,
        contents: &[&NoticeContent],
    ) -> Result<std::collections::HashMap<EventKey, String>> {
        let wanted: std::collections::HashSet<EventKey> =
            contents.iter().map(|c| EventKey::of(c)).collect();
        let mut subjects: Vec<&str> = wanted.iter().map(|k| k.subject.as_str()).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let mut earliest: std::collections::HashMap<EventKey, (i64, String)> =
            std::collections::HashMap::new();
        for chunk in subjects.chunks(PARAMS_PER_LOOKUP) {
            with_tx!(self, |conn, Db| {
                // The subjects alone choose the rows, in a fenced subquery:
                // given `direction` and `status` too, both planners read
                // notices_pending and walk every open inbound notice for
                // each batch (PostgreSQL: 36 ms a batch at 100,000 open).
                let mut q = QueryBuilder::<Db>::new(format!(
                    "SELECT subject_id, kind, event_date, id, received_at FROM \
                     (SELECT subject_id, kind, event_date, id, received_at, direction, status FROM {} WHERE subject_id IN (",
                    <Db as Dialect>::BY_EVENT
                ));
                let mut list = q.separated(", ");
                for s in chunk {
                    list.push_bind(*s);
                }
                q.push(format!(
                    ") {}) n WHERE direction = ",
                    <Db as Dialect>::FENCE
                ))
                .push_bind(Direction::Inbound as i32)
                .push(" AND status IN (")
                .push_bind(NoticeStatus::Pending as i32)
                .push(", ")
                .push_bind(NoticeStatus::Acknowledged as i32)
                .push(")");
                let [before, after] = <Db as Dialect>::INDEX_ONLY;
                if !before.is_empty() {
                    sqlx::query(before).execute(&mut *conn).await?;
                }
                let rows = q.build().fetch_all(&mut *conn).await?;
                if !after.is_empty() {
                    sqlx::query(after).execute(&mut *conn).await?;
                }
                for r in rows {
                    let key = EventKey {
                        subject: r.get("subject_id"),
                        kind: r.get::<i64, _>("kind"),
                        event_date: r.get("event_date"),
                    };
                    if !wanted.contains(&key) {
                        continue;
                    }
                    let at = r.get::<Option<i64>, _>("received_at").unwrap_or(i64::MAX);
                    let id: String = r.get("id");
                    match earliest.get(&key) {
                        Some((t, first)) if (*t, first.as_str()) <= (at, id.as_str()) => {}
                        _ => {
                            earliest.insert(key, (at, id));
                        }
                    }
                }
            });
        }
        Ok(earliest.into_iter().map(|(k, (_, id))| (k, id)).collect())
    }
}
