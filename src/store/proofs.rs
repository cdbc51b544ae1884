//! Proofs of a notice's journey (issue 23): the signature covering each
//! step, kept beside the notice, and the signers' certificates.

use super::{Result, Store, Tx};
use sqlx::{QueryBuilder, Row};

/// Rows per insert statement (3 binds each, under SQLite's limits).
const CHUNK: usize = 900;

pub use crate::proof::{ACK_STEP as ACK, NOTICE_STEP as NOTICE};

/// The proof of one step of a notice's journey: `step` is "notice", "ack"
/// or a reply id; `proof` its JSON (`proof::sign::Proof`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepProof {
    pub notice_id: String,
    pub step: String,
    pub proof: String,
}

/// A signer's certificate (DER) under its fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct SignerCert {
    pub fingerprint: String,
    pub district: String,
    pub der: Vec<u8>,
}

/// What one batch proved: its items' proofs and their signers' certificates.
#[derive(Debug, Clone, Default)]
pub struct Proven {
    pub proofs: Vec<StepProof>,
    pub certificates: Vec<SignerCert>,
}

impl Proven {
    pub fn is_empty(&self) -> bool {
        self.proofs.is_empty() && self.certificates.is_empty()
    }

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

impl Tx {
    /// Keeps proofs and certificates; a step already proven keeps its
    /// first proof (a redelivery is signed again in another batch).
    pub async fn keep_proofs(&mut self, proven: &Proven) -> Result<()> {
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
        for chunk in proven.proofs.chunks(CHUNK) {
            with_tx!(self, |conn, Db| {
                let mut q =
                    QueryBuilder::<Db>::new("INSERT INTO proofs (step_id, notice_id, proof) ");
                q.push_values(chunk, |mut b, p| {
                    b.push_bind(format!("{}:{}", p.notice_id, p.step))
                        .push_bind(&p.notice_id)
                        .push_bind(&p.proof);
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }
}

impl Store {
    /// Every proof kept for a notice's journey, in no particular order.
    pub async fn proofs_of(&self, notice_id: &str) -> Result<Vec<StepProof>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query("SELECT step_id, proof FROM proofs WHERE notice_id = $1")
                .bind(notice_id)
                .fetch_all(pool)
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let step_id: String = r.get(0);
                    let step = step_id
                        .strip_prefix(notice_id)
                        .and_then(|s| s.strip_prefix(':'))
                        .unwrap_or_default()
                        .to_string();
                    StepProof {
                        notice_id: notice_id.to_string(),
                        step,
                        proof: r.get(1),
                    }
                })
                .collect())
        })
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

    /// The facts of every notice exchanged with `peer` (either way) that
    /// arrived in [from, to) (microseconds): one side's month for
    /// reconciliation (`reconcile::Month`).
    pub async fn month_facts(
        &self,
        peer: &str,
        (from, to): (i64, i64),
    ) -> Result<Vec<crate::reconcile::Facts>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT id, received_at, due_at, acknowledged_at, answered_at, feedback, withdrawn_at \
                 FROM notices WHERE direction IN (1, 2) AND received_at >= $1 AND received_at < $2 AND peer = $3",
            )
            .bind(from)
            .bind(to)
            .bind(peer)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let feedback: Option<Vec<u8>> = r.get(5);
                    let feedback = feedback.and_then(|b| {
                        <crate::pb::Feedback as prost::Message>::decode(b.as_slice()).ok()
                    });
                    crate::reconcile::Facts {
                        notice_id: r.get(0),
                        received_at: r.get(1),
                        due_at: r.get(2),
                        acknowledged_at: r.get(3),
                        answered_at: r.get(4),
                        feedback: crate::reconcile::Facts::feedback_digest(feedback.as_ref()),
                        withdrawn_at: r.get(6),
                    }
                })
                .collect())
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
