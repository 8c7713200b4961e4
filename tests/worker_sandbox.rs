//! The sandbox on a real Docker engine, without a Caddy build: the build step's
//! container cannot see the host's environment or files, has no network, runs
//! unprivileged on a read-only root; the resolve step does have network (so the
//! network check can fail); timeouts and cancellation kill the container, and
//! closing the session removes both.

mod support;

use std::time::{Duration, Instant};

use caddy_build_server::config::Config;
use caddy_build_server::sandbox::{Found, OutputLine, Owner, Sandbox, SandboxError, StepOutcome, StepSpec};
use caddy_build_server::spec::BuildSpec;
use caddy_build_server::worker::recipe;
use tokio::sync::mpsc;
use support::tempdir::TempDir;
use tokio_util::sync::CancellationToken;

const KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// The config of test `name` and a checked sandbox in a namespace of this test
/// run's own (`test-sandbox-<name>-<pid>`: leftovers of an earlier, failed run
/// cannot disturb it), with a guard that removes the namespace's containers
/// however the test ends.
async fn ready_sandbox(name: &str) -> (Config, Sandbox, RemoveOnDrop) {
    let config = test_config(name);
    let namespace = format!("test-sandbox-{name}-{}", std::process::id());
    let guard = RemoveOnDrop(vec![namespace.clone()]);
    let sb = Sandbox::connect(&config.worker, Owner { namespace, worker_id: "w-sandbox".into() }).unwrap();
    sb.check(&support::worker::default_builder_image().await).await.expect("Docker and the builder image are ready");
    (config, sb, guard)
}

/// Removes every container of its namespaces when dropped: idle containers of a
/// test that failed half-way would otherwise linger.
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for ns in &self.0 {
            let filter = format!("label=io.caddy-build-server.namespace={ns}");
            let Ok(out) = std::process::Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() else { continue };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker").arg("rm").arg("-f").args(&ids).output();
            }
        }
    }
}

fn spec() -> BuildSpec {
    serde_json::from_value(support::worker::caddy_spec("linux", "amd64")).unwrap()
}

fn with_script(mut step: StepSpec, script: &str) -> StepSpec {
    step.cmd = vec!["/bin/sh".into(), "-c".into(), script.into()];
    step
}

/// A config whose work dirs live under a directory of this test's own.
fn test_config(name: &str) -> Config {
    let dir = TempDir::new(&format!("sandbox-{name}")).keep();
    support::config::ConfigYaml::empty()
        .set("worker.work_dir", dir.display().to_string())
        .set("worker.gomod_cache_volume", support::worker::GOMOD_VOLUME)
        .set("worker.gobuild_cache_volume", support::worker::GOBUILD_VOLUME)
        .config()
}

/// Runs one step in a session of its own, closed afterwards.
async fn one_step(sb: &Sandbox, step: &StepSpec, cancel: &CancellationToken) -> Result<StepOutcome, SandboxError> {
    let session = sb.open(Some(KEY), &support::worker::default_builder_image_name(), &recipe::STEPS).await.unwrap();
    let (tx, _rx) = mpsc::channel(100);
    let out = session.run(step, &tx, cancel).await;
    session.close().await;
    out
}

/// The namespace's containers, once `done` holds for how many there are.
async fn containers_once(sb: &Sandbox, done: impl Fn(usize) -> bool) -> Vec<Found> {
    support::wait::until_some("the containers never reached the expected count", Duration::from_secs(120), || async {
        Some(sb.list_ours(&[]).await.unwrap()).filter(|found| done(found.len()))
    })
    .await
}

fn remove_work_root(config: &Config) {
    std::fs::remove_dir_all(&config.worker.work_dir).ok();
}

