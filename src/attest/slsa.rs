//! SLSA v1 provenance as an in-toto Statement v1: the artifact (file name and
//! sha256) is the subject; the build definition names our build type, the
//! canonical spec as external parameters, the Go version, builder image,
//! build command, flags and tags as internal parameters, and every module
//! go.sum recorded (with its `h1:` as in-toto's `dirHash`) plus the builder
//! image as resolved dependencies; the run details name the worker, the build
//! key and attempt, and when the attempt started and finished. The recorded
//! `go.mod` and `go.sum` travel along as byproducts, so a rebuild needs
//! nothing but this statement.

use base64::Engine;
use serde_json::{json, Value};

use super::{h1_to_hex, purl, timestamp, AttestError, GoSum, Input, BUILD_TYPE, TOOL_NAME, TOOL_VERSION};

const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

pub fn statement(input: &Input, sums: &GoSum) -> Result<Value, AttestError> {
    let mut dependencies: Vec<Value> = sums
        .modules()
        .map(|(path, version, h1)| {
            let mut d = json!({"uri": purl::golang(path, version), "name": path, "annotations": {"version": version, "h1": h1}});
            if let Some(hex) = h1_to_hex(h1) {
                d["digest"] = json!({"dirHash": hex});
            }
            d
        })
        .collect();
    let mut image = json!({"name": input.image, "annotations": {"role": "builder image"}});
    if let Some(hex) = input.image_id.strip_prefix("sha256:") {
        image["digest"] = json!({"sha256": hex});
    }
    dependencies.push(image);

    let tags: Vec<&str> = input.info.setting("-tags").map(|t| t.split(',').filter(|t| !t.is_empty()).collect()).unwrap_or_default();
    let flags: Vec<&String> = input.build_command.iter().filter(|a| a.starts_with('-')).collect();
    let settings: serde_json::Map<String, Value> =
        input.info.settings.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let env: serde_json::Map<String, Value> = input.build_env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let byproduct = |name: &str, text: &str| {
        json!({
            "name": name,
            "digest": {"sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))},
            "mediaType": "text/plain; charset=utf-8",
            "content": base64::engine::general_purpose::STANDARD.encode(text),
        })
    };
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": input.file_name, "digest": {"sha256": input.sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": input.spec,
                "internalParameters": {
                    "goVersion": input.info.go_version,
                    "builderImage": {"name": input.image, "digest": input.image_id},
                    "buildCommand": input.build_command,
                    "flags": flags,
                    "tags": tags,
                    "environment": env,
                    "buildSettings": settings,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": builder_id(input.worker_id),
                    "version": {TOOL_NAME: TOOL_VERSION},
                },
                "metadata": {
                    "invocationId": format!("{}/{}", input.build_key, input.attempt),
                    "startedOn": timestamp(input.started_on),
                    "finishedOn": timestamp(input.finished_on),
                },
                "byproducts": [byproduct("go.mod", input.go_mod), byproduct("go.sum", input.go_sum)],
            },
        },
    }))
}

/// The worker as a URI: `urn:caddy-build-server:worker:<id>`, the id
/// percent-encoded where it holds more than letters, digits and `-._~`.
fn builder_id(worker_id: &str) -> String {
    let mut id = String::new();
    for b in worker_id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { id.push(b as char) } else { id.push_str(&format!("%{b:02X}")) }
    }
    format!("urn:{TOOL_NAME}:worker:{id}")
}
