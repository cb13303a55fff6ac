//! What config says about one upstream of a set, in one shape whatever the feed.

use tigateway_model::handle::DivideUpstream;
use tigateway_model::{parse_upstream_url, DiscoveryUpstream, Scheme};

/// Weight used when a feed leaves it out. ShenYu's admin fills in 50; Java's `int` default would be 0,
/// which makes a hand-written upstream without a weight silently unreachable next to weighted ones.
pub const DEFAULT_WEIGHT: u32 = 50;

/// Warm-up used when a ShenYu feed leaves it out (ShenYu's gateway default, see the semantics notes:
/// effectively none, but kept so a given `timestamp` behaves the same).
pub const DEFAULT_WARMUP_MS: u64 = 10;

/// One member of an upstream set as configured. Per-set facts (weight, warm-up, gray) live here, not
/// in [`crate::Peer`], because two sets may share an address with different weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub scheme: Scheme,
    /// `host:port`, port always present.
    pub authority: String,
    pub weight: u32,
    pub warmup_ms: u64,
    /// Unix ms when the instance came up; `None` means "long ago" (no warm-up).
    pub started_at_ms: Option<i64>,
    pub enabled: bool,
    pub gray: bool,
}

impl UpstreamSpec {
    /// An enabled, non-gray upstream without warm-up from `http://h:p`, `h2c://h:p`, bare `h:p`, ….
    pub fn from_url(url: &str, weight: u32) -> Result<Self, String> {
        let (scheme, authority) = parse_upstream_url(url)?;
        Ok(UpstreamSpec { scheme, authority, weight, warmup_ms: 0, started_at_ms: None, enabled: true, gray: false })
    }

    /// From a divide selector handle entry (ShenYu < 2.6 and hand-written files).
    pub fn from_divide(u: &DivideUpstream) -> Result<Self, String> {
        let url = join_protocol(u.protocol.as_deref(), &u.upstream_url);
        let (scheme, authority) = parse_upstream_url(&url)?;
        Ok(UpstreamSpec {
            scheme,
            authority,
            weight: u.weight.map(clamp_weight).unwrap_or(DEFAULT_WEIGHT),
            warmup_ms: u.warmup.map(|w| w.max(0) as u64).unwrap_or(DEFAULT_WARMUP_MS),
            started_at_ms: u.timestamp.filter(|t| *t > 0),
            enabled: u.status,
            gray: u.gray,
        })
    }

    /// From a ShenYu 2.6+ DISCOVER_UPSTREAM entry. ShenYu's gateway reads the warm-up from
    /// `props.warmup` while its admin writes `props.warmupTime`, so ShenYu ends up with the 10 ms
    /// default; both keys are honoured here. `status` 0 (or absent) means up.
    pub fn from_discovery(u: &DiscoveryUpstream) -> Result<Self, String> {
        let url = join_protocol(u.protocol.as_deref(), &u.url);
        let (scheme, authority) = parse_upstream_url(&url)?;
        let props = u
            .props
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .unwrap_or(serde_json::Value::Null);
        let warmup_ms =
            ["warmup", "warmupTime"].iter().find_map(|k| props.get(*k).and_then(json_u64)).unwrap_or(DEFAULT_WARMUP_MS);
        let gray = props.get("gray").and_then(json_bool).unwrap_or(false);
        Ok(UpstreamSpec {
            scheme,
            authority,
            weight: u.weight.map(clamp_weight).unwrap_or(DEFAULT_WEIGHT),
            warmup_ms,
            started_at_ms: u.date_created.as_ref().and_then(json_time_ms),
            enabled: u.status.unwrap_or(0) == 0,
            gray,
        })
    }

    /// `scheme://authority`, the key a [`crate::Peer`] is shared under.
    pub fn key(&self) -> String {
        format!("{}://{}", scheme_str(self.scheme), self.authority)
    }
}

/// The URL scheme as written in a peer key.
pub fn scheme_str(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
        Scheme::H2c => "h2c",
        Scheme::Ws => "ws",
        Scheme::Wss => "wss",
    }
}

/// ShenYu keeps protocol (`http://`, sometimes `http`) and `host:port` apart; hand-written files often
/// put a whole URL in the address, which then wins.
fn join_protocol(protocol: Option<&str>, url: &str) -> String {
    let url = url.trim();
    if url.contains("://") {
        return url.to_string();
    }
    let p = protocol.map(str::trim).unwrap_or("");
    let p = p.strip_suffix("://").unwrap_or(p);
    let p = if p.is_empty() { "http" } else { p };
    format!("{p}://{url}")
}

fn clamp_weight(w: i64) -> u32 {
    w.clamp(0, u32::MAX as i64) as u32
}

