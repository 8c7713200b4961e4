//! Admission control against a real Postgres and real api processes: only work
//! is charged, limits hold across api hosts, refusals say which limit and when
//! it frees up, clients are told apart by token or (trusted) address.

mod support;

use std::time::{Duration, Instant};

use support::api::{error_message, TestApi};
use support::spawn::Service;
use caddy_build_server::config::AdmissionConfig;
use caddy_build_server::db::TokenLimits;
use serde_json::{json, Value};

const ADMIN: &str = "admin-secret";
/// Usage reaches Postgres about once a second; this bounds a hang only.
const USAGE_FLUSH: Duration = Duration::from_secs(30);

/// A spec of its own for every `n` (the fake proxy lists example.com/p0…p999).
fn body(n: usize) -> Value {
    json!({"os": "linux", "arch": "amd64", "caddy_version": "v2.10.2",
           "plugins": [{"module": format!("example.com/p{n}"), "version": ""}]})
}

fn limits(burst: u32, per_hour: f64) -> AdmissionConfig {
    AdmissionConfig { burst, per_hour, ..AdmissionConfig::default() }
}

async fn post(api: &TestApi, base: &str, n: usize, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = api.http.post(format!("{base}/api/builds")).json(&body(n));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers().get("retry-after").expect("Retry-After on a 429").to_str().unwrap().parse().unwrap()
}

/// One admission counter from `/metrics`.
async fn admissions(api: &TestApi, outcome: &str, reason: &str) -> f64 {
    api.metric(&format!("cbs_api_admissions_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}")).await
}

/// Starts `caddy-build-server api` (the real binary) over the test's database
/// and storage; the process and its base URL.
async fn api_process(api: &TestApi, name: &str) -> (Service, String) {
    let port = support::db::free_port();
    let config = api
        .db
        .yaml()
        .set("storage.path", api.storage_dir.display().to_string())
        .set("go_proxy", api.proxy.url.as_str())
        .set("log.level", "warn")
        .set("api.listen", format!("127.0.0.1:{port}"))
        .set("api.admission.burst", 3)
        .set("api.admission.per_hour", 1800);
    let mut process = Service::spawn("api", name, &config);
    let base = format!("http://127.0.0.1:{port}");
    process.wait_ready(&base, Duration::from_secs(60)).await;
    (process, base)
}

#[tokio::test]
async fn two_api_processes_share_one_bucket() {
    let api = TestApi::start().await;
    let (_a, host_a) = api_process(&api, "a").await;
    let (_b, host_b) = api_process(&api, "b").await;

    // A burst of twelve new builds from one address, split over both hosts at once.
    let started = Instant::now();
    let sends = (0..12).map(|n| {
        let base = if n % 2 == 0 { host_a.clone() } else { host_b.clone() };
        let req = api.http.post(format!("{base}/api/builds")).json(&body(n));
        tokio::spawn(async move { req.send().await.unwrap() })
    });
    let answers = futures::future::join_all(sends).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (mut admitted, mut refused) = (0, Vec::new());
    for a in answers {
        let r = a.unwrap();
        match r.status().as_u16() {
            202 => admitted += 1,
            429 => refused.push(r),
            s => panic!("unexpected status {s}: {}", r.text().await.unwrap()),
        }
    }
    // The bucket holds 3 and refills one every 2 s (1800 an hour).
    let allowed = 3 + (elapsed / 2.0).floor() as usize;
    assert!((3..=allowed).contains(&admitted), "admitted {admitted} of 12 in {elapsed:.2}s (allowed {allowed})");
    assert_eq!(api.build_count().await as usize, admitted, "a refused build leaves no row");
    let first = refused.pop().unwrap();
    let wait = retry_after(&first);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let message = error_message(first, 429).await;
    assert!(message.contains("addr:127.0.0.1") && message.contains("1800 per hour") && message.contains("burst of 3"), "{message}");

    // After the wait the next one is admitted, on either host. The wait is the
    // point: a client told to retry after it, does, and is let in.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = post(&api, &host_b, 100, &[]).await;
    assert_eq!(again.status(), 202, "{}", again.text().await.unwrap());
}

