//! The metrics listener: `/metrics` (OpenMetrics text), `/health` (the process serves) and `/ready`
//! (a snapshot is loaded and every config source is connected or serving from its cache). Kept off
//! the data plane's listeners and workers so a scrape never competes with proxied requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::Observe;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classic Prometheus text format (0.0.4) from OpenMetrics text: counter families are named
/// with their `_total` suffix, `# UNIT` and `# EOF` go. Served to clients that do not ask for
/// OpenMetrics (curl, `promtool check metrics`, older scrapers); Prometheus itself asks for
/// OpenMetrics.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in openmetrics.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let meta = l
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| l.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

fn respond(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ctype));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

/// Answers one request on the metrics listener.
pub fn answer(obs: &Observe, method: &Method, path: &str, accept: Option<&str>) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
    }
    match path {
        "/metrics" if accept.is_some_and(|a| a.contains("application/openmetrics-text")) => {
            respond(StatusCode::OK, OPENMETRICS, obs.encode())
        }
        "/metrics" => respond(StatusCode::OK, PROMETHEUS_TEXT, to_prometheus_text(&obs.encode())),
        "/health" | "/healthz" | "/livez" => respond(StatusCode::OK, "application/json", "{\"status\":\"ok\"}\n"),
        "/ready" | "/readyz" => {
            let r = obs.sources.readiness();
            let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let mut body = serde_json::to_vec(&r).unwrap_or_default();
            body.push(b'\n');
            respond(status, "application/json", body)
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "try /metrics, /health or /ready\n"),
    }
}

/// Serves the metrics listener until the task is dropped.
pub async fn serve(listener: TcpListener, obs: Arc<Observe>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let obs = obs.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
                let r = answer(&obs, req.method(), req.uri().path(), accept);
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds `addr` and serves on the current tokio runtime; returns the bound address.
pub async fn start(addr: SocketAddr, obs: Arc<Observe>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener, obs));
    Ok(local)
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_text_names_counters_with_total() {
        let om =
            "# HELP a_x Help.\n# TYPE a_x counter\na_x_total{k=\"v\"} 1\n# HELP g G.\n# TYPE g gauge\ng 2\n# EOF\n";
        assert_eq!(
            super::to_prometheus_text(om),
            "# HELP a_x_total Help.\n# TYPE a_x_total counter\na_x_total{k=\"v\"} 1\n# HELP g G.\n# TYPE g gauge\ng 2\n"
        );
    }
}
