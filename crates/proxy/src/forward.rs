//! Executes a [`ProxyPlan`]: pick an upstream, connect (pooled), send with timeouts, retry within the
//! budget, stream the answer back, and tunnel protocol upgrades.

use std::error::Error as _;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use smallvec::SmallVec;
use tigateway_upstream::{Outcome, Peer};
use tokio::io::AsyncWriteExt;

use crate::body::{BodyTooLarge, ProxyBody, ReqBody};
use crate::context::Ctx;
use crate::error::{ErrorKind, GatewayError};
use crate::forwarded::{remove_hop_by_hop, set_forwarding_headers};
use crate::h1::{self, GiveBack, SendError};
use crate::plugins::{HashKey, ProxyPlan};
use crate::pool::{ConnectError, Sender};
use crate::service::Worker;
use crate::snapshot::Snapshot;

fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

fn hash_bytes<'a>(ctx: &'a Ctx, key: &HashKey, ip_buf: &'a mut [u8; 16]) -> Option<&'a [u8]> {
    match key {
        HashKey::ClientIp => match ctx.client_ip {
            std::net::IpAddr::V4(v4) => {
                ip_buf[..4].copy_from_slice(&v4.octets());
                Some(&ip_buf[..4])
            }
            std::net::IpAddr::V6(v6) => {
                *ip_buf = v6.octets();
                Some(&ip_buf[..])
            }
        },
        HashKey::Header(h) => ctx.headers.get(h).map(|v| v.as_bytes()),
        HashKey::Cookie(name) => ctx
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes()),
    }
}

fn is_body_too_large(e: &hyper::Error) -> bool {
    let mut src = e.source();
    while let Some(s) = src {
        if s.is::<BodyTooLarge>() {
            return true;
        }
        src = s.source();
    }
    false
}

fn too_large() -> GatewayError {
    GatewayError::new(ErrorKind::PayloadTooLarge, "request body larger than the limit").closing()
}

fn replay_of(b: &ReqBody) -> Option<ReqBody> {
    match b {
        ReqBody::Full(f) => Some(ReqBody::Full(f.clone())),
        ReqBody::Empty => Some(ReqBody::Empty),
        ReqBody::Stream { .. } => None,
    }
}

/// How one attempt ended.
enum Attempt {
    Done(Response<ProxyBody>),
    /// The upstream answered with a status the route's Retry filter retries.
    RetryStatus(Response<ProxyBody>),
    /// Retry (on another upstream when possible); the error is what the client gets if none is left.
    Failed(GatewayError),
    /// A reused keep-alive connection was closed under us: resend without counting an attempt.
    Stale,
    Fatal(GatewayError),
}

