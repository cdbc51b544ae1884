//! Whom a node trusts on the exchange links, and how that changes while it
//! runs: the network CA, the CA's revocation list (from a file or an
//! `http://` URL, picked up again without a restart), and the district a
//! peer's certificate must speak for before anything is sent to it.
//!
//! Both sides of every exchange handshake go through here: the listener
//! checks a client certificate with [`ClientVerifier`], delivery checks the
//! server's with [`PeerVerifier`] (chain, host name, revocation, and that
//! the certificate's district covers the route). A newly loaded list also
//! reaches connections that are already open: the exchange handlers look the
//! caller's serial up in [`Trust::is_revoked`], and delivery reconnects when
//! [`Trust::generation`] moves.

use super::{IdentityError, Result, TlsMaterial, district_of_cert, provider};
use crate::domain::RoutePrefix;
use rustls::DistinguishedName;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where a node reads the CA's revocation list: a file or an `http://` URL
/// (the list is signed; TLS adds nothing to it).
pub type CrlSource = crate::fetch::Source;

/// The largest revocation list a node takes.
pub const MAX_CRL_BYTES: usize = 4 << 20;

/// The verifiers built from one revocation list.
struct Current {
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<dyn ServerCertVerifier>,
    /// Revoked serials (upper-case hex), for connections already open.
    revoked: HashSet<String>,
    /// The list as it was read, to notice when it changes.
    raw: Vec<u8>,
}

/// The network CA and its revocation list, shared by every TLS
/// configuration of the node's exchange links.
pub struct Trust {
    roots: Arc<rustls::RootCertStore>,
    ca_ders: Vec<Vec<u8>>,
    hints: Vec<DistinguishedName>,
    source: Option<CrlSource>,
    current: RwLock<Arc<Current>>,
    generation: AtomicU64,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("source", &self.source)
            .field("generation", &self.generation())
            .finish()
    }
}

impl Trust {
    /// Trust in the CA of `material`, with no list loaded yet (call
    /// [`Trust::refresh`] before serving when `source` is set).
    pub fn new(material: &TlsMaterial, source: Option<CrlSource>) -> Result<Arc<Self>> {
        let roots = Arc::new(material.roots()?);
        let ca_ders = material.ca_ders()?;
        let hints = roots.subjects();
        let current = build(&roots, Vec::new(), HashSet::new(), Vec::new())?;
        Ok(Arc::new(Trust {
            roots,
            ca_ders,
            hints,
            source,
            current: RwLock::new(Arc::new(current)),
            generation: AtomicU64::new(0),
        }))
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where the list comes from, if the node has one.
    pub fn source(&self) -> Option<&CrlSource> {
        self.source.as_ref()
    }

    /// Grows by one every time a different list is taken.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the certificate (DER) has a serial on the current list.
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        let current = self.current();
        if current.revoked.is_empty() {
            return false;
        }
        x509_parser::parse_x509_certificate(der)
            .map(|(_, c)| {
                current
                    .revoked
                    .contains(&super::serial_text(c.raw_serial()))
            })
            .unwrap_or(true)
    }

    /// The district a certificate (DER) presented inside a message speaks
    /// for (a signer's, docs/protocol.md): it must chain to the network CA,
    /// be valid now and not be on the current list.
    pub fn vouches_for(
        &self,
        der: &[u8],
    ) -> std::result::Result<crate::domain::DistrictCode, String> {
        let cert = CertificateDer::from(der);
        self.current()
            .client
            .verify_client_cert(&cert, &[], UnixTime::now())
            .map_err(|e| {
                format!("the signer's certificate is not the network CA's or not valid: {e}")
            })?;
        if self.is_revoked(der) {
            return Err(
                "the signer's certificate is revoked (on the network CA's revocation list)".into(),
            );
        }
        district_of_cert(der).map_err(|e| e.to_string())
    }

