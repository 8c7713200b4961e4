//! One claimed reproduction, start to finish: a worker other than the one that
//! built the original rebuilds it from the recorded inputs and reports the
//! sha256 it got; `cbs.finish_reproduction` compares it with the original's.
//!
//! Steps, in a sandbox of their own ([`STEPS`]):
//! 1. the recorded `go.mod` and `go.sum` and the recipe's `main.go` are written
//!    to the work dir (no resolution: nothing is looked up again);
//! 2. download (network): `go mod tidy`, from the module cache alone first,
//!    through the module proxy when a module is missing. On the recorded inputs
//!    it changes nothing (they are `go mod tidy`'s own output) and only fills
//!    the cache; every module it fetches is checked against the recorded
//!    `go.sum`. Inputs altered since the build (a module's version changed in
//!    the recorded `go.mod`) are followed, not refused: tidy fetches what the
//!    altered `go.mod` names and adds its `go.sum` lines, so the build compiles
//!    that code and yields a different binary, i.e. a mismatch with both
//!    hashes. Which files tidy had to change is kept in the outcome's
//!    `inputs_changed`, the reason for such a mismatch.
//! 3. build (no network): the recipe's own build step ([`recipe::build_step`]),
//!    so a reproduction follows every change of the recipe.
//!
//! The binary is hashed and then discarded with the sandbox: a reproduction
//! never touches the published artifact. Step output goes to the worker's log
//! (debug level); a failed step's last lines go into the recorded error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::failure::{step_failed, JobError};
use super::job::JobContext;
use super::{buildinfo, recipe};
use crate::db::ClaimedReproduction;
use crate::sandbox::{OutputLine, Session, StepNetwork, StepSpec};
use crate::toolchain::BuilderImage;

/// The reproduction's steps, with their network: its sandbox has a container for each.
pub const STEPS: [(&str, StepNetwork); 2] = [("download", StepNetwork::Online), ("build", StepNetwork::None)];
/// Output of the download step's attempt from the module cache alone, shown only if it succeeds.
const OFFLINE_LOG: &str = ".download-offline.log";
/// How often a final report is tried while the database is unreachable.
const REPORT_ATTEMPTS: u32 = 10;

/// What a finished reproduction reports.
struct Reproduced {
    sha256: String,
    detail: serde_json::Value,
}

/// Runs one reproduction in a sandbox of the builder image of the build's Go
/// (made now if this host lacks it); `cancel` stops it (container killed, nothing reported).
pub async fn run(ctx: Arc<JobContext>, r: ClaimedReproduction, cancel: CancellationToken) {
    let span = tracing::info_span!("reproduction", id = r.id, build_key = %r.build_key, attempt = r.attempt);
    async move {
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel::<OutputLine>(1024);
        let drain = tokio::spawn(async move {
            while let Some(l) = rx.recv().await {
                debug!(step = %l.step, line = %l.line, "reproduction output");
            }
        });
        let (result, session) = match open(&ctx, &r).await {
            Ok((session, image)) => (execute(&ctx, &r, &session, &image, &tx, &cancel).await, Some(session)),
            Err(e) => (Err(e), None),
        };
        drop(tx);
        let _ = drain.await;
        if let Some(session) = session {
            session.close().await;
        }
        report(&ctx, &r, result, &cancel).await;
        info!(elapsed = ?started.elapsed(), "reproduction attempt done");
    }
    .instrument(span)
    .await
}

/// The download step: `go mod tidy` on the recorded files, from the cache first,
/// then, for Windows, the version resource as the resolve step made it.
/// Its environment is the build step's with the network settings of a step that
/// downloads, so both see the same Go settings.
pub fn download_step(config: &crate::config::Config, build: &StepSpec, windows_resource: Option<String>, timeout: Duration) -> StepSpec {
    let mut env: Vec<(String, String)> = build.env.iter().filter(|(k, _)| k != "GOPROXY" && k != "GOSUMDB").cloned().collect();
    env.push(("GOPROXY".into(), config.go_proxy.clone()));
    env.push(("GOSUMDB".into(), config.go_sumdb.clone()));
    let script = [
        "set -eu".to_string(),
        format!("if (export GOPROXY=off; go mod tidy) > {OFFLINE_LOG} 2>&1; then"),
        format!("  cat {OFFLINE_LOG}"),
        "else".into(),
        "  echo 'not every module is in the cache: downloading through the module proxy'".into(),
        "  go mod tidy".into(),
        "fi".into(),
        format!("rm -f {OFFLINE_LOG}"),
    ]
    .into_iter()
    // The generator runs here, on the worker's platform, not the target's.
    .chain(windows_resource.map(|c| format!("(unset GOOS GOARCH GOARM; {c})")))
    .collect::<Vec<_>>();
    StepSpec { name: "download".into(), cmd: vec!["/bin/sh".into(), "-c".into(), script.join("\n")], env, timeout }
}

