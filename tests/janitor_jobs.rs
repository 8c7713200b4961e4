//! The janitor's scheduled jobs against a real database and real storage:
//! retention (files first, then rows; recent and unfinished builds untouched),
//! the rescuer and the heartbeat pings (through the whole janitor), the worker
//! reaper, and api/worker start-up waiting for the schema.

mod support;

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use caddy_build_server::db::{self, BuildStatus, Queue, SchemaState, SchemaWaitError, WorkerInfo};
use caddy_build_server::janitor::{self, job::Job, reaper::Reaper, retention::Retention};
use caddy_build_server::storage::{ArtifactPaths, ByteStream, DynStorage, LocalStorage, Storage, StorageError};
use support::db::{nth_spec, TestDb};
use support::http_recorder::{Answer, Recorder};
use support::janitor::janitor_config;
use support::tempdir::TempDir;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The real local storage, watched: at every delete it records whether the
/// build's row still existed (it must: files go first), and it can be told to
/// fail for one build, as a flaky bucket would.
struct Watched {
    inner: LocalStorage,
    db: tokio_postgres::Client,
    deletes: Mutex<Vec<(String, bool)>>,
    fail_for: Option<String>,
}

#[async_trait]
impl Storage for Watched {
    async fn put_file(&self, path: &str, file: &Path) -> Result<(), StorageError> {
        self.inner.put_file(path, file).await
    }
    async fn put_bytes(&self, path: &str, data: Bytes) -> Result<(), StorageError> {
        self.inner.put_bytes(path, data).await
    }
    async fn size(&self, path: &str) -> Result<Option<u64>, StorageError> {
        self.inner.size(path).await
    }
    async fn get(&self, path: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        self.inner.get(path, range).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let key = prefix.rsplit('/').next().unwrap().to_string();
        let row = self.db.query_opt("SELECT 1 FROM cbs.builds WHERE build_key = $1", &[&key]).await.unwrap().is_some();
        self.deletes.lock().unwrap().push((key.clone(), row));
        if self.fail_for.as_deref() == Some(key.as_str()) {
            return Err(StorageError::Backend("injected failure".into()));
        }
        self.inner.delete_prefix(prefix).await
    }
}

/// A succeeded build with its files in storage.
async fn succeeded(q: &Queue, storage: &dyn Storage, n: usize) -> String {
    let b = q.submit(&nth_spec(n), false).await.unwrap();
    let claimed = q.claim("w1", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed[0].build_key, b.build_key);
    let paths = ArtifactPaths::new(&b.build_key, "linux").unwrap();
    storage.put_bytes(&paths.binary, Bytes::from_static(b"\x7fELF binary")).await.unwrap();
    storage.put_bytes(&paths.sha256, Bytes::from_static(b"abc  caddy\n")).await.unwrap();
    let artifact = json!({"path": paths.binary, "file_name": "caddy", "size": 11, "sha256": "ab".repeat(32)});
    assert!(q.complete(&b.build_key, claimed[0].attempt, "w1", &artifact).await.unwrap());
    b.build_key
}

