//! Executes a [`ProxyPlan`]: pick an upstream, connect (pooled), send with timeouts, retry within the
//! budget, stream the answer back, and tunnel protocol upgrades.

use std::error::Error as _;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use smallvec::SmallVec;
use tigateway_upstream::Outcome;

use crate::body::{BodyTooLarge, ProxyBody, ReqBody};
use crate::context::Ctx;
use crate::error::{ErrorKind, GatewayError};
use crate::forwarded::{remove_hop_by_hop, set_forwarding_headers};
use crate::plugins::{HashKey, ProxyPlan};
use crate::pool::{ConnectError, Sender};
use crate::service::Worker;
use crate::snapshot::Snapshot;

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
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
    let content_length = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|l| l > max_body) {
        return Err(GatewayError::new(ErrorKind::PayloadTooLarge, "request body larger than the limit").closing());
    }
    let mut req_body = Some(match ctx.body.take() {
        Some(b) => ReqBody::Full(http_body_util::Full::new(b)),
        None if hyper::body::Body::is_end_stream(&body) => ReqBody::Empty,
        None => ReqBody::Stream {
            body,
            seen: 0,
            limit: max_body,
        },
    });
    let replayable = !matches!(req_body, Some(ReqBody::Stream { .. }));
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
    let retry_after_send = replayable && method_retryable;

    let proto = if ctx.tls { "https" } else { "http" };
    let host_header = ctx.host_header.clone();
    set_forwarding_headers(
        &mut ctx.headers,
        ctx.peer.ip(),
        ctx.peer_trusted,
        proto,
        host_header.as_ref(),
    );
    if ctx.is_upgrade {
        ctx.headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let path_and_query = match &ctx.query {
        Some(q) => format!("{}?{}", ctx.current_path(), q),
        None => ctx.current_path().to_string(),
    };

    let connect_timeout = plan
        .connect_timeout
        .unwrap_or(Duration::from_millis(snap.upstream.connect_timeout_ms));
    // The hash key is read before the headers move into the upstream request.
    let mut ip_buf = [0u8; 16];
    let hash_key: Option<SmallVec<[u8; 32]>> = hash_bytes(ctx, plan.hash_key, &mut ip_buf).map(SmallVec::from_slice);
    let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
    let mut last_err = GatewayError::new(ErrorKind::ServiceUnavailable, "no available upstream");
    let mut headers = Some(std::mem::take(&mut ctx.headers));
    let mut last_response: Option<Response<Incoming>> = None;

    for attempt in 0..=max_retries {
        if attempt > 0 {
            if let Some(backoff) = policy.and_then(|p| p.backoff.as_ref()) {
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
        let hk = hash_key.as_deref();
        let pick = plan.upstreams.pick(hk, &tried).or_else(|| {
            if tried.is_empty() {
                None
            } else {
                plan.upstreams.pick(hk, &[])
            }
        });
        let Some(i) = pick else { break };
        let peer = plan.upstreams.peer(i).clone();
        let inflight = plan.upstreams.start(i);
        let sender = match worker
            .pool
            .get(&peer, connect_timeout, ctx.is_upgrade, &snap.upstream_tls)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                inflight.finish(Outcome::Failure);
                tried.push(i);
                tracing::debug!(upstream = peer.key(), error = %e, "upstream connect failed");
                last_err = match e {
                    ConnectError::Timeout => GatewayError::new(ErrorKind::GatewayTimeout, "upstream connect timed out"),
                    other => GatewayError::new(ErrorKind::BadGateway, format!("upstream {}: {other}", peer.key())),
                };
                continue;
            }
        };

        let Some(body) = req_body.take() else { break };
        let keep_for_retry = retry_after_send && attempt < max_retries;
        let mut hdrs = if keep_for_retry {
            headers.clone().unwrap_or_default()
        } else {
            headers.take().unwrap_or_default()
        };
        let host = if ctx.preserve_host {
            host_header.clone()
        } else if let Some(h) = &ctx.upstream_host {
            HeaderValue::from_str(h).ok()
        } else {
            HeaderValue::from_str(peer.authority()).ok()
        };
        let uri: Uri = if sender.is_h2() {
            format!(
                "{}://{}{}",
                peer.scheme().http_scheme(),
                peer.authority(),
                path_and_query
            )
            .parse()
        } else {
            path_and_query.parse()
        }
        .map_err(|_| GatewayError::new(ErrorKind::BadRequest, "request target cannot be forwarded"))?;
        if sender.is_h2() {
            hdrs.remove(header::HOST);
        } else if let Some(h) = host {
            hdrs.insert(header::HOST, h);
        }
        let replay = if keep_for_retry && !matches!(body, ReqBody::Stream { .. }) {
            Some(clone_replay(&body))
        } else {
            None
        };
        let mut req = Request::new(body);
        *req.method_mut() = ctx.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = hdrs;
        *req.version_mut() = if sender.is_h2() {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };

        let result = match sender {
            Sender::H1(mut s) => {
                let r = tokio::time::timeout(plan.response_timeout, s.send_request(req)).await;
                r.map(|r| r.map(|resp| (resp, Some(s))))
            }
            Sender::H2(mut s) => {
                let r = tokio::time::timeout(plan.response_timeout, s.send_request(req)).await;
                r.map(|r| r.map(|resp| (resp, None)))
            }
        };
        match result {
            Ok(Ok((mut resp, h1))) => {
                inflight.finish(Outcome::Success);
                let status = resp.status();
                if let (Some(p), Some(b)) = (policy, &replay) {
                    if p.retry_on_status(status.as_u16()) {
                        tracing::debug!(
                            upstream = peer.key(),
                            status = status.as_u16(),
                            "retrying on status (Retry filter)"
                        );
                        req_body = Some(clone_replay(b));
                        last_err = GatewayError::new(ErrorKind::BadGateway, "retries exhausted");
                        last_response = Some(resp);
                        continue;
                    }
                }
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client) = on_upgrade {
                        let upstream = hyper::upgrade::on(&mut resp);
                        tokio::spawn(async move {
                            match tokio::try_join!(client, upstream) {
                                Ok((c, u)) => {
                                    let mut c = TokioIo::new(c);
                                    let mut u = TokioIo::new(u);
                                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                                }
                                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                            }
                        });
                    }
                    let (parts, _) = resp.into_parts();
                    return Ok(Response::from_parts(parts, ProxyBody::Empty));
                }
                let (mut parts, body) = resp.into_parts();
                remove_hop_by_hop(&mut parts.headers, false);
                let on_end = match h1 {
                    Some(s) if !ctx.is_upgrade => Some(worker.pool.return_handle(peer.clone(), s)),
                    _ => None,
                };
                return Ok(Response::from_parts(parts, ProxyBody::Upstream { body, on_end }));
            }
            Ok(Err(e)) => {
                if is_body_too_large(&e) {
                    drop(inflight);
                    return Err(
                        GatewayError::new(ErrorKind::PayloadTooLarge, "request body larger than the limit").closing(),
                    );
                }
                inflight.finish(Outcome::Failure);
                tried.push(i);
                tracing::debug!(upstream = peer.key(), error = %e, "upstream request failed");
                last_err = GatewayError::new(ErrorKind::BadGateway, format!("upstream {} failed: {e}", peer.key()));
                match replay {
                    Some(b) => req_body = Some(b),
                    None => return Err(last_err),
                }
            }
            Err(_) => {
                inflight.finish(Outcome::Failure);
                tried.push(i);
                last_err = GatewayError::new(
                    ErrorKind::GatewayTimeout,
                    format!(
                        "upstream {} did not answer within {:?}",
                        peer.key(),
                        plan.response_timeout
                    ),
                );
                match replay {
                    Some(b) => req_body = Some(b),
                    None => return Err(last_err),
                }
            }
        }
    }
    // Retries on status ran out: the last answer goes to the client as it is.
    if let Some(resp) = last_response {
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers, false);
        return Ok(Response::from_parts(parts, ProxyBody::Upstream { body, on_end: None }));
    }
    Err(last_err)
}

fn clone_replay(b: &ReqBody) -> ReqBody {
    match b {
        ReqBody::Full(f) => ReqBody::Full(f.clone()),
        _ => ReqBody::Empty,
    }
}