    /// The district a certificate kept beside a proof speaks for, when the
    /// proof is checked later (`notice show --verify`, 通报详情): it must be
    /// issued by the network CA and not be on its current list, but it may
    /// have expired since — a step signed while it was valid stays proven,
    /// as `migrex verify` on an evidence file holds it.
    pub fn vouched_for_kept(
        &self,
        der: &[u8],
    ) -> std::result::Result<crate::domain::DistrictCode, String> {
        if !super::issued_by(der, &self.ca_ders) {
            return Err("the signer's certificate is not the network CA's".into());
        }
        if self.is_revoked(der) {
            return Err(
                "the signer's certificate is revoked (on the network CA's revocation list)".into(),
            );
        }
        district_of_cert(der).map_err(|e| e.to_string())
    }

    /// Reads the list again; takes it when it changed and its signature is
    /// the CA's. Returns how many serials it revokes when it was taken, None
    /// when nothing changed (or no source is configured). A list that
    /// cannot be read or checked is an error and changes nothing.
    pub async fn refresh(&self) -> Result<Option<usize>> {
        let Some(source) = &self.source else {
            return Ok(None);
        };
        let raw = fetch(source).await?;
        if raw == self.current().raw {
            return Ok(None);
        }
        let (crls, revoked) = read_crls(&raw, source, &self.ca_ders)?;
        let count = revoked.len();
        let next = build(&self.roots, crls, revoked, raw)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(Some(count))
    }

    /// The verifier of the exchange listener: a client certificate from the
    /// network CA, not revoked, is required.
    pub fn client_verifier(self: &Arc<Self>) -> Arc<dyn ClientCertVerifier> {
        Arc::new(ClientVerifier(self.clone()))
    }

    /// The verifier of calls to the peer of `route`; with `pin` (a
    /// SHA-256 fingerprint from the directory) only that certificate.
    pub fn peer_verifier(
        self: &Arc<Self>,
        route: &RoutePrefix,
        pin: Option<&str>,
    ) -> Arc<dyn ServerCertVerifier> {
        Arc::new(PeerVerifier {
            trust: self.clone(),
            route: route.clone(),
            pin: pin.map(str::to_string),
        })
    }
}

fn build(
    roots: &Arc<rustls::RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    revoked: HashSet<String>,
    raw: Vec<u8>,
) -> Result<Current> {
    let client =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .with_crls(crls.clone())
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status()
            .build()?;
    let server =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status()
            .build()
            .map_err(|e| IdentityError::Tls(rustls::Error::General(e.to_string())))?;
    Ok(Current {
        client,
        server,
        revoked,
        raw,
    })
}

/// The revocation lists in `raw` (PEM or DER) and the serials they
/// revoke, each list's signature checked against the CA certificates
/// (DER): what a node loads and what `migrex verify --crl` reads.
pub fn read_crls(
    raw: &[u8],
    source: &CrlSource,
    ca_ders: &[Vec<u8>],
) -> Result<(Vec<CertificateRevocationListDer<'static>>, HashSet<String>)> {
    let crls = parse_crls(raw, source)?;
    let mut revoked = HashSet::new();
    for crl in &crls {
        let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref())
            .map_err(|_| IdentityError::BadCrl(source.to_string(), "cannot be parsed"))?;
        let signed_by_ca = ca_ders.iter().any(|der| {
            x509_parser::parse_x509_certificate(der).is_ok_and(|(_, ca)| {
                parsed.verify_signature(ca.public_key()).is_ok() && parsed.issuer() == ca.subject()
            })
        });
        if !signed_by_ca {
            return Err(IdentityError::BadCrl(
                source.to_string(),
                "is not signed by the network CA",
            ));
        }
        for r in parsed.iter_revoked_certificates() {
            revoked.insert(super::serial_text(r.raw_serial()));
        }
    }
    Ok((crls, revoked))
}

fn parse_crls(
    raw: &[u8],
    source: &CrlSource,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    if raw.starts_with(b"-----") {
        let crls = CertificateRevocationListDer::pem_slice_iter(raw)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| IdentityError::BadCrl(source.to_string(), "is not PEM"))?;
        if crls.is_empty() {
            return Err(IdentityError::BadCrl(
                source.to_string(),
                "holds no X509 CRL block",
            ));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(raw.to_vec())])
    }
}

