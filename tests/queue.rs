//! The queue's SQL API against a real Postgres: dedup, claiming, fencing,
//! leases, retries, release and cancellation.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use caddy_build_server::db::{BuildStatus, DbError, Queue, WorkerInfo};
use support::db::{nth_spec, spec, TestDb};
use serde_json::json;
use tokio::sync::Barrier;

const LEASE: Duration = Duration::from_secs(60);

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn same_spec_in_another_order_is_one_build() {
    let db = TestDb::new().await;
    let a = db.queue.submit(&spec(&[("github.com/a/x", "v1.0.0"), ("github.com/b/y/v2", "v2.1.0")]), false).await.unwrap();
    let b = db.queue.submit(&spec(&[("github.com/b/y/v2", "v2.1.0"), ("github.com/a/x", "v1.0.0")]), false).await.unwrap();
    assert_eq!(a.build_key, b.build_key);
    assert_eq!(b.status, BuildStatus::Queued);
    assert_eq!(count(&db, "SELECT count(*) FROM cbs.builds").await, 1);
    assert_eq!(a.spec.plugins[0].module, "github.com/a/x", "stored spec is canonical (sorted)");
    let key = db.queue.build_key(&spec(&[("github.com/b/y/v2", "v2.1.0"), ("github.com/a/x", "v1.0.0")])).await.unwrap();
    assert_eq!(key, a.build_key);
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

#[tokio::test]
async fn different_targets_have_different_keys_and_arm_defaults_to_7() {
    let db = TestDb::new().await;
    let mut arm = nth_spec(1);
    arm["arch"] = json!("arm");
    let mut arm7 = arm.clone();
    arm7["arm"] = json!("7");
    let mut arm6 = arm.clone();
    arm6["arm"] = json!("6");
    let k = |s| { let q = db.queue.clone(); async move { q.build_key(&s).await.unwrap() } };
    let (amd, a, a7, a6) = (k(nth_spec(1)).await, k(arm).await, k(arm7).await, k(arm6).await);
    assert_eq!(a, a7);
    assert_ne!(a, a6);
    assert_ne!(amd, a);
}

#[tokio::test]
async fn tags_are_part_of_the_key_and_default_to_xcaddys() {
    let db = TestDb::new().await;
    let k = |s| { let q = db.queue.clone(); async move { q.build_key(&s).await.unwrap() } };
    let with_tags = |tags: serde_json::Value| {
        let mut s = nth_spec(1);
        s["tags"] = tags;
        s
    };
    // Absent, null and xcaddy's own list (in any order, repeated) are one build.
    let default = k(nth_spec(1)).await;
    assert_eq!(k(with_tags(json!(null))).await, default);
    assert_eq!(k(with_tags(json!(["nopgx", "nobadger", "nomysql", "nopgx"]))).await, default);
    // The canonical spec always carries them: no key from before tags existed comes back.
    let stored = db.queue.submit(&nth_spec(1), false).await.unwrap();
    assert_eq!(stored.spec.tags, Some(vec!["nobadger".into(), "nomysql".into(), "nopgx".into()]));
    let without_tags = {
        let mut c = serde_json::to_value(&stored.spec).unwrap();
        c.as_object_mut().unwrap().remove("tags");
        c
    };
    let old_key: String = db.client().await.query_one("SELECT cbs.canonical_key($1::jsonb)", &[&without_tags]).await.unwrap().get(0);
    assert_ne!(old_key, default, "a spec's key differs from the key it had before tags existed");
    // Other tags, and none at all, are other builds.
    let fewer = k(with_tags(json!(["nomysql", "nobadger"]))).await;
    let none = k(with_tags(json!([]))).await;
    assert_eq!(HashSet::from([&default, &fewer, &none]).len(), 3);
    let sorted = db.queue.submit(&with_tags(json!(["nomysql", "nobadger", "nomysql"])), false).await.unwrap();
    assert_eq!(sorted.spec.tags, Some(vec!["nobadger".into(), "nomysql".into()]), "deduplicated and sorted");
    // SQL's defaults are the ones the xcaddy command leaves out.
    let sql_default: serde_json::Value = db.client().await.query_one("SELECT cbs.default_build_tags()", &[]).await.unwrap().get(0);
    assert_eq!(sql_default, json!(caddy_build_server::xcaddy::DEFAULT_TAGS));
}

#[tokio::test]
async fn existing_builds_are_returned_as_is_and_failed_ones_need_force() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let claimed = db.queue.claim("w1", 1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let again = db.queue.submit(&nth_spec(1), false).await.unwrap();
    assert_eq!(again.status, BuildStatus::Building);
    assert_eq!(db.queue.fail(&b.build_key, 1, "w1", "compile error", false).await.unwrap(), Some(BuildStatus::Failed));
    let again = db.queue.submit(&nth_spec(1), false).await.unwrap();
    assert_eq!(again.status, BuildStatus::Failed);
    assert_eq!(again.error.as_deref(), Some("compile error"));
    let forced = db.queue.submit(&nth_spec(1), true).await.unwrap();
    assert_eq!(forced.status, BuildStatus::Queued);
    assert_eq!(forced.attempt, 1, "attempt numbers go on after a forced rebuild");
    assert_eq!(forced.error, None);
}

#[tokio::test]
async fn eight_concurrent_claimers_claim_each_build_exactly_once() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "SELECT cbs.submit_build(jsonb_build_object(
                 'caddy_version', 'v2.11.9', 'os', 'linux', 'arch', 'amd64',
                 'plugins', jsonb_build_array(jsonb_build_object('module', 'github.com/x/p' || i, 'version', 'v1.0.0'))))
               FROM generate_series(1, 2000) i",
        )
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let queue = Queue::new(caddy_build_server::db::connect_pool(&db.config, "claimer").unwrap());
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let got = queue.claim(&format!("w{w}"), 7, LEASE).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|b| (b.build_key, b.worker_id.unwrap(), b.attempt)));
            }
        }));
    }
    let mut all = Vec::new();
    let mut workers_that_claimed = 0;
    for t in tasks {
        let mine = t.await.unwrap();
        workers_that_claimed += usize::from(!mine.is_empty());
        all.extend(mine);
    }
    let unique: HashSet<_> = all.iter().map(|(k, _, _)| k.clone()).collect();
    assert_eq!(all.len(), 2000, "every build claimed");
    assert_eq!(unique.len(), 2000, "no build claimed twice");
    assert!(all.iter().all(|(_, _, attempt)| *attempt == 1));
    assert!(workers_that_claimed >= 2, "claims were spread over concurrent workers");
    assert_eq!(count(&db, "SELECT count(*) FROM cbs.build_attempts").await, 2000);
    assert_eq!(count(&db, "SELECT count(*) FROM cbs.builds WHERE status = 'building'").await, 2000);
}

