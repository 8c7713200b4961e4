//! The build spec's rules have one source, SQL (`cbs.target_list()`,
//! `cbs.canonical_arm`, `cbs.module_path_problem`, `cbs.checked_spec`), and
//! every other place agrees with it because it asks: each target SQL lists is
//! offered by the download page and `GET /api/targets` and accepted by the api
//! with SQL's ARM default; a module path or target SQL refuses is refused with
//! SQL's own message by REST, compat, the official endpoint and psql alike,
//! never reaching the module proxy; the janitor checks its configured prebuilds
//! with the same rules.


mod support;

use support::api::{error_message, TestApi};
use caddy_build_server::config::{PrebuildConfig, PrebuildSpec};
use caddy_build_server::db::DbError;
use caddy_build_server::gomod::Resolver;
use caddy_build_server::janitor::prebuild::{PrebuildConfigError, Prebuilder};
use caddy_build_server::spec::Plugin;
use support::db::TestDb;
use serde_json::{json, Value};

/// `path?query`, the query encoded as a browser would.
fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    format!("{path}?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish())
}

/// `cbs.target_list()` as JSON objects, the shape `GET /api/targets` answers with.
async fn sql_targets(db: &TestDb) -> Vec<Value> {
    let client = db.client().await;
    let rows = client.query("SELECT os, arch, arm_versions, default_arm FROM cbs.target_list()", &[]).await.unwrap();
    rows.iter()
        .map(|r| {
            let mut t = json!({"os": r.get::<_, String>(0), "arch": r.get::<_, String>(1)});
            if let Some(arm) = r.get::<_, Option<Vec<String>>>(2) {
                t["arm_versions"] = json!(arm);
                t["default_arm"] = json!(r.get::<_, Option<String>>(3).expect("an ARM target has a default"));
            }
            t
        })
        .collect()
}

/// The value of `attr='…'` on the element with `id`, as the page renders it.
fn attribute<'a>(html: &'a str, id: &str, attr: &str) -> &'a str {
    let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}='")).unwrap_or_else(|| panic!("#{id} has no {attr}")) + attr.len() + 2;
    &rest[start..start + rest[start..].find('\'').unwrap()]
}

/// The option values of the `<select id=…>`.
fn options(html: &str, id: &str) -> Vec<String> {
    let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let select = &html[at..at + html[at..].find("</select>").unwrap()];
    select.split("<option value=\"").skip(1).map(|o| o[..o.find('"').unwrap()].to_string()).collect()
}

#[tokio::test]
async fn every_target_sql_lists_is_offered_by_the_page_and_accepted_by_the_api() {
    let api = TestApi::start().await;
    let targets = sql_targets(&api.db).await;
    assert!(targets.len() > 30, "cbs.targets lists Go's targets: {}", targets.len());
    assert!(targets.iter().any(|t| t["arch"] == "arm"), "some target has ARM variants");

    let listed: Value = api.get("/api/targets").await.json().await.unwrap();
    assert_eq!(listed["targets"], json!(targets), "GET /api/targets is SQL's list");

    let page = api.get("/").await.text().await.unwrap();
    let offered: Value = serde_json::from_str(attribute(&page, "arch", "data-targets")).unwrap();
    assert_eq!(offered, json!(targets), "the page's script picks from SQL's list");
    let mut oses: Vec<String> = targets.iter().map(|t| t["os"].as_str().unwrap().to_string()).collect();
    oses.dedup();
    assert_eq!(options(&page, "os"), oses);
    let arm_target = targets.iter().find(|t| t["arch"] == "arm").unwrap();
    let mut arm_versions: Vec<String> = serde_json::from_value(arm_target["arm_versions"].clone()).unwrap();
    arm_versions.reverse();
    arm_versions.insert(0, String::new());
    assert_eq!(options(&page, "arm"), arm_versions, "the ARM picker offers SQL's variants, newest first");

    // Each target is accepted as offered; a request naming no ARM variant gets SQL's default.
    for t in &targets {
        let body = json!({"caddy_version": "v2.10.2", "os": t["os"], "arch": t["arch"]});
        let resp = api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{t}: {}", resp.status());
        let key = resp.json::<Value>().await.unwrap()["build_key"].as_str().unwrap().to_string();
        let build = api.queue().get(&key).await.unwrap().unwrap();
        assert_eq!(build.spec.arm.as_deref(), t.get("default_arm").and_then(Value::as_str), "{t}");
        for arm in t["arm_versions"].as_array().into_iter().flatten() {
            let query = [("os", t["os"].as_str().unwrap()), ("arch", "arm"), ("arm", arm.as_str().unwrap()), ("version", "v2.10.2")];
            let resp = api.http.post(api.url(&with_query("/api/build", &query))).send().await.unwrap();
            assert!(resp.status().is_success(), "{t} arm={arm}: {}", resp.status());
            let key = resp.json::<Value>().await.unwrap()["result"]["key"].as_str().unwrap().to_string();
            assert_eq!(api.queue().get(&key).await.unwrap().unwrap().spec.arm.as_deref(), arm.as_str());
        }
    }
}

