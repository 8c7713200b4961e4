//! The claim loop. Wakes on `cbs_build_queued` (the listener's broadcast), on a
//! finished job, on the next retry's `run_after`, and on a slow fallback timer;
//! claims up to the free job slots, but only while the Docker daemon answers.
//! Heartbeats the leases, stops a build's container on `cbs_build_cancelled`,
//! and ends in one of two ways: drain (stop claiming, let builds finish within
//! `stop_timeout`, then hand back the rest) or preempt (hand back everything at
//! once, kill the containers, exit). Job slots a claim of builds leaves free go
//! to reproductions ([`super::reproduce`]): background work, woken by
//! `cbs_reproduction_queued`, heartbeated, released and reaped like builds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::job::{self, JobContext};
use super::{recipe, reproduce};
use super::tasks::BuildTasks;
use crate::db::{BuildStatus, Channel, Listener, ListenerEvent};
use crate::sandbox::{SandboxError, Session, SPARE_MAX_AGE};

/// First and longest wait between checks of an unreachable Docker daemon.
const DOCKER_RETRY_MIN: Duration = Duration::from_secs(1);
const DOCKER_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a stopping worker waits for its released jobs to wind down before it aborts them.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A worker silent this many leases is considered gone (its containers are leftovers).
const GONE_AFTER_LEASES: u32 = 2;
/// Task names of reproductions start with this (builds' are their build keys).
const REPRODUCTION_TASK: &str = "reproduction:";

struct Running {
    attempt: i32,
    cancel: CancellationToken,
    /// The job's task: a build handed back and claimed again by this worker
    /// runs in a new task while the old one may still be cleaning up.
    task: tokio::task::Id,
}

pub struct Runner {
    ctx: Arc<JobContext>,
    listener: Listener,
    jobs: BuildTasks,
    running: HashMap<String, Running>,
    /// Reproductions under way, by id; the build key is for their containers.
    reproducing: HashMap<i64, (String, Running)>,
    docker_ok: bool,
    docker_retry: Duration,
    next_wake: Instant,
    /// A session opened while a job slot is free, ahead of the claim that will
    /// fill it, so that a build does not wait for its containers to start.
    spare: Option<Session>,
}

impl Runner {
    pub fn new(ctx: Arc<JobContext>, listener: Listener) -> Runner {
        Runner {
            ctx,
            listener,
            jobs: BuildTasks::default(),
            running: HashMap::new(),
            reproducing: HashMap::new(),
            docker_ok: false,
            docker_retry: DOCKER_RETRY_MIN,
            next_wake: Instant::now(),
            spare: None,
        }
    }

    fn cfg(&self) -> &crate::config::WorkerConfig {
        &self.ctx.config.worker
    }

    pub async fn run(mut self, shutdown: CancellationToken, preempt: CancellationToken) -> anyhow::Result<()> {
        let mut events = self.listener.subscribe();
        let mut heartbeat = tokio::time::interval(self.cfg().heartbeat_interval);
        let mut reap = tokio::time::interval(self.cfg().lease);
        reap.reset();
        let mut trim = tokio::time::interval(self.cfg().images.trim_interval);
        let mut drain_deadline: Option<Instant> = None;
        let mut wake = true;
        loop {
            if drain_deadline.is_some() && self.running.is_empty() && self.reproducing.is_empty() {
                info!("drained: every build finished");
                break;
            }
            if wake && drain_deadline.is_none() {
                self.fill().await;
                wake = false;
            }
            tokio::select! {
                biased;
                _ = preempt.cancelled() => {
                    self.preempt().await;
                    self.close_spare().await;
                    return Ok(());
                }
                _ = shutdown.cancelled(), if drain_deadline.is_none() => {
                    info!(running = self.running.len(), stop_timeout = ?self.cfg().stop_timeout, "stopping: no new claims, letting running builds finish");
                    // The spare stays until the worker exits: removing a container from the
                    // resolve network while a running build resolves has stalled that
                    // build's connection to the module proxy.
                    drain_deadline = Some(Instant::now() + self.cfg().stop_timeout);
                }
                _ = sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() => {
                    warn!(running = self.running.len(), "stop timeout reached: handing running builds back");
                    self.release_all("shutdown: stop timeout reached").await;
                    break;
                }
                Some(ended) = self.jobs.next() => {
                    if let Some(id) = ended.build_key.strip_prefix(REPRODUCTION_TASK).and_then(|id| id.parse::<i64>().ok()) {
                        self.reproduction_ended(id, ended.task, ended.panic).await;
                        wake = true;
                        continue;
                    }
                    // The same build may have been claimed again meanwhile, in a new task.
                    let job = match self.running.get(&ended.build_key) {
                        Some(job) if job.task == ended.task => self.running.remove(&ended.build_key),
                        _ => None,
                    };
                    if let (Some(panic), Some(job)) = (ended.panic, job) {
                        self.panicked(&ended.build_key, job.attempt, &panic).await;
                    }
                    wake = true;
                }
                ev = events.recv() => wake = self.on_event(ev).await,
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = reap.tick(), if self.docker_ok => self.reap().await,
                _ = trim.tick(), if self.docker_ok => self.trim_images().await,
                _ = sleep_until(self.next_wake) => wake = true,
            }
        }
        self.release_all("shutdown").await;
        self.close_spare().await;
        Ok(())
    }

