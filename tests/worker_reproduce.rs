//! Reproduction by a second worker, for real: two worker processes' worth of
//! workers (different ids) on one queue, a real Docker engine, Go toolchain and
//! module proxy. The worker that built a binary never reproduces it; the other
//! rebuilds it from the recorded go.mod/go.sum and gets the same sha256; a
//! recorded input altered afterwards yields a different binary and a mismatch.

mod support;

use std::time::Duration;

use caddy_build_server::db::{BuildStatus, Queue, Reproduction};
use caddy_build_server::storage::Artifact;
use support::db::TestDb;
use support::worker::*;

/// A cold build (empty caches) on two shared cores takes minutes; so does a
/// reproduction that must compile another Caddy release.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Polls the build's latest reproduction until it has ended.
async fn reproduction_ended(queue: &Queue, key: &str, id: i64) -> Reproduction {
    support::wait::until_some(&format!("reproduction {id} not ended"), BUILD_LIMIT, || async {
        let r = queue.latest_reproduction(key).await.unwrap().expect("a reproduction");
        (r.id == id && ["reproduced", "mismatch", "failed"].contains(&r.status.as_str())).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_worker_reproduces_and_an_altered_input_is_a_mismatch() {
    let db = TestDb::new().await;
    let config_a = worker_config(&db, "w-repro-a");
    let store = std::path::PathBuf::from(&config_a.storage.path);
    let worker_a = start_worker(config_a);
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let built = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
    assert_eq!(built.status, BuildStatus::Succeeded, "{:?}", built.error);
    let artifact: Artifact = built.artifact.clone().unwrap().binary;
    let original_build_secs = built.finished_at.unwrap() - built.started_at.unwrap();

    // With only the worker that built it, the reproduction waits: that worker is
    // woken by the queueing, is idle, and still does not claim it.
    let r = db.queue.request_reproduction(&b.build_key, "admin").await.unwrap();
    assert_eq!(r.original_worker_id, "w-repro-a");
    wait_for_heartbeats(&db, "w-repro-a", 2, Duration::from_secs(60)).await;
    let waiting = db.queue.latest_reproduction(&b.build_key).await.unwrap().unwrap();
    assert_eq!((waiting.status.as_str(), waiting.attempt), ("queued", 0), "the original worker never claims its own build's reproduction");

    let worker_b = start_worker(worker_config(&db, "w-repro-b"));
    let done = reproduction_ended(&db.queue, &b.build_key, r.id).await;
    assert_eq!(done.status, "reproduced", "{done:?}");
    assert_eq!(done.worker_id.as_deref(), Some("w-repro-b"));
    assert_eq!((done.original_sha256.as_str(), done.reproduced_sha256.as_deref()), (artifact.sha256.as_str(), Some(artifact.sha256.as_str())));
    assert_eq!(done.detail["inputs_changed"], serde_json::json!([]), "{done:?}");
    assert_eq!(done.detail["go_version"].as_str(), built.provenance.as_ref().unwrap().go_version.as_deref());
    println!(
        "original build {:.1}s (claim to success); reproduction {:.1}s (claim to outcome), steps {}",
        original_build_secs.as_seconds_f64(),
        (done.finished_at.unwrap() - done.started_at.unwrap()).as_seconds_f64(),
        done.detail["timings"]
    );

    // One module's recorded version altered: the reproduction builds what the
    // altered go.mod names, so the binary differs and it is a mismatch.
    let client = db.client().await;
    let altered = client
        .execute(
            "UPDATE cbs.builds SET provenance = jsonb_set(provenance, '{go_mod}',
                 to_jsonb(replace(provenance->>'go_mod', 'github.com/caddyserver/caddy/v2 v2.11.9', 'github.com/caddyserver/caddy/v2 v2.11.8')))
              WHERE build_key = $1 AND provenance->>'go_mod' LIKE '%github.com/caddyserver/caddy/v2 v2.11.9%'",
            &[&b.build_key],
        )
        .await
        .unwrap();
    assert_eq!(altered, 1, "the recorded go.mod names Caddy {CADDY}");
    let r2 = db.queue.request_reproduction(&b.build_key, "admin").await.unwrap();
    let done = reproduction_ended(&db.queue, &b.build_key, r2.id).await;
    assert_eq!(done.status, "mismatch", "{done:?}");
    assert_eq!(done.original_sha256, artifact.sha256);
    let reproduced = done.reproduced_sha256.clone().unwrap();
    assert_ne!(reproduced, artifact.sha256);
    assert_eq!((done.original_worker_id.as_str(), done.worker_id.as_deref()), ("w-repro-a", Some("w-repro-b")));
    // Why: the altered go.mod's modules were not in the recorded go.sum.
    assert!(done.detail["inputs_changed"].as_array().unwrap().contains(&serde_json::json!("go.sum")), "{done:?}");
    let rows = client.query("SELECT original_sha256, reproduced_sha256 FROM cbs.reproduction_mismatches WHERE build_key = $1", &[&b.build_key]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(1), reproduced);

    // The published binary is untouched, and no reproduction left a binary behind.
    let (sha, _) = caddy_build_server::worker::sha256_file(&store.join(&artifact.path)).await.unwrap();
    assert_eq!(sha, artifact.sha256);
    let after = db.queue.get(&b.build_key).await.unwrap().unwrap();
    assert_eq!((after.status, after.artifact), (BuildStatus::Succeeded, built.artifact));
    wait_no_containers(&db.queue, &b.build_key, Duration::from_secs(30)).await;

    worker_b.stop().await;
    worker_a.stop().await;
}
