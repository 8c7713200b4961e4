//! Property-based testing of the whole HTTP API from its own OpenAPI document:
//! schemathesis (from PyPI, installed by `scripts/ensure-deps.sh`) generates
//! valid and invalid requests for every operation and checks status codes,
//! content types, headers and bodies against the document. No response may be a
//! server error other than the documented 504 of a build that cannot finish here
//! (no worker runs); that is checked from the api's own request counters.

mod support;

use std::time::Duration;

use support::api::TestApi;

/// Runs schemathesis with `extra` arguments; panics with its output on failure.
async fn schemathesis(api: &TestApi, extra: &[&str]) {
    let report = support::tempdir::TempDir::new("schemathesis");
    let output = tokio::process::Command::new("schemathesis")
        // It keeps caches in its working directory; keep them out of the source tree.
        .current_dir(&report)
        .arg("run")
        .arg(api.url("/api/openapi.json"))
        .args(["--checks", "all"])
        // Replaced by the 5xx count below (504 is this API's documented wait limit);
        // random strings valid for the schema are still not valid os/arch/modules.
        .args(["--exclude-checks", "not_a_server_error,positive_data_acceptance"])
        .args(["--max-examples", "40", "--seed", "20240601", "--request-timeout", "15", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color", "--suppress-health-check", "all"])
        // One worker: schemathesis' own threads race in hypothesis' lambda-source cache
        // ("AST constructor recursion depth mismatch"), a tool error, not a finding.
        .args(extra)
        .arg("--report-dir")
        .arg(report.path())
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis is installed (scripts/ensure-deps.sh installs it)");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let api = TestApi::start_with(|c| {
        c.api.compat_wait_limit = Duration::from_millis(300);
        c.api.max_long_poll = Duration::from_secs(1);
    })
    .await;
    // Start-up may have answered 503 on /readyz before the listener connected.
    let before = api.server_errors().await;
    // The log and events of a build that never finishes (no worker runs here)
    // stream for ever, so the stateful phase, which follows links to real builds, skips them.
    let streams = ["/api/builds/{key}/log", "/api/build/{key}/events"];
    schemathesis(&api, &["--exclude-path", streams[0], "--exclude-path", streams[1]]).await;
    schemathesis(&api, &["--include-path", streams[0], "--include-path", streams[1], "--phases", "examples,coverage,fuzzing"]).await;
    let metrics = api.get("/metrics").await.text().await.unwrap();
    assert_eq!(api.server_errors().await - before, 0.0, "server errors during the run:\n{metrics}");
    let requests: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("cbs_api_http_requests_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(requests > 500.0, "schemathesis made only {requests} requests");
}