/// Test fixture only: makes a build look finished `age` ago and last requested `requested` ago.
async fn age(db: &tokio_postgres::Client, key: &str, age: Duration, requested: Duration) {
    db.execute(
        "UPDATE cbs.builds SET created_at = now() - make_interval(secs => $2), finished_at = CASE WHEN finished_at IS NOT NULL THEN now() - make_interval(secs => $2) END,
                last_requested_at = now() - make_interval(secs => $3) WHERE build_key = $1",
        &[&key, &age.as_secs_f64(), &requested.as_secs_f64()],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn retention_deletes_files_then_rows_and_spares_recent_and_unfinished_builds() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let root = TempDir::new("retention");
    let storage = Arc::new(Watched { inner: LocalStorage::new(&root).unwrap(), db: db.client().await, deletes: Mutex::default(), fail_for: None });

    let old = succeeded(q, storage.as_ref(), 1).await;
    let old2 = succeeded(q, storage.as_ref(), 2).await;
    let downloaded = succeeded(q, storage.as_ref(), 3).await;
    let flaky = succeeded(q, storage.as_ref(), 4).await;
    let failed = q.submit(&nth_spec(5), false).await.unwrap().build_key;
    let c = q.claim("w1", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(q.fail(&failed, c[0].attempt, "w1", "compile error", false).await.unwrap(), Some(BuildStatus::Failed));
    let building = q.submit(&nth_spec(6), false).await.unwrap().build_key;
    q.claim("w1", 1, Duration::from_secs(60)).await.unwrap();
    let queued = q.submit(&nth_spec(7), false).await.unwrap().build_key;

    let client = db.client().await;
    for k in [&old, &old2, &flaky, &failed, &building, &queued] {
        age(&client, k, 40 * DAY, 40 * DAY).await;
    }
    // Built long ago, but downloaded yesterday: kept.
    age(&client, &downloaded, 40 * DAY, DAY).await;

    let storage = Arc::new(Watched { fail_for: Some(flaky.clone()), ..Arc::into_inner(storage).unwrap() });
    // Batches of one: the run must loop over batches until nothing is left.
    let job = Retention::new(q.clone(), storage.clone() as DynStorage, 30 * DAY, 1);
    let counts = job.run_once().await.unwrap();

    assert_eq!(counts.get("builds_deleted"), 3, "{counts}");
    assert_eq!(counts.get("files_deleted"), 4, "{counts}");
    assert_eq!(counts.get("storage_errors"), 1, "{counts}");
    let deletes = storage.deletes.lock().unwrap().clone();
    assert!(deletes.iter().all(|(_, row_present)| *row_present), "files must go while the row still exists: {deletes:?}");
    for gone in [&old, &old2, &failed] {
        assert!(q.get(gone).await.unwrap().is_none(), "{gone} should be deleted");
        assert!(!root.join(ArtifactPaths::new(gone, "linux").unwrap().dir).exists());
    }
    for kept in [&downloaded, &building, &queued, &flaky] {
        assert!(q.get(kept).await.unwrap().is_some(), "{kept} must be kept");
    }
    let dl = ArtifactPaths::new(&downloaded, "linux").unwrap();
    assert_eq!(storage.size(&dl.binary).await.unwrap(), Some(11), "recently downloaded build's files untouched");
    assert!(!deletes.iter().any(|(k, _)| k == &downloaded || k == &building || k == &queued));

    // Nothing left to do: the next run does nothing except retry the flaky one.
    let storage2: DynStorage = Arc::new(LocalStorage::new(&root).unwrap());
    let counts = Retention::new(q.clone(), storage2, 30 * DAY, 100).run_once().await.unwrap();
    assert_eq!(counts.get("builds_deleted"), 1, "the flaky build goes once storage works: {counts}");
    assert!(q.get(&flaky).await.unwrap().is_none());
    let counts = Retention::new(q.clone(), storage.clone() as DynStorage, 30 * DAY, 100).run_once().await.unwrap();
    assert!(counts.is_empty(), "{counts}");
}

#[tokio::test]
async fn reaper_forgets_vanished_workers_that_hold_nothing() {
    let db = TestDb::new().await;
    let q = &db.queue;
    for id in ["gone", "busy", "fresh"] {
        q.register_worker(&WorkerInfo { worker_id: id.into(), host: "h".into(), version: "v".into(), max_jobs: 1, info: json!({}), incarnation: None })
            .await
            .unwrap();
    }
    q.submit(&nth_spec(1), false).await.unwrap();
    q.claim("busy", 1, Duration::from_secs(60)).await.unwrap();
    let client = db.client().await;
    client
        .execute("UPDATE cbs.workers SET last_seen_at = now() - interval '3 days' WHERE worker_id IN ('gone', 'busy')", &[])
        .await
        .unwrap();
    let counts = Reaper::new(q.clone(), DAY).run_once().await.unwrap();
    assert_eq!(counts.get("workers_forgotten"), 1);
    let left: Vec<String> = client
        .query("SELECT worker_id FROM cbs.workers ORDER BY worker_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["busy", "fresh"]);
    assert!(Reaper::new(q.clone(), DAY).run_once().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_leader_rescues_expired_leases_on_schedule_and_pings_its_heartbeats() {
    let db = TestDb::new().await;
    let hooks = Recorder::start().await;
    // The stats heartbeat endpoint is broken: logged, never fatal.
    hooks.script("/stats", &vec![Answer::Status(500); 100]);
    let yaml = format!(
        "  rescue:\n    schedule: \"* * * * * *\"\n    ping_url: \"{}\"\n  stats:\n    schedule: \"* * * * * *\"\n    ping_url: \"{}\"\n  reaper:\n    schedule: \"0 0 0 1 1 *\"\n    ping_url: \"http://127.0.0.1:9/unreachable\"\n",
        hooks.url("/rescue"),
        hooks.url("/stats")
    );
    let config = Arc::new(janitor_config(&db.config, "solo", &yaml));
    let stop = CancellationToken::new();
    let janitor = tokio::spawn(janitor::run(config, stop.clone()));

    let pings = hooks.wait_for("/rescue", 1, Duration::from_secs(10)).await;
    assert_eq!(pings[0].method, "GET");
    hooks.wait_for("/stats", 2, Duration::from_secs(10)).await;

    // A worker claims a build with a short lease and vanishes.
    let key = db.queue.submit(&nth_spec(1), false).await.unwrap().build_key;
    db.queue.claim("ghost", 1, Duration::from_millis(500)).await.unwrap();
    // Rescued by the every-second schedule once the lease ran out (bounds a hang only).
    let rescued = support::wait::until_some("the expired build was not rescued", Duration::from_secs(30), || async {
        Some(db.queue.get(&key).await.unwrap().unwrap()).filter(|b| b.status == BuildStatus::Queued)
    })
    .await;
    assert!(rescued.error.unwrap().contains("lease expired"));
    // Pings keep coming after the failing ones: the janitor is alive and well.
    let n = hooks.requests("/rescue").len();
    hooks.wait_for("/rescue", n + 2, Duration::from_secs(5)).await;
    let n = hooks.requests("/stats").len();
    hooks.wait_for("/stats", n + 1, Duration::from_secs(5)).await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), janitor).await.expect("janitor stops").unwrap().unwrap();
}

#[tokio::test]
async fn api_and_workers_wait_for_the_janitor_to_make_the_schema_current() {
    let cfg = support::db::config_for(&support::db::empty_database("empty").await);
    assert_eq!(db::schema_state(&cfg).await.unwrap(), SchemaState::Behind);

    let stop = CancellationToken::new();
    let waiter = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        tokio::spawn(async move { db::wait_for_schema(&cfg, "api", &stop).await })
    };
    // No event to wait on: the waiter's checks are short-lived connections that
    // leave no trace. Its first rechecks (250 ms, then 500 ms) fall in this sleep.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiter.is_finished(), "must wait while the schema is missing");

    db::migrate(&cfg).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("wakes up once migrated").unwrap().unwrap();
    assert_eq!(db::schema_state(&cfg).await.unwrap(), SchemaState::Current);

    // A schema newer than this binary: refuse instead of waiting forever.
    let client = {
        let (c, conn) = tokio_postgres::connect(&cfg.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c
    };
    client
        .execute("INSERT INTO cbs.schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', 'x')", &[])
        .await
        .unwrap();
    let e = db::wait_for_schema(&cfg, "worker", &stop).await.unwrap_err();
    assert!(matches!(e, SchemaWaitError::Newer { version: 9999, .. }), "{e}");
}

#[tokio::test]
async fn queue_statistics_read_the_admin_view_and_the_webhook_backlog() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let key = q.submit(&nth_spec(1), false).await.unwrap().build_key;
    q.submit(&nth_spec(2), false).await.unwrap();
    q.add_callback(&key, "http://127.0.0.1:9/hook").await.unwrap();
    // The oldest queued build was made 90 s ago.
    db.client().await.execute("UPDATE cbs.builds SET created_at = now() - interval '90 seconds' WHERE build_key = $1", &[&key]).await.unwrap();
    let overview = q.queue_overview().await.unwrap();
    let statuses: Vec<&str> = overview.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses, ["queued", "building", "succeeded", "failed", "cancelled"]);
    assert_eq!((overview[0].builds, overview[0].runnable), (2, 2));
    let oldest = overview[0].oldest_age_secs.unwrap();
    assert!((90.0..120.0).contains(&oldest), "oldest queued age {oldest}");
    assert_eq!(q.webhook_backlog().await.unwrap(), 1);

    // The job logs the numbers itself while the queue is busy or they changed, and
    // stays quiet on an idle queue whose numbers did not move.
    let logged = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || LogSink(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let lines = || String::from_utf8(logged.lock().unwrap().clone()).unwrap().lines().filter(|l| l.contains("queue statistics")).count();
    let job = caddy_build_server::janitor::stats::Stats::new(q.clone());
    job.run_once().await.unwrap();
    assert_eq!(lines(), 1, "busy queue is logged");
    assert!(String::from_utf8(logged.lock().unwrap().clone()).unwrap().contains("queued=2"));
    for b in [key, q.build_key(&nth_spec(2)).await.unwrap()] {
        q.cancel(&b, "test").await.unwrap();
    }
    // The pending delivery would keep the queue "busy"; this test is about the builds.
    db.client().await.execute("DELETE FROM cbs.webhook_deliveries", &[]).await.unwrap();
    job.run_once().await.unwrap();
    assert_eq!(lines(), 2, "changed numbers are logged");
    job.run_once().await.unwrap();
    assert_eq!(lines(), 2, "an idle, unchanged queue is not logged again");
}

/// Collects what a test's tracing subscriber writes.
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
