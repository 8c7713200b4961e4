//! SBOMs and provenance: documents made from a build's inputs pass the
//! official CycloneDX and SPDX schema validators, and one real Caddy build
//! (linux/amd64, Caddy v2.11.9 with github.com/caddy-dns/cloudflare@v0.2.1)
//! publishes both SBOMs and the provenance, signed, listing exactly what
//! `go version -m` and go.sum say, served by the api with their content types.

mod attest_support;
mod common;
mod worker_support;

use attest_support::*;
use caddy_build_server::attest::{self, Input};
use caddy_build_server::worker::buildinfo::{BuildInfo, Dep, Module};
use serde_json::{json, Value};

const H1: &str = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn temp_dir(what: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cbs-attest-{what}-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

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
    let spec = json!({"caddy_version": "v2.11.9", "os": "linux", "arch": "arm", "arm": "6",
        "plugins": [{"module": "github.com/a/b", "version": "v1.0.0"}]});
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
    let dir = temp_dir("schemas");
    let (cdx, spdx) = (dir.join("sbom.cdx.json"), dir.join("sbom.spdx.json"));
    std::fs::write(&cdx, &docs.cyclonedx).unwrap();
    std::fs::write(&spdx, &docs.spdx).unwrap();
    validate_cyclonedx(&cdx).unwrap_or_else(|e| panic!("CycloneDX: {e}\n{}", String::from_utf8_lossy(&docs.cyclonedx)));
    validate_spdx(&spdx).unwrap_or_else(|e| panic!("SPDX: {e}\n{}", String::from_utf8_lossy(&docs.spdx)));
    let p: Value = serde_json::from_slice(&docs.provenance).unwrap();
    assert_eq!(p["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(p["predicate"]["buildDefinition"]["externalParameters"], spec);
    std::fs::remove_dir_all(dir).unwrap();

    // A made-up document fails: the validators can fail.
    let bad = temp_dir("bad");
    std::fs::write(bad.join("x.cdx.json"), br#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": 1}]}"#).unwrap();
    std::fs::write(bad.join("x.spdx.json"), br#"{"spdxVersion": "SPDX-2.3", "SPDXID": "nope"}"#).unwrap();
    assert!(validate_cyclonedx(&bad.join("x.cdx.json")).is_err());
    assert!(validate_spdx(&bad.join("x.spdx.json")).is_err());
    std::fs::remove_dir_all(bad).unwrap();
}
