//! The access audit in the staff work: which accesses an operation
//! records (every notice returned with its person's details, every notice
//! written), inquiries (who looked at this person, what did this token
//! look at) and the check of the chain. Reads record in a transaction of
//! their own right after the read; writes record in their own transaction
//! (`notices::submit`, `replies`).

use super::Result;
use crate::audit::checkpoint::{Agreement, Checkpoint};
use crate::audit::{Access, Broken, ChainCheck, ChainKey, Entry, SubjectKey};
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::store::{AuditQuery, NoticeRecord, Store};

/// The accesses of `caller` doing `operation` on notices about `subjects`
/// (notice id, ID number).
pub fn accesses<'a>(
    key: &SubjectKey,
    caller: &Caller,
    operation: &str,
    subjects: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Access> {
    subjects
        .into_iter()
        .map(|(notice_id, id_number)| Access {
            actor: caller.name.clone(),
            token: caller.token,
            operation: operation.to_string(),
            notice_id: notice_id.to_string(),
            subject: key.hash(id_number),
            address: caller.address.clone(),
        })
        .collect()
}

/// Records that `caller` read `records`: with their people's details, or,
/// for a monitor, masked (the entry's operation says `(masked)`: no
/// personal data was shown). Every read of a notice leaves a trace.
pub async fn record_reads(
    ctx: &NodeCtx,
    caller: &Caller,
    operation: &str,
    records: &[NoticeRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let masked;
    let operation = if caller.sees_personal_data() {
        operation
    } else {
        masked = format!("{operation} (masked)");
        masked.as_str()
    };
    let subjects = records.iter().map(|r| {
        (
            r.id(),
            r.content
                .subject
                .as_ref()
                .map_or("", |s| s.id_number.as_str()),
        )
    });
    let entries = accesses(&ctx.audit_key, caller, operation, subjects);
    ctx.store.append_audit(&entries, ctx.now()).await?;
    Ok(())
}

/// What an inquiry asks about.
#[derive(Debug, Clone, Default)]
pub struct Inquiry {
    /// A person's ID number: who looked at them.
    pub subject: Option<String>,
    /// A token holder's or account's name, or a token's id: what they looked at.
    pub actor: Option<String>,
    pub after: i64,
    pub limit: u32,
}

/// Entries matching `q`, oldest first (for supervisors and administrators).
pub async fn show(ctx: &NodeCtx, caller: &Caller, q: Inquiry) -> Result<Vec<Entry>> {
    caller.require_supervisor()?;
    Ok(inquire(&ctx.store, &ctx.audit_key, &q).await?)
}

/// An inquiry on a store directly (the CLI on the node's machine).
pub async fn inquire(
    store: &Store,
    key: &SubjectKey,
    q: &Inquiry,
) -> std::result::Result<Vec<Entry>, crate::store::StoreError> {
    let actor = q.actor.as_deref().map(str::trim);
    store
        .audit_entries(&AuditQuery {
            subject: q.subject.as_deref().map(|s| key.hash(s)),
            actor: actor.map(str::to_string),
            token: actor.and_then(|a| a.parse().ok()),
            after: q.after,
            limit: q.limit.clamp(1, 10_000),
        })
        .await
}

/// How a check of the whole chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub checked: u64,
    /// The first broken entry, if any.
    pub broken: Option<Broken>,
    /// How the chain that holds compares with the checkpoint given.
    pub checkpoint: Option<Agreement>,
}