#[tokio::test]
async fn oldest_runnable_build_is_claimed_first() {
    let db = TestDb::new().await;
    let first = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let second = db.queue.submit(&nth_spec(2), false).await.unwrap();
    let got = db.queue.claim("w", 1, LEASE).await.unwrap();
    assert_eq!(got[0].build_key, first.build_key);
    let got = db.queue.claim("w", 5, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].build_key, second.build_key);
}

#[tokio::test]
async fn a_stale_attempt_can_neither_complete_nor_fail() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let key = &b.build_key;
    db.queue.claim("w1", 1, LEASE).await.unwrap();
    db.age_leases(LEASE * 2).await;
    assert_eq!(db.queue.rescue_expired().await.unwrap(), 1);
    let now_w2 = db.queue.claim("w2", 1, LEASE).await.unwrap();
    assert_eq!((now_w2[0].attempt, now_w2[0].worker_id.as_deref()), (2, Some("w2")));

    let artifact = json!({"path": "builds/x/caddy", "file_name": "caddy", "sha256": "00", "size": 1});
    assert!(!db.queue.complete(key, 1, "w1", &artifact).await.unwrap(), "old attempt of old owner");
    assert_eq!(db.queue.fail(key, 1, "w1", "late", false).await.unwrap(), None);
    assert!(!db.queue.complete(key, 2, "w1", &artifact).await.unwrap(), "right attempt, wrong owner");
    assert!(!db.queue.complete(key, 1, "w2", &artifact).await.unwrap(), "right owner, wrong attempt");
    assert_eq!(db.queue.append_logs(key, 1, "w1", &[]).await.unwrap(), 0);
    assert_eq!(db.queue.get(key).await.unwrap().unwrap().status, BuildStatus::Building);

    assert!(db.queue.complete(key, 2, "w2", &artifact).await.unwrap());
    let done = db.queue.get(key).await.unwrap().unwrap();
    assert_eq!(done.status, BuildStatus::Succeeded);
    assert_eq!(done.artifact.unwrap().binary.sha256, "00");
    assert!(done.finished_at.is_some());
    assert!(!db.queue.complete(key, 2, "w2", &artifact).await.unwrap(), "completing twice is refused");
}

