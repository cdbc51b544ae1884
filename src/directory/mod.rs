//! The network directory (通讯录): one signed document that says, per
//! district code, where its node listens (endpoints, tried in turn), which
//! certificate it holds (a SHA-256 fingerprint), which relay accepts on its
//! behalf when none of its endpoints is reachable from outside, and which
//! division codes changed (old code → successor, from a date).
//!
//! The network authority writes it from a plain file (`source`: the
//! `network.toml` of `migrex directory build`) and signs it with the network
//! CA's key; nodes fetch it (`watch`), check the signature against the CA
//! they already trust, refuse an expired one or one older than what they
//! hold, and route by it (the `routing` module) without a restart.
//!
//! The signed file is JSON: `{"format", "payload", "signature"}`, where
//! `payload` is the document's own JSON text (signed as those exact UTF-8
//! bytes, so no canonical form is needed) and `signature` the hex of an
//! ECDSA P-256/SHA-256 signature (DER) by the CA key.

pub mod source;
pub mod watch;

use crate::domain::{DistrictCode, FieldError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use time::{Date, OffsetDateTime};

/// What the envelope's `format` says.
pub const FORMAT: &str = "migrex-directory/1";
/// The largest signed directory a node reads (2,900 districts take about
/// 0.5 MiB).
pub const MAX_BYTES: usize = 16 << 20;
/// The most districts one directory lists, and endpoints one district has.
const MAX_DISTRICTS: usize = 20_000;
const MAX_ENDPOINTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Field(#[from] FieldError),
    #[error("is not a signed migrex directory: {0}")]
    Envelope(String),
    #[error("its signature is not the network CA's")]
    Signature,
    #[error("expired at {0}")]
    Expired(String),
    #[error("serial {got} is older than serial {held}, which this node holds")]
    Older { got: u64, held: u64 },
    #[error(
        "serial {0} is the one this node holds, with other contents; a changed directory needs a higher serial"
    )]
    SameSerial(u64),
    #[error("{0}")]
    Identity(#[from] crate::identity::IdentityError),
}

/// One district's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub code: DistrictCode,
    /// Its node's exchange endpoints (`https://HOST:PORT`), tried in turn;
    /// empty when it is reached only through its relay.
    pub endpoints: Vec<String>,
    /// The SHA-256 of its node certificate (lower-case hex), when pinned.
    pub fingerprint: Option<String>,
    /// The district whose node accepts on its behalf.
    pub relay: Option<DistrictCode>,
}

/// A division code replaced by another from a date (a county merged into
/// a city district, a renumbering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    pub old: String,
    pub successor: DistrictCode,
    pub effective: Date,
}

/// A verified directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub serial: u64,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub districts: Vec<Entry>,
    pub changes: Vec<CodeChange>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    payload: String,
    signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDirectory {
    serial: u64,
    issued_at: String,
    expires_at: String,
    #[serde(default)]
    districts: Vec<WireEntry>,
    #[serde(default)]
    changes: Vec<WireChange>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry {
    code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    relay: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChange {
    old: String,
    successor: String,
    effective: String,
}

const RFC3339: &time::format_description::well_known::Rfc3339 =
    &time::format_description::well_known::Rfc3339;
const DAY: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// A certificate fingerprint as the directory keeps it: 64 lower-case hex
/// digits (colons and upper case, as `openssl x509 -fingerprint` prints
/// them, are taken).
pub fn parse_fingerprint(field: &str, s: &str) -> Result<String, FieldError> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FieldError::new(
            field,
            "is not a SHA-256 fingerprint (64 hex digits)",
        ));
    }
    Ok(hex)
}

/// A division code that may no longer be in the shipped table (an old
/// code): 6, 9 or 12 digits.
fn parse_old_code(field: &str, s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    if !matches!(s.len(), 6 | 9 | 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            format!(
                "{} is not a division code (6, 9 or 12 digits)",
                crate::domain::quoted(s)
            ),
        ));
    }
    Ok(s.to_string())
}

