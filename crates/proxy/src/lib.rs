//! TiGateway's data plane.
//!
//! A request's path, file by file: [`server`] accepts (TCP/TLS, h1/h2) → [`service`] hardens the
//! request ([`normalize`], framing checks, limits), loads the current [`snapshot`], builds the
//! [`context`] and runs the [`plugins`] chain → a terminal plugin returns a plan that [`forward`]
//! executes against the upstream ([`pool`], load balancing and health from `tigateway-upstream`) →
//! response phases → client.

pub mod body;
pub mod context;
pub mod demo;
pub mod error;
pub mod forward;
pub mod forwarded;
pub mod h1;
pub use tigateway_matcher::normalize;
pub mod observe;
pub mod plugins;
pub mod pool;
pub mod server;
pub mod service;
pub mod snapshot;
mod sniff;
pub mod tls;
pub mod trace;

pub use server::{listener_specs, Gateway, ListenerSpec};
pub use snapshot::{build_snapshot, build_snapshot_observed, spawn_health_checks, Snapshot, SnapshotStore};