async fn fetch(source: &CrlSource) -> Result<Vec<u8>> {
    crate::fetch::fetch(source, MAX_CRL_BYTES, None)
        .await
        .map_err(|e| IdentityError::Fetch(e.to_string()))
}

/// The exchange listener's client-certificate check, always with the
/// current list.
#[derive(Debug)]
struct ClientVerifier(Arc<Trust>);

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.0.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.0
            .current()
            .client
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .client
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .client
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().client.supported_verify_schemes()
    }
}

/// Delivery's check of a peer: the network CA, the host name, the current
/// list, a district that covers every destination of the route, and the
/// certificate the directory pins, if it pins one.
#[derive(Debug)]
struct PeerVerifier {
    trust: Arc<Trust>,
    route: RoutePrefix,
    pin: Option<String>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verified = self.trust.current().server.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Some(pin) = &self.pin
            && super::fingerprint(end_entity.as_ref()) != *pin
        {
            return Err(rustls::Error::General(format!(
                "the peer's certificate is not the one the network directory names for route {} (SHA-256 {pin}); nothing was sent",
                self.route
            )));
        }
        match district_of_cert(end_entity.as_ref()) {
            Ok(d) if d.covers_route(&self.route) => Ok(verified),
            Ok(d) => Err(rustls::Error::General(format!(
                "the peer's certificate is for district {d} ({}), which does not cover route {}; nothing was sent",
                d.county_name(),
                self.route
            ))),
            Err(e) => Err(rustls::Error::General(format!(
                "the peer's certificate names no district ({e}); nothing was sent"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .current()
            .server
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .current()
            .server
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust.current().server.supported_verify_schemes()
    }
}

/// How far ahead an expiring certificate is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The warning for certificates (which, expiry in seconds since the epoch)
/// that expire within [`EXPIRY_WARNING`] of `now`, or already did.
pub fn expiry_warnings(expiries: &[(&'static str, i64)], now: i64) -> Vec<String> {
    expiries
        .iter()
        .filter(|(_, at)| *at - now < EXPIRY_WARNING.as_secs() as i64)
        .map(|(which, at)| {
            let days = (*at - now).div_euclid(86_400);
            if *at <= now {
                format!("the {which} certificate has expired; peers refuse it: issue a new one (migrex ca issue)")
            } else {
                format!("the {which} certificate expires in {days} days; issue a new one before then (migrex ca issue)")
            }
        })
        .collect()
}

/// Until `shutdown`: reads the revocation list again every `every` (a new
/// one is taken without a restart; one that cannot be read or checked keeps
/// the last good list and is logged once an hour while it fails), and warns
/// in the log once a day about certificates that expire within 30 days.
pub async fn watch(
    trust: Arc<Trust>,
    expiries: Vec<(&'static str, i64)>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut failing_since: Option<std::time::Instant> = None;
    let mut failure_logged: Option<std::time::Instant> = None;
    let mut expiry_checked: Option<std::time::Instant> = None;
    loop {
        if expiry_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400)) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            for w in expiry_warnings(&expiries, now) {
                tracing::warn!(warning = %w, "certificate expiry");
            }
            expiry_checked = Some(std::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {},
            _ = shutdown.cancelled() => break,
        }
        let source = trust.source().map(|s| s.to_string()).unwrap_or_default();
        match trust.refresh().await {
            Ok(Some(count)) => {
                tracing::info!(source = %source, revoked = count, "revocation list loaded");
                failing_since = None;
            }
            Ok(None) => failing_since = None,
            Err(e) => {
                failing_since.get_or_insert_with(std::time::Instant::now);
                if failure_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    tracing::warn!(source = %source, error = %e, "cannot read the revocation list; the last good one stays in force");
                    failure_logged = Some(std::time::Instant::now());
                }
            }
        }
    }
}
