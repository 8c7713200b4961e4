//! The web pages in a real headless Chromium: the download page's catalog
//! search and curl line, the build page following a build to its download,
//! the admin page refusing without the token, listing prebuilds and cancelling
//! with the token; on a phone
//! width and a desktop width.

mod api_support;
mod browser;
mod common;

use std::time::Duration;

use api_support::{TestApi, WORKER};
use browser::Browser;
use caddy_build_server::db::LogLine;
use common::nth_spec;
use fantoccini::Locator;

const ADMIN_TOKEN: &str = "s3cret-admin-token";

async fn serve() -> TestApi {
    TestApi::start_with(|c| c.api.admin_token = ADMIN_TOKEN.into()).await
}

#[tokio::test]
async fn admin_page_refuses_without_the_token_and_cancels_with_it() {
    let api = serve().await;
    let queued = api.queue().submit(&nth_spec(1), false).await.unwrap();
    // A client's build, for the heaviest-clients table.
    let body = serde_json::json!({"os": "linux", "arch": "amd64", "plugins": [{"module": "example.com/p1", "version": ""}]});
    assert_eq!(api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap().status(), 202);
    // A prebuild of a release, for the prebuilds table.
    let detail = serde_json::json!({"caddy": {"from": "v2.11.8", "to": "v2.11.9"}});
    api.db
        .client()
        .await
        .execute("SELECT cbs.prebuild($1::jsonb, 'caddy_release', $2::jsonb, NULL, 7)", &[&nth_spec(2), &detail])
        .await
        .unwrap();
    let base = api.base.clone();
    let b = Browser::start(1280, 900).await;
    b.client.goto(&format!("{base}/admin")).await.unwrap();

    b.client.find(Locator::Css("#token")).await.unwrap().send_keys("wrong").await.unwrap();
    b.client.find(Locator::Css("#login button")).await.unwrap().click().await.unwrap();
    b.until("the refusal", "document.getElementById('admin-status').textContent.includes('wrong admin token')", Duration::from_secs(10)).await;
    assert_eq!(b.js("return document.getElementById('admin').hidden").await, true);

    let token = b.client.find(Locator::Css("#token")).await.unwrap();
    token.clear().await.unwrap();
    token.send_keys(ADMIN_TOKEN).await.unwrap();
    b.client.find(Locator::Css("#login button")).await.unwrap().click().await.unwrap();
    let cancel = format!("#queued button[data-key='{}']", queued.build_key);
    b.until("the queued build", &format!("document.querySelector(\"{cancel}\")"), Duration::from_secs(10)).await;
    b.until("the heaviest clients", "document.querySelector('#clients tbody').textContent.includes('addr:127.0.0.1')", Duration::from_secs(10)).await;
    b.until("the prebuild and why", "document.querySelector('#prebuilds tbody').textContent.includes('caddy v2.11.8 → v2.11.9 (popular: 7 requests)')", Duration::from_secs(10)).await;
    b.screenshot("admin").await;
    b.client.find(Locator::Css(&cancel)).await.unwrap().click().await.unwrap();
    b.until("the cancellation", "document.getElementById('admin-status').textContent.startsWith('cancelled')", Duration::from_secs(10)).await;

    let after = api.queue().get(&queued.build_key).await.unwrap().unwrap();
    assert_eq!(after.status.as_str(), "cancelled");
    b.stop().await;
}

#[tokio::test]
async fn admin_api_answers_401_json_without_the_token() {
    let api = serve().await;
    let base = api.base.clone();
    let key = "a".repeat(64);
    let client = reqwest::Client::new();
    for (method, path) in [("GET", "/api/admin/overview".to_string()), ("POST", format!("/api/admin/builds/{key}/cancel"))] {
        let req = client.request(method.parse().unwrap(), format!("{base}{path}"));
        for r in [req.try_clone().unwrap(), req.bearer_auth("nope")] {
            let resp = r.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["status_code"], 401);
            assert!(body["error"]["message"].as_str().unwrap().contains("token"));
        }
    }
}