/// The builder image of the build's Go and a sandbox running it.
async fn open(ctx: &JobContext, r: &ClaimedReproduction) -> Result<(Session, BuilderImage), JobError> {
    let go = ctx.go_version_of_spec(&r.spec)?;
    let image = ctx.images.ensure(go).await?;
    if let Err(e) = ctx.queue.builder_image_used(&ctx.host, &image.name, &go.to_string()).await {
        warn!(error = %e, "cannot record the builder image's use");
    }
    let session = ctx.sandbox.open(Some(&r.build_key), &image.name, &STEPS).await?;
    Ok((session, image))
}

async fn execute(
    ctx: &JobContext,
    r: &ClaimedReproduction,
    session: &Session,
    image: &BuilderImage,
    tx: &mpsc::Sender<OutputLine>,
    cancel: &CancellationToken,
) -> Result<Reproduced, JobError> {
    let spec = &r.spec;
    let (Some(go_mod), Some(go_sum)) = (r.provenance.go_mod.clone(), r.provenance.go_sum.clone()) else {
        return Err(JobError::Deterministic("the build has no recorded go.mod and go.sum".into()));
    };
    let bad = |e: recipe::RecipeError| JobError::Deterministic(e.to_string());
    let timeouts = &ctx.config.worker.timeouts;
    let compile = recipe::build_step(&ctx.config, spec, timeouts.build).map_err(bad)?;
    let download = download_step(&ctx.config, &compile, recipe::windows_resource(spec).map_err(bad)?, timeouts.resolve);
    let work = session.work_dir();
    if spec.os == "windows" {
        recipe::write_windows_resource_generator(work)
            .await
            .map_err(|e| JobError::Transient(format!("{}: {e}", work.join(recipe::WINRES_DIR).display())))?;
    }
    for (name, text) in [("go.mod", go_mod.clone()), ("go.sum", go_sum.clone()), ("main.go", recipe::main_go(spec).map_err(bad)?)] {
        write_for_steps(&work.join(name), &text).await?;
    }
    info!(original_worker = %r.original_worker_id, "reproducing from the recorded go.mod and go.sum");

    let started = Instant::now();
    step(ctx, session, &download, tx, cancel).await?;
    let downloaded = started.elapsed();
    let read = |name: &str| {
        let p = work.join(name);
        async move { tokio::fs::read_to_string(&p).await.unwrap_or_default() }
    };
    let mut inputs_changed = Vec::new();
    if read("go.mod").await != go_mod {
        inputs_changed.push("go.mod");
    }
    if read("go.sum").await != go_sum {
        inputs_changed.push("go.sum");
    }
    if !inputs_changed.is_empty() {
        warn!(?inputs_changed, "the recorded inputs were not go mod tidy's output: building what they name");
    }
    step(ctx, session, &compile, tx, cancel).await?;
    let built = started.elapsed() - downloaded;
    let binary = work.join(recipe::OUT_DIR).join(spec.binary_name());
    let ((sha256, size), info) = tokio::try_join!(
        async { super::sha256_file(&binary).await.map_err(|e| JobError::Transient(e.to_string())) },
        async { buildinfo::read(&binary).await.map_err(|e| JobError::Deterministic(format!("reading the binary's build information: {e}"))) },
    )?;
    if cancel.is_cancelled() {
        return Err(JobError::Stopped);
    }
    let detail = json!({
        "size": size,
        "go_version": info.go_version,
        "original_go_version": r.provenance.go_version,
        "image": image.name,
        "image_id": image.id,
        "inputs_changed": inputs_changed,
        "timings": {"download_secs": downloaded.as_secs_f64(), "build_secs": built.as_secs_f64()},
    });
    Ok(Reproduced { sha256, detail })
}

/// Writes a file the steps may rewrite: they run as the unprivileged build user,
/// and `go mod tidy` opens go.mod and go.sum for writing (or the build user owns it
/// when this process may give it away).
async fn write_for_steps(path: &std::path::Path, text: &str) -> Result<(), JobError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| JobError::Transient(format!("{}: {e}", path.display()));
    tokio::fs::write(path, text).await.map_err(io)?;
    if std::os::unix::fs::chown(path, Some(crate::sandbox::BUILD_UID), Some(crate::sandbox::BUILD_UID)).is_err() {
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).await.map_err(io)?;
    }
    Ok(())
}

