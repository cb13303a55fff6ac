//! Tracing flags shared by `gateway` and `standalone`; they override `server.tracing`.

use tigateway_model::{OtlpProtocol, TracingConfig};

#[derive(clap::Args, Clone, Default)]
pub struct TraceArgs {
    /// Export OpenTelemetry spans to this OTLP collector (`http://127.0.0.1:4317` for gRPC,
    /// `http://127.0.0.1:4318` for HTTP). Overrides `server.tracing.otlpEndpoint`.
    #[arg(long, env = "TIGATEWAY_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// OTLP transport: `grpc` or `http` (protobuf over HTTP).
    #[arg(long, value_parser = ["grpc", "http"])]
    otlp_protocol: Option<String>,
    /// Share of new traces recorded (0.0-1.0); requests with a traceparent follow its sampled flag.
    #[arg(long)]
    trace_sample_ratio: Option<f64>,
}

impl TraceArgs {
    /// The config's tracing section with these flags applied.
    pub fn apply(&self, mut t: TracingConfig) -> TracingConfig {
        if let Some(e) = &self.otlp_endpoint {
            t.otlp_endpoint = Some(e.clone());
        }
        match self.otlp_protocol.as_deref() {
            Some("http") => t.otlp_protocol = OtlpProtocol::Http,
            Some("grpc") => t.otlp_protocol = OtlpProtocol::Grpc,
            _ => {}
        }
        if let Some(r) = self.trace_sample_ratio {
            t.sample_ratio = r;
        }
        t
    }

    /// Starts span export (inside the control runtime); the guard flushes on drop.
    pub fn start(&self, t: TracingConfig) -> anyhow::Result<Option<tigateway_proxy::trace::TracingGuard>> {
        tigateway_proxy::trace::init(&self.apply(t)).map_err(|e| anyhow::anyhow!("tracing: {e}"))
    }
}
