//! Typed Spring Cloud Gateway predicates and filters.
//!
//! A route written for SCG must run here unchanged, so argument handling follows SCG's binder: the
//! shortcut form `Name=a, b` fills fields in each factory's shortcut order (empty parts are dropped,
//! as SCG's tokenizer does), list-valued factories gather every shortcut argument, `Path` takes a
//! trailing `true`/`false` as its flag, and named arguments use relaxed names (`matchTrailingSlash`,
//! `match-trailing-slash`). Unknown argument names are refused rather than ignored, because a typo
//! in a predicate silently changes which traffic a route takes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::config::{parse_upstream_url, Scheme};
use crate::route::{Definition, RouteDefinition, GENKEY_PREFIX};
use crate::validate::ValidationError;

/// A point in time with the offset it was written with (`ZonedDateTime` minus the zone rules).
pub type DateTime = chrono::DateTime<chrono::FixedOffset>;

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    After(DateTime),
    Before(DateTime),
    /// Matches strictly after the first and strictly before the second.
    Between(DateTime, DateTime),
    /// `regexp` must match the whole cookie value.
    Cookie {
        name: String,
        regexp: String,
    },
    /// Without `regexp` the header only has to be present; with it, one of the header's
    /// comma-separated values must match it whole.
    Header {
        header: String,
        regexp: Option<String>,
    },
    /// Ant-style patterns with `.` as separator; a pattern with `:` is matched against host:port.
    Host {
        patterns: Vec<String>,
    },
    Method {
        methods: Vec<http::Method>,
    },
    Path {
        patterns: Vec<String>,
        match_trailing_slash: bool,
    },
    /// Without `regexp` the parameter only has to be present.
    Query {
        param: String,
        regexp: Option<String>,
    },
    RemoteAddr {
        sources: Vec<IpNet>,
    },
    /// Trusts the `max_trusted_index`-th address from the right of `X-Forwarded-For`.
    XForwardedRemoteAddr {
        sources: Vec<IpNet>,
        max_trusted_index: u32,
    },
    Weight {
        group: String,
        weight: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeStrategy {
    RetainFirst,
    RetainLast,
    RetainUnique,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripVersion {
    NeverStrip,
    AsInRequest,
    AlwaysStrip,
}

/// `HttpStatus.Series`: the hundreds digit of a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSeries {
    Informational,
    Successful,
    Redirection,
    ClientError,
    ServerError,
}

impl StatusSeries {
    pub fn contains(self, status: u16) -> bool {
        status / 100 == self as u16 + 1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryBackoff {
    pub first_backoff: Duration,
    pub max_backoff: Option<Duration>,
    pub factor: u32,
    pub based_on_previous_value: bool,
}

impl RetryBackoff {
    /// Delay before retry number `retry` (1-based): `first * factor^(retry-1)`, capped by `max`.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1);
        let mult = (self.factor.max(1) as u64).checked_pow(exp).unwrap_or(u64::MAX);
        let nanos = (self.first_backoff.as_nanos() as u64).saturating_mul(mult);
        let d = Duration::from_nanos(nanos);
        match self.max_backoff {
            Some(max) if d > max => max,
            _ => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub retries: u32,
    /// Retry when the status is listed here or falls in one of `series`.
    pub statuses: Vec<u16>,
    pub series: Vec<StatusSeries>,
    pub methods: Vec<http::Method>,
    /// Java exception class names as configured; see [`RetryConfig::retry_on_io_error`].
    pub exceptions: Vec<String>,
    pub backoff: Option<RetryBackoff>,
    /// Jitter factor in 0..=1.
    pub jitter: Option<f64>,
    /// Overall time budget for all retries.
    pub timeout: Option<Duration>,
}

impl RetryConfig {
    pub fn retry_on_status(&self, status: u16) -> bool {
        self.statuses.contains(&status) || self.series.iter().any(|s| s.contains(status))
    }

    /// Connection failures surface as `IOException` (or a subclass) in SCG.
    pub fn retry_on_io_error(&self) -> bool {
        self.exceptions.iter().any(|e| {
            let simple = e.rsplit('.').next().unwrap_or(e);
            matches!(simple, "IOException" | "ConnectException" | "SocketException" | "PrematureCloseException")
        })
    }

    pub fn retry_on_timeout(&self) -> bool {
        self.exceptions.iter().any(|e| {
            let simple = e.rsplit('.').next().unwrap_or(e);
            matches!(simple, "TimeoutException" | "ReadTimeoutException" | "ConnectTimeoutException")
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    AddRequestHeader {
        name: String,
        value: String,
    },
    /// Each header is added only when the request has no non-blank value for it.
    AddRequestHeadersIfNotPresent(Vec<(String, String)>),
    AddRequestParameter {
        name: String,
        value: String,
    },
    /// With `override_existing` off, the header is only added when the response has no
    /// non-blank value for it.
    AddResponseHeader {
        name: String,
        value: String,
        override_existing: bool,
    },
    DedupeResponseHeader {
        names: Vec<String>,
        strategy: DedupeStrategy,
    },
    MapRequestHeader {
        from_header: String,
        to_header: String,
    },
    PrefixPath {
        prefix: String,
    },
    PreserveHostHeader,
    RedirectTo {
        status: u16,
        url: String,
        include_request_params: bool,
    },
    RemoveRequestHeader {
        name: String,
    },
    RemoveRequestParameter {
        name: String,
    },
    RemoveResponseHeader {
        name: String,
    },
    RequestHeaderSize {
        max_size: u64,
        error_header_name: String,
    },
    RequestSize {
        max_size: u64,
    },
    Retry(RetryConfig),
    RewriteLocationResponseHeader {
        strip_version: StripVersion,
        location_header_name: String,
        host_value: Option<String>,
        /// Regex for the scheme, matched whole.
        protocols: String,
    },
    /// `replacement` is in Java syntax (`$\{name}` already turned into `${name}`).
    RewritePath {
        regexp: String,
        replacement: String,
    },
    RewriteResponseHeader {
        name: String,
        regexp: String,
        replacement: String,
    },
    /// The headers (name, value) to add when the response lacks them, after `enable`/`disable`
    /// and per-route values are resolved.
    SecureHeaders {
        headers: Vec<(String, String)>,
    },
    SetPath {
        template: String,
    },
    SetRequestHeader {
        name: String,
        value: String,
    },
    SetRequestHostHeader {
        host: String,
    },
    SetResponseHeader {
        name: String,
        value: String,
    },
    SetStatus {
        status: u16,
    },
    StripPrefix {
        parts: usize,
    },
}

/// SCG's `RequestSize` default limit (5 000 000 bytes, decimal as in SCG).
pub const DEFAULT_REQUEST_SIZE: u64 = 5_000_000;
/// SCG's `RequestHeaderSize` default limit.
pub const DEFAULT_REQUEST_HEADER_SIZE: u64 = 16_000;
/// SCG's default for `RewriteLocationResponseHeader` protocols.
pub const DEFAULT_LOCATION_PROTOCOLS: &str = "https?|ftps?";

/// SecureHeaders defaults (SCG's `SecureHeadersProperties`), added unless disabled.
pub const SECURE_HEADER_DEFAULTS: &[(&str, &str)] = &[
    ("X-Xss-Protection", "1 ; mode=block"),
    ("Strict-Transport-Security", "max-age=631138519"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self' https:; font-src 'self' https: data:; img-src 'self' https: data:; object-src 'none'; script-src https:; style-src 'self' https: 'unsafe-inline'",
    ),
    ("X-Download-Options", "noopen"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
];

/// Permissions-Policy is opt-in (`enable: permissions-policy`) because its default switches off
/// a long list of browser features.
pub const PERMISSIONS_POLICY_DEFAULT: &str = "accelerometer=(), ambient-light-sensor=(), autoplay=(), battery=(), camera=(), cross-origin-isolated=(), display-capture=(), document-domain=(), encrypted-media=(), execution-while-not-rendered=(), execution-while-out-of-viewport=(), fullscreen=(), geolocation=(), gyroscope=(), keyboard-map=(), magnetometer=(), microphone=(), midi=(), navigation-override=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(), usb=(), web-share=(), xr-spatial-tracking=()";

const UNSUPPORTED_PREDICATES: &[&str] = &["ReadBody", "CloudFoundryRouteService", "Version"];
const UNSUPPORTED_FILTERS: &[&str] = &[
    "CircuitBreaker",
    "Hystrix",
    "FallbackHeaders",
    "RequestRateLimiter",
    "ModifyRequestBody",
    "ModifyResponseBody",
    "SaveSession",
    "TokenRelay",
    "CacheRequestBody",
    "JsonToGrpc",
    "LocalResponseCache",
    "RemoveJsonAttributesResponseBody",
    "RequestHeaderToRequestUri",
    "SetRequestUri",
    "RewriteRequestParameter",
];

// ---------------------------------------------------------------------------------------------
// Argument normalisation

#[derive(Clone, Copy, PartialEq)]
enum Shortcut {
    /// Positional argument i fills field i.
    Default,
    /// All positional arguments form the list of the only field.
    GatherList,
    /// Like `GatherList`, but a trailing `true`/`false` fills the second field.
    GatherListTailFlag,
}

/// One factory's arguments after SCG-style normalisation, keyed by relaxed name.
struct Args {
    factory: String,
    map: BTreeMap<String, Value>,
}

/// Relaxed property name: `matchTrailingSlash`, `match-trailing-slash` and `match_trailing_slash`
/// are one name. Dots separate nested names.
fn relaxed(key: &str) -> String {
    key.split('.')
        .map(|seg| seg.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect::<String>())
        .collect::<Vec<_>>()
        .join(".")
}

/// `patterns[0]` / `patterns.0` → (`patterns`, 0).
fn indexed_key(key: &str) -> Option<(&str, usize)> {
    if let Some(open) = key.rfind('[') {
        if key.ends_with(']') {
            return key[open + 1..key.len() - 1].parse().ok().map(|i| (&key[..open], i));
        }
    }
    let (base, idx) = key.rsplit_once('.')?;
    idx.parse().ok().map(|i| (base, i))
}

impl Args {
    fn new(d: &Definition, kind: &str, fields: &[&str], shortcut: Shortcut) -> Result<Args, String> {
        let mut positional = Vec::new();
        let mut named: BTreeMap<String, Value> = BTreeMap::new();
        let mut indexed: BTreeMap<String, BTreeMap<usize, Value>> = BTreeMap::new();
        for (k, v) in &d.args {
            if k.starts_with(GENKEY_PREFIX) {
                // SCG tokenizes shortcuts dropping empty parts (`AS_IN_REQUEST, Location, ,`).
                if v.as_str().is_some_and(|s| s.trim().is_empty()) || v.is_null() {
                    continue;
                }
                positional.push(trim_value(v));
            } else if let Some((base, i)) = indexed_key(k) {
                indexed.entry(relaxed(base)).or_default().insert(i, trim_value(v));
            } else {
                named.insert(relaxed(k), trim_value(v));
            }
        }
        for (base, items) in indexed {
            named.insert(base, Value::Array(items.into_values().collect()));
        }
        if !positional.is_empty() {
            match shortcut {
                Shortcut::Default => {
                    // Extra shortcut arguments are ignored, as SCG's binder ignores the keys it
                    // cannot map (`AddRequestHeader=X-A, a, b` sends `a`).
                    for (f, v) in fields.iter().zip(positional) {
                        named.insert(relaxed(f), v);
                    }
                }
                Shortcut::GatherList => {
                    named.insert(relaxed(fields[0]), Value::Array(positional));
                }
                Shortcut::GatherListTailFlag => {
                    if let Some(Value::String(last)) = positional.last() {
                        if last.eq_ignore_ascii_case("true") || last.eq_ignore_ascii_case("false") {
                            let flag = positional.pop().unwrap_or(Value::Null);
                            named.insert(relaxed(fields[1]), flag);
                        }
                    }
                    named.insert(relaxed(fields[0]), Value::Array(positional));
                }
            }
        }
        Ok(Args { factory: format!("{kind} {:?}", d.name), map: named })
    }

    /// Renames `alias` to `canonical` (both relaxed) so older SCG spellings keep working.
    fn alias(&mut self, alias: &str, canonical: &str) {
        if let Some(v) = self.map.remove(&relaxed(alias)) {
            self.map.entry(relaxed(canonical)).or_insert(v);
        }
    }

    /// Refuses argument names the factory does not know (nested names are checked by prefix).
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        let allowed: Vec<String> = allowed.iter().map(|a| relaxed(a)).collect();
        for k in self.map.keys() {
            let ok =
                allowed.iter().any(|a| a == k || a.starts_with(&format!("{k}.")) || k.starts_with(&format!("{a}.")));
            if !ok {
                return Err(format!("unknown argument {k:?} for {} (known: {})", self.factory, allowed.join(", ")));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&Value> {
        let key = relaxed(key);
        if let Some(v) = self.map.get(&key) {
            return Some(v);
        }
        // `backoff.firstBackoff` given as a nested object `backoff: {firstBackoff: ..}`.
        let (head, rest) = key.split_once('.')?;
        let mut cur = self.map.get(head)?;
        for seg in rest.split('.') {
            let obj = cur.as_object()?;
            cur = obj.iter().find(|(k, _)| relaxed(k) == seg).map(|(_, v)| v)?;
        }
        Some(cur)
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_null())
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Array(items)) if items.len() == 1 => Ok(Some(scalar_string(&items[0]))),
            Some(other) => Err(format!("{}: argument {key:?} must be a single value, got {other}", self.factory)),
        }
    }

    fn req_str(&self, key: &str) -> Result<String, String> {
        match self.opt_str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(format!("{}: missing argument {key:?}", self.factory)),
        }
    }

    /// A required, non-empty list argument, each item parsed; `what` names an item in the error.
    fn parsed_list<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        what: &str,
    ) -> Result<Vec<T>, String> {
        let items = self.list(key).iter().map(|i| parse(i)).collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        if items.is_empty() {
            return Err(self.err(format!("needs at least one {what}")));
        }
        Ok(items)
    }

    /// A list argument: a YAML list, or a comma-separated string as Spring's converter splits it.
    fn list(&self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        match self.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for i in items {
                    match i {
                        Value::Array(_) | Value::Object(_) => out.push(i.to_string()),
                        _ => out.push(scalar_string(i)),
                    }
                }
            }
            Some(Value::String(s)) => out.extend(s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty())),
            Some(v) => out.push(scalar_string(v)),
        }
        out
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(format!("{}: argument {key:?} must be true or false, got {s:?}", self.factory)),
            },
        }
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{}: argument {key:?} must be an integer, got {s:?}", self.factory)),
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("{}: {msg}", self.factory)
    }
}

