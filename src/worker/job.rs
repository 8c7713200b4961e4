//! One claimed build, start to finish: resolve → build → verify in the
//! build's sandbox (publishing alongside verify), then `complete_build` or
//! `fail_build`. A cancelled, released or preempted build reports nothing:
//! the queue already moved on, and every report is fenced anyway. Each phase
//! ([`crate::phase`]) is announced in the build's log as it starts; the Caddy
//! modules verify lists go into the provenance.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::failure::{step_failed, JobError};
use super::logs::{forward, LogTarget};
use super::publish::Publisher;
use super::{buildinfo, culprit, modules, recipe};
use crate::config::Config;
use crate::db::{Build, Queue};
use crate::sandbox::{OutputLine, Sandbox, SandboxError, Session, StepOutcome, StepSpec};
use crate::spec::BuildSpec;

/// How often a final report is tried while the database is unreachable.
const REPORT_ATTEMPTS: u32 = 10;

/// What every job of a worker shares.
pub struct JobContext {
    pub config: Arc<Config>,
    pub queue: Queue,
    pub sandbox: Sandbox,
    pub publisher: Publisher,
    pub worker_id: String,
    /// This process's incarnation: its claims and heartbeats carry it.
    pub incarnation: String,
    /// The builder image's id, for provenance: set by the runner each time it
    /// finds Docker ready, so a worker started while Docker was down, or an image
    /// rebuilt meanwhile, is recorded right.
    pub image_id: std::sync::Mutex<String>,
    /// The build cache shared with other worker hosts (`gocache.enabled`).
    pub gocache: Option<Arc<crate::gocache::GoCache>>,
}

/// Runs one build in `session` (opened, or taken from the spare, by the
/// runner); `cancel` stops it (container killed, nothing reported).
pub async fn run(ctx: Arc<JobContext>, build: Build, session: Result<Session, SandboxError>, cancel: CancellationToken) {
    let span = tracing::info_span!("build", build_key = %build.build_key, attempt = build.attempt);
    async move {
        let started = std::time::Instant::now();
        let (tx, rx) = mpsc::channel(1024);
        let target = LogTarget {
            queue: ctx.queue.clone(),
            build_key: build.build_key.clone(),
            attempt: build.attempt,
            worker_id: ctx.worker_id.clone(),
        };
        let logs = tokio::spawn(forward(target, rx));
        let result = match &session {
            Ok(session) => execute(&ctx, &build, session, &tx, &cancel).await,
            Err(e) => Err(JobError::from(e.clone())),
        };
        // A cancelled build's containers go at once; otherwise cleaning up waits
        // until the outcome is reported (it is nobody's wait then).
        let mut session = session.ok();
        if cancel.is_cancelled()
            && let Some(s) = session.take()
        {
            s.close().await;
        }
        if let Err(e) = &result
            && !matches!(e, JobError::Stopped)
        {
            say(&tx, &format!("attempt {} failed: {e}", build.attempt)).await;
        }
        drop(tx);
        let _ = logs.await;
        report(&ctx, &build, result, &cancel).await;
        if let Some(session) = session {
            session.close().await;
        }
        info!(elapsed = ?started.elapsed(), "build attempt done");
    }
    .instrument(span)
    .await
}

async fn say(tx: &mpsc::Sender<OutputLine>, line: &str) {
    let _ = tx.send(OutputLine { step: "worker".into(), stderr: false, line: line.into() }).await;
}

/// Announces that the phase `name` starts (see [`crate::phase`]).
async fn phase(tx: &mpsc::Sender<OutputLine>, name: &str) {
    say(tx, &crate::phase::marker(name)).await;
}

