//! Extractors that answer in the API's error format: JSON bodies, query strings, the caller.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use tigateway_auth::AuthError;

use super::error::ApiError;
use super::AppState;
use crate::identity::Principal;

/// A JSON body. Malformed JSON and values that do not fit the type (unknown fields included) →
/// 400; no JSON content type → 415; over the body limit → 413.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = match &rej {
        JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
        other => other.status(),
    };
    ApiError::new(status, rej.body_text())
}

/// A query string; anything that does not parse → 400.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::bad_request(rej.body_text())
}

/// The client's address: the connection's peer, or, when the peer is one of the configured
/// trusted proxies, the rightmost `X-Forwarded-For` entry that is not a trusted proxy (entries
/// further left are whatever the client wrote and prove nothing). Loopback when the router runs
/// without a connection (tests). Login throttling keys on this address.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(ClientIp(client_ip(peer, &parts.headers, &state.trusted_proxies)))
    }
}

/// See [`ClientIp`]. A malformed entry ends the walk at the last trusted hop, so a client cannot
/// hide behind garbage.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut current = peer;
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    for entry in hops.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Some(ip) = parse_hop(entry.trim()) else { return current };
        current = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    current
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// Who sends `Authorization: Bearer <session JWT or API token>`; 401 without a valid one.
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::InvalidToken.into());
    }
    Ok(state.identity.authenticate(token.trim()).await?)
}

/// The authenticated caller. The router's permission check has already authenticated it and left
/// the principal in the request; authenticating again is the fallback for a route without one.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Caller(p.clone()));
        }
        Ok(Caller(authenticate(state, &parts.headers).await?))
    }
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.0.username
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let h = |v: &[&str]| {
            let mut m = HeaderMap::new();
            for x in v {
                m.append("x-forwarded-for", x.parse().unwrap());
            }
            m
        };
        // An untrusted peer's header is ignored.
        assert_eq!(client_ip(ip("203.0.113.9"), &h(&["198.51.100.1"]), &trusted), ip("203.0.113.9"));
        // Behind one trusted proxy: the entry it appended.
        assert_eq!(client_ip(ip("10.0.0.2"), &h(&["198.51.100.1"]), &trusted), ip("198.51.100.1"));
        // A spoofed leftmost entry does not count; trusted hops are skipped from the right.
        assert_eq!(client_ip(ip("10.0.0.2"), &h(&["1.1.1.1, 198.51.100.1, 10.0.0.7"]), &trusted), ip("198.51.100.1"));
        // Several header lines are one list.
        assert_eq!(client_ip(ip("::1"), &h(&["1.1.1.1", "198.51.100.1:4000"]), &trusted), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("::1"), &h(&["[2001:db8::5]:443"]), &trusted), ip("2001:db8::5"));
        // Garbage stops the walk at the last trusted hop; no header: the peer.
        assert_eq!(client_ip(ip("10.0.0.2"), &h(&["1.1.1.1, junk"]), &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &h(&[]), &trusted), ip("10.0.0.2"));
        // Nothing trusted: the header never counts.
        assert_eq!(client_ip(ip("10.0.0.2"), &h(&["198.51.100.1"]), &[]), ip("10.0.0.2"));
    }
}
