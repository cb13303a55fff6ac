//! One request's path: harden → load snapshot → build context → plugin chain → forward → response
//! phases.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use smallvec::SmallVec;
use tigateway_observe::LineDraft;

use crate::body::{read_bounded, ProxyBody};
use crate::context::{Ctx, Matched};
use crate::error::{not_found, ErrorKind, GatewayError};
use crate::forward::forward;
use crate::forwarded::{client_ip, is_trusted, remove_hop_by_hop};
use crate::normalize::normalize_path;
use crate::observe::{Observed, Terminal};
use crate::plugins::Flow;
use crate::pool::Pool;
use crate::snapshot::{ChainEntry, Snapshot, SnapshotStore};
use crate::trace::RequestTrace;

/// Per worker thread state.
pub struct Worker {
    pub store: Arc<SnapshotStore>,
    pub pool: Arc<Pool>,
}

/// Per connection facts.
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub peer_value: HeaderValue,
    pub tls: bool,
    /// Ordinal of the HTTP/1.1 request on this connection that carried both Content-Length and
    /// Transfer-Encoding (0: none), as seen by the framing sniffer.
    pub framing_conflict: Arc<AtomicU64>,
    /// Requests seen on this connection.
    pub requests: AtomicU64,
}

/// Largest body buffered for `post` conditions.
const MATCH_BODY_LIMIT: u64 = 1024 * 1024;

pub async fn handle(
    req: Request<Incoming>,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = std::time::Instant::now();
    let snap = worker.store.load_full();
    let method = req.method().clone();
    let mut obs = Observed {
        bytes_in: req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..Observed::default()
    };
    // The access-log record starts with what the request head says, only when the log is on.
    if snap.access_log.is_some() {
        let arrived = tigateway_observe::wall_clock(started);
        obs.log = Some(LineDraft::start(arrived, req.method(), req.uri().path(), req.uri().query()));
    }
    let mut trace = RequestTrace::begin(&req);
    let mut resp = match serve(req, &worker, &conn, &snap, &mut obs, &mut trace).await {
        Ok(r) => r,
        Err(e) => {
            if e.kind.status().is_server_error() {
                tracing::warn!(status = e.kind.status().as_u16(), error = %e.message, "request failed");
            }
            e.into_response()
        }
    };
    let span = trace.finish(&mut resp);
    if obs.client_ip.is_none() {
        obs.client_ip = Some(conn.peer.ip());
    }
    crate::observe::finish(&snap, &mut resp, obs, &method, started, span);
    Ok(resp)
}

fn check_framing(req: &Request<Incoming>, conn: &ConnInfo) -> Result<(), GatewayError> {
    let h = req.headers();
    let ordinal = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if req.version() == Version::HTTP_11 && conn.framing_conflict.load(Ordering::Relaxed) == ordinal {
        return Err(GatewayError::new(ErrorKind::BadRequest, "both Content-Length and Transfer-Encoding").closing());
    }
    if req.version() == Version::HTTP_11 {
        match h.get_all(header::HOST).iter().count() {
            0 => return Err(GatewayError::new(ErrorKind::BadRequest, "HTTP/1.1 request without Host").closing()),
            1 => {}
            _ => return Err(GatewayError::new(ErrorKind::BadRequest, "more than one Host header").closing()),
        }
    }
    if h.contains_key(header::TRANSFER_ENCODING) && h.contains_key(header::CONTENT_LENGTH) {
        return Err(GatewayError::new(ErrorKind::BadRequest, "both Content-Length and Transfer-Encoding").closing());
    }
    let mut cl: Option<&[u8]> = None;
    for v in h.get_all(header::CONTENT_LENGTH) {
        let b = v.as_bytes();
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || cl.is_some_and(|prev| prev != b) {
            return Err(GatewayError::new(ErrorKind::BadRequest, "invalid Content-Length").closing());
        }
        cl = Some(b);
    }
    Ok(())
}

fn host_of(req: &Request<Incoming>) -> (String, Option<HeaderValue>) {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_string));
    let header = match req.headers().get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => raw.as_deref().and_then(|r| HeaderValue::from_str(r).ok()),
    };
    let host = raw
        .map(|r| {
            let h = if r.starts_with('[') {
                r.split(']').next().map(|s| format!("{s}]")).unwrap_or(r.clone())
            } else {
                r.split(':').next().unwrap_or("").to_string()
            };
            h.to_ascii_lowercase()
        })
        .unwrap_or_default();
    (host, header)
}

