//! Request ids, W3C trace context and OpenTelemetry spans for the data plane.
//!
//! Always on, and cheap: the request id (`X-Request-Id` kept when present and sane, else a
//! generated 32-hex id; sent upstream and returned to the client) and, for the access log, the
//! trace id of an incoming `traceparent`.
//!
//! With an OTLP endpoint configured ([`init`]): one server span per request, parent-based sampling
//! with a ratio for new traces, exported in batches by a task on the control runtime (never on the
//! request path). The upstream gets a `traceparent` continuing the trace with this span's id (a new
//! trace when the incoming header is absent or malformed) and the incoming `tracestate`.
//!
//! Without an endpoint, `traceparent`/`tracestate` pass through untouched and no span exists: the
//! per-request cost is the request-id header.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderValue, Request, Response};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span};
use tigateway_model::{OtlpProtocol, TracingConfig};

use crate::body::ProxyBody;
use crate::context::{Ctx, Matched};
use crate::snapshot::ChainEntry;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest incoming request id that is kept.
const MAX_REQUEST_ID: usize = 200;

struct Tracing {
    tracer: SdkTracer,
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

/// Keeps the exporter alive; dropping it flushes the spans still queued and stops the exporter.
pub struct TracingGuard {
    provider: SdkTracerProvider,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing spans at shutdown failed");
        }
    }
}

/// The URL the exporter posts to: for HTTP, `/v1/traces` is added to an endpoint without a path.
fn export_url(cfg: &TracingConfig, endpoint: &str) -> Result<String, String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| format!("otlpEndpoint {endpoint:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!("otlpEndpoint must be an http(s) URL, got {endpoint:?}"));
    }
    Ok(match cfg.otlp_protocol {
        OtlpProtocol::Http if matches!(uri.path(), "" | "/") => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        _ => endpoint.to_string(),
    })
}

/// Starts span export as `cfg` says (nothing without `otlpEndpoint`). Must run inside the tokio
/// runtime that will carry the exporter task (the control runtime), once per process.
pub fn init(cfg: &TracingConfig) -> Result<Option<TracingGuard>, String> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let Some(endpoint) = cfg.otlp_endpoint.as_deref() else { return Ok(None) };
    if !(0.0..=1.0).contains(&cfg.sample_ratio) {
        return Err(format!("sample ratio must be within 0..1, got {}", cfg.sample_ratio));
    }
    let url = export_url(cfg, endpoint)?;
    let timeout = Duration::from_secs(10);
    let exporter = match cfg.otlp_protocol {
        OtlpProtocol::Grpc => {
            opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(url).with_timeout(timeout).build()
        }
        OtlpProtocol::Http => {
            let client = reqwest::Client::builder().no_proxy().timeout(timeout).build().map_err(|e| e.to_string())?;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(timeout)
                .build()
        }
    }
    .map_err(|e| format!("OTLP exporter: {e}"))?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .with_batch_config(
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(8192)
            .with_scheduled_delay(Duration::from_millis(500))
            .build(),
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio))))
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(cfg.service_name.clone()).build())
        .build();
    let tracer = provider.tracer("tigateway");
    TRACING.set(Tracing { tracer }).map_err(|_| "tracing is already set up in this process".to_string())?;
    tracing::info!(endpoint, protocol = ?cfg.otlp_protocol, ratio = cfg.sample_ratio, "exporting spans over OTLP");
    Ok(Some(TracingGuard { provider }))
}