#[tokio::test]
async fn build_step_is_isolated_from_the_host() {
    let (config, sb, _cleanup) = ready_sandbox("isolation").await;
    let session = sb.open(Some(KEY), &support::worker::default_builder_image_name(), &recipe::STEPS).await.unwrap();
    let work = session.work_dir().to_path_buf();
    // Beside the build's work dir, in the worker's own work root.
    let marker_file = std::path::Path::new(&config.worker.work_dir).join("host-marker");
    std::fs::write(&marker_file, "host secret").unwrap();
    // SAFETY: set once, before any thread of this test binary reads the environment.
    unsafe { std::env::set_var("CBS_HOST_MARKER", "leaked-secret") };

    let script = format!(
        "echo uid=$(id -u)\n\
         env | grep -q leaked-secret && echo env=leaked || echo env=clean\n\
         cat {marker} 2>/dev/null && echo host_file=visible || echo host_file=absent\n\
         touch /rootfs-write 2>/dev/null && echo rootfs=writable || echo rootfs=readonly\n\
         touch /work/written && echo work=writable\n\
         grep -E '^(CapEff|NoNewPrivs)' /proc/self/status\n\
         echo ifaces=$(ls /sys/class/net | tr '\\n' ,)\n\
         nc -w 3 proxy.golang.org 443 </dev/null >/dev/null 2>&1 && echo network=yes || echo network=no\n",
        marker = marker_file.display()
    );
    let build = with_script(recipe::build_step(&config, &spec(), Duration::from_secs(60)).unwrap(), &script);
    let (tx, mut rx) = mpsc::channel::<OutputLine>(100);
    let out = session.run(&build, &tx, &CancellationToken::new()).await.unwrap();
    drop(tx);
    let mut streamed = Vec::new();
    while let Some(l) = rx.recv().await {
        streamed.push(l.line);
    }
    let text = out.tail.join("\n");
    for want in ["uid=1000", "env=clean", "host_file=absent", "rootfs=readonly", "work=writable", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "ifaces=lo,", "network=no"] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(streamed.iter().any(|l| l == "network=no"), "output is streamed line by line: {streamed:?}");
    assert!(work.join("written").exists());

    // The same probe in the resolve step does reach the proxy: the check above can fail.
    let resolve = with_script(recipe::resolve_step(&config, &spec(), Duration::from_secs(60)).unwrap(), &script);
    let (tx, _rx) = mpsc::channel(100);
    let out = session.run(&resolve, &tx, &CancellationToken::new()).await.unwrap();
    let text = out.tail.join("\n");
    assert!(text.contains("network=yes") && text.contains("env=clean"), "{text}");
    // A container runs one step only: what a step leaves running never meets the next.
    let again = session.run(&with_script(build.clone(), "true"), &tx, &CancellationToken::new()).await;
    assert!(matches!(again, Err(SandboxError::Docker(ref m)) if m.contains("used already")), "{again:?}");
    assert_eq!(sb.list_ours(&[]).await.unwrap().len(), 3, "one container per step");
    session.close().await;
    assert!(sb.list_ours(&[]).await.unwrap().is_empty(), "closing the session removes its containers");
    assert!(!work.exists(), "and its work dir");
    remove_work_root(&config);
}