    /// Handles a notification; returns whether to try claiming.
    async fn on_event(&mut self, ev: Result<ListenerEvent, RecvError>) -> bool {
        match ev {
            Ok(ListenerEvent::Notification { channel: Channel::Queued | Channel::ReproductionQueued, .. }) => true,
            Ok(ListenerEvent::Notification { channel: Channel::Cancelled, build_key }) => {
                if self.running.contains_key(&build_key) {
                    self.recheck(&build_key).await;
                }
                false
            }
            Ok(ListenerEvent::Notification { .. }) => false,
            // A notification may have been missed: re-read everything we depend on.
            Ok(ListenerEvent::Reconnected) | Err(RecvError::Lagged(_)) => {
                let keys: Vec<String> = self.running.keys().cloned().collect();
                for k in keys {
                    self.recheck(&k).await;
                }
                true
            }
            Err(RecvError::Closed) => false,
        }
    }

    /// Stops a running build that is no longer ours (cancelled, rescued elsewhere).
    async fn recheck(&mut self, key: &str) {
        let Some(job) = self.running.get(key) else { return };
        match self.ctx.queue.get(key).await {
            Ok(Some(b)) if b.status == BuildStatus::Building && b.attempt == job.attempt && b.worker_id.as_deref() == Some(&self.ctx.worker_id) => {}
            Ok(b) => {
                info!(build_key = key, status = ?b.map(|b| b.status), "build no longer ours: stopping its container");
                job.cancel.cancel();
                let _ = self.ctx.sandbox.kill_build(key).await;
            }
            Err(e) => warn!(build_key = key, error = %e, "cannot re-read build state"),
        }
    }

