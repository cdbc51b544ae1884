//! The access audit (访问审计): who looked at whom. Every staff read that
//! returns a person's details and every staff write appends one entry per
//! notice: when, which token or account, which operation, which notice, a
//! keyed hash of the subject's ID number (so "who looked at this person"
//! can be answered without storing the number again) and from which
//! address.
//!
//! Entries form a chain: each holds the hash of the one before, so an entry
//! edited, removed or inserted by hand breaks the chain from there on, and
//! `migrex audit verify` names the first broken entry. This module is the
//! rule (the hash of an entry, the keyed subject hash, the check of a
//! chain); `store::audit` keeps the entries, `service::audit` records and
//! answers inquiries.

pub mod checkpoint;

use sha2::{Digest, Sha256};
use std::path::Path;
use time::OffsetDateTime;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An access about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The token holder's or the console account's name.
    pub actor: String,
    /// The token's id (None: a console account).
    pub token: Option<i64>,
    /// What was done: `GetNotice`, `ListNotices`, `console:notice`, `SubmitNotice` …
    pub operation: String,
    pub notice_id: String,
    /// `SubjectKey::hash` of the subject's ID number.
    pub subject: String,
    /// The client's address as the listener saw it.
    pub address: String,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub token: Option<i64>,
    pub operation: String,
    pub notice_id: String,
    pub subject: String,
    pub address: String,
    pub prev_hash: String,
    pub hash: String,
}

/// How a hash made under the node's chain key begins (version 1); a hash
/// without it is a plain SHA-256 from before keyed chains.
pub const KEYED: &str = "k1:";

/// The key the chain's hashes are made with: derived from the node's audit
/// key (`SubjectKey::chain_key`), so that an entry appended by anyone
/// without that file cannot carry a hash the check accepts (issue 23).
#[derive(Clone, Copy)]
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// The hash of an entry over the previous hash and every field, each
/// length-prefixed (so no two different entries share an encoding):
/// HMAC-SHA256 under the chain key, written `k1:` and hex; without a key
/// (stores opened without the node's audit key) a plain SHA-256 in hex.
pub fn chain_hash(
    key: Option<&ChainKey>,
    prev_hash: &str,
    seq: i64,
    at_micros: i64,
    a: &Access,
) -> String {
    let mut bytes = Vec::with_capacity(256);
    let mut field = |b: &[u8]| {
        bytes.extend_from_slice(&(b.len() as u64).to_be_bytes());
        bytes.extend_from_slice(b);
    };
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(&at_micros.to_be_bytes());
    field(a.actor.as_bytes());
    field(&a.token.unwrap_or(-1).to_be_bytes());
    field(a.operation.as_bytes());
    field(a.notice_id.as_bytes());
    field(a.subject.as_bytes());
    field(a.address.as_bytes());
    match key {
        Some(k) => format!("{KEYED}{}", hex::encode(hmac_sha256(&k.0, &bytes))),
        None => hex::encode(Sha256::digest(&bytes)),
    }
}

impl Entry {
    /// The access this entry records.
    pub fn access(&self) -> Access {
        Access {
            actor: self.actor.clone(),
            token: self.token,
            operation: self.operation.clone(),
            notice_id: self.notice_id.clone(),
            subject: self.subject.clone(),
            address: self.address.clone(),
        }
    }
}

/// Why a chain is broken, at its first broken entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {why}")]
pub struct Broken {
    pub seq: i64,
    pub why: String,
}

/// Checks a chain entry by entry, in order of `seq`.
#[derive(Debug)]
pub struct ChainCheck {
    prev_hash: String,
    next_seq: i64,
    pub checked: u64,
    key: Option<ChainKey>,
    /// From this entry on every hash must be keyed (the checkpoint says
    /// where the node began keying; any keyed entry also starts it).
    keyed_from: Option<i64>,
    /// The hash of the last entry checked.
    pub head: String,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck::new(None, None)
    }
}