fn trim_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.trim().to_string()),
        other => other.clone(),
    }
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsers shared with the route compiler

/// Parses a `ZonedDateTime` as SCG accepts it: epoch milliseconds, or ISO-8601 with an offset and
/// an optional `[Zone/Id]` (the offset decides; the zone id is not needed to compare instants).
pub fn parse_zoned_date_time(text: &str) -> Result<DateTime, String> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.fixed_offset())
            .ok_or_else(|| format!("epoch milliseconds out of range: {t}"));
    }
    let base = match t.find('[') {
        Some(i) if t.ends_with(']') => &t[..i],
        _ => t,
    };
    let base = match base.strip_suffix(['Z', 'z']) {
        Some(b) => format!("{b}+00:00"),
        None => base.to_string(),
    };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(&base) {
        return Ok(d);
    }
    // ISO-8601 allows leaving out the seconds.
    chrono::DateTime::parse_from_str(&base, "%Y-%m-%dT%H:%M%:z").map_err(|_| {
        format!(
            "expected a date-time like 2017-01-20T17:42:47.789-07:00[America/Denver] or epoch milliseconds, got {t:?}"
        )
    })
}

/// Parses a Spring `DataSize`: a whole number with an optional unit B, KB, MB, GB or TB
/// (binary multiples, as Spring defines them).
pub fn parse_data_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("expected a data size like 5000, 10KB or 5MB, got {t:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        other => return Err(format!("unknown data size unit {other:?} in {t:?} (B, KB, MB, GB, TB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("data size too large: {t:?}"))
}

/// Parses a Spring Boot duration: `10ms`, `2s`, `1m`, a bare number (milliseconds), or ISO-8601
/// `PT0.5S`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("expected a duration like 50ms, 2s or PT1S, got {t:?}");
    if let Some(iso) = t.strip_prefix(['P', 'p']) {
        return parse_iso_duration(iso).ok_or_else(bad);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    Ok(match unit.trim().to_ascii_lowercase().as_str() {
        "ns" => Duration::from_nanos(n),
        "us" => Duration::from_micros(n),
        "" | "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err(bad()),
    })
}