async fn execute(
    ctx: &JobContext,
    build: &Build,
    session: &Session,
    tx: &mpsc::Sender<OutputLine>,
    cancel: &CancellationToken,
) -> Result<serde_json::Value, JobError> {
    phase(tx, "create_environment").await;
    let spec: BuildSpec = serde_json::from_value(build.spec.clone())
        .map_err(|e| JobError::Deterministic(format!("unreadable build spec: {e}")))?;
    let bad = |e: recipe::RecipeError| JobError::Deterministic(e.to_string());
    let timeouts = &ctx.config.worker.timeouts;
    let mut resolve = recipe::resolve_step(&ctx.config, &spec, timeouts.resolve).map_err(bad)?;
    let mut compile = recipe::build_step(&ctx.config, &spec, timeouts.build).map_err(bad)?;
    let work = session.work_dir();
    let main_go = work.join("main.go");
    tokio::fs::write(&main_go, recipe::main_go(&spec).map_err(bad)?)
        .await
        .map_err(|e| JobError::Transient(format!("{}: {e}", main_go.display())))?;
    let target = [spec.os.as_str(), spec.arch.as_str(), spec.arm.as_deref().unwrap_or("")].join("-");
    let shared_cache = shared_cache(ctx, build, target.trim_end_matches('-'), work, tx).await;
    if let Some(shared) = &shared_cache {
        shared.resolve_step(&mut resolve);
        shared.build_step(&mut compile);
    }
    say(tx, &format!("worker {} attempt {}: building caddy {} for {}/{}", ctx.worker_id, build.attempt, spec.caddy_version, spec.os, spec.arch)).await;

    step(ctx, session, &resolve, tx, cancel, &spec).await?;
    let read = |name: &str| {
        let p = work.join(name);
        async move { tokio::fs::read_to_string(&p).await.unwrap_or_default() }
    };
    let mut provenance = json!({
        "go_mod": read("go.mod").await,
        "go_sum": read("go.sum").await,
        "image": ctx.sandbox.image(),
        "image_id": ctx.image_id.lock().unwrap().clone(),
        "worker_id": ctx.worker_id,
    });
    phase(tx, "compile").await;
    step(ctx, session, &compile, tx, cancel, &spec).await?;
    if let Some(shared) = shared_cache {
        shared.server.finish();
    }
    phase(tx, "cleanup").await;
    let binary = work.join(recipe::OUT_DIR).join(spec.binary_name());
    // Every binary's Go build information must list each plugin; binaries this
    // host can run must also start and list their modules. Publishing runs
    // alongside; the objects of a binary that fails verification are deleted
    // again (no build record points at them yet). The build information also
    // names the Go version the binary was built with, for the provenance.
    let verify = async {
        let plugins = async {
            let info = buildinfo::read(&binary).await.map_err(|e| JobError::Deterministic(format!("verify: {e}")))?;
            let missing = recipe::missing_plugins(&spec, &info.deps);
            if !missing.is_empty() {
                return Err(JobError::Deterministic(format!("verify: plugin(s) missing from the binary: {}", missing.join(", "))));
            }
            Ok(info.go_version)
        };
        let runs = async {
            if !recipe::can_verify(&spec) {
                return Ok(None);
            }
            step(ctx, session, &recipe::verify_step(&ctx.config, timeouts.verify), tx, cancel, &spec).await?;
            Ok(modules::by_plugin(&spec, &read(recipe::MODULES_FILE).await))
        };
        let (plugins, runs) = tokio::join!(plugins, runs);
        let go_version = plugins?;
        runs.map(|modules| (go_version, modules))
    };
    let publish = async {
        let started = std::time::Instant::now();
        let published = ctx.publisher.publish(&build.build_key, &spec.os, &binary).await;
        info!(elapsed = ?started.elapsed(), ok = published.is_ok(), "publish finished");
        published
    };
    let (verified, published) = tokio::join!(verify, publish);
    match verified {
        Ok((go_version, modules)) => {
            provenance["go_version"] = go_version.into();
            if let Some(modules) = modules {
                provenance["modules"] = json!(modules);
            }
        }
        Err(e) => {
            if published.is_ok() {
                ctx.publisher.unpublish(&build.build_key, &spec.os).await;
            }
            return Err(e);
        }
    }
    let artifact = published?;
    if cancel.is_cancelled() {
        return Err(JobError::Stopped);
    }
    say(tx, &format!("published {} ({} bytes, sha256 {})", artifact.path, artifact.size, artifact.sha256)).await;
    let mut value = serde_json::to_value(&artifact).map_err(|e| JobError::Transient(e.to_string()))?;
    value["provenance"] = provenance;
    Ok(value)
}