impl ChainCheck {
    /// A check with the node's chain key (without it, keyed entries cannot
    /// be checked and are reported) from `keyed_from` on.
    pub fn new(key: Option<ChainKey>, keyed_from: Option<i64>) -> ChainCheck {
        ChainCheck {
            prev_hash: GENESIS.to_string(),
            next_seq: 1,
            checked: 0,
            key,
            keyed_from,
            head: GENESIS.to_string(),
        }
    }

    pub fn check(&mut self, e: &Entry) -> Result<(), Broken> {
        let broken = |why: String| Broken { seq: e.seq, why };
        let keyed = e.hash.starts_with(KEYED);
        if keyed && self.key.is_none() {
            return Err(broken(
                "is keyed with the node's audit key, which this check was not given".into(),
            ));
        }
        if !keyed && self.keyed_from.is_some_and(|from| e.seq >= from) {
            return Err(broken(
                "was not written with the node's audit key, though every entry from there on is (appended by someone else)".into(),
            ));
        }
        if e.seq != self.next_seq {
            return Err(broken(format!(
                "expected entry {} here (an entry is missing or was inserted)",
                self.next_seq
            )));
        }
        if e.prev_hash != self.prev_hash {
            return Err(broken(
                "does not hold the hash of the entry before it".into(),
            ));
        }
        let at = e.at.unix_timestamp_nanos() / 1000;
        let key = if keyed { self.key.as_ref() } else { None };
        if chain_hash(key, &e.prev_hash, e.seq, at as i64, &e.access()) != e.hash {
            return Err(broken(
                "its content does not match its hash (edited after it was written)".into(),
            ));
        }
        if keyed && self.keyed_from.is_none() {
            self.keyed_from = Some(e.seq);
        }
        self.prev_hash = e.hash.clone();
        self.head = e.hash.clone();
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }
}