#[tokio::test]
async fn cache_hits_and_joins_are_free() {
    let api = TestApi::start_with(|c| c.api.admission = limits(1, 0.01)).await;
    let created = post(&api, &api.base, 1, &[]).await;
    assert_eq!(created.status(), 202);
    let key = created.json::<Value>().await.unwrap()["build_key"].as_str().unwrap().to_string();

    let refused = post(&api, &api.base, 2, &[]).await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) > 3600, "a hundredth of a build per hour");
    assert!(error_message(refused, 429).await.contains("cached builds can still be downloaded"));

    // Joining the queued build, then downloading it once built: never charged.
    assert_eq!(post(&api, &api.base, 1, &[]).await.status(), 202);
    api.succeed(&key, b"binary").await;
    assert_eq!(post(&api, &api.base, 1, &[]).await.status(), 200);
    let compat = api.get("/api/compat?os=linux&arch=amd64&version=v2.10.2&p=example.com/p1").await;
    assert_eq!(compat.status(), 200);
    assert_eq!(compat.bytes().await.unwrap().as_ref(), b"binary");
    assert_eq!(api.get(&format!("/api/builds/{key}/download")).await.status(), 200);

    assert_eq!(admissions(&api, "created", "").await, 1.0);
    assert_eq!(admissions(&api, "joined", "").await, 3.0);
    assert_eq!(admissions(&api, "refused", "rate").await, 1.0);
    // Usage reaches Postgres about once a second, off the requests' path.
    let db = api.db.client().await;
    let row = support::wait::until_some("cbs.heaviest_clients never counted the refusal", USAGE_FLUSH, || async {
        let r = db.query_opt("SELECT admitted, refused FROM cbs.heaviest_clients WHERE client = 'addr:127.0.0.1'", &[]).await.unwrap();
        r.filter(|r| r.get::<_, i64>(1) == 1).map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
    })
    .await;
    assert_eq!(row, (1, 1), "cbs.heaviest_clients counts the admission and the refusal");
}