fn parse_iso_duration(rest: &str) -> Option<Duration> {
    let mut secs = 0f64;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            'T' if num.is_empty() => in_time = true,
            '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
            u => {
                let v: f64 = num.parse().ok()?;
                num.clear();
                any = true;
                secs += v * match (in_time, u) {
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return None,
                };
            }
        }
    }
    (any && num.is_empty() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

const STATUS_NAMES: &[(&str, u16)] = &[
    ("CONTINUE", 100),
    ("SWITCHING_PROTOCOLS", 101),
    ("PROCESSING", 102),
    ("EARLY_HINTS", 103),
    ("CHECKPOINT", 103),
    ("OK", 200),
    ("CREATED", 201),
    ("ACCEPTED", 202),
    ("NON_AUTHORITATIVE_INFORMATION", 203),
    ("NO_CONTENT", 204),
    ("RESET_CONTENT", 205),
    ("PARTIAL_CONTENT", 206),
    ("MULTI_STATUS", 207),
    ("ALREADY_REPORTED", 208),
    ("IM_USED", 226),
    ("MULTIPLE_CHOICES", 300),
    ("MOVED_PERMANENTLY", 301),
    ("FOUND", 302),
    ("MOVED_TEMPORARILY", 302),
    ("SEE_OTHER", 303),
    ("NOT_MODIFIED", 304),
    ("USE_PROXY", 305),
    ("TEMPORARY_REDIRECT", 307),
    ("PERMANENT_REDIRECT", 308),
    ("BAD_REQUEST", 400),
    ("UNAUTHORIZED", 401),
    ("PAYMENT_REQUIRED", 402),
    ("FORBIDDEN", 403),
    ("NOT_FOUND", 404),
    ("METHOD_NOT_ALLOWED", 405),
    ("NOT_ACCEPTABLE", 406),
    ("PROXY_AUTHENTICATION_REQUIRED", 407),
    ("REQUEST_TIMEOUT", 408),
    ("CONFLICT", 409),
    ("GONE", 410),
    ("LENGTH_REQUIRED", 411),
    ("PRECONDITION_FAILED", 412),
    ("PAYLOAD_TOO_LARGE", 413),
    ("CONTENT_TOO_LARGE", 413),
    ("REQUEST_ENTITY_TOO_LARGE", 413),
    ("URI_TOO_LONG", 414),
    ("REQUEST_URI_TOO_LONG", 414),
    ("UNSUPPORTED_MEDIA_TYPE", 415),
    ("REQUESTED_RANGE_NOT_SATISFIABLE", 416),
    ("EXPECTATION_FAILED", 417),
    ("I_AM_A_TEAPOT", 418),
    ("INSUFFICIENT_SPACE_ON_RESOURCE", 419),
    ("METHOD_FAILURE", 420),
    ("DESTINATION_LOCKED", 421),
    ("UNPROCESSABLE_ENTITY", 422),
    ("UNPROCESSABLE_CONTENT", 422),
    ("LOCKED", 423),
    ("FAILED_DEPENDENCY", 424),
    ("TOO_EARLY", 425),
    ("UPGRADE_REQUIRED", 426),
    ("PRECONDITION_REQUIRED", 428),
    ("TOO_MANY_REQUESTS", 429),
    ("REQUEST_HEADER_FIELDS_TOO_LARGE", 431),
    ("UNAVAILABLE_FOR_LEGAL_REASONS", 451),
    ("INTERNAL_SERVER_ERROR", 500),
    ("NOT_IMPLEMENTED", 501),
    ("BAD_GATEWAY", 502),
    ("SERVICE_UNAVAILABLE", 503),
    ("GATEWAY_TIMEOUT", 504),
    ("HTTP_VERSION_NOT_SUPPORTED", 505),
    ("VARIANT_ALSO_NEGOTIATES", 506),
    ("INSUFFICIENT_STORAGE", 507),
    ("LOOP_DETECTED", 508),
    ("BANDWIDTH_LIMIT_EXCEEDED", 509),
    ("NOT_EXTENDED", 510),
    ("NETWORK_AUTHENTICATION_REQUIRED", 511),
];

/// Parses an `HttpStatus` as a number (`401`) or a Spring name (`UNAUTHORIZED`, `found`).
pub fn parse_http_status(text: &str) -> Result<u16, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u16>() {
        return if (100..=999).contains(&n) { Ok(n) } else { Err(format!("status out of range: {t}")) };
    }
    let name = t.to_ascii_uppercase().replace('-', "_");
    STATUS_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| format!("unknown HTTP status {t:?} (a number or a name like NOT_FOUND)"))
}

fn parse_series(text: &str) -> Result<StatusSeries, String> {
    Ok(match text.trim().to_ascii_uppercase().replace('-', "_").as_str() {
        "INFORMATIONAL" | "1" | "1XX" => StatusSeries::Informational,
        "SUCCESSFUL" | "2" | "2XX" => StatusSeries::Successful,
        "REDIRECTION" | "3" | "3XX" => StatusSeries::Redirection,
        "CLIENT_ERROR" | "4" | "4XX" => StatusSeries::ClientError,
        "SERVER_ERROR" | "5" | "5XX" => StatusSeries::ServerError,
        _ => {
            return Err(format!(
                "unknown status series {text:?} (INFORMATIONAL, SUCCESSFUL, REDIRECTION, CLIENT_ERROR, SERVER_ERROR)"
            ))
        }
    })
}

fn parse_method(text: &str) -> Result<http::Method, String> {
    let t = text.trim().to_ascii_uppercase();
    http::Method::from_bytes(t.as_bytes()).map_err(|_| format!("not an HTTP method: {text:?}"))
}

/// Parses a `RemoteAddr` source: an address (exact match) or a CIDR.
fn parse_source(text: &str) -> Result<IpNet, String> {
    let t = text.trim().trim_matches('"').trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n);
    }
    t.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("not an IP address or CIDR: {text:?}"))
}

/// Compiles `re` so that it must match a whole value, as Java's `String.matches` does.
pub fn full_match_regex(re: &str) -> Result<regex::Regex, String> {
    compile_regex(&format!("^(?:{re})$")).map_err(|e| explain_regex_error(re, &e))
}

/// Compiles `re` for find/replace use (Java `replaceAll`).
pub fn search_regex(re: &str) -> Result<regex::Regex, String> {
    compile_regex(re).map_err(|e| explain_regex_error(re, &e))
}

fn compile_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(re).size_limit(1 << 20).build()
}

fn explain_regex_error(re: &str, e: &regex::Error) -> String {
    if ["(?=", "(?!", "(?<=", "(?<!"].iter().any(|la| re.contains(la)) {
        format!("regex {re:?} uses look-around, which TiGateway's regex engine does not support; rewrite it without (?=, (?!, (?<= or (?<!")
    } else if re.contains("(?>") || re.contains("*+") || re.contains("++") || re.contains("?+") {
        format!("regex {re:?} uses atomic groups or possessive quantifiers, which are not supported")
    } else {
        let first = e.to_string();
        let last = first.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        format!("bad regex {re:?}: {last}")
    }
}

/// Turns a Java `Matcher.replaceAll` replacement (`$1`, `${name}`, `\$` escapes) into the `regex`
/// crate's syntax for `re`, refusing references to groups `re` does not have (Java would fail at
/// request time).
pub fn java_replacement(re: &regex::Regex, replacement: &str) -> Result<String, String> {
    let group_count = re.captures_len() - 1;
    let mut out = String::with_capacity(replacement.len() + 8);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(n) => out.push(n),
                None => return Err(format!("replacement {replacement:?} ends with a lone backslash")),
            },
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) if ch.is_ascii_alphanumeric() => name.push(ch),
                            _ => return Err(format!("replacement {replacement:?}: unterminated or bad ${{name}}")),
                        }
                    }
                    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                        return Err(format!("replacement {replacement:?}: group name {name:?} must start with a letter"));
                    }
                    if !re.capture_names().any(|n| n == Some(name.as_str())) {
                        return Err(format!("replacement {replacement:?} refers to group {name:?}, which the regex does not define"));
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some(d) if d.is_ascii_digit() => {
                    let mut num = d.to_digit(10).unwrap_or(0) as usize;
                    chars.next();
                    // Java takes more digits only while they still name an existing group.
                    while let Some(n) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let next = num * 10 + n as usize;
                        if next > group_count {
                            break;
                        }
                        num = next;
                        chars.next();
                    }
                    if num > group_count {
                        return Err(format!("replacement {replacement:?} refers to group {num}, but the regex has {group_count}"));
                    }
                    out.push_str(&format!("${{{num}}}"));
                }
                _ => return Err(format!("replacement {replacement:?}: '$' must be followed by a group number or {{name}} (write \\$ for a literal $)")),
            },
            other => out.push(other),
        }
    }
    Ok(out)
}

fn check_header_name(args: &Args, name: &str) -> Result<(), String> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| args.err(format!("not a valid header name: {name:?}")))
}

fn check_header_value(args: &Args, value: &str) -> Result<(), String> {
    http::HeaderValue::from_str(value).map(|_| ()).map_err(|_| args.err(format!("not a valid header value: {value:?}")))
}

// ---------------------------------------------------------------------------------------------
// Predicates

