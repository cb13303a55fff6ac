//! Upstream sets for TiGateway's data plane: load balancing and passive and active health.
//!
//! Every config change rebuilds every [`UpstreamSet`] with the new snapshot; the per-address
//! [`Peer`] state (in-flight count, latency, failures, ejection, active-check verdict) lives in a
//! process-wide [`Registry`] and is shared by the old and new sets, so it survives the swap.

mod clock;
mod health;
mod peer;
mod registry;
mod set;
mod spec;

pub use clock::{mono_ms, unix_ms, Now};
pub use health::{check_once, spawn_health_checks};
pub use peer::{InFlight, Outcome, Peer};
pub use registry::Registry;
pub use set::{Balancer, UpstreamSet, HASH_POINTS_PER_MEMBER, P2C_STALE_MS};
pub use spec::{scheme_str, UpstreamSpec, DEFAULT_WARMUP_MS, DEFAULT_WEIGHT};
