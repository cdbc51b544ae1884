//! The access audit's checkpoint: the chain's head (the last entry's number
//! and hash) signed with the node's key, kept in a file beside the audit key,
//! outside the database. The node writes it again within a second of each
//! change (`service::audit::keep_checkpoint`) and never to a shorter chain;
//! `migrex audit verify` compares the chain with it, so entries deleted from
//! the end, all of them, or a chain rewritten from some entry on are
//! reported, naming what was found (issue 23, item 4). Its statement is in
//! the canonical form of `docs/protocol.md` (`migrex.audit-head.v1`).

use crate::proof::canonical;
use crate::proof::sign::NodeKey;
use std::path::{Path, PathBuf};

/// The largest checkpoint file read.
const MAX_FILE: u64 = 64 * 1024;

/// The file of the checkpoint of a node whose audit key is at `audit_key`.
pub fn path_beside(audit_key: &Path) -> PathBuf {
    audit_key.with_file_name("audit.checkpoint")
}

/// A signed head of the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub district: String,
    /// The number of the last entry (the chain's length).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// The first entry hashed under the node's chain key: every later one
    /// must be too.
    pub keyed_from: Option<i64>,
    /// When the checkpoint was made, microseconds since 1970 UTC.
    pub at_micros: i64,
    /// The node key's signature over the statement (hex).
    pub signature: String,
}

impl Checkpoint {
    fn statement(&self) -> Vec<u8> {
        canonical::audit_head(
            &self.district,
            self.seq,
            &self.hash,
            self.keyed_from,
            self.at_micros,
        )
    }

    /// A checkpoint of head `(seq, hash)`, signed with `key`.
    pub fn signed(
        key: &NodeKey,
        seq: i64,
        hash: String,
        keyed_from: Option<i64>,
        at_micros: i64,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            district: key.district().to_string(),
            seq,
            hash,
            keyed_from,
            at_micros,
            signature: String::new(),
        };
        c.signature = hex::encode(key.sign(&c.statement()));
        c
    }

    /// Whether the node of certificate `cert_der` (DER) signed it.
    pub fn signed_by(&self, cert_der: &[u8]) -> bool {
        let district = crate::identity::district_of_cert(cert_der).map(|d| d.to_string());
        district.is_ok_and(|d| d == self.district)
            && hex::decode(&self.signature)
                .is_ok_and(|sig| crate::identity::signed_by(cert_der, &self.statement(), &sig))
    }

    /// The checkpoint in `path`; `None` when there is none yet.
    pub fn read(path: &Path) -> std::io::Result<Option<Checkpoint>> {
        use std::io::Read;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut text = String::new();
        file.take(MAX_FILE).read_to_string(&mut text)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Writes it to `path` (0600) through a file beside it renamed over the
    /// old one, so a crash leaves the old checkpoint or the new one. The
    /// file beside is this process's own: replicas sharing a folder do not
    /// write into each other's.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let next = path.with_extension(format!("checkpoint.{}", std::process::id()));
        let _ = std::fs::remove_file(&next);
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::files::write(&next, format!("{text}\n").as_bytes())?;
        std::fs::rename(&next, path)
    }
}

/// Removes the files beside `path` that processes no longer running left
/// half-written (`audit.checkpoint.<pid>`, see `Checkpoint::write`); a
/// live process's own stays (a replica on another machine sharing the
/// folder loses at most one write, made again a second later). Best
/// effort: returns how many went.
pub fn remove_stale(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return 0;
    };
    let prefix = format!("{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// What the chain and its checkpoint say together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// The chain holds the checkpoint's head where it said.
    Agrees,
    /// The chain ends before the checkpoint's head: entries were deleted.
    Shorter { have: i64 },
    /// The entry at the checkpoint's head has another hash: the chain was
    /// rewritten up to there.
    Rewritten,
}

impl Checkpoint {
    /// Compares with a chain of `length` entries whose entry `self.seq` has
    /// hash `hash_there` (None when it is gone).
    pub fn against(&self, length: i64, hash_there: Option<&str>) -> Agreement {
        if length < self.seq {
            return Agreement::Shorter { have: length };
        }
        if self.seq > 0 && hash_there != Some(self.hash.as_str()) {
            return Agreement::Rewritten;
        }
        Agreement::Agrees
    }

    /// The sentence `migrex audit verify` says for a disagreement with
    /// the node's own checkpoint.
    pub fn finding(&self, a: &Agreement, local: impl Fn(i64) -> String) -> Option<String> {
        self.finding_as(a, "its checkpoint", local)
    }

    /// The same, naming the head compared with as `what` ("the head
    /// 510116 keeps").
    pub fn finding_as(
        &self,
        a: &Agreement,
        what: &str,
        local: impl Fn(i64) -> String,
    ) -> Option<String> {
        let when = local(self.at_micros);
        match a {
            Agreement::Agrees => None,
            Agreement::Shorter { have: 0 } => Some(format!(
                "the access audit is empty, but {what} of {when} counted {} entries: all of them were deleted",
                self.seq
            )),
            Agreement::Shorter { have } => Some(format!(
                "the access audit ends at entry {have}, but {what} of {when} counted {}: entries {} to {} were deleted",
                self.seq,
                have + 1,
                self.seq
            )),
            Agreement::Rewritten => Some(format!(
                "entry {} is not the one {what} of {when} signed: the chain was rewritten up to there",
                self.seq
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_signed_compared_and_written_privately() {
        let (key, cert) = crate::proof::sign::test_node("440303");
        let c = Checkpoint::signed(&key, 40, "k1:ab".into(), Some(1), 1_791_000_000_000_000);
        assert!(c.signed_by(&cert));
        let mut moved = c.clone();
        moved.seq = 20;
        assert!(!moved.signed_by(&cert), "a changed count is not signed");
        let (_, other) = crate::proof::sign::test_node("510116");
        assert!(!c.signed_by(&other));

        assert_eq!(c.against(40, Some("k1:ab")), Agreement::Agrees);
        assert_eq!(c.against(45, Some("k1:ab")), Agreement::Agrees);
        assert_eq!(c.against(20, None), Agreement::Shorter { have: 20 });
        assert_eq!(c.against(0, None), Agreement::Shorter { have: 0 });
        assert_eq!(c.against(40, Some("k1:cd")), Agreement::Rewritten);
        let said = c
            .finding(&Agreement::Shorter { have: 20 }, |_| "then".into())
            .unwrap();
        assert!(said.contains("entries 21 to 40 were deleted"), "{said}");

        let dir = tempfile::tempdir().unwrap();
        let path = path_beside(&dir.path().join("audit.key"));
        assert_eq!(Checkpoint::read(&path).unwrap(), None);
        c.write(&path).unwrap();
        c.write(&path).unwrap();
        assert_eq!(Checkpoint::read(&path).unwrap(), Some(c));
        // Half-written files of processes gone are removed; a live one's
        // and the checkpoint stay.
        let gone = path.with_extension("checkpoint.999999999");
        let live = path.with_extension(format!("checkpoint.{}", std::process::id()));
        std::fs::write(&gone, "{").unwrap();
        std::fs::write(&live, "{").unwrap();
        assert_eq!(remove_stale(&path), 1);
        assert!(!gone.exists() && live.exists() && path.exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
