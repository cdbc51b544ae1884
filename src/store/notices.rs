//! Notices as stored: the record both sides read, inserting (one or
//! many, with their references), and the reads by id. The staff lists
//! are in `lists`.

use super::{Cols, ItemKind, NewOutboxItem, Result, Store, StoreError, Tx, from_micros, micros};
use crate::calendar::{Due, month_key};
use crate::domain::{DeadlineChange, Direction, Lifecycle, NoticeContent, NoticeStatus, ReplySort};
use crate::pb;
use prost::Message;
use sqlx::{QueryBuilder, Row};
use time::OffsetDateTime;

/// A notice as stored: its content, its life cycle, and what the node
/// keeps beside them.
#[derive(Debug, Clone)]
pub struct NoticeRecord {
    pub content: pb::Notice,
    pub life: Lifecycle,
    pub peer: String,
    pub acknowledged_by: Option<String>,
    pub feedback: Option<pb::Feedback>,
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdraw_reason: Option<String>,
    pub duplicate_of: Option<String>,
    pub delivery_attempts: u32,
    pub last_error: Option<String>,
    /// Each time the destination counted a provisional deadline again,
    /// oldest first (read with one notice, not with lists).
    pub deadline_changes: Vec<DeadlineChange>,
    /// Outbound: the relay (中转) that took it for the destination, and when.
    pub relayed: Option<(String, OffsetDateTime)>,
}

impl NoticeRecord {
    pub fn id(&self) -> &str {
        &self.content.id
    }

    pub(super) fn from_row<R: Cols>(row: &R) -> Result<Self> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("notice {}: {what}", row.text("id")));
        let content =
            pb::Notice::decode(row.bytes("content").as_slice()).map_err(|_| corrupt("content"))?;
        let feedback = row
            .opt_bytes("feedback")
            .map(|b| pb::Feedback::decode(b.as_slice()))
            .transpose()
            .map_err(|_| corrupt("feedback"))?;
        let ts = |col: &str| row.opt_int(col).map(from_micros);
        let code = |col: &str| row.int(col) as i32;
        Ok(NoticeRecord {
            content,
            life: Lifecycle {
                direction: Direction::try_from(code("direction"))
                    .map_err(|_| corrupt("direction"))?,
                status: NoticeStatus::try_from(code("status")).map_err(|_| corrupt("status"))?,
                reply_required: ReplySort::try_from(code("reply_required"))
                    .map_err(|_| corrupt("reply_required"))?,
                created_at: from_micros(row.int("created_at")),
                received_at: ts("received_at"),
                due_at: ts("due_at"),
                due_provisional: row.int("due_provisional") != 0,
                acknowledged_at: ts("acknowledged_at"),
                answered_at: ts("answered_at"),
                reminded_at: ts("reminded_at"),
                reminders: u32::try_from(row.int("reminders")).unwrap_or(0),
            },
            peer: row.text("peer"),
            acknowledged_by: row.opt_text("acknowledged_by"),
            feedback,
            withdrawn_at: ts("withdrawn_at"),
            withdraw_reason: row.opt_text("withdraw_reason"),
            duplicate_of: row.opt_text("duplicate_of"),
            delivery_attempts: row.opt_int("attempts").unwrap_or(0) as u32,
            last_error: row.opt_text("last_error"),
            deadline_changes: Vec::new(),
            relayed: row.opt_text("relayed_by").zip(ts("relayed_at")),
        })
    }
}

/// The select of a `NoticeRecord`: the notice and its outbox row's delivery state.
pub(super) fn notice_columns() -> String {
    notice_columns_from("notices n")
}

/// `notice_columns` from `table`, which names the notices table as `n`
/// (with an index hint, say).
pub(super) fn notice_columns_from(table: &str) -> String {
    format!(
        "SELECT n.*, o.attempts, o.last_error FROM {table} \
         LEFT JOIN outbox o ON o.notice_id = n.id AND o.item = {}",
        ItemKind::Notice as i32
    )
}

