//! A node's signature over a batch: the root of the batch's hash tree,
//! signed once with the node's own key (ECDSA P-256, SHA-256, the signature
//! DER-encoded: the key the network CA certified for its district). Each
//! item of the batch carries a `Proof` (its place in the tree, the path and
//! the signed root) and is checked on its own with the signer's certificate.

use super::canonical;
use super::tree::{self, Hash};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

/// Why an item does not verify, as `notice show --verify` says it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("no signature")]
    Unsigned,
    #[error("the item is not in the signed batch (its path leads to another root)")]
    NotInBatch,
    #[error("the signature is not by the key of the certificate presented")]
    BadSignature,
    #[error("the certificate speaks for {certified}, not for the signer {signer}")]
    OtherDistrict { certified: String, signer: String },
    #[error("the certificate cannot be read")]
    BadCertificate,
}

/// One item's proof: where it sits in its batch and the batch's signature.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Proof {
    /// The district that signed (the origin of a notice, the destination of
    /// an acknowledgement, the author of a reply).
    pub signer: String,
    pub index: u64,
    pub size: u64,
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash>,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
    /// The SHA-256 fingerprint (hex) of the signer's certificate, as a
    /// node keeps it beside the proof; not part of what is signed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert: String,
}

pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(D::Error::custom)
    }
}

mod hex_hashes {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|h| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h, &mut out).map_err(D::Error::custom)?;
                Ok(out)
            })
            .collect()
    }
}

/// The statement a node signs for a batch: its district, the batch's size
/// and root, in the canonical form.
pub fn statement(signer: &str, size: u64, root: &Hash) -> Vec<u8> {
    canonical::batch(signer, size, root)
}

/// A node's signing key.
pub struct NodeKey {
    pair: EcdsaKeyPair,
    district: String,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey {{ district: {} }}", self.district)
    }
}

impl NodeKey {
    /// The node's key (PKCS#8 PEM, as `migrex init` writes it), signing for
    /// `district`; `None` when it is not an ECDSA P-256 key.
    pub fn from_pem(key_pem: &str, district: &str) -> Option<NodeKey> {
        use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
        let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?
        else {
            return None;
        };
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .ok()?;
        Some(NodeKey {
            pair,
            district: district.to_string(),
        })
    }

    pub fn district(&self) -> &str {
        &self.district
    }

    /// Signs `bytes` (a canonical statement).
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        self.pair
            .sign(&rng, bytes)
            .map(|s| s.as_ref().to_vec())
            // ring fails to sign only when the system's random source does.
            .expect("the system random source")
    }

    /// Signs a batch of canonical items: one signature, a proof per item.
    pub fn sign_batch(&self, items: &[Vec<u8>]) -> Vec<Proof> {
        let leaves: Vec<Hash> = items.iter().map(|i| tree::leaf_hash(i)).collect();
        let (root, paths) = tree::root_and_paths(&leaves);
        let size = leaves.len() as u64;
        let signature = self.sign(&statement(&self.district, size, &root));
        paths
            .into_iter()
            .enumerate()
            .map(|(i, path)| Proof {
                signer: self.district.clone(),
                index: i as u64,
                size,
                path,
                signature: signature.clone(),
                cert: String::new(),
            })
            .collect()
    }
}

/// Checks one canonical item against its proof and the signer's
/// certificate (DER). Whether the certificate is the network CA's and not
/// revoked is the caller's to check (`identity`).
pub fn verify(item: &[u8], proof: &Proof, cert_der: &[u8]) -> Result<(), ProofError> {
    if proof.signature.is_empty() {
        return Err(ProofError::Unsigned);
    }
    let certified = crate::identity::district_of_cert(cert_der)
        .map_err(|_| ProofError::BadCertificate)?
        .to_string();
    if certified != proof.signer {
        return Err(ProofError::OtherDistrict {
            certified,
            signer: proof.signer.clone(),
        });
    }
    let (Ok(index), Ok(size)) = (usize::try_from(proof.index), usize::try_from(proof.size)) else {
        return Err(ProofError::NotInBatch);
    };
    let root = tree::root_from_path(&tree::leaf_hash(item), index, size, &proof.path)
        .ok_or(ProofError::NotInBatch)?;
    let statement = statement(&proof.signer, proof.size, &root);
    if crate::identity::signed_by(cert_der, &statement, &proof.signature) {
        Ok(())
    } else {
        // A changed item leads to another root, which the signature does
        // not cover: said as the item not being the one signed.
        Err(ProofError::BadSignature)
    }
}

/// Checks a whole batch as its receiver does: every item's path must lead
/// to one root, whose statement is then verified once (one ECDSA check per
/// batch, not per item). The first failing item is named by its index.
pub fn verify_batch(
    items: &[Vec<u8>],
    proofs: &[Proof],
    cert_der: &[u8],
) -> Result<(), (usize, ProofError)> {
    let Some(first) = proofs.first() else {
        return Ok(());
    };
    if items.len() != proofs.len() {
        return Err((items.len().min(proofs.len()), ProofError::NotInBatch));
    }
    let mut root = None;
    for (i, (item, proof)) in items.iter().zip(proofs).enumerate() {
        if proof.signature.is_empty() {
            return Err((i, ProofError::Unsigned));
        }
        if proof.signer != first.signer
            || proof.size != first.size
            || proof.signature != first.signature
        {
            return Err((i, ProofError::NotInBatch));
        }
        let (Ok(index), Ok(size)) = (usize::try_from(proof.index), usize::try_from(proof.size))
        else {
            return Err((i, ProofError::NotInBatch));
        };
        let r = tree::root_from_path(&tree::leaf_hash(item), index, size, &proof.path)
            .ok_or((i, ProofError::NotInBatch))?;
        if *root.get_or_insert(r) != r {
            return Err((i, ProofError::NotInBatch));
        }
    }
    // One signature for all: checked with the first item's proof, the
    // others leading to the same root under the same statement.
    verify(&items[0], first, cert_der).map_err(|e| (0, e))
}

