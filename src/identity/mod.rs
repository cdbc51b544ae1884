//! Identity and TLS: node certificates, the TLS configurations of the
//! listeners and of outgoing connections (`ca`: the CA folder and its
//! revocation list; `trust`: what a node trusts while it runs; `accept`:
//! the accept loop with its limits per listener, address and peer; `serve`:
//! HTTP/1.1 with a request-head deadline and a bounded shutdown).
//!
//! A node's district code is in its certificate as a URI SAN
//! `urn:migrex:district:<code>`. The exchange listener requires a client
//! certificate signed by the network CA and turns it into a `DistrictCode`
//! in exactly one place (`peer_district`); handlers receive that typed value.
//! Both gRPC listeners speak TLS 1.3 only.

mod accept;
mod ca;
mod serve;
mod trust;

pub use accept::{Guarded, Limits, TlsConn, plain_incoming, tls_incoming};
pub use ca::{
    Issued, RevokeTarget, ca_paths, crl_path, ensure_ca, issue_from_request, issue_node_cert,
    issued, request_node_cert, revoke, serial_text, sign as ca_sign, write_crl,
};
pub use serve::{SHUTDOWN_GRACE, serve_http1};
pub use trust::{CrlSource, MAX_CRL_BYTES, Trust, read_crls, watch};

use crate::domain::DistrictCode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::path::Path;
use std::sync::Arc;

pub const DISTRICT_URI_PREFIX: &str = "urn:migrex:district:";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{path}: no usable PEM {what} in it")]
    Pem { path: String, what: &'static str },
    #[error("certificate has no district (expected a URI SAN {DISTRICT_URI_PREFIX}<code>)")]
    NoDistrict,
    #[error("certificate cannot be parsed")]
    BadCertificate,
    #[error("--serial {0} is not a certificate serial (hex digits, as `migrex ca list` prints)")]
    BadSerial(String),
    #[error(
        "--district {0}: the CA's ledger (issued.tsv) holds no certificate for it; revoke by --serial"
    )]
    NothingIssued(String),
    #[error("{0}")]
    Joining(String),
    #[error("--csr: {0}")]
    Request(String),
    #[error("revocation list {0} {1}")]
    BadCrl(String, &'static str),
    #[error("revocation list {0}")]
    Fetch(String),
}

type Result<T> = std::result::Result<T, IdentityError>;

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, text: &str, private: bool) -> Result<()> {
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::files::create_dir_all(dir).map_err(io)?;
    }
    if private {
        crate::files::write(path, text.as_bytes()).map_err(io)
    } else {
        std::fs::write(path, text).map_err(io)
    }
}

/// The district code a certificate speaks for.
pub fn district_of_cert(der: &[u8]) -> Result<DistrictCode> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::BadCertificate)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| IdentityError::BadCertificate)?
        .ok_or(IdentityError::NoDistrict)?;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => u.strip_prefix(DISTRICT_URI_PREFIX),
            _ => None,
        })
        .and_then(|code| DistrictCode::parse("certificate district", code).ok())
        .ok_or(IdentityError::NoDistrict)
}

/// The caller's district, from the client certificate of an exchange call;
/// a certificate revoked since the connection was made is refused.
pub fn peer_district<T>(
    req: &tonic::Request<T>,
    trust: &Trust,
) -> std::result::Result<DistrictCode, tonic::Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| tonic::Status::unauthenticated("a client certificate is required"))?;
    let first = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("a client certificate is required"))?;
    if trust.is_revoked(first.as_ref()) {
        return Err(tonic::Status::permission_denied(
            "the client certificate is revoked (on the network CA's revocation list)",
        ));
    }
    district_of_cert(first.as_ref()).map_err(|e| tonic::Status::permission_denied(e.to_string()))
}

