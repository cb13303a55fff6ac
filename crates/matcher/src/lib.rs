//! Request matching, compiled once per snapshot and evaluated per request without allocation.
//!
//! - [`RequestView`]: what a condition can look at.
//! - [`path`]: Spring `AntPathMatcher` (`match`) and `PathPattern` (`pathPattern`, SCG `Path=`).
//! - [`condition`]: one compiled ShenYu condition.
//! - [`index`]: literal-prefix trie over path segments, so a lookup touches only plausible candidates.
//! - [`normalize`]: the path normalisation done before any matching (shared by the data plane and explain).
//! - [`select`]: ShenYu selector → rule selection for one plugin.

pub mod condition;
pub mod index;
pub mod normalize;
pub mod path;
pub mod select;

use std::net::IpAddr;

/// A read-only view of a request for matching. Built once per request by the data plane.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a http::Method,
    /// Normalised path (dot segments resolved, `//` collapsed, unreserved percent-escapes decoded).
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// Host of the request (Host header or :authority), without port, lower-case.
    pub host: &'a str,
    /// Client address after trusted-proxy resolution of X-Forwarded-For / Forwarded.
    pub client_ip: IpAddr,
    /// TCP peer address.
    pub peer_ip: IpAddr,
    /// The buffered request body, when a `post` condition needs it (bounded read); else None.
    pub body: Option<&'a [u8]>,
    /// Content-Type of the body (for `post`: form or JSON).
    pub content_type: Option<&'a str>,
}
