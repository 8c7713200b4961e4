//! Prometheus metrics of the api process, served at `/metrics` in the
//! OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route template (`/api/builds/{key}`), never the raw path.
    pub route: String,
    pub method: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// Requests currently held open waiting for a build.
    pub open_waiters: Gauge,
    /// From a build's completion (its `finished_at`) to its waiter seeing it.
    pub wakeup_latency: Histogram,
    pub version_cache_hits: Counter,
    pub version_cache_misses: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cbs_api");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        let open_waiters = Gauge::default();
        registry.register("open_waiters", "Requests held open until their build finishes", open_waiters.clone());
        let wakeup_latency = Histogram::new(exponential_buckets(0.00025, 1.5, 28));
        registry.register(
            "wakeup_latency_seconds",
            "Time from a build's completion to a waiting request seeing it",
            wakeup_latency.clone(),
        );
        let version_cache_hits = Counter::default();
        registry.register(
            "version_cache_hits",
            "Module version lookups answered from the cache or a lookup in flight",
            version_cache_hits.clone(),
        );
        let version_cache_misses = Counter::default();
        registry.register(
            "version_cache_misses",
            "Module version lookups that asked a module proxy",
            version_cache_misses.clone(),
        );
        Metrics { registry, requests, open_waiters, wakeup_latency, version_cache_hits, version_cache_misses }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one open waiter for as long as it lives.
pub struct WaiterGuard<'a>(&'a Gauge);

impl<'a> WaiterGuard<'a> {
    pub fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        WaiterGuard(gauge)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