    /// Claims as many builds as there are free slots, if Docker answers.
    async fn fill(&mut self) {
        self.next_wake = Instant::now() + self.cfg().poll_interval;
        let free = self.cfg().max_jobs.saturating_sub(self.running.len() + self.reproducing.len());
        if free == 0 {
            return;
        }
        if !self.docker_ready().await {
            self.next_wake = Instant::now() + self.docker_retry;
            return;
        }
        let (me, incarnation) = (&self.ctx.worker_id, Some(self.ctx.incarnation.as_str()));
        let claimed = match self.ctx.queue.claim_as(me, incarnation, free as i32, self.cfg().lease).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot claim builds");
                self.next_wake = Instant::now() + DOCKER_RETRY_MIN;
                return;
            }
        };
        let got = claimed.len();
        for build in claimed {
            info!(build_key = %build.build_key, attempt = build.attempt, "claimed build");
            let cancel = CancellationToken::new();
            let (key, attempt) = (build.build_key.clone(), build.attempt);
            // The spare's containers run the default Go's image; a build of another
            // Go gets its sandbox once that Go's image is there (made if need be).
            let sandboxing = match self.ctx.go_version_of(&build) {
                Ok(go) if go == self.ctx.default_go => job::Sandboxing::Opened(Box::new(self.session_for(&key).await)),
                _ => job::Sandboxing::AfterImage,
            };
            let ctx = self.ctx.clone();
            let task = self.jobs.spawn(key.clone(), job::run(ctx, build, sandboxing, cancel.clone()));
            self.running.insert(key, Running { attempt, cancel, task });
        }
        if got < free {
            self.schedule_retry_wake().await;
            self.claim_reproductions(free - got).await;
        }
        let left = self.cfg().max_jobs.saturating_sub(self.running.len() + self.reproducing.len());
        // Only for a slot left free: starting containers takes a core for a while,
        // which a build just claimed should have, and a full worker needs none yet.
        if left > 0 && self.spare.is_none() {
            match self.ctx.sandbox.open(None, &self.default_image(), &recipe::STEPS).await {
                Ok(spare) => self.spare = Some(spare),
                Err(e) => warn!(error = %e, "cannot prepare a spare sandbox"),
            }
        }
    }

    /// The spare session, renamed for the build, when it is fresh and still
    /// runs; a new session otherwise.
    async fn session_for(&mut self, build_key: &str) -> Result<Session, SandboxError> {
        if let Some(mut spare) = self.spare.take() {
            if spare.age() < SPARE_MAX_AGE {
                match spare.assign(build_key).await {
                    Ok(()) => return Ok(spare),
                    Err(e) => warn!(build_key, error = %e, "the spare sandbox is unusable; opening a new one"),
                }
            }
            tokio::spawn(spare.close());
        }
        self.ctx.sandbox.open(Some(build_key), &self.default_image(), &recipe::STEPS).await
    }

    fn default_image(&self) -> String {
        self.ctx.images.image_name(self.ctx.default_go)
    }

    async fn close_spare(&mut self) {
        if let Some(spare) = self.spare.take() {
            spare.close().await;
        }
    }

    /// Sleeps no longer than until the next backed-off build becomes runnable.
    async fn schedule_retry_wake(&mut self) {
        if let Ok(Some(at)) = self.ctx.queue.next_run_after().await {
            let wait = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(50);
            self.next_wake = self.next_wake.min(Instant::now() + wait);
        }
    }

    /// Whether Docker answers; after an outage (and at start) also that the
    /// default Go's builder image is there, made from the module proxy if not.
    async fn docker_ready(&mut self) -> bool {
        let result = if self.docker_ok { self.ctx.sandbox.ping().await } else { self.default_image_ready().await };
        match result {
            Ok(()) => {
                if !self.docker_ok {
                    info!("Docker daemon reachable and builder image present: claiming builds");
                    self.reap().await;
                }
                self.docker_ok = true;
                self.docker_retry = DOCKER_RETRY_MIN;
                true
            }
            Err(e) => {
                error!(error = %e, retry_in = ?self.docker_retry, "cannot run builds: not claiming any until Docker is back");
                self.docker_ok = false;
                self.docker_retry = (self.docker_retry * 2).min(DOCKER_RETRY_MAX);
                false
            }
        }
    }

    async fn default_image_ready(&self) -> Result<(), SandboxError> {
        let image = self.default_image();
        match self.ctx.sandbox.check(&image).await {
            Err(SandboxError::ImageMissing(_)) => {
                info!(image, go = %self.ctx.default_go, "making the default builder image from the module proxy's Go toolchain");
                let made = self.ctx.images.ensure(self.ctx.default_go).await;
                made.map(|_| ()).map_err(|e| SandboxError::Docker(format!("cannot make builder image {image}: {e}")))
            }
            other => other.map(|_| ()),
        }
    }

    /// Removes the builder images of other Go versions that no build used for
    /// `worker.images.max_unused_age` (the policy is `cbs.builder_images_to_trim`).
    async fn trim_images(&self) {
        let max_unused = self.cfg().images.max_unused_age;
        match self.ctx.images.trim(&self.ctx.queue, &self.ctx.host, self.ctx.default_go, max_unused).await {
            Ok(r) if !r.removed.is_empty() => info!(removed = ?r.removed, present = r.present, "trimmed builder images"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot trim builder images"),
        }
    }

    /// Removes containers of workers that are gone (and of this worker's finished builds):
    /// at start, whenever Docker comes back, and once per lease period.
    pub async fn reap(&self) {
        let gone_after = self.cfg().lease * GONE_AFTER_LEASES;
        let live = match self.ctx.queue.live_workers(gone_after).await {
            Ok(l) => l,
            Err(e) => return warn!(error = %e, "cannot list live workers; not reaping"),
        };
        let own: Vec<String> = self.running.keys().chain(self.reproducing.values().map(|(k, _)| k)).cloned().collect();
        let spare = self.spare.as_ref().map(|s| s.container_names()).unwrap_or_default();
        match self.ctx.sandbox.reap_leftovers(&live, &own, &spare).await {
            Ok(0) => {}
            Ok(n) => info!(removed = n, "removed leftover build containers"),
            Err(e) => warn!(error = %e, "cannot reap leftover containers"),
        }
    }

    async fn heartbeat(&self) {
        match self.ctx.queue.heartbeat_as(&self.ctx.worker_id, Some(&self.ctx.incarnation), self.cfg().lease).await {
            Ok(held) if (held as usize) < self.running.len() => {
                warn!(held, running = self.running.len(), "some leases were lost; their results will be fenced out")
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "heartbeat failed"),
        }
        if self.reproducing.is_empty() {
            return;
        }
        match self.ctx.queue.heartbeat_reproductions(&self.ctx.worker_id, Some(&self.ctx.incarnation), self.cfg().lease).await {
            Ok(held) if (held as usize) < self.reproducing.len() => {
                warn!(held, running = self.reproducing.len(), "some reproduction leases were lost; their results will be fenced out")
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "reproduction heartbeat failed"),
        }
    }

    /// Preemption: hand every build back at once, then kill the containers.
    async fn preempt(&mut self) {
        warn!(running = self.running.len(), "preemption: releasing every build now");
        self.release_all("preempted").await;
    }

    async fn release_all(&mut self, reason: &str) {
        match self.ctx.queue.release_worker(&self.ctx.worker_id, reason).await {
            Ok(n) => info!(released = n, reason, "builds handed back to the queue"),
            Err(e) => error!(error = %e, "cannot release builds; they return after their lease expires"),
        }
        match self.ctx.queue.release_reproductions(&self.ctx.worker_id, reason).await {
            Ok(0) => {}
            Ok(n) => info!(released = n, reason, "reproductions handed back to the queue"),
            Err(e) => error!(error = %e, "cannot release reproductions; they return after their lease expires"),
        }
        let keys: Vec<String> = self.running.keys().chain(self.reproducing.values().map(|(k, _)| k)).cloned().collect();
        for job in self.running.values().chain(self.reproducing.values().map(|(_, j)| j)) {
            job.cancel.cancel();
        }
        self.kill_builds(&keys).await;
        let jobs = &mut self.jobs;
        if tokio::time::timeout(STOP_GRACE, async { while jobs.next().await.is_some() {} }).await.is_err() {
            warn!("build tasks did not stop in time; aborting them");
            self.jobs.abort_all();
        }
        // A job winding down may have started a container after the first sweep.
        self.kill_builds(&keys).await;
        self.running.clear();
        self.reproducing.clear();
    }

    /// Fills up to `free` slots with reproductions (the SQL side holds them back
    /// while a request build waits, and never hands out one of our own builds).
    async fn claim_reproductions(&mut self, free: usize) {
        let (me, incarnation) = (&self.ctx.worker_id, Some(self.ctx.incarnation.as_str()));
        let claimed = match self.ctx.queue.claim_reproductions(me, incarnation, free as i32, self.cfg().lease).await {
            Ok(c) => c,
            Err(e) => return warn!(error = %e, "cannot claim reproductions"),
        };
        for r in claimed {
            info!(id = r.id, build_key = %r.build_key, attempt = r.attempt, "claimed reproduction");
            let cancel = CancellationToken::new();
            let (id, key, attempt) = (r.id, r.build_key.clone(), r.attempt);
            let task = self.jobs.spawn(format!("{REPRODUCTION_TASK}{id}"), reproduce::run(self.ctx.clone(), r, cancel.clone()));
            self.reproducing.insert(id, (key, Running { attempt, cancel, task }));
        }
    }

    /// A reproduction's task ended; a panic fails the attempt as retryable.
    async fn reproduction_ended(&mut self, id: i64, task: tokio::task::Id, panic: Option<String>) {
        let Some((key, job)) = self.reproducing.remove(&id) else { return };
        if job.task != task {
            self.reproducing.insert(id, (key, job));
            return;
        }
        let Some(panic) = panic else { return };
        error!(id, build_key = %key, panic, "reproduction task panicked; failing the attempt as retryable");
        self.kill_builds(std::slice::from_ref(&key)).await;
        let error = format!("internal error: the reproduction task panicked: {panic}");
        if let Err(e) = self.ctx.queue.fail_reproduction(id, job.attempt, &self.ctx.worker_id, &error, true).await {
            warn!(id, error = %e, "cannot report the panicked reproduction; its lease will expire");
        }
    }

    /// A bug, not the build's fault: its containers go, and the build goes back
    /// to the queue as a retryable failure (another attempt, maybe elsewhere).
    async fn panicked(&self, key: &str, attempt: i32, panic: &str) {
        error!(build_key = key, attempt, panic, "build task panicked; failing the attempt as retryable");
        self.kill_builds(&[key.to_string()]).await;
        let error = format!("internal error: the build task panicked: {panic}");
        if let Err(e) = self.ctx.queue.fail(key, attempt, &self.ctx.worker_id, &error, true).await {
            warn!(build_key = key, error = %e, "cannot report the panicked attempt; its lease will expire");
        }
    }

    async fn kill_builds(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.ctx.sandbox.kill_build(key).await {
                warn!(build_key = %key, error = %e, "cannot kill build containers");
            }
        }
    }
}