#[tokio::test]
async fn download_page_searches_the_catalog_and_shows_the_curl_line_on_a_phone() {
    let api = serve().await;
    let base = api.base.clone();
    let b = Browser::start(390, 844).await;
    b.client.goto(&format!("{base}/")).await.unwrap();
    b.client.find(Locator::Css("#search")).await.unwrap().send_keys("route 53").await.unwrap();
    b.until("the filtered catalog", "[...document.querySelectorAll('#catalog li')].filter(l => !l.hidden).length === 1", Duration::from_secs(5)).await;
    b.client.find(Locator::Css("#catalog li:not([hidden]) input")).await.unwrap().click().await.unwrap();
    b.client.find(Locator::Css("#arch")).await.unwrap().select_by_value("arm").await.unwrap();
    let curl = b.text("#curl").await;
    assert!(curl.contains("arch=arm&arm=7"), "{curl}");
    assert!(curl.contains("p=github.com%2Fcaddy-dns%2Froute53"), "{curl}");
    b.screenshot("download-phone").await;
    // Switching to Windows offers only Windows architectures and names the file caddy.exe.
    b.client.find(Locator::Css("#os")).await.unwrap().select_by_value("windows").await.unwrap();
    let curl = b.text("#curl").await;
    assert!(curl.starts_with("curl -fo caddy.exe") && curl.contains("os=windows&arch=amd64"), "{curl}");
    assert!(!curl.contains("arm="), "{curl}");
    let no_overflow = b.js("return document.documentElement.scrollWidth <= window.innerWidth").await;
    assert_eq!(no_overflow, true, "the page fits a phone-width screen");
    b.stop().await;
}

#[tokio::test]
async fn download_page_takes_its_plugins_from_the_address_and_keeps_them_there() {
    let api = serve().await;
    let b = Browser::start(1280, 900).await;
    let catalog_input = |m: &str| format!("return document.querySelector('#catalog input[value=\"{m}\"]').checked");
    b.client
        .goto(&api.url("/?package=github.com/caddy-dns/route53&package=example.com/p5&package=github.com/mholt/caddy-l4@v0.0.1&package=not%20a%20module"))
        .await
        .unwrap();
    assert_eq!(b.js(&catalog_input("github.com/caddy-dns/route53")).await, true);
    assert_eq!(b.js(&catalog_input("github.com/mholt/caddy-l4")).await, false, "asked for at a version: an added module");
    let added = b.js("return [...document.querySelectorAll('#extras li')].map(l => l.dataset.value)").await;
    assert_eq!(added, serde_json::json!(["example.com/p5", "github.com/mholt/caddy-l4@v0.0.1"]));
    let curl = b.text("#curl").await;
    assert!(curl.contains("p=github.com%2Fcaddy-dns%2Froute53&p=example.com%2Fp5&p=github.com%2Fmholt%2Fcaddy-l4%40v0.0.1"), "{curl}");

    // Changes go back into the address, so the link can be shared.
    b.client.find(Locator::Css("#extras li button")).await.unwrap().click().await.unwrap();
    b.client.find(Locator::Css("#catalog input[value='github.com/caddy-dns/cloudflare']")).await.unwrap().click().await.unwrap();
    let packages = b.js("return new URLSearchParams(location.search).getAll('package')").await;
    assert_eq!(packages, serde_json::json!(["github.com/caddy-dns/cloudflare", "github.com/caddy-dns/route53", "github.com/mholt/caddy-l4@v0.0.1"]));
    b.client.refresh().await.unwrap();
    assert_eq!(b.js(&catalog_input("github.com/caddy-dns/cloudflare")).await, true, "the same choice after a reload");
    b.stop().await;
}

/// Appends log lines as the worker would, through the fenced SQL function.
async fn log(api: &TestApi, key: &str, attempt: i32, step: &str, line: &str) {
    let l = LogLine { step: step.into(), stream: "stdout".into(), line: line.into() };
    assert_eq!(api.queue().append_logs(key, attempt, WORKER, &[l]).await.unwrap(), 1);
}