/// A notice still owes the reply it needs: not withdrawn, not answered,
/// and either feedback is needed or it is not yet signed for
/// (`domain::Lifecycle::overdue` without its deadline). Written with
/// literal codes, as the WHERE of the `notices_open` partial index spells
/// it (see the migrations), so that both planners walk that index.
/// `alias` is the table's alias with its dot, or "".
pub(super) fn open_sql(alias: &str) -> String {
    format!(
        "{alias}status <> {withdrawn} AND {alias}answered_at IS NULL \
         AND ({alias}reply_required = {feedback} OR {alias}acknowledged_at IS NULL)",
        withdrawn = NoticeStatus::Withdrawn as i32,
        feedback = ReplySort::Feedback as i32,
    )
}

/// `domain::Lifecycle::overdue` in SQL, the one place it is written there:
/// open (`open_sql`) and due at or before the report time, whose
/// placeholder the caller appends to the text.
pub(super) fn overdue_sql(alias: &str) -> String {
    format!("{} AND {alias}due_at <= ", open_sql(alias))
}

/// What a node holds of a notice it received: enough to answer a
/// redelivery with the original acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    pub content_hash: Vec<u8>,
    pub received_at: Option<OffsetDateTime>,
    pub due_at: Option<OffsetDateTime>,
    pub due_provisional: bool,
}

/// Values bound per look-up statement (SQLite allows 32,766 in all).
pub(super) const PARAMS_PER_LOOKUP: usize = 900;

/// A notice to insert, with what is already known of its life.
pub struct NewNotice<'a> {
    pub content: &'a NoticeContent,
    pub direction: Direction,
    pub status: NoticeStatus,
    /// received_at and the deadline, once delivered.
    pub received: Option<(OffsetDateTime, Due)>,
    pub duplicate_of: Option<String>,
    /// Receipt: when and by whom.
    pub acknowledged: Option<(OffsetDateTime, &'a str)>,
    pub answered: Option<(OffsetDateTime, &'a pb::Feedback)>,
    /// The references of the notice's own proof and its acknowledgement's
    /// (`store::Refs::take_notice`), written with the row.
    pub proofs: super::proofs::NoticeRefs,
}

impl Store {
    /// Registers `notices` (each with its route) and queues them, with the
    /// access audit's entries of the registration, in one transaction.
    /// Each notice gets its short reference (编号) of `day` (the origin's
    /// Beijing date) here, in the same transaction.
    pub async fn insert_outbound(
        &self,
        notices: &mut [(NoticeContent, String)],
        day: time::Date,
        audit: &[crate::audit::Access],
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut origins: Vec<crate::domain::DistrictCode> =
            notices.iter().map(|(c, _)| c.origin.clone()).collect();
        origins.sort();
        origins.dedup();
        for origin in origins {
            let count = notices.iter().filter(|(c, _)| c.origin == origin).count() as u64;
            let last = tx.take_references(origin.as_str(), day, count).await?;
            let mine = notices.iter_mut().filter(|(c, _)| c.origin == origin);
            for ((c, _), n) in mine.zip(last + 1 - count..) {
                c.reference = Some(crate::domain::format_reference(&origin, day, n));
            }
        }
        let notices = &*notices;
        let rows: Vec<NewNotice> = notices
            .iter()
            .map(|(content, _)| NewNotice {
                content,
                direction: Direction::Outbound,
                status: NoticeStatus::Queued,
                received: None,
                duplicate_of: None,
                acknowledged: None,
                answered: None,
                proofs: (None, None),
            })
            .collect();
        tx.insert_notices(&rows).await?;
        let ids: Vec<String> = notices.iter().map(|(c, _)| c.id.to_string()).collect();
        let items: Vec<NewOutboxItem> = notices
            .iter()
            .zip(&ids)
            .map(|((content, route), id)| NewOutboxItem {
                route,
                target: content.destination.as_str(),
                kind: ItemKind::Notice,
                notice_id: id,
                reply_id: None,
                payload: content.to_wire().encode_to_vec(),
            })
            .collect();
        tx.enqueue_all(&items, now).await?;
        tx.append_audit(audit, now).await?;
        tx.commit().await
    }

    /// One notice, with its deadline changes.
    pub async fn get_notice(&self, id: &str) -> Result<Option<NoticeRecord>> {
        let found = with_pool!(self, read, |pool, Db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{} WHERE n.id = $1",
                notice_columns()
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(NoticeRecord::from_row).transpose()?
        });
        let Some(mut rec) = found else {
            return Ok(None);
        };
        rec.deadline_changes = self.deadline_changes(id).await?;
        Ok(Some(rec))
    }

    /// Fills `subject_name` (综合查询 by 姓名) from the content of notices
    /// stored before the column existed, a thousand at a time; a content
    /// that does not decode gets "" and is left to `notice show`'s error.
    pub(super) async fn backfill_names(&self) -> Result<u64> {
        let mut filled = 0;
        loop {
            let rows: Vec<(String, Vec<u8>)> = with_pool!(self, write, |pool, Db| {
                sqlx::query_as(
                    "SELECT id, content FROM notices WHERE subject_name IS NULL LIMIT 1000",
                )
                .fetch_all(pool)
                .await?
            });
            if rows.is_empty() {
                return Ok(filled);
            }
            let mut tx = self.begin().await?;
            for (id, content) in &rows {
                let name = pb::Notice::decode(content.as_slice())
                    .ok()
                    .and_then(|n| n.subject)
                    .map(|p| p.name.trim().to_string())
                    .unwrap_or_default();
                tx.set_subject_name(id, &name).await?;
            }
            tx.commit().await?;
            filled += rows.len() as u64;
        }
    }

    /// How many notices of a direction are stored (tests and the demo count rows).
    pub async fn count_notices(&self, direction: Direction) -> Result<i64> {
        with_pool!(self, read, |pool, Db| {
            Ok(
                sqlx::query("SELECT COUNT(*) FROM notices WHERE direction = $1")
                    .bind(direction as i32)
                    .fetch_one(pool)
                    .await?
                    .get(0),
            )
        })
    }

    pub async fn count_notices_with_status(
        &self,
        direction: Direction,
        status: NoticeStatus,
    ) -> Result<i64> {
        with_pool!(self, read, |pool, Db| {
            Ok(
                sqlx::query("SELECT COUNT(*) FROM notices WHERE direction = $1 AND status = $2")
                    .bind(direction as i32)
                    .bind(status as i32)
                    .fetch_one(pool)
                    .await?
                    .get(0),
            )
        })
    }
}

