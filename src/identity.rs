//! Identity and TLS: the development CA, node certificates, and the TLS
//! configurations of the listeners and of outgoing connections.
//!
//! A node's district code is in its certificate as a URI SAN
//! `urn:migrex:district:<code>`. The exchange listener requires a client
//! certificate signed by the network CA and turns it into a `DistrictCode`
//! in exactly one place (`peer_district`); handlers receive that typed value.
//! Both listeners speak TLS 1.3 only.

use crate::domain::DistrictCode;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

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

/// The files of a CA folder.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.crt"), dir.join("ca.key"))
}

/// Creates a development CA in `dir` unless one is there. Returns true when created.
pub fn ensure_ca(dir: &Path, name: &str) -> Result<bool> {
    let (cert_path, key_path) = ca_paths(dir);
    if cert_path.exists() && key_path.exists() {
        return Ok(false);
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "migrex network");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = params.not_before + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    Ok(true)
}

/// Issues a certificate for `district`, signed by the CA in `ca_dir`, usable
/// both as a server certificate (for `hosts`) and as a client certificate.
pub fn issue_node_cert(
    ca_dir: &Path,
    district: &DistrictCode,
    hosts: &[String],
    cert_out: &Path,
    key_out: &Path,
) -> Result<()> {
    let (ca_cert, ca_key) = ca_paths(ca_dir);
    let ca_key = KeyPair::from_pem(&read(&ca_key)?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&ca_cert)?, ca_key)?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hosts.iter().cloned());
    names.dedup();
    let mut params = CertificateParams::new(names)?;
    params.subject_alt_names.push(SanType::URI(
        format!("{DISTRICT_URI_PREFIX}{district}").try_into()?,
    ));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("migrex node {district}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "migrex network");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = params.not_before + time::Duration::days(825);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write(cert_out, &cert.pem(), false)?;
    write(key_out, &key.serialize_pem(), true)?;
    Ok(())
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

/// The caller's district, from the client certificate of an exchange call.
pub fn peer_district<T>(
    req: &tonic::Request<T>,
) -> std::result::Result<DistrictCode, tonic::Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| tonic::Status::unauthenticated("a client certificate is required"))?;
    let first = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("a client certificate is required"))?;
    district_of_cert(first.as_ref()).map_err(|e| tonic::Status::permission_denied(e.to_string()))
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

    fn roots(&self) -> Result<rustls::RootCertStore> {
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

    /// TLS 1.3, client certificate signed by the network CA required.
    pub fn exchange_server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()?),
            provider(),
        )
        .build()?;
        let (certs, key) = self.chain()?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
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

    /// For calls to a peer's exchange listener: trusts the network CA, presents this node's certificate.
    pub fn peer_client_config(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
    }
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop;
/// yields only connections whose handshake succeeded (a peer with a
/// certificate from another CA never reaches a handler). The stream ends
/// when the server drops it.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<std::result::Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        let mut failing = AcceptFailures::default();
        loop {
            let (tcp, addr): (TcpStream, SocketAddr) = tokio::select! {
                _ = tx.closed() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors (or the like): accepting
                        // again at once would spin and flood the log.
                        let pause = failing.failed(&e);
                        tokio::select! {
                            _ = tx.closed() => break,
                            _ = tokio::time::sleep(pause) => continue,
                        }
                    }
                },
            };
            failing = AcceptFailures::default();
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::info!(peer = %addr, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(peer = %addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Accept failures in a row: how long to pause before the next accept
/// (5 ms doubling to 1 s), and a log line at the first and then at most
/// every 10 seconds, with how many failed meanwhile.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<std::time::Instant>,
}

impl AcceptFailures {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(error = %e, failures = self.unlogged, "accept failed; pausing before the next");
            self.unlogged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
        Duration::from_millis(5u64 << self.in_a_row.min(9).saturating_sub(1))
            .min(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_to_a_second_and_log_rarely() {
        let mut f = AcceptFailures::default();
        let e = std::io::Error::other("too many open files");
        let pauses: Vec<u128> = (0..10).map(|_| f.failed(&e).as_millis()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(f.unlogged, 9, "logged once, the other nine counted");
    }

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
        m.exchange_server_config().unwrap();
        m.desk_server_config().unwrap();
    }
}