impl Directory {
    /// Checks every field of a document; errors name the field
    /// (`districts[3].relay`).
    fn from_wire(w: WireDirectory) -> Result<Self, FieldError> {
        let instant = |field: &str, s: &str| {
            OffsetDateTime::parse(s, RFC3339)
                .map_err(|_| FieldError::new(field, "is not an RFC 3339 instant"))
        };
        let issued_at = instant("issued_at", &w.issued_at)?;
        let expires_at = instant("expires_at", &w.expires_at)?;
        if expires_at <= issued_at {
            return Err(FieldError::new("expires_at", "is not after issued_at"));
        }
        if w.districts.len() > MAX_DISTRICTS {
            return Err(FieldError::new(
                "districts",
                format!("lists more than {MAX_DISTRICTS} districts"),
            ));
        }
        let mut districts = Vec::with_capacity(w.districts.len());
        let mut seen = HashSet::new();
        for (i, e) in w.districts.into_iter().enumerate() {
            let f = |name: &str| format!("districts[{i}].{name}");
            let code = DistrictCode::parse(&f("code"), &e.code)?;
            if !seen.insert(code.clone()) {
                return Err(FieldError::new(
                    f("code"),
                    format!("{code} is listed twice"),
                ));
            }
            if e.endpoints.len() > MAX_ENDPOINTS {
                return Err(FieldError::new(
                    f("endpoints"),
                    format!("has more than {MAX_ENDPOINTS} endpoints"),
                ));
            }
            for (j, ep) in e.endpoints.iter().enumerate() {
                crate::config::check_endpoint(&format!("districts[{i}].endpoints[{j}]"), ep)?;
            }
            let relay = e
                .relay
                .as_deref()
                .map(|r| DistrictCode::parse(&f("relay"), r))
                .transpose()?;
            if e.endpoints.is_empty() && relay.is_none() {
                return Err(FieldError::new(
                    f("endpoints"),
                    "is empty and no relay is named: nothing would reach this district",
                ));
            }
            if relay.as_ref() == Some(&code) {
                return Err(FieldError::new(f("relay"), "names the district itself"));
            }
            let fingerprint = e
                .fingerprint
                .as_deref()
                .map(|p| parse_fingerprint(&f("fingerprint"), p))
                .transpose()?;
            districts.push(Entry {
                code,
                endpoints: e.endpoints,
                fingerprint,
                relay,
            });
        }
        // A relay must be reachable itself: listed, with endpoints of its own.
        let reachable: HashSet<&DistrictCode> = districts
            .iter()
            .filter(|e| !e.endpoints.is_empty())
            .map(|e| &e.code)
            .collect();
        // And reached directly: one relay per district on each side, so
        // that an item takes at most two relays.
        let behind: HashSet<&DistrictCode> = districts
            .iter()
            .filter(|e| e.relay.is_some())
            .map(|e| &e.code)
            .collect();
        for (i, e) in districts.iter().enumerate() {
            if let Some(r) = &e.relay
                && !reachable.contains(r)
            {
                return Err(FieldError::new(
                    format!("districts[{i}].relay"),
                    format!("{r} is not listed with endpoints of its own"),
                ));
            }
            if let Some(r) = &e.relay
                && behind.contains(r)
            {
                return Err(FieldError::new(
                    format!("districts[{i}].relay"),
                    format!("{r} is itself behind a relay; a relay is reached directly"),
                ));
            }
        }
        let mut changes = Vec::with_capacity(w.changes.len());
        for (i, c) in w.changes.into_iter().enumerate() {
            let f = |name: &str| format!("changes[{i}].{name}");
            let old = parse_old_code(&f("old"), &c.old)?;
            let successor = DistrictCode::parse(&f("successor"), &c.successor)?;
            if old == successor.as_str() {
                return Err(FieldError::new(f("successor"), "is the old code itself"));
            }
            let effective = Date::parse(c.effective.trim(), DAY)
                .map_err(|_| FieldError::new(f("effective"), "is not a date (YYYY-MM-DD)"))?;
            changes.push(CodeChange {
                old,
                successor,
                effective,
            });
        }
        Ok(Directory {
            serial: w.serial,
            issued_at,
            expires_at,
            districts,
            changes,
        })
    }

    fn to_wire(&self) -> WireDirectory {
        let instant = |t: OffsetDateTime| t.format(RFC3339).expect("formats");
        WireDirectory {
            serial: self.serial,
            issued_at: instant(self.issued_at),
            expires_at: instant(self.expires_at),
            districts: self
                .districts
                .iter()
                .map(|e| WireEntry {
                    code: e.code.to_string(),
                    endpoints: e.endpoints.clone(),
                    fingerprint: e.fingerprint.clone(),
                    relay: e.relay.as_ref().map(ToString::to_string),
                })
                .collect(),
            changes: self
                .changes
                .iter()
                .map(|c| WireChange {
                    old: c.old.clone(),
                    successor: c.successor.to_string(),
                    effective: c.effective.format(DAY).expect("formats"),
                })
                .collect(),
        }
    }

    /// The signed file: the document's JSON signed with the key of the CA
    /// in `ca_dir`.
    pub fn sign(&self, ca_dir: &std::path::Path) -> Result<Vec<u8>, DirectoryError> {
        let payload = serde_json::to_string(&self.to_wire()).expect("serialises");
        let signature = crate::identity::ca_sign(ca_dir, payload.as_bytes())?;
        let envelope = Envelope {
            format: FORMAT.into(),
            payload,
            signature: hex::encode(signature),
        };
        let mut out = serde_json::to_vec_pretty(&envelope).expect("serialises");
        out.push(b'\n');
        Ok(out)
    }