/// The shared Go cache for this build, when enabled and available; a build
/// without it only runs at its host's own cache speed, so trouble here is
/// logged and the build goes on.
async fn shared_cache(ctx: &JobContext, build: &Build, target: &str, work: &std::path::Path, tx: &mpsc::Sender<OutputLine>) -> Option<crate::gocache::ForBuild> {
    let cache = ctx.gocache.as_ref()?;
    let image_id = ctx.image_id.lock().unwrap().clone();
    let image_id = if image_id.is_empty() { ctx.sandbox.image().to_string() } else { image_id };
    match cache.start(&ctx.sandbox, &image_id, &build.build_key, target, work).await {
        Ok(shared) => Some(shared),
        Err(e) => {
            warn!(error = %e, "shared Go cache unavailable; building with the host's own cache");
            say(tx, &format!("shared Go cache unavailable, building with this host's own cache: {e}")).await;
            None
        }
    }
}

async fn step(
    ctx: &JobContext,
    session: &Session,
    spec: &StepSpec,
    tx: &mpsc::Sender<OutputLine>,
    cancel: &CancellationToken,
    build: &BuildSpec,
) -> Result<StepOutcome, JobError> {
    let started = std::time::Instant::now();
    let echo = |line: String| OutputLine { step: spec.name.clone(), stderr: false, line };
    let shown = if spec.cmd.len() == 3 && spec.cmd[1] == "-c" { spec.cmd[2].clone() } else { spec.cmd.join(" ") };
    for line in shown.lines().filter(|l| *l != "set -eu") {
        let _ = tx.send(echo(format!("+ {line}"))).await;
    }
    let out = session.run(spec, tx, cancel).await?;
    let elapsed = started.elapsed();
    info!(step = %spec.name, exit_code = out.exit_code, ?elapsed, "step finished");
    let _ = tx.send(echo(format!("{} step exited with status {} after {:.1}s", spec.name, out.exit_code, elapsed.as_secs_f64()))).await;
    if out.exit_code != 0 {
        // A daemon that is shutting down stops its containers: not the build's fault.
        if let Err(e) = ctx.sandbox.ping().await {
            return Err(JobError::Transient(format!("{} step interrupted: {e}", spec.name)));
        }
        let graph = match spec.name.as_str() {
            "build" => tokio::fs::read_to_string(session.work_dir().join(recipe::GRAPH_FILE)).await.unwrap_or_default(),
            _ => String::new(),
        };
        let blamed = culprit::culprit(&spec.name, &out.tail, build, &graph);
        return Err(step_failed(&spec.name, out.exit_code, &out.tail, blamed.as_deref()));
    }
    Ok(out)
}

/// Tells the queue how the attempt ended, retrying while the database is away.
async fn report(ctx: &JobContext, build: &Build, result: Result<serde_json::Value, JobError>, cancel: &CancellationToken) {
    let (key, attempt, me) = (&build.build_key, build.attempt, &ctx.worker_id);
    for i in 0..REPORT_ATTEMPTS {
        if cancel.is_cancelled() {
            info!("stopped; the build was cancelled or handed back");
            return;
        }
        let outcome = match &result {
            Ok(artifact) => ctx.queue.complete(key, attempt, me, artifact).await.map(|ok| {
                if ok { info!("build succeeded") } else { warn!("finished, but the build is no longer ours (fenced)") }
            }),
            Err(JobError::Stopped) => return,
            Err(e) => ctx.queue.fail(key, attempt, me, &e.to_string(), e.retryable()).await.map(|status| {
                warn!(error = %e, retryable = e.retryable(), new_status = ?status, "build attempt failed")
            }),
        };
        match outcome {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                warn!(error = %e, "cannot report the build's outcome yet; retrying");
                tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(i.min(5))).await;
            }
            Err(e) => {
                warn!(error = %e, "cannot report the build's outcome");
                return;
            }
        }
    }
}
