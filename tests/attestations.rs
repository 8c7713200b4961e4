//! SBOMs and provenance: documents made from a build's inputs pass the
//! official CycloneDX and SPDX schema validators, and one real Caddy build
//! (linux/amd64, Caddy v2.11.9 with github.com/caddy-dns/cloudflare@v0.2.1)
//! publishes both SBOMs and the provenance, signed, listing exactly what
//! `go version -m` and go.sum say, served by the api with their content types.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::attest::*;
use support::tempdir::TempDir;
use base64::Engine;
use caddy_build_server::attest::{self, golang_purl, h1_to_hex, Input};
use caddy_build_server::config::{Config, SigningConfig};
use caddy_build_server::db::BuildStatus;
use caddy_build_server::signing::Signer;
use caddy_build_server::spec::BuildSpec;
use caddy_build_server::storage::{ArtifactPaths, Document, DynStorage, LocalStorage, StoredDocument};
use caddy_build_server::worker::buildinfo::{BuildInfo, Dep, Module};
use caddy_build_server::worker::Publisher;
use support::db::TestDb;
use serde_json::{json, Value};
use support::worker::*;

/// A cold build (empty caches) on two shared cores takes minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

const H1: &str = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn module(path: &str, version: &str, sum: Option<&str>) -> Module {
    Module { path: path.into(), version: version.into(), sum: sum.map(String::from) }
}