#[tokio::test]
async fn provenance_is_kept_apart_from_the_artifact() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    db.queue.claim("w", 1, LEASE).await.unwrap();
    let record = json!({"path": "builds/x/caddy", "file_name": "caddy", "size": 1, "sha256": "ab"});
    let mut artifact = record.clone();
    artifact["provenance"] = json!({"go_version": "go1.26.8", "go_mod": "module caddy"});
    assert!(db.queue.complete(&b.build_key, 1, "w", &artifact).await.unwrap());
    let done = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(done.artifact.unwrap()).unwrap(), record);
    let p = done.provenance.unwrap();
    assert_eq!((p.go_version.as_deref(), p.go_mod.as_deref()), (Some("go1.26.8"), Some("module caddy")));
    let stored: serde_json::Value =
        db.client().await.query_one("SELECT artifact FROM cbs.builds WHERE build_key = $1", &[&b.build_key]).await.unwrap().get(0);
    assert_eq!(stored, record, "no provenance in the artifact column");
}

#[tokio::test]
async fn a_row_whose_json_does_not_decode_is_an_error_naming_the_column() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    db.queue.claim("w", 1, LEASE).await.unwrap();
    // An artifact record without the binary's file name and size, as no worker writes it.
    assert!(db.queue.complete(&b.build_key, 1, "w", &json!({"path": "builds/x/caddy", "sha256": "ab"})).await.unwrap());
    match db.queue.get(&b.build_key).await {
        Err(DbError::Decode(message)) => assert!(message.contains("artifact"), "{message}"),
        other => panic!("expected a decoding error, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_leases_are_rescued_until_attempts_run_out() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    for attempt in 1..=3 {
        let got = db.queue.claim("gone", 1, LEASE).await.unwrap();
        assert_eq!(got.len(), 1, "attempt {attempt} claimable at once after a rescue");
        assert_eq!(got[0].attempt, attempt);
        assert_eq!(db.queue.rescue_expired().await.unwrap(), 0, "lease still valid");
        db.age_leases(LEASE * 2).await;
        assert_eq!(db.queue.rescue_expired().await.unwrap(), 1);
    }
    let b = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!(b.status, BuildStatus::Failed);
    assert!(b.error.as_deref().unwrap().contains("lease expired"), "{:?}", b.error);
    assert!(db.queue.claim("w", 1, LEASE).await.unwrap().is_empty());
    let outcomes = count(&db, "SELECT count(*) FROM cbs.build_attempts WHERE outcome = 'expired'").await;
    assert_eq!(outcomes, 3);
}

#[tokio::test]
async fn heartbeat_extends_leases_of_that_worker_only() {
    let db = TestDb::new().await;
    db.queue.submit(&nth_spec(1), false).await.unwrap();
    db.queue.submit(&nth_spec(2), false).await.unwrap();
    let short = Duration::from_secs(10);
    db.queue.claim("a", 1, short).await.unwrap();
    db.queue.claim("b", 1, short).await.unwrap();
    assert_eq!(db.queue.heartbeat("a", LEASE).await.unwrap(), 1);
    assert_eq!(db.queue.heartbeat("nobody", LEASE).await.unwrap(), 0);
    // The short leases run out; a's, renewed for a minute, does not.
    db.age_leases(short * 2).await;
    assert_eq!(db.queue.rescue_expired().await.unwrap(), 1, "only b's lease expired");
    let building = count(&db, "SELECT count(*) FROM cbs.builds WHERE status = 'building' AND worker_id = 'a'").await;
    assert_eq!(building, 1);
}