thread_local! {
    /// wyrand state: request ids need uniqueness, not secrecy, and must not cost a syscall.
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = (x as u128).wrapping_mul((x ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(out: &mut [u8], mut v: u128, digits: usize) {
    for i in (0..digits).rev() {
        out[i] = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

thread_local! {
    /// Room for the next request ids: each id is a slice of one shared buffer, so making one,
    /// and cloning it onto the upstream request, the context and the response, allocates
    /// nothing (one buffer per 1024 ids).
    static ID_ARENA: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
}

fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; 32];
    let v = ((next_u64() as u128) << 64) | next_u64() as u128;
    hex_into(&mut buf, v, 32);
    let id = ID_ARENA.with(|a| {
        let mut a = a.borrow_mut();
        if a.capacity() < buf.len() {
            *a = bytes::BytesMut::with_capacity(buf.len() * 1024);
        }
        a.extend_from_slice(&buf);
        a.split_to(buf.len()).freeze()
    });
    HeaderValue::from_maybe_shared(id).expect("hex is a valid header value")
}

/// A request id worth keeping: short, visible ASCII without separators that break log parsing.
fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\')
}

fn hex_val(b: &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u128;
    }
    Some(v)
}

/// A parsed W3C `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// Parses `traceparent` per W3C Trace Context level 1: version `00` exactly 55 bytes; a later
/// version at least that, with `-` after the flags when longer; `ff`, uppercase hex and all-zero
/// ids are invalid.
pub fn parse_traceparent(v: &[u8]) -> Option<TraceParent> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_val(&v[0..2])?;
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace = hex_val(&v[3..35])?;
    let span = hex_val(&v[36..52])? as u64;
    let flags = hex_val(&v[53..55])? as u8;
    if trace == 0 || span == 0 {
        return None;
    }
    Some(TraceParent {
        trace_id: TraceId::from_bytes(trace.to_be_bytes()),
        span_id: SpanId::from_bytes(span.to_be_bytes()),
        sampled: flags & 1 == 1,
    })
}

fn traceparent_value(sc: &SpanContext) -> HeaderValue {
    let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut buf[3..35], u128::from_be_bytes(sc.trace_id().to_bytes()), 32);
    hex_into(&mut buf[36..52], u64::from_be_bytes(sc.span_id().to_bytes()) as u128, 16);
    hex_into(&mut buf[53..55], sc.trace_flags().to_u8() as u128, 2);
    HeaderValue::from_bytes(&buf).expect("hex is a valid header value")
}

/// One request's id and span.
pub struct RequestTrace {
    request_id: HeaderValue,
    /// The request id came from the client (so it is already in the request headers).
    kept: bool,
    trace_id: Option<TraceId>,
    /// Boxed: a span is ~400 bytes, exists only when tracing samples the request, and this struct
    /// moves with every request.
    span: Option<Box<Span>>,
    /// Route (or selector) id once known; the span is renamed `METHOD route` at the end.
    route: Option<String>,
    method: http::Method,
}

