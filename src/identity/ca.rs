//! The network CA's folder: its key pair, the node certificates it issued
//! (a ledger, so a district's certificates can be revoked by district), and
//! the certificate revocation list it signs.
//!
//! Files in the CA folder: `ca.crt`, `ca.key` (0600), `issued.tsv` (serial,
//! district, expiry), `revoked.tsv` (serial, when, district) and `crl.pem`,
//! the signed list nodes load (`tls.crl` in their config).

use super::{IdentityError, Result, read, write};
use crate::domain::DistrictCode;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The files of a CA folder.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.crt"), dir.join("ca.key"))
}

/// Where `migrex ca revoke` writes the signed revocation list.
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join("crl.pem")
}

fn issued_path(dir: &Path) -> PathBuf {
    dir.join("issued.tsv")
}

fn revoked_path(dir: &Path) -> PathBuf {
    dir.join("revoked.tsv")
}

/// How long a signed revocation list says it is current. Nodes keep using
/// an older list (they do not enforce this date), so a CA that is late
/// re-signing does not cut the network off; `migrex ca revoke` re-signs.
const CRL_VALIDITY_DAYS: i64 = 30;

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
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = params.not_before + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    write(&cert_path, &cert.pem(), false)?;
    write(&key_path, &key.serialize_pem(), true)?;
    Ok(true)
}

fn issuer(ca_dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let (ca_cert, ca_key) = ca_paths(ca_dir);
    let ca_key = KeyPair::from_pem(&read(&ca_key)?)?;
    Ok(Issuer::from_ca_cert_pem(&read(&ca_cert)?, ca_key)?)
}

/// A node certificate for `district` that expired 75 days ago (tests of
/// proofs that outlive the certificate that made them).
#[cfg(test)]
pub(crate) fn issue_expired_cert(
    ca_dir: &Path,
    district: &DistrictCode,
    cert_out: &Path,
) -> Result<()> {
    let key = KeyPair::generate()?;
    let mut params = node_params(district, &[])?;
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(900);
    params.not_after = OffsetDateTime::now_utc() - time::Duration::days(75);
    let cert = params.signed_by(&key, &issuer(ca_dir)?)?;
    write(cert_out, &cert.pem(), false)
}

/// A certificate serial as migrex prints and takes it: upper-case hex.
pub fn serial_text(raw: &[u8]) -> String {
    let trimmed: &[u8] = match raw.iter().position(|b| *b != 0) {
        Some(i) => &raw[i..],
        None => &raw[raw.len().saturating_sub(1)..],
    };
    hex::encode_upper(trimmed)
}

/// What a node certificate for `district` says: its host names (and the
/// local ones), the district as a URI SAN, server and client use. The one
/// place these are decided, for a key made here and for a request.
fn node_params(district: &DistrictCode, hosts: &[String]) -> Result<CertificateParams> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hosts.iter().cloned());
    names.dedup();
    let mut params = CertificateParams::new(names)?;
    params.subject_alt_names.push(SanType::URI(
        format!("{}{district}", super::DISTRICT_URI_PREFIX).try_into()?,
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
    Ok(params)
}

/// Signs `params` (for `public_key`) as a node certificate of `district`
/// for 825 days with a random serial noted in the CA's ledger; writes the
/// certificate to `cert_out`. Returns the serial.
fn sign_node(
    ca_dir: &Path,
    district: &DistrictCode,
    mut params: CertificateParams,
    public_key: &impl rcgen::PublicKeyData,
    cert_out: &Path,
) -> Result<String> {
    let issuer = issuer(ca_dir)?;
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = params.not_before + time::Duration::days(825);
    // 16 random bytes, the top bit clear: a positive serial of fixed size.
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.signed_by(public_key, &issuer)?;
    write(cert_out, &cert.pem(), false)?;
    let serial = serial_text(&serial);
    append_line(
        &issued_path(ca_dir),
        &format!(
            "{serial}\t{district}\t{}",
            rfc3339(params.not_after).unwrap_or_default()
        ),
    )?;
    Ok(serial)
}

/// Issues a certificate for `district`, signed by the CA in `ca_dir`, usable
/// both as a server certificate (for `hosts`) and as a client certificate,
/// with a random serial noted in the CA's ledger, and its key made here.
/// Returns the serial.
pub fn issue_node_cert(
    ca_dir: &Path,
    district: &DistrictCode,
    hosts: &[String],
    cert_out: &Path,
    key_out: &Path,
) -> Result<String> {
    let key = KeyPair::generate()?;
    let serial = sign_node(
        ca_dir,
        district,
        node_params(district, hosts)?,
        &key,
        cert_out,
    )?;
    write(key_out, &key.serialize_pem(), true)?;
    Ok(serial)
}

/// A node's own key (written to `key_out`, 0600) and a certificate request
/// for it (`csr_out`), for `district` at `hosts`: what a joining district
/// sends the CA holder instead of receiving a key.
pub fn request_node_cert(
    district: &DistrictCode,
    hosts: &[String],
    key_out: &Path,
    csr_out: &Path,
) -> Result<()> {
    let key = KeyPair::generate()?;
    let csr = node_params(district, hosts)?.serialize_request(&key)?;
    write(key_out, &key.serialize_pem(), true)?;
    write(csr_out, &csr.pem()?, false)?;
    Ok(())
}

/// Issues a node certificate from a certificate request (`csr_pem`, its
/// signature checked): for the key in the request, for `district`, which
/// the request must name as its only district; its host names are kept,
/// everything else (usage, validity, serial) is the CA's own. Returns the
/// serial.
pub fn issue_from_request(
    ca_dir: &Path,
    district: &DistrictCode,
    csr_pem: &str,
    cert_out: &Path,
) -> Result<String> {
    let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| IdentityError::Request(e.to_string()))?;
    let mut hosts = Vec::new();
    let mut districts = Vec::new();
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::DnsName(n) => hosts.push(n.as_str().to_string()),
            SanType::IpAddress(ip) => hosts.push(ip.to_string()),
            SanType::URI(u) => districts.push(
                u.as_str()
                    .strip_prefix(super::DISTRICT_URI_PREFIX)
                    .unwrap_or(u.as_str())
                    .to_string(),
            ),
            _ => {}
        }
    }
    if districts != [district.to_string()] {
        return Err(IdentityError::Request(format!(
            "the request names district(s) [{}], not {district} alone",
            districts.join(", ")
        )));
    }
    let params = node_params(district, &hosts)?;
    sign_node(ca_dir, district, params, &csr.public_key, cert_out)
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{line}").map_err(io)?;
    f.sync_all().map_err(io)
}