    /// Reads a signed file and checks its signature against the network
    /// CA's certificates (`ca_ders`) and every field; not its expiry or
    /// serial (`accept` does).
    pub fn verify(bytes: &[u8], ca_ders: &[Vec<u8>]) -> Result<Self, DirectoryError> {
        if bytes.len() > MAX_BYTES {
            return Err(DirectoryError::Envelope(format!(
                "larger than {} MiB",
                MAX_BYTES >> 20
            )));
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| DirectoryError::Envelope(e.to_string()))?;
        if envelope.format != FORMAT {
            return Err(DirectoryError::Envelope(format!(
                "format is {:?}, expected {FORMAT:?}",
                envelope.format
            )));
        }
        let signature = hex::decode(envelope.signature.trim())
            .map_err(|_| DirectoryError::Envelope("signature is not hex".into()))?;
        if !ca_ders
            .iter()
            .any(|ca| crate::identity::signed_by(ca, envelope.payload.as_bytes(), &signature))
        {
            return Err(DirectoryError::Signature);
        }
        let wire: WireDirectory = serde_json::from_str(&envelope.payload)
            .map_err(|e| DirectoryError::Envelope(format!("payload: {e}")))?;
        Ok(Directory::from_wire(wire)?)
    }

    /// Whether a node holding serial `held` (if any) takes this document at
    /// `now`: not expired, not older.
    pub fn accept(&self, held: Option<u64>, now: OffsetDateTime) -> Result<(), DirectoryError> {
        if self.expires_at <= now {
            return Err(DirectoryError::Expired(
                self.expires_at.format(RFC3339).unwrap_or_default(),
            ));
        }
        match held {
            Some(held) if self.serial < held => Err(DirectoryError::Older {
                got: self.serial,
                held,
            }),
            _ => Ok(()),
        }
    }

    /// The entries by district code.
    pub fn by_code(&self) -> HashMap<&str, &Entry> {
        self.districts
            .iter()
            .map(|e| (e.code.as_str(), e))
            .collect()
    }

    /// The districts that `relay` accepts for.
    pub fn served_by(&self, relay: &DistrictCode) -> Vec<&DistrictCode> {
        self.districts
            .iter()
            .filter(|e| e.relay.as_ref() == Some(relay))
            .map(|e| &e.code)
            .collect()
    }

    /// The document as JSON (the payload's form), for `directory show --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_wire()).expect("serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(districts: serde_json::Value) -> WireDirectory {
        serde_json::from_value(serde_json::json!({
            "serial": 3,
            "issued_at": "2026-12-01T00:00:00Z",
            "expires_at": "2027-01-01T00:00:00Z",
            "districts": districts,
            "changes": [{"old": "440399", "successor": "440303", "effective": "2027-01-01"}],
        }))
        .unwrap()
    }

    #[test]
    fn a_document_is_checked_field_by_field() {
        let ok = Directory::from_wire(wire(serde_json::json!([
            {"code": "440300", "endpoints": ["https://sz.example:7401"]},
            {"code": "440303", "relay": "440300",
             "fingerprint": "AB:".repeat(31) + "AB"},
        ])))
        .unwrap();
        assert_eq!(ok.districts[1].relay.as_ref().unwrap().as_str(), "440300");
        assert_eq!(
            ok.districts[1].fingerprint.as_deref(),
            Some(&*"ab".repeat(32))
        );
        assert_eq!(ok.changes[0].successor.as_str(), "440303");

        let refused = |d: serde_json::Value| Directory::from_wire(wire(d)).unwrap_err();
        let e = refused(serde_json::json!([{"code": "440303"}]));
        assert_eq!(e.field, "districts[0].endpoints");
        let e = refused(serde_json::json!([
            {"code": "440303", "endpoints": ["https://a.example:1"]},
            {"code": "440303", "endpoints": ["https://b.example:1"]},
        ]));
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("districts[1].code", "440303 is listed twice")
        );
        let e = refused(serde_json::json!([{"code": "440303", "relay": "440300"}]));
        assert_eq!(e.field, "districts[0].relay");
        let e = refused(serde_json::json!([
            {"code": "440303", "endpoints": ["https://a:1"], "relay": "440300"},
            {"code": "440300", "endpoints": ["https://b:1"], "relay": "440000"},
            {"code": "440000", "endpoints": ["https://c:1"]},
        ]));
        assert_eq!(e.field, "districts[0].relay");
        assert!(e.rule.contains("itself behind a relay"), "{}", e.rule);
        let e =
            refused(serde_json::json!([{"code": "440303", "endpoints": ["http://a.example:1"]}]));
        assert_eq!(e.field, "districts[0].endpoints[0]");
        let e = refused(
            serde_json::json!([{"code": "440303", "endpoints": ["https://a:1"], "fingerprint": "xyz"}]),
        );
        assert_eq!(e.field, "districts[0].fingerprint");
    }

    #[test]
    fn an_expired_or_older_document_is_not_taken() {
        let d = Directory::from_wire(wire(serde_json::json!([]))).unwrap();
        let before = time::macros::datetime!(2026-12-10 0:00 UTC);
        assert!(d.accept(None, before).is_ok());
        assert!(d.accept(Some(3), before).is_ok());
        assert!(matches!(
            d.accept(Some(4), before),
            Err(DirectoryError::Older { got: 3, held: 4 })
        ));
        assert!(matches!(
            d.accept(None, time::macros::datetime!(2027-01-01 0:00 UTC)),
            Err(DirectoryError::Expired(_))
        ));
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A document's JSON through the checks a fetched one passes, unsigned.
    pub fn parse_unsigned(text: &str) -> super::Directory {
        super::Directory::from_wire(serde_json::from_str(text).unwrap()).unwrap()
    }
}