impl RequestTrace {
    /// Reads the request id and trace context from the client's headers and, when tracing is on,
    /// starts the server span.
    pub fn begin<B>(req: &Request<B>) -> RequestTrace {
        let h = req.headers();
        let (request_id, kept) = match h.get(&X_REQUEST_ID) {
            Some(v) if sane_request_id(v) => (v.clone(), true),
            _ => (new_request_id(), false),
        };
        let parent = h.get(&TRACEPARENT).and_then(|v| parse_traceparent(v.as_bytes()));
        let Some(t) = TRACING.get() else {
            return RequestTrace {
                request_id,
                kept,
                trace_id: parent.map(|p| p.trace_id),
                span: None,
                route: None,
                method: http::Method::GET,
            };
        };
        let cx = match parent {
            Some(p) => {
                let state = h
                    .get(&TRACESTATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<TraceState>().ok())
                    .unwrap_or_default();
                let flags = if p.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
                Context::new().with_remote_span_context(SpanContext::new(p.trace_id, p.span_id, flags, true, state))
            }
            None => Context::new(),
        };
        let method = req.method().as_str().to_string();
        let span = t
            .tracer
            .span_builder(method.clone())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.path", req.uri().path().to_string()),
                KeyValue::new("tigateway.request_id", String::from_utf8_lossy(request_id.as_bytes()).into_owned()),
            ])
            .start_with_context(&t.tracer, &cx);
        let trace_id = Some(span.span_context().trace_id());
        RequestTrace {
            request_id,
            kept,
            trace_id,
            span: Some(Box::new(span)),
            route: None,
            method: req.method().clone(),
        }
    }

    /// Puts the ids on the context and the headers the upstream gets.
    pub fn attach(&mut self, ctx: &mut Ctx) {
        if !self.kept {
            ctx.headers.insert(X_REQUEST_ID.clone(), self.request_id.clone());
        }
        ctx.request_id = self.request_id.clone();
        ctx.trace_id = self.trace_id;
        if let Some(span) = &mut self.span {
            if span.is_recording() {
                span.set_attribute(KeyValue::new("client.address", ctx.client_ip.to_string()));
            }
            let sc = span.span_context();
            ctx.headers.insert(TRACEPARENT.clone(), traceparent_value(sc));
            if sc.trace_state().header().is_empty() {
                ctx.headers.remove(&TRACESTATE);
            } else if let Ok(v) = HeaderValue::from_str(&sc.trace_state().header()) {
                ctx.headers.insert(TRACESTATE.clone(), v);
            }
        }
    }

    /// Records which plugin, selector, rule or route took the request.
    pub fn chose(&mut self, entry: &ChainEntry, m: Option<&Matched>, route: Option<&str>) {
        let Some(span) = self.span.as_mut().filter(|s| s.is_recording()) else { return };
        let mut attrs = vec![KeyValue::new("tigateway.plugin", entry.name)];
        let mut name = None;
        if let (Some(t), Some(m)) = (&entry.table, m) {
            if let Some(id) = t.selector_id(m.selector) {
                attrs.push(KeyValue::new("tigateway.selector", id.to_string()));
                name = Some(id.to_string());
            }
            if let tigateway_matcher::select::RuleChoice::Rule(r) = m.rule {
                if let Some(id) = t.rule_id(r) {
                    attrs.push(KeyValue::new("tigateway.rule", id.to_string()));
                }
            }
        }
        if let Some(r) = route {
            name = Some(r.to_string());
        }
        if let Some(n) = name {
            attrs.push(KeyValue::new("http.route", n.clone()));
            self.route = Some(n);
        }
        span.set_attributes(attrs);
    }

    /// Records the upstream the forwarder sent to.
    pub fn upstream(&mut self, ctx: &Ctx) {
        let Some(span) = self.span.as_mut().filter(|s| s.is_recording()) else { return };
        if let Some(p) = &ctx.upstream {
            span.set_attribute(KeyValue::new("tigateway.upstream", p.key().to_string()));
        }
    }

    /// Returns the request id to the client and records the status on the span, which is handed
    /// back: `observe::finish` ends it now or, for a body that streams on, with the body (the one
    /// place that decides what waits for the body).
    pub fn finish(mut self, resp: &mut Response<ProxyBody>) -> Option<Box<Span>> {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), self.request_id);
        let mut span = self.span.take()?;
        if span.is_recording() {
            let status = resp.status();
            span.set_attribute(KeyValue::new("http.response.status_code", status.as_u16() as i64));
            if status.is_server_error() {
                span.set_status(Status::error(status.to_string()));
            }
            if let Some(route) = self.route.take() {
                span.update_name(format!("{} {route}", self.method));
            }
        }
        Some(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_w3c() {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = parse_traceparent(ok).unwrap();
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id.to_string(), "00f067aa0ba902b7");
        assert!(p.sampled);
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"garbage",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        // A future version may carry more fields after a dash.
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more").is_some());
    }

    #[test]
    fn traceparent_roundtrip() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let v = traceparent_value(&sc);
        assert_eq!(v.to_str().unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(sane_request_id(&HeaderValue::from_static("abc-123_X.y")));
        assert!(!sane_request_id(&HeaderValue::from_static("has space")));
        assert!(!sane_request_id(&HeaderValue::from_static("")));
        assert!(!sane_request_id(&HeaderValue::from_str(&"x".repeat(201)).unwrap()));
        let req = Request::builder().header("x-request-id", "client-id-1").body(()).unwrap();
        let t = RequestTrace::begin(&req);
        assert!(t.kept);
        assert_eq!(t.request_id, "client-id-1");
        let req = Request::builder().header("x-request-id", "bad id").body(()).unwrap();
        let t = RequestTrace::begin(&req);
        assert!(!t.kept);
        assert_eq!(t.request_id.len(), 32);
    }
}