#[tokio::test]
async fn open_build_caps_per_client_and_in_total() {
    let api = TestApi::start_with(|c| {
        c.api.admin_token = ADMIN.into();
        c.api.admission = AdmissionConfig { max_queued_per_client: 2, max_queued_total: 3, ..limits(100, 100.0) };
    })
    .await;
    let k1 = post(&api, &api.base, 1, &[]).await.json::<Value>().await.unwrap()["build_key"].as_str().unwrap().to_string();
    assert_eq!(post(&api, &api.base, 2, &[]).await.status(), 202);
    let third = post(&api, &api.base, 3, &[]).await;
    assert_eq!(third.status(), 429);
    assert!(retry_after(&third) > 0);
    let m = error_message(third, 429).await;
    assert!(m.contains("already has 2 builds queued or running (the limit is 2)"), "{m}");
    assert_eq!(admissions(&api, "refused", "client_queue").await, 1.0);

    // A running build still counts; a finished one frees the slot.
    let attempt = api.claim(&k1).await;
    assert_eq!(post(&api, &api.base, 3, &[]).await.status(), 429);
    api.publish(&k1, attempt, b"x", None).await;
    assert_eq!(post(&api, &api.base, 3, &[]).await.status(), 202);

    // Another client (a token) meets the total of three queued builds (the
    // claim above took p2 too: it is building, and only waiting builds count).
    let own = TokenLimits { max_queued: Some(10), ..Default::default() };
    let token = api.queue().create_token("other", &own).await.unwrap();
    let auth = format!("Bearer {token}");
    for n in [4, 5] {
        assert_eq!(post(&api, &api.base, n, &[("authorization", &auth)]).await.status(), 202);
    }
    let full = post(&api, &api.base, 6, &[("authorization", &auth)]).await;
    assert_eq!(full.status(), 429);
    let m = error_message(full, 429).await;
    assert!(m.contains("the build queue is full"), "{m}");
    assert_eq!(admissions(&api, "refused", "total_queue").await, 1.0);
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let untrusted = TestApi::start_with(|c| c.api.admission = limits(1, 0.01)).await;
    let xff = |a: &'static str| [("x-forwarded-for", a)];
    assert_eq!(post(&untrusted, &untrusted.base, 1, &xff("198.51.100.1")).await.status(), 202);
    let spoofed = post(&untrusted, &untrusted.base, 2, &xff("198.51.100.2")).await;
    let m = error_message(spoofed, 429).await;
    assert!(m.starts_with("addr:127.0.0.1 "), "the header is ignored: {m}");

    let trusted = TestApi::start_with(|c| {
        c.api.admission = limits(1, 0.01);
        c.api.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    assert_eq!(post(&trusted, &trusted.base, 1, &xff("198.51.100.1")).await.status(), 202);
    assert_eq!(post(&trusted, &trusted.base, 2, &xff("198.51.100.2")).await.status(), 202);
    // A client prepending an address of its own choosing gains nothing.
    let again = post(&trusted, &trusted.base, 3, &xff("203.0.113.5, 198.51.100.1")).await;
    let m = error_message(again, 429).await;
    assert!(m.starts_with("addr:198.51.100.1 "), "{m}");
    let v6 = [("forwarded", "for=\"[2001:db8:1:2::7]:4711\"")];
    assert_eq!(post(&trusted, &trusted.base, 4, &v6).await.status(), 202);
    let same_64 = [("forwarded", "for=\"[2001:db8:1:2:ffff::9]\"")];
    let m = error_message(post(&trusted, &trusted.base, 5, &same_64).await, 429).await;
    assert!(m.starts_with("addr:2001:db8:1:2::/64 "), "IPv6 counts by /64: {m}");
}

#[tokio::test]
async fn tokens_have_their_own_limits_and_revocation_is_immediate_everywhere() {
    let api = TestApi::start_with(|c| {
        c.api.admin_token = ADMIN.into();
        c.api.admission = limits(1, 0.01);
    })
    .await;
    let other_host = api.another_host().await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN);

    let made = admin(api.http.post(api.url("/api/admin/tokens"))).json(&json!({"name": "ci", "burst": 3})).send().await.unwrap();
    assert_eq!(made.status(), 201);
    let token = made.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    for n in 0..3 {
        let host = if n % 2 == 0 { &api.base } else { &other_host };
        assert_eq!(post(&api, host, n, &[("authorization", &auth)]).await.status(), 202, "token build {n}");
    }
    let m = error_message(post(&api, &other_host, 3, &[("authorization", &auth)]).await, 429).await;
    assert!(m.starts_with("token:ci ") && m.contains("burst of 3"), "{m}");
    // The anonymous address has a bucket of its own.
    assert_eq!(post(&api, &api.base, 10, &[]).await.status(), 202);

    let dup = admin(api.http.post(api.url("/api/admin/tokens"))).json(&json!({"name": "ci"})).send().await.unwrap();
    assert!(error_message(dup, 409).await.contains("already exists"));
    let listed: Value = admin(api.http.get(api.url("/api/admin/tokens"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["tokens"][0]["name"], "ci");
    assert_eq!(listed["tokens"][0]["burst"], 3);
    assert!(listed["tokens"][0].get("token_sha256").is_none(), "hashes are never listed");

    let revoked = admin(api.http.delete(api.url("/api/admin/tokens/ci"))).send().await.unwrap();
    assert_eq!(revoked.status(), 204);
    for host in [&api.base, &other_host] {
        let r = post(&api, host, 20, &[("authorization", &auth)]).await;
        assert!(error_message(r, 401).await.contains("unknown or revoked"), "on {host}");
    }
    let gone = admin(api.http.delete(api.url("/api/admin/tokens/ci"))).send().await.unwrap();
    assert_eq!(gone.status(), 404);

    // Tokens made in psql work the same way.
    let db = api.db.client().await;
    let sql_token: String = db.query_one("SELECT cbs.create_token('from-psql', burst => 1)", &[]).await.unwrap().get(0);
    let auth = format!("Bearer {sql_token}");
    assert_eq!(post(&api, &other_host, 30, &[("authorization", &auth)]).await.status(), 202);
    assert_eq!(post(&api, &api.base, 31, &[("authorization", &auth)]).await.status(), 429);
    db.execute("SELECT cbs.revoke_token('from-psql')", &[]).await.unwrap();
    assert_eq!(post(&api, &other_host, 30, &[("authorization", &auth)]).await.status(), 401);
    let malformed = post(&api, &api.base, 32, &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_eq!(malformed.status(), 401);
}

#[tokio::test]
async fn require_token_closes_new_builds_but_not_downloads() {
    let api = TestApi::start_with(|c| c.api.require_token = true).await;
    let token = api.queue().create_token("builder", &Default::default()).await.unwrap();
    let anonymous = post(&api, &api.base, 1, &[]).await;
    assert!(error_message(anonymous, 401).await.contains("API tokens"));
    assert_eq!(api.build_count().await, 0);

    let made = post(&api, &api.base, 1, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(made.status(), 202);
    let key = made.json::<Value>().await.unwrap()["build_key"].as_str().unwrap().to_string();
    // Anyone may join it and download it.
    assert_eq!(post(&api, &api.base, 1, &[]).await.status(), 202);
    api.succeed(&key, b"built").await;
    let compat = api.get("/api/compat?os=linux&arch=amd64&version=v2.10.2&p=example.com/p1").await;
    assert_eq!(compat.status(), 200);
    assert_eq!(api.get(&format!("/api/builds/{key}/download")).await.status(), 200);
    assert_eq!(admissions(&api, "refused", "token_required").await, 1.0);
}

#[tokio::test]
async fn held_requests_are_capped_per_client() {
    let api = TestApi::start_with(|c| c.api.admission.max_held_per_client = 2).await;
    let path = "/api/compat?os=linux&arch=amd64&version=v2.10.2&p=example.com/p1";
    let (first, key) = api.waiting_get(path).await;
    let second = api.spawn(api.http.get(api.url(path)));
    api.wait_for_waiters(2).await;
    assert_eq!(api.metric("cbs_api_held_requests").await, 2.0);

    let third = api.get(path).await;
    assert!(retry_after(&third) > 0);
    let m = error_message(third, 429).await;
    assert!(m.contains("already holds 2 requests open"), "{m}");
    let log = api.get(&format!("/api/builds/{key}/log")).await;
    assert_eq!(log.status(), 429, "a log stream is held too");

    api.succeed(&key, b"bin").await;
    for w in [first, second] {
        assert_eq!(w.await.unwrap().status(), 200);
    }
    // Answered requests no longer count; a cache hit never did.
    assert_eq!(api.get(path).await.status(), 200);
    assert_eq!(api.metric("cbs_api_held_requests").await, 0.0);
}

#[tokio::test]
async fn admins_see_the_heaviest_clients_and_the_queue_by_priority() {
    let api = TestApi::start_with(|c| c.api.admin_token = ADMIN.into()).await;
    for n in 0..3 {
        assert_eq!(post(&api, &api.base, n, &[]).await.status(), 202);
    }
    // Usage reaches Postgres about once a second, off the requests' path.
    let overview = support::wait::until_some("the overview never counted 3 admissions", USAGE_FLUSH, || async {
        let overview: Value = api.http.get(api.url("/api/admin/overview")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
        (overview["clients"][0]["admitted"] == 3).then_some(overview)
    })
    .await;
    assert_eq!(overview["clients"][0]["client"], "addr:127.0.0.1", "{overview}");
    assert_eq!(overview["clients"][0]["admitted"], 3);
    assert_eq!(overview["clients"][0]["open_builds"], 3);
    assert_eq!(overview["queued"][0]["client"], "addr:127.0.0.1");
    assert_eq!(overview["queued"][0]["priority"], "request");
    assert_eq!(api.metric("cbs_api_queued_builds{priority=\"request\"}").await, 3.0);
    assert_eq!(api.metric("cbs_api_queued_builds{priority=\"background\"}").await, 0.0);

    // Retention forgets old usage and idle clients, never one with open builds.
    let db = api.db.client().await;
    db.batch_execute(
        "INSERT INTO cbs.client_usage (minute, client, admitted) VALUES (now() - interval '8 days', 'addr:192.0.2.1', 4);
         INSERT INTO cbs.clients (client, tokens, tokens_at) VALUES ('addr:192.0.2.1', 0, now() - interval '8 days');
         UPDATE cbs.clients SET tokens_at = now() - interval '8 days' WHERE client = 'addr:127.0.0.1';",
    )
    .await
    .unwrap();
    assert_eq!(api.queue().prune_clients(Duration::from_secs(7 * 24 * 3600)).await.unwrap(), 2);
    let left: i64 = db.query_one("SELECT count(*) FROM cbs.clients WHERE client = 'addr:127.0.0.1'", &[]).await.unwrap().get(0);
    assert_eq!(left, 1, "a client with queued builds is kept");
}
