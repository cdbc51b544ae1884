//! Proofs of a notice's journey (issue 23): the signature covering each
//! step, kept beside the notice, and the signers' certificates.

use super::{Result, Store, Tx};
use crate::proof::sign::Proof;
use crate::proof::tree::Hash;
use sqlx::{QueryBuilder, Row};
use std::collections::HashMap;

/// Rows per statement (at most 3 binds each, under SQLite's limits).
const CHUNK: usize = 900;

pub use crate::proof::{ACK_STEP as ACK, NOTICE_STEP as NOTICE};

/// The proof of one step of a notice's journey: `step` is "notice", "ack"
/// or a reply id; the proof's `cert` is its signer's certificate's
/// fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct StepProof {
    pub notice_id: String,
    pub step: String,
    pub proof: Proof,
}

/// A signer's certificate (DER) under its fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct SignerCert {
    pub fingerprint: String,
    pub district: String,
    pub der: Vec<u8>,
}

/// What one call proved: its items' proofs, their signers' certificates,
/// and the leaf hashes of the batches held whole (by signature: those this
/// node signed itself, and others' that a call carried whole), which are
/// kept once instead of a path per item.
#[derive(Debug, Clone, Default)]
pub struct Proven {
    pub proofs: Vec<StepProof>,
    pub certificates: Vec<SignerCert>,
    pub whole_leaves: Vec<(Vec<u8>, Vec<Hash>)>,
}

impl Proven {
    /// Keeps `cert` once, however many proofs it signs.
    pub fn certificate(&mut self, cert: SignerCert) {
        if !self
            .certificates
            .iter()
            .any(|c| c.fingerprint == cert.fingerprint)
        {
            self.certificates.push(cert);
        }
    }
}

/// A kept batch: signer, size, signature, certificate fingerprint, leaves.
type BatchRow = (String, i64, Vec<u8>, String, Option<Vec<u8>>);

/// A step's reference as kept on its row: batch id, index, and the path
/// unless the batch's leaves are kept.
fn encode(batch: i64, index: u64, path: Option<&[Hash]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + path.map_or(0, |p| 32 * p.len()));
    out.extend_from_slice(&batch.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    for h in path.unwrap_or_default() {
        out.extend_from_slice(h);
    }
    out
}

fn decode(blob: &[u8]) -> Option<(i64, u64, Vec<Hash>)> {
    if blob.len() < 16 || !(blob.len() - 16).is_multiple_of(32) {
        return None;
    }
    let batch = i64::from_be_bytes(blob[..8].try_into().ok()?);
    let index = u64::from_be_bytes(blob[8..16].try_into().ok()?);
    let path = blob[16..]
        .chunks(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    Some((batch, index, path))
}

/// A notice's own proof reference and its acknowledgement's, written with
/// its row.
pub type NoticeRefs = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Each step's reference, to write on its row: with the row itself when
/// it is written in the same transaction (`take_notice`), else by
/// `Tx::write_refs` on rows written already.
#[derive(Debug, Default)]
pub struct Refs {
    notice: HashMap<String, Vec<u8>>,
    ack: HashMap<String, Vec<u8>>,
    reply: Vec<(String, Vec<u8>)>,
}

impl Refs {
    /// Takes out notice `id`'s own and acknowledgement references, for its
    /// row written with them.
    pub fn take_notice(&mut self, id: &str) -> NoticeRefs {
        (self.notice.remove(id), self.ack.remove(id))
    }
}

impl Tx {
    /// Keeps proofs (on the rows of the steps they prove, which must be
    /// written already in this transaction) and certificates; a step
    /// already proven keeps its first proof (a redelivery is signed again in
    /// another batch). Each batch is kept once.
    pub async fn keep_proofs(&mut self, proven: &Proven) -> Result<()> {
        let refs = self.keep_batches(proven).await?;
        self.write_refs(&refs).await
    }

    /// Keeps the certificates and each batch of `proven` once (by
    /// signature), and returns each step's reference.
    pub async fn keep_batches(&mut self, proven: &Proven) -> Result<Refs> {
        for chunk in proven.certificates.chunks(CHUNK) {
            with_tx!(self, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO certificates (fingerprint, district, der) ",
                );
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(&c.fingerprint)
                        .push_bind(&c.district)
                        .push_bind(&c.der);
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *conn).await?;
            });
        }
        let mut batches: Vec<(&[u8], i64, bool)> = Vec::new();
        let mut refs = Refs::default();
        for p in &proven.proofs {
            let known = batches
                .iter()
                .find(|(sig, _, _)| *sig == p.proof.signature.as_slice())
                .map(|(_, id, own)| (*id, *own));
            let (id, own) = match known {
                Some(k) => k,
                None => {
                    let leaves = proven
                        .whole_leaves
                        .iter()
                        .find(|(sig, _)| *sig == p.proof.signature)
                        .map(|(_, l)| l.concat());
                    let own = leaves.is_some();
                    let id = with_tx!(self, |conn, Db| {
                        sqlx::query_scalar::<_, i64>(
                            "INSERT INTO signed_batches (signer, size, signature, cert, leaves) \
                             VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        )
                        .bind(&p.proof.signer)
                        .bind(i64::try_from(p.proof.size).unwrap_or(i64::MAX))
                        .bind(&p.proof.signature)
                        .bind(&p.proof.cert)
                        .bind(leaves)
                        .fetch_one(&mut *conn)
                        .await?
                    });
                    batches.push((p.proof.signature.as_slice(), id, own));
                    (id, own)
                }
            };
            let path = (!own).then_some(p.proof.path.as_slice());
            let blob = encode(id, p.proof.index, path);
            match p.step.as_str() {
                NOTICE => {
                    refs.notice.entry(p.notice_id.clone()).or_insert(blob);
                }
                ACK => {
                    refs.ack.entry(p.notice_id.clone()).or_insert(blob);
                }
                reply => refs.reply.push((reply.to_string(), blob)),
            }
        }
        Ok(refs)
    }

    /// Writes `refs` on the rows of their steps, written already; a step
    /// already proven keeps its first proof.
    pub async fn write_refs(&mut self, refs: &Refs) -> Result<()> {
        let notice: Vec<(&String, &Vec<u8>)> = refs.notice.iter().collect();
        let ack: Vec<(&String, &Vec<u8>)> = refs.ack.iter().collect();
        let reply: Vec<(&String, &Vec<u8>)> = refs.reply.iter().map(|(k, v)| (k, v)).collect();
        for (these, table, col, key) in [
            (notice, "notices", "notice_proof", "id"),
            (ack, "notices", "ack_proof", "id"),
            (reply, "replies", "proof", "reply_id"),
        ] {
            // One statement per chunk, joined on the key (a CASE per row
            // would compare every row with every key).
            for chunk in these.chunks(CHUNK / 2) {
                with_tx!(self, |conn, Db| {
                    let mut q = QueryBuilder::<Db>::new(format!(
                        "UPDATE {table} SET {col} = v.column2 FROM ("
                    ));
                    q.push_values(chunk, |mut b, (id, blob)| {
                        b.push_bind(id.as_str()).push_bind(blob.as_slice());
                    });
                    q.push(format!(
                        ") AS v WHERE {table}.{key} = v.column1 AND {table}.{col} IS NULL"
                    ));
                    q.build().execute(&mut *conn).await?;
                });
            }
        }
        Ok(())
    }
}