/// Parses one predicate definition (shortcut or expanded form) into its typed form.
pub fn parse_predicate(d: &Definition) -> Result<Predicate, String> {
    let p = |fields: &[&str], sc: Shortcut| Args::new(d, "predicate", fields, sc);
    let name = d.name.as_str();
    Ok(match name {
        "After" | "Before" => {
            let a = p(&["datetime"], Shortcut::Default)?;
            a.only(&["datetime"])?;
            let t = parse_zoned_date_time(&a.req_str("datetime")?).map_err(|e| a.err(e))?;
            if name == "After" {
                Predicate::After(t)
            } else {
                Predicate::Before(t)
            }
        }
        "Between" => {
            let a = p(&["datetime1", "datetime2"], Shortcut::Default)?;
            a.only(&["datetime1", "datetime2"])?;
            let t1 = parse_zoned_date_time(&a.req_str("datetime1")?).map_err(|e| a.err(e))?;
            let t2 = parse_zoned_date_time(&a.req_str("datetime2")?).map_err(|e| a.err(e))?;
            if t2 <= t1 {
                return Err(a.err("datetime2 must be after datetime1"));
            }
            Predicate::Between(t1, t2)
        }
        "Cookie" => {
            let a = p(&["name", "regexp"], Shortcut::Default)?;
            a.only(&["name", "regexp"])?;
            let regexp = a.req_str("regexp")?;
            full_match_regex(&regexp).map_err(|e| a.err(e))?;
            Predicate::Cookie { name: a.req_str("name")?, regexp }
        }
        "Header" => {
            let a = p(&["header", "regexp"], Shortcut::Default)?;
            a.only(&["header", "regexp"])?;
            let header = a.req_str("header")?;
            check_header_name(&a, &header)?;
            let regexp = a.opt_str("regexp")?.filter(|r| !r.trim().is_empty());
            if let Some(r) = &regexp {
                full_match_regex(r).map_err(|e| a.err(e))?;
            }
            Predicate::Header { header, regexp }
        }
        "Host" => {
            let a = p(&["patterns"], Shortcut::GatherList)?;
            a.only(&["patterns"])?;
            let patterns = a.list("patterns");
            if patterns.is_empty() {
                return Err(a.err("needs at least one host pattern"));
            }
            Predicate::Host { patterns }
        }
        "Method" => {
            let a = p(&["methods"], Shortcut::GatherList)?;
            a.only(&["methods"])?;
            let methods = a.parsed_list("methods", parse_method, "method")?;
            Predicate::Method { methods }
        }
        "Path" => {
            let mut a = p(&["patterns", "matchTrailingSlash"], Shortcut::GatherListTailFlag)?;
            a.alias("pattern", "patterns");
            a.alias("matchOptionalTrailingSeparator", "matchTrailingSlash");
            a.only(&["patterns", "matchTrailingSlash"])?;
            let patterns = a.list("patterns");
            if patterns.is_empty() {
                return Err(a.err("needs at least one path pattern"));
            }
            if let Some(bad) = patterns.iter().find(|p| !p.starts_with('/') && p.as_str() != "**") {
                return Err(a.err(format!("path pattern {bad:?} must start with '/'")));
            }
            Predicate::Path { patterns, match_trailing_slash: a.opt_bool("matchTrailingSlash")?.unwrap_or(true) }
        }
        "Query" => {
            let a = p(&["param", "regexp"], Shortcut::Default)?;
            a.only(&["param", "regexp"])?;
            let regexp = a.opt_str("regexp")?.filter(|r| !r.trim().is_empty());
            if let Some(r) = &regexp {
                full_match_regex(r).map_err(|e| a.err(e))?;
            }
            Predicate::Query { param: a.req_str("param")?, regexp }
        }
        "RemoteAddr" => {
            let a = p(&["sources"], Shortcut::GatherList)?;
            a.only(&["sources"])?;
            let sources = a.parsed_list("sources", parse_source, "source address")?;
            Predicate::RemoteAddr { sources }
        }
        "XForwardedRemoteAddr" => {
            let a = p(&["sources"], Shortcut::GatherList)?;
            a.only(&["sources", "maxTrustedIndex"])?;
            let sources = a.parsed_list("sources", parse_source, "source address")?;
            let idx = a.opt_int("maxTrustedIndex")?.unwrap_or(1);
            if idx <= 0 {
                return Err(a.err(format!("maxTrustedIndex must be greater than 0, got {idx}")));
            }
            Predicate::XForwardedRemoteAddr { sources, max_trusted_index: idx.min(u32::MAX as i64) as u32 }
        }
        "Weight" => {
            let mut a = p(&["weight.group", "weight.weight"], Shortcut::Default)?;
            // Expanded form: SCG binds under the `weight.` prefix, plain names are accepted too.
            if !a.has("weight.group") {
                a.alias("group", "weight.group");
                if let Some(v) = a.map.get("weight").filter(|v| !v.is_object()).cloned() {
                    a.map.remove("weight");
                    a.map.insert("weight.weight".into(), v);
                }
            }
            a.only(&["weight.group", "weight.weight"])?;
            let group = a.req_str("weight.group")?;
            let weight = a.opt_int("weight.weight")?.ok_or_else(|| a.err("missing argument \"weight\""))?;
            if !(0..=u32::MAX as i64).contains(&weight) {
                return Err(a.err(format!("weight must be 0 or more, got {weight}")));
            }
            Predicate::Weight { group, weight: weight as u32 }
        }
        n if UNSUPPORTED_PREDICATES.contains(&n) => {
            return Err(format!("predicate {n:?} is not supported by TiGateway"));
        }
        n => return Err(format!("unknown predicate {n:?}")),
    })
}

// ---------------------------------------------------------------------------------------------
// Filters

fn name_value(d: &Definition) -> Result<(Args, String, String), String> {
    let a = Args::new(d, "filter", &["name", "value"], Shortcut::Default)?;
    a.only(&["name", "value"])?;
    let name = a.req_str("name")?;
    let value = a.opt_str("value")?.ok_or_else(|| a.err("missing argument \"value\""))?;
    Ok((a, name, value))
}

fn header_name_value(d: &Definition) -> Result<(String, String), String> {
    let (a, name, value) = name_value(d)?;
    check_header_name(&a, &name)?;
    check_header_value(&a, &value)?;
    Ok((name, value))
}

fn single(d: &Definition, field: &str) -> Result<(Args, String), String> {
    let a = Args::new(d, "filter", &[field], Shortcut::Default)?;
    a.only(&[field])?;
    let v = a.req_str(field)?;
    Ok((a, v))
}

