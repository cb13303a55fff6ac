//! Typed plugin handles. A handle arrives as JSON text; each plugin parses it once per snapshot.
//! Absent fields take ShenYu's Java defaults so configs written for ShenYu behave the same.

use serde::{Deserialize, Serialize};

use crate::wire;

/// Parses a handle, treating a missing/blank handle as all defaults.
pub fn parse_handle<T: for<'de> Deserialize<'de> + Default>(handle: Option<&str>) -> Result<T, String> {
    match handle.map(str::trim) {
        None | Some("") | Some("null") => Ok(T::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| e.to_string()),
    }
}

/// Divide (HTTP proxy) rule handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DivideRuleHandle {
    pub load_balance: String,
    pub retry_strategy: String,
    #[serde(deserialize_with = "u64_or_default_retry")]
    pub retry: u64,
    #[serde(deserialize_with = "u64_or_default_timeout")]
    pub timeout: u64,
    #[serde(deserialize_with = "u64_or_zero")]
    pub header_max_size: u64,
    #[serde(deserialize_with = "u64_or_zero")]
    pub request_max_size: u64,
    /// TiGateway extension: what the `hash` balancer hashes: `ip` (default, as ShenYu),
    /// `header:NAME` or `cookie:NAME`.
    pub hash_key: Option<String>,
}

impl Default for DivideRuleHandle {
    fn default() -> Self {
        DivideRuleHandle {
            load_balance: "random".into(),
            retry_strategy: "current".into(),
            retry: 3,
            timeout: 3000,
            header_max_size: 0,
            request_max_size: 0,
            hash_key: None,
        }
    }
}

fn u64_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(wire::lenient_u64(d)?.unwrap_or(0))
}
fn u64_or_default_retry<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(wire::lenient_u64(d)?.unwrap_or(3))
}
fn u64_or_default_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(wire::lenient_u64(d)?.unwrap_or(3000))
}
fn opt_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    wire::lenient_u64(d)
}
fn opt_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    wire::lenient_i64(d)
}
fn bool_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(wire::lenient_bool(d)?.unwrap_or(true))
}
fn bool_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(wire::lenient_bool(d)?.unwrap_or(false))
}

/// The load balancer names ShenYu accepts.
pub const LOAD_BALANCERS: &[&str] = &["random", "roundRobin", "hash", "leastActive", "p2c", "shortestResponse"];

/// One upstream in a divide selector handle (ShenYu < 2.6 and hand-written files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DivideUpstream {
    pub upstream_host: Option<String>,
    pub protocol: Option<String>,
    /// `host:port`, or a full URL (`http://host:port`) in hand-written files.
    #[serde(alias = "url")]
    pub upstream_url: String,
    #[serde(deserialize_with = "opt_i64")]
    pub weight: Option<i64>,
    #[serde(deserialize_with = "bool_true")]
    pub status: bool,
    #[serde(deserialize_with = "opt_i64")]
    pub timestamp: Option<i64>,
    /// Warm-up time in ms.
    #[serde(deserialize_with = "opt_i64")]
    pub warmup: Option<i64>,
    #[serde(deserialize_with = "bool_false")]
    pub gray: bool,
    #[serde(deserialize_with = "bool_false")]
    pub health_check_enabled: bool,
    pub namespace_id: Option<String>,
}

impl Default for DivideUpstream {
    fn default() -> Self {
        DivideUpstream {
            upstream_host: None,
            protocol: None,
            upstream_url: String::new(),
            weight: None,
            status: true,
            timestamp: None,
            warmup: None,
            gray: false,
            health_check_enabled: false,
            namespace_id: None,
        }
    }
}

/// Parses a divide selector handle: a list of upstreams (empty/blank → none).
pub fn parse_divide_upstreams(handle: Option<&str>) -> Result<Vec<DivideUpstream>, String> {
    match handle.map(str::trim) {
        None | Some("") | Some("null") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| e.to_string()),
    }
}

/// contextPath plugin rule handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ContextPathHandle {
    pub context_path: Option<String>,
    pub add_prefix: Option<String>,
    pub rewrite_context_path: Option<String>,
    #[serde(deserialize_with = "opt_u64")]
    pub percentage: Option<u64>,
}

/// rewrite plugin rule handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RewriteHandle {
    pub regex: Option<String>,
    pub replace: Option<String>,
    #[serde(deserialize_with = "opt_u64")]
    pub percentage: Option<u64>,
    #[serde(deserialize_with = "bool_false")]
    pub rewrite_meta_data: bool,
}

/// redirect plugin rule handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RedirectHandle {
    #[serde(rename = "redirectURI", alias = "redirectUri")]
    pub redirect_uri: Option<String>,
    #[serde(deserialize_with = "opt_u64")]
    pub http_status_code: Option<u64>,
}

/// add/set/rename/remove sets of the request plugin (header, parameter or cookie).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct KeyEdits {
    #[serde(alias = "addHeaders", alias = "addParameters", alias = "addCookies")]
    pub add: std::collections::BTreeMap<String, String>,
    #[serde(alias = "setHeaders", alias = "setParameters", alias = "setCookies")]
    pub set: std::collections::BTreeMap<String, String>,
    #[serde(alias = "replaceHeaderKeys", alias = "replaceParameterKeys", alias = "replaceCookieKeys")]
    pub rename: std::collections::BTreeMap<String, String>,
    #[serde(alias = "removeHeaderKeys", alias = "removeParameterKeys", alias = "removeCookieKeys")]
    pub remove: Vec<String>,
}

/// request plugin rule handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestHandle {
    pub header: KeyEdits,
    pub parameter: KeyEdits,
    pub cookie: KeyEdits,
    #[serde(deserialize_with = "bool_false")]
    pub preserve_host: bool,
}

/// TiGateway's response-header plugin handle (ShenYu's modifyResponse header part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ModifyResponseHandle {
    pub add_headers: std::collections::BTreeMap<String, String>,
    pub set_headers: std::collections::BTreeMap<String, String>,
    pub replace_header_keys: std::collections::BTreeMap<String, String>,
    pub remove_header_keys: Vec<String>,
    #[serde(deserialize_with = "opt_u64")]
    pub status_code: Option<u64>,
}

/// websocket plugin rule handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebSocketRuleHandle {
    pub load_balance: String,
    #[serde(deserialize_with = "u64_or_zero")]
    pub retry: u64,
    #[serde(deserialize_with = "u64_or_default_timeout")]
    pub timeout: u64,
}

impl Default for WebSocketRuleHandle {
    fn default() -> Self {
        WebSocketRuleHandle { load_balance: "random".into(), retry: 0, timeout: 3000 }
    }
}