#[tokio::test]
async fn a_build_from_the_download_page_to_the_downloaded_binary() {
    let api = serve().await;
    let b = Browser::start(1280, 1000).await;
    b.client.goto(&api.url("/")).await.unwrap();
    b.client.find(Locator::Css("#search")).await.unwrap().send_keys("cloudflare").await.unwrap();
    b.client.find(Locator::Css("#catalog li:not([hidden]) input")).await.unwrap().click().await.unwrap();
    // A free-form module is checked against the module proxy before it is added.
    let extra = b.client.find(Locator::Css("#extra")).await.unwrap();
    extra.send_keys("github.com/mholt/caddy-l4").await.unwrap();
    b.client.find(Locator::Css("#add-extra")).await.unwrap().click().await.unwrap();
    b.until("the added module", "document.querySelector('#extras li')", Duration::from_secs(10)).await;
    extra.send_keys("not a module").await.unwrap();
    b.until("the refusal", "document.getElementById('extra-status').classList.contains('bad')", Duration::from_secs(10)).await;
    b.screenshot("download").await;
    b.client.find(Locator::Css("#build")).await.unwrap().click().await.unwrap();

    b.until("the build page", "location.pathname.startsWith('/builds/')", Duration::from_secs(10)).await;
    let key = api.only_build_key().await;
    let spec = api.queue().get(&key).await.unwrap().unwrap().spec;
    let modules: Vec<&str> = spec["plugins"].as_array().unwrap().iter().map(|p| p["module"].as_str().unwrap()).collect();
    assert_eq!(modules, ["github.com/caddy-dns/cloudflare", "github.com/mholt/caddy-l4"]);
    assert_eq!(b.text("#steps li.current").await, "queued");
    // The xcaddy command that makes the same bytes, with the Go the spec names (the workers' default).
    let command = b.text("#xcaddy-command").await;
    assert!(command.starts_with("GOTOOLCHAIN=go1.26.8 GOOS=linux GOARCH=amd64 xcaddy build v2.") && command.contains(" --with github.com/caddy-dns/cloudflare@v0.2.1 "), "{command}");

    let attempt = api.claim(&key).await;
    log(&api, &key, attempt, "resolve", "go: downloading github.com/caddy-dns/cloudflare v0.2.1").await;
    b.until("the resolve line", "document.getElementById('log').textContent.includes('go: downloading')", Duration::from_secs(10)).await;
    assert_eq!(b.text("#steps li.current").await, "resolving");
    log(&api, &key, attempt, "build", "go build -trimpath").await;
    b.until("the building step", "document.querySelector('#steps li.current')?.textContent === 'building'", Duration::from_secs(10)).await;
    log(&api, &key, attempt, "verify", "http.handlers.cloudflare").await;
    b.until("the verifying step", "document.querySelector('#steps li.current')?.textContent === 'verifying'", Duration::from_secs(10)).await;
    b.screenshot("build-running").await;

    let binary = b"\x7fELF pretend caddy binary".repeat(100);
    let artifact = api.publish_with_provenance(&key, attempt, &binary, None, serde_json::json!({"go_version": "go1.26.9"})).await;
    b.until("the download panel", "!document.getElementById('download-panel').hidden", Duration::from_secs(10)).await;
    // Recorded unlike the spec's, so that the page is seen to take the binary's own.
    assert!(b.text("#xcaddy-command").await.starts_with("GOTOOLCHAIN=go1.26.9 GOOS=linux"), "the Go version the build recorded");
    assert_eq!(b.js("return [...document.querySelectorAll('#steps li.done')].length").await, 5);
    assert_eq!(b.text("#sha256").await, artifact.sha256);
    b.screenshot("build").await;
    let got = b
        .js("return fetch(document.getElementById('download-link').href).then(r => r.arrayBuffer()).then(a => a.byteLength)")
        .await;
    assert_eq!(got.as_u64(), Some(binary.len() as u64));
    b.stop().await;
}
