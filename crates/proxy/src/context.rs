//! The per-request context every plugin sees.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Version};
use smallvec::SmallVec;
use tigateway_matcher::select::RuleChoice;
use tigateway_matcher::RequestView;

/// Which selector and rule a plugin's table chose.
#[derive(Debug, Clone, Copy)]
pub struct Matched {
    pub selector: usize,
    pub rule: RuleChoice,
}

pub struct Ctx {
    pub method: Method,
    pub version: Version,
    /// Request headers, hop-by-hop ones already removed; plugins edit them in place.
    pub headers: HeaderMap,
    /// The normalised client path, used for matching.
    pub path: String,
    pub query: Option<String>,
    /// The path to send upstream once a plugin rewrote it (ShenYu's `realUrl`).
    pub upstream_path: Option<String>,
    /// Request host without port, lower-case.
    pub host: String,
    /// The client's Host / :authority as sent.
    pub host_header: Option<HeaderValue>,
    pub client_ip: IpAddr,
    pub peer: SocketAddr,
    /// The peer's address as a header value (made once per connection).
    pub peer_value: HeaderValue,
    pub peer_trusted: bool,
    pub tls: bool,
    /// Buffered body, when a `post` condition needed it.
    pub body: Option<Bytes>,
    /// Send the client's Host upstream instead of the upstream's authority.
    pub preserve_host: bool,
    /// Host to send upstream, when a filter set one.
    pub upstream_host: Option<String>,
    pub is_upgrade: bool,
    /// Plugins whose response phase must run, with what they matched.
    pub response_plugins: SmallVec<[(u16, Option<Matched>); 4]>,
    /// `X-Request-Id` (the client's when sane, else generated; see `trace.rs`).
    pub request_id: HeaderValue,
    /// The W3C trace id: this request's span's, or the incoming `traceparent`'s when spans are off.
    pub trace_id: Option<opentelemetry::trace::TraceId>,
    /// The upstream that answered (set by the forwarder).
    pub upstream: Option<std::sync::Arc<tigateway_upstream::Peer>>,
    /// How long the answering upstream took to send its response head.
    pub upstream_time: Option<std::time::Duration>,
    /// Upstream attempts beyond the first.
    pub retries: u32,
}

impl Ctx {
    pub fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            host: &self.host,
            client_ip: self.client_ip,
            peer_ip: self.peer.ip(),
            body: self.body.as_deref(),
            content_type: self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        }
    }

    /// What a route's response filters need to know about the client's request.
    pub fn response_info(&self) -> tigateway_routes::ResponseInfo<'_> {
        tigateway_routes::ResponseInfo {
            request_host: self.host_header.as_ref().and_then(|h| h.to_str().ok()),
            request_path: &self.path,
        }
    }

    /// The path the upstream will get.
    pub fn current_path(&self) -> &str {
        self.upstream_path.as_deref().unwrap_or(&self.path)
    }
}