async fn serve(
    mut req: Request<Incoming>,
    worker: &Worker,
    conn: &ConnInfo,
    snap: &Snapshot,
    obs: &mut Observed,
    trace: &mut RequestTrace,
) -> Result<Response<ProxyBody>, GatewayError> {
    check_framing(&req, conn)?;
    let limits = &snap.limits;
    let target_len = req.uri().path_and_query().map(|p| p.as_str().len()).unwrap_or(0);
    if target_len > limits.max_uri_bytes {
        return Err(GatewayError::new(ErrorKind::UriTooLong, "request target too long").closing());
    }
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes > limits.max_header_bytes {
        return Err(GatewayError::new(ErrorKind::HeaderTooLarge, "request header fields too large").closing());
    }
    let path = normalize_path(req.uri().path(), limits.allow_encoded_slash)
        .map_err(|e| GatewayError::new(ErrorKind::BadRequest, e.message()))?
        .into_owned();

    let is_upgrade = req.version() == Version::HTTP_11
        && req.headers().get(header::UPGRADE).is_some()
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let on_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut req));

    let (host, host_header) = host_of(&req);
    let (parts, mut body) = req.into_parts();
    let mut headers = parts.headers;
    remove_hop_by_hop(&mut headers, is_upgrade);
    let peer_trusted = !snap.trusted_proxies.is_empty() && is_trusted(conn.peer.ip(), &snap.trusted_proxies);
    let client = client_ip(conn.peer.ip(), &headers, &snap.trusted_proxies);
    let mut ctx = Ctx {
        method: parts.method,
        version: parts.version,
        headers,
        path,
        query: parts.uri.query().map(str::to_string),
        upstream_path: None,
        host,
        host_header,
        client_ip: client,
        peer: conn.peer,
        peer_value: conn.peer_value.clone(),
        peer_trusted,
        tls: conn.tls,
        body: None,
        preserve_host: false,
        upstream_host: None,
        is_upgrade,
        response_plugins: SmallVec::new(),
        request_id: HeaderValue::from_static(""),
        trace_id: None,
        upstream: None,
        upstream_time: None,
        retries: 0,
    };
    trace.attach(&mut ctx);
    obs.client_ip = Some(ctx.client_ip);
    if let Some(log) = &mut obs.log {
        // The id the request carries from here on (the client's, or the one generated for it).
        let id = Some(ctx.request_id.as_bytes()).filter(|v| !v.is_empty());
        log.request(ctx.trace_id.map(|t| u128::from_be_bytes(t.to_bytes())), id);
    }

    if snap.needs_body && !hyper::body::Body::is_end_stream(&body) {
        let limit = MATCH_BODY_LIMIT.min(limits.max_body_bytes);
        match read_bounded(&mut body, limit).await {
            Ok(b) => {
                obs.bytes_in = b.len() as u64;
                ctx.body = Some(b)
            }
            Err(true) => {
                return Err(
                    GatewayError::new(ErrorKind::PayloadTooLarge, "request body larger than the limit").closing()
                )
            }
            Err(false) => {
                return Err(GatewayError::new(ErrorKind::BadRequest, "could not read the request body").closing())
            }
        }
    }

    for (idx, entry) in snap.chain.iter().enumerate() {
        let Some(matched) = select(entry, &ctx) else { continue };
        match entry.plugin.on_request(&mut ctx, matched.as_ref()) {
            Flow::Continue => {
                if entry.plugin.has_response_phase() {
                    ctx.response_plugins.push((idx as u16, matched));
                }
            }
            Flow::Respond(resp) => {
                trace.chose(entry, matched.as_ref(), None);
                obs.terminal = terminal(idx, matched.as_ref(), None);
                register_later_response_phases(snap, &mut ctx, idx);
                let (mut parts, b) = resp.into_parts();
                run_response_phases(snap, &ctx, &mut parts.status, &mut parts.headers);
                return Ok(Response::from_parts(parts, b));
            }
            Flow::Proxy(plan) => {
                obs.terminal = terminal(idx, matched.as_ref(), plan.route.as_ref().map(|r| r.route.position));
                register_later_response_phases(snap, &mut ctx, idx);
                trace.chose(entry, matched.as_ref(), plan.route.as_ref().map(|r| r.route.id.as_str()));
                let result = forward(worker, snap, &mut ctx, &plan, body, on_upgrade).await;
                obs.upstream = ctx.upstream.clone();
                obs.upstream_time = ctx.upstream_time;
                obs.retries = ctx.retries;
                let mut resp = match result {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                trace.upstream(&ctx);
                let (mut parts, b) = resp.into_parts();
                if let Some(route) = &plan.route {
                    let info = ctx.response_info();
                    route.route.apply_response(route, &mut parts.status, &mut parts.headers, &info);
                }
                run_response_phases(snap, &ctx, &mut parts.status, &mut parts.headers);
                resp = Response::from_parts(parts, b);
                return Ok(resp);
            }
        }
    }
    Ok(not_found(snap.shenyu_errors))
}

fn terminal(entry: usize, matched: Option<&Matched>, route: Option<usize>) -> Terminal {
    match (matched, route) {
        (_, Some(position)) => Terminal::Route { position: position as u32 },
        (Some(m), None) => Terminal::Selector { entry: entry as u16, m: *m },
        (None, None) => Terminal::Plugin { entry: entry as u16 },
    }
}

/// What a plugin's selector table chose: None when the plugin does not apply to this request,
/// Some(None) for plugins without a table (they decide by themselves).
fn select(entry: &ChainEntry, ctx: &Ctx) -> Option<Option<Matched>> {
    match &entry.table {
        Some(table) => match table.select(&ctx.view()) {
            tigateway_matcher::select::SelectOutcome::Matched { selector, rule } => {
                Some(Some(Matched { selector, rule }))
            }
            _ => None,
        },
        None => Some(None),
    }
}

/// Plugins ordered after the one that ended the chain (ShenYu's `modifyResponse` at 220 runs after
/// `divide` at 200) still get their response phase when their selector matches.
fn register_later_response_phases(snap: &Snapshot, ctx: &mut Ctx, terminal: usize) {
    for (idx, entry) in snap.chain.iter().enumerate().skip(terminal + 1) {
        if !entry.plugin.has_response_phase() {
            continue;
        }
        let Some(matched) = select(entry, ctx) else { continue };
        ctx.response_plugins.push((idx as u16, matched));
    }
}

fn run_response_phases(snap: &Snapshot, ctx: &Ctx, status: &mut StatusCode, h: &mut http::HeaderMap) {
    for (idx, m) in &ctx.response_plugins {
        snap.chain[*idx as usize].plugin.on_response(m.as_ref(), status, h);
    }
}
