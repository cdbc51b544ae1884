//! The staff lists over stored notices: the pending list (待办) and its
//! counts, the lists of both directions (已发送, ListNotices, 综合查询),
//! 已办, and the overdue lists. Each is one index walk per direction
//! (keyset paged, `paging`).

use super::notices::{NoticeRecord, notice_columns, notice_columns_from, open_sql, overdue_sql};
use super::paging::{Cursor, Order, keyset};
use super::{Result, Store, micros};
use crate::domain::{Category, Direction, IdNumber, NoticeKind, NoticeStatus, Urgency};
use sqlx::{QueryBuilder, Row};
use time::OffsetDateTime;

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
    /// The subject's name (姓名), exactly.
    pub subject_name: Option<String>,
    /// The short reference (编号), exactly.
    pub reference: Option<String>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
    pub limit: u32,
    /// The last (creation time, id) of the page before.
    pub after: Option<Cursor>,
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

impl Store {
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
            let mut q = QueryBuilder::<Db>::new(if f.subject_id.is_some() {
                notice_columns_from(<Db as super::Dialect>::BY_SUBJECT)
            } else {
                notice_columns()
            });
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
            if let Some(name) = &f.subject_name {
                q.push(" AND n.subject_name = ").push_bind(name.clone());
            }
            if let Some(r) = &f.reference {
                q.push(" AND n.reference = ").push_bind(r.clone());
            }
            if let Some(t) = f.created_from {
                q.push(" AND n.created_at >= ").push_bind(micros(t));
            }
            if let Some(t) = f.created_to {
                q.push(" AND n.created_at < ").push_bind(micros(t));
            }
            // A reference's one or two notices come by their own index and
            // are sorted after; `+` keeps the planner from walking every
            // notice by `notices_created` to find them. (A person's walk
            // `notices_subject` in order: `BY_SUBJECT`.)
            let time = if f.reference.is_some() {
                "+n.created_at"
            } else {
                "n.created_at"
            };
            keyset(
                &mut q,
                (time, "n.id"),
                Order::Descending,
                f.after.as_ref(),
                f.limit,
            );
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
    }

    /// Reminders (催办) per peer drawn by the notices of one direction
    /// received in `[from, to)`: (peer, notices reminded, reminders),
    /// most reminders first.
    pub async fn reminders_by_peer(
        &self,
        direction: Direction,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<(String, i64, i64)>> {
        with_pool!(self, read, |pool, Db| {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT peer, COUNT(*), CAST(SUM(reminders) AS BIGINT) FROM notices \
                 WHERE direction = $1 AND received_at >= $2 AND received_at < $3 AND reminders > 0 \
                 GROUP BY peer ORDER BY 3 DESC, peer",
            )
            .bind(direction as i32)
            .bind(micros(from))
            .bind(micros(to))
            .fetch_all(pool)
            .await?;
            Ok(rows)
        })
    }

    /// 已办: inbound notices this district signed for or answered, the
    /// latest of those acts first (the `notices_handled` index's order).
    pub async fn handled(&self, limit: u32, after: Option<&Cursor>) -> Result<Vec<NoticeRecord>> {
        with_pool!(self, read, |pool, Db| {
            let mut q =
                QueryBuilder::<Db>::new(notice_columns_from(<Db as super::Dialect>::BY_HANDLED));
            q.push(format!(
                " WHERE n.direction = {} AND (n.answered_at IS NOT NULL OR n.acknowledged_at IS NOT NULL)",
                Direction::Inbound as i32
            ));
            let key = ("COALESCE(n.answered_at, n.acknowledged_at)", "n.id");
            keyset(&mut q, key, Order::Descending, after, limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
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
