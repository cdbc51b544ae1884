//! Routes added by hand (the config's `[[peers]]`): `Route`, what a
//! delivery worker sends to, and the longest-prefix rule.

use super::{Config, Peer, check_endpoint};
use crate::domain::{FieldError, RoutePrefix};

/// A parsed route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub prefix: RoutePrefix,
    pub endpoint: String,
    /// The SHA-256 of the certificate the peer must present (from the
    /// network directory; hand-made routes pin none).
    pub fingerprint: Option<String>,
    /// Further endpoints of the same node (its replicas, from the
    /// directory), tried in turn after `endpoint` fails.
    pub fallbacks: Vec<String>,
}

impl Route {
    /// How many endpoints the route has: its own and the fallbacks.
    pub fn endpoints(&self) -> usize {
        1 + self.fallbacks.len()
    }

    /// The route with its `turn`th endpoint (counting round) as the one to use.
    pub fn turned(&self, turn: usize) -> Route {
        let mut r = self.clone();
        if let Some(i) = (turn % self.endpoints()).checked_sub(1) {
            r.endpoint = self.fallbacks[i].clone();
        }
        r
    }
}

impl Config {
    pub fn routes(&self) -> Result<Vec<Route>, FieldError> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let prefix = RoutePrefix::parse(&format!("peers[{i}].prefix"), &p.prefix)?;
                check_endpoint(&format!("peers[{i}].endpoint"), &p.endpoint)?;
                Ok(Route {
                    prefix,
                    endpoint: p.endpoint.clone(),
                    fingerprint: None,
                    fallbacks: vec![],
                })
            })
            .collect()
    }

    /// Adds a route, or replaces the endpoint of an existing prefix.
    pub fn upsert_peer(&mut self, prefix: &RoutePrefix, endpoint: &str) {
        match self.peers.iter_mut().find(|p| p.prefix == prefix.as_str()) {
            Some(p) => p.endpoint = endpoint.to_string(),
            None => self.peers.push(Peer {
                prefix: prefix.to_string(),
                endpoint: endpoint.to_string(),
            }),
        }
    }
}

/// Picks the route whose prefix is the longest one matching `code`.
pub fn route_for<'a>(routes: &'a [Route], code: &str) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.prefix.matches(code))
        .max_by_key(|r| r.prefix.as_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, endpoint: &str) -> Route {
        Route {
            prefix: RoutePrefix::parse("p", prefix).unwrap(),
            endpoint: endpoint.into(),
            fingerprint: None,
            fallbacks: vec![],
        }
    }

    #[test]
    fn the_longest_prefix_wins() {
        let routes = vec![
            route("44", "https://gd"),
            route("4403", "https://sz"),
            route("440303", "https://lh"),
        ];
        assert_eq!(
            route_for(&routes, "440303001").unwrap().endpoint,
            "https://lh"
        );
        assert_eq!(route_for(&routes, "440304").unwrap().endpoint, "https://sz");
        assert_eq!(route_for(&routes, "441900").unwrap().endpoint, "https://gd");
        assert!(route_for(&routes, "510116").is_none());
    }
}
