//! Reconciliation between two peers (对账, issue 23 item 3;
//! docs/protocol.md §8): each side digests, per peer and month, the facts
//! of every notice between the two — when it arrived and was due, when it
//! was signed for, answered (and how) and withdrawn — in a tree keyed by
//! the SHA-256 of each notice id, 16 branches a level. Two sides compare
//! the root; where it differs they descend, so the messages grow with the
//! differences, not with the month, and the leaves name the notices and
//! facts that differ. Nothing here touches the store or the network.

use crate::pb;
use sha2::{Digest, Sha256};

/// A bucket with this many notices or fewer is answered with its leaves.
pub const LEAF_MAX: usize = 32;
/// The most buckets one request may ask about.
pub const MAX_PREFIXES: usize = 256;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// What both sides of a notice hold and must agree on (instants in
/// microseconds; the feedback as a digest of its canonical content).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Facts {
    pub notice_id: String,
    pub received_at: Option<i64>,
    pub due_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub feedback: String,
    pub withdrawn_at: Option<i64>,
}

impl Facts {
    /// The digest of a feedback's content, independent of protobuf's map
    /// order (empty when there is none).
    pub fn feedback_digest(f: Option<&pb::Feedback>) -> String {
        let Some(f) = f else {
            return String::new();
        };
        let mut h = Sha256::new();
        let mut corrections: Vec<(&String, &String)> = f.corrections.iter().collect();
        corrections.sort();
        for part in [
            f.result.to_string().as_str(),
            &f.remarks,
            &f.responsible_district,
            &f.answered_by,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        for (k, v) in corrections {
            for part in [k, v] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The named facts of this notice, in a fixed order.
    fn named(&self) -> [(&'static str, String); 6] {
        let t = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            ("received_at", t(self.received_at)),
            ("due_at", t(self.due_at)),
            ("acknowledged_at", t(self.acknowledged_at)),
            ("answered_at", t(self.answered_at)),
            ("feedback", self.feedback.clone()),
            ("withdrawn_at", t(self.withdrawn_at)),
        ]
    }

    /// The facts in which `other` differs from these.
    pub fn differences(&self, other: &Facts) -> Vec<&'static str> {
        self.named()
            .into_iter()
            .zip(other.named())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect()
    }

    /// The facts these hold and `other` does not (a reply that did not
    /// reach it, when these are the author's).
    pub fn lacking_in(&self, other: &Facts) -> Vec<&'static str> {
        self.named()
            .into_iter()
            .zip(other.named())
            .filter(|(a, b)| !a.1.is_empty() && b.1.is_empty())
            .map(|(a, _)| a.0)
            .collect()
    }

    fn leaf(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.notice_id.as_bytes());
        for (name, value) in self.named() {
            h.update([name.len() as u8]);
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value.as_bytes());
        }
        h.finalize().into()
    }

    pub fn to_pb(&self) -> pb::JourneyFacts {
        pb::JourneyFacts {
            notice_id: self.notice_id.clone(),
            received_at: self.received_at,
            due_at: self.due_at,
            acknowledged_at: self.acknowledged_at,
            answered_at: self.answered_at,
            feedback: self.feedback.clone(),
            withdrawn_at: self.withdrawn_at,
        }
    }

    pub fn from_pb(p: &pb::JourneyFacts) -> Facts {
        Facts {
            notice_id: p.notice_id.clone(),
            received_at: p.received_at,
            due_at: p.due_at,
            acknowledged_at: p.acknowledged_at,
            answered_at: p.answered_at,
            feedback: p.feedback.clone(),
            withdrawn_at: p.withdrawn_at,
        }
    }
}

/// One side's month with one peer: every notice's facts under the hex
/// SHA-256 of its id, in that order.
pub struct Month {
    items: Vec<(String, Facts, [u8; 32])>,
}

/// A bucket as compared: its prefix (of the id hashes), how many notices it
/// holds and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub prefix: String,
    pub count: u64,
    pub digest: [u8; 32],
}

