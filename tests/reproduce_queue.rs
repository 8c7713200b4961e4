//! Reproductions in the queue, through the real SQL functions: who may claim
//! one (never the worker that built the original, never ahead of a waiting
//! request build), fenced outcomes decided in SQL, leases rescued, the janitor's
//! sampling, and the admin endpoint's answers.

mod support;

use std::time::Duration;

use support::api::{error_message, TestApi};
use caddy_build_server::db::{DbError, Queue};
use support::db::{nth_spec, TestDb};
use serde_json::{json, Value};

const LEASE: Duration = Duration::from_secs(60);
const ADMIN: &str = "admin-secret";
const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A build of `spec` that `worker` built, with a recorded go.mod/go.sum and `sha256`.
async fn succeeded(queue: &Queue, spec: &Value, worker: &str, sha256: &str) -> String {
    let b = queue.submit(spec, false).await.unwrap();
    let claimed = queue.claim(worker, 1, LEASE).await.unwrap();
    assert_eq!(claimed[0].build_key, b.build_key);
    let artifact = json!({
        "path": "builds/x/caddy", "file_name": "caddy", "size": 3, "sha256": sha256,
        "provenance": {"go_mod": "module caddy\n", "go_sum": "", "worker_id": worker, "go_version": "go1.26.8"},
    });
    assert!(queue.complete(&b.build_key, claimed[0].attempt, worker, &artifact).await.unwrap());
    b.build_key
}

#[tokio::test]
async fn another_worker_reproduces_and_sql_decides_the_outcome() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let key = succeeded(q, &nth_spec(1), "w-a", SHA_A).await;

    let r = q.request_reproduction(&key, "admin").await.unwrap();
    assert_eq!((r.status.as_str(), r.original_worker_id.as_str(), r.original_sha256.as_str()), ("queued", "w-a", SHA_A));
    assert_eq!(q.request_reproduction(&key, "admin").await.unwrap().id, r.id, "asking again joins the open one");

    assert!(q.claim_reproductions("w-a", None, 5, LEASE).await.unwrap().is_empty(), "the original worker never reproduces its own build");
    let claimed = q.claim_reproductions("w-b", None, 5, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.id, c.attempt, c.build_key.as_str()), (r.id, 1, key.as_str()));
    assert_eq!(c.provenance.go_mod.as_deref(), Some("module caddy\n"), "the recorded inputs come with the claim");
    assert!(q.claim_reproductions("w-c", None, 5, LEASE).await.unwrap().is_empty(), "claimed once");

    // Fenced: only the current attempt of the current owner reports.
    assert_eq!(q.finish_reproduction(c.id, 1, "w-c", SHA_A, &json!({})).await.unwrap(), None);
    assert_eq!(q.finish_reproduction(c.id, 2, "w-b", SHA_A, &json!({})).await.unwrap(), None);
    assert_eq!(q.heartbeat_reproductions("w-b", None, LEASE).await.unwrap(), 1);
    assert_eq!(q.finish_reproduction(c.id, 1, "w-b", SHA_A, &json!({"go_version": "go1.26.8"})).await.unwrap().as_deref(), Some("reproduced"));
    assert_eq!(q.finish_reproduction(c.id, 1, "w-b", SHA_A, &json!({})).await.unwrap(), None, "reporting twice is refused");

    // A different hash is a mismatch whatever the worker says; the view shows both sides.
    let r2 = q.request_reproduction(&key, "admin").await.unwrap();
    assert_ne!(r2.id, r.id, "a finished reproduction does not block a new one");
    let c2 = q.claim_reproductions("w-b", None, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(q.finish_reproduction(c2.id, c2.attempt, "w-b", SHA_B, &json!({"inputs_changed": ["go.mod"]})).await.unwrap().as_deref(), Some("mismatch"));
    let latest = q.latest_reproduction(&key).await.unwrap().unwrap();
    assert_eq!((latest.status.as_str(), latest.reproduced_sha256.as_deref(), latest.worker_id.as_deref()), ("mismatch", Some(SHA_B), Some("w-b")));
    let client = db.client().await;
    let rows = client
        .query("SELECT original_sha256, reproduced_sha256, original_worker_id, reproducing_worker_id FROM cbs.reproduction_mismatches", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let got: (String, String, String, String) = (rows[0].get(0), rows[0].get(1), rows[0].get(2), rows[0].get(3));
    assert_eq!(got, (SHA_A.into(), SHA_B.into(), "w-a".into(), "w-b".into()));
    let counts: std::collections::HashMap<String, i64> = q.reproduction_counts().await.unwrap().into_iter().collect();
    assert_eq!((counts["reproduced"], counts["mismatch"], counts["failed"]), (1, 1, 0));
}

#[tokio::test]
async fn a_waiting_request_build_goes_first() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let key = succeeded(q, &nth_spec(1), "w-a", SHA_A).await;
    q.request_reproduction(&key, "janitor").await.unwrap();
    let waiting = q.submit(&nth_spec(2), false).await.unwrap();
    assert!(q.claim_reproductions("w-b", None, 1, LEASE).await.unwrap().is_empty(), "background priority: a request build waits");
    let b = q.claim("w-b", 1, LEASE).await.unwrap();
    assert_eq!(b[0].build_key, waiting.build_key);
    assert_eq!(q.claim_reproductions("w-b", None, 1, LEASE).await.unwrap().len(), 1, "claimable once no request build waits");
}