/// The node's secret for hashing ID numbers in the audit: 32 random bytes
/// in a file of its own (0600), apart from the database, so that a copy of
/// the database alone cannot be searched by guessing ID numbers. Replicas
/// of a node share the file.
#[derive(Clone)]
pub struct SubjectKey([u8; 32]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

impl SubjectKey {
    /// Reads the key at `path`, creating it (0600) if there is none.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let raw = hex::decode(text.trim()).ok().filter(|r| r.len() == 32);
                let raw = raw.ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not a 64-hex-digit audit key",
                    )
                })?;
                let mut k = [0u8; 32];
                k.copy_from_slice(&raw);
                Ok(SubjectKey(k))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
                    .map_err(|_| std::io::Error::other("the system's random source failed"))?;
                crate::files::write(path, format!("{}\n", hex::encode(k)).as_bytes())?;
                Ok(SubjectKey(k))
            }
            Err(e) => Err(e),
        }
    }

    /// A key given directly (tests).
    pub fn from_bytes(k: [u8; 32]) -> Self {
        SubjectKey(k)
    }

    /// The key of the chain, derived from this one.
    pub fn chain_key(&self) -> ChainKey {
        ChainKey(hmac_sha256(&self.0, b"migrex access audit chain v1"))
    }

    /// HMAC-SHA256 of the normalised ID number under this key, in hex.
    pub fn hash(&self, id_number: &str) -> String {
        hex::encode(hmac_sha256(
            &self.0,
            id_number.trim().to_ascii_uppercase().as_bytes(),
        ))
    }
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key` (ring's).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), msg);
    tag.as_ref()
        .try_into()
        .expect("HMAC-SHA256 tags are 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn chain(n: i64) -> Vec<Entry> {
        keyed_chain(n, None)
    }

    fn keyed_chain(n: i64, key_of_chain: Option<ChainKey>) -> Vec<Entry> {
        let key = SubjectKey::from_bytes([7; 32]);
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let at =
                    time::macros::datetime!(2026-11-23 10:00 UTC) + time::Duration::seconds(seq);
                let a = Access {
                    actor: "li.na".into(),
                    token: Some(3),
                    operation: "GetNotice".into(),
                    notice_id: format!("n{seq}"),
                    subject: key.hash("51011619900101002X"),
                    address: "127.0.0.1".into(),
                };
                let hash = chain_hash(
                    key_of_chain.as_ref(),
                    &prev,
                    seq,
                    (at.unix_timestamp_nanos() / 1000) as i64,
                    &a,
                );
                let e = Entry {
                    seq,
                    at,
                    actor: a.actor,
                    token: a.token,
                    operation: a.operation,
                    notice_id: a.notice_id,
                    subject: a.subject,
                    address: a.address,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn first_broken(entries: &[Entry]) -> Option<i64> {
        let mut c = ChainCheck::default();
        entries.iter().find_map(|e| c.check(e).err().map(|b| b.seq))
    }

    #[test]
    fn a_chain_checks_and_any_edit_names_its_entry() {
        let good = chain(5);
        assert_eq!(first_broken(&good), None);
        let mut edited = good.clone();
        edited[2].actor = "someone.else".into();
        assert_eq!(first_broken(&edited), Some(3));
        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(first_broken(&removed), Some(3));
        let mut rehashed = good.clone();
        rehashed[3].operation = "ListNotices".into();
        rehashed[3].hash = chain_hash(
            None,
            &rehashed[3].prev_hash,
            4,
            (rehashed[3].at.unix_timestamp_nanos() / 1000) as i64,
            &rehashed[3].access(),
        );
        assert_eq!(
            first_broken(&rehashed),
            Some(5),
            "the next one no longer follows"
        );
    }

    #[test]
    fn a_keyed_chain_needs_its_key_and_takes_no_unkeyed_entry_after_it() {
        let key = SubjectKey::from_bytes([7; 32]).chain_key();
        let good = keyed_chain(4, Some(key));
        assert!(good.iter().all(|e| e.hash.starts_with(KEYED)));
        let check = |entries: &[Entry], key, from| {
            let mut c = ChainCheck::new(key, from);
            entries.iter().find_map(|e| c.check(e).err())
        };
        assert_eq!(check(&good, Some(key), None), None);
        assert_eq!(check(&good, None, None).map(|b| b.seq), Some(1));
        let other = SubjectKey::from_bytes([8; 32]).chain_key();
        assert!(check(&good, Some(other), None).is_some(), "another key");
        // An entry appended with a correct plain hash, by someone without
        // the key, after keyed ones.
        let mut forged = good.clone();
        let last = forged.last().unwrap().clone();
        let mut e = last.clone();
        e.seq = 5;
        e.prev_hash = last.hash.clone();
        let at = (e.at.unix_timestamp_nanos() / 1000) as i64;
        e.hash = chain_hash(None, &e.prev_hash, 5, at, &e.access());
        forged.push(e);
        let b = check(&forged, Some(key), None).unwrap();
        assert_eq!(b.seq, 5);
        assert!(
            b.why.contains("not written with the node's audit key"),
            "{b}"
        );
        // A plain chain from before keys checks, unless the checkpoint says
        // keying began earlier.
        let plain = chain(3);
        assert_eq!(check(&plain, Some(key), None), None);
        assert_eq!(check(&plain, Some(key), Some(2)).map(|b| b.seq), Some(2));
    }

    #[test]
    fn the_subject_hash_is_keyed_and_normalised() {
        let a = SubjectKey::from_bytes([1; 32]);
        let b = SubjectKey::from_bytes([2; 32]);
        assert_eq!(a.hash("51011619900101002x"), a.hash(" 51011619900101002X"));
        assert_ne!(a.hash("51011619900101002X"), b.hash("51011619900101002X"));
        assert_eq!(a.hash("x").len(), 64);
    }
}
