//! Notices as stored: the record both sides read, the filters of the
//! staff lists, inserting (one or many), and the reads by id.

use super::paging::{Cursor, Order, keyset};
use super::{Cols, ItemKind, NewOutboxItem, Result, Store, StoreError, Tx, from_micros, micros};
use crate::calendar::{Due, month_key};
use crate::domain::{
    Category, DeadlineChange, Direction, IdNumber, Lifecycle, NoticeContent, NoticeKind,
    NoticeStatus, ReplySort, Urgency,
};
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

    fn from_row<R: Cols>(row: &R) -> Result<Self> {
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
fn notice_columns() -> String {
    format!(
        "SELECT n.*, o.attempts, o.last_error FROM notices n \
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

/// The pending list's rule: inbound notices still owing the reply they
/// need. For an inbound notice "open" is exactly "pending, or signed for
/// while it needs feedback" (it is answered only with its feedback, and
/// withdrawn only by its origin).
fn awaiting_our_reply<DB: sqlx::Database>(q: &mut QueryBuilder<DB>)
where
    for<'t> i32: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE n.direction = ")
        .push_bind(Direction::Inbound as i32)
        .push(" AND ")
        .push(open_sql("n."));
}

/// How many notices await our reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingCounts {
    pub total: i64,
    /// Past their deadline.
    pub overdue: i64,
    /// Not yet overdue, and due by the time asked about.
    pub due_soon: i64,
}

/// Narrows a list query to rows whose enum `column` holds `value`, if given.
fn and_eq<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, column: &str, value: Option<i32>)
where
    for<'t> i32: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(v) = value {
        q.push(" AND ").push(column).push(" = ").push_bind(v);
    }
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

/// Filters of `Desk.ListPending`.
#[derive(Debug, Clone, Default)]
pub struct PendingFilter {
    pub kind: Option<NoticeKind>,
    pub category: Option<Category>,
    pub urgency: Option<Urgency>,
    pub overdue_only: bool,
    pub due_before: Option<OffsetDateTime>,
    pub limit: u32,
    /// The last (deadline, id) of the page before.
    pub after: Option<Cursor>,
}

/// Filters of `Desk.ListNotices`.
#[derive(Debug, Clone, Default)]
pub struct NoticeFilter {
    pub direction: Option<Direction>,
    pub status: Option<NoticeStatus>,
    pub kind: Option<NoticeKind>,
    /// Digits the peer's district code starts with.
    pub peer_prefix: Option<String>,
    pub subject_id: Option<IdNumber>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
    pub limit: u32,
    /// The last (creation time, id) of the page before.
    pub after: Option<Cursor>,
}

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
}