#[tokio::test]
async fn retryable_failures_back_off_exponentially_then_fail() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let key = &b.build_key;
    let client = db.client().await;
    let delay = |key: String| {
        let c = &client;
        async move {
            let r = c
                .query_one("SELECT extract(epoch FROM run_after - now())::float8 FROM cbs.builds WHERE build_key = $1", &[&key])
                .await
                .unwrap();
            r.get::<_, f64>(0)
        }
    };
    let mut expected = [5.0, 10.0].into_iter();
    for attempt in 1..=3 {
        let got = db.queue.claim("w", 1, LEASE).await.unwrap();
        assert_eq!(got.len(), 1);
        let status = db.queue.fail(key, attempt, "w", "proxy unreachable", true).await.unwrap();
        if attempt < 3 {
            assert_eq!(status, Some(BuildStatus::Queued));
            let d = delay(key.clone()).await;
            let want = expected.next().unwrap();
            assert!((want - 1.0..=want + 0.5).contains(&d), "attempt {attempt}: run_after in {d}s, want ~{want}s");
            assert!(db.queue.claim("w", 1, LEASE).await.unwrap().is_empty(), "not runnable during backoff");
            client.execute("UPDATE cbs.builds SET run_after = now() WHERE build_key = $1", &[key]).await.unwrap();
        } else {
            assert_eq!(status, Some(BuildStatus::Failed), "max_attempts (3) reached");
        }
    }
    let b = db.queue.get(key).await.unwrap().unwrap();
    assert_eq!((b.status, b.attempt), (BuildStatus::Failed, 3));
    assert_eq!(b.error.as_deref(), Some("proxy unreachable"));
}

#[tokio::test]
async fn release_worker_hands_builds_back_without_counting_the_attempt() {
    let db = TestDb::new().await;
    let b1 = db.queue.submit(&nth_spec(1), false).await.unwrap();
    db.queue.submit(&nth_spec(2), false).await.unwrap();
    assert_eq!(db.queue.claim("spot", 2, LEASE).await.unwrap().len(), 2);
    assert_eq!(db.queue.release_worker("spot", "preempted").await.unwrap(), 2);
    let b = db.queue.get(&b1.build_key).await.unwrap().unwrap();
    assert_eq!((b.status, b.attempt, b.worker_id), (BuildStatus::Queued, 1, None), "attempt numbers only grow");
    let again = db.queue.claim("other", 2, LEASE).await.unwrap();
    assert_eq!(again.len(), 2, "released builds are runnable at once");
    assert!(again.iter().all(|b| b.attempt == 2));
    let released = count(&db, "SELECT count(*) FROM cbs.build_attempts WHERE outcome = 'released' AND error = 'preempted'").await;
    assert_eq!(released, 2);
}

#[tokio::test]
async fn attempts_never_repeat_and_released_ones_do_not_use_up_max_attempts() {
    let db = TestDb::new().await;
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    assert_eq!(b.max_attempts, 3);
    // Two attempts handed back, then three that count: the third counted one is final.
    for _ in 0..2 {
        db.queue.claim("spot", 1, LEASE).await.unwrap();
        db.queue.release_worker("spot", "preempted").await.unwrap();
    }
    let mut statuses = Vec::new();
    for _ in 0..3 {
        db.client().await.execute("UPDATE cbs.builds SET run_after = now()", &[]).await.unwrap();
        let c = db.queue.claim("w", 1, LEASE).await.unwrap().pop().expect("runnable");
        statuses.push(db.queue.fail(&c.build_key, c.attempt, "w", "proxy unreachable", true).await.unwrap().unwrap());
    }
    assert_eq!(statuses, [BuildStatus::Queued, BuildStatus::Queued, BuildStatus::Failed]);
    let rows = db
        .client()
        .await
        .query("SELECT attempt, outcome FROM cbs.build_attempts WHERE build_key = $1 ORDER BY id", &[&b.build_key])
        .await
        .unwrap();
    let rows: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected = [(1, "released"), (2, "released"), (3, "retried"), (4, "retried"), (5, "failed")];
    assert_eq!(rows, expected.map(|(a, o)| (a, o.to_string())));

    // An administrator's requeue starts the count again, the numbers go on.
    let again = db.queue.requeue(&b.build_key).await.unwrap();
    assert_eq!(again.attempt, 5);
    let c = db.queue.claim("w", 1, LEASE).await.unwrap().pop().unwrap();
    assert_eq!(c.attempt, 6);
    assert_eq!(db.queue.fail(&c.build_key, 6, "w", "flaky", true).await.unwrap(), Some(BuildStatus::Queued));
}