/// Parses one filter definition (shortcut or expanded form) into its typed form.
pub fn parse_filter(d: &Definition) -> Result<Filter, String> {
    let name = d.name.as_str();
    Ok(match name {
        "AddRequestHeader" => {
            let (name, value) = header_name_value(d)?;
            Filter::AddRequestHeader { name, value }
        }
        "AddResponseHeader" => {
            let a = Args::new(d, "filter", &["name", "value", "override"], Shortcut::Default)?;
            a.only(&["name", "value", "override"])?;
            let name = a.req_str("name")?;
            let value = a.opt_str("value")?.ok_or_else(|| a.err("missing argument \"value\""))?;
            check_header_name(&a, &name)?;
            check_header_value(&a, &value)?;
            Filter::AddResponseHeader { name, value, override_existing: a.opt_bool("override")?.unwrap_or(true) }
        }
        "SetRequestHeader" => {
            let (name, value) = header_name_value(d)?;
            Filter::SetRequestHeader { name, value }
        }
        "SetResponseHeader" => {
            let (name, value) = header_name_value(d)?;
            Filter::SetResponseHeader { name, value }
        }
        "AddRequestParameter" => {
            let (_, name, value) = name_value(d)?;
            Filter::AddRequestParameter { name, value }
        }
        "AddRequestHeadersIfNotPresent" => {
            let a = Args::new(d, "filter", &["keyValues"], Shortcut::GatherList)?;
            a.only(&["keyValues"])?;
            let mut pairs = Vec::new();
            let raw = match a.get("keyValues") {
                Some(Value::Array(items)) => items.clone(),
                Some(v @ Value::String(_)) => vec![v.clone()],
                _ => Vec::new(),
            };
            for item in raw {
                let (k, v) = match &item {
                    Value::String(s) => {
                        let (k, v) =
                            s.split_once(':').ok_or_else(|| a.err(format!("expected name:value, got {s:?}")))?;
                        (k.trim().to_string(), v.trim().to_string())
                    }
                    Value::Object(o) => {
                        let get = |n: &str| o.iter().find(|(k, _)| relaxed(k) == n).map(|(_, v)| scalar_string(v));
                        match (get("key").or_else(|| get("name")), get("value")) {
                            (Some(k), Some(v)) => (k, v),
                            _ => return Err(a.err(format!("expected {{key, value}}, got {item}"))),
                        }
                    }
                    other => return Err(a.err(format!("expected name:value, got {other}"))),
                };
                check_header_name(&a, &k)?;
                check_header_value(&a, &v)?;
                pairs.push((k, v));
            }
            if pairs.is_empty() {
                return Err(a.err("needs at least one name:value pair"));
            }
            Filter::AddRequestHeadersIfNotPresent(pairs)
        }
        "DedupeResponseHeader" => {
            let a = Args::new(d, "filter", &["name", "strategy"], Shortcut::Default)?;
            a.only(&["name", "strategy"])?;
            let names: Vec<String> =
                a.req_str("name")?.split(' ').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
            for n in &names {
                check_header_name(&a, n)?;
            }
            let strategy = match a.opt_str("strategy")?.map(|s| s.trim().to_ascii_uppercase().replace('-', "_")) {
                None => DedupeStrategy::RetainFirst,
                Some(s) => match s.as_str() {
                    "RETAIN_FIRST" => DedupeStrategy::RetainFirst,
                    "RETAIN_LAST" => DedupeStrategy::RetainLast,
                    "RETAIN_UNIQUE" => DedupeStrategy::RetainUnique,
                    _ => {
                        return Err(a.err(format!("unknown strategy {s:?} (RETAIN_FIRST, RETAIN_LAST, RETAIN_UNIQUE)")))
                    }
                },
            };
            Filter::DedupeResponseHeader { names, strategy }
        }
        "MapRequestHeader" => {
            let a = Args::new(d, "filter", &["fromHeader", "toHeader"], Shortcut::Default)?;
            a.only(&["fromHeader", "toHeader"])?;
            let (from_header, to_header) = (a.req_str("fromHeader")?, a.req_str("toHeader")?);
            check_header_name(&a, &from_header)?;
            check_header_name(&a, &to_header)?;
            Filter::MapRequestHeader { from_header, to_header }
        }
        "PrefixPath" => {
            let (a, prefix) = single(d, "prefix")?;
            if !prefix.starts_with('/') {
                return Err(a.err(format!("prefix {prefix:?} must start with '/'")));
            }
            Filter::PrefixPath { prefix }
        }
        "PreserveHostHeader" => {
            let a = Args::new(d, "filter", &[], Shortcut::Default)?;
            a.only(&[])?;
            Filter::PreserveHostHeader
        }
        "RedirectTo" => {
            let a = Args::new(d, "filter", &["status", "url", "includeRequestParams"], Shortcut::Default)?;
            a.only(&["status", "url", "includeRequestParams"])?;
            let status = parse_http_status(&a.req_str("status")?).map_err(|e| a.err(e))?;
            if !(300..400).contains(&status) {
                return Err(a.err(format!("status must be a 3xx code, but was {status}")));
            }
            let url = a.req_str("url")?;
            if url.parse::<http::Uri>().is_err() {
                return Err(a.err(format!("not a valid URL: {url:?}")));
            }
            Filter::RedirectTo {
                status,
                url,
                include_request_params: a.opt_bool("includeRequestParams")?.unwrap_or(false),
            }
        }
        "RemoveRequestHeader" | "RemoveResponseHeader" => {
            let (a, name) = single(d, "name")?;
            check_header_name(&a, &name)?;
            if d.name == "RemoveRequestHeader" {
                Filter::RemoveRequestHeader { name }
            } else {
                Filter::RemoveResponseHeader { name }
            }
        }
        "RemoveRequestParameter" => Filter::RemoveRequestParameter { name: single(d, "name")?.1 },
        "RequestHeaderSize" => {
            let a = Args::new(d, "filter", &["maxSize", "errorHeaderName"], Shortcut::Default)?;
            a.only(&["maxSize", "errorHeaderName"])?;
            let max_size = match a.opt_str("maxSize")? {
                Some(s) => parse_data_size(&s).map_err(|e| a.err(e))?,
                None => DEFAULT_REQUEST_HEADER_SIZE,
            };
            let error_header_name =
                a.opt_str("errorHeaderName")?.filter(|s| !s.is_empty()).unwrap_or_else(|| "errorMessage".into());
            check_header_name(&a, &error_header_name)?;
            Filter::RequestHeaderSize { max_size, error_header_name }
        }
        "RequestSize" => {
            let a = Args::new(d, "filter", &["maxSize"], Shortcut::Default)?;
            a.only(&["maxSize"])?;
            let max_size = match a.opt_str("maxSize")? {
                Some(s) => parse_data_size(&s).map_err(|e| a.err(e))?,
                None => DEFAULT_REQUEST_SIZE,
            };
            if max_size == 0 {
                return Err(a.err("maxSize must be greater than 0"));
            }
            Filter::RequestSize { max_size }
        }
        "Retry" => Filter::Retry(parse_retry(d)?),
        "RewriteLocationResponseHeader" => {
            let fields = ["stripVersion", "locationHeaderName", "hostValue", "protocols"];
            let mut a = Args::new(d, "filter", &fields, Shortcut::Default)?;
            a.alias("stripVersionMode", "stripVersion");
            a.alias("protocolsRegex", "protocols");
            a.only(&fields)?;
            let strip_version =
                match a.opt_str("stripVersion")?.map(|s| s.trim().to_ascii_uppercase().replace('-', "_")) {
                    None => StripVersion::AsInRequest,
                    Some(s) => match s.as_str() {
                        "" | "AS_IN_REQUEST" => StripVersion::AsInRequest,
                        "NEVER_STRIP" => StripVersion::NeverStrip,
                        "ALWAYS_STRIP" => StripVersion::AlwaysStrip,
                        _ => {
                            return Err(
                                a.err(format!("unknown stripVersion {s:?} (NEVER_STRIP, AS_IN_REQUEST, ALWAYS_STRIP)"))
                            )
                        }
                    },
                };
            let location_header_name =
                a.opt_str("locationHeaderName")?.filter(|s| !s.is_empty()).unwrap_or_else(|| "Location".into());
            check_header_name(&a, &location_header_name)?;
            let host_value = a.opt_str("hostValue")?.filter(|s| !s.is_empty());
            let protocols =
                a.opt_str("protocols")?.filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_LOCATION_PROTOCOLS.into());
            full_match_regex(&protocols).map_err(|e| a.err(e))?;
            Filter::RewriteLocationResponseHeader { strip_version, location_header_name, host_value, protocols }
        }
        "RewritePath" => {
            let a = Args::new(d, "filter", &["regexp", "replacement"], Shortcut::Default)?;
            a.only(&["regexp", "replacement"])?;
            let regexp = a.req_str("regexp")?;
            let replacement =
                a.opt_str("replacement")?.ok_or_else(|| a.err("missing argument \"replacement\""))?.replace("$\\", "$");
            let re = search_regex(&regexp).map_err(|e| a.err(e))?;
            java_replacement(&re, &replacement).map_err(|e| a.err(e))?;
            Filter::RewritePath { regexp, replacement }
        }
        "RewriteResponseHeader" => {
            let a = Args::new(d, "filter", &["name", "regexp", "replacement"], Shortcut::Default)?;
            a.only(&["name", "regexp", "replacement"])?;
            let name = a.req_str("name")?;
            check_header_name(&a, &name)?;
            let regexp = a.req_str("regexp")?;
            let replacement =
                a.opt_str("replacement")?.ok_or_else(|| a.err("missing argument \"replacement\""))?.replace("$\\", "$");
            let re = search_regex(&regexp).map_err(|e| a.err(e))?;
            java_replacement(&re, &replacement).map_err(|e| a.err(e))?;
            Filter::RewriteResponseHeader { name, regexp, replacement }
        }
        "SecureHeaders" => parse_secure_headers(d)?,
        "SetPath" => Filter::SetPath { template: single(d, "template")?.1 },
        "SetRequestHostHeader" => Filter::SetRequestHostHeader { host: single(d, "host")?.1 },
        "SetStatus" => {
            let (a, s) = single(d, "status")?;
            Filter::SetStatus { status: parse_http_status(&s).map_err(|e| a.err(e))? }
        }
        "StripPrefix" => {
            let a = Args::new(d, "filter", &["parts"], Shortcut::Default)?;
            a.only(&["parts"])?;
            let parts = a.opt_int("parts")?.unwrap_or(1);
            if parts < 0 {
                return Err(a.err(format!("parts must be 0 or more, got {parts}")));
            }
            Filter::StripPrefix { parts: parts as usize }
        }
        n if UNSUPPORTED_FILTERS.contains(&n) => return Err(format!("filter {n:?} is not supported by TiGateway")),
        n => return Err(format!("unknown filter {n:?}")),
    })
}

fn parse_retry(d: &Definition) -> Result<RetryConfig, String> {
    let fields = [
        "retries",
        "statuses",
        "methods",
        "backoff.firstBackoff",
        "backoff.maxBackoff",
        "backoff.factor",
        "backoff.basedOnPreviousValue",
        "jitter.randomFactor",
        "timeout",
    ];
    let a = Args::new(d, "filter", &fields, Shortcut::Default)?;
    let mut allowed = fields.to_vec();
    allowed.extend(["series", "exceptions"]);
    a.only(&allowed)?;
    let retries = a.opt_int("retries")?.unwrap_or(3);
    if retries <= 0 {
        return Err(a.err("retries must be greater than 0"));
    }
    let statuses =
        a.list("statuses").iter().map(|s| parse_http_status(s)).collect::<Result<Vec<_>, _>>().map_err(|e| a.err(e))?;
    let series = if a.get("series").is_some() {
        a.list("series").iter().map(|s| parse_series(s)).collect::<Result<Vec<_>, _>>().map_err(|e| a.err(e))?
    } else {
        vec![StatusSeries::ServerError]
    };
    let methods = if a.get("methods").is_some() {
        a.list("methods").iter().map(|m| parse_method(m)).collect::<Result<Vec<_>, _>>().map_err(|e| a.err(e))?
    } else {
        vec![http::Method::GET]
    };
    if methods.is_empty() {
        return Err(a.err("methods may not be empty"));
    }
    let exceptions = if a.get("exceptions").is_some() {
        a.list("exceptions")
    } else {
        vec!["java.io.IOException".into(), "java.util.concurrent.TimeoutException".into()]
    };
    if series.is_empty() && statuses.is_empty() && exceptions.is_empty() {
        return Err(a.err("series, statuses and exceptions may not all be empty"));
    }
    let dur = |k: &str| -> Result<Option<Duration>, String> {
        a.opt_str(k)?
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_duration(&s).map_err(|e| a.err(format!("{k}: {e}"))))
            .transpose()
    };
    let backoff = if a.has("backoff") || a.has("backoff.firstBackoff") {
        let factor = a.opt_int("backoff.factor")?.unwrap_or(2);
        if factor < 1 {
            return Err(a.err("backoff.factor must be 1 or more"));
        }
        Some(RetryBackoff {
            first_backoff: dur("backoff.firstBackoff")?.unwrap_or(Duration::from_millis(5)),
            max_backoff: dur("backoff.maxBackoff")?,
            factor: factor.min(u32::MAX as i64) as u32,
            based_on_previous_value: a.opt_bool("backoff.basedOnPreviousValue")?.unwrap_or(true),
        })
    } else {
        None
    };
    let jitter = if a.has("jitter") || a.has("jitter.randomFactor") {
        let f = match a.opt_str("jitter.randomFactor")? {
            None => 0.5,
            Some(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| a.err(format!("jitter.randomFactor must be a number, got {s:?}")))?,
        };
        if !(0.0..=1.0).contains(&f) {
            return Err(a.err("jitter.randomFactor must be between 0 and 1"));
        }
        Some(f)
    } else {
        None
    };
    Ok(RetryConfig {
        retries: retries.min(u32::MAX as i64) as u32,
        statuses,
        series,
        methods,
        exceptions,
        backoff,
        jitter,
        timeout: dur("timeout")?,
    })
}

