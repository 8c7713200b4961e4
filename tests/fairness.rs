//! Fair claiming at the SQL level: `cbs.claim_builds` serves clients in turn
//! (the one whose last build started longest ago first, oldest build first
//! within a client), runs background work only when no request waits, takes
//! clients round-robin within one call, and stays exclusive under concurrency.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use support::db::TestDb;
use tokio::sync::Barrier;
use tokio_postgres::Client;

const HEAVY: &str = "addr:10.0.0.1";

/// One claimed build: its key, client (None: no client) and priority class.
#[derive(Debug, Clone)]
struct Claimed {
    key: String,
    client: Option<String>,
    priority: String,
}

/// Submits `count` distinct builds for `client` in one statement, as the api
/// would charge them (limits NULL: nothing is charged). Returns their keys in
/// the order the client's builds are claimed: created in one statement, they
/// share `created_at`, so by key.
async fn submit(c: &Client, client: Option<&str>, prefix: &str, count: i32, priority: &str) -> Vec<String> {
    let mut keys: Vec<String> = c.query(
        "SELECT (cbs.submit_build(jsonb_build_object(
                    'caddy_version', 'v2.11.9', 'os', 'linux', 'arch', 'amd64',
                    'plugins', jsonb_build_array(jsonb_build_object(
                        'module', 'github.com/' || $2::text || '/p' || i, 'version', 'v1.0.0'))),
                 false, $1::text, NULL, $4::text)).build_key
           FROM generate_series(1, $3::int) i",
        &[&client, &prefix, &count, &priority],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    keys.sort();
    keys
}

async fn claim(c: &Client, worker: &str, max_count: i32) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT build_key, client, priority FROM cbs.claim_builds($1::text, $2::int, interval '1 minute')",
            &[&worker, &max_count],
        )
        .await?;
    Ok(rows.iter().map(|r| Claimed { key: r.get(0), client: r.get(1), priority: r.get(2) }).collect())
}

async fn claim_one(c: &Client) -> Claimed {
    let mut got = claim(c, "w", 1).await.unwrap();
    assert_eq!(got.len(), 1, "a build was runnable");
    got.remove(0)
}

fn light(i: usize) -> String {
    format!("addr:10.0.1.{i}")
}

#[tokio::test]
async fn ten_light_clients_are_served_within_the_first_eleven_claims() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // The heavy client queued first: by age alone every one of its 500 builds
    // would go before anyone else's.
    submit(&c, Some(HEAVY), "heavy", 500, "request").await;
    for i in 1..=10 {
        submit(&c, Some(&light(i)), &format!("light{i}"), 1, "request").await;
    }
    let mut order = Vec::new();
    for _ in 0..11 {
        order.push(claim_one(&c).await.client.unwrap());
    }
    let lights: HashSet<String> = (1..=10).map(light).collect();
    let served: HashSet<String> = order.iter().filter(|c| lights.contains(*c)).cloned().collect();
    assert_eq!(served, lights, "each light client within the first eleven claims: {order:?}");
    assert_eq!(order.iter().filter(|c| *c == HEAVY).count(), 1, "{order:?}");
    assert_eq!(claim_one(&c).await.client.as_deref(), Some(HEAVY), "then the heavy client again");

    // A client arriving now waits for no more than the heavy build in progress
    // of this one claimer: it is next, however many the heavy client queued.
    submit(&c, Some("token:late"), "late", 1, "request").await;
    assert_eq!(claim_one(&c).await.client.as_deref(), Some("token:late"));
    assert_eq!(claim_one(&c).await.client.as_deref(), Some(HEAVY));

    // Within a client, oldest first.
    let c = &c;
    let keys = |sql: &'static str| async move {
        c.query(sql, &[&HEAVY]).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect::<Vec<String>>()
    };
    let created = keys("SELECT build_key FROM cbs.builds WHERE client = $1 AND status = 'building' ORDER BY started_at, build_key").await;
    let oldest = keys("SELECT build_key FROM cbs.builds WHERE client = $1 ORDER BY created_at, build_key LIMIT 3").await;
    assert_eq!(created.iter().collect::<HashSet<_>>(), oldest.iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn the_client_whose_last_build_started_longest_ago_goes_first() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let a = submit(&c, Some("token:a"), "a", 2, "request").await;
    let b = submit(&c, Some("token:b"), "b", 2, "request").await;
    let none = submit(&c, None, "admin", 2, "request").await;
    c.batch_execute(
        "INSERT INTO cbs.clients (client, last_started_at) VALUES
             ('token:a', now() - interval '1 minute'), ('token:b', now() - interval '1 hour')",
    )
    .await
    .unwrap();
    // Builds without a client have never started (the group '' has no row yet): first.
    let order: Vec<String> = [claim_one(&c).await, claim_one(&c).await, claim_one(&c).await]
        .into_iter()
        .map(|x| x.key)
        .collect();
    assert_eq!(order, [none[0].clone(), b[0].clone(), a[0].clone()]);
    let last: Option<chrono::DateTime<chrono::Utc>> = c
        .query_one("SELECT last_started_at FROM cbs.clients WHERE client = ''", &[])
        .await
        .unwrap()
        .get(0);
    assert!(last.is_some(), "builds without a client keep their turn in the row ''");
    // Every group has started once now, in the order none, b, a: it repeats.
    let order: Vec<String> = [claim_one(&c).await, claim_one(&c).await, claim_one(&c).await]
        .into_iter()
        .map(|x| x.key)
        .collect();
    assert_eq!(order, [none[1].clone(), b[1].clone(), a[1].clone()]);
}

