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

    /// Signs canonical items as one batch: a proof per item, and the
    /// batch's leaf hashes (what a node keeps of its own batches).
    pub fn sign_keeping(&self, items: &[Vec<u8>]) -> (Vec<Proof>, Vec<Hash>) {
        let leaves = items.iter().map(|i| super::tree::leaf_hash(i)).collect();
        (self.sign(items), leaves)
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
