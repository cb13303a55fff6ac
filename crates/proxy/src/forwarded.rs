//! Client address resolution and X-Forwarded-* / Forwarded (RFC 7239) headers, believing only
//! trusted proxies; and hop-by-hop header removal (RFC 9110 §7.6.1).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the right-most
/// untrusted address of X-Forwarded-For (else of Forwarded `for=`).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(s) = v.to_str() {
            chain.extend(s.split(',').filter_map(|p| p.trim().parse::<IpAddr>().ok()));
        }
    }
    if chain.is_empty() {
        for v in headers.get_all(&FORWARDED) {
            if let Ok(s) = v.to_str() {
                chain.extend(s.split(',').filter_map(forwarded_for));
            }
        }
    }
    let mut last = peer;
    for ip in chain.iter().rev() {
        let ip = canonical(*ip);
        last = ip;
        if !is_trusted(ip, trusted) {
            return ip;
        }
    }
    last
}

fn forwarded_for(element: &str) -> Option<IpAddr> {
    for pair in element.split(';') {
        let (k, v) = pair.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("for") {
            let v = v.trim().trim_matches('"');
            let v = v.strip_prefix('[').map(|r| r.split(']').next().unwrap_or(r)).unwrap_or(v);
            let v = if v.matches(':').count() == 1 { v.split(':').next().unwrap_or(v) } else { v };
            return v.parse().ok();
        }
    }
    None
}

/// The client connection's address as a header value, made once per connection.
pub fn peer_header_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&canonical(peer).to_string()).expect("an IP address is a valid header value")
}

/// Sets the forwarding headers for the upstream request. Values from an untrusted peer are replaced,
/// not extended, so a client cannot forge its address. RFC 7239 `Forwarded` is added only when
/// `add_forwarded` (most upstreams read X-Forwarded-*, and it costs a formatted header per request);
/// an untrusted client's own `Forwarded` is removed either way.
pub fn set_forwarding_headers(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_value: &HeaderValue,
    peer_trusted: bool,
    proto: &'static str,
    host: Option<&HeaderValue>,
    add_forwarded: bool,
) {
    let peer = canonical(peer);
    let prev = if peer_trusted {
        headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()).filter(|p| !p.trim().is_empty())
    } else {
        None
    };
    match prev.map(|p| format!("{p}, {}", peer_value.to_str().unwrap_or(""))) {
        Some(chain) => {
            if let Ok(v) = HeaderValue::from_str(&chain) {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
        }
        None => {
            headers.insert(X_FORWARDED_FOR.clone(), peer_value.clone());
        }
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    if !add_forwarded {
        if !peer_trusted {
            headers.remove(&FORWARDED);
        }
        return;
    }
    let peer_s = peer.to_string();
    let node = if peer.is_ipv6() { format!("\"[{peer_s}]\"") } else { peer_s };
    let mut element = format!("for={node};proto={proto}");
    if let Some(h) = host.and_then(|h| h.to_str().ok()) {
        element.push_str(";host=\"");
        element.push_str(h);
        element.push('"');
    }
    let value = match (peer_trusted, headers.get(&FORWARDED).and_then(|v| v.to_str().ok())) {
        (true, Some(prev)) if !prev.trim().is_empty() => format!("{prev}, {element}"),
        _ => element,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(FORWARDED.clone(), v);
    }
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers: the fixed set and every header named in `Connection`.
/// `keep_upgrade` keeps `Upgrade` for a protocol switch (websocket).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which hop-by-hop fields are there (most requests carry none,
    // most upstream responses only `connection`); only those are removed, each a hashed lookup.
    static HOP: [&HeaderName; 7] = [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ];
    let mut present = 0u8;
    for n in headers.keys() {
        if let Some(i) = HOP.iter().position(|h| *h == n) {
            present |= 1 << i;
        }
    }
    if keep_upgrade {
        present &= !(1 << 6);
    }
    if present == 0 {
        return;
    }
    if let Some(conn) = headers.get(header::CONNECTION) {
        if conn.as_bytes() != b"keep-alive" && conn.as_bytes() != b"close" {
            let named: Vec<HeaderName> = headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
                .filter(|n| !(keep_upgrade && n == header::UPGRADE))
                .collect();
            for n in named {
                headers.remove(n);
            }
        }
    }
    for (i, name) in HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_wins() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, "1.2.3.4".parse().unwrap());
        let peer: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn trusted_chain_walks_from_right() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, "1.2.3.4, 5.6.7.8, 10.0.0.2".parse().unwrap());
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &nets(&["10.0.0.0/8"])), "5.6.7.8".parse::<IpAddr>().unwrap());
        let mut f = HeaderMap::new();
        f.insert(&FORWARDED, "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"".parse().unwrap());
        assert_eq!(client_ip(peer, &f, &nets(&["10.0.0.0/8"])), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarding_headers_replace_for_untrusted() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, "6.6.6.6".parse().unwrap());
        h.insert(&X_FORWARDED_PROTO, "https".parse().unwrap());
        let p: IpAddr = "1.1.1.1".parse().unwrap();
        h.insert(&FORWARDED, "for=6.6.6.6".parse().unwrap());
        let mut h2 = h.clone();
        set_forwarding_headers(&mut h2, p, &peer_header_value(p), false, "http", None, false);
        assert!(!h2.contains_key(&FORWARDED), "an untrusted Forwarded header must not pass");
        let host = HeaderValue::from_static("gw.example");
        set_forwarding_headers(&mut h, p, &peer_header_value(p), false, "http", Some(&host), true);
        assert_eq!(h[&X_FORWARDED_FOR], "1.1.1.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "gw.example");
        assert_eq!(h[&FORWARDED], "for=1.1.1.1;proto=http;host=\"gw.example\"");
        let mut t = HeaderMap::new();
        t.insert(&X_FORWARDED_FOR, "6.6.6.6".parse().unwrap());
        let p: IpAddr = "10.0.0.1".parse().unwrap();
        set_forwarding_headers(&mut t, p, &peer_header_value(p), true, "http", None, false);
        assert_eq!(t[&X_FORWARDED_FOR], "6.6.6.6, 10.0.0.1");
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, X-Secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));

        // An upgrade keeps `upgrade` (and a field `connection` names as upgrade), drops the rest.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[header::UPGRADE], "websocket");

        // The usual upstream response: only `connection`, removed; nothing else touched.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        h.insert(header::CONTENT_LENGTH, "3".parse().unwrap());
        h.append(header::TRAILER, "x-a".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["content-length"]);

        let mut h = HeaderMap::new();
        h.insert(header::HOST, "a".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
    }
}
