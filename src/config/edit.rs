//! Changing a node's `migrex.toml` in place (`migrex peer add`): the edit
//! goes through `toml_edit`, so the operator's comments, blank lines and
//! order stay as they were; the result is checked as a whole config before
//! it replaces the file, so a refused edit changes nothing.

use super::{Config, ConfigError, check_endpoint};
use crate::domain::RoutePrefix;
use std::path::Path;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

/// What `upsert_peer` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    Added,
    /// The prefix had a route; its endpoint was this.
    Replaced(String),
    Unchanged,
}

/// Adds the route `prefix` → `endpoint` to the config file at `path`, or
/// changes the endpoint of the prefix's route, keeping everything else of
/// the file as written.
pub fn upsert_peer(
    path: &Path,
    prefix: &RoutePrefix,
    endpoint: &str,
) -> Result<PeerChange, ConfigError> {
    check_endpoint("--endpoint", endpoint).map_err(|source| ConfigError::Field {
        path: path.display().to_string(),
        source,
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let (edited, change) =
        with_peer(&text, prefix.as_str(), endpoint).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })?;
    if change == PeerChange::Unchanged {
        return Ok(change);
    }
    // The edited text must still be a config this node starts with.
    let _: Config = toml::from_str(&edited).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    crate::files::replace(path, edited.as_bytes()).map_err(|source| ConfigError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(change)
}

/// The config text with the route set; the text's own bytes elsewhere.
fn with_peer(text: &str, prefix: &str, endpoint: &str) -> Result<(String, PeerChange), String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    // `peers = []` (as a config without routes is written) becomes tables.
    if doc
        .get("peers")
        .and_then(Item::as_array)
        .is_some_and(|a| a.is_empty())
    {
        doc.remove("peers");
    }
    let peers = doc
        .entry("peers")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or("peers: must be [[peers]] tables")?;
    let existing = peers
        .iter_mut()
        .find(|t| t.get("prefix").and_then(Item::as_str) == Some(prefix));
    let change = match existing {
        Some(t) => {
            let was = t
                .get("endpoint")
                .and_then(Item::as_str)
                .unwrap_or_default()
                .to_string();
            if was == endpoint {
                PeerChange::Unchanged
            } else {
                // Keep the comment after the old value, if any.
                let suffix = t
                    .get("endpoint")
                    .and_then(Item::as_value)
                    .and_then(|v| v.decor().suffix().cloned());
                let mut v = toml_edit::Value::from(endpoint);
                if let Some(s) = suffix {
                    v.decor_mut().set_suffix(s);
                }
                t["endpoint"] = Item::Value(v);
                PeerChange::Replaced(was)
            }
        }
        None => {
            let mut t = Table::new();
            t["prefix"] = value(prefix);
            t["endpoint"] = value(endpoint);
            peers.push(t);
            PeerChange::Added
        }
    };
    Ok((doc.to_string(), change))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENTED: &str = "# Luohu's node.\ndistrict = \"440303\"   # 罗湖区\n\n[tls]\nca_cert = \"ca.crt\" # the network CA\n\n# Routes.\n[[peers]]\nprefix = \"510116\"  # Shuangliu\nendpoint = \"https://a.example:7401\"  # its exchange\n";

    #[test]
    fn a_route_is_added_and_changed_with_every_comment_kept() {
        let (added, change) = with_peer(COMMENTED, "41", "https://relay.example:7401").unwrap();
        assert_eq!(change, PeerChange::Added);
        assert!(added.starts_with(COMMENTED), "{added}");
        assert!(
            added.ends_with(
                "[[peers]]\nprefix = \"41\"\nendpoint = \"https://relay.example:7401\"\n"
            ),
            "{added}"
        );

        let (moved, change) = with_peer(&added, "510116", "https://b.example:7401").unwrap();
        assert_eq!(
            change,
            PeerChange::Replaced("https://a.example:7401".into())
        );
        assert_eq!(
            moved,
            added.replace("https://a.example:7401\"", "https://b.example:7401\"")
        );
        assert_eq!(
            with_peer(&moved, "510116", "https://b.example:7401")
                .unwrap()
                .1,
            PeerChange::Unchanged
        );
        let (first, _) =
            with_peer("district = \"440303\"\npeers = []\n", "41", "https://r:1").unwrap();
        assert_eq!(
            first,
            "district = \"440303\"\n\n[[peers]]\nprefix = \"41\"\nendpoint = \"https://r:1\"\n"
        );
    }
}
