//! One claimed build, start to finish: resolve → build → verify in the
//! build's sandbox (publishing alongside verify), then `complete_build` or
//! `fail_build`. A cancelled, released or preempted build reports nothing:
//! the queue already moved on, and every report is fenced anyway. Each phase
//! ([`crate::phase`]) is announced in the build's log as it starts; the Caddy
//! modules verify lists go into the provenance.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::failure::{step_failed, JobError};
use super::logs::{forward, LogTarget};
use super::publish::Publisher;
use super::{buildinfo, culprit, modules, recipe};
use crate::attest;
use crate::config::Config;
use crate::db::{Build, BuildArtifact, Provenance, Queue, Toolchain};
use crate::sandbox::{OutputLine, Sandbox, SandboxError, Session, StepOutcome, StepSpec};
use crate::spec::BuildSpec;
use crate::toolchain::{BuilderImage, GoVersion, ImageMaker};

/// How often a final report is tried while the database is unreachable.
const REPORT_ATTEMPTS: u32 = 10;
/// The worker's log line that tells how long the SBOMs and provenance took
/// (made, signed, stored), followed by the milliseconds; read by `make bench`.
pub const ATTEST_LINE: &str = "SBOMs and provenance made, signed and stored in";
/// The build step's environment variables that shape the binary, as provenance records them.
const SHAPING_ENV: &[&str] = &["CGO_ENABLED", "GOOS", "GOARCH", "GOARM", "GOAMD64", "GOFLAGS", "GOTOOLCHAIN", "GOEXPERIMENT"];

/// What every job of a worker shares.
pub struct JobContext {
    pub config: Arc<Config>,
    pub queue: Queue,
    pub sandbox: Sandbox,
    pub publisher: Publisher,
    pub worker_id: String,
    /// This process's incarnation: its claims and heartbeats carry it.
    pub incarnation: String,
    /// Makes and finds the builder image of each Go version on this daemon.
    pub images: ImageMaker,
    /// `worker.go_version`: builds at it may take the spare sandbox (of its image).
    pub default_go: GoVersion,
    /// This worker's host, as builder image uses are recorded under.
    pub host: String,
    /// The build cache shared with other worker hosts (`gocache.enabled`).
    pub gocache: Option<Arc<crate::gocache::GoCache>>,
}

impl JobContext {
    /// The Go a claimed build asks for (the default for a spec stored before
    /// specs carried one).
    pub fn go_version_of(&self, build: &Build) -> Result<GoVersion, JobError> {
        self.go_version_of_spec(&build.spec)
    }

    /// The Go a stored spec asks for (the default when it names none).
    pub fn go_version_of_spec(&self, spec: &BuildSpec) -> Result<GoVersion, JobError> {
        match spec.go_version.as_deref() {
            None => Ok(self.default_go),
            Some(v) => GoVersion::parse(v).map_err(|e| JobError::Deterministic(e.to_string())),
        }
    }
}

/// How a job gets its sandbox: opened by the runner (the spare, for builds at
/// the default Go), or opened by the job once the image of its Go is there.
pub enum Sandboxing {
    Opened(Box<Result<Session, SandboxError>>),
    AfterImage,
}