#[tokio::test]
async fn timeout_and_cancel_kill_the_container() {
    let (config, sb, _cleanup) = ready_sandbox("stop").await;
    let mut step = with_script(recipe::build_step(&config, &spec(), Duration::from_secs(1)).unwrap(), "echo started; sleep 60");
    let t = Instant::now();
    let e = one_step(&sb, &step, &CancellationToken::new()).await.unwrap_err();
    assert!(matches!(e, SandboxError::Timeout { .. }), "{e}");
    // Killed at its 1 s timeout, not left to finish its minute (loose for a loaded machine).
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(sb.list_ours(&[]).await.unwrap().is_empty());

    step.timeout = Duration::from_secs(60);
    let session = sb.open(Some(KEY), &support::worker::default_builder_image_name(), &recipe::STEPS).await.unwrap();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<OutputLine>(100);
    // Cancelled once the step runs (its first line of output), timed from then.
    let cancelled_at = {
        let c = cancel.clone();
        tokio::spawn(async move {
            while let Some(l) = rx.recv().await {
                if l.line == "started" {
                    c.cancel();
                    return Some(Instant::now());
                }
            }
            None
        })
    };
    let e = session.run(&step, &tx, &cancel).await.unwrap_err();
    let ended = Instant::now();
    drop(tx);
    assert!(matches!(e, SandboxError::Cancelled { .. }), "{e}");
    let cancelled_at = cancelled_at.await.unwrap().expect("the step printed its first line");
    // Killed on the cancel, not left to finish its minute (loose for a loaded machine).
    assert!(ended - cancelled_at < Duration::from_secs(30), "{:?}", ended - cancelled_at);
    let running = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=io.caddy-build-server.namespace=test-sandbox-stop-{}", std::process::id()), "--filter", "label=io.caddy-build-server.step=build"])
        .output()
        .unwrap();
    assert!(running.stdout.is_empty(), "the cancelled step's container was killed at once");
    session.close().await;
    assert!(sb.list_ours(&[]).await.unwrap().is_empty());
    remove_work_root(&config);
}

#[tokio::test]
async fn a_step_ends_when_its_process_exits_even_if_a_child_keeps_its_output_open() {
    let (config, sb, _cleanup) = ready_sandbox("background").await;
    let step = with_script(recipe::build_step(&config, &spec(), Duration::from_secs(60)).unwrap(), "sleep 50 & echo done; exit 3");
    let t = Instant::now();
    let out = one_step(&sb, &step, &CancellationToken::new()).await.unwrap();
    assert_eq!((out.exit_code, out.tail), (3, vec!["done".to_string()]));
    // Ended with its process, not when the child let go of its output 50 s later
    // (loose for a loaded machine).
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(sb.list_ours(&[]).await.unwrap().is_empty());
    remove_work_root(&config);
}

#[tokio::test]
async fn reaping_touches_only_gone_workers_of_its_own_namespace() {
    let config = test_config("reap");
    let step = with_script(recipe::build_step(&config, &spec(), Duration::from_secs(120)).unwrap(), "sleep 120");
    let ns = format!("test-reap-{}", std::process::id());
    let other_ns = format!("{ns}-other");
    let _cleanup = RemoveOnDrop(vec![ns.clone(), other_ns.clone()]);
    // Three long steps: a gone worker's, a live worker's, and one of another namespace.
    let mut tasks = Vec::new();
    for (ns, worker) in [(&ns, "w-gone"), (&ns, "w-live"), (&other_ns, "w-gone")] {
        let sb = Sandbox::connect(&config.worker, Owner { namespace: ns.clone(), worker_id: worker.into() }).unwrap();
        sb.check(&support::worker::default_builder_image().await).await.unwrap();
        let step = step.clone();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tasks.push((sb.clone(), c, tokio::spawn(async move { one_step(&sb, &step, &cancel).await })));
    }
    // Each session has three containers.
    let reaper = Sandbox::connect(&config.worker, Owner { namespace: ns.clone(), worker_id: "w-sandbox".into() }).unwrap();
    containers_once(&reaper, |n| n >= 6).await;
    let removed = reaper.reap_leftovers(&["w-live".to_string()], &[], &[]).await.unwrap();
    assert_eq!(removed, 3);
    // The gone worker's session may be removing them too (its step failed); wait for both.
    let left: Vec<String> = containers_once(&reaper, |n| n <= 3).await.into_iter().map(|c| c.worker_id).collect();
    assert_eq!(left, vec!["w-live".to_string(); 3]);
    let other = Sandbox::connect(&config.worker, Owner { namespace: other_ns.clone(), worker_id: "x".into() }).unwrap();
    assert_eq!(other.list_ours(&[]).await.unwrap().len(), 3, "another namespace's containers are untouched");
    for (_, cancel, _) in &tasks {
        cancel.cancel();
    }
    for (_, _, t) in tasks {
        let _ = t.await;
    }
    assert!(reaper.list_ours(&[]).await.unwrap().is_empty());
    assert!(other.list_ours(&[]).await.unwrap().is_empty());
    remove_work_root(&config);
}