/// Sends the request upstream and returns the upstream's response (status and headers still to be
/// filtered by the caller's response phases).
pub async fn forward(
    worker: &Worker,
    snap: &Snapshot,
    ctx: &mut Ctx,
    plan: &ProxyPlan<'_>,
    body: Incoming,
    on_upgrade: Option<OnUpgrade>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let max_body = plan.max_body.unwrap_or(snap.limits.max_body_bytes);
    let content_length =
        ctx.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|l| l > max_body) {
        return Err(too_large());
    }
    let mut req_body = Some(match ctx.body.take() {
        Some(b) => ReqBody::Full(http_body_util::Full::new(b)),
        None if hyper::body::Body::is_end_stream(&body) => ReqBody::Empty,
        None => ReqBody::Stream { body, seen: 0, limit: max_body },
    });
    // A route's Retry filter (SCG) decides which methods and outcomes are retried; without one,
    // idempotent requests are retried on timeouts and failures. Connect failures are retried for
    // every method: nothing reached the upstream. Only requests whose body can be sent again are
    // retried after sending (a streamed body is gone once sent).
    let policy = plan.route.as_ref().and_then(|r| r.route.retry.as_ref());
    let max_retries = policy.map(|p| p.retries).unwrap_or(plan.retries);
    let method_retryable = match policy {
        Some(p) => p.methods.contains(&ctx.method),
        None => idempotent(&ctx.method),
    };

    let proto = if ctx.tls { "https" } else { "http" };
    set_forwarding_headers(
        &mut ctx.headers,
        ctx.peer.ip(),
        &ctx.peer_value,
        ctx.peer_trusted,
        proto,
        ctx.host_header.as_ref(),
        snap.config.server.add_forwarded_header,
    );
    if ctx.is_upgrade {
        ctx.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let connect_timeout = plan.connect_timeout.unwrap_or(Duration::from_millis(snap.upstream.connect_timeout_ms));
    let mut ip_buf = [0u8; 16];
    // Only the hash balancer reads a key; the others need no copy of it.
    let hash_key: Option<SmallVec<[u8; 32]>> = if plan.upstreams.balancer() == tigateway_upstream::Balancer::Hash {
        hash_bytes(ctx, plan.hash_key, &mut ip_buf).map(SmallVec::from_slice)
    } else {
        None
    };
    let mut on_upgrade = on_upgrade;

    let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
    let mut last_err = GatewayError::new(ErrorKind::ServiceUnavailable, "no available upstream");
    let mut last_status_response: Option<Response<ProxyBody>> = None;
    let mut attempt: u32 = 0;
    let mut stale_resends = 0;
    while attempt <= max_retries {
        if attempt > 0 {
            if let Some(backoff) = policy.and_then(|p| p.backoff.as_ref()) {
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
        let hk = hash_key.as_deref();
        let pick =
            plan.upstreams.pick(hk, &tried).or_else(
                || {
                    if tried.is_empty() {
                        None
                    } else {
                        plan.upstreams.pick(hk, &[])
                    }
                },
            );
        let Some(i) = pick else { break };
        let peer = plan.upstreams.peer(i).clone();
        // The upstream being tried: on failure the access log and the span name the last one tried.
        ctx.upstream = Some(peer.clone());
        let inflight = plan.upstreams.start(i);
        let sender = match worker.pool.get(&peer, connect_timeout, &snap.upstream_tls).await {
            Ok(s) => s,
            Err(e) => {
                inflight.finish(Outcome::Failure);
                tried.push(i);
                attempt += 1;
                tracing::debug!(upstream = peer.key(), error = %e, "upstream connect failed");
                last_err = match e {
                    ConnectError::Timeout => GatewayError::new(ErrorKind::GatewayTimeout, "upstream connect timed out"),
                    other => GatewayError::new(ErrorKind::BadGateway, format!("upstream {}: {other}", peer.key())),
                };
                continue;
            }
        };
        let Some(body) = req_body.take() else { break };
        let may_retry = attempt < max_retries && method_retryable;
        let replay = if may_retry || stale_resends < 2 { replay_of(&body) } else { None };

        let outcome = match sender {
            Sender::H1(conn) => {
                send_h1(worker, ctx, plan, &peer, conn, body, policy.is_some() && may_retry, &mut on_upgrade).await
            }
            Sender::H2(s) => send_h2(ctx, plan, &peer, s, body, policy.is_some() && may_retry).await,
        };
        match outcome {
            Attempt::Done(resp) => {
                ctx.upstream_time = Some(inflight.succeed());
                ctx.retries = attempt;
                return Ok(resp);
            }
            Attempt::RetryStatus(resp) => {
                inflight.finish(Outcome::Success);
                tracing::debug!(
                    upstream = peer.key(),
                    status = resp.status().as_u16(),
                    "retrying on status (Retry filter)"
                );
                last_status_response = Some(resp);
                attempt += 1;
            }
            Attempt::Stale => {
                drop(inflight);
                stale_resends += 1;
                last_err =
                    GatewayError::new(ErrorKind::BadGateway, format!("upstream {} closed the connection", peer.key()));
            }
            Attempt::Fatal(e) => {
                drop(inflight);
                return Err(e);
            }
            Attempt::Failed(e) => {
                inflight.finish(Outcome::Failure);
                tried.push(i);
                attempt += 1;
                last_err = e;
                if !may_retry {
                    return Err(last_err);
                }
            }
        }
        match replay {
            Some(b) => req_body = Some(b),
            None => break,
        }
    }
    ctx.retries = attempt.saturating_sub(1);
    // Retries on status ran out: the last answer goes to the client as it is.
    if let Some(resp) = last_status_response {
        return Ok(resp);
    }
    Err(last_err)
}

/// The Host the upstream gets: the client's (preserveHost), one a filter set, or the upstream's own.
fn upstream_host<'a>(ctx: &'a Ctx, peer: &'a Peer) -> &'a [u8] {
    if ctx.preserve_host {
        if let Some(h) = &ctx.host_header {
            return h.as_bytes();
        }
    }
    match &ctx.upstream_host {
        Some(h) => h.as_bytes(),
        None => peer.authority().as_bytes(),
    }
}

async fn send_h1(
    worker: &Worker,
    ctx: &Ctx,
    plan: &ProxyPlan<'_>,
    peer: &std::sync::Arc<Peer>,
    conn: h1::H1Conn,
    body: ReqBody,
    retry_on_status: bool,
    on_upgrade: &mut Option<OnUpgrade>,
) -> Attempt {
    let head = h1::RequestHead {
        method: &ctx.method,
        path: ctx.current_path(),
        query: ctx.query.as_deref(),
        headers: &ctx.headers,
        host: Some(upstream_host(ctx, peer)),
    };
    let (resp_head, mut resp_body) = match tokio::time::timeout(plan.response_timeout, h1::send(conn, head, body)).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(SendError::ClosedBeforeResponse { reused: true })) => return Attempt::Stale,
        Ok(Err(SendError::BodyTooLarge)) => return Attempt::Fatal(too_large()),
        Ok(Err(SendError::ClientBody(e))) => {
            return Attempt::Fatal(
                GatewayError::new(ErrorKind::BadRequest, format!("reading the request body failed: {e}")).closing(),
            )
        }
        Ok(Err(e)) => {
            tracing::debug!(upstream = peer.key(), error = %e, "upstream request failed");
            return Attempt::Failed(GatewayError::new(
                ErrorKind::BadGateway,
                format!("upstream {} failed: {e}", peer.key()),
            ));
        }
        Err(_) => return Attempt::Failed(timed_out(peer, plan)),
    };
    let mut headers = resp_head.headers;
    if resp_head.status == StatusCode::SWITCHING_PROTOCOLS {
        return match (on_upgrade.take(), resp_body.into_upgraded()) {
            (Some(client), Some((stream, leftover))) => {
                tokio::spawn(tunnel(client, stream, leftover));
                let mut resp = Response::new(ProxyBody::Empty);
                *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                *resp.headers_mut() = headers;
                Attempt::Done(resp)
            }
            _ => Attempt::Failed(GatewayError::new(ErrorKind::BadGateway, "upstream switched protocols unasked")),
        };
    }
    resp_body.set_give_back(GiveBack { pool: worker.pool.clone(), peer: peer.clone() });
    remove_hop_by_hop(&mut headers, false);
    let mut resp = Response::new(ProxyBody::H1(resp_body));
    *resp.status_mut() = resp_head.status;
    *resp.headers_mut() = headers;
    if retry_on_status && status_retried(plan, resp_head.status) {
        return Attempt::RetryStatus(resp);
    }
    Attempt::Done(resp)
}