fn json_u64(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_bool(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// ShenYu's `dateCreated` arrives as epoch ms or as a `yyyy-MM-dd HH:mm:ss[.f]` string in the admin's
/// local time (taken as this host's local time), depending on the serializer; RFC 3339 is accepted too.
fn json_time_ms(v: &serde_json::Value) -> Option<i64> {
    let ms = match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                Some(n)
            } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                Some(t.timestamp_millis())
            } else {
                ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                    .iter()
                    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
                    .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
                    .map(|t| t.timestamp_millis())
            }
        }
        _ => None,
    };
    ms.filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url_fills_defaults() {
        let s = UpstreamSpec::from_url("10.0.0.1:8080", 3).unwrap();
        assert_eq!(s.scheme, Scheme::Http);
        assert_eq!(s.authority, "10.0.0.1:8080");
        assert_eq!(s.weight, 3);
        assert!(s.enabled && !s.gray);
        assert_eq!(s.key(), "http://10.0.0.1:8080");
        assert_eq!(UpstreamSpec::from_url("https://a.example", 1).unwrap().key(), "https://a.example:443");
        assert!(UpstreamSpec::from_url("ftp://x:1", 1).is_err());
        assert!(UpstreamSpec::from_url("http://x:1/path", 1).is_err());
    }

    #[test]
    fn from_divide_protocol_and_defaults() {
        let u: DivideUpstream =
            serde_json::from_str(r#"{"upstreamUrl":"127.0.0.1:9000","weight":"7","timestamp":1000,"warmup":60000}"#)
                .unwrap();
        let s = UpstreamSpec::from_divide(&u).unwrap();
        assert_eq!(s.key(), "http://127.0.0.1:9000");
        assert_eq!((s.weight, s.warmup_ms, s.started_at_ms), (7, 60_000, Some(1000)));
        assert!(s.enabled);

        let u: DivideUpstream =
            serde_json::from_str(r#"{"protocol":"https://","upstreamUrl":"h:8443","status":false,"gray":true}"#)
                .unwrap();
        let s = UpstreamSpec::from_divide(&u).unwrap();
        assert_eq!(s.key(), "https://h:8443");
        assert_eq!((s.weight, s.warmup_ms, s.started_at_ms), (DEFAULT_WEIGHT, DEFAULT_WARMUP_MS, None));
        assert!(!s.enabled && s.gray);

        let u: DivideUpstream = serde_json::from_str(r#"{"protocol":"h2c","url":"h:1","weight":-5}"#).unwrap();
        let s = UpstreamSpec::from_divide(&u).unwrap();
        assert_eq!((s.scheme, s.weight), (Scheme::H2c, 0));

        // A full URL in the address wins over the protocol field.
        let u: DivideUpstream = serde_json::from_str(r#"{"protocol":"http://","upstreamUrl":"ws://h:1"}"#).unwrap();
        assert_eq!(UpstreamSpec::from_divide(&u).unwrap().scheme, Scheme::Ws);
    }

    #[test]
    fn from_discovery_status_props_and_date() {
        let u: DiscoveryUpstream = serde_json::from_str(
            r#"{"protocol":"","url":"10.1.1.1:80","status":0,"weight":5,"props":"{\"warmupTime\":\"60000\",\"gray\":\"true\"}","dateCreated":1700000000000}"#,
        )
        .unwrap();
        let s = UpstreamSpec::from_discovery(&u).unwrap();
        assert_eq!(s.key(), "http://10.1.1.1:80");
        assert_eq!((s.weight, s.warmup_ms, s.started_at_ms), (5, 60_000, Some(1_700_000_000_000)));
        assert!(s.enabled && s.gray);

        let u: DiscoveryUpstream = serde_json::from_str(
            r#"{"protocol":"https://","url":"x:1","status":1,"props":"{\"warmup\":20}","dateCreated":"2024-01-02 03:04:05"}"#,
        )
        .unwrap();
        let s = UpstreamSpec::from_discovery(&u).unwrap();
        assert_eq!(s.scheme, Scheme::Https);
        assert_eq!(s.warmup_ms, 20);
        assert!(!s.enabled);
        let expected = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap()
            .and_local_timezone(chrono::Local)
            .earliest()
            .unwrap()
            .timestamp_millis();
        assert_eq!(s.started_at_ms, Some(expected));

        let u: DiscoveryUpstream = serde_json::from_str(r#"{"url":"x:1","props":"not json"}"#).unwrap();
        let s = UpstreamSpec::from_discovery(&u).unwrap();
        assert_eq!((s.warmup_ms, s.started_at_ms, s.enabled), (DEFAULT_WARMUP_MS, None, true));

        let u: DiscoveryUpstream =
            serde_json::from_str(r#"{"url":"x:1","dateCreated":"2024-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(UpstreamSpec::from_discovery(&u).unwrap().started_at_ms, Some(1_704_164_645_000));
    }
}
