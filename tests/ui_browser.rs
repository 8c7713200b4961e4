//! The web pages in a real headless Chromium: the download page's catalog
//! search and curl line, the build page following a build to its download,
//! the admin page refusing without the token and cancelling with it; on a phone
//! width and a desktop width.

mod browser;
mod common;

use std::sync::Arc;
use std::time::Duration;

use browser::Browser;
use caddy_build_server::config::Config;
use caddy_build_server::ui::{router, UiState};
use common::{nth_spec, TestDb};
use fantoccini::Locator;

const ADMIN_TOKEN: &str = "s3cret-admin-token";

async fn serve(db: &TestDb) -> String {
    let mut config = Config::default();
    config.database = db.config.clone();
    config.api.admin_token = ADMIN_TOKEN.into();
    let app = router(UiState::new(db.queue.clone(), Arc::new(config)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn admin_page_refuses_without_the_token_and_cancels_with_it() {
    let db = TestDb::new().await;
    let queued = db.queue.submit(&nth_spec(1), false).await.unwrap();
    let base = serve(&db).await;
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
    b.screenshot("admin").await;
    b.client.find(Locator::Css(&cancel)).await.unwrap().click().await.unwrap();
    b.until("the cancellation", "document.getElementById('admin-status').textContent.startsWith('cancelled')", Duration::from_secs(10)).await;

    let after = db.queue.get(&queued.build_key).await.unwrap().unwrap();
    assert_eq!(after.status.as_str(), "cancelled");
    b.stop().await;
}

#[tokio::test]
async fn admin_api_answers_401_json_without_the_token() {
    let db = TestDb::new().await;
    let base = serve(&db).await;
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
    let db = TestDb::new().await;
    let base = serve(&db).await;
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
