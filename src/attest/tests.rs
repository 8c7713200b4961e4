use serde_json::{json, Value};

use super::*;
use crate::worker::buildinfo::{Dep, Module};

const H1: &str = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
const H1_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn module(path: &str, version: &str, sum: Option<&str>) -> Module {
    Module { path: path.into(), version: version.into(), sum: sum.map(String::from) }
}

fn info() -> BuildInfo {
    BuildInfo {
        go_version: "go1.26.8".into(),
        deps: vec![],
        path: "caddy".into(),
        main: Some(module("caddy", "(devel)", None)),
        modules: vec![
            Dep { module: module("github.com/BurntSushi/toml", "v1.0.0+incompatible", Some(H1)), replaced_by: None },
            Dep { module: module("github.com/a/b", "v1.0.0", Some(H1)), replaced_by: Some(module("github.com/c/b", "v1.1.0", None)) },
        ],
        settings: vec![("-tags".into(), "nobadger,nomysql".into()), ("GOOS".into(), "linux".into())],
    }
}

fn with<T>(info: &BuildInfo, go_sum: &str, f: impl FnOnce(&Input) -> T) -> T {
    let spec = crate::spec::BuildSpec::for_test(&[("github.com/a/b", "v1.0.0")]);
    let cmd = vec!["go".to_string(), "build".into(), "-trimpath".into(), "-ldflags".into(), "-w -s".into()];
    let env = vec![("CGO_ENABLED".to_string(), "0".to_string())];
    let input = Input {
        build_key: &"ab".repeat(32),
        attempt: 3,
        spec: &spec,
        file_name: "caddy",
        sha256: &"cd".repeat(32),
        size: 42,
        info,
        go_mod: "module caddy\n",
        go_sum,
        build_command: &cmd,
        build_env: &env,
        image: "caddy-builder:local",
        image_id: &format!("sha256:{}", "ef".repeat(32)),
        worker_id: "host 1",
        started_on: Utc::now(),
        finished_on: Utc::now(),
        public_url: "",
    };
    f(&input)
}

fn go_sum() -> String {
    format!("github.com/BurntSushi/toml v1.0.0+incompatible {H1}\ngithub.com/BurntSushi/toml v1.0.0+incompatible/go.mod h1:x=\ngithub.com/c/b v1.1.0 {H1}\n")
}

#[test]
fn h1_and_purls() {
    assert_eq!(h1_to_hex(H1).as_deref(), Some(H1_HEX));
    assert_eq!(h1_to_hex("h1:short="), None);
    assert_eq!(h1_to_hex("sha256:abc"), None);
    assert_eq!(golang_purl("github.com/BurntSushi/toml", "v1.0.0+incompatible"), "pkg:golang/github.com/BurntSushi/toml@v1.0.0%2Bincompatible");
}

#[test]
fn documents_list_the_binary_modules_with_go_sum_hashes() {
    let docs = with(&info(), &go_sum(), |i| make(i).unwrap());
    let cdx: Value = serde_json::from_slice(&docs.cyclonedx).unwrap();
    assert_eq!(cdx["metadata"]["component"]["hashes"][0]["content"], "cd".repeat(32));
    let replaced = &cdx["components"][1];
    assert_eq!(replaced["purl"], "pkg:golang/github.com/c/b@v1.1.0");
    // The replacement's hash came from go.sum (the binary recorded none).
    assert_eq!(replaced["hashes"][0]["content"], H1_HEX);
    assert!(replaced["properties"].to_string().contains("github.com/a/b@v1.0.0"), "{replaced}");
    assert_eq!(cdx["components"][2]["version"], "go1.26.8");

    let spdx: Value = serde_json::from_slice(&docs.spdx).unwrap();
    assert_eq!(spdx["packages"].as_array().unwrap().len(), 4);
    assert!(spdx["packages"][0]["comment"].as_str().unwrap().contains("-tags=nobadger,nomysql"));

    let p: Value = serde_json::from_slice(&docs.provenance).unwrap();
    assert_eq!(p["subject"][0]["digest"]["sha256"], "cd".repeat(32));
    assert_eq!(p["predicate"]["buildDefinition"]["internalParameters"]["tags"], json!(["nobadger", "nomysql"]));
    assert_eq!(p["predicate"]["runDetails"]["metadata"]["invocationId"], format!("{}/3", "ab".repeat(32)));
    assert_eq!(p["predicate"]["runDetails"]["builder"]["id"], "urn:caddy-build-server:worker:host%201");
    let deps = p["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    assert_eq!(deps.len(), 3, "two go.sum modules and the image: {deps:?}");
    assert_eq!(deps[0]["digest"]["dirHash"], H1_HEX);
    assert_eq!(deps[2]["digest"]["sha256"], "ef".repeat(32));
}

#[test]
fn a_hash_go_sum_does_not_share_is_refused() {
    let other = "github.com/BurntSushi/toml v1.0.0+incompatible h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    let err = with(&info(), other, |i| make(i).unwrap_err());
    assert!(matches!(err, AttestError::SumMismatch { .. }), "{err}");
}
