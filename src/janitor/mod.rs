//! The janitor component. At start it applies migrations and procedures (api and
//! workers wait for that, see `db::wait_for_schema`); then any number of
//! janitors elect one leader through a Postgres advisory lock, and the leader
//! runs the policy jobs on their cron schedules (rescue expired leases,
//! retention, shared Go cache trimming, forget vanished workers, queue statistics,
//! sample builds for reproduction), prebuilds (configured specs, popular specs with
//! new releases) and delivers webhooks.
//! Followers stand by and take over within seconds when the leader dies.

pub mod gocache_trim;
pub mod job;
pub mod leader;
pub mod ping;
pub mod prebuild;
pub mod reaper;
pub mod reproductions;
pub mod rescuer;
pub mod retention;
pub mod stats;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::db::{self, Listener, MigrateError, Queue};
use crate::gomod::Resolver;
use crate::storage;
use job::{run_every, run_scheduled, Job, JobSchedule};
use leader::ElectionTiming;
use ping::Pinger;

/// Longest wait between two attempts to reach the database for migrating.
const MIGRATE_RETRY_MAX: Duration = Duration::from_secs(10);
/// On stop, running jobs and deliveries may finish for this long (a webhook POST
/// has its own, shorter timeout); then the janitor stops regardless: every job
/// is safe to interrupt, its work is redone by the next leader.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the janitor until `shutdown` is cancelled.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !migrate_when_reachable(&config, &shutdown).await? {
        return Ok(());
    }
    run_migrated(config, shutdown).await
}

/// The prebuild job, its configured entries checked by the spec's rules.
async fn prebuilder(config: &Config, queue: &Queue, id: &str) -> Result<prebuild::Prebuilder, prebuild::PrebuildConfigError> {
    // No cache: every poll must see the proxy's version lists as they are now.
    let resolver = Resolver::with_timeout(&config.go_proxy, Duration::ZERO, config.api.module_proxy_timeout);
    let prebuilder = prebuild::Prebuilder::new(queue.clone(), resolver, config.prebuild.clone(), id).with_go_version(&config.worker.go_version);
    match prebuilder.check_config().await {
        Err(e @ prebuild::PrebuildConfigError::BadEntry { .. }) => return Err(e),
        // The database's trouble, not the config's: each poll checks the entries again at submit.
        Err(e) => warn!(janitor = %id, error = %e, "cannot check prebuild.specs now"),
        Ok(()) => {}
    }
    Ok(prebuilder)
}

/// Runs the janitor on a schema already made current (the `all` mode migrates
/// before it starts anything).
pub async fn run_migrated(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let id = config.janitor.janitor_id();
    let queue = Queue::new(db::connect_pool(&config.database, "cbs-janitor")?);
    let storage = storage::from_config(&config.storage).await.context("artifact storage")?;
    // Checked before anything starts: a bad entry stops start-up, named by its key.
    let prebuilder = match config.prebuild.enabled {
        true => Some(Arc::new(prebuilder(&config, &queue, &id).await?)),
        false => None,
    };
    let listener = Listener::start(&config.database, shutdown.clone());
    let timing = ElectionTiming { retry: config.janitor.leader_retry, check: config.janitor.leader_check };
    info!(janitor = %id, "janitor started; taking part in the leader election");
    let (leadership, elector) = leader::start(&config.database, &id, timing, shutdown.clone());
    let pinger = Pinger::new(config.janitor.ping_timeout);
    let j = &config.janitor;

    let jobs: Vec<(Arc<dyn Job>, JobSchedule)> = vec![
        (Arc::new(rescuer::Rescuer::new(queue.clone())), JobSchedule { schedule: j.rescue.schedule.clone(), ping_url: j.rescue.ping_url.clone() }),
        (
            Arc::new(retention::Retention::new(queue.clone(), storage.clone(), j.retention.max_age, j.retention.batch_size)),
            JobSchedule { schedule: j.retention.schedule.clone(), ping_url: j.retention.ping_url.clone() },
        ),
        (
            Arc::new(reaper::Reaper::new(queue.clone(), j.reaper.forget_after)),
            JobSchedule { schedule: j.reaper.schedule.clone(), ping_url: j.reaper.ping_url.clone() },
        ),
        (Arc::new(stats::Stats::new(queue.clone())), JobSchedule { schedule: j.stats.schedule.clone(), ping_url: j.stats.ping_url.clone() }),
        (
            Arc::new(reproductions::Sampler::new(queue.clone(), config.reproduction.clone())),
            JobSchedule { schedule: config.reproduction.schedule.clone(), ping_url: config.reproduction.ping_url.clone() },
        ),
        (
            Arc::new(gocache_trim::GoCacheTrim::new(queue.clone(), storage, &config.gocache)),
            JobSchedule { schedule: config.gocache.schedule.clone(), ping_url: config.gocache.ping_url.clone() },
        ),
    ];
    let tracker = TaskTracker::new();
    for (job, plan) in jobs {
        tracker.spawn(run_scheduled(job, plan, leadership.clone(), pinger.clone(), shutdown.clone()));
    }
    if let Some(prebuilder) = prebuilder {
        tracker.spawn(run_every(prebuilder, config.prebuild.watch_interval, leadership.clone(), pinger.clone(), shutdown.clone()));
    }
    let deliverer = Arc::new(webhooks::Deliverer::new(queue, &id, j.webhooks.clone(), crate::build_view::ViewConfig::from(&*config)));
    tracker.spawn(deliverer.run(listener, leadership, shutdown.clone()));
    tracker.close();

    shutdown.cancelled().await;
    if tokio::time::timeout(STOP_TIMEOUT, tracker.wait()).await.is_err() {
        warn!(janitor = %id, timeout = ?STOP_TIMEOUT, "janitor jobs did not finish in time; stopping anyway");
    }
    let _ = elector.await;
    info!(janitor = %id, "janitor stopped");
    Ok(())
}

/// Applies migrations, waiting for the database to come up. Returns false when
/// stopped before it could.
pub async fn migrate_when_reachable(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<bool> {
    let mut pause = Duration::from_millis(250);
    loop {
        match db::migrate(&config.database).await {
            Ok(report) => {
                info!(
                    applied = report.applied.len(),
                    already_applied = report.already_applied,
                    procedures = report.procedures,
                    "database schema is current"
                );
                return Ok(true);
            }
            Err(MigrateError::Connect(e)) => {
                warn!(error = %e, retry_in = ?pause, "janitor cannot reach the database to migrate it");
            }
            Err(e) => return Err(e).context("migrating the database"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MIGRATE_RETRY_MAX);
    }
}