#[tokio::test]
async fn failures_retry_then_end_failed_and_lost_leases_are_rescued() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let key = succeeded(q, &nth_spec(1), "w-a", SHA_A).await;
    let r = q.request_reproduction(&key, "admin").await.unwrap();
    let c = q.claim_reproductions("w-b", None, 1, LEASE).await.unwrap().remove(0);

    // A lease that ran out: back to the queue, the lost attempt fenced out.
    db.client().await.execute("UPDATE cbs.reproductions SET lease_expires_at = now() - interval '1 second' WHERE id = $1", &[&r.id]).await.unwrap();
    assert_eq!(q.rescue_expired_reproductions().await.unwrap(), 1);
    assert_eq!(q.finish_reproduction(c.id, c.attempt, "w-b", SHA_A, &json!({})).await.unwrap(), None);
    let c = q.claim_reproductions("w-c", None, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(c.attempt, 2);

    // Released by a stopping worker: the attempt does not count.
    assert_eq!(q.release_reproductions("w-c", "shutdown").await.unwrap(), 1);
    let c = q.claim_reproductions("w-c", None, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(c.attempt, 3);
    // A retryable failure with attempts left goes back with backoff; a deterministic one ends it.
    assert_eq!(q.fail_reproduction(c.id, c.attempt, "w-c", "proxy down", true).await.unwrap().as_deref(), Some("queued"));
    assert!(q.claim_reproductions("w-c", None, 1, LEASE).await.unwrap().is_empty(), "backing off");
    db.client().await.execute("UPDATE cbs.reproductions SET run_after = now() WHERE id = $1", &[&r.id]).await.unwrap();
    let c = q.claim_reproductions("w-c", None, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(q.fail_reproduction(c.id, c.attempt, "w-c", "build step failed", false).await.unwrap().as_deref(), Some("failed"));
    let latest = q.latest_reproduction(&key).await.unwrap().unwrap();
    assert_eq!((latest.status.as_str(), latest.error.as_deref()), ("failed", Some("build step failed")));
}

#[tokio::test]
async fn only_succeeded_builds_can_be_reproduced() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let queued = q.submit(&nth_spec(1), false).await.unwrap();
    assert!(matches!(q.request_reproduction(&queued.build_key, "admin").await, Err(DbError::Conflict(_))));
    assert!(matches!(q.request_reproduction(&"0".repeat(64), "admin").await, Err(DbError::NotFound(_))));
}

#[tokio::test]
async fn the_janitor_samples_a_share_of_new_builds_once() {
    let db = TestDb::new().await;
    let q = &db.queue;
    let mut keys = Vec::new();
    for n in 0..20 {
        keys.push(succeeded(q, &nth_spec(n), "w-a", SHA_A).await);
    }
    let recent = Duration::from_secs(3600);
    assert_eq!(q.sample_reproductions(0.0, recent, 100).await.unwrap(), 0, "share 0 is off");
    // The sample is by key: exactly the builds whose key falls under the share.
    let under_half = keys.iter().filter(|k| (u32::from_str_radix(&k[..8], 16).unwrap() as f64) / 4294967296.0 < 0.5).count();
    assert_eq!(q.sample_reproductions(0.5, recent, 100).await.unwrap() as usize, under_half);
    assert_eq!(q.sample_reproductions(0.5, recent, 100).await.unwrap(), 0, "never the same build twice");
    assert_eq!(q.sample_reproductions(1.0, recent, 100).await.unwrap() as usize, keys.len() - under_half);
    let client = db.client().await;
    let by: i64 = client.query_one("SELECT count(*) FROM cbs.reproductions WHERE requested_by = 'janitor'", &[]).await.unwrap().get(0);
    assert_eq!(by as usize, keys.len());
}

#[tokio::test]
async fn the_admin_endpoint_queues_and_refuses_with_json() {
    let api = TestApi::start_with(|c| c.api.admin_token = ADMIN.into()).await;
    let q = api.queue();
    let key = succeeded(q, &nth_spec(1), "w-a", SHA_A).await;
    let post = |path: String, token: Option<&str>| {
        let req = api.http.post(api.url(&path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    let path = format!("/api/admin/builds/{key}/reproduce");

    let r = post(path.clone(), None).await.unwrap();
    assert!(error_message(r, 401).await.contains("admin token"));
    let r = post(path.clone(), Some("wrong")).await.unwrap();
    error_message(r, 401).await;
    let r = post("/api/admin/builds/not-a-key/reproduce".into(), Some(ADMIN)).await.unwrap();
    assert!(error_message(r, 400).await.contains("not a build key"));
    let r = post(format!("/api/admin/builds/{}/reproduce", "0".repeat(64)), Some(ADMIN)).await.unwrap();
    assert!(error_message(r, 404).await.contains("not found"));
    let queued = q.submit(&nth_spec(2), false).await.unwrap();
    let r = post(format!("/api/admin/builds/{}/reproduce", queued.build_key), Some(ADMIN)).await.unwrap();
    assert!(error_message(r, 409).await.contains("only a succeeded build"));

    let r = post(path.clone(), Some(ADMIN)).await.unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["original_worker_id"].as_str(), body["original_sha256"].as_str()), (Some("queued"), Some("w-a"), Some(SHA_A)));

    // The status JSON, the build page and the metrics show it.
    let status: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    assert_eq!(status["reproduction"]["status"], "queued", "{status}");
    // (The queued request build would go first: it is cancelled.)
    q.cancel(&queued.build_key, "not needed").await.unwrap();
    let c = q.claim_reproductions("w-b", None, 1, LEASE).await.unwrap().remove(0);
    q.finish_reproduction(c.id, c.attempt, "w-b", SHA_B, &json!({"go_version": "go1.26.8", "inputs_changed": []})).await.unwrap();
    let status: Value = api.get(&format!("/api/builds/{key}")).await.json().await.unwrap();
    let rep = &status["reproduction"];
    assert_eq!((rep["status"].as_str(), rep["original_sha256"].as_str(), rep["reproduced_sha256"].as_str()), (Some("mismatch"), Some(SHA_A), Some(SHA_B)), "{status}");
    assert_eq!((rep["original_worker_id"].as_str(), rep["worker_id"].as_str()), (Some("w-a"), Some("w-b")));
    let page = api.get(&format!("/builds/{key}")).await.text().await.unwrap();
    assert!(page.contains("data-outcome=\"mismatch\"") && page.contains(SHA_B), "{page}");
    assert_eq!(api.metric("cbs_api_reproductions{outcome=\"mismatch\"}").await, 1.0);
    let other: Value = api.get(&format!("/api/builds/{}", queued.build_key)).await.json().await.unwrap();
    assert!(other["reproduction"].is_null());
}