#[tokio::test]
async fn a_spare_session_is_kept_until_taken_then_carries_its_build() {
    let (config, sb, _cleanup) = ready_sandbox("spare").await;
    let mut spare = sb.open(None, &support::worker::default_builder_image_name(), &recipe::STEPS).await.unwrap();
    let names: Vec<String> = spare.container_names().iter().map(|n| n.to_string()).collect();
    containers_once(&sb, |n| n >= 3).await;
    let keep: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(sb.reap_leftovers(&[], &[], &keep).await.unwrap(), 0, "the worker's own spare is not a leftover");
    assert!(sb.list_ours(&[]).await.unwrap().iter().all(|c| c.build_key.is_empty()));

    spare.assign(KEY).await.unwrap();
    let found = sb.list_ours(&[]).await.unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|c| c.build_key == KEY && c.name.starts_with(&format!("cbs-{KEY}-"))), "{found:?}");
    let step = with_script(recipe::build_step(&config, &spec(), Duration::from_secs(60)).unwrap(), "echo hi > hello; cat hello");
    let (tx, _rx) = mpsc::channel(100);
    assert_eq!(spare.run(&step, &tx, &CancellationToken::new()).await.unwrap().tail, vec!["hi"]);
    assert!(spare.work_dir().join("hello").exists());
    assert_eq!(sb.kill_build(KEY).await.unwrap(), 3, "a taken spare is found by its build");
    spare.close().await;

    // A spare whose containers died is refused, not handed to a build.
    let mut dead = sb.open(None, &support::worker::default_builder_image_name(), &recipe::STEPS).await.unwrap();
    let name = dead.container_names()[1].to_string();
    // Killed once it runs (a kill before its start would miss it).
    support::wait::until(&format!("{name} never ran"), Duration::from_secs(120), || async {
        let state = std::process::Command::new("docker").args(["inspect", "-f", "{{.State.Running}}", &name]).output().unwrap();
        String::from_utf8_lossy(&state.stdout).trim() == "true"
    })
    .await;
    let killed = std::process::Command::new("docker").args(["kill", &name]).output().unwrap();
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    assert!(dead.assign(KEY).await.is_err());
    dead.close().await;
    assert!(sb.list_ours(&[]).await.unwrap().is_empty());
    remove_work_root(&config);
}

#[tokio::test]
async fn verify_fails_when_caddy_version_fails_and_logs_both_runs_in_order() {
    let (config, sb, _cleanup) = ready_sandbox("verify").await;
    let session = sb.open(Some(KEY), &support::worker::default_builder_image_name(), &recipe::STEPS).await.unwrap();
    // A stand-in binary whose `version` fails (and is slower) while `list-modules` succeeds.
    let out_dir = session.work_dir().join(recipe::OUT_DIR);
    std::fs::create_dir_all(&out_dir).unwrap();
    let fake = out_dir.join("caddy");
    std::fs::write(&fake, "#!/bin/sh\nif [ \"$1\" = version ]; then sleep 0.3; echo broken; exit 2; fi\necho http.handlers.file_server\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (tx, _rx) = mpsc::channel(100);
    let out = session.run(&recipe::verify_step(&config, Duration::from_secs(60)), &tx, &CancellationToken::new()).await.unwrap();
    assert_ne!(out.exit_code, 0, "a failing `caddy version` fails the step");
    assert_eq!(out.tail, vec!["broken", "--- modules", "http.handlers.file_server"]);
    session.close().await;
    remove_work_root(&config);
}
