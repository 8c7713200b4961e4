//! What every handler shares: config, the queue, the process's one listener,
//! storage, the version resolver, metrics and the build waiters. Built once at
//! start-up; cloning is one `Arc` clone.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::coalesce::Coalescer;
use super::metrics::Metrics;
use super::waiters::Waiters;
use super::ApiError;
use crate::config::Config;
use crate::db::{connect_pool, Build, Listener, Queue, Target};
use crate::gomod::{ResolveError, Resolver};
use crate::storage::{self, DynStorage};

/// Artifact opens in flight at once (see [`Inner::opens`]).
const MAX_CONCURRENT_OPENS: usize = 32;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub queue: Queue,
    pub listener: Listener,
    pub storage: DynStorage,
    pub resolver: Resolver,
    pub metrics: Metrics,
    pub waiters: Waiters,
    pub shutdown: CancellationToken,
    /// Bounds concurrent artifact opens, so that ten thousand waiters released at
    /// once do not grow the blocking thread pool to its limit.
    pub opens: tokio::sync::Semaphore,
    /// Identical concurrent submits (keyed by the resolved spec) share one call.
    pub submits: Coalescer<Result<Arc<Build>, ApiError>>,
    /// `api.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Admissions and refusals per client, on their way to `cbs.client_usage`.
    pub usage: Arc<super::usage::Usage>,
    /// Requests each client holds open on this process.
    pub held: Arc<super::held::HeldRequests>,
    /// Downloads counted since the last batch was written.
    pub downloads: Arc<super::download_count::DownloadCounter>,
    /// `cbs.target_list()`, read once on first use: the targets change only
    /// with a migration, which restarts every process.
    targets: OnceCell<Vec<Target>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Connects the pool (lazily), starts the listener and opens storage.
    pub async fn new(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<AppState> {
        let queue = Queue::new(connect_pool(&config.database, "cbs-api")?);
        let listener = Listener::start(&config.database, shutdown.clone());
        let storage = storage::from_config(&config.storage).await?;
        Ok(Self::from_parts(config, queue, listener, storage, shutdown))
    }

    /// Shares components that already run (the `all` mode's pool and listener).
    pub fn from_parts(
        config: Arc<Config>,
        queue: Queue,
        listener: Listener,
        storage: DynStorage,
        shutdown: CancellationToken,
    ) -> AppState {
        let resolver = Resolver::with_timeout(&config.go_proxy, config.api.version_cache_ttl, config.api.module_proxy_timeout);
        let waiters = Waiters::new(listener.clone(), queue.clone(), shutdown.clone());
        let trusted_proxies = config.api.trusted_proxy_nets().expect("api.trusted_proxies is validated when the config loads");
        let metrics = Metrics::new();
        let held = super::held::HeldRequests::new(metrics.held_requests.clone());
        let usage = super::usage::Usage::start(queue.clone(), shutdown.clone(), super::usage::UsageSink);
        let downloads = super::download_count::DownloadCounter::start(queue.clone(), shutdown.clone(), super::download_count::DownloadSink);
        AppState(Arc::new(Inner {
            config,
            queue,
            listener,
            storage,
            resolver,
            metrics,
            waiters,
            shutdown,
            opens: tokio::sync::Semaphore::new(MAX_CONCURRENT_OPENS),
            submits: Coalescer::new(),
            trusted_proxies,
            usage,
            held,
            downloads,
            targets: OnceCell::new(),
        }))
    }

    /// The targets builds may ask for, with their ARM variants, as SQL lists them.
    pub async fn targets(&self) -> Result<&[Target], ApiError> {
        let targets = self.targets.get_or_try_init(|| async { Ok::<_, ApiError>(self.queue.targets().await?) }).await?;
        Ok(targets)
    }

    /// Resolves a module version query, counting cache hits.
    /// The `go` directive of a module version's go.mod, if the proxy has one.
    pub async fn go_directive(&self, module: &str, version: &str) -> Result<Option<String>, ResolveError> {
        self.resolver.go_directive(module, version).await
    }

    pub async fn resolve(&self, module: &str, query: &str) -> Result<String, ResolveError> {
        let r = self.resolver.resolve(module, query).await?;
        if r.cached { self.metrics.version_cache_hits.inc() } else { self.metrics.version_cache_misses.inc() };
        Ok(r.version)
    }
}
