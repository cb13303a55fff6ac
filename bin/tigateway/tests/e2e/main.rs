//! End-to-end tests: real upstream servers, the real data plane, real HTTP/websocket clients, all on
//! loopback. One test binary (module per concern) to keep link time down.

mod common;
mod hardening;
mod observe;
mod plugins;
mod process;
mod protocols;
mod routes;
mod sync;
mod upstreams;