/// Per-route value arguments of SecureHeaders and the header each one sets.
const SECURE_HEADER_VALUE_ARGS: &[(&str, &str)] = &[
    ("xssProtectionHeaderValue", "X-Xss-Protection"),
    ("strictTransportSecurityHeaderValue", "Strict-Transport-Security"),
    ("frameOptionsHeaderValue", "X-Frame-Options"),
    ("contentTypeOptionsHeaderValue", "X-Content-Type-Options"),
    ("referrerPolicyHeaderValue", "Referrer-Policy"),
    ("contentSecurityPolicyHeaderValue", "Content-Security-Policy"),
    ("downloadOptionsHeaderValue", "X-Download-Options"),
    ("permittedCrossDomainPoliciesHeaderValue", "X-Permitted-Cross-Domain-Policies"),
    ("permissionPolicyHeaderValue", "Permissions-Policy"),
];

fn parse_secure_headers(d: &Definition) -> Result<Filter, String> {
    let a = Args::new(d, "filter", &[], Shortcut::Default)?;
    let mut allowed = vec!["disable", "enable", "permissionsPolicy"];
    allowed.extend(SECURE_HEADER_VALUE_ARGS.iter().map(|(k, _)| *k));
    a.only(&allowed)?;
    let disable: Vec<String> = a.list("disable").iter().map(|s| s.to_ascii_lowercase()).collect();
    let enable: Vec<String> = a.list("enable").iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut headers = Vec::new();
    let all = SECURE_HEADER_DEFAULTS.iter().copied().chain([("Permissions-Policy", PERMISSIONS_POLICY_DEFAULT)]);
    for (name, default) in all {
        let lower = name.to_ascii_lowercase();
        let on_by_default = name != "Permissions-Policy";
        let on = (on_by_default || enable.contains(&lower)) && !disable.contains(&lower);
        if !on {
            continue;
        }
        let mut value = default.to_string();
        for (arg, header) in SECURE_HEADER_VALUE_ARGS {
            if *header == name {
                if let Some(v) = a.opt_str(arg)? {
                    value = v;
                }
            }
        }
        if name == "Permissions-Policy" {
            if let Some(v) = a.opt_str("permissionsPolicy")? {
                value = v;
            }
        }
        check_header_value(&a, &value)?;
        headers.push((name.to_string(), value));
    }
    Ok(Filter::SecureHeaders { headers })
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteUri {
    /// `lb://service`: a named service from discovery.
    Lb(String),
    /// A fixed upstream; the authority has its port filled in.
    Url { scheme: Scheme, authority: String },
    /// SCG's `no://op`: no upstream; the gateway answers itself (200 with an empty body unless a
    /// filter such as RedirectTo or SetStatus decides otherwise).
    NoOp,
}

/// Parses a route `uri`. SCG ignores any path or query on the route uri (the request's path is
/// forwarded), so they are dropped here rather than refused.
pub fn parse_route_uri(uri: &str) -> Result<RouteUri, String> {
    let u = uri.trim();
    if u.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(rest) = u.strip_prefix("lb://").or_else(|| u.strip_prefix("LB://")) {
        let name = rest.split(['/', '?', '#']).next().unwrap_or("");
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(format!("expected lb://service-name, got {u:?}"));
        }
        return Ok(RouteUri::Lb(name.to_string()));
    }
    if u.eq_ignore_ascii_case("no://op") {
        return Ok(RouteUri::NoOp);
    }
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!("expected lb://service or http(s)://host[:port], got {u:?}"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (scheme, authority) = parse_upstream_url(&format!("{scheme}://{authority}"))?;
    Ok(RouteUri::Url { scheme, authority })
}

/// Route metadata timeout in milliseconds (`response-timeout`, `connect-timeout`): a number or a
/// numeric string, as SCG reads it.
pub fn metadata_millis(meta: &serde_json::Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    let Some(v) = meta.get(key) else { return Ok(None) };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("not a number of milliseconds: {n}")),
        Value::String(s) => {
            s.trim().parse::<i64>().map(Some).map_err(|_| format!("not a number of milliseconds: {s:?}"))
        }
        other => Err(format!("not a number of milliseconds: {other}")),
    }
}

