//! The network authority's plain file the directory is built from
//! (`migrex directory build --in network.toml`):
//!
//! ```toml
//! serial = 7            # optional; the build time in seconds when left out
//! valid_days = 30       # optional; how long nodes take the document
//!
//! [[district]]
//! code = "440303"
//! endpoints = ["https://node.luohu.example:7401"]
//! certificate = "certs/440303.crt"   # optional: pins its fingerprint
//!
//! [[district]]
//! code = "440304"
//! relay = "440300"      # reached through the node of 440300
//!
//! [[change]]
//! old = "440399"
//! successor = "440303"
//! effective = "2027-01-01"
//! ```

use super::{Directory, DirectoryError, MAX_BYTES, WireChange, WireDirectory, WireEntry};
use crate::domain::FieldError;
use serde::Deserialize;
use std::path::Path;
use time::OffsetDateTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Network {
    serial: Option<u64>,
    #[serde(default = "thirty")]
    valid_days: u32,
    #[serde(default)]
    district: Vec<District>,
    #[serde(default)]
    change: Vec<WireChange>,
}

fn thirty() -> u32 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct District {
    code: String,
    #[serde(default)]
    endpoints: Vec<String>,
    /// A PEM certificate file (relative to network.toml) whose fingerprint
    /// is pinned.
    certificate: Option<String>,
    fingerprint: Option<String>,
    relay: Option<String>,
}

/// Reads `path` and makes the directory it describes, issued at `now`.
/// Without a `serial` in the file, the serial is the time in seconds, or
/// one more than `previous` (the serial of the directory this one
/// replaces) when that is not less: every build is newer than the last.
/// Errors name the file and the field.
pub fn build(
    path: &Path,
    now: OffsetDateTime,
    previous: Option<u64>,
) -> Result<Directory, DirectoryError> {
    let shown = path.display().to_string();
    let text = crate::files::read_bounded(path, MAX_BYTES as u64)
        .map_err(|e| FieldError::new(&shown, e.to_string()))?;
    let network: Network =
        toml::from_str(&text).map_err(|e| FieldError::new(&shown, e.to_string()))?;
    if !(1..=366).contains(&network.valid_days) {
        return Err(FieldError::new("valid_days", "must be 1 to 366").into());
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut districts = Vec::with_capacity(network.district.len());
    for (i, d) in network.district.into_iter().enumerate() {
        let fingerprint = match (&d.certificate, &d.fingerprint) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    format!("district[{i}].certificate"),
                    "give a certificate or a fingerprint, not both",
                )
                .into());
            }
            (Some(file), None) => Some(certificate_fingerprint(
                &format!("district[{i}].certificate"),
                &base.join(file),
            )?),
            (None, f) => f.clone(),
        };
        districts.push(WireEntry {
            code: d.code,
            endpoints: d.endpoints,
            fingerprint,
            relay: d.relay,
        });
    }
    let now = now.replace_nanosecond(0).expect("valid");
    let wire = WireDirectory {
        serial: network.serial.unwrap_or_else(|| {
            let clock = now.unix_timestamp().max(0) as u64;
            previous.map_or(clock, |p| clock.max(p + 1))
        }),
        issued_at: now.format(super::RFC3339).expect("formats"),
        expires_at: (now + time::Duration::days(network.valid_days.into()))
            .format(super::RFC3339)
            .expect("formats"),
        districts,
        changes: network.change,
    };
    // The same checks a node makes, with the file's own field names.
    Directory::from_wire(wire).map_err(|e| {
        FieldError::new(
            e.field
                .replacen("districts[", "district[", 1)
                .replacen("changes[", "change[", 1),
            e.rule,
        )
        .into()
    })
}

/// The serial of the signed directory at `out`, if there is one signed by
/// the CA of `ca_dir`: the one a new build must exceed.
pub fn previous_serial(out: &Path, ca_dir: &Path) -> Option<u64> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bytes = std::fs::read(out).ok()?;
    let ca = std::fs::read(crate::identity::ca_paths(ca_dir).0).ok()?;
    let ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&ca)
        .filter_map(|c| c.ok().map(|c| c.to_vec()))
        .collect();
    Directory::verify(&bytes, &ders).ok().map(|d| d.serial)
}

fn certificate_fingerprint(field: &str, path: &Path) -> Result<String, FieldError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let pem = crate::files::read_bounded(path, 1 << 20)
        .map_err(|e| FieldError::new(field, format!("{}: {e}", path.display())))?;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        FieldError::new(
            field,
            format!("{}: no PEM certificate in it", path.display()),
        )
    })?;
    Ok(crate::identity::fingerprint(&der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_file_names_its_fields_and_defaults_the_serial_to_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("network.toml");
        std::fs::write(
            &p,
            "[[district]]\ncode = \"440303\"\nendpoints = [\"https://a.example:7401\"]\n\n[[district]]\ncode = \"440304\"\nrelay = \"440303\"\n",
        )
        .unwrap();
        let now = time::macros::datetime!(2026-12-06 10:00:00.5 UTC);
        let d = build(&p, now, None).unwrap();
        assert_eq!(d.serial, 1_796_551_200);
        assert_eq!(
            build(&p, now, Some(1_796_551_200)).unwrap().serial,
            1_796_551_201
        );
        assert_eq!(build(&p, now, Some(5)).unwrap().serial, 1_796_551_200);
        assert_eq!(d.expires_at - d.issued_at, time::Duration::days(30));
        assert_eq!(d.served_by(&d.districts[0].code).len(), 1);

        std::fs::write(&p, "[[district]]\ncode = \"440304\"\nrelay = \"440303\"\n").unwrap();
        match build(&p, now, None) {
            Err(DirectoryError::Field(e)) => assert_eq!(e.field, "district[0].relay"),
            other => panic!("{other:?}"),
        }
    }
}
