//! The destination's deadlines kept true to the holiday schedule.
//!
//! A working-day deadline counted past the last year the schedule covers
//! is provisional (时限（暂定）). When a newer schedule arrives (the node's
//! calendar file changed: `migrex calendar load`), the running node puts it
//! in force, counts every provisional deadline of its open inbound notices
//! again, and sends each change to the notice's origin as a reply
//! (`ReplyBody::DeadlineChange`), so both sides hold the same `due_at` and
//! both journeys show the change. The watcher here also warns, once a day,
//! while next year's schedule is missing.

use crate::calendar::Calendar;
use crate::context::NodeCtx;
use crate::domain::{DeadlineChange, Reply, ReplyBody};
use crate::service::{ServiceError, replies};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Provisional deadlines read per page while counting again.
const PAGE: u32 = 500;

/// What counting the provisional deadlines again did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recount {
    /// Deadlines looked at.
    pub provisional: usize,
    /// Deadlines that moved or stopped being provisional (each sent to its origin).
    pub changed: usize,
}

/// Counts every provisional deadline of an open inbound notice again with
/// the calendar in force; records and queues each one that changes, one
/// transaction per notice. A notice answered or withdrawn meanwhile keeps
/// its deadline (the reply rules refuse the change; nothing is written).
pub async fn count_again(ctx: &NodeCtx) -> Result<Recount, ServiceError> {
    let mut done = Recount::default();
    let mut after: Option<String> = None;
    loop {
        let page = ctx
            .store
            .provisional_deadlines(after.as_deref(), PAGE)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.notice_id.clone());
        for p in &page {
            done.provisional += 1;
            let due = ctx
                .deadlines
                .due_in_working_days(p.received_at, p.working_days);
            if due.at == p.due_at && due.provisional {
                continue;
            }
            let change = DeadlineChange {
                changed_at: ctx.now(),
                previous_due_at: p.due_at,
                due_at: due.at,
                provisional: due.provisional,
            };
            let mut tx = ctx.store.begin().await?;
            let Some(rec) = tx.get_notice(&p.notice_id).await? else {
                continue;
            };
            let reply_id =
                Reply::deadline_change_id(crate::domain::parse_uuid("id", rec.id())?, &change);
            match replies::record_own(
                ctx,
                &mut tx,
                &rec,
                ReplyBody::DeadlineChange(change),
                reply_id,
                "id",
            )
            .await
            {
                Ok(Some(route)) => {
                    tx.commit().await?;
                    ctx.wake(&route);
                    done.changed += 1;
                    tracing::info!(notice = %p.notice_id, origin = %p.origin, from = %p.due_at, to = %due.at, provisional = due.provisional, "deadline counted again with the newer holiday schedule (时限更新)");
                }
                Ok(None) => {}
                Err(ServiceError::Refused(e)) => {
                    tracing::debug!(notice = %p.notice_id, reason = %e, "deadline not counted again: the notice changed meanwhile");
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

/// Watches the node's calendar file until `shutdown`: counts provisional
/// deadlines again at start (a schedule may have been loaded while the node
/// was stopped) and whenever the file's content changes (after putting the
/// new calendar in force); warns once a day while a year's schedule is
/// missing. A file that cannot be read or does not check keeps the calendar
/// in force and is reported once an hour.
pub async fn watch(ctx: std::sync::Arc<NodeCtx>, shutdown: CancellationToken) {
    let file = ctx.calendar_file.clone();
    let mut seen = fingerprint(&file.path);
    let mut recount_due = true;
    let mut warned_on: Option<time::Date> = None;
    let mut failure_logged: Option<std::time::Instant> = None;
    loop {
        let today = ctx.deadlines.local_date(ctx.now());
        if warned_on != Some(today) {
            if let Some(year) = ctx.deadlines.missing_year(ctx.now()) {
                tracing::warn!(year, last_covered = ctx.deadlines.calendar().last_covered_year(), file = %file.path.display(), "the official holiday schedule (节假日安排) of {year} is not loaded: working-day deadlines into {year} are provisional (时限（暂定）); load it with `migrex calendar load FILE --config …`");
            }
            warned_on = Some(today);
        }
        if recount_due {
            match count_again(&ctx).await {
                Ok(r) => {
                    recount_due = false;
                    if r.provisional > 0 {
                        tracing::info!(
                            provisional = r.provisional,
                            changed = r.changed,
                            "provisional deadlines counted again"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count provisional deadlines again; trying again at the next look");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(file.refresh) => {},
            _ = shutdown.cancelled() => break,
        }
        let now_seen = fingerprint(&file.path);
        if now_seen == seen {
            continue;
        }
        match file.calendar() {
            Ok(calendar) => {
                log_loaded(&calendar, &file.path);
                ctx.deadlines.set_calendar(calendar);
                seen = now_seen;
                recount_due = true;
                failure_logged = None;
            }
            Err(e) => {
                if failure_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    tracing::warn!(file = %file.path.display(), error = %e, "cannot use the calendar file; the schedule in force stays");
                    failure_logged = Some(std::time::Instant::now());
                }
            }
        }
    }
}

fn log_loaded(calendar: &Calendar, path: &std::path::Path) {
    let from_file: Vec<i32> = calendar
        .covered_years()
        .filter(|(_, source)| std::path::Path::new(source) == path)
        .map(|(y, _)| y)
        .collect();
    tracing::info!(file = %path.display(), years = ?from_file, last_covered = calendar.last_covered_year(), "holiday schedule loaded (节假日安排)");
}

/// What the calendar file holds now (its SHA-256), or None when it cannot
/// be read: a change of either is a change to act on.
fn fingerprint(path: &std::path::Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > crate::calendar::MAX_FILE_BYTES {
        return Some(meta.len().to_be_bytes().to_vec());
    }
    std::fs::read(path).ok().map(|b| Sha256::digest(b).to_vec())
}
