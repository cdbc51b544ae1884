//! The evidence file of one notice's journey (`migrex notice evidence`,
//! docs/protocol.md §4.2): every step's canonical bytes with its proof,
//! and the signers' certificates, checked on any machine with only the
//! network CA's certificate (`migrex verify FILE --ca ca.crt`). The file is
//! compact JSON in one fixed form: a file that is not byte for byte the
//! form of what it holds is refused, so no byte of it goes unchecked.

use super::canonical::{self, ACK, NOTICE, REPLY};
use super::sign::{Proof, hex_bytes, verify};
use crate::identity::{district_of_cert, fingerprint, issued_by, serial_text};
use std::collections::HashSet;

pub const FORM: &str = "migrex.evidence.v1";

/// The largest evidence file read (a journey has a handful of steps).
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    #[serde(rename = "type")]
    pub form: String,
    pub notice_id: String,
    pub steps: Vec<Step>,
    /// By fingerprint, in the order of the fingerprints.
    pub certificates: Vec<Certificate>,
}

/// One step: what was signed (canonical bytes, hex) and its proof.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub step: String,
    #[serde(with = "hex_bytes")]
    pub item: Vec<u8>,
    pub proof: Proof,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub fingerprint: String,
    #[serde(with = "hex_bytes")]
    pub der: Vec<u8>,
}

/// A step as checked: its name, signer, and what is wrong (None: verified).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Checked {
    pub step: String,
    pub signer: String,
    pub failure: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvidenceError {
    #[error("the file is not an evidence file: {0}")]
    Unreadable(String),
    #[error("the file is not in the evidence form (changed after it was written)")]
    NotCanonical,
    #[error("the file holds no notice step")]
    NoNotice,
}

impl Evidence {
    /// The file's bytes: compact JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("evidence serializes");
        out.push(b'\n');
        out
    }

    /// Reads a file's bytes; refuses one that is not exactly the form of
    /// what it holds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
        let e: Evidence = serde_json::from_slice(bytes)
            .map_err(|err| EvidenceError::Unreadable(err.to_string()))?;
        if e.form != FORM {
            return Err(EvidenceError::Unreadable(format!(
                "type is {:?}, not {FORM}",
                e.form
            )));
        }
        if e.to_bytes() != bytes {
            return Err(EvidenceError::NotCanonical);
        }
        if !e.steps.iter().any(|s| s.step == super::NOTICE_STEP) {
            return Err(EvidenceError::NoNotice);
        }
        Ok(e)
    }

    /// Checks every step with only the network CA's certificates (DER)
    /// and, when given, the serials its revocation list revokes.
    pub fn check(&self, ca_ders: &[Vec<u8>], revoked: &HashSet<String>) -> Vec<Checked> {
        self.steps
            .iter()
            .map(|s| Checked {
                step: s.step.clone(),
                signer: s.proof.signer.clone(),
                failure: self.check_step(s, ca_ders, revoked).err(),
            })
            .collect()
    }

    fn check_step(
        &self,
        s: &Step,
        ca_ders: &[Vec<u8>],
        revoked: &HashSet<String>,
    ) -> Result<(), String> {
        let fields = canonical::fields(&s.item).ok_or("the item is not in the canonical form")?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        // What the step is, whose it is, and which notice it is about.
        let (id_field, author_field) = match (field("type"), s.step.as_str()) {
            (NOTICE, super::NOTICE_STEP) => ("id", "origin"),
            (ACK, super::ACK_STEP) => ("notice_id", "destination"),
            (REPLY, step) if step != super::NOTICE_STEP && step != super::ACK_STEP => {
                ("notice_id", "author")
            }
            (t, step) => return Err(format!("step {step} holds an item of type {t:?}")),
        };
        if field(id_field) != self.notice_id {
            return Err(format!(
                "the item is about notice {}, not {}",
                field(id_field),
                self.notice_id
            ));
        }
        let author = field(author_field);
        if !author.starts_with(&s.proof.signer) {
            return Err(format!(
                "signed by {}, not by {author} whose step it is",
                s.proof.signer
            ));
        }
        let cert = self
            .certificates
            .iter()
            .find(|c| c.fingerprint == s.proof.cert)
            .ok_or("the signer's certificate is not in the file")?;
        if fingerprint(&cert.der) != cert.fingerprint {
            return Err("a certificate in the file is not the one its fingerprint names".into());
        }
        if !issued_by(&cert.der, ca_ders) {
            return Err("the signer's certificate is not issued by this CA".into());
        }
        if !revoked.is_empty()
            && x509_parser::parse_x509_certificate(&cert.der)
                .is_ok_and(|(_, c)| revoked.contains(&serial_text(c.raw_serial())))
        {
            return Err(
                "the signer's certificate is revoked (on the list given with --crl)".into(),
            );
        }
        district_of_cert(&cert.der).map_err(|e| e.to_string())?;
        verify(&s.item, &s.proof, &cert.der).map_err(|e| e.to_string())
    }
}