/// The rows of a ledger file (tab-separated), none when it does not exist.
fn rows(path: &Path) -> Result<Vec<Vec<String>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(IdentityError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// Every certificate the CA issued to this district (its ledger).
    District(DistrictCode),
    /// One certificate by its serial (upper-case hex, as `migrex ca list` prints).
    Serial(String),
}

/// A certificate as the CA's ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issued {
    pub serial: String,
    pub district: String,
    pub expires: String,
    /// When it was revoked, if it was.
    pub revoked: Option<String>,
}

/// The certificates the CA in `ca_dir` issued, oldest first, with their revocations.
pub fn issued(ca_dir: &Path) -> Result<Vec<Issued>> {
    let revoked = rows(&revoked_path(ca_dir))?;
    Ok(rows(&issued_path(ca_dir))?
        .into_iter()
        .filter(|r| r.len() >= 3)
        .map(|r| Issued {
            revoked: revoked
                .iter()
                .find(|v| v.first() == r.first())
                .and_then(|v| v.get(1).cloned()),
            serial: r[0].clone(),
            district: r[1].clone(),
            expires: r[2].clone(),
        })
        .collect())
}

/// Revokes what `target` names (the ledger's certificates of a district, or
/// one serial) and writes a new revocation list signed by the CA. Returns
/// the serials newly revoked; none when they all were already.
pub fn revoke(ca_dir: &Path, target: &RevokeTarget, now: OffsetDateTime) -> Result<Vec<String>> {
    let already: Vec<String> = rows(&revoked_path(ca_dir))?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let wanted: Vec<(String, String)> = match target {
        RevokeTarget::Serial(s) => {
            let s = s.trim().replace(':', "").to_ascii_uppercase();
            if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(IdentityError::BadSerial(crate::domain::quoted(&s)));
            }
            let s = serial_text(&hex::decode(pad_even(&s)).unwrap_or_default());
            let district = issued(ca_dir)?
                .into_iter()
                .find(|i| i.serial == s)
                .map(|i| i.district)
                .unwrap_or_else(|| "-".into());
            vec![(s, district)]
        }
        RevokeTarget::District(d) => {
            let found: Vec<(String, String)> = issued(ca_dir)?
                .into_iter()
                .filter(|i| i.district == d.as_str())
                .map(|i| (i.serial, i.district))
                .collect();
            if found.is_empty() {
                return Err(IdentityError::NothingIssued(d.to_string()));
            }
            found
        }
    };
    let stamp = rfc3339(now).unwrap_or_default();
    let mut newly = Vec::new();
    for (serial, district) in wanted {
        if !already.contains(&serial) && !newly.contains(&serial) {
            append_line(
                &revoked_path(ca_dir),
                &format!("{serial}\t{stamp}\t{district}"),
            )?;
            newly.push(serial);
        }
    }
    write_crl(ca_dir, now)?;
    Ok(newly)
}

fn pad_even(s: &str) -> String {
    if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    }
}

/// Signs and writes the CA's revocation list (`crl.pem`) from its
/// `revoked.tsv`; an empty list when nothing was revoked.
pub fn write_crl(ca_dir: &Path, now: OffsetDateTime) -> Result<PathBuf> {
    let issuer = issuer(ca_dir)?;
    let mut revoked_certs = Vec::new();
    for r in rows(&revoked_path(ca_dir))? {
        let (Some(serial), Some(when)) = (r.first(), r.get(1)) else {
            continue;
        };
        let bytes = hex::decode(pad_even(serial))
            .map_err(|_| IdentityError::BadSerial(crate::domain::quoted(serial)))?;
        let at = OffsetDateTime::parse(when, &time::format_description::well_known::Rfc3339)
            .unwrap_or(now);
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: at,
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(CRL_VALIDITY_DAYS),
        // Seconds since the epoch: grows with every list the CA signs.
        crl_number: SerialNumber::from(now.unix_timestamp().max(1) as u64),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    let path = crl_path(ca_dir);
    write(&path, &crl.pem()?, false)?;
    Ok(path)
}

/// Signs `bytes` with the CA's key (ECDSA P-256, SHA-256, the signature
/// DER-encoded): how the network authority signs the directory.
pub fn sign(ca_dir: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let (_, key_path) = ca_paths(ca_dir);
    let key = KeyPair::from_pem(&read(&key_path)?)?;
    let rng = ring::rand::SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng)
            .map_err(|_| {
                IdentityError::Joining(format!(
                    "{}: the CA key is not an ECDSA P-256 key; only those sign a directory",
                    key_path.display()
                ))
            })?;
    pair.sign(&rng, bytes)
        .map(|s| s.as_ref().to_vec())
        .map_err(|_| IdentityError::Joining("the CA key could not sign".into()))
}