impl Tx {
    /// The stored content hash, received_at and due_at of each of `ids`
    /// that is known, by id: one statement per chunk of ids.
    pub async fn notice_receipts(
        &mut self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, StoredReceipt>> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(PARAMS_PER_LOOKUP) {
            with_tx!(self, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new(
                    "SELECT id, content_hash, received_at, due_at, due_provisional FROM notices WHERE id IN (",
                );
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                q.push(")");
                for r in q.build().fetch_all(&mut *conn).await? {
                    found.insert(
                        r.get("id"),
                        StoredReceipt {
                            content_hash: r.get("content_hash"),
                            received_at: r.get::<Option<i64>, _>("received_at").map(from_micros),
                            due_at: r.get::<Option<i64>, _>("due_at").map(from_micros),
                            due_provisional: r.get::<i64, _>("due_provisional") != 0,
                        },
                    );
                }
            });
        }
        Ok(found)
    }

    pub async fn insert_notice(
        &mut self,
        c: &NoticeContent,
        direction: Direction,
        status: NoticeStatus,
        received: Option<(OffsetDateTime, OffsetDateTime, Option<String>)>,
    ) -> Result<()> {
        let (received, duplicate_of) = match received {
            Some((r, d, dup)) => (Some((r, Due::fixed(d))), dup),
            None => (None, None),
        };
        self.insert_notices(&[NewNotice {
            content: c,
            direction,
            status,
            received,
            duplicate_of,
            acknowledged: None,
            answered: None,
            proofs: (None, None),
        }])
        .await
    }

    /// Inserts notices with multi-row statements; an id already stored
    /// fails the call with `Conflict` naming that id.
    pub async fn insert_notices(&mut self, rows: &[NewNotice<'_>]) -> Result<()> {
        with_tx!(self, |conn, Db| {
            // SQLite allows 32,766 parameters per statement; a row binds 29.
            for chunk in rows.chunks(1000) {
                // Checked before inserting: on PostgreSQL a failed statement
                // spoils the whole transaction.
                let mut seen = std::collections::HashSet::new();
                if let Some(n) = chunk.iter().find(|n| !seen.insert(n.content.id)) {
                    return Err(StoreError::Conflict(n.content.id.to_string()));
                }
                let mut find = QueryBuilder::<Db>::new("SELECT id FROM notices WHERE id IN (");
                let mut ids = find.separated(", ");
                for n in chunk {
                    ids.push_bind(n.content.id.to_string());
                }
                find.push(") LIMIT 1");
                let stored: Option<String> =
                    find.build_query_scalar().fetch_optional(&mut *conn).await?;
                if let Some(id) = stored {
                    return Err(StoreError::Conflict(id));
                }
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO notices (id, direction, peer, origin, destination, kind, category, urgency, \
                     reply_required, subject_id, event_date, content, content_hash, status, created_at, \
                     received_at, due_at, duplicate_of, received_month, acknowledged_at, acknowledged_by, \
                     answered_at, feedback, due_provisional, due_working_days, reference, \
                     subject_name, notice_proof, ack_proof) ",
                );
                q.push_values(chunk, |mut b, n| {
                    let c = n.content;
                    let peer = match n.direction {
                        Direction::Inbound => c.origin.as_str(),
                        _ => c.destination.as_str(),
                    };
                    b.push_bind(c.id.to_string())
                        .push_bind(n.direction as i32)
                        .push_bind(peer.to_string())
                        .push_bind(c.origin.as_str().to_string())
                        .push_bind(c.destination.as_str().to_string())
                        .push_bind(c.kind() as i32)
                        .push_bind(c.category as i32)
                        .push_bind(c.urgency as i32)
                        .push_bind(c.reply_required as i32)
                        .push_bind(c.subject.id_number.as_str().to_string())
                        .push_bind(crate::domain::format_date(c.event_date()))
                        .push_bind(c.to_wire().encode_to_vec())
                        .push_bind(c.content_hash())
                        .push_bind(n.status as i32)
                        .push_bind(micros(c.created_at))
                        .push_bind(n.received.map(|(r, _)| micros(r)))
                        .push_bind(n.received.map(|(_, d)| micros(d.at)))
                        .push_bind(n.duplicate_of.clone())
                        .push_bind(n.received.map(|(r, _)| month_key(self.tz, r)))
                        .push_bind(n.acknowledged.map(|(at, _)| micros(at)))
                        .push_bind(n.acknowledged.map(|(_, by)| by.to_string()))
                        .push_bind(n.answered.map(|(at, _)| micros(at)))
                        .push_bind(n.answered.map(|(_, fb)| fb.encode_to_vec()))
                        .push_bind(i32::from(n.received.is_some_and(|(_, d)| d.provisional)))
                        .push_bind(n.received.and_then(|(_, d)| d.working_days).map(i64::from))
                        .push_bind(c.reference.clone())
                        .push_bind(c.subject.name.clone())
                        .push_bind(n.proofs.0.clone())
                        .push_bind(n.proofs.1.clone());
                });
                match q.build().execute(&mut *conn).await {
                    // Another replica stored one of them since the check above.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(StoreError::Conflict(chunk[0].content.id.to_string()));
                    }
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
            }
            Ok(())
        })
    }

    async fn set_subject_name(&mut self, id: &str, name: &str) -> Result<()> {
        with_tx!(self, |conn, Db| {
            sqlx::query("UPDATE notices SET subject_name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Takes `count` references of `origin` on `day`; returns the last
    /// number taken (the first is `last + 1 - count`).
    async fn take_references(&mut self, origin: &str, day: time::Date, count: u64) -> Result<u64> {
        let key = format!(
            "{origin}-{:04}{:02}{:02}",
            day.year(),
            day.month() as u8,
            day.day()
        );
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let last: i64 = with_tx!(self, |conn, Db| {
            sqlx::query_scalar(
                "INSERT INTO reference_counters (key, last) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET last = reference_counters.last + $2 \
                 RETURNING last",
            )
            .bind(&key)
            .bind(count)
            .fetch_one(&mut *conn)
            .await?
        });
        Ok(last as u64)
    }

    pub async fn get_notice(&mut self, id: &str) -> Result<Option<NoticeRecord>> {
        with_tx!(self, |conn, Db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{} WHERE n.id = $1",
                notice_columns()
            )))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(NoticeRecord::from_row).transpose()
        })
    }
}
