//! The admin API's own metrics: requests by endpoint (the route template, never the raw path),
//! method and status class, and the latency of writes (which is where the store's transaction time
//! shows: every write is one store transaction).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{counter, method_class, status_class, Esc, METHODS, STATUS_CLASSES};

pub struct AdminMetrics {
    requests: Mutex<BTreeMap<(String, usize, usize), u64>>,
    write_time: Histogram,
}

impl std::fmt::Debug for AdminMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminMetrics").finish_non_exhaustive()
    }
}

impl AdminMetrics {
    pub fn new() -> Arc<AdminMetrics> {
        Arc::new(AdminMetrics {
            requests: Mutex::new(BTreeMap::new()),
            write_time: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        })
    }

    /// `endpoint` must be a route template (`/api/v1/selectors/{id}`), not the request path.
    pub fn record(&self, endpoint: &str, method: &http::Method, status: u16, took: Duration) {
        let key = (endpoint.to_string(), method_class(method), status_class(status));
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        if !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS) {
            self.write_time.observe(took.as_secs_f64());
        }
    }
}

#[derive(Debug)]
pub(crate) struct AdminCollector(pub Arc<AdminMetrics>);

impl Collector for AdminCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: Vec<((String, usize, usize), u64)> =
            self.0.requests.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
        if rows.is_empty() {
            // A gateway without an admin in the process has nothing to say here.
            return Ok(());
        }
        counter(
            &mut enc,
            "tigateway_admin_requests",
            "Admin API requests by endpoint template, method class and status class.",
            rows.iter().map(|((e, m, s), v)| {
                (vec![("endpoint", Esc(e)), ("method", Esc(METHODS[*m])), ("status", Esc(STATUS_CLASSES[*s]))], *v)
            }),
        )?;
        let m = enc.encode_descriptor(
            "tigateway_admin_write_duration_seconds",
            "Time to serve an admin write (validation plus the store transaction).",
            None,
            self.0.write_time.metric_type(),
        )?;
        self.0.write_time.encode(m)
    }
}