/// Checks items that may come from several batches and signers (a
/// relay's hand-over mixes them): each item's path gives its batch root,
/// and each distinct signed statement is verified once. `cert_of` gives the
/// signer's certificate (DER) of an item; whether it is the network CA's
/// and not revoked is the caller's to check.
pub fn verify_many<'a>(
    items: impl IntoIterator<Item = (&'a [u8], &'a Proof, &'a [u8])>,
) -> Vec<Result<(), ProofError>> {
    use std::collections::HashMap;
    let mut districts: Vec<(&[u8], Option<String>)> = Vec::new();
    let mut checked: HashMap<(&[u8], Hash, &[u8]), bool> = HashMap::new();
    let mut out = Vec::new();
    for (item, proof, cert) in items {
        out.push((|| {
            if proof.signature.is_empty() {
                return Err(ProofError::Unsigned);
            }
            // One parse per certificate, however many items it signed.
            let certified = match districts.iter().find(|(c, _)| *c == cert) {
                Some((_, d)) => d.clone(),
                None => {
                    let d = crate::identity::district_of_cert(cert)
                        .ok()
                        .map(|d| d.to_string());
                    districts.push((cert, d.clone()));
                    d
                }
            }
            .ok_or(ProofError::BadCertificate)?;
            if certified != proof.signer {
                return Err(ProofError::OtherDistrict {
                    certified,
                    signer: proof.signer.clone(),
                });
            }
            let (Ok(index), Ok(size)) = (usize::try_from(proof.index), usize::try_from(proof.size))
            else {
                return Err(ProofError::NotInBatch);
            };
            let root = tree::root_from_path(&tree::leaf_hash(item), index, size, &proof.path)
                .ok_or(ProofError::NotInBatch)?;
            let good = *checked
                .entry((proof.signature.as_slice(), root, cert))
                .or_insert_with(|| {
                    let statement = statement(&proof.signer, proof.size, &root);
                    crate::identity::signed_by(cert, &statement, &proof.signature)
                });
            if good {
                Ok(())
            } else {
                Err(ProofError::BadSignature)
            }
        })());
    }
    out
}

/// A key and certificate for `district`, as the network CA makes them
/// (tests).
#[cfg(test)]
pub(crate) fn test_node(district: &str) -> (NodeKey, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    crate::identity::ensure_ca(dir.path(), "test CA").unwrap();
    let code = crate::domain::DistrictCode::parse("d", district).unwrap();
    let (cert, key) = (dir.path().join("node.crt"), dir.path().join("node.key"));
    crate::identity::issue_node_cert(dir.path(), &code, &["localhost".into()], &cert, &key)
        .unwrap();
    let key = NodeKey::from_pem(&std::fs::read_to_string(key).unwrap(), district).unwrap();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_file(cert).unwrap();
    (key, der.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(district: &str) -> (NodeKey, Vec<u8>) {
        test_node(district)
    }

    #[test]
    fn each_item_of_a_batch_verifies_alone_and_a_changed_one_does_not() {
        let (key, cert) = node("440303");
        let items: Vec<Vec<u8>> = (0..5)
            .map(|i| canonical::ack(&format!("n{i}"), "440303", None, None, false))
            .collect();
        let proofs = key.sign_batch(&items);
        for (item, proof) in items.iter().zip(&proofs) {
            assert_eq!(verify(item, proof, &cert), Ok(()));
        }
        let changed = canonical::ack("n9", "440303", None, None, false);
        assert_eq!(
            verify(&changed, &proofs[0], &cert),
            Err(ProofError::BadSignature)
        );
        let (_, other) = node("510116");
        assert!(matches!(
            verify(&items[0], &proofs[0], &other),
            Err(ProofError::OtherDistrict { .. })
        ));
        // Signed by another district's key while claiming to be 440303.
        let (liar, _) = node("510116");
        let forged = NodeKey {
            pair: liar.pair,
            district: "440303".into(),
        }
        .sign_batch(&items);
        assert_eq!(
            verify(&items[0], &forged[0], &cert),
            Err(ProofError::BadSignature)
        );
        assert_eq!(verify_batch(&items, &proofs, &cert), Ok(()));
        let mut swapped = items.clone();
        swapped.swap(1, 2);
        assert_eq!(
            verify_batch(&swapped, &proofs, &cert),
            Err((1, ProofError::NotInBatch))
        );
        assert_eq!(
            verify_batch(&items, &forged, &cert),
            Err((0, ProofError::BadSignature))
        );
        let many = verify_many(
            items
                .iter()
                .zip(&proofs)
                .map(|(i, p)| (i.as_slice(), p, cert.as_slice()))
                .chain([(changed.as_slice(), &proofs[0], cert.as_slice())])
                .chain([(items[0].as_slice(), &forged[0], cert.as_slice())]),
        );
        assert_eq!(many.len(), 7);
        assert!(many[..5].iter().all(Result::is_ok), "{many:?}");
        assert_eq!(many[5], Err(ProofError::BadSignature));
        assert_eq!(many[6], Err(ProofError::BadSignature));
        let mut cut = proofs[1].clone();
        cut.path.pop();
        assert_eq!(verify(&items[1], &cut, &cert), Err(ProofError::NotInBatch));
    }
}
