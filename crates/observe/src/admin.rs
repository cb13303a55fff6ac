//! The admin API's own metrics: requests by endpoint (the route template, never the raw path),
//! method and status class, and request latency by method class. The write methods' series are
//! where the store's latency shows (every write is one store transaction, validation included).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::{counter, histograms, method_class, status_class, Esc, Histo, METHODS, STATUS_CLASSES};

pub struct AdminMetrics {
    requests: Mutex<BTreeMap<(String, usize, usize), u64>>,
    latency: [Histo; 8],
}

impl std::fmt::Debug for AdminMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminMetrics").finish_non_exhaustive()
    }
}

impl AdminMetrics {
    pub fn new() -> Arc<AdminMetrics> {
        Arc::new(AdminMetrics { requests: Mutex::new(BTreeMap::new()), latency: Default::default() })
    }

    /// `endpoint` must be a route template (`/api/v1/selectors/{id}`), not the request path.
    pub fn record(&self, endpoint: &str, method: &http::Method, status: u16, took: Duration) {
        let m = method_class(method);
        let key = (endpoint.to_string(), m, status_class(status));
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        self.latency[m].observe(took);
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
        histograms(
            &mut enc,
            "tigateway_admin_request_duration_seconds",
            "Time to serve an admin request, by method class (writes: validation plus the store transaction).",
            self.0
                .latency
                .iter()
                .enumerate()
                .filter(|(_, h)| h.count() > 0)
                .map(|(i, h)| (vec![("method", Esc(METHODS[i]))], h)),
        )
    }
}