/// The message SQL gives the spec, the api's three ways in, all one.
async fn refusals(api: &TestApi, query: &[(&str, &str)], body: &Value) -> [String; 3] {
    let rest = api.http.post(api.url("/api/builds")).json(body).send().await.unwrap();
    let compat = api.http.get(api.url(&with_query("/api/compat", query))).send().await.unwrap();
    let official = api.http.post(api.url(&with_query("/api/build", query))).send().await.unwrap();
    [error_message(rest, 400).await, error_message(compat, 400).await, error_message(official, 400).await]
}

#[tokio::test]
async fn a_module_path_sql_refuses_is_refused_with_its_message_everywhere() {
    let api = TestApi::start().await;
    let client = api.db.client().await;
    let paths = [
        // Checked only outside SQL before: now SQL's rule, and so everyone's.
        "github.com/x/con",
        "github.com/x/Aux.go",
        "gopkg.in/yaml",
        "gopkg.in/yaml.v03",
        // Go's other rules.
        "not-a-domain/x",
        "GitHub.com/x",
        "github.com/x/y/v1",
        "github.com//x",
        "github.com/x/../y",
        "github.com/x y",
    ];
    for path in paths {
        let problem: Option<String> = client.query_one("SELECT cbs.module_path_problem($1)", &[&path]).await.unwrap().get(0);
        let problem = problem.unwrap_or_else(|| panic!("SQL accepts {path:?}"));
        let expected = format!("plugins[0].module '{path}' {problem}");
        let query = [("os", "linux"), ("arch", "amd64"), ("p", path)];
        let body = json!({"os": "linux", "arch": "amd64", "plugins": [{"module": path}]});
        for (endpoint, message) in ["REST", "compat", "official"].iter().zip(refusals(&api, &query, &body).await) {
            assert_eq!(message, expected, "{endpoint}: {path:?}");
        }
        // Straight to SQL (psql, the janitor): the same message.
        let spec = json!({"caddy_version": "v2.10.2", "os": "linux", "arch": "amd64", "plugins": [{"module": path, "version": "v1.0.0"}]});
        match api.queue().submit(&spec, false).await {
            Err(DbError::BadSpec(message)) => assert_eq!(message, expected, "{path:?}"),
            other => panic!("{path:?}: {other:?}"),
        }
        // The page's module check says what SQL says, and the page does not preselect it.
        let check = api.http.get(api.url(&with_query("/api/modules/check", &[("module", path)]))).send().await.unwrap();
        let message = error_message(check, 400).await;
        assert!(message.ends_with(&problem), "{path:?}: {message}");
        let page = api.http.get(api.url(&with_query("/", &[("package", path)]))).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains(&format!("data-value=\"{path}\"")), "{path:?} preselected");
    }
    assert_eq!(api.build_count().await, 0);
    // Nothing SQL refuses was asked of the module proxy; only Caddy's list could have been.
    assert_eq!(api.proxy.hits("gopkg.in/yaml/@v/list"), 0);
    assert_eq!(api.proxy.hits("github.com/x/con/@v/list"), 0);

    // A gopkg.in path with its .vN suffix is fine everywhere.
    let ok: Option<String> = client.query_one("SELECT cbs.module_path_problem('gopkg.in/yaml.v3')", &[]).await.unwrap().get(0);
    assert_eq!(ok, None);
}

#[tokio::test]
async fn a_target_sql_refuses_is_refused_with_its_message_everywhere() {
    let api = TestApi::start().await;
    // (the compat/official query, the REST body, SQL's message)
    type Case<'a> = (&'a [(&'a str, &'a str)], Value, &'a str);
    let cases: &[Case] = &[
        (&[("os", "plan10"), ("arch", "amd64")], json!({"os": "plan10", "arch": "amd64"}), "os 'plan10' is not a supported operating system"),
        (&[("os", "windows"), ("arch", "mips")], json!({"os": "windows", "arch": "mips"}), "arch 'mips' is not a supported architecture for os 'windows'"),
        (&[("os", "linux"), ("arch", "arm"), ("arm", "8")], json!({"os": "linux", "arch": "arm", "arm": "8"}), "arm '8' is not a supported ARM version (5, 6, 7)"),
        (&[("os", "linux"), ("arch", "amd64"), ("arm", "7")], json!({"os": "linux", "arch": "amd64", "arm": "7"}), "arm '7' is only allowed with arch=arm, not arch='amd64'"),
        (&[("arch", "amd64")], json!({"os": "", "arch": "amd64"}), "os is required (like linux)"),
    ];
    for (query, body, expected) in cases {
        for (endpoint, message) in ["REST", "compat", "official"].iter().zip(refusals(&api, query, body).await) {
            assert_eq!(message, *expected, "{endpoint}: {query:?}");
        }
    }
    assert_eq!(api.build_count().await, 0);
}