#[tokio::test]
async fn background_work_never_runs_ahead_of_a_waiting_request() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Background work queued first, by a client that never started anything and
    // by the service itself; the request comes from a client that just started one.
    let bg = submit(&c, Some("token:repro"), "repro", 2, "background").await;
    let bg_none = submit(&c, None, "prebuild", 2, "background").await;
    c.batch_execute("INSERT INTO cbs.clients (client, last_started_at) VALUES ('token:busy', now())")
        .await
        .unwrap();
    let req = submit(&c, Some("token:busy"), "busy", 3, "request").await;

    let first = claim_one(&c).await;
    assert_eq!((first.key.as_str(), first.priority.as_str()), (req[0].as_str(), "request"));
    let got = claim(&c, "w", 10).await.unwrap();
    let classes: Vec<&str> = got.iter().map(|x| x.priority.as_str()).collect();
    assert_eq!(classes, ["request", "request", "background", "background", "background", "background"]);
    let background: HashSet<&String> = got[2..].iter().map(|x| &x.key).collect();
    assert_eq!(background, bg.iter().chain(&bg_none).collect(), "then every background build");

    // A request waiting out its retry backoff is not runnable, and does not hold
    // background work back.
    let later = submit(&c, Some("token:busy"), "retry", 1, "request").await;
    submit(&c, None, "prebuild2", 1, "background").await;
    c.execute("UPDATE cbs.builds SET run_after = now() + interval '1 hour' WHERE build_key = $1", &[&later[0]])
        .await
        .unwrap();
    assert_eq!(claim_one(&c).await.priority, "background");
    assert!(claim(&c, "w", 5).await.unwrap().is_empty(), "the request still waits out its backoff");
}

#[tokio::test]
async fn one_claim_for_several_builds_takes_the_clients_in_turn() {
    let db = TestDb::new().await;
    let c = db.client().await;
    submit(&c, Some(HEAVY), "heavy", 5, "request").await;
    submit(&c, Some("token:a"), "a", 2, "request").await;
    submit(&c, None, "none", 2, "request").await;
    let got = claim(&c, "w", 6).await.unwrap();
    let clients: Vec<Option<&str>> = got.iter().map(|x| x.client.as_deref()).collect();
    assert_eq!(
        clients,
        [Some(HEAVY), Some("token:a"), None, Some(HEAVY), Some("token:a"), None],
        "round-robin, each client's queue in age order"
    );
    // The order within that call carries over: the heavy client started first.
    submit(&c, Some("token:a"), "a2", 1, "request").await;
    submit(&c, None, "none2", 1, "request").await;
    let got = claim(&c, "w", 4).await.unwrap();
    let clients: Vec<Option<&str>> = got.iter().map(|x| x.client.as_deref()).collect();
    assert_eq!(clients, [Some(HEAVY), Some("token:a"), None, Some(HEAVY)]);
}