async fn step(ctx: &JobContext, session: &Session, spec: &StepSpec, tx: &mpsc::Sender<OutputLine>, cancel: &CancellationToken) -> Result<(), JobError> {
    let started = Instant::now();
    let out = session.run(spec, tx, cancel).await?;
    info!(step = %spec.name, exit_code = out.exit_code, elapsed = ?started.elapsed(), "reproduction step finished");
    if out.exit_code != 0 {
        if let Err(e) = ctx.sandbox.ping().await {
            return Err(JobError::Transient(format!("{} step interrupted: {e}", spec.name)));
        }
        // The download step fetches modules like resolve does: its network trouble is transient too.
        let as_step = if spec.name == "download" { "resolve" } else { spec.name.as_str() };
        return Err(match step_failed(as_step, out.exit_code, &out.tail, None) {
            JobError::Deterministic(m) => JobError::Deterministic(m.replacen("resolve step", "download step", 1)),
            JobError::Transient(m) => JobError::Transient(m.replacen("resolve step", "download step", 1)),
            JobError::Stopped => JobError::Stopped,
        });
    }
    Ok(())
}

/// Tells the queue how the attempt ended, retrying while the database is away.
async fn report(ctx: &JobContext, r: &ClaimedReproduction, result: Result<Reproduced, JobError>, cancel: &CancellationToken) {
    let me = &ctx.worker_id;
    for i in 0..REPORT_ATTEMPTS {
        if cancel.is_cancelled() {
            info!("stopped; the reproduction was handed back");
            return;
        }
        let outcome = match &result {
            Ok(done) => ctx.queue.finish_reproduction(r.id, r.attempt, me, &done.sha256, &done.detail).await.map(|status| match status.as_deref() {
                Some("mismatch") => warn!(original = %r.original_sha256, reproduced = %done.sha256, original_worker = %r.original_worker_id, "reproduction MISMATCH"),
                Some(s) => info!(outcome = s, sha256 = %done.sha256, "reproduction finished"),
                None => warn!("finished, but the reproduction is no longer ours (fenced)"),
            }),
            Err(JobError::Stopped) => return,
            Err(e) => ctx.queue.fail_reproduction(r.id, r.attempt, me, &e.to_string(), e.retryable()).await.map(|status| {
                warn!(error = %e, retryable = e.retryable(), new_status = ?status, "reproduction attempt failed")
            }),
        };
        match outcome {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                warn!(error = %e, "cannot report the reproduction's outcome yet; retrying");
                tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(i.min(5))).await;
            }
            Err(e) => return warn!(error = %e, "cannot report the reproduction's outcome"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::spec::BuildSpec;

    #[test]
    fn download_has_the_network_and_the_build_step_none() {
        let config = Config::default();
        let spec: BuildSpec = serde_json::from_value(json!({"caddy_version": "v2.11.9", "plugins": [], "os": "linux", "arch": "amd64"})).unwrap();
        let build = recipe::build_step(&config, &spec, Duration::from_secs(1)).unwrap();
        let download = download_step(&config, &build, recipe::windows_resource(&spec).unwrap(), Duration::from_secs(1));
        let get = |s: &StepSpec, k: &str| s.env.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        assert_eq!(get(&download, "GOPROXY"), vec![config.go_proxy.clone()]);
        assert_eq!(get(&build, "GOPROXY"), vec!["off".to_string()]);
        assert_eq!(get(&download, "GOFLAGS"), get(&build, "GOFLAGS"), "the same Go settings");
        assert!(download.cmd[2].contains("go mod tidy") && !download.cmd[2].contains("go get"), "nothing is resolved again");
        assert_eq!(STEPS, [(download.name.as_str(), StepNetwork::Online), (build.name.as_str(), StepNetwork::None)]);
    }

    #[test]
    fn a_windows_reproduction_makes_the_version_resource_for_the_worker_platform() {
        let config = Config::default();
        let spec: BuildSpec = serde_json::from_value(json!({"caddy_version": "v2.11.9", "os": "windows", "arch": "amd64"})).unwrap();
        let build = recipe::build_step(&config, &spec, Duration::from_secs(1)).unwrap();
        let resource = recipe::windows_resource(&spec).unwrap().expect("windows has a version resource");
        let download = download_step(&config, &build, Some(resource.clone()), Duration::from_secs(1));
        let script = &download.cmd[2];
        let at = script.find(&resource).expect("the resolve step's resource command");
        assert!(script[..at].ends_with("(unset GOOS GOARCH GOARM; "), "{script}");
        assert!(script.find("go mod tidy").unwrap() < at, "after tidy: {script}");
    }
}