#[tokio::test]
async fn module_path_rules_are_gos() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let problem = |p: String| {
        let client = &client;
        async move { client.query_one("SELECT cbs.module_path_problem($1)", &[&p]).await.unwrap().get::<_, Option<String>>(0) }
    };
    for p in [
        "github.com/caddyserver/caddy/v2",
        "github.com/caddy-dns/cloudflare",
        "github.com/BurntSushi/toml",
        "gopkg.in/yaml.v3",
        "gopkg.in/check.v1",
        "gopkg.in/src-d/go-git.v4",
        "gopkg.in/x.v2-unstable",
        "golang.org/x/mod",
        "example.com/a~b/c_d",
        "example.com/console",
    ] {
        assert_eq!(problem(p.into()).await, None, "{p}");
    }
    for (p, says) in [
        ("", "is empty"),
        ("github.com/", "empty path element"),
        ("/github.com/x", "empty path element"),
        ("localhost/x", "domain"),
        ("-x.com/y", "domain"),
        ("github.com/x/.hidden", "dot"),
        ("github.com/x/y/v0", "major version suffix"),
        ("github.com/x/y/v02", "major version suffix"),
        ("github.com/x/y/v2.1", "major version suffix"),
        ("github.com/x/nul", "reserved file name on Windows"),
        ("github.com/x/LPT9.txt", "reserved file name on Windows"),
        ("gopkg.in/yaml.v", ".vN"),
        ("github.com/x@v1", "character '@'"),
        ("github.com/x\u{e9}", "character 'é'"),
    ] {
        let got = problem(p.into()).await.unwrap_or_else(|| panic!("{p:?} should be refused"));
        assert!(got.contains(says), "{p:?}: {got}");
    }
    assert!(problem(format!("github.com/{}", "a".repeat(400))).await.unwrap().contains("longer than 300"));
}

#[tokio::test]
async fn configured_prebuilds_are_checked_by_sqls_rules_at_start() {
    let db = TestDb::new().await;
    let entry = |os: &str, arch: &str, plugin: Option<&str>| PrebuildSpec {
        os: os.into(),
        arch: arch.into(),
        plugins: plugin.map(|m| Plugin { module: m.into(), version: String::new() }).into_iter().collect(),
        ..PrebuildSpec::default()
    };
    let prebuilder = |specs: Vec<PrebuildSpec>| {
        let config = PrebuildConfig { specs, ..PrebuildConfig::default() };
        Prebuilder::new(db.queue.clone(), Resolver::new("http://127.0.0.1:9", std::time::Duration::ZERO), config, "j").with_go_version("1.26.8")
    };
    let good = vec![entry("linux", "amd64", None), entry("linux", "arm", Some("github.com/caddy-dns/cloudflare"))];
    prebuilder(good.clone()).check_config().await.unwrap();
    for (bad, says) in [
        (entry("linux", "z80", None), "arch 'z80' is not a supported architecture for os 'linux'"),
        (entry("linux", "amd64", Some("github.com/x/com1")), "plugins[0].module 'github.com/x/com1' has a path element 'com1' that is a reserved file name on Windows"),
    ] {
        let mut specs = good.clone();
        specs.push(bad);
        match prebuilder(specs).check_config().await {
            Err(PrebuildConfigError::BadEntry { entry: 2, message }) => assert_eq!(message, says),
            other => panic!("{says}: {other:?}"),
        }
    }
}

/// No Postgres text holds NUL, so SQL cannot be asked about it: still a 400 in the
/// error shape on every way in, never a 500.
#[tokio::test]
async fn a_nul_character_is_refused_before_sql() {
    let api = TestApi::start().await;
    let query = [("os", "linux"), ("arch", "amd64"), ("p", "github.com/a\u{0}b")];
    let body = json!({"os": "linux", "arch": "amd64", "plugins": [{"module": "github.com/a\u{0}b"}]});
    for message in refusals(&api, &query, &body).await {
        assert_eq!(message, "plugins[].module contains the character '\\0', which no spec field may");
    }
    let body = json!({"os": "linux\u{0}", "arch": "amd64"});
    let message = error_message(api.http.post(api.url("/api/builds")).json(&body).send().await.unwrap(), 400).await;
    assert!(message.starts_with("os contains"), "{message}");
    let check = api.http.get(api.url(&with_query("/api/modules/check", &[("module", "a\u{0}b")]))).send().await.unwrap();
    error_message(check, 400).await;
    let page = api.http.get(api.url(&with_query("/", &[("package", "github.com/a\u{0}b")]))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(api.server_errors().await, 0.0);
}
