//! `[limits]`: what every listener allows one client, peer or stranger.

use serde::{Deserialize, Serialize};

/// Limits of every listener, so that no client, peer or stranger can tie
/// up the node's memory, file descriptors or tasks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenLimits {
    /// A connection from which nothing arrived this long is closed
    /// (exchange, desk and console listeners).
    pub idle_timeout_secs: u64,
    /// Connections open at once, per listener; more wait to be accepted.
    pub max_connections: usize,
    /// Connections open at once from one source address, per listener
    /// (an office behind one NAT address counts as one); more are closed.
    pub max_connections_per_address: usize,
    /// Connections open at once under one peer's certificate on the
    /// exchange listener; more are closed after the handshake.
    pub exchange_connections_per_peer: usize,
    /// The console's request head (request line and headers) must arrive
    /// whole within this, counted from its first byte's wait, not reset by
    /// each byte that trickles in.
    pub request_head_secs: u64,
    /// Requests in flight at once on one desk connection (HTTP/2 streams).
    pub max_streams: u32,
    /// Batches in flight at once on one peer's connection (a peer's
    /// delivery worker sends one at a time); each may be as large as
    /// `exchange_message_bytes`.
    pub exchange_streams: u32,
    /// The largest desk request or answer, in bytes.
    pub desk_message_bytes: usize,
    /// The largest notice or reply a peer may send, in bytes; a peer's
    /// batch may be `delivery.max_batch` of them.
    pub exchange_item_bytes: usize,
    /// The ops listener: a request must arrive whole within this; its
    /// connections close after this much silence.
    pub ops_timeout_secs: u64,
    /// Connections open at once on the ops listener.
    pub ops_max_connections: usize,
    /// Connections open at once on the ops listener from one address.
    pub ops_max_connections_per_address: usize,
}

impl Default for ListenLimits {
    fn default() -> Self {
        ListenLimits {
            idle_timeout_secs: 120,
            max_connections: 256,
            max_connections_per_address: 64,
            exchange_connections_per_peer: 8,
            request_head_secs: 60,
            max_streams: 32,
            exchange_streams: 4,
            desk_message_bytes: 4 << 20,
            exchange_item_bytes: 16 << 10,
            ops_timeout_secs: 10,
            ops_max_connections: 32,
            ops_max_connections_per_address: 8,
        }
    }
}

impl ListenLimits {
    pub(super) fn is_default(&self) -> bool {
        *self == ListenLimits::default()
    }

    /// The limits of the desk and console listeners; the TLS handshake
    /// must finish within 10 s or the idle time if shorter.
    pub fn listener(&self) -> crate::identity::Limits {
        let idle = std::time::Duration::from_secs(self.idle_timeout_secs.max(1));
        crate::identity::Limits {
            max_connections: self.max_connections.max(1),
            per_address: self.max_connections_per_address.max(1),
            per_certificate: None,
            idle,
            handshake: idle.min(std::time::Duration::from_secs(10)),
        }
    }

    /// The exchange listener's limits: the desk's, and a cap per peer.
    pub fn exchange(&self) -> crate::identity::Limits {
        crate::identity::Limits {
            per_certificate: Some(self.exchange_connections_per_peer.max(1)),
            ..self.listener()
        }
    }

    /// The console's deadline for a whole request head.
    pub fn request_head(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_head_secs.max(1))
    }

    /// The ops listener's limits.
    pub fn ops(&self) -> crate::identity::Limits {
        crate::identity::Limits {
            max_connections: self.ops_max_connections.max(1),
            per_address: self.ops_max_connections_per_address.max(1),
            idle: std::time::Duration::from_secs(self.ops_timeout_secs.max(1)),
            ..Default::default()
        }
    }

    /// The largest message a peer may send: a full batch of the largest items.
    pub fn exchange_message_bytes(&self, max_batch: usize) -> usize {
        max_batch
            .max(1)
            .saturating_mul(self.exchange_item_bytes.max(1024))
            .saturating_add(64 << 10)
    }
}
