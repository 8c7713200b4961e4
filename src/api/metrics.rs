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

/// What became of a request that could create a build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `created` (charged, when admission is on), `joined` (a cache hit or a
    /// build already queued or running: free) or `refused`.
    pub outcome: String,
    /// The limit of a refusal (`rate`, `client_queue`, `total_queue`, `token_required`); empty otherwise.
    pub reason: String,
}

impl AdmissionLabels {
    pub fn new(outcome: &str, reason: &str) -> Self {
        Self { outcome: outcome.into(), reason: reason.into() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PriorityLabels {
    pub priority: String,
}

/// A reproduction's status: `queued`, `running`, `reproduced`, `mismatch`, `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
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
    pub admissions: Family<AdmissionLabels, Counter>,
    /// Requests held open (waiting downloads, long polls, log streams), all clients.
    pub held_requests: Gauge,
    /// Queued builds per priority class, read from the database at each scrape.
    pub queued_builds: Family<PriorityLabels, Gauge>,
    /// Reproductions by outcome, read from the database at each scrape: a rise of
    /// `outcome="mismatch"` means a binary could not be rebuilt byte for byte.
    pub reproductions: Family<OutcomeLabels, Gauge>,
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
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Requests that could create a build, by outcome (created, joined, refused) and refusal reason",
            admissions.clone(),
        );
        let held_requests = Gauge::default();
        registry.register("held_requests", "Requests held open per api process, all clients", held_requests.clone());
        let queued_builds = Family::<PriorityLabels, Gauge>::default();
        registry.register("queued_builds", "Builds waiting in the queue, by priority class", queued_builds.clone());
        let reproductions = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "reproductions",
            "Reproductions of builds by another worker, by outcome (reproduced, mismatch, failed, queued, running)",
            reproductions.clone(),
        );
        Metrics {
            registry,
            requests,
            open_waiters,
            wakeup_latency,
            version_cache_hits,
            version_cache_misses,
            admissions,
            held_requests,
            queued_builds,
            reproductions,
        }
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
