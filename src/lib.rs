//! migrex: the node software of the migrant-population information exchange
//! network. See ARCHITECTURE.md for the map of modules.

pub mod audit;
pub mod auth;
pub mod calendar;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod context;
pub mod directory;
pub mod domain;
pub mod exchange;
pub mod export;
pub mod fetch;
pub mod files;
pub mod grpc;
pub mod identity;
pub mod import;
pub mod metrics;
pub mod node;
pub mod ops;
pub mod proof;
pub mod reconcile;
pub mod report;
pub mod routing;
pub mod service;
pub mod setup;
pub mod stats;
pub mod store;
pub mod web;

/// Generated protobuf and gRPC code. Handlers convert it into `domain`
/// types at the edge and never work on raw wire strings.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("migrex.v1");
    /// The encoded descriptors, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("migrex_descriptor");
}
