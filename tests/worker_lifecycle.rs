//! A worker's life around a build: cancellation kills the container, a worker
//! without Docker claims nothing, and a build survives its workers: SIGUSR1
//! (preemption) hands it back within a second, SIGKILL leaves it to lease
//! expiry and `cbs.rescue_expired()`, and a third worker finishes it.

mod common;
mod worker_support;

use std::time::{Duration, Instant};

use caddy_build_server::db::BuildStatus;
use common::TestDb;
use worker_support::*;

const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_kills_the_container_within_a_second() {
    let db = TestDb::new().await;
    let worker = start_worker(worker_config(&db, "w-cancel"));
    let b = db.queue.submit(&caddy_spec("linux", "arm64"), false).await.unwrap();
    wait_for_container(&db.queue, &b.build_key, Duration::from_secs(120)).await;
    // Output reaches cbs.build_logs while the build still runs (batches, not at the end).
    let t = Instant::now();
    while !log_lines(&db.queue, &b.build_key).await.iter().any(|l| l.starts_with("resolve: ")) {
        assert!(t.elapsed() < Duration::from_secs(5), "no live output");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(db.queue.get(&b.build_key).await.unwrap().unwrap().status, BuildStatus::Building);
    // The latest step whose command was logged: under way, or just done with its
    // container still running until the build's sandbox closes.
    let log = log_lines(&db.queue, &b.build_key).await;
    let step = ["verify", "build", "resolve"].into_iter().find(|s| log.iter().any(|l| l.starts_with(&format!("{s}: +")))).unwrap();
    let t = Instant::now();
    db.queue.cancel(&b.build_key, "test cancels").await.unwrap();
    // That step's container stops within a second, the build's idle ones soon after.
    while !running_step_containers(&db.queue, &b.build_key, step).await.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(1), "the {step} step's container still running {:?} after cancel", t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_not_running(&db.queue, &b.build_key, Duration::from_secs(5)).await;
    wait_no_containers(&db.queue, &b.build_key, Duration::from_secs(15)).await;
    let after = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!(after.status, BuildStatus::Cancelled);
    // The worker is free again and reported nothing over the cancellation.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(db.queue.get(&b.build_key).await.unwrap().unwrap().status, BuildStatus::Cancelled);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_docker_nothing_is_claimed() {
    let db = TestDb::new().await;
    let mut config = worker_config(&db, "w-nodocker");
    config.worker.docker_host = "unix:///nonexistent/docker.sock".into();
    let worker = start_worker(config);
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!((still.status, still.attempt), (BuildStatus::Queued, 0), "a worker without Docker must not claim");
    let registered = db.client().await.query_one("SELECT count(*) FROM cbs.workers WHERE worker_id = 'w-nodocker'", &[]).await.unwrap();
    assert_eq!(registered.get::<_, i64>(0), 1, "the worker is up and says so");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preempted_then_killed_build_is_finished_by_another_worker() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let key = b.build_key.clone();

    // Worker A claims it; SIGUSR1 hands it back within a second.
    let mut a = spawn_worker_process(&db, &worker_config(&db, "w-a"));
    wait_for_container(&db.queue, &key, Duration::from_secs(120)).await;
    let t = Instant::now();
    signal(&a, "-USR1");
    let released = wait_for(&db.queue, &key, Duration::from_secs(5), |b| b.status == BuildStatus::Queued).await;
    assert!(t.elapsed() < Duration::from_secs(1), "released after {:?}", t.elapsed());
    assert_eq!((released.attempt, released.worker_id), (1, None));
    assert_eq!(counted_attempts(&db, &key).await, 0, "a release does not count as an attempt");
    let status = tokio::task::spawn_blocking(move || a.wait().unwrap()).await.unwrap();
    assert!(status.success(), "a preempted worker exits cleanly: {status:?}");
    wait_not_running(&db.queue, &key, Duration::from_secs(3)).await;
    wait_no_containers(&db.queue, &key, Duration::from_secs(15)).await;

    // Worker B (short lease) claims it and dies by SIGKILL, leaving its container behind.
    let mut cb = worker_config(&db, "w-b");
    cb.worker.lease = Duration::from_secs(6);
    cb.worker.heartbeat_interval = Duration::from_secs(2);
    let mut b_proc = spawn_worker_process(&db, &cb);
    wait_for(&db.queue, &key, Duration::from_secs(60), |b| b.worker_id.as_deref() == Some("w-b")).await;
    wait_for_container(&db.queue, &key, Duration::from_secs(60)).await;
    signal(&b_proc, "-KILL");
    b_proc.wait().unwrap();
    let expired = wait_for(&db.queue, &key, Duration::from_secs(30), |b| {
        b.lease_expires_at.is_some_and(|t| t < chrono::Utc::now())
    })
    .await;
    assert_eq!(expired.status, BuildStatus::Building);
    assert_eq!(db.queue.rescue_expired().await.unwrap(), 1);

    // Worker C finishes it, and removes B's leftover container once B counts as gone.
    let mut cc = worker_config(&db, "w-c");
    cc.worker.lease = Duration::from_secs(6);
    cc.worker.heartbeat_interval = Duration::from_secs(2);
    let c = start_worker(cc);
    let done = wait_terminal(&db.queue, &key, BUILD_LIMIT).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempt, 3, "attempt numbers only grow: A's, B's, C's");
    assert_eq!(counted_attempts(&db, &key).await, 2, "B's attempt counted, A's release did not");
    let t = Instant::now();
    while !build_containers(&db.queue, &key).await.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(60), "B's leftover container was never reaped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rows = db
        .client()
        .await
        .query("SELECT worker_id, outcome FROM cbs.build_attempts WHERE build_key = $1 ORDER BY id", &[&key])
        .await
        .unwrap();
    let history: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        history,
        vec![
            ("w-a".into(), Some("released".into())),
            ("w-b".into(), Some("expired".into())),
            ("w-c".into(), Some("succeeded".into())),
        ]
    );
    c.stop().await;
    remove_scratch(&db);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_running_builds_and_claims_no_more() {
    let db = TestDb::new().await;
    let mut config = worker_config(&db, "w-drain");
    config.worker.max_jobs = 1;
    config.worker.stop_timeout = Duration::from_secs(15 * 60);
    let worker = start_worker(config);
    let first = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    wait_for_container(&db.queue, &first.build_key, Duration::from_secs(120)).await;
    // The build took the spare sandbox; with its only slot busy the worker starts no other.
    assert!(running_spare_containers(&db.queue).await.is_empty(), "a full worker keeps no spare");
    worker.shutdown.cancel();
    let second = db.queue.submit(&caddy_spec("linux", "arm64"), false).await.unwrap();
    tokio::time::timeout(Duration::from_secs(15 * 60), worker.handle).await.expect("worker drains").unwrap().unwrap();
    let first = db.queue.get(&first.build_key).await.unwrap().unwrap();
    assert_eq!(first.status, BuildStatus::Succeeded, "the running build was let finish: {:?}", first.error);
    let second = db.queue.get(&second.build_key).await.unwrap().unwrap();
    assert_eq!((second.status, second.attempt), (BuildStatus::Queued, 0), "nothing claimed while draining");
    let stopped = db.client().await.query_one("SELECT stopped_at IS NOT NULL FROM cbs.workers WHERE worker_id = 'w-drain'", &[]).await.unwrap();
    assert!(stopped.get::<_, bool>(0), "the worker recorded its stop");
    remove_scratch(&db);
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_timeout_hands_running_builds_back() {
    let db = TestDb::new().await;
    let mut config = worker_config(&db, "w-timeout");
    config.worker.stop_timeout = Duration::from_millis(500);
    let worker = start_worker(config);
    let b = db.queue.submit(&caddy_spec("linux", "arm64"), false).await.unwrap();
    wait_for_container(&db.queue, &b.build_key, Duration::from_secs(120)).await;
    worker.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), worker.handle).await.expect("worker stops after its stop timeout").unwrap().unwrap();
    let after = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!((after.status, after.attempt, after.worker_id), (BuildStatus::Queued, 1, None), "released, not lost");
    assert_eq!(counted_attempts(&db, &b.build_key).await, 0, "a release does not count as an attempt");
    wait_not_running(&db.queue, &b.build_key, Duration::from_secs(3)).await;
    wait_no_containers(&db.queue, &b.build_key, Duration::from_secs(15)).await;
}

/// Attempts that count against `max_attempts` (releases do not).
async fn counted_attempts(db: &TestDb, key: &str) -> i32 {
    db.client()
        .await
        .query_one("SELECT attempt - uncounted_attempts FROM cbs.builds WHERE build_key = $1", &[&key])
        .await
        .unwrap()
        .get(0)
}