/// Whether `signature` (ECDSA P-256 with SHA-256, DER-encoded, as
/// `ca::sign` makes it) over `bytes` was made with the key of the CA
/// certificate `ca_der`.
pub fn signed_by(ca_der: &[u8], bytes: &[u8], signature: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(ca_der) else {
        return false;
    };
    let key = &cert.public_key().subject_public_key.data;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(bytes, signature)
        .is_ok()
}

/// The SHA-256 of a certificate (DER), in lower-case hex: how the
/// directory pins a node's certificate.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

/// Whether the certificate (DER) is signed by one of the CA certificates
/// (DER): the check of a certificate on a machine with only `ca.crt`.
pub fn issued_by(cert_der: &[u8], ca_ders: &[Vec<u8>]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return false;
    };
    ca_ders.iter().any(|der| {
        x509_parser::parse_x509_certificate(der)
            .is_ok_and(|(_, ca)| cert.verify_signature(Some(ca.public_key())).is_ok())
    })
}

/// When a certificate (DER) stops being valid, in seconds since the epoch.
pub fn not_after(der: &[u8]) -> Result<i64> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::BadCertificate)?;
    Ok(cert.validity().not_after.timestamp())
}

/// The PEM files of a node: the network CA, its certificate and key.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial { .. }")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsMaterial {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self> {
        Ok(TlsMaterial {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    fn chain(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| IdentityError::Pem {
                path: "node certificate".into(),
                what: "certificate",
            })?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|_| {
            IdentityError::Pem {
                path: "node key".into(),
                what: "private key",
            }
        })?;
        Ok((certs, key))
    }

    /// The district in this node's own certificate.
    pub fn own_district(&self) -> Result<DistrictCode> {
        let (certs, _) = self.chain()?;
        district_of_cert(certs.first().ok_or(IdentityError::NoDistrict)?.as_ref())
    }

    /// Checks files handed over by the CA holder before a node is made of
    /// them: the certificate is signed by this CA, speaks for `district`,
    /// and the key is its key. Names the first thing that is wrong.
    pub fn check_issued_for(&self, district: &DistrictCode) -> Result<()> {
        let (certs, _) = self.chain()?;
        let leaf = certs.first().ok_or(IdentityError::NoDistrict)?;
        x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|_| IdentityError::BadCertificate)?;
        if !issued_by(leaf.as_ref(), &self.ca_ders()?) {
            return Err(IdentityError::Joining(
                "the node certificate is not signed by the CA certificate given".into(),
            ));
        }
        let own = district_of_cert(leaf.as_ref())?;
        if own != *district {
            return Err(IdentityError::Joining(format!(
                "the node certificate is for district {own}, not {district}"
            )));
        }
        // rustls refuses a key that is not the certificate's.
        self.desk_server_config().map_err(|_| {
            IdentityError::Joining("the key is not the node certificate's key".into())
        })?;
        Ok(())
    }

    /// The network CA's certificates.
    pub(crate) fn ca_ders(&self) -> Result<Vec<Vec<u8>>> {
        CertificateDer::pem_slice_iter(self.ca_pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| IdentityError::Pem {
                path: "CA certificate".into(),
                what: "certificate",
            })
    }

    /// When this node's certificate and the network CA's expire (seconds
    /// since the epoch), for the `/metrics` gauge and the early warning.
    pub fn expiries(&self) -> Result<Vec<(&'static str, i64)>> {
        let (certs, _) = self.chain()?;
        let node = not_after(certs.first().ok_or(IdentityError::NoDistrict)?.as_ref())?;
        let mut out = vec![("node", node)];
        if let Some(ca) = self.ca_ders()?.first() {
            out.push(("ca", not_after(ca)?));
        }
        Ok(out)
    }

    pub(crate) fn roots(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let c = c.map_err(|_| IdentityError::Pem {
                path: "CA certificate".into(),
                what: "certificate",
            })?;
            roots.add(c)?;
        }
        Ok(roots)
    }

    /// TLS 1.3, a client certificate from the network CA that `trust` does
    /// not hold revoked. No session resumption: every connection shows its
    /// certificate and is checked against the list of that moment.
    pub fn exchange_server_config(&self, trust: &Arc<Trust>) -> Result<Arc<rustls::ServerConfig>> {
        let (certs, key) = self.chain()?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(trust.client_verifier())
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok(Arc::new(cfg))
    }

    /// TLS 1.3, no client certificate (staff authenticate with tokens).
    pub fn desk_server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let (certs, key) = self.chain()?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The web console: TLS 1.3 and 1.2 (browsers), HTTP/1.1, no client
    /// certificate (staff log in), with this material's certificate.
    pub fn console_server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let (certs, key) = self.chain()?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// For reading what the network authority publishes over `https://`:
    /// the network CA is the only root, no client certificate.
    pub fn authority_client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for der in self.ca_ders()? {
            roots.add(CertificateDer::from(der))?;
        }
        Ok(Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ))
    }

    /// For calls to a peer's exchange listener: trusts the network CA, presents this node's certificate.
    pub fn peer_client_config(&self) -> tonic::transport::ClientTlsConfig {
        self.peer_identity()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
    }

    /// This node's certificate for calls to a peer, to be paired with a
    /// verifier of the peer (`Trust::peer_verifier`).
    pub fn peer_identity(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_carries_its_district() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_ca(dir.path(), "test CA").unwrap());
        assert!(!ensure_ca(dir.path(), "test CA").unwrap());
        let d = DistrictCode::parse("d", "440303").unwrap();
        let (c, k) = (dir.path().join("n.crt"), dir.path().join("n.key"));
        issue_node_cert(dir.path(), &d, &[], &c, &k).unwrap();
        let m = TlsMaterial::load(&dir.path().join("ca.crt"), &c, &k).unwrap();
        assert_eq!(m.own_district().unwrap(), d);
        m.exchange_server_config(&Trust::new(&m, None).unwrap())
            .unwrap();
        m.desk_server_config().unwrap();
    }

    fn der_of(path: &Path) -> Vec<u8> {
        CertificateDer::pem_file_iter(path)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn a_revoked_district_is_on_the_list_a_node_loads_and_a_stranger_s_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        ensure_ca(&ca, "test CA").unwrap();
        let cert = |code: &str| {
            let d = DistrictCode::parse("d", code).unwrap();
            let (c, k) = (
                dir.path().join(format!("{code}.crt")),
                dir.path().join(format!("{code}.key")),
            );
            let serial = issue_node_cert(&ca, &d, &[], &c, &k).unwrap();
            (serial, c, k)
        };
        let (bad_serial, bad, _) = cert("411302");
        let (_, good, good_key) = cert("440303");
        assert_eq!(
            serial_text(
                x509_parser::parse_x509_certificate(&der_of(&bad))
                    .unwrap()
                    .1
                    .raw_serial()
            ),
            bad_serial
        );
        write_crl(&ca, time::OffsetDateTime::now_utc()).unwrap();
        let m = TlsMaterial::load(&ca.join("ca.crt"), &good, &good_key).unwrap();
        let trust = Trust::new(&m, Some(CrlSource::File(crl_path(&ca)))).unwrap();
        assert_eq!(trust.refresh().await.unwrap(), Some(0));
        assert_eq!(
            trust.refresh().await.unwrap(),
            None,
            "unchanged: not taken again"
        );
        assert!(!trust.is_revoked(&der_of(&bad)));

        let d = DistrictCode::parse("d", "411302").unwrap();
        let now = time::OffsetDateTime::now_utc();
        assert_eq!(
            revoke(&ca, &RevokeTarget::District(d.clone()), now).unwrap(),
            vec![bad_serial.clone()]
        );
        assert!(
            revoke(&ca, &RevokeTarget::District(d), now)
                .unwrap()
                .is_empty(),
            "once"
        );
        let before = trust.generation();
        assert_eq!(trust.refresh().await.unwrap(), Some(1));
        assert_eq!(trust.generation(), before + 1);
        assert!(trust.is_revoked(&der_of(&bad)));
        assert!(!trust.is_revoked(&der_of(&good)));
        // A kept proof's certificate: an expired one of the CA still
        // vouches for the steps it signed; a revoked one or a stranger's
        // does not. On the exchange, an expired one is refused.
        let expired = dir.path().join("expired.crt");
        let wancheng = DistrictCode::parse("d", "411302").unwrap();
        ca::issue_expired_cert(&ca, &wancheng, &expired).unwrap();
        assert_eq!(trust.vouched_for_kept(&der_of(&expired)), Ok(wancheng));
        assert!(trust.vouches_for(&der_of(&expired)).is_err());
        let why = trust.vouched_for_kept(&der_of(&bad)).unwrap_err();
        assert!(why.contains("revoked"), "{why}");
        let stranger_ca = dir.path().join("stranger-ca");
        ensure_ca(&stranger_ca, "stranger").unwrap();
        let (sc, sk) = (dir.path().join("s.crt"), dir.path().join("s.key"));
        issue_node_cert(
            &stranger_ca,
            &DistrictCode::parse("d", "440303").unwrap(),
            &[],
            &sc,
            &sk,
        )
        .unwrap();
        let why = trust.vouched_for_kept(&der_of(&sc)).unwrap_err();
        assert!(why.contains("not the network CA's"), "{why}");
        let listed = issued(&ca).unwrap();
        assert!(
            listed
                .iter()
                .any(|i| i.serial == bad_serial && i.revoked.is_some())
        );
        assert!(
            listed
                .iter()
                .any(|i| i.district == "440303" && i.revoked.is_none())
        );

        // A list signed by another CA is refused and the last good one stays.
        let other = dir.path().join("other");
        ensure_ca(&other, "stranger").unwrap();
        write_crl(&other, now).unwrap();
        std::fs::copy(crl_path(&other), crl_path(&ca)).unwrap();
        let err = trust.refresh().await.unwrap_err();
        assert!(
            err.to_string().contains("not signed by the network CA"),
            "{err}"
        );
        assert!(trust.is_revoked(&der_of(&bad)));
        assert!(matches!(
            revoke(&ca, &RevokeTarget::Serial("xyz".into()), now),
            Err(IdentityError::BadSerial(_))
        ));
    }

    #[tokio::test]
    async fn the_list_can_come_from_an_http_url() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        ensure_ca(&ca, "test CA").unwrap();
        let d = DistrictCode::parse("d", "440303").unwrap();
        let (c, k) = (dir.path().join("n.crt"), dir.path().join("n.key"));
        let serial = issue_node_cert(&ca, &d, &[], &c, &k).unwrap();
        revoke(
            &ca,
            &RevokeTarget::Serial(serial),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let body = std::fs::read(crl_path(&ca)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ca/crl.pem", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"GET /ca/crl.pem HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\n\r\n")
                .await
                .unwrap();
            s.write_all(&body).await.unwrap();
        });
        let m = TlsMaterial::load(&ca.join("ca.crt"), &c, &k).unwrap();
        let trust = Trust::new(&m, Some(CrlSource::Url(url))).unwrap();
        assert_eq!(trust.refresh().await.unwrap(), Some(1));
        assert!(trust.is_revoked(&der_of(&c)));
    }

    #[test]
    fn certificates_expiring_within_30_days_are_warned_about() {
        let day = 86_400;
        let now = 1_000 * day;
        let w = trust::expiry_warnings(&[("node", now + 29 * day), ("ca", now + 31 * day)], now);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("node certificate expires in 29 days"),
            "{}",
            w[0]
        );
        let w = trust::expiry_warnings(&[("node", now - 1)], now);
        assert!(w[0].contains("has expired"), "{}", w[0]);
    }
}