#[tokio::test]
async fn a_build_another_claimer_holds_is_passed_over_for_the_clients_next_one() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let keys = submit(&c, Some(HEAVY), "heavy", 3, "request").await;
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    let oldest: String = tx
        .query_one(
            "SELECT build_key FROM cbs.builds WHERE client = $1 ORDER BY created_at, build_key LIMIT 1 FOR UPDATE",
            &[&HEAVY],
        )
        .await
        .unwrap()
        .get(0);
    let got = claim(&c, "w", 5).await.unwrap();
    let got: HashSet<String> = got.into_iter().map(|x| x.key).collect();
    let rest: HashSet<String> = keys.into_iter().filter(|k| *k != oldest).collect();
    assert_eq!(got, rest, "the locked build is skipped, not waited for, and nothing else is");
    tx.rollback().await.unwrap();
    assert_eq!(claim_one(&c).await.key, oldest);
}

#[tokio::test]
async fn concurrent_claimers_never_take_the_same_build_and_never_deadlock() {
    const CLIENTS: i32 = 25;
    const PER_CLIENT: i32 = 40;
    const NO_CLIENT: i32 = 200;
    const BACKGROUND: i32 = 100;
    const CLAIMERS: usize = 8;
    let db = TestDb::new().await;
    let c = db.client().await;
    for i in 0..CLIENTS {
        submit(&c, Some(&format!("token:t{i}")), &format!("t{i}"), PER_CLIENT, "request").await;
    }
    submit(&c, None, "none", NO_CLIENT, "request").await;
    submit(&c, Some("token:bg"), "bg", BACKGROUND, "background").await;
    let total = (CLIENTS * PER_CLIENT + NO_CLIENT + BACKGROUND) as usize;

    let barrier = Arc::new(Barrier::new(CLAIMERS));
    let mut tasks = Vec::new();
    for w in 0..CLAIMERS {
        let conn = db.client().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine: Vec<Claimed> = Vec::new();
            loop {
                // A deadlock would surface here as an error.
                let got = claim(&conn, &format!("w{w}"), 1 + (w % 4) as i32).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }));
    }
    let mut all = Vec::new();
    let mut claimers_that_claimed = 0;
    for t in tasks {
        let mine = t.await.unwrap();
        claimers_that_claimed += usize::from(!mine.is_empty());
        // Every call that handed out background work found no request left,
        // and none came back.
        if let Some(first_bg) = mine.iter().position(|x| x.priority == "background") {
            assert!(mine[first_bg..].iter().all(|x| x.priority == "background"), "a request after background work");
        }
        all.extend(mine);
    }
    let unique: HashSet<&String> = all.iter().map(|x| &x.key).collect();
    assert_eq!(all.len(), total, "every build claimed");
    assert_eq!(unique.len(), total, "no build claimed twice");
    assert!(claimers_that_claimed >= 2, "claims were spread over concurrent claimers");
    let attempts: i64 = c.query_one("SELECT count(*) FROM cbs.build_attempts", &[]).await.unwrap().get(0);
    assert_eq!(attempts as usize, total);
    let mut per_client: HashMap<Option<String>, usize> = HashMap::new();
    for x in &all {
        *per_client.entry(x.client.clone()).or_default() += 1;
    }
    assert_eq!(per_client.len(), CLIENTS as usize + 2);
    let recorded: i64 = c
        .query_one("SELECT count(*) FROM cbs.clients WHERE last_started_at IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, CLIENTS as i64 + 2, "every client's turn recorded, '' for builds without one");
}

#[tokio::test]
async fn admin_views_show_the_claim_order_per_client() {
    let db = TestDb::new().await;
    let c = db.client().await;
    submit(&c, Some(HEAVY), "heavy", 5, "request").await;
    submit(&c, Some("token:a"), "a", 1, "request").await;
    submit(&c, None, "prebuild", 2, "background").await;
    claim(&c, "w", 1).await.unwrap();
    let rows = c
        .query("SELECT client, turn, queued, queued_background, runnable, building FROM cbs.queue_by_client", &[])
        .await
        .unwrap();
    /// client, turn, queued, queued_background, runnable, building
    type Row = (Option<String>, Option<i64>, i64, i64, i64, i64);
    let got: Vec<Row> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect();
    assert_eq!(
        got,
        [
            (Some("token:a".into()), Some(1), 1, 0, 1, 0),
            (Some(HEAVY.into()), Some(2), 4, 0, 4, 1),
            (None, Some(3), 0, 2, 2, 0),
        ]
    );
    assert_eq!(claim_one(&c).await.client.as_deref(), Some("token:a"), "the view's turn is the claim order");
    let bg: i64 = c
        .query_one("SELECT background FROM cbs.queue_overview WHERE status = 'queued'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bg, 2);
}