/// Checks the whole chain, `progress` told every 100,000 entries: with the
/// node's chain key (keyed entries cannot be checked without it) and from
/// the checkpoint's `keyed_from` on, every entry must be keyed.
pub async fn verify(
    store: &Store,
    key: Option<ChainKey>,
    checkpoint: Option<&Checkpoint>,
    mut progress: impl FnMut(u64),
) -> std::result::Result<Verified, crate::store::StoreError> {
    let mut check = ChainCheck::new(key, checkpoint.and_then(|c| c.keyed_from));
    let mut after = 0;
    let mut hash_there = None;
    loop {
        let page = store
            .audit_entries(&AuditQuery {
                after,
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if let Err(b) = check.check(e) {
                return Ok(Verified {
                    checked: check.checked,
                    broken: Some(b),
                    checkpoint: None,
                });
            }
            if checkpoint.is_some_and(|c| c.seq == e.seq) {
                hash_there = Some(e.hash.clone());
            }
            if check.checked.is_multiple_of(100_000) {
                progress(check.checked);
            }
        }
    }
    let length = i64::try_from(check.checked).unwrap_or(i64::MAX);
    Ok(Verified {
        checked: check.checked,
        broken: None,
        checkpoint: checkpoint.map(|c| c.against(length, hash_there.as_deref())),
    })
}

/// How a chain of `length` entries stands against `head` (a checkpoint, or
/// a head a peer keeps as witness).
pub async fn against(
    store: &crate::store::Store,
    length: i64,
    head: &Checkpoint,
) -> Result<crate::audit::checkpoint::Agreement> {
    let there = store.audit_hash_at(head.seq).await?;
    Ok(head.against(length, there.as_deref()))
}

/// Keeps the access audit's checkpoint (`audit::checkpoint`) at `path`: a
/// second after the chain grows, its new head is signed with the node's key
/// and written; a chain found shorter than the checkpoint, or rewritten up
/// to its head, is logged as an error and the checkpoint is kept as it is,
/// never moved back. Each checkpoint held is published on `published`
/// (the witnesses' sender reads it). Ends after one last look when `stop`
/// is cancelled.
pub async fn keep_checkpoint(
    ctx: std::sync::Arc<NodeCtx>,
    key: crate::proof::sign::NodeKey,
    (path, published): (
        std::path::PathBuf,
        tokio::sync::watch::Sender<Option<Checkpoint>>,
    ),
    stop: tokio_util::sync::CancellationToken,
) {
    let stale = crate::audit::checkpoint::remove_stale(&path);
    if stale > 0 {
        tracing::info!(
            files = stale,
            "half-written audit checkpoint files of stopped processes removed"
        );
    }
    let mut held = match Checkpoint::read(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "access audit checkpoint unreadable; it is not written again until it is moved away");
            return;
        }
    };
    published.send_replace(held.clone());
    let mut warned = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        match checkpoint_once(&ctx, &key, &path, held.as_ref()).await {
            Ok(Some(c)) => {
                published.send_replace(Some(c.clone()));
                held = Some(c);
                warned = false;
            }
            Ok(None) => {}
            Err(why) if !warned => {
                warned = true;
                tracing::error!(path = %path.display(), finding = %why, "access audit (访问审计) disagrees with its checkpoint; run migrex audit verify");
            }
            Err(_) => {}
        }
        if last {
            return;
        }
    }
}

/// One look: the new checkpoint written (Some), nothing to do (None), or
/// why the chain disagrees with the one held.
async fn checkpoint_once(
    ctx: &NodeCtx,
    key: &crate::proof::sign::NodeKey,
    path: &std::path::Path,
    held: Option<&Checkpoint>,
) -> std::result::Result<Option<Checkpoint>, String> {
    let store_failed = |e: crate::store::StoreError| e.to_string();
    let Some((seq, hash)) = ctx.store.audit_head().await.map_err(store_failed)? else {
        return match held {
            Some(c) if c.seq > 0 => Err(format!(
                "the chain is empty; the checkpoint counted {}",
                c.seq
            )),
            _ => Ok(None),
        };
    };
    let keyed_from = match held {
        Some(c) if c.seq == seq && c.hash == hash => return Ok(None),
        Some(c) => {
            let there = ctx.store.audit_hash_at(c.seq).await.map_err(store_failed)?;
            let agreement = c.against(seq, there.as_deref());
            if let Some(why) = c.finding(&agreement, |at| at.to_string()) {
                return Err(why);
            }
            match c.keyed_from {
                Some(from) => Some(from),
                None => ctx.store.first_keyed_audit().await.map_err(store_failed)?,
            }
        }
        None => ctx.store.first_keyed_audit().await.map_err(store_failed)?,
    };
    if keyed_from.is_some() && !hash.starts_with(crate::audit::KEYED) {
        return Err(format!(
            "entry {seq} was not written with the node's audit key (appended by someone else)"
        ));
    }
    let now = ctx.now();
    let at = i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
    let c = Checkpoint::signed(key, seq, hash, keyed_from, at);
    if let Err(e) = c.write(path) {
        // Not a finding about the chain: tried again at the next look.
        tracing::warn!(path = %path.display(), error = %e, "access audit checkpoint not written");
        return Ok(None);
    }
    Ok(Some(c))
}
