//! TiGateway's configuration model.
//!
//! Everything a gateway does is decided by one [`Config`]; every feed (file, admin sync, Kubernetes)
//! produces one. Field names and enum numbers follow ShenYu's sync wire format so that a TiGateway
//! gateway can follow a ShenYu admin and the other way round. The crate is pure data: no I/O.

pub mod chain;
pub mod config;
pub mod diff;
pub mod handle;
pub mod hash;
pub mod route;
pub mod spring;
pub mod sync_wire;
pub mod types;
pub mod validate;
mod wire;

pub use config::*;
pub use diff::{diff, Change, ChangeKind};
pub use hash::{group_hashes, GroupHashes};
pub use route::*;
pub use types::*;
pub use validate::{ValidationError, ValidationErrors};