impl Month {
    pub fn new(facts: Vec<Facts>) -> Month {
        let mut items: Vec<(String, Facts, [u8; 32])> = facts
            .into_iter()
            .map(|f| {
                let key = hex::encode(Sha256::digest(f.notice_id.as_bytes()));
                let leaf = f.leaf();
                (key, f, leaf)
            })
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Month { items }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn under(&self, prefix: &str) -> &[(String, Facts, [u8; 32])] {
        let start = self.items.partition_point(|i| i.0.as_str() < prefix);
        let end = start + self.items[start..].partition_point(|i| i.0.starts_with(prefix));
        &self.items[start..end]
    }

    /// The bucket of the notices whose id hash starts with `prefix`.
    pub fn bucket(&self, prefix: &str) -> Bucket {
        let under = self.under(prefix);
        let mut h = Sha256::new();
        for (_, _, leaf) in under {
            h.update(leaf);
        }
        Bucket {
            prefix: prefix.to_string(),
            count: under.len() as u64,
            digest: h.finalize().into(),
        }
    }

    /// The 16 buckets one level below `prefix`.
    pub fn children(&self, prefix: &str) -> Vec<Bucket> {
        HEX.iter()
            .map(|c| self.bucket(&format!("{prefix}{}", *c as char)))
            .collect()
    }

    /// The facts of the notices under `prefix`.
    pub fn leaves(&self, prefix: &str) -> Vec<&Facts> {
        self.under(prefix).iter().map(|(_, f, _)| f).collect()
    }
}

/// A notice on which two sides differ: the facts that differ, or that one
/// side does not hold it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Divergence {
    pub notice_id: String,
    /// "missing here", "missing at the peer", or the differing facts.
    pub facts: Vec<String>,
    /// Of `facts`, those this side holds and the peer does not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lacking_at_peer: Vec<String>,
    /// This node's own replies sent again because the peer lacked what
    /// they say (ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resent: Vec<String>,
}

/// Compares the leaves of one bucket.
pub fn compare_leaves(mine: &[&Facts], theirs: &[Facts]) -> Vec<Divergence> {
    let mut out = Vec::new();
    for t in theirs {
        match mine.iter().find(|m| m.notice_id == t.notice_id) {
            None => out.push(Divergence {
                notice_id: t.notice_id.clone(),
                facts: vec!["missing here".into()],
                lacking_at_peer: Vec::new(),
                resent: Vec::new(),
            }),
            Some(m) => {
                let d = m.differences(t);
                if !d.is_empty() {
                    out.push(Divergence {
                        notice_id: t.notice_id.clone(),
                        facts: d.into_iter().map(str::to_string).collect(),
                        lacking_at_peer: m.lacking_in(t).into_iter().map(str::to_string).collect(),
                        resent: Vec::new(),
                    });
                }
            }
        }
    }
    for m in mine {
        if !theirs.iter().any(|t| t.notice_id == m.notice_id) {
            out.push(Divergence {
                notice_id: m.notice_id.clone(),
                facts: vec!["missing at the peer".into()],
                lacking_at_peer: Vec::new(),
                resent: Vec::new(),
            });
        }
    }
    out
}

/// How a reconciliation with one peer for one month ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub peer: String,
    pub period: String,
    /// Notices of the month on this side.
    pub notices: usize,
    pub round_trips: u32,
    pub divergent: Vec<Divergence>,
}

/// A request to reconcile with `peer` for `period` now, and where its
/// outcome goes (`NodeCtx::reconcile`; the exchange serves it).
pub struct Ask {
    pub peer: String,
    pub period: String,
    pub answer: tokio::sync::oneshot::Sender<Result<Outcome, String>>,
}

/// Whether a prefix is one a request may carry: lower-case hex, at most
/// the hash's length.
pub fn valid_prefix(p: &str) -> bool {
    p.len() <= 64 && p.bytes().all(|b| HEX.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(i: usize) -> Facts {
        Facts {
            notice_id: format!("n{i}"),
            received_at: Some(i as i64),
            due_at: Some(1000 + i as i64),
            ..Default::default()
        }
    }

    #[test]
    fn two_sides_find_exactly_the_notices_that_differ_by_descending() {
        let ours: Vec<Facts> = (0..10_000).map(facts).collect();
        let mut theirs = ours.clone();
        theirs[17].answered_at = Some(5);
        theirs[4242].due_at = Some(7);
        theirs.remove(9000);
        let (a, b) = (Month::new(ours), Month::new(theirs));
        assert_ne!(a.bucket("").digest, b.bucket("").digest);
        let mut frontier = vec![String::new()];
        let mut found = Vec::new();
        let mut rounds = 0;
        while !frontier.is_empty() {
            rounds += 1;
            let mut next = Vec::new();
            for p in frontier {
                if b.bucket(&p).count as usize <= LEAF_MAX {
                    let theirs: Vec<Facts> = b.leaves(&p).into_iter().cloned().collect();
                    found.extend(compare_leaves(&a.leaves(&p), &theirs));
                } else {
                    for (x, y) in a.children(&p).iter().zip(b.children(&p)) {
                        if *x != y {
                            next.push(y.prefix);
                        }
                    }
                }
            }
            frontier = next;
        }
        found.sort_by(|x, y| x.notice_id.cmp(&y.notice_id));
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].notice_id, "n17");
        assert_eq!(found[0].facts, ["answered_at"]);
        assert_eq!(found[1].notice_id, "n4242");
        assert_eq!(found[1].facts, ["due_at"]);
        assert_eq!(found[2].notice_id, "n9000");
        assert_eq!(found[2].facts, ["missing at the peer"]);
        assert!(rounds <= 5, "{rounds} rounds");
    }
}
