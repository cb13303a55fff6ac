//! The whole configuration of a gateway, as one value. Every config source produces one of these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::route::RouteDefinition;
use crate::types::*;

/// Everything a gateway needs. The native file form is this struct in YAML or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// Static discovery: service name → instances, used by `lb://name` and by divide selectors.
    #[serde(default)]
    pub services: BTreeMap<String, Vec<ServiceInstance>>,
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    #[serde(default)]
    pub selectors: Vec<Selector>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default, alias = "metaData")]
    pub metadata: Vec<MetaData>,
    #[serde(default)]
    pub app_auth: Vec<AppAuth>,
    /// ShenYu 2.6+ upstream lists per selector (DISCOVER_UPSTREAM).
    #[serde(default)]
    pub discovery_upstreams: Vec<DiscoverySyncData>,
    /// Spring Cloud Gateway style routes; first match by `order` wins.
    #[serde(default)]
    pub routes: Vec<RouteDefinition>,
    /// Addresses on which the gateway process itself runs a small echo upstream, so the quick start
    /// needs no other service. Not for production.
    #[serde(default)]
    pub demo_upstreams: Vec<String>,
}

/// One instance of a statically discovered service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceInstance {
    /// `http://host:port`, `https://host:port`, `h2c://host:port`, or `host:port` (http).
    #[serde(alias = "uri")]
    pub url: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// Warm-up time in ms: traffic ramps up over this long after `since`.
    #[serde(default)]
    pub warmup_ms: Option<u64>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfig {
    /// Listeners; when empty, one plain listener on the CLI's `--listen` (default `0.0.0.0:9195`).
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Peers whose X-Forwarded-* / Forwarded headers are believed (CIDRs or addresses).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// How long graceful shutdown waits for in-flight requests.
    #[serde(default = "default_shutdown_ms")]
    pub shutdown_timeout_ms: u64,
    /// Answer "no route" like ShenYu (HTTP 200, code -107) instead of 404, for drop-in users.
    #[serde(default)]
    pub shenyu_compatible_errors: bool,
    /// Add an RFC 7239 `Forwarded` header upstream (X-Forwarded-For/-Proto/-Host are always set).
    #[serde(default)]
    pub add_forwarded_header: bool,
    /// Access log (one JSON line per request); `--access-log` on the command line wins.
    #[serde(default)]
    pub access_log: AccessLogConfig,
    /// Answer with `X-TiGateway-Route`, `X-TiGateway-Upstream` and timing headers (for debugging;
    /// they reveal internals, so off by default).
    #[serde(default)]
    pub debug_headers: bool,
    /// OpenTelemetry span export (read at start).
    #[serde(default)]
    pub tracing: TracingConfig,
}

/// Where and how much to trace. Without `otlpEndpoint` no spans are made; the request id and the
/// trace context headers are still handled (see README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingConfig {
    /// `http://collector:4317` (gRPC) or `http://collector:4318` (HTTP; `/v1/traces` is added when
    /// the URL has no path).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    #[serde(default)]
    pub otlp_protocol: OtlpProtocol,
    /// Share of new traces (no sampled parent) that are recorded, 0.0–1.0. A request with a
    /// `traceparent` follows its parent's sampled flag.
    #[serde(default = "one_f64")]
    pub sample_ratio: f64,
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn one_f64() -> f64 {
    1.0
}

fn default_service_name() -> String {
    "tigateway".to_string()
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            sample_ratio: 1.0,
            service_name: default_service_name(),
        }
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    Http,
}

/// `server.accessLog`. `enabled` and `scope` reload live; `output`, `maxBytes`, `maxFiles` and
/// `bufferSize` are read at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogConfig {
    #[serde(default)]
    pub enabled: bool,
    /// `all`: every request; `logged`: only requests whose ShenYu rule (or selector) has
    /// `loged`/`logged: true`, or whose Spring route has `metadata.logged: true`.
    #[serde(default)]
    pub scope: AccessLogScope,
    /// `stdout` or a file path.
    #[serde(default = "default_access_log_output")]
    pub output: String,
    /// Rotate the file when it passes this size.
    #[serde(default = "default_access_log_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`access.log.1` … `.N`).
    #[serde(default = "default_access_log_max_files")]
    pub max_files: usize,
    /// Lines waiting to be written; beyond this lines are dropped and counted, never waited for.
    #[serde(default = "default_access_log_buffer")]
    pub buffer_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum AccessLogScope {
    #[default]
    All,
    Logged,
}