/// Runs one build in its sandbox (opened, or taken from the spare, by the
/// runner, or opened here after its Go's image is made); `cancel` stops it
/// (container killed, nothing reported).
pub async fn run(ctx: Arc<JobContext>, build: Build, sandboxing: Sandboxing, cancel: CancellationToken) {
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
        let prepared = prepare(&ctx, &build, sandboxing, &tx).await;
        let (session, result) = match prepared {
            Ok((session, image)) => {
                let result = execute(&ctx, &build, &session, &image, &tx, &cancel).await;
                (Ok(session), result)
            }
            Err(e) => (Err(()), Err(e)),
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

/// The build's builder image (made now if the daemon lacks it) and its sandbox.
async fn prepare(ctx: &JobContext, build: &Build, sandboxing: Sandboxing, tx: &mpsc::Sender<OutputLine>) -> Result<(Session, BuilderImage), JobError> {
    let go = ctx.go_version_of(build)?;
    let name = ctx.images.image_name(go);
    if matches!(sandboxing, Sandboxing::AfterImage) {
        say(tx, &format!("builder image {name}: made from the module proxy's Go {go} toolchain if this host lacks it")).await;
    }
    let image = ctx.images.ensure(go).await?;
    if let Err(e) = ctx.queue.builder_image_used(&ctx.host, &image.name, &go.to_string()).await {
        warn!(error = %e, "cannot record the builder image's use");
    }
    let session = match sandboxing {
        Sandboxing::Opened(session) => (*session)?,
        Sandboxing::AfterImage => ctx.sandbox.open(Some(&build.build_key), &image.name, &recipe::STEPS).await?,
    };
    Ok((session, image))
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
    image: &BuilderImage,
    tx: &mpsc::Sender<OutputLine>,
    cancel: &CancellationToken,
) -> Result<(BuildArtifact, Provenance), JobError> {
    phase(tx, "create_environment").await;
    let spec = &build.spec;
    let bad = |e: recipe::RecipeError| JobError::Deterministic(e.to_string());
    let timeouts = &ctx.config.worker.timeouts;
    let mut resolve = recipe::resolve_step(&ctx.config, spec, timeouts.resolve).map_err(bad)?;
    let mut compile = recipe::build_step(&ctx.config, spec, timeouts.build).map_err(bad)?;
    let work = session.work_dir();
    let main_go = work.join("main.go");
    tokio::fs::write(&main_go, recipe::main_go(spec).map_err(bad)?)
        .await
        .map_err(|e| JobError::Transient(format!("{}: {e}", main_go.display())))?;
    if spec.os == "windows" {
        recipe::write_windows_resource_generator(work)
            .await
            .map_err(|e| JobError::Transient(format!("{}: {e}", work.join(recipe::WINRES_DIR).display())))?;
    }
    let target = [spec.os.as_str(), spec.arch.as_str(), spec.arm.as_deref().unwrap_or("")].join("-");
    let shared_cache = shared_cache(ctx, build, image, target.trim_end_matches('-'), work, tx).await;
    if let Some(shared) = &shared_cache {
        shared.resolve_step(&mut resolve, spec);
        shared.build_step(&mut compile);
    }
    say(tx, &format!("worker {} attempt {}: building caddy {} for {}/{} with {} ({})", ctx.worker_id, build.attempt, spec.caddy_version, spec.os, spec.arch, image.go_version.go_name(), image.name)).await;

    step(ctx, session, &resolve, tx, cancel, spec).await?;
    let read = |name: &str| {
        let p = work.join(name);
        async move { tokio::fs::read_to_string(&p).await.unwrap_or_default() }
    };
    let mut provenance = Provenance {
        go_mod: Some(read("go.mod").await),
        go_sum: Some(read("go.sum").await),
        image: Some(session.image().to_string()),
        image_id: Some(image.id.clone()),
        toolchain: Some(Toolchain { module: image.toolchain.clone(), h1: image.toolchain_h1.clone() }),
        worker_id: Some(ctx.worker_id.clone()),
        ..Provenance::default()
    };
    if let (Some(shared), Some(go_sum)) = (&shared_cache, &provenance.go_sum) {
        shared.server.remember_modules(go_sum);
    }
    phase(tx, "compile").await;
    step(ctx, session, &compile, tx, cancel, spec).await?;
    if let Some(shared) = shared_cache {
        shared.server.finish();
    }
    phase(tx, "cleanup").await;
    let binary = work.join(recipe::OUT_DIR).join(spec.binary_name());
    // Every binary's Go build information must list each plugin; binaries this
    // host can run must also start and list their modules. Publishing (binary,
    // then SBOMs and provenance, which the build information feeds) runs
    // alongside; the objects of a binary that fails verification are deleted
    // again (no build record points at them yet).
    let info = buildinfo::read(&binary).await.map_err(|e| JobError::Deterministic(format!("verify: {e}")))?;
    let missing = recipe::missing_plugins(spec, &info.deps);
    if !missing.is_empty() {
        return Err(JobError::Deterministic(format!("verify: plugin(s) missing from the binary: {}", missing.join(", "))));
    }
    // The image's label named this Go; the binary is the proof.
    if info.go_version != image.go_version.go_name() {
        return Err(JobError::Deterministic(format!(
            "verify: the binary was built with {}, not {} ({})",
            info.go_version,
            image.go_version.go_name(),
            image.name
        )));
    }
    let verify = async {
        if !recipe::can_verify(spec) {
            return Ok(None);
        }
        step(ctx, session, &recipe::verify_step(&ctx.config, timeouts.verify), tx, cancel, spec).await?;
        Ok(modules::by_plugin(spec, &read(recipe::MODULES_FILE).await))
    };
    let publish = async {
        let started = std::time::Instant::now();
        let artifact = ctx.publisher.publish(&build.build_key, &spec.os, &binary).await?;
        info!(elapsed = ?started.elapsed(), "binary published");
        let started = std::time::Instant::now();
        let inputs = attest_inputs(&compile, &provenance);
        let input = attest::Input {
            build_key: &build.build_key,
            attempt: build.attempt,
            spec,
            file_name: &artifact.file_name,
            sha256: &artifact.sha256,
            size: artifact.size,
            info: &info,
            go_mod: &inputs.go_mod,
            go_sum: &inputs.go_sum,
            build_command: &compile.cmd,
            build_env: &inputs.env,
            image: &inputs.image,
            image_id: &inputs.image_id,
            worker_id: &ctx.worker_id,
            started_on: build.started_at.unwrap_or_else(chrono::Utc::now),
            finished_on: chrono::Utc::now(),
            public_url: &ctx.config.api.public_url,
        };
        let docs = attest::make(&input).map_err(|e| JobError::Deterministic(format!("attestations: {e}")))?;
        let documents = ctx.publisher.publish_documents(&build.build_key, &spec.os, &docs).await?;
        let elapsed = started.elapsed();
        info!(?elapsed, "SBOMs and provenance published");
        Ok::<_, JobError>((artifact, documents, elapsed))
    };
    let (verified, published) = tokio::join!(verify, publish);
    match verified {
        Ok(modules) => {
            provenance.go_version = Some(info.go_version.clone());
            provenance.modules = modules;
        }
        Err(e) => {
            // Whatever part of the publishing got done goes again.
            ctx.publisher.unpublish(&build.build_key, &spec.os).await;
            return Err(e);
        }
    }
    let (artifact, documents, attest_time) = match published {
        Ok(done) => done,
        Err(e) => {
            ctx.publisher.unpublish(&build.build_key, &spec.os).await;
            return Err(e);
        }
    };
    say(tx, &format!("{ATTEST_LINE} {:.1} ms", attest_time.as_secs_f64() * 1e3)).await;
    if cancel.is_cancelled() {
        return Err(JobError::Stopped);
    }
    say(tx, &format!("published {} ({} bytes, sha256 {})", artifact.path, artifact.size, artifact.sha256)).await;
    Ok((BuildArtifact { binary: artifact, documents }, provenance))
}

/// The provenance's recorded inputs, owned, for [`attest::Input`].
struct AttestInputs {
    go_mod: String,
    go_sum: String,
    image: String,
    image_id: String,
    env: Vec<(String, String)>,
}

fn attest_inputs(compile: &StepSpec, provenance: &Provenance) -> AttestInputs {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    AttestInputs {
        go_mod: text(&provenance.go_mod),
        go_sum: text(&provenance.go_sum),
        image: text(&provenance.image),
        image_id: text(&provenance.image_id),
        env: compile.env.iter().filter(|(k, _)| SHAPING_ENV.contains(&k.as_str())).cloned().collect(),
    }
}

/// The shared Go cache for this build, when enabled and available; a build
/// without it only runs at its host's own cache speed, so trouble here is
/// logged and the build goes on.
async fn shared_cache(ctx: &JobContext, build: &Build, image: &BuilderImage, target: &str, work: &std::path::Path, tx: &mpsc::Sender<OutputLine>) -> Option<crate::gocache::ForBuild> {
    let cache = ctx.gocache.as_ref()?;
    match cache.start(&ctx.sandbox, &image.id, &build.build_key, target, &build.spec.caddy_version, work).await {
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
async fn report(ctx: &JobContext, build: &Build, result: Result<(BuildArtifact, Provenance), JobError>, cancel: &CancellationToken) {
    let (key, attempt, me) = (&build.build_key, build.attempt, &ctx.worker_id);
    for i in 0..REPORT_ATTEMPTS {
        if cancel.is_cancelled() {
            info!("stopped; the build was cancelled or handed back");
            return;
        }
        let outcome = match &result {
            Ok((artifact, provenance)) => ctx.queue.complete_with(key, attempt, me, artifact, provenance).await.map(|ok| {
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
