//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): one chromedriver per test on a free port, a throwaway
//! profile, no network beyond loopback.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::tempdir::TempDir;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of the given size.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = super::db::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (scripts/ensure-deps.sh installs chromium-driver)");
        let profile = TempDir::new("chromium");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::native().capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot start a Chromium session: {e}"),
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Waits until `check` (a JavaScript expression) is truthy.
    pub async fn until(&self, what: &str, js: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let v = self.client.execute(&format!("return !!({js});"), vec![]).await.unwrap();
            if v.as_bool() == Some(true) {
                return;
            }
            if Instant::now() > deadline {
                let src = self.client.source().await.unwrap_or_default();
                panic!("timed out waiting for {what} ({js}); page:\n{}", &src[..src.len().min(4000)]);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
    }

    pub async fn js(&self, js: &str) -> serde_json::Value {
        self.client.execute(js, vec![]).await.unwrap()
    }

    /// Saves a PNG of the page when `CBS_SCREENSHOT_DIR` is set.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("CBS_SCREENSHOT_DIR") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
