//! The access audit in the staff work: which accesses an operation
//! records (every notice returned with its person's details, every notice
//! written), inquiries (who looked at this person, what did this token
//! look at) and the check of the chain. Reads record in a transaction of
//! their own right after the read; writes record in their own transaction
//! (`notices::submit`, `replies`).

use super::Result;
use crate::audit::{Access, Broken, ChainCheck, Entry, SubjectKey};
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
}

/// Checks the whole chain, `progress` told every 100,000 entries.
pub async fn verify(
    store: &Store,
    mut progress: impl FnMut(u64),
) -> std::result::Result<Verified, crate::store::StoreError> {
    let mut check = ChainCheck::default();
    let mut after = 0;
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
                });
            }
            if check.checked % 100_000 == 0 {
                progress(check.checked);
            }
        }
    }
    Ok(Verified {
        checked: check.checked,
        broken: None,
    })
}