fn default_access_log_output() -> String {
    "stdout".into()
}
fn default_access_log_max_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_access_log_max_files() -> usize {
    5
}
fn default_access_log_buffer() -> usize {
    16 * 1024
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: false,
            scope: AccessLogScope::All,
            output: default_access_log_output(),
            max_bytes: default_access_log_max_bytes(),
            max_files: default_access_log_max_files(),
            buffer_size: default_access_log_buffer(),
        }
    }
}

fn default_shutdown_ms() -> u64 {
    30_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listeners: Vec::new(),
            limits: LimitsConfig::default(),
            trusted_proxies: Vec::new(),
            upstream: UpstreamConfig::default(),
            shutdown_timeout_ms: default_shutdown_ms(),
            shenyu_compatible_errors: false,
            add_forwarded_header: false,
            access_log: AccessLogConfig::default(),
            debug_headers: false,
            tracing: TracingConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Accept HTTP/2 (h2c prior knowledge on plain listeners, ALPN h2 on TLS).
    #[serde(default = "yes")]
    pub http2: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// Default certificate chain (PEM) and key (PEM).
    pub cert: String,
    pub key: String,
    /// Extra certificates chosen by SNI server name.
    #[serde(default)]
    pub sni: Vec<SniCert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SniCert {
    pub server_name: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest request target (414 beyond).
    pub max_uri_bytes: usize,
    /// Largest request head (431 beyond).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Largest request body (413 beyond); routes can lower or raise it.
    pub max_body_bytes: u64,
    /// Time allowed to receive a request head (408 after).
    pub header_read_timeout_ms: u64,
    /// Keep-alive idle time before a client connection is closed.
    pub keep_alive_timeout_ms: u64,
    /// Let `%2F`, `%5C` and `%00` through in paths (off: 400).
    pub allow_encoded_slash: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            keep_alive_timeout_ms: 60_000,
            allow_encoded_slash: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub connect_timeout_ms: u64,
    /// Time to the upstream's response head (504 after); divide handles and route metadata override.
    pub response_timeout_ms: u64,
    pub pool_idle_timeout_ms: u64,
    pub pool_max_idle_per_host: usize,
    /// Passive health: eject an upstream after this many consecutive failures (0 = never).
    pub max_fails: u32,
    /// ... and re-admit it after this long.
    pub fail_timeout_ms: u64,
    /// Retries on connect failure (any method) or timeout (idempotent methods), per request.
    pub retries: u32,
    /// Optional active HTTP health checks.
    pub health_check: Option<HealthCheckConfig>,
    /// Extra CA certificates (PEM file) trusted for https/wss upstreams, besides the public roots.
    pub ca_file: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout_ms: 3_000,
            response_timeout_ms: 30_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 1024,
            max_fails: 3,
            fail_timeout_ms: 10_000,
            retries: 1,
            health_check: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/health".into(),
            interval_ms: 5_000,
            timeout_ms: 1_000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

impl Config {
    /// Parses the native form (YAML or JSON; JSON is YAML).
    pub fn from_yaml_str(text: &str) -> Result<Config, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }
}

/// Upstream transport named by a URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
    Ws,
    Wss,
}

impl Scheme {
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Wss)
    }
    pub fn http_scheme(self) -> &'static str {
        if self.is_tls() {
            "https"
        } else {
            "http"
        }
    }
}

/// Splits an upstream URL (`http://h:p`, `https://h`, `h2c://h:p`, `ws://…`, or bare `h:p`) into
/// scheme and authority (with the scheme's default port filled in). Any path is refused: an upstream
/// is an address, the path comes from the request.
pub fn parse_upstream_url(url: &str) -> Result<(Scheme, String), String> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (
            match s.to_ascii_lowercase().as_str() {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                "h2c" | "h2" => Scheme::H2c,
                "ws" => Scheme::Ws,
                "wss" => Scheme::Wss,
                other => return Err(format!("unsupported scheme {other:?} in {url:?} (http, https, h2c, ws, wss)")),
            },
            r,
        ),
        None => (Scheme::Http, url),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('?') {
        return Err(format!("expected scheme://host:port without a path, got {url:?}"));
    }
    let with_port = if has_port(authority) {
        authority.to_string()
    } else {
        let port = if scheme.is_tls() { 443 } else { 80 };
        format!("{authority}:{port}")
    };
    if with_port.parse::<http::uri::Authority>().is_err() {
        return Err(format!("bad host:port in {url:?}"));
    }
    Ok((scheme, with_port))
}

fn has_port(authority: &str) -> bool {
    if let Some(end) = authority.rfind(']') {
        authority[end..].contains(':')
    } else {
        authority.contains(':')
    }
}