#[tokio::test]
async fn cancel_stops_queued_and_running_builds() {
    let db = TestDb::new().await;
    let queued = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let c = db.queue.cancel(&queued.build_key, "not needed").await.unwrap();
    assert_eq!((c.status, c.error.as_deref()), (BuildStatus::Cancelled, Some("not needed")));
    assert!(db.queue.claim("w", 5, LEASE).await.unwrap().is_empty(), "a cancelled build is never claimed");

    let running = db.queue.submit(&nth_spec(2), false).await.unwrap();
    db.queue.claim("w", 1, LEASE).await.unwrap();
    let c = db.queue.cancel(&running.build_key, "admin").await.unwrap();
    assert_eq!(c.status, BuildStatus::Cancelled);
    assert!(!db.queue.complete(&running.build_key, 1, "w", &json!({})).await.unwrap(), "worker is fenced out");
    assert_eq!(db.queue.heartbeat("w", LEASE).await.unwrap(), 0);

    let requeued = db.queue.requeue(&running.build_key).await.unwrap();
    assert_eq!((requeued.status, requeued.attempt), (BuildStatus::Queued, 1), "attempt numbers go on after a requeue");
    assert!(matches!(db.queue.cancel(&"0".repeat(64), "x").await, Err(DbError::NotFound(_))));
    assert!(matches!(db.queue.requeue(&"0".repeat(64)).await, Err(DbError::NotFound(_))));
}

#[tokio::test]
async fn bad_specs_are_rejected_and_nothing_is_stored() {
    let db = TestDb::new().await;
    let base = nth_spec(1);
    let with = |k: &str, v: serde_json::Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    let plugin = |m: &str, v: &str| with("plugins", json!([{"module": m, "version": v}]));
    let cases = vec![
        ("relative caddy version", with("caddy_version", json!("latest")), "caddy_version"),
        ("partial caddy version", with("caddy_version", json!("v2.10")), "caddy_version"),
        ("caddy v1", with("caddy_version", json!("v1.0.4")), "caddy_version"),
        ("missing caddy version", { let mut s = base.clone(); s.as_object_mut().unwrap().remove("caddy_version"); s }, "caddy_version"),
        ("unknown os", with("os", json!("plan8")), "os"),
        ("unknown arch", with("arch", json!("z80")), "arch"),
        ("missing arch", { let mut s = base.clone(); s.as_object_mut().unwrap().remove("arch"); s }, "arch"),
        ("arm without arch=arm", with("arm", json!("7")), "arm"),
        ("unknown arm", { let mut s = with("arch", json!("arm")); s["arm"] = json!("9"); s }, "arm"),
        ("missing plugin version", plugin("github.com/a/b", ""), "version"),
        ("latest plugin version", plugin("github.com/a/b", "latest"), "version"),
        ("path traversal module", plugin("../../etc/passwd", "v1.0.0"), "module"),
        ("no domain", plugin("caddy-dns/cloudflare", "v1.0.0"), "module"),
        ("uppercase domain", plugin("GitHub.com/a/b", "v1.0.0"), "module"),
        ("spaces", plugin("github.com/a b/c", "v1.0.0"), "module"),
        ("empty element", plugin("github.com//c", "v1.0.0"), "module"),
        ("v1 suffix", plugin("github.com/a/b/v1", "v1.0.0"), "module"),
        ("v0 suffix", plugin("github.com/a/b/v0", "v0.1.0"), "module"),
        ("major mismatch", plugin("github.com/a/b/v2", "v3.0.0"), "version"),
        ("major without suffix", plugin("github.com/a/b", "v2.0.0"), "version"),
        ("caddy as plugin", plugin("github.com/caddyserver/caddy/v2", "v2.11.9"), "Caddy itself"),
        ("duplicate plugins", with("plugins", json!([
            {"module": "github.com/a/b", "version": "v1.0.0"},
            {"module": "github.com/a/b", "version": "v1.0.1"}])), "more than once"),
        ("plugin not an object", with("plugins", json!(["github.com/a/b"])), "plugins[0]"),
        ("plugins not an array", with("plugins", json!({"x": 1})), "plugins"),
        ("replacement with local path", with("replacements", json!([{"old": "github.com/a/b", "new": "../b", "version": "v1.0.0"}])), "new"),
        ("replacement without version", with("replacements", json!([{"old": "github.com/a/b", "new": "github.com/c/b", "version": ""}])), "version"),
        ("unknown field", with("callback", json!("x")), "callback"),
        ("tags not an array", with("tags", json!("nobadger")), "tags"),
        ("tag not a string", with("tags", json!([1])), "tags[0]"),
        ("shell in a tag", with("tags", json!(["nobadger", "x;rm -rf /"])), "tags[1]"),
        ("comma in a tag", with("tags", json!(["a,b"])), "tags[0]"),
        ("empty tag", with("tags", json!([""])), "tags[0]"),
        ("long tag", with("tags", json!(["t".repeat(65)])), "tags[0]"),
        ("too many tags", with("tags", json!((0..33).map(|i| format!("t{i}")).collect::<Vec<_>>())), "at most 32"),
        ("not an object", json!([1, 2]), "spec"),
    ];
    for (what, spec, needle) in cases {
        match db.queue.submit(&spec, false).await {
            Err(DbError::BadSpec(msg)) => assert!(msg.contains(needle), "{what}: message {msg:?} should mention {needle:?}"),
            other => panic!("{what}: expected BadSpec, got {other:?}"),
        }
    }
    assert_eq!(count(&db, "SELECT count(*) FROM cbs.builds").await, 0);

    // Things that look odd but are valid.
    for ok in [
        plugin("github.com/a/b", "v0.0.0-20191109021931-daa7c04131f5"),
        plugin("github.com/a/b/v2", "v2.3.4-rc.1"),
        plugin("github.com/a/b", "v2.0.0+incompatible"),
        plugin("gopkg.in/yaml.v3", "v3.0.1"),
        plugin("example.com/a_b~c/d-e.f", "v1.2.3"),
        with("replacements", json!([{"old": "github.com/a/b", "new": "github.com/fork/b", "version": "v1.2.3"}])),
    ] {
        db.queue.submit(&ok, false).await.unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[tokio::test]
async fn admin_views_answer() {
    let db = TestDb::new().await;
    db.queue.submit(&nth_spec(1), false).await.unwrap();
    db.queue.submit(&nth_spec(2), false).await.unwrap();
    let b = db.queue.claim("w", 1, LEASE).await.unwrap().remove(0);
    db.queue.fail(&b.build_key, 1, "w", "compile error", false).await.unwrap();
    db.queue.claim("w", 1, LEASE).await.unwrap();
    let client = db.client().await;
    let rows = client.query("SELECT status, builds FROM cbs.queue_overview", &[]).await.unwrap();
    let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(counts[1], ("building".to_string(), 1));
    assert_eq!(counts[3], ("failed".to_string(), 1));
    let active = client.query("SELECT worker_id, target FROM cbs.active_builds", &[]).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].get::<_, String>(1), "linux/amd64");
    let failures = client.query("SELECT error, plugins FROM cbs.recent_failures", &[]).await.unwrap();
    assert_eq!(failures[0].get::<_, String>(0), "compile error");
}