impl Store {
    /// Registers `notices` (each with its route) and queues them, with the
    /// access audit's entries of the registration, in one transaction.
    pub async fn insert_outbound(
        &self,
        notices: &[(NoticeContent, String)],
        audit: &[crate::audit::Access],
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
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

    /// How many inbound notices await our reply: all of them, those past
    /// their deadline at `now`, and those due by `soon`.
    pub async fn pending_counts(
        &self,
        now: OffsetDateTime,
        soon: OffsetDateTime,
    ) -> Result<PendingCounts> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN n.due_at <= ",
            );
            q.push_bind(micros(now))
                .push(" THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN n.due_at > ")
                .push_bind(micros(now))
                .push(" AND n.due_at <= ")
                .push_bind(micros(soon))
                .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) FROM notices n");
            awaiting_our_reply(&mut q);
            // Every open inbound notice has a deadline; saying so steers
            // SQLite's planner to the `notices_open` range (without it, it
            // counts through a wider covering index).
            q.push(" AND n.due_at > ").push_bind(i64::MIN);
            let row = q.build().fetch_one(pool).await?;
            Ok(PendingCounts {
                total: row.get(0),
                overdue: row.get(1),
                due_soon: row.get(2),
            })
        })
    }

    /// Inbound notices still waiting for their reply, oldest deadline first.
    pub async fn list_pending(
        &self,
        f: &PendingFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<NoticeRecord>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(notice_columns());
            awaiting_our_reply(&mut q);
            and_eq(&mut q, "n.kind", f.kind.map(|k| k as i32));
            and_eq(&mut q, "n.category", f.category.map(|c| c as i32));
            and_eq(&mut q, "n.urgency", f.urgency.map(|u| u as i32));
            if f.overdue_only {
                q.push(" AND n.due_at <= ").push_bind(micros(now));
            }
            if let Some(before) = f.due_before {
                q.push(" AND n.due_at <= ").push_bind(micros(before));
            }
            let key = ("n.due_at", "n.id");
            keyset(&mut q, key, Order::Ascending, f.after.as_ref(), f.limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
    }

    /// Notices of both directions, newest first. Each direction is its
    /// own walk of the `notices_created` index, one page long; without a
    /// direction the two pages are merged (a planner would sort the whole
    /// table instead).
    pub async fn list_notices(&self, f: &NoticeFilter) -> Result<Vec<NoticeRecord>> {
        if let Some(d) = f.direction {
            return self.list_notices_of(d, f).await;
        }
        let mut all = Vec::new();
        for d in [Direction::Inbound, Direction::Outbound] {
            all.extend(self.list_notices_of(d, f).await?);
        }
        let created = |r: &NoticeRecord| Some(r.life.created_at);
        Ok(merged(all, created, Order::Descending, f.limit))
    }

    async fn list_notices_of(&self, d: Direction, f: &NoticeFilter) -> Result<Vec<NoticeRecord>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(notice_columns());
            q.push(" WHERE n.direction = ").push_bind(d as i32);
            and_eq(&mut q, "n.status", f.status.map(|s| s as i32));
            and_eq(&mut q, "n.kind", f.kind.map(|k| k as i32));
            if let Some(p) = &f.peer_prefix {
                q.push(" AND n.peer LIKE ").push_bind(format!("{p}%"));
            }
            if let Some(s) = &f.subject_id {
                q.push(" AND n.subject_id = ")
                    .push_bind(s.as_str().to_string());
            }
            if let Some(t) = f.created_from {
                q.push(" AND n.created_at >= ").push_bind(micros(t));
            }
            if let Some(t) = f.created_to {
                q.push(" AND n.created_at < ").push_bind(micros(t));
            }
            let key = ("n.created_at", "n.id");
            keyset(&mut q, key, Order::Descending, f.after.as_ref(), f.limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
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

    /// Notices still without the reply they need at `now`, past their
    /// deadline, oldest deadline first; `direction` None means both.
    pub async fn overdue(
        &self,
        direction: Option<Direction>,
        now: OffsetDateTime,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Vec<NoticeRecord>> {
        let Some(d) = direction else {
            let mut all = Vec::new();
            for d in [Direction::Inbound, Direction::Outbound] {
                all.extend(Box::pin(self.overdue(Some(d), now, limit, after)).await?);
            }
            return Ok(merged(all, |r| r.life.due_at, Order::Ascending, limit));
        };
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(notice_columns());
            q.push(" WHERE n.direction = ")
                .push_bind(d as i32)
                .push(" AND ")
                .push(overdue_sql("n."))
                .push_bind(micros(now));
            keyset(&mut q, ("n.due_at", "n.id"), Order::Ascending, after, limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
    }
}

/// Pages of both directions (each one index walk) as one page: merged in
/// the list's order of (time, id), cut to `limit`.
fn merged(
    mut all: Vec<NoticeRecord>,
    at: impl Fn(&NoticeRecord) -> Option<OffsetDateTime>,
    order: Order,
    limit: u32,
) -> Vec<NoticeRecord> {
    all.sort_by(|a, b| {
        let o = (at(a), a.id()).cmp(&(at(b), b.id()));
        match order {
            Order::Ascending => o,
            Order::Descending => o.reverse(),
        }
    });
    all.truncate(limit as usize);
    all
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
        }])
        .await
    }

    /// Inserts notices with multi-row statements; an id already stored
    /// fails the call with `Conflict` naming that id.
    pub async fn insert_notices(&mut self, rows: &[NewNotice<'_>]) -> Result<()> {
        with_tx!(self, |conn, Db| {
            // SQLite allows 32,766 parameters per statement; a row binds 25.
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
                     answered_at, feedback, due_provisional, due_working_days) ",
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
                        .push_bind(n.received.and_then(|(_, d)| d.working_days).map(i64::from));
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
