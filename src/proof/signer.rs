//! A node's signer on the exchange (its key and certificate) and the
//! proof as it travels (`pb::Proof`), bounded before it is used.

use super::sign::{NodeKey, Proof, ProofError};
use super::tree::Hash;
use crate::domain::DistrictCode;
use crate::identity::{TlsMaterial, fingerprint};
use crate::pb;

/// The longest path a proof may carry (a batch of 2^40 items), the
/// largest signature and certificate: a proof is bounded before it is used.
const MAX_PATH: usize = 40;
const MAX_SIGNATURE: usize = 80;
pub const MAX_CERTIFICATE: usize = 8 * 1024;

/// This node's signing key and certificate.
pub struct Signer {
    key: NodeKey,
    cert: Vec<u8>,
    fingerprint: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer {{ {:?} }}", self.key)
    }
}

impl Signer {
    /// The signer of a node with `tls`; None when its key is not ECDSA
    /// P-256 (every key `migrex` makes is).
    pub fn of(tls: &TlsMaterial, district: &DistrictCode) -> Option<Signer> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let key = NodeKey::from_pem(&tls.key_pem, district.as_str())?;
        let cert = CertificateDer::from_pem_slice(tls.cert_pem.as_bytes())
            .ok()?
            .to_vec();
        Some(Signer {
            key,
            fingerprint: fingerprint(&cert),
            cert,
        })
    }

    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    pub fn district(&self) -> &str {
        self.key.district()
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Signs canonical items as the batch of one call (docs/protocol.md
    /// §4.1): the call's signature, each item's proof as this node keeps
    /// it (no path: it is rebuilt from the leaves, kept once) and the
    /// leaves. On the wire each item carries only its index (`index_only`).
    pub fn sign_call(&self, items: &[Vec<u8>]) -> CallSigned {
        let leaves: Vec<Hash> = items.iter().map(|i| super::tree::leaf_hash(i)).collect();
        let size = leaves.len() as u64;
        let signature = self.key.sign(&super::sign::statement(
            self.district(),
            size,
            &super::tree::root(&leaves),
        ));
        let proofs = (0..size)
            .map(|index| Proof {
                signer: self.district().to_string(),
                index,
                size,
                path: Vec::new(),
                signature: signature.clone(),
                cert: self.fingerprint.clone(),
            })
            .collect();
        CallSigned {
            batch: pb::CallBatch {
                signer: self.district().to_string(),
                size,
                signature,
            },
            proofs,
            leaves,
        }
    }

    /// Signs canonical items as one batch: a proof per item.
    pub fn sign(&self, items: &[Vec<u8>]) -> Vec<Proof> {
        let mut proofs = self.key.sign_batch(items);
        for p in &mut proofs {
            p.cert = self.fingerprint.clone();
        }
        proofs
    }
}

/// What `Signer::sign_call` gives: the call's batch signature, each
/// item's proof (without its path) and the batch's leaf hashes.
pub struct CallSigned {
    pub batch: pb::CallBatch,
    pub proofs: Vec<Proof>,
    pub leaves: Vec<Hash>,
}

/// An item's proof on the wire when it belongs to its call's batch
/// (`CallBatch`): its index and nothing else.
pub fn index_only(index: u64) -> pb::Proof {
    pb::Proof {
        index,
        ..Default::default()
    }
}

/// Whether a wire proof is an index into its call's batch.
pub fn is_index_only(p: &pb::Proof) -> bool {
    p.signer.is_empty()
        && p.size == 0
        && p.path.is_empty()
        && p.signature.is_empty()
        && p.certificate.is_empty()
}

/// A proof as it travels (without the certificate's fingerprint, which
/// only a store keeps).
pub fn to_pb(p: &Proof) -> pb::Proof {
    pb::Proof {
        signer: p.signer.clone(),
        index: p.index,
        size: p.size,
        path: p.path.iter().map(|h| h.to_vec()).collect(),
        signature: p.signature.clone(),
        certificate: Vec::new(),
    }
}

/// A proof from the wire, its sizes checked first.
pub fn from_pb(p: &pb::Proof) -> Result<Proof, ProofError> {
    if p.path.len() > MAX_PATH
        || p.signature.len() > MAX_SIGNATURE
        || p.certificate.len() > MAX_CERTIFICATE
    {
        return Err(ProofError::NotInBatch);
    }
    let path = p
        .path
        .iter()
        .map(|h| Hash::try_from(h.as_slice()).map_err(|_| ProofError::NotInBatch))
        .collect::<Result<Vec<Hash>, _>>()?;
    Ok(Proof {
        signer: p.signer.clone(),
        index: p.index,
        size: p.size,
        path,
        signature: p.signature.clone(),
        cert: String::new(),
    })
}