#[tokio::test]
async fn a_worker_restarted_under_the_same_id_hands_on_what_its_previous_process_held() {
    let db = TestDb::new().await;
    let process = |incarnation: &str| WorkerInfo {
        worker_id: "box-1".into(),
        host: "box".into(),
        version: "v".into(),
        max_jobs: 2,
        info: json!({}),
        incarnation: Some(incarnation.into()),
    };
    db.queue.register_worker(&process("first")).await.unwrap();
    let b = db.queue.submit(&nth_spec(1), false).await.unwrap();
    assert_eq!(db.queue.claim_as("box-1", Some("first"), 1, LEASE).await.unwrap().len(), 1);

    // Killed and started again at once under the same id (a container restart).
    db.queue.register_worker(&process("second")).await.unwrap();
    let after = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!(after.status, BuildStatus::Queued, "handed on at once, not after the lease");
    assert!(after.error.as_deref().unwrap_or("").contains("worker box-1 restarted during attempt 1"), "{:?}", after.error);
    let outcome = count(&db, "SELECT count(*) FROM cbs.build_attempts WHERE attempt = 1 AND outcome = 'expired'").await;
    assert_eq!(outcome, 1);
    assert!(!db.queue.complete(&b.build_key, 1, "box-1", &json!({})).await.unwrap(), "the lost attempt is fenced out");

    // The new process renews only what it runs itself.
    assert_eq!(db.queue.heartbeat_as("box-1", Some("second"), LEASE).await.unwrap(), 0);
    let again = db.queue.claim_as("box-1", Some("second"), 1, LEASE).await.unwrap();
    assert_eq!(again[0].attempt, 2);
    assert_eq!(db.queue.heartbeat_as("box-1", Some("second"), LEASE).await.unwrap(), 1);
    assert_eq!(db.queue.heartbeat_as("box-1", Some("first"), LEASE).await.unwrap(), 0);
    // Registering again as the same process changes nothing.
    db.queue.register_worker(&process("second")).await.unwrap();
    assert_eq!(db.queue.get(&b.build_key).await.unwrap().unwrap().status, BuildStatus::Building);
}
