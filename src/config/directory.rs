//! The `[directory]` table: where a node reads the network directory
//! (files or URLs, tried in turn), how often, and where it keeps the last
//! good one; checked once into `DirectorySettings`.

use super::{Config, resolve};
use crate::domain::FieldError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the network directory is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFiles {
    /// Files (relative to this config) or `http://`/`https://` URLs of the
    /// signed directory, tried in turn.
    pub sources: Vec<String>,
    /// How often a running node reads it again (seconds).
    #[serde(default = "default_directory_refresh")]
    pub refresh_secs: u64,
    /// The last good directory, kept across restarts.
    #[serde(default = "default_directory_held")]
    pub held: String,
}

impl DirectoryFiles {
    /// Reading `sources` with the default schedule and file.
    pub fn new(sources: Vec<String>) -> Self {
        DirectoryFiles {
            sources,
            refresh_secs: default_directory_refresh(),
            held: default_directory_held(),
        }
    }
}

fn default_directory_refresh() -> u64 {
    300
}

fn default_directory_held() -> String {
    "directory.held".into()
}

/// Where a node reads the directory, and how often (checked).
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    pub sources: Vec<crate::fetch::Source>,
    pub refresh: Duration,
    /// The last good document, as it was signed.
    pub held: PathBuf,
}

impl Config {
    /// The directory's sources, checked: files made absolute, URLs
    /// `http://` or `https://`.
    pub fn directory_settings(&self, base: &Path) -> Result<Option<DirectorySettings>, FieldError> {
        let Some(d) = &self.directory else {
            return Ok(None);
        };
        if d.sources.is_empty() {
            return Err(FieldError::new(
                "directory.sources",
                "is empty (name a file or an http(s):// URL of the signed directory)",
            ));
        }
        let sources = d
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| directory_source(&format!("directory.sources[{i}]"), s, base))
            .collect::<Result<Vec<_>, _>>()?;
        if d.refresh_secs == 0 {
            return Err(FieldError::new(
                "directory.refresh_secs",
                "must be at least 1",
            ));
        }
        Ok(Some(DirectorySettings {
            sources,
            refresh: Duration::from_secs(d.refresh_secs),
            held: resolve(base, &d.held),
        }))
    }
}

/// One source of the network directory: an `http://` or `https://` URL, or
/// a file (made absolute against `base`).
pub fn directory_source(
    field: &str,
    s: &str,
    base: &Path,
) -> Result<crate::fetch::Source, FieldError> {
    use crate::fetch::Source;
    let s = s.trim();
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(Source::Url(s.to_string()))
    } else if s.contains("://") || s.is_empty() {
        Err(FieldError::new(
            field,
            "must be a file path, an http:// or an https:// URL",
        ))
    } else {
        Ok(Source::File(resolve(base, s)))
    }
}
