//! One build, one shape: the REST status (`GET /api/builds/{key}`), the admin
//! API's answers (cancel, requeue) and the webhook body show a build as the
//! same JSON, field for field. A real api and a real janitor over one database;
//! the webhook goes to a real local HTTP server.


mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use support::api::TestApi;
use caddy_build_server::janitor;
use caddy_build_server::outbound::AllowList;
use support::http_recorder::Recorder;
use support::janitor::janitor_config;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "build-shape-admin-token";
const PUBLIC_URL: &str = "https://builds.example.com";
/// How long a webhook may take to arrive: the janitor must first win its
/// election (checked every 200 ms here); generous for a loaded machine.
const WEBHOOK_LIMIT: Duration = Duration::from_secs(30);

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

async fn status(api: &TestApi, key: &str) -> Value {
    let resp = api.get(&format!("/api/builds/{key}")).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn admin(api: &TestApi, key: &str, verb: &str) -> Value {
    let resp = api.http.post(api.url(&format!("/api/admin/builds/{key}/{verb}"))).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{verb}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn rest_admin_and_webhook_show_a_build_alike() {
    let api = TestApi::start_with(|c| {
        c.api.admin_token = ADMIN.into();
        c.api.public_url = PUBLIC_URL.into();
        c.janitor.webhooks.allow = AllowList::parse(["127.0.0.1"]).unwrap();
    })
    .await;
    let hooks = Recorder::start().await;
    let mut config = janitor_config(&api.db.config, "shape", "  webhooks:\n    allow: [127.0.0.1]\n");
    config.api.public_url = PUBLIC_URL.into();
    config.storage.path = api.config.storage.path.clone();
    let stop = CancellationToken::new();
    let janitor = tokio::spawn(janitor::run(Arc::new(config), stop.clone()));

    let body = json!({"os": "linux", "arch": "amd64", "caddy_version": "v2.10.2",
                      "plugins": [{"module": "github.com/caddy-dns/cloudflare", "version": "v0.2.1"}],
                      "callback_url": hooks.url("/hook")});
    let resp = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let submitted: Value = resp.json().await.unwrap();
    let key = submitted["build_key"].as_str().unwrap().to_string();
    assert_eq!(submitted, status(&api, &key).await, "the submit answer is the status JSON");

    let attempt = api.claim(&key).await;
    let provenance = json!({"go_version": "go1.26.7", "go_mod": "module caddy\n", "go_sum": "", "worker_id": support::api::WORKER});
    let artifact = api.publish_with_provenance(&key, attempt, b"binary", Some(b"untrusted comment: sig\nRWQ..."), provenance).await;

    // The webhook: the status JSON, with the event and the delivery's id beside it.
    let hook = hooks.wait_for("/hook", 1, WEBHOOK_LIMIT).await.remove(0);
    let mut sent = hook.json();
    let fields = sent.as_object_mut().unwrap();
    assert_eq!(fields.remove("event"), Some(json!("build.finished")));
    assert_eq!(fields.remove("delivery_id").map(|v| v.to_string()), Some(hook.headers["x-cbs-delivery-id"].clone()));
    let rest = status(&api, &key).await;
    assert_eq!(sent, rest, "the webhook carries what REST answers");
    assert_eq!(rest["status"], "succeeded");
    assert_eq!(rest["artifact"]["sha256"], artifact.sha256);
    assert_eq!(rest["links"]["self"], format!("{PUBLIC_URL}/api/builds/{key}"));
    assert!(rest["xcaddy_command"].as_str().unwrap().starts_with("GOTOOLCHAIN=go1.26.7 "), "the recorded Go: {rest}");

    // Admin: the build afterwards, as REST shows it then.
    let requeued = admin(&api, &key, "requeue").await;
    assert_eq!(requeued["status"], "queued");
    assert_eq!(requeued, status(&api, &key).await);
    let cancelled = admin(&api, &key, "cancel").await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled, status(&api, &key).await);

    // The same fields whatever the status: absent values are null, not missing.
    for (name, v) in [("submit", &submitted), ("requeue", &requeued), ("cancel", &cancelled)] {
        assert_eq!(keys(v), keys(&rest), "{name}");
        assert_eq!(keys(&v["links"]), keys(&rest["links"]), "{name}");
    }
    stop.cancel();
    janitor.await.unwrap().unwrap();
}
