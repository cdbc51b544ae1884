//! Which peer a destination goes to: the routes added by hand
//! (`migrex peer add`, the config's `[[peers]]`) first, by longest prefix,
//! then the network directory (`crate::directory`), which may change while
//! the node runs.
//!
//! A hand-made route wins wherever it matches: the operator who added it
//! knows something the directory does not (a closed network that reaches
//! only the province's relay). A district the directory reaches through a
//! relay is routed to the relay's node (its queue is the relay's, in one
//! order). The relay itself uses the district's own endpoints. A node
//! the directory lists with a relay sends everything through it (a closed
//! network that reaches only its province's data centre).
//!
//! Who may hand this node an item written by a district (`may_speak_for`)
//! is decided here too: the district itself, its relay, or this node's
//! own relay, which brings it everything.
//!
//! A route's prefix is also its queue's name in the outbox: items wait
//! under it, one delivery worker sends them in order.

use crate::config::Route;
use crate::directory::{CodeChange, Directory};
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
    /// District code → the relay the directory lists for it.
    relay_of: HashMap<String, DistrictCode>,
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
        let relay_of: HashMap<String, DistrictCode> = directory
            .districts
            .iter()
            .filter_map(|e| Some((e.code.to_string(), e.relay.clone()?)))
            .collect();
        // A node behind a relay reaches every other through it.
        let own_relay = relay_of.get(own.as_str()).filter(|r| *r != own);
        let mut by_code = HashMap::with_capacity(entries.len());
        for e in &directory.districts {
            if &e.code == own {
                continue;
            }
            let route = match (own_relay, &e.relay) {
                (Some(mine), _) => direct(mine.as_str()),
                // Through the relay, unless this node is the relay.
                (None, Some(relay)) if relay != own => direct(relay.as_str()),
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
            relay_of,
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
        self.change_for(code, on).map(|c| c.successor)
    }

    /// The division-code change (区划变更) that replaced `code` (or the
    /// district it lies in) by `on`, if one did.
    pub fn change_for(&self, code: &str, on: time::Date) -> Option<CodeChange> {
        let directory = self.table().directory.clone()?;
        directory
            .changes
            .iter()
            .filter(|c| c.effective <= on && code.starts_with(c.old.as_str()))
            .max_by_key(|c| c.old.len())
            .cloned()
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

    /// The relay the directory lists for the district `code` lies in.
    pub fn relay_of(&self, code: &str) -> Option<DistrictCode> {
        let table = self.table();
        [12, 9, 6]
            .into_iter()
            .filter(|n| code.len() >= *n)
            .find_map(|n| table.relay_of.get(&code[..n]).cloned())
    }

    fn is_relay_of(&self, relay: &DistrictCode, code: &str) -> bool {
        self.relay_of(code).is_some_and(|r| &r == relay)
    }

    /// Whether a peer whose certificate proves `caller` may hand this node
    /// an item written by `author` (a notice's origin, a reply's author) on
    /// `on`: the author's own node (or its successor's), the relay the
    /// directory lists for the author, or this node's own relay, which
    /// brings it what every other district sends.
    pub fn may_speak_for(&self, caller: &DistrictCode, author: &str, on: time::Date) -> bool {
        self.answers_for(caller, author, on)
            || self.is_relay_of(caller, author)
            || self.is_relay_of(caller, self.own.as_str())
    }

    /// Whether this node forwards an item from `author` to `target` as the
    /// directory's relay of either (中转).
    pub fn relays(&self, author: &str, target: &str) -> bool {
        self.is_relay_of(&self.own, target) || self.is_relay_of(&self.own, author)
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
        let chengdu = DistrictCode::parse("d", "510100").unwrap();
        let relay = Routes::new(chengdu.clone(), vec![]);
        relay.apply(routes.directory().unwrap().as_ref().clone());
        assert_eq!(
            relay.route_for("510116", day).unwrap().endpoint,
            "https://inside.example:1"
        );
        // It forwards what goes to or comes from the districts it serves,
        // and nothing else.
        assert!(relay.relays("440303", "510116001"));
        assert!(relay.relays("510116", "440106"));
        assert!(!relay.relays("440303", "440106"));

        // The district behind the relay sends everything through it, and
        // takes from it what any district wrote.
        let inside = DistrictCode::parse("d", "510116").unwrap();
        let behind = Routes::new(inside.clone(), vec![]);
        behind.apply(routes.directory().unwrap().as_ref().clone());
        for code in ["440303", "440106", "510100"] {
            assert_eq!(
                behind.route_for(code, day).unwrap().endpoint,
                "https://cd.example:1"
            );
        }
        assert!(behind.may_speak_for(&chengdu, "440303", day));
        assert!(!behind.relays("440303", "440106"));
        // Elsewhere the relay speaks for its districts only.
        assert!(routes.may_speak_for(&chengdu, "510116", day));
        assert!(!routes.may_speak_for(&chengdu, "440106", day));
        assert!(!routes.may_speak_for(&inside, "510100", day));
    }
}