impl Store {
    /// Every proof kept for a notice's journey, in no particular order.
    pub async fn proofs_of(&self, notice_id: &str) -> Result<Vec<StepProof>> {
        let mut refs: Vec<(String, Vec<u8>)> = Vec::new();
        with_pool!(self, read, |pool, Db| {
            if let Some(r) =
                sqlx::query("SELECT notice_proof, ack_proof FROM notices WHERE id = $1")
                    .bind(notice_id)
                    .fetch_optional(pool)
                    .await?
            {
                for (step, i) in [(NOTICE, 0), (ACK, 1)] {
                    if let Some(b) = r.get::<Option<Vec<u8>>, _>(i) {
                        refs.push((step.to_string(), b));
                    }
                }
            }
            for r in sqlx::query(
                "SELECT reply_id, proof FROM replies WHERE notice_id = $1 AND proof IS NOT NULL",
            )
            .bind(notice_id)
            .fetch_all(pool)
            .await?
            {
                refs.push((r.get(0), r.get(1)));
            }
        });
        let mut out = Vec::new();
        for (step, blob) in refs {
            let Some((batch, index, mut path)) = decode(&blob) else {
                continue;
            };
            let row: Option<BatchRow> = with_pool!(self, read, |pool, Db| {
                sqlx::query_as(
                        "SELECT signer, size, signature, cert, leaves FROM signed_batches WHERE id = $1",
                    )
                    .bind(batch)
                    .fetch_optional(pool)
                    .await?
            });
            let Some((signer, size, signature, cert, leaves)) = row else {
                continue;
            };
            if let Some(leaves) = leaves {
                let leaves: Vec<Hash> = leaves
                    .chunks(32)
                    .filter_map(|c| c.try_into().ok())
                    .collect();
                if (index as usize) < leaves.len() {
                    path = crate::proof::tree::path(&leaves, index as usize);
                }
            }
            out.push(StepProof {
                notice_id: notice_id.to_string(),
                step,
                proof: Proof {
                    signer,
                    index,
                    size: size.max(0) as u64,
                    path,
                    signature,
                    cert,
                },
            });
        }
        Ok(out)
    }

    /// Every reply kept for a notice (written here or received), in its
    /// wire form, oldest first.
    pub async fn replies_of(&self, notice_id: &str) -> Result<Vec<Vec<u8>>> {
        with_pool!(self, read, |pool, Db| {
            Ok(sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT content FROM replies WHERE notice_id = $1 ORDER BY created_at, reply_id",
            )
            .bind(notice_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// A kept certificate by its fingerprint.
    pub async fn certificate(&self, fingerprint: &str) -> Result<Option<SignerCert>> {
        with_pool!(self, read, |pool, Db| {
            let row = sqlx::query(
                "SELECT fingerprint, district, der FROM certificates WHERE fingerprint = $1",
            )
            .bind(fingerprint)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| SignerCert {
                fingerprint: r.get(0),
                district: r.get(1),
                der: r.get(2),
            }))
        })
    }
}
