//! Provisional deadlines (时限（暂定）): the open inbound notices whose
//! deadline was counted past the holiday schedule's last covered year, the
//! conditional update that records a deadline counted again (on both
//! sides), and the journey's deadline changes read back.

use super::notices::open_sql;
use super::{Result, Store, StoreError, Tx, from_micros, micros};
use crate::domain::{DeadlineChange, Direction, Reply, ReplyBody};
use crate::pb;
use prost::Message;
use sqlx::{QueryBuilder, Row};
use time::OffsetDateTime;

/// An open inbound notice whose deadline is provisional: what counting it
/// again needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionalDeadline {
    pub notice_id: String,
    /// The district that sent it: where the change goes.
    pub origin: String,
    pub received_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub working_days: u32,
}

impl Store {
    /// Open inbound notices with a provisional working-day deadline, after
    /// `after` (a notice id) in id order, at most `limit`: read through the
    /// small `notices_provisional` index.
    pub async fn provisional_deadlines(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ProvisionalDeadline>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT id, origin, received_at, due_at, due_working_days FROM notices \
                 WHERE due_provisional = 1 AND direction = ",
            );
            q.push_bind(Direction::Inbound as i32)
                .push(" AND due_working_days IS NOT NULL AND received_at IS NOT NULL AND ")
                .push(open_sql(""));
            if let Some(a) = after {
                q.push(" AND id > ").push_bind(a.to_string());
            }
            q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            let rows = q.build().fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    let id: String = r.get("id");
                    let corrupt = || StoreError::Corrupt(format!("notice {id}: due_at"));
                    Ok(ProvisionalDeadline {
                        origin: r.get("origin"),
                        received_at: from_micros(r.get("received_at")),
                        due_at: from_micros(r.get::<Option<i64>, _>("due_at").ok_or_else(corrupt)?),
                        working_days: u32::try_from(r.get::<i64, _>("due_working_days"))
                            .map_err(|_| corrupt())?,
                        notice_id: id,
                    })
                })
                .collect()
        })
    }

    /// The deadline changes of one notice, oldest first.
    pub async fn deadline_changes(&self, notice_id: &str) -> Result<Vec<DeadlineChange>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT content FROM replies WHERE notice_id = $1 AND sort = $2 ORDER BY created_at, reply_id",
            )
            .bind(notice_id)
            .bind(ReplyBody::DEADLINE_CHANGE)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let corrupt = || StoreError::Corrupt(format!("a reply of notice {notice_id}"));
                    let wire = pb::Reply::decode(r.get::<Vec<u8>, _>("content").as_slice())
                        .map_err(|_| corrupt())?;
                    match Reply::parse(&wire).map_err(|_| corrupt())?.body {
                        ReplyBody::DeadlineChange(c) => Ok(c),
                        _ => Err(corrupt()),
                    }
                })
                .collect()
        })
    }
}

impl Tx {
    /// Records a deadline counted again, only while the notice holds the
    /// provisional deadline it replaces and still awaits its reply (the
    /// state `Lifecycle::check` accepted): otherwise `Stale`.
    pub async fn set_due(&mut self, id: &str, change: &DeadlineChange) -> Result<()> {
        let done = with_tx!(self, |conn, Db| {
            let mut q = QueryBuilder::<Db>::new("UPDATE notices SET due_at = ");
            q.push_bind(micros(change.due_at))
                .push(", due_provisional = ")
                .push_bind(i32::from(change.provisional))
                .push(" WHERE id = ")
                .push_bind(id.to_string())
                .push(" AND due_provisional = 1 AND due_at = ")
                .push_bind(micros(change.previous_due_at))
                .push(" AND ")
                .push(open_sql(""));
            q.build().execute(&mut *conn).await?.rows_affected()
        });
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::Stale(id.to_string()))
        }
    }
}
