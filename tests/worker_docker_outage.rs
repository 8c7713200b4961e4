//! The Docker daemon stops mid-build: the attempt fails as transient, the build
//! goes back to the queue (not lost, not failed), the worker claims nothing
//! while the daemon is away, and finishes the build once it is back. Runs on a
//! private daemon of its own (scripts/private-dockerd.sh) so the shared one is
//! never touched; its cache volumes are bound to the shared warm ones.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use caddy_build_server::db::BuildStatus;
use support::db::TestDb;
use support::worker::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/private-dockerd.sh");

struct PrivateDocker {
    dir: PathBuf,
    host: String,
}

impl PrivateDocker {
    fn start() -> PrivateDocker {
        // Short path: the daemon's unix sockets live below it.
        let dir = PathBuf::from(format!("/tmp/cbs-dind-{}-{:04x}", std::process::id(), rand_u16()));
        let out = Command::new(SCRIPT).arg("start").arg(&dir).output().unwrap();
        assert!(out.status.success(), "private dockerd: {}", String::from_utf8_lossy(&out.stderr));
        PrivateDocker { host: String::from_utf8(out.stdout).unwrap().trim().to_string(), dir }
    }

    fn restart(&self) {
        let out = Command::new(SCRIPT).arg("start").arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "private dockerd restart: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn kill(&self) {
        assert!(Command::new(SCRIPT).arg("kill").arg(&self.dir).status().unwrap().success());
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").arg("-H").arg(&self.host).args(args).output().unwrap()
    }

    fn containers(&self, filters: &[String]) -> Vec<String> {
        let mut args = vec!["ps", "-aq"];
        for f in filters {
            args.extend(["--filter", f.as_str()]);
        }
        String::from_utf8_lossy(&self.docker(&args).stdout).split_whitespace().map(String::from).collect()
    }
}

impl Drop for PrivateDocker {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).arg("stop").arg(&self.dir).status();
    }
}

fn rand_u16() -> u16 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 65536) as u16
}

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The builder image, and cache volumes bound to the shared daemon's (warm) ones.
fn provision(d: &PrivateDocker, image: &str) {
    // A first mount on the shared daemon gives fresh volumes the image's ownership (uid 1000).
    sh(&format!(
        "docker run --rm -v {GOMOD_VOLUME}:/cache/gomod -v {GOBUILD_VOLUME}:/cache/gobuild {image} true"
    ));
    sh(&format!("docker save {image} | docker -H {} load", d.host));
    for v in [GOMOD_VOLUME, GOBUILD_VOLUME] {
        let mp = Command::new("docker").args(["volume", "inspect", "-f", "{{.Mountpoint}}", v]).output().unwrap();
        let mp = String::from_utf8(mp.stdout).unwrap();
        let out = d.docker(&["volume", "create", "--driver", "local", "--opt", "type=none", "--opt", "o=bind", "--opt", &format!("device={}", mp.trim()), v]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_stopped_mid_build_means_retry_not_loss() {
    let db = TestDb::new().await;
    let docker = PrivateDocker::start();
    provision(&docker, &default_builder_image().await);
    let mut config = worker_config(&db, "w-outage");
    config.worker.docker_host = docker.host.clone();
    // The private daemon has no bridge: the resolve step uses the host's network.
    config.worker.resolve_network = "host".into();
    let worker = start_worker(config);

    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let key = b.build_key.clone();
    wait_for_log(&db.queue, &key, "build: + go build", Duration::from_secs(600)).await;
    docker.kill();

    let retried = wait_for(&db.queue, &key, Duration::from_secs(60), |b| b.status != BuildStatus::Building).await;
    assert_eq!(retried.status, BuildStatus::Queued, "a daemon outage is transient: {:?}", retried.error);
    assert_eq!(retried.attempt, 1);
    assert!(retried.error.as_deref().unwrap_or("").contains("Docker"), "{:?}", retried.error);
    // While the daemon is away, nothing is claimed: once the retry's backoff has
    // passed, the worker wakes for it and goes round its loop (two heartbeats).
    let client = db.client().await;
    support::wait::until("the retry's backoff never passed", Duration::from_secs(120), || async {
        client.query_one("SELECT run_after <= now() FROM cbs.builds WHERE build_key = $1", &[&key]).await.unwrap().get(0)
    })
    .await;
    wait_for_heartbeats(&db, "w-outage", 2, Duration::from_secs(60)).await;
    let waiting = db.queue.get(&key).await.unwrap().unwrap();
    assert_eq!((waiting.status, waiting.attempt), (BuildStatus::Queued, 1), "claimed without Docker");

    docker.restart();
    let done = wait_terminal(&db.queue, &key, Duration::from_secs(20 * 60)).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempt, 2);
    let ours = [format!("name=cbs-{key}-")];
    support::wait::until("the interrupted attempt's container was never removed", Duration::from_secs(120), || async {
        docker.containers(&ours).is_empty()
    })
    .await;
    worker.stop().await;
}
