//! A worker's life around a build: cancellation kills the container, a worker
//! without Docker claims nothing, and a build survives its workers: SIGUSR1
//! (preemption) hands it back at once, SIGKILL leaves it to lease expiry and
//! `cbs.rescue_expired()`, and a third worker finishes it.
//!
//! Builds take minutes; the few bounds on time below are what a test is
//! about (a kill or a release comes at once), each far below what the
//! alternative would take, and loose because the machine may be loaded.

mod support;

use std::time::{Duration, Instant};

use caddy_build_server::db::BuildStatus;
use support::db::TestDb;
use support::worker::*;

const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);
/// A container killed or a build handed back "at once": Docker and Postgres
/// answer in well under a second on a quiet machine; many seconds on a loaded
/// one, and still far from the minutes a step or a lease would take.
const KILL_LIMIT: Duration = Duration::from_secs(15);
/// What a worker logs each time it finds no Docker daemon.
const NO_DOCKER: &str = "cannot reach the Docker daemon";

#[tokio::test(flavor = "multi_thread")]
async fn cancel_kills_the_running_container_at_once() {
    let db = TestDb::new().await;
    let worker = start_worker(worker_config(&db, "w-cancel"));
    let b = db.queue.submit(&caddy_spec("linux", "arm64"), false).await.unwrap();
    wait_for_container(&db.queue, &b.build_key, Duration::from_secs(120)).await;
    // Output reaches cbs.build_logs while the build still runs (batches, not at the end).
    wait_for_log(&db.queue, &b.build_key, "resolve: ", Duration::from_secs(120)).await;
    assert_eq!(db.queue.get(&b.build_key).await.unwrap().unwrap().status, BuildStatus::Building);
    // The latest step whose command was logged: under way, or just done with its
    // container still running until the build's sandbox closes.
    let log = log_lines(&db.queue, &b.build_key).await;
    let step = ["verify", "build", "resolve"].into_iter().find(|s| log.iter().any(|l| l.starts_with(&format!("{s}: +")))).unwrap();
    let t = Instant::now();
    db.queue.cancel(&b.build_key, "test cancels").await.unwrap();
    // That step's container is killed at once (a step's own timeout is many
    // minutes), the build's idle ones soon after.
    let what = format!("the {step} step's container still runs after the cancel");
    support::wait::until(&what, KILL_LIMIT, || async { running_step_containers(&db.queue, &b.build_key, step).await.is_empty() }).await;
    eprintln!("the {step} step's container stopped {:?} after the cancel", t.elapsed());
    wait_not_running(&db.queue, &b.build_key, KILL_LIMIT).await;
    wait_no_containers(&db.queue, &b.build_key, Duration::from_secs(120)).await;
    let after = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!(after.status, BuildStatus::Cancelled);
    // The worker drains: the cancelled build's task has ended once it stops, and
    // it reported nothing over the cancellation.
    worker.stop().await;
    assert_eq!(db.queue.get(&b.build_key).await.unwrap().unwrap().status, BuildStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_docker_nothing_is_claimed() {
    let db = TestDb::new().await;
    let config = worker_yaml(&db, "w-nodocker").set("worker.docker_host", "unix:///nonexistent/docker.sock");
    let worker = spawn_worker_process(&config);
    let client = db.client().await;
    let registered = || async {
        let n: i64 = client.query_one("SELECT count(*) FROM cbs.workers WHERE worker_id = 'w-nodocker'", &[]).await.unwrap().get(0);
        n == 1
    };
    support::wait::until("the worker never registered", Duration::from_secs(60), registered).await;
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    // The worker tries Docker again after the submission (its retries back off
    // to 30 s) and still claims nothing.
    let retries = || worker.log_text().matches(NO_DOCKER).count();
    let before = retries();
    support::wait::until("the worker never tried Docker again", Duration::from_secs(120), || async { retries() > before }).await;
    let still = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!((still.status, still.attempt), (BuildStatus::Queued, 0), "a worker without Docker must not claim");
    let status = worker.stop(Duration::from_secs(60)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preempted_then_killed_build_is_finished_by_another_worker() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let key = b.build_key.clone();

    // Worker A claims it; SIGUSR1 hands it back at once, well before its 20 s lease.
    let mut a = spawn_worker_process(&worker_yaml(&db, "w-a"));
    wait_for_container(&db.queue, &key, Duration::from_secs(120)).await;
    let t = Instant::now();
    a.signal("USR1");
    let released = wait_for(&db.queue, &key, KILL_LIMIT, |b| b.status == BuildStatus::Queued).await;
    eprintln!("released {:?} after SIGUSR1", t.elapsed());
    assert_eq!((released.attempt, released.worker_id), (1, None));
    assert_eq!(counted_attempts(&db, &key).await, 0, "a release does not count as an attempt");
    let status = a.exited(Duration::from_secs(120)).await;
    assert!(status.success(), "a preempted worker exits cleanly: {status:?}");
    wait_not_running(&db.queue, &key, KILL_LIMIT).await;
    wait_no_containers(&db.queue, &key, Duration::from_secs(120)).await;

    // Worker B (short lease) claims it and dies by SIGKILL, leaving its container behind.
    let cb = worker_yaml(&db, "w-b").set("worker.lease", "6s").set("worker.heartbeat_interval", "2s");
    let mut b_proc = spawn_worker_process(&cb);
    wait_for(&db.queue, &key, Duration::from_secs(120), |b| b.worker_id.as_deref() == Some("w-b")).await;
    wait_for_container(&db.queue, &key, Duration::from_secs(120)).await;
    b_proc.signal("KILL");
    b_proc.exited(Duration::from_secs(60)).await;
    let expired = wait_for(&db.queue, &key, Duration::from_secs(60), |b| {
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
    // Reaped once B counts as gone (a few of C's 6 s leases).
    support::wait::until("B's leftover container was never reaped", Duration::from_secs(180), || async {
        build_containers(&db.queue, &key).await.is_empty()
    })
    .await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_running_builds_and_claims_no_more() {
    let db = TestDb::new().await;
    let mut config = worker_config(&db, "w-drain");
    config.worker.max_jobs = 1;
    config.worker.stop_timeout = Duration::from_secs(15 * 60);
    let worker = start_worker(config);
    let first = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    // All of the build's containers carry its name: a spare it took is renamed
    // for it by now (one container at a time, so seeing the first is not enough).
    let steps = caddy_build_server::worker::recipe::STEPS.len();
    support::wait::until("the build never had all its containers", Duration::from_secs(300), || async {
        build_containers(&db.queue, &first.build_key).await.len() == steps
    })
    .await;
    // With its only slot busy the worker starts no other spare.
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
    // The bound only catches a hang: that the worker did not wait for the build
    // shows in the build, handed back unfinished (a finished one would not be queued).
    support::wait::within("the worker never stopped", BUILD_LIMIT, worker.handle).await.unwrap().unwrap();
    let after = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!((after.status, after.attempt, after.worker_id), (BuildStatus::Queued, 1, None), "released, not lost");
    assert_eq!(counted_attempts(&db, &b.build_key).await, 0, "a release does not count as an attempt");
    let attempts = db.client().await.query_one("SELECT outcome FROM cbs.build_attempts WHERE build_key = $1", &[&b.build_key]).await.unwrap();
    assert_eq!(attempts.get::<_, Option<String>>(0).as_deref(), Some("released"), "handed back, not run to its end");
    wait_not_running(&db.queue, &b.build_key, KILL_LIMIT).await;
    wait_no_containers(&db.queue, &b.build_key, Duration::from_secs(120)).await;
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
