//! The worker component: claims queued builds and runs them in locked-down
//! Docker containers, then publishes the binaries to storage.
//!
//! Start-up: database pool, namespace (which queue this is, for container
//! labels), storage, LISTEN connection, registration in `cbs.workers`; then
//! the claim loop ([`runner`]) until shutdown. SIGTERM/SIGINT (the `shutdown`
//! token) drain; SIGUSR1 (or the `preempt` token) hands every build back at once.

pub mod buildinfo;
mod culprit;
mod failure;
mod job;
mod logs;
mod modules;
mod publish;
pub mod recipe;
pub mod reproduce;
mod runner;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::db::{connect_pool, Listener, Queue, WorkerInfo};
use crate::sandbox::{Owner, Sandbox};
use crate::toolchain::ImageMaker;

pub use failure::JobError;
pub use job::ATTEST_LINE;
pub use publish::{sha256_file, PublishError, Publisher};

/// Waits between attempts to reach the database at start-up.
const STARTUP_RETRY: Duration = Duration::from_secs(2);
/// How long a stopping worker waits for its finished builds' shared cache
/// uploads (the last entries of a build, seconds to S3): bounded, since a
/// preempted host has little time, and a lost upload only costs sharing.
const GOCACHE_SETTLE: Duration = Duration::from_secs(30);

/// Runs the worker until `shutdown` is cancelled; SIGUSR1 means "about to be preempted".
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let preempt = CancellationToken::new();
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("installing the SIGUSR1 handler")?;
    let (p, s) = (preempt.clone(), shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = usr1.recv() => {
                warn!("SIGUSR1: this machine is about to be preempted");
                p.cancel();
            }
            _ = s.cancelled() => {}
        }
    });
    run_with(config, shutdown, preempt).await
}

/// A Docker client; while the daemon's socket is missing, says so and keeps trying.
async fn connect_docker(config: &Config, owner: Owner, shutdown: &CancellationToken, preempt: &CancellationToken) -> Option<Sandbox> {
    let mut wait = Duration::from_secs(1);
    loop {
        match Sandbox::connect(&config.worker, owner.clone()) {
            Ok(s) => return Some(s),
            Err(e) => warn!(error = %e, retry_in = ?wait, "cannot reach the Docker daemon; not claiming builds"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = preempt.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Like [`run`], with preemption signalled by cancelling `preempt` (cloud preemption detectors do).
pub async fn run_with(config: Arc<Config>, shutdown: CancellationToken, preempt: CancellationToken) -> anyhow::Result<()> {
    match crate::db::wait_for_schema(&config.database, "worker", &shutdown).await {
        Err(crate::db::SchemaWaitError::Cancelled) => return Ok(()),
        other => other?,
    }
    let signer = crate::signing::Signer::load_or_generate(&config.signing).context("signing key")?;
    if let Some(detector) = crate::preempt::from_config(&config.worker.preemption) {
        let poll = config.worker.preemption.poll_interval;
        tokio::spawn(crate::preempt::watch(detector, poll, preempt.clone(), shutdown.clone()));
    }
    let worker_id = config.worker.worker_id();
    let queue = Queue::new(connect_pool(&config.database, "cbs-worker").context("database pool")?);
    let namespace = loop {
        match queue.namespace().await {
            Ok(ns) => break ns,
            Err(e) => {
                warn!(error = %e, "worker cannot reach the database yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = preempt.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(STARTUP_RETRY) => {}
                }
            }
        }
    };
    let storage = crate::storage::from_config(&config.storage).await.context("artifact storage")?;
    tokio::fs::create_dir_all(&config.worker.work_dir)
        .await
        .with_context(|| format!("worker.work_dir {}", config.worker.work_dir))?;

    let host = crate::config::hostname();
    let default_go = crate::toolchain::GoVersion::parse(&config.worker.go_version).context("worker.go_version")?;
    // New at every start: a restart under the same id (a container restart keeps
    // hostname and PID) is told apart from the process that ran before it.
    let incarnation = format!("{:016x}", rand::random::<u64>());
    queue
        .register_worker(&WorkerInfo {
            worker_id: worker_id.clone(),
            host: host.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            max_jobs: config.worker.max_jobs as i32,
            info: json!({"image": ImageMaker::image_name_for(&config, default_go), "go_version": default_go.to_string(), "namespace": namespace}),
            incarnation: Some(incarnation.clone()),
        })
        .await
        .context("registering the worker")?;
    info!(worker_id, incarnation, namespace, max_jobs = config.worker.max_jobs, image = %ImageMaker::image_name_for(&config, default_go), "worker started");

    let owner = Owner { namespace: namespace.clone(), worker_id: worker_id.clone() };
    let Some(mut sandbox) = connect_docker(&config, owner, &shutdown, &preempt).await else {
        queue.release_worker(&worker_id, "stopped before Docker was reachable").await.ok();
        return Ok(());
    };
    // After the daemon answered: making the client cannot fail on a missing socket then.
    let images = match ImageMaker::new(&config) {
        Ok(images) => images,
        Err(e) => {
            queue.release_worker(&worker_id, "no Docker client for builder images").await.ok();
            return Err(e).context("builder images");
        }
    };
    let gocache = config.gocache.enabled.then(|| {
        sandbox = sandbox.clone().with_program_volume(&config.gocache.program_volume);
        crate::gocache::GoCache::new(storage.clone(), queue.clone(), config.gocache.clone(), &config.go_proxy)
    });
    let listener_stop = CancellationToken::new();
    let listener = Listener::start(&config.database, listener_stop.clone());
    let ctx = Arc::new(job::JobContext {
        config: config.clone(),
        queue,
        sandbox,
        publisher: Publisher { storage, signer },
        worker_id,
        incarnation,
        images,
        default_go,
        host,
        gocache,
    });
    let gocache = ctx.gocache.clone();
    let result = runner::Runner::new(ctx, listener).run(shutdown, preempt).await;
    if let Some(gocache) = gocache {
        gocache.settle(GOCACHE_SETTLE).await;
    }
    listener_stop.cancel();
    result
}