fn status_retried(plan: &ProxyPlan<'_>, status: StatusCode) -> bool {
    plan.route.as_ref().and_then(|r| r.route.retry.as_ref()).is_some_and(|p| p.retry_on_status(status.as_u16()))
}

fn timed_out(peer: &Peer, plan: &ProxyPlan<'_>) -> GatewayError {
    GatewayError::new(
        ErrorKind::GatewayTimeout,
        format!("upstream {} did not answer within {:?}", peer.key(), plan.response_timeout),
    )
}

async fn send_h2(
    ctx: &Ctx,
    plan: &ProxyPlan<'_>,
    peer: &Peer,
    mut sender: hyper::client::conn::http2::SendRequest<ReqBody>,
    body: ReqBody,
    retry_on_status: bool,
) -> Attempt {
    let target = match &ctx.query {
        Some(q) => format!("{}://{}{}?{}", peer.scheme().http_scheme(), peer.authority(), ctx.current_path(), q),
        None => format!("{}://{}{}", peer.scheme().http_scheme(), peer.authority(), ctx.current_path()),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return Attempt::Fatal(GatewayError::new(ErrorKind::BadRequest, "request target cannot be forwarded"));
    };
    let mut headers: HeaderMap = ctx.headers.clone();
    headers.remove(header::HOST);
    headers.remove(header::EXPECT);
    let mut req = Request::new(body);
    *req.method_mut() = ctx.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    *req.version_mut() = Version::HTTP_2;
    match tokio::time::timeout(plan.response_timeout, sender.send_request(req)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            remove_hop_by_hop(&mut parts.headers, false);
            let status = parts.status;
            let resp = Response::from_parts(parts, ProxyBody::Upstream(body));
            if retry_on_status && status_retried(plan, status) {
                Attempt::RetryStatus(resp)
            } else {
                Attempt::Done(resp)
            }
        }
        Ok(Err(e)) if is_body_too_large(&e) => Attempt::Fatal(too_large()),
        Ok(Err(e)) => {
            tracing::debug!(upstream = peer.key(), error = %e, "upstream h2 request failed");
            Attempt::Failed(GatewayError::new(ErrorKind::BadGateway, format!("upstream {} failed: {e}", peer.key())))
        }
        Err(_) => Attempt::Failed(timed_out(peer, plan)),
    }
}

/// Joins the client's upgraded connection and the upstream's after a 101.
async fn tunnel(client: OnUpgrade, mut upstream: h1::Stream, leftover: BytesMut) {
    let client = match client.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "client upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
