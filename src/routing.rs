//! Which peer a destination goes to: the routes added by hand
//! (`migrex peer add`, the config's `[[peers]]`) first, by longest prefix,
//! then the network directory (`crate::directory`), which may change while
//! the node runs.
//!
//! A hand-made route wins wherever it matches: the operator who added it
//! knows something the directory does not (a closed network that reaches
//! only the province's relay). A district the directory reaches through a
//! relay is routed to the relay's node (its queue is the relay's, in one
//! order). The relay itself uses the district's own endpoints.
//!
//! A route's prefix is also its queue's name in the outbox: items wait
//! under it, one delivery worker sends them in order.

use crate::config::Route;
use crate::directory::Directory;
use crate::domain::{DistrictCode, RoutePrefix};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The routes of a running node.
pub struct Routes {
    own: DistrictCode,
    hand: Vec<Route>,
    table: RwLock<Arc<Table>>,
    /// Moves each time a directory is applied.
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Table {
    directory: Option<Arc<Directory>>,
    /// Destination district code → its route.
    by_code: HashMap<String, Route>,
    /// Queue name → route, for every route of the directory.
    by_prefix: HashMap<String, Route>,
}

impl Table {
    fn of(own: &DistrictCode, directory: Arc<Directory>) -> Table {
        let entries = directory.by_code();
        let direct = |code: &str| -> Option<Route> {
            let e = entries.get(code)?;
            Some(Route {
                prefix: RoutePrefix::parse("code", e.code.as_str()).ok()?,
                endpoint: e.endpoints.first()?.clone(),
                fingerprint: e.fingerprint.clone(),
                fallbacks: e.endpoints[1..].to_vec(),
            })
        };
        let mut by_code = HashMap::with_capacity(entries.len());
        for e in &directory.districts {
            if &e.code == own {
                continue;
            }
            let route = match &e.relay {
                // Through the relay, unless this node is the relay.
                Some(relay) if relay != own => direct(relay.as_str()),
                _ => direct(e.code.as_str()),
            };
            if let Some(r) = route {
                by_code.insert(e.code.to_string(), r);
            }
        }
        let by_prefix = by_code
            .values()
            .map(|r| (r.prefix.to_string(), r.clone()))
            .collect();
        Table {
            directory: Some(directory),
            by_code,
            by_prefix,
        }
    }
}

impl Routes {
    pub fn new(own: DistrictCode, hand: Vec<Route>) -> Self {
        Routes {
            own,
            hand,
            table: RwLock::new(Arc::new(Table::default())),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The route for a destination code on the day `on`: the longest
    /// matching hand-made route, else the directory's entry for the code or
    /// the district it lies in (a street's county), else, for a code the
    /// directory replaced by `on`, its successor's.
    pub fn route_for(&self, code: &str, on: time::Date) -> Option<Route> {
        if let Some(r) = crate::config::route_for(&self.hand, code) {
            return Some(r.clone());
        }
        let table = self.table();
        let listed = |code: &str| {
            [12, 9, 6]
                .into_iter()
                .filter(|n| code.len() >= *n)
                .find_map(|n| table.by_code.get(&code[..n]).cloned())
        };
        listed(code).or_else(|| {
            // A code the directory no longer lists, replaced by another:
            // its successor's node answers for it (replies to notices
            // addressed before the change).
            listed(self.successor(code, on)?.as_str())
        })
    }

    /// The district that replaced `code` (or the district it lies in) by
    /// `on`, by the directory's division-code changes (区划变更): a street of
    /// a merged county goes to the successor itself, whose node knows its
    /// streets' new codes.
    pub fn successor(&self, code: &str, on: time::Date) -> Option<DistrictCode> {
        let directory = self.table().directory.clone()?;
        directory
            .changes
            .iter()
            .filter(|c| c.effective <= on && code.starts_with(c.old.as_str()))
            .max_by_key(|c| c.old.len())
            .map(|c| c.successor.clone())
    }

    /// Whether `district`'s node answers for `code` on `on`: the code is
    /// the district's or lies in it, or the directory says it was replaced
    /// by then by one that does (a notice addressed to a merged county
    /// before the change is answered by its successor).
    pub fn answers_for(&self, district: &DistrictCode, code: &str, on: time::Date) -> bool {
        code.starts_with(district.as_str())
            || self
                .successor(code, on)
                .is_some_and(|s| s.as_str().starts_with(district.as_str()))
    }

    /// The route now behind a queue name, if any still is.
    pub fn by_prefix(&self, prefix: &str) -> Option<Route> {
        self.hand
            .iter()
            .find(|r| r.prefix.as_str() == prefix)
            .cloned()
            .or_else(|| self.table().by_prefix.get(prefix).cloned())
    }

    /// The routes added by hand.
    pub fn hand(&self) -> &[Route] {
        &self.hand
    }

    /// Every route: by hand, then the directory's (one per queue), sorted.
    pub fn all(&self) -> Vec<Route> {
        let mut out = self.hand.clone();
        let mut dir: Vec<Route> = self
            .table()
            .by_prefix
            .values()
            .filter(|r| !self.hand.iter().any(|h| h.prefix == r.prefix))
            .cloned()
            .collect();
        dir.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        out.extend(dir);
        out
    }

    /// The directory in use.
    pub fn directory(&self) -> Option<Arc<Directory>> {
        self.table().directory.clone()
    }

    /// Routes by `directory` from now on.
    pub fn apply(&self, directory: Directory) {
        let table = Arc::new(Table::of(&self.own, Arc::new(directory)));
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
        self.changed.send_modify(|g| *g += 1);
    }

    /// Changes each time a directory is applied.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// How many times a directory was applied.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(json: serde_json::Value) -> Directory {
        let wire = serde_json::json!({
            "serial": 1, "issued_at": "2026-12-01T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z",
            "districts": json,
            "changes": [
                {"old": "510117", "successor": "510116", "effective": "2026-12-01"},
                {"old": "510118", "successor": "510116", "effective": "2027-01-01"},
            ],
        });
        // Through the same checks as a fetched one.
        let text = serde_json::to_string(&wire).unwrap();
        crate::directory::tests_support::parse_unsigned(&text)
    }

    #[test]
    fn hand_routes_win_then_the_directory_with_relays() {
        let own = DistrictCode::parse("d", "440303").unwrap();
        let hand = vec![Route {
            prefix: RoutePrefix::parse("p", "4401").unwrap(),
            endpoint: "https://gz.example:1".into(),
            fingerprint: None,
            fallbacks: vec![],
        }];
        let routes = Routes::new(own, hand);
        let day = time::macros::date!(2026 - 12 - 06);
        assert!(routes.route_for("510116", day).is_none());
        routes.apply(directory(serde_json::json!([
            {"code": "440303", "endpoints": ["https://me.example:1"]},
            {"code": "440106", "endpoints": ["https://tianhe.example:1"]},
            {"code": "510100", "endpoints": ["https://cd.example:1", "https://cd2.example:1"]},
            {"code": "510116", "endpoints": ["https://inside.example:1"], "relay": "510100"},
        ])));
        assert_eq!(
            routes.route_for("440106", day).unwrap().endpoint,
            "https://gz.example:1"
        );
        let r = routes.route_for("510116001", day).unwrap();
        assert_eq!(
            (r.prefix.as_str(), r.endpoint.as_str()),
            ("510100", "https://cd.example:1")
        );
        assert!(routes.route_for("440303", day).is_none());
        assert_eq!(
            routes.by_prefix("510100").unwrap().endpoint,
            "https://cd.example:1"
        );
        assert_eq!(routes.generation(), 1);

        // Division-code changes: a notice goes to the successor from the
        // change's date; a code the directory no longer lists is routed to
        // its successor's node (replies to notices addressed before).
        assert_eq!(routes.successor("510117", day).unwrap().as_str(), "510116");
        assert_eq!(
            routes.successor("510117003", day).unwrap().as_str(),
            "510116"
        );
        assert!(
            routes.successor("510118", day).is_none(),
            "not before its date"
        );
        assert!(
            routes
                .successor("510118", time::macros::date!(2027 - 01 - 01))
                .is_some()
        );
        assert_eq!(
            routes.route_for("510117", day).unwrap().prefix.as_str(),
            "510100"
        );

        // The relay itself uses the district's own endpoint.
        let relay = Routes::new(DistrictCode::parse("d", "510100").unwrap(), vec![]);
        relay.apply(routes.directory().unwrap().as_ref().clone());
        assert_eq!(
            relay.route_for("510116", day).unwrap().endpoint,
            "https://inside.example:1"
        );
    }
}