/// Documents for a made-up build with the awkward cases: a replaced module, an
/// `+incompatible` version, a local replacement without version or hash, ARM.
#[test]
fn documents_pass_the_official_schemas() {
    let info = BuildInfo {
        go_version: "go1.26.8".into(),
        deps: vec![],
        path: "caddy".into(),
        main: Some(module("caddy", "(devel)", None)),
        modules: vec![
            Dep { module: module("github.com/BurntSushi/toml", "v1.0.0+incompatible", Some(H1)), replaced_by: None },
            Dep { module: module("github.com/a/b", "v1.0.0", Some(H1)), replaced_by: Some(module("github.com/c/b", "v1.1.0", Some(H1))) },
            Dep { module: module("github.com/d/e", "v0.1.0", Some(H1)), replaced_by: Some(module("../e", "", None)) },
        ],
        settings: vec![("-tags".into(), "nobadger".into()), ("-trimpath".into(), "true".into()), ("GOARM".into(), "6".into())],
    };
    let spec: BuildSpec = serde_json::from_value(json!({"caddy_version": "v2.11.9", "os": "linux", "arch": "arm", "arm": "6",
        "plugins": [{"module": "github.com/a/b", "version": "v1.0.0"}]}))
    .unwrap();
    let cmd: Vec<String> = ["go", "build", "-trimpath", "-ldflags", "-w -s"].map(String::from).to_vec();
    let key = "ab".repeat(32);
    let input = Input {
        build_key: &key,
        attempt: 1,
        spec: &spec,
        file_name: "caddy",
        sha256: &"cd".repeat(32),
        size: 1,
        info: &info,
        go_mod: "module caddy\n",
        go_sum: &format!("github.com/c/b v1.1.0 {H1}\n"),
        build_command: &cmd,
        build_env: &[("GOARM".into(), "6".into())],
        image: "caddy-builder:local",
        image_id: "sha256:0123",
        worker_id: "w",
        started_on: chrono::Utc::now(),
        finished_on: chrono::Utc::now(),
        public_url: "https://builds.example.com/",
    };
    let docs = attest::make(&input).unwrap();
    let dir = TempDir::new("attest-schemas");
    let (cdx, spdx) = (dir.join("sbom.cdx.json"), dir.join("sbom.spdx.json"));
    std::fs::write(&cdx, &docs.cyclonedx).unwrap();
    std::fs::write(&spdx, &docs.spdx).unwrap();
    validate_cyclonedx(&cdx).unwrap_or_else(|e| panic!("CycloneDX: {e}\n{}", String::from_utf8_lossy(&docs.cyclonedx)));
    validate_spdx(&spdx).unwrap_or_else(|e| panic!("SPDX: {e}\n{}", String::from_utf8_lossy(&docs.spdx)));
    let p: Value = serde_json::from_slice(&docs.provenance).unwrap();
    assert_eq!(p["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(p["predicate"]["buildDefinition"]["externalParameters"], serde_json::to_value(&spec).unwrap());

    // A made-up document fails: the validators can fail.
    let bad = TempDir::new("attest-bad");
    std::fs::write(bad.join("x.cdx.json"), br#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": 1}]}"#).unwrap();
    std::fs::write(bad.join("x.spdx.json"), br#"{"spdxVersion": "SPDX-2.3", "SPDXID": "nope"}"#).unwrap();
    assert!(validate_cyclonedx(&bad.join("x.cdx.json")).is_err());
    assert!(validate_spdx(&bad.join("x.spdx.json")).is_err());
}

/// The three documents are stored beside the binary, signed, and go with the
/// build's directory, on the local and the S3 backend alike.
#[tokio::test(flavor = "multi_thread")]
async fn documents_are_stored_signed_and_deleted_with_the_build_on_both_backends() {
    let dir = TempDir::new("attest-publish");
    let signing = SigningConfig {
        secret_key_path: dir.join("minisign.key").display().to_string(),
        public_key_path: dir.join("minisign.pub").display().to_string(),
    };
    let signer = Signer::load_or_generate(&signing).unwrap();
    let docs = attest::Documents { cyclonedx: b"{\"cdx\": 1}".to_vec(), spdx: b"{\"spdx\": 2}".to_vec(), provenance: b"{\"p\": 3}".to_vec() };
    let (s3, _) = support::s3::storage().await;
    let backends: [(&str, DynStorage); 2] = [("local", Arc::new(LocalStorage::new(dir.join("store")).unwrap())), ("s3", Arc::new(s3))];
    for (name, storage) in backends {
        let key = format!("{:064x}", rand::random::<u128>());
        let publisher = Publisher { storage: storage.clone(), signer: signer.clone() };
        let record = publisher.publish_documents(&key, "linux", &docs).await.unwrap();
        let paths = ArtifactPaths::new(&key, "linux").unwrap();
        for (doc, bytes) in Document::ALL.into_iter().zip([&docs.cyclonedx, &docs.spdx, &docs.provenance]) {
            let stored: StoredDocument = record.get(doc).cloned().unwrap_or_else(|| panic!("{name}: {doc:?} recorded"));
            assert_eq!(stored.path, paths.document(doc));
            assert_eq!(stored.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)));
            let (file, sig) = (dir.join(doc.file_name()), dir.join(format!("{}.minisig", doc.file_name())));
            std::fs::write(&file, storage.get_bytes(&stored.path).await.unwrap()).unwrap();
            std::fs::write(&sig, storage.get_bytes(&stored.signature).await.unwrap()).unwrap();
            assert_eq!(&std::fs::read(&file).unwrap(), bytes, "{name}");
            minisign_verifies(&file, &sig, Path::new(&signing.public_key_path)).unwrap_or_else(|e| panic!("{name} {doc:?}: {e}"));
            // The signature names the document: `minisign -V` shows it as trusted.
            assert!(std::fs::read_to_string(&sig).unwrap().contains(&format!("file:{}", doc.file_name())));
        }
        // Retention and unpublishing delete the build's directory: documents included.
        assert_eq!(storage.delete_prefix(&paths.dir).await.unwrap(), 6, "{name}");
        assert_eq!(storage.size(&paths.sbom_cdx).await.unwrap(), None, "{name}");
    }
}

/// `(path, version, h1)` of every module whose source go.sum records (not `/go.mod` lines).
fn go_sum_modules(go_sum: &str) -> BTreeSet<(String, String, String)> {
    go_sum
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && !f[1].ends_with("/go.mod")).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

fn property<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    component["properties"].as_array()?.iter().find(|p| p["name"] == name)?["value"].as_str()
}

/// One real build; every assertion about the documents it publishes, on disk and through the api.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_build_publishes_signed_sboms_and_provenance_that_match_the_binary() {
    let db = TestDb::new().await;
    let config = worker_config(&db, "w-attest");
    let store = PathBuf::from(&config.storage.path);
    let public_key = PathBuf::from(&config.signing.public_key_path);
    let worker = start_worker(config.clone());
    let b = db.queue.submit(&caddy_spec("linux", "amd64"), false).await.unwrap();
    let done = wait_terminal(&db.queue, &b.build_key, BUILD_LIMIT).await;
    assert_eq!(done.status, BuildStatus::Succeeded, "{:?}\n{}", done.error, log_lines(&db.queue, &b.build_key).await.join("\n"));
    // Stopped before the api part, so that it does not take the made-up older build below.
    worker.stop().await;
    let key = &b.build_key;
    let record = done.artifact.clone().unwrap();
    let artifact = record.binary.clone();
    let binary = store.join(&artifact.path);
    let (sha, _) = caddy_build_server::worker::sha256_file(&binary).await.unwrap();
    assert_eq!(sha, artifact.sha256);
    let go_sum = done.provenance.as_ref().unwrap().go_sum.clone().unwrap();

    // Each document and its signature, which Debian's minisign accepts with the server's key.
    let mut files = Vec::new();
    for doc in Document::ALL {
        let stored = record.document(doc).unwrap_or_else(|| panic!("{doc:?} recorded in {record:?}"));
        let file = store.join(&stored.path);
        minisign_verifies(&file, &store.join(&stored.signature), &public_key).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
        files.push(file);
    }
    let [cdx_file, spdx_file, provenance_file] = files.try_into().unwrap();
    validate_cyclonedx(&cdx_file).unwrap_or_else(|e| panic!("CycloneDX: {e}"));
    validate_spdx(&spdx_file).unwrap_or_else(|e| panic!("SPDX: {e}"));
    let read = |p: &Path| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap();
    let (cdx, spdx, provenance) = (read(&cdx_file), read(&spdx_file), read(&provenance_file));

    // The SBOMs list exactly the modules `go version -m` shows, with version, purl and h1.
    let modules = go_version_m(&binary).await;
    assert!(modules.iter().any(|(p, v, _)| p == PLUGIN && v == PLUGIN_VERSION), "{modules:?}");
    let libraries: Vec<&Value> = cdx["components"].as_array().unwrap().iter().filter(|c| c["type"] == "library").collect();
    assert_eq!(libraries.len(), modules.len(), "one component per module");
    let spdx_packages = spdx["packages"].as_array().unwrap();
    assert_eq!(spdx_packages.len(), modules.len() + 2, "the modules, caddy and go");
    for (path, version, h1) in &modules {
        let purl = golang_purl(path, version);
        let c = libraries.iter().find(|c| c["purl"] == purl).unwrap_or_else(|| panic!("{purl} missing from the CycloneDX SBOM"));
        assert_eq!((c["name"].as_str(), c["version"].as_str()), (Some(path.as_str()), Some(version.as_str())));
        assert_eq!(property(c, "caddy-build-server:go:h1"), Some(h1.as_str()), "{c}");
        assert_eq!(c["hashes"][0]["content"].as_str(), h1_to_hex(h1).as_deref(), "{c}");
        let p = spdx_packages.iter().find(|p| p["name"] == path.as_str()).unwrap_or_else(|| panic!("{path} missing from the SPDX SBOM"));
        assert_eq!(p["versionInfo"], version.as_str());
        assert_eq!(p["externalRefs"][0]["referenceLocator"], purl.as_str());
        assert_eq!(p["checksums"][0]["checksumValue"].as_str(), h1_to_hex(h1).as_deref());
        assert!(p["comment"].as_str().unwrap().contains(h1.as_str()), "{p}");
    }
    // Caddy is the main component: the binary's sha256, the spec's version, the build settings.
    let main = &cdx["metadata"]["component"];
    assert_eq!((main["name"].as_str(), main["version"].as_str()), (Some("caddy"), Some(CADDY)));
    assert_eq!(main["hashes"][0]["content"], artifact.sha256.as_str());
    for (setting, value) in [("GOOS", "linux"), ("GOARCH", "amd64"), ("CGO_ENABLED", "0"), ("-trimpath", "true")] {
        assert_eq!(property(main, &format!("caddy-build-server:build:{setting}")), Some(value), "{main}");
    }
    assert!(property(main, "caddy-build-server:build:command").unwrap().contains("-ldflags -w -s"), "{main}");
    let go_version = done.provenance.as_ref().unwrap().go_version.clone().unwrap();
    assert!(cdx["components"].as_array().unwrap().iter().any(|c| c["name"] == "go" && c["version"] == go_version.as_str()));
    assert_eq!(spdx_packages[0]["checksums"][0]["checksumValue"], artifact.sha256.as_str());
    assert!(spdx_packages[0]["comment"].as_str().unwrap().contains("GOOS=linux"));

    // Provenance: the subject is the artifact; the dependencies are go.sum's modules and the image.
    assert_eq!(provenance["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(provenance["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(provenance["subject"], json!([{"name": "caddy", "digest": {"sha256": sha}}]));
    let definition = &provenance["predicate"]["buildDefinition"];
    assert_eq!(definition["buildType"], attest::BUILD_TYPE);
    assert_eq!(definition["externalParameters"], serde_json::to_value(&done.spec).unwrap());
    let internal = &definition["internalParameters"];
    assert_eq!(internal["goVersion"], go_version.as_str());
    let image_id = done.provenance.as_ref().unwrap().image_id.clone().unwrap();
    assert_eq!(internal["builderImage"]["digest"], image_id);
    assert!(internal["flags"].as_array().unwrap().contains(&json!("-trimpath")), "{internal}");
    let deps = definition["resolvedDependencies"].as_array().unwrap();
    let listed: BTreeSet<(String, String, String)> = deps
        .iter()
        .filter(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("pkg:golang/")))
        .map(|d| {
            let (name, version, h1) = (d["name"].as_str().unwrap(), d["annotations"]["version"].as_str().unwrap(), d["annotations"]["h1"].as_str().unwrap());
            assert_eq!(d["digest"]["dirHash"].as_str(), h1_to_hex(h1).as_deref());
            assert_eq!(d["uri"], golang_purl(name, version).as_str());
            (name.to_string(), version.to_string(), h1.to_string())
        })
        .collect();
    assert_eq!(listed, go_sum_modules(&go_sum), "resolved dependencies are go.sum's modules");
    assert!(modules.is_subset(&listed), "every module in the binary was resolved");
    assert!(deps.iter().any(|d| d["digest"]["sha256"] == image_id.trim_start_matches("sha256:")), "the builder image: {deps:?}");
    let run = &provenance["predicate"]["runDetails"];
    assert_eq!(run["builder"]["id"], "urn:caddy-build-server:worker:w-attest");
    assert_eq!(run["metadata"]["invocationId"], format!("{key}/{}", done.attempt));
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp();
    assert_eq!(at(&run["metadata"]["startedOn"]), done.started_at.unwrap().timestamp());
    assert!(at(&run["metadata"]["startedOn"]) <= at(&run["metadata"]["finishedOn"]));
    assert!(at(&run["metadata"]["finishedOn"]) <= done.finished_at.unwrap().timestamp());
    let go_sum_byproduct = run["byproducts"].as_array().unwrap().iter().find(|b| b["name"] == "go.sum").unwrap();
    let content = base64::engine::general_purpose::STANDARD.decode(go_sum_byproduct["content"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(content).unwrap(), go_sum);
    let log = log_lines(&db.queue, key).await;
    let line = log.iter().find(|l| l.contains(caddy_build_server::worker::ATTEST_LINE)).expect("the documents' time is logged");
    println!("{line}");

    serve_documents(&db, config, key, &[&cdx_file, &spdx_file, &provenance_file]).await;
}

/// The api serves the documents as stored, links them, and answers 404 JSON for
/// a build made before documents were published.
async fn serve_documents(db: &TestDb, config: Config, key: &str, files: &[&Path]) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(caddy_build_server::web::serve(Arc::new(config), listener, shutdown.clone()));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            // The api starts in the background: answered once it listens.
            support::wait::until_some(&format!("api not answering {url}"), Duration::from_secs(60), || async { http.get(&url).send().await.ok() }).await
        }
    };
    let status: Value = get(format!("/api/builds/{key}")).await.json().await.unwrap();
    assert_eq!(status["artifact"]["attested"], true, "{status}");
    let types = [caddy_build_server::attest::CYCLONEDX_MEDIA_TYPE, caddy_build_server::attest::SPDX_MEDIA_TYPE, caddy_build_server::attest::PROVENANCE_MEDIA_TYPE];
    for ((doc, file), media) in Document::ALL.into_iter().zip(files).zip(types) {
        let link = format!("/api/builds/{key}/{}", doc.file_name());
        assert!(status["links"].as_object().unwrap().values().any(|v| v.as_str().unwrap().ends_with(&link)), "{status}");
        assert!(status["links"].as_object().unwrap().values().any(|v| v.as_str().unwrap().ends_with(&format!("{link}.minisig"))));
        let r = get(link.clone()).await;
        assert_eq!(r.status(), 200, "{link}");
        assert_eq!(r.headers()["content-type"], media);
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(r.bytes().await.unwrap(), std::fs::read(file).unwrap(), "{link}");
        let sig = get(format!("{link}.minisig")).await;
        assert_eq!(sig.status(), 200);
        assert!(sig.text().await.unwrap().starts_with("untrusted comment:"));
    }

    // A build made before: an artifact record without documents.
    let older = db.queue.submit(&caddy_spec("linux", "arm64"), false).await.unwrap();
    let claimed = db.queue.claim("w-older", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed[0].build_key, older.build_key);
    let record = json!({"path": format!("builds/{}/{}/caddy", &older.build_key[..2], older.build_key), "file_name": "caddy", "size": 1, "sha256": "00".repeat(32)});
    assert!(db.queue.complete(&older.build_key, claimed[0].attempt, "w-older", &record).await.unwrap());
    for doc in Document::ALL {
        for suffix in ["", ".minisig"] {
            let r = get(format!("/api/builds/{}/{}{suffix}", older.build_key, doc.file_name())).await;
            assert_eq!(r.status(), 404);
            let body: Value = r.json().await.unwrap();
            assert!(body["error"]["message"].as_str().unwrap().contains("made before this server published SBOMs and provenance"), "{body}");
        }
    }
    let status: Value = get(format!("/api/builds/{}", older.build_key)).await.json().await.unwrap();
    assert_eq!(status["artifact"]["attested"], false);
    let page = get(format!("/builds/{}", older.build_key)).await.text().await.unwrap();
    assert!(page.contains("made before this server published SBOMs and provenance"));
    let page = get(format!("/builds/{key}")).await.text().await.unwrap();
    assert!(page.contains(&format!("/api/builds/{key}/sbom.spdx.json.minisig")));
    assert_eq!(get("/api/builds/nokey/sbom.cdx.json".into()).await.status(), 400);
    shutdown.cancel();
    let _ = server.await;
}