/// Checks one route's uri, predicates, filters and timeouts, pushing every problem with its path.
pub fn validate_route(route: &RouteDefinition, path: &str, errs: &mut Vec<ValidationError>) {
    if let Err(e) = parse_route_uri(&route.uri) {
        errs.push(ValidationError::new(format!("{path}.uri"), e));
    }
    for (i, d) in route.predicates.iter().enumerate() {
        if let Err(e) = parse_predicate(d) {
            errs.push(ValidationError::new(format!("{path}.predicates[{i}]"), e));
        }
    }
    for (i, d) in route.filters.iter().enumerate() {
        if let Err(e) = parse_filter(d) {
            errs.push(ValidationError::new(format!("{path}.filters[{i}]"), e));
        }
    }
    // A negative response-timeout is SCG's way to switch the global timeout off for the route.
    if let Err(e) = metadata_millis(&route.metadata, "response-timeout") {
        errs.push(ValidationError::new(format!("{path}.metadata.response-timeout"), e));
    }
    match metadata_millis(&route.metadata, "connect-timeout") {
        Err(e) => errs.push(ValidationError::new(format!("{path}.metadata.connect-timeout"), e)),
        Ok(Some(ms)) if ms < 0 => errs.push(ValidationError::new(
            format!("{path}.metadata.connect-timeout"),
            format!("must not be negative, got {ms}"),
        )),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sc(text: &str) -> Definition {
        Definition::parse_shortcut(text).unwrap()
    }

    fn ex(name: &str, args: Value) -> Definition {
        Definition { name: name.into(), args: args.as_object().cloned().unwrap_or_default() }
    }

    fn pred(text: &str) -> Predicate {
        parse_predicate(&sc(text)).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn filt(text: &str) -> Filter {
        parse_filter(&sc(text)).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn time_predicates_use_the_offset() {
        let Predicate::After(t) = pred("After=2017-01-20T17:42:47.789-07:00[America/Denver]") else { panic!() };
        assert_eq!(t.timestamp_millis(), 1_484_959_367_789);
        let Predicate::Before(t) = pred("Before=1484959367789") else { panic!() };
        assert_eq!(t.timestamp_millis(), 1_484_959_367_789);
        let Predicate::Between(a, b) = pred("Between=2017-01-20T17:42:47.789-07:00[America/Denver], 2017-01-21T17:42Z")
        else {
            panic!()
        };
        assert!(a < b);
        let e = parse_predicate(&sc("Between=2017-01-21T00:00:00Z, 2017-01-20T00:00:00Z")).unwrap_err();
        assert!(e.contains("datetime2 must be after datetime1"), "{e}");
        assert!(parse_predicate(&sc("After=yesterday")).unwrap_err().contains("date-time"));
        let t = parse_predicate(&ex("After", json!({"datetime": "2020-01-01T00:00:00+01:00"}))).unwrap();
        assert_eq!(t, Predicate::After(parse_zoned_date_time("2019-12-31T23:00:00Z").unwrap()));
    }

    #[test]
    fn cookie_header_query_forms() {
        assert_eq!(
            pred("Cookie=chocolate, ch.p"),
            Predicate::Cookie { name: "chocolate".into(), regexp: "ch.p".into() }
        );
        assert_eq!(
            pred(r"Header=X-Request-Id, \d+"),
            Predicate::Header { header: "X-Request-Id".into(), regexp: Some(r"\d+".into()) }
        );
        assert_eq!(pred("Header=X-Any"), Predicate::Header { header: "X-Any".into(), regexp: None });
        assert_eq!(
            parse_predicate(&ex("Query", json!({"param": "green"}))).unwrap(),
            Predicate::Query { param: "green".into(), regexp: None }
        );
        assert_eq!(pred("Query=red, gree."), Predicate::Query { param: "red".into(), regexp: Some("gree.".into()) });
        assert!(parse_predicate(&sc("Cookie=a")).unwrap_err().contains("missing argument \"regexp\""));
        let e = parse_predicate(&sc("Header=X, (?=a)b")).unwrap_err();
        assert!(e.contains("look-around"), "{e}");
        let e = parse_predicate(&sc("Header=X, (a")).unwrap_err();
        assert!(e.contains("bad regex"), "{e}");
    }

    #[test]
    fn list_predicates_gather_all_shortcut_args() {
        assert_eq!(
            pred("Host=**.somehost.org,**.anotherhost.org"),
            Predicate::Host { patterns: vec!["**.somehost.org".into(), "**.anotherhost.org".into()] }
        );
        assert_eq!(pred("Method=GET,post"), Predicate::Method { methods: vec![http::Method::GET, http::Method::POST] });
        assert_eq!(
            parse_predicate(&ex("Method", json!({"methods": "GET,PUT"}))).unwrap(),
            Predicate::Method { methods: vec![http::Method::GET, http::Method::PUT] }
        );
        let Predicate::RemoteAddr { sources } = pred("RemoteAddr=192.168.1.1/24, 10.0.0.7, ::1") else { panic!() };
        assert_eq!(sources.len(), 3);
        assert!(sources[1].contains(&"10.0.0.7".parse::<IpAddr>().unwrap()));
        assert!(!sources[1].contains(&"10.0.0.8".parse::<IpAddr>().unwrap()));
        assert!(parse_predicate(&sc("RemoteAddr=10.0.0.300")).is_err());
        let Predicate::XForwardedRemoteAddr { sources, max_trusted_index } =
            pred(r#"XForwardedRemoteAddr="20.103.252.85", "2a01:111:2050::/44""#)
        else {
            panic!()
        };
        assert_eq!((sources.len(), max_trusted_index), (2, 1));
        let p = parse_predicate(&ex("XForwardedRemoteAddr", json!({"sources": ["10.0.0.0/8"], "maxTrustedIndex": 2})))
            .unwrap();
        assert_eq!(
            p,
            Predicate::XForwardedRemoteAddr { sources: vec!["10.0.0.0/8".parse().unwrap()], max_trusted_index: 2 }
        );
        let e = parse_predicate(&ex("XForwardedRemoteAddr", json!({"sources": "10.0.0.1", "maxTrustedIndex": 0})))
            .unwrap_err();
        assert!(e.contains("maxTrustedIndex"), "{e}");
    }

    #[test]
    fn path_shortcut_expanded_and_indexed() {
        let want = Predicate::Path { patterns: vec!["/a/**".into(), "/b/**".into()], match_trailing_slash: true };
        assert_eq!(pred("Path=/a/**,/b/**"), want);
        assert_eq!(parse_predicate(&ex("Path", json!({"patterns": ["/a/**", "/b/**"]}))).unwrap(), want);
        assert_eq!(parse_predicate(&ex("Path", json!({"patterns.0": "/a/**", "patterns.1": "/b/**"}))).unwrap(), want);
        assert_eq!(
            parse_predicate(&ex("Path", json!({"patterns[1]": "/b/**", "patterns[0]": "/a/**"}))).unwrap(),
            want
        );
        assert_eq!(
            pred("Path=/red/{segment},false"),
            Predicate::Path { patterns: vec!["/red/{segment}".into()], match_trailing_slash: false }
        );
        assert_eq!(
            parse_predicate(&ex("Path", json!({"pattern": "/x", "match-trailing-slash": false}))).unwrap(),
            Predicate::Path { patterns: vec!["/x".into()], match_trailing_slash: false }
        );
        let e = parse_predicate(&ex("Path", json!({"pattens": "/x"}))).unwrap_err();
        assert!(e.contains("unknown argument \"pattens\""), "{e}");
        assert!(parse_predicate(&sc("Path=api/**")).unwrap_err().contains("must start with '/'"));
    }

    #[test]
    fn weight_forms() {
        let want = Predicate::Weight { group: "group1".into(), weight: 8 };
        assert_eq!(pred("Weight=group1, 8"), want);
        assert_eq!(parse_predicate(&ex("Weight", json!({"group": "group1", "weight": 8}))).unwrap(), want);
        assert_eq!(
            parse_predicate(&ex("Weight", json!({"weight.group": "group1", "weight.weight": "8"}))).unwrap(),
            want
        );
        assert!(parse_predicate(&sc("Weight=g, -1")).unwrap_err().contains("weight must be 0 or more"));
        assert_eq!(pred("Weight=g, 1, 2"), Predicate::Weight { group: "g".into(), weight: 1 });
    }

    #[test]
    fn unknown_and_unsupported_names() {
        assert_eq!(parse_predicate(&sc("Pathh=/a")).unwrap_err(), r#"unknown predicate "Pathh""#);
        assert_eq!(parse_filter(&sc("StripPrefixx=1")).unwrap_err(), r#"unknown filter "StripPrefixx""#);
        assert!(parse_filter(&sc("CircuitBreaker=x")).unwrap_err().contains("not supported"));
    }

    #[test]
    fn header_filters() {
        assert_eq!(
            filt("AddRequestHeader=X-Request-red, blue"),
            Filter::AddRequestHeader { name: "X-Request-red".into(), value: "blue".into() }
        );
        assert_eq!(
            filt("SetResponseHeader=foo, bar-{segment}"),
            Filter::SetResponseHeader { name: "foo".into(), value: "bar-{segment}".into() }
        );
        assert_eq!(
            parse_filter(&ex("AddResponseHeader", json!({"name": "X-A", "value": 1}))).unwrap(),
            Filter::AddResponseHeader { name: "X-A".into(), value: "1".into(), override_existing: true }
        );
        assert_eq!(
            filt("AddResponseHeader=X-A, 1, false"),
            Filter::AddResponseHeader { name: "X-A".into(), value: "1".into(), override_existing: false }
        );
        assert_eq!(filt("SetRequestHeader=X-A, v"), Filter::SetRequestHeader { name: "X-A".into(), value: "v".into() });
        assert_eq!(
            filt("AddRequestParameter=red, blue"),
            Filter::AddRequestParameter { name: "red".into(), value: "blue".into() }
        );
        assert!(parse_filter(&sc("AddRequestHeader=Bad Name, v")).unwrap_err().contains("not a valid header name"));
        assert_eq!(
            filt("AddRequestHeadersIfNotPresent=X-Request-Color-1:blue,X-Request-Color-2:green"),
            Filter::AddRequestHeadersIfNotPresent(vec![
                ("X-Request-Color-1".into(), "blue".into()),
                ("X-Request-Color-2".into(), "green".into())
            ])
        );
        assert_eq!(
            parse_filter(&ex("AddRequestHeadersIfNotPresent", json!({"keyValues": [{"key": "X-A", "value": "1"}]})))
                .unwrap(),
            Filter::AddRequestHeadersIfNotPresent(vec![("X-A".into(), "1".into())])
        );
        assert_eq!(
            filt("MapRequestHeader=Blue, X-Request-Red"),
            Filter::MapRequestHeader { from_header: "Blue".into(), to_header: "X-Request-Red".into() }
        );
        assert_eq!(filt("RemoveRequestHeader=X-A"), Filter::RemoveRequestHeader { name: "X-A".into() });
        assert_eq!(filt("RemoveResponseHeader=X-A"), Filter::RemoveResponseHeader { name: "X-A".into() });
        assert_eq!(filt("RemoveRequestParameter=red"), Filter::RemoveRequestParameter { name: "red".into() });
        assert_eq!(
            filt("SetRequestHostHeader=example.org"),
            Filter::SetRequestHostHeader { host: "example.org".into() }
        );
        assert_eq!(filt("PreserveHostHeader"), Filter::PreserveHostHeader);
    }

    #[test]
    fn dedupe_forms() {
        assert_eq!(
            filt("DedupeResponseHeader=Access-Control-Allow-Credentials Access-Control-Allow-Origin, RETAIN_UNIQUE"),
            Filter::DedupeResponseHeader {
                names: vec!["Access-Control-Allow-Credentials".into(), "Access-Control-Allow-Origin".into()],
                strategy: DedupeStrategy::RetainUnique
            }
        );
        assert_eq!(
            filt("DedupeResponseHeader=X-A"),
            Filter::DedupeResponseHeader { names: vec!["X-A".into()], strategy: DedupeStrategy::RetainFirst }
        );
        assert!(parse_filter(&sc("DedupeResponseHeader=X-A, KEEP_ALL")).unwrap_err().contains("unknown strategy"));
    }

    #[test]
    fn path_filters() {
        assert_eq!(filt("StripPrefix=2"), Filter::StripPrefix { parts: 2 });
        assert_eq!(parse_filter(&ex("StripPrefix", json!({}))).unwrap(), Filter::StripPrefix { parts: 1 });
        assert!(parse_filter(&sc("StripPrefix=two")).unwrap_err().contains("integer"));
        assert_eq!(filt("PrefixPath=/mypath"), Filter::PrefixPath { prefix: "/mypath".into() });
        assert_eq!(filt("SetPath=/{segment}"), Filter::SetPath { template: "/{segment}".into() });
        assert_eq!(
            filt(r"RewritePath=/red/?(?<segment>.*), /$\{segment}"),
            Filter::RewritePath { regexp: "/red/?(?<segment>.*)".into(), replacement: "/${segment}".into() }
        );
        let e = parse_filter(&sc("RewritePath=/red/(.*), /${nope}")).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        assert!(parse_filter(&sc("RewritePath=/red/(.*), /$2")).unwrap_err().contains("group 2"));
    }

    #[test]
    fn java_replacement_syntax() {
        let re = search_regex("(?<a>x)(y)").unwrap();
        assert_eq!(java_replacement(&re, "${a}-$2-\\$-$20").unwrap(), "${a}-${2}-$$-${2}0");
        assert!(java_replacement(&re, "$x").is_err());
        assert!(java_replacement(&re, "tail\\").is_err());
        let many = search_regex("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)").unwrap();
        assert_eq!(java_replacement(&many, "$11").unwrap(), "${11}");
        assert_eq!("abcdefghijk".len(), 11);
        assert_eq!(many.replace("abcdefghijk", "${11}"), "k");
    }

    #[test]
    fn redirect_status_and_sizes() {
        assert_eq!(
            filt("RedirectTo=302, https://acme.org"),
            Filter::RedirectTo { status: 302, url: "https://acme.org".into(), include_request_params: false }
        );
        assert_eq!(
            filt("RedirectTo=FOUND, https://acme.org, true"),
            Filter::RedirectTo { status: 302, url: "https://acme.org".into(), include_request_params: true }
        );
        assert!(parse_filter(&sc("RedirectTo=200, https://acme.org")).unwrap_err().contains("3xx"));
        assert_eq!(filt("SetStatus=UNAUTHORIZED"), Filter::SetStatus { status: 401 });
        assert_eq!(filt("SetStatus=401"), Filter::SetStatus { status: 401 });
        assert!(parse_filter(&sc("SetStatus=NOPE")).is_err());
        assert_eq!(
            filt("RequestHeaderSize=1000B"),
            Filter::RequestHeaderSize { max_size: 1000, error_header_name: "errorMessage".into() }
        );
        assert_eq!(
            parse_filter(&ex("RequestHeaderSize", json!({"maxSize": "10KB", "errorHeaderName": "X-Err"}))).unwrap(),
            Filter::RequestHeaderSize { max_size: 10 * 1024, error_header_name: "X-Err".into() }
        );
        assert_eq!(
            parse_filter(&ex("RequestSize", json!({"maxSize": 5000000}))).unwrap(),
            Filter::RequestSize { max_size: 5_000_000 }
        );
        assert_eq!(filt("RequestSize=5MB"), Filter::RequestSize { max_size: 5 * 1024 * 1024 });
        assert_eq!(filt("RequestSize"), Filter::RequestSize { max_size: DEFAULT_REQUEST_SIZE });
        assert!(parse_filter(&sc("RequestSize=5XB")).unwrap_err().contains("unit"));
    }

    #[test]
    fn retry_shortcut_and_expanded() {
        let Filter::Retry(r) = filt("Retry=3,INTERNAL_SERVER_ERROR,GET,10ms,50ms,2,false") else { panic!() };
        assert_eq!(r.retries, 3);
        assert_eq!(r.statuses, vec![500]);
        assert_eq!(r.series, vec![StatusSeries::ServerError]);
        assert_eq!(r.methods, vec![http::Method::GET]);
        let b = r.backoff.clone().unwrap();
        assert_eq!(
            (b.first_backoff, b.max_backoff, b.factor, b.based_on_previous_value),
            (Duration::from_millis(10), Some(Duration::from_millis(50)), 2, false)
        );
        assert_eq!(
            (b.delay(1), b.delay(2), b.delay(3), b.delay(4)),
            (
                Duration::from_millis(10),
                Duration::from_millis(20),
                Duration::from_millis(40),
                Duration::from_millis(50)
            )
        );
        assert!(r.retry_on_io_error() && r.retry_on_timeout());

        let d = ex(
            "Retry",
            json!({"retries": 2, "statuses": "BAD_GATEWAY", "series": [], "methods": "GET,POST",
                   "exceptions": ["java.io.IOException"],
                   "backoff": {"firstBackoff": "10ms", "maxBackoff": "50ms", "factor": 2, "basedOnPreviousValue": false}}),
        );
        let Filter::Retry(r) = parse_filter(&d).unwrap() else { panic!() };
        assert_eq!((r.retries, r.statuses.clone(), r.series.len()), (2, vec![502], 0));
        assert!(r.retry_on_status(502) && !r.retry_on_status(500));
        assert_eq!(r.methods, vec![http::Method::GET, http::Method::POST]);
        assert!(r.retry_on_io_error() && !r.retry_on_timeout());
        assert_eq!(r.backoff.unwrap().first_backoff, Duration::from_millis(10));

        let Filter::Retry(r) = parse_filter(&ex("Retry", json!({}))).unwrap() else { panic!() };
        assert!(r.retry_on_status(503) && !r.retry_on_status(404) && r.backoff.is_none());
        assert!(parse_filter(&ex("Retry", json!({"retries": 0}))).unwrap_err().contains("retries"));
        assert!(parse_filter(&ex("Retry", json!({"backoff": {"firstBackoff": "soon"}}))).is_err());
    }

    #[test]
    fn rewrite_location_and_response_header() {
        assert_eq!(
            filt("RewriteLocationResponseHeader=AS_IN_REQUEST, Location, ,"),
            Filter::RewriteLocationResponseHeader {
                strip_version: StripVersion::AsInRequest,
                location_header_name: "Location".into(),
                host_value: None,
                protocols: DEFAULT_LOCATION_PROTOCOLS.into()
            }
        );
        assert_eq!(
            parse_filter(&ex(
                "RewriteLocationResponseHeader",
                json!({"stripVersionMode": "ALWAYS_STRIP", "hostValue": "example-api.com", "protocolsRegex": "https"})
            ))
            .unwrap(),
            Filter::RewriteLocationResponseHeader {
                strip_version: StripVersion::AlwaysStrip,
                location_header_name: "Location".into(),
                host_value: Some("example-api.com".into()),
                protocols: "https".into()
            }
        );
        let want = Filter::RewriteResponseHeader {
            name: "X-Response-Red".into(),
            regexp: "password=[^&]+".into(),
            replacement: "password=***".into(),
        };
        assert_eq!(filt("RewriteResponseHeader=X-Response-Red, , password=[^&]+, password=***"), want);
        assert_eq!(filt("RewriteResponseHeader=X-Response-Red, password=[^&]+, password=***"), want);
    }

    #[test]
    fn secure_headers_defaults_disable_enable() {
        let Filter::SecureHeaders { headers } = filt("SecureHeaders") else { panic!() };
        assert_eq!(headers.len(), 8);
        assert!(headers.contains(&("X-Frame-Options".into(), "DENY".into())));
        assert!(!headers.iter().any(|(n, _)| n == "Permissions-Policy"));
        let d = ex(
            "SecureHeaders",
            json!({"disable": ["x-frame-options", "Strict-Transport-Security"], "enable": "permissions-policy", "permissionsPolicy": "camera=()"}),
        );
        let Filter::SecureHeaders { headers } = parse_filter(&d).unwrap() else { panic!() };
        assert_eq!(headers.len(), 7);
        assert!(!headers.iter().any(|(n, _)| n == "X-Frame-Options" || n == "Strict-Transport-Security"));
        assert!(headers.contains(&("Permissions-Policy".into(), "camera=()".into())));
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_data_size("5000").unwrap(), 5000);
        assert_eq!(parse_data_size("10KB").unwrap(), 10240);
        assert_eq!(parse_data_size(" 1mb ").unwrap(), 1 << 20);
        assert!(parse_data_size("-1").is_err());
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("PT1.5S").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("PT1M").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("PT").is_err());
        assert_eq!(parse_http_status("bad-gateway").unwrap(), 502);
        assert!(StatusSeries::ServerError.contains(503) && !StatusSeries::ServerError.contains(404));
    }

    #[test]
    fn route_uri_forms() {
        assert_eq!(parse_route_uri("lb://user-service").unwrap(), RouteUri::Lb("user-service".into()));
        assert_eq!(
            parse_route_uri("http://localhost:8080/upload").unwrap(),
            RouteUri::Url { scheme: Scheme::Http, authority: "localhost:8080".into() }
        );
        assert_eq!(
            parse_route_uri("https://example.org").unwrap(),
            RouteUri::Url { scheme: Scheme::Https, authority: "example.org:443".into() }
        );
        assert_eq!(parse_route_uri("ws://h:1").unwrap(), RouteUri::Url { scheme: Scheme::Ws, authority: "h:1".into() });
        assert!(parse_route_uri("ftp://x").is_err());
        assert!(parse_route_uri("lb://").is_err());
        assert!(parse_route_uri("example.org").is_err());
    }

    #[test]
    fn validate_route_reports_paths() {
        let route: RouteDefinition = serde_json::from_value(json!({
            "id": "r", "uri": "gopher://x",
            "predicates": ["Path=/a/**", "Pathh=/b", {"name": "Header", "args": {"header": "X", "regexp": "(?<=a)b"}}],
            "filters": ["StripPrefix=1", "StripPrefixx=1"],
            "metadata": {"response-timeout": -1, "connect-timeout": "soon"}
        }))
        .unwrap();
        let mut errs = Vec::new();
        validate_route(&route, "routes[3]", &mut errs);
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 5, "{text:?}");
        assert!(text[0].starts_with("routes[3].uri: unsupported scheme"), "{text:?}");
        assert_eq!(text[1], r#"routes[3].predicates[1]: unknown predicate "Pathh""#);
        assert!(text[2].starts_with("routes[3].predicates[2]: predicate \"Header\": regex"), "{text:?}");
        assert_eq!(text[3], r#"routes[3].filters[1]: unknown filter "StripPrefixx""#);
        assert!(text[4].starts_with("routes[3].metadata.connect-timeout"), "{text:?}");

        let ok: RouteDefinition = serde_json::from_value(json!({
            "uri": "lb://user-service", "predicates": ["Path=/api/users/**"], "filters": ["StripPrefix=2"],
            "metadata": {"response-timeout": 200, "connect-timeout": "200"}
        }))
        .unwrap();
        let mut errs = Vec::new();
        validate_route(&ok, "routes[0]", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }
}
