//! `GET /api/openapi.json`: the OpenAPI 3 description of every endpoint,
//! written out by hand so it says exactly what the handlers do (and is checked
//! against them by the schemathesis test).

use std::sync::LazyLock;

use axum::Json;
use serde_json::{json, Value};

pub(super) fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The error responses every endpoint may give (the envelope).
pub(super) fn errors(codes: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    codes.iter().map(|(c, d)| (c.to_string(), error_response(d))).collect()
}

/// What any endpoint that identifies its client may answer: an unknown token,
/// or an admission limit (with `Retry-After`).
pub(super) fn admission_errors() -> serde_json::Map<String, Value> {
    let mut m = errors(&[("401", "Unknown or revoked API token, malformed Authorization, or api.require_token and no token")]);
    let mut limited = error_response("An admission limit (new builds per hour, open builds, held requests); the message names it");
    limited["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until the limit frees up"}});
    m.insert("429".into(), limited);
    m
}

pub(super) fn binary_responses(head: bool) -> Value {
    let body = if head { json!(null) } else { json!({"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}) };
    let mut ok = json!({"description": "The Caddy binary", "headers": {
        "ETag": {"schema": {"type": "string"}, "description": "sha256 of the binary, quoted"},
        "Cache-Control": {"schema": {"type": "string"}, "description":
            "immutable for a build key or a request naming only exact versions, go included; no-cache (revalidate with the ETag) when a version was latest, empty, partial or a branch, or go was not named"},
        "X-Build-Key": {"schema": {"type": "string"}},
        "Content-Disposition": {"schema": {"type": "string"}}
    }});
    let mut partial = json!({"description": "The requested byte range"});
    if !head {
        ok["content"] = body.clone();
        partial["content"] = body;
    }
    let mut r = serde_json::Map::new();
    r.insert("200".into(), ok);
    r.insert("206".into(), partial);
    r.insert("302".into(), json!({"description": "Redirect to a presigned storage URL", "headers": {"Location": {"schema": {"type": "string"}}}}));
    r.insert("304".into(), json!({"description": "Not modified (If-None-Match); the same ETag and Cache-Control"}));
    r.extend(resolve_errors());
    r.extend(errors(&[
        ("400", "Bad input: module path, version, os/arch/arm, Go version, too many plugins"),
        ("404", "Unknown build, or a module or version the module proxy does not have"),
        ("409", "The build was cancelled or is not finished"),
        ("416", "Range not satisfiable"),
        ("422", "The build failed (the message is the build's error), or the module proxy refuses a module version"),
        ("504", "The build did not finish within the wait limit"),
    ]));
    r.extend(admission_errors());
    Value::Object(r)
}

pub(super) fn compat_params() -> Value {
    let q = |name: &str, desc: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema});
    json!([
        q("os", "GOOS of the target (required)", json!({"type": "string", "example": "linux"})),
        q("arch", "GOARCH of the target (required)", json!({"type": "string", "example": "amd64"})),
        q("arm", "GOARM, only with arch=arm: one of the target's arm_versions (GET /api/targets), default its default_arm", json!({"type": "string"})),
        q("version", "Caddy version: latest (default), partial (v2.10) or exact", json!({"type": "string"})),
        q("go", "Go release to build with, like 1.26.8 (default: the server's worker.go_version)", json!({"type": "string"})),
        {"name": "p", "in": "query", "required": false, "style": "form", "explode": true,
         "description": "Plugin as module or module@version, repeated", "schema": {"type": "array", "items": {"type": "string"}},
         "example": ["github.com/caddy-dns/cloudflare"]},
        {"name": "r", "in": "query", "required": false, "style": "form", "explode": true,
         "description": "Replacement old=new@version, repeated", "schema": {"type": "array", "items": {"type": "string"}}},
        q("tags", "Go build tags, comma-separated (not in the official protocol); empty: none; absent: xcaddy's defaults nobadger,nomysql,nopgx", json!({"type": "string"})),
        q("idempotency", "Accepted and ignored", json!({"type": "string"})),
    ])
}

/// A 502/503 error response: worth retrying after `Retry-After` seconds.
fn retryable(description: &str) -> Value {
    let mut r = error_response(description);
    r["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying"}});
    r
}

/// What resolving the request's versions against the module proxy may answer.
pub(super) fn resolve_errors() -> serde_json::Map<String, Value> {
    let mut m = errors(&[
        ("404", "A module or version the module proxy does not have (names module@version, quotes the proxy)"),
        ("422", "A module version the module proxy refuses (names module@version, quotes the proxy)"),
    ]);
    m.insert("502".into(), retryable("The module proxy failed"));
    m.insert("503".into(), retryable("The module proxy, database or storage cannot be reached, or the server is stopping"));
    m
}

/// Refusals of the request head, which every operation may get: a request target
/// over `api.max_uri_bytes`, header fields over `api.max_header_bytes`.
fn add_head_refusals(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    for operation in paths.values_mut().flat_map(|p| p.as_object_mut().expect("path item").values_mut()) {
        let responses = operation["responses"].as_object_mut().expect("responses");
        responses.insert("414".into(), error_response("Request target too long"));
        responses.insert("431".into(), error_response("Request header fields too large"));
    }
}

fn html_responses(codes: &[(&str, &str)]) -> Value {
    let mut m = errors(codes);
    m.insert("200".into(), json!({"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}));
    Value::Object(m)
}

pub(super) fn key_param() -> Value {
    json!({"name": "key", "in": "path", "required": true, "description": "Build key: 64 lowercase hex digits",
           "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})
}

fn compat_path(summary: &str) -> Value {
    // The official live page navigates to the Location of its HEAD's answer.
    let located = |head: bool| {
        let mut r = binary_responses(head);
        r["200"]["headers"]["Location"] = json!({"schema": {"type": "string"},
            "description": "The build's content-addressed download URL (/api/builds/{key}/download)"});
        r
    };
    json!({
        "get": {"summary": summary, "parameters": compat_params(), "responses": located(false)},
        "head": {"summary": summary, "parameters": compat_params(), "responses": located(true)},
    })
}

fn build_document() -> Value {
    let build_errors = |extra: &[(&str, &str)]| {
        let mut m = errors(&[("400", "Bad build key or parameter"), ("404", "Unknown build"), ("503", "Database unavailable")]);
        m.extend(errors(extra));
        m
    };
    let mut status_responses = build_errors(&[]);
    status_responses.extend(admission_errors());
    status_responses.insert("200".into(), json!({"description": "The build", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Build"}}}}));
    let mut submit_responses = resolve_errors();
    submit_responses.extend(errors(&[
        ("400", "Bad spec"), ("413", "Body too large"), ("415", "Not JSON"),
        ("422", "Body is not a valid spec object, or the module proxy refuses a module version"),
    ]));
    let build_json = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Build"}}});
    submit_responses.extend(admission_errors());
    submit_responses.insert("200".into(), json!({"description": "The build exists and is finished", "content": build_json}));
    submit_responses.insert("202".into(), json!({"description": "The build is queued or building", "content": build_json}));
    let mut sha_responses = build_errors(&[("409", "The build has no artifact"), ("422", "The build failed")]);
    sha_responses.insert("200".into(), json!({"description": "sha256sum line", "content": {"text/plain": {"schema": {"type": "string"}}}}));
    let mut sig_responses = build_errors(&[("409", "The build has no artifact"), ("422", "The build failed")]);
    sig_responses.insert("200".into(), json!({"description": "minisign signature", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}));
    let mut log_responses = build_errors(&[]);
    log_responses.extend(admission_errors());
    log_responses.insert("200".into(), json!({"description": "Server-Sent Events: `log` events (JSON lines), then one `end` event", "content": {"text/event-stream": {"schema": {"type": "string"}}}}));
    let mut download = binary_responses(false);
    download.as_object_mut().unwrap().extend(errors(&[("400", "Bad build key")]));
    let mut download_head = binary_responses(true);
    download_head.as_object_mut().unwrap().extend(errors(&[("400", "Bad build key")]));

    let mut module_check_responses = resolve_errors();
    module_check_responses.extend(errors(&[("400", "Bad module path or version query")]));
    module_check_responses.insert("200".into(), json!({"description": "The module and the absolute version", "content": {"application/json": {"schema": {
        "type": "object", "required": ["module", "version"], "properties": {"module": {"type": "string"}, "version": {"type": "string"}}}}}}));
    let mut targets_responses = errors(&[("503", "Database unavailable")]);
    targets_responses.insert("200".into(), json!({"description": "Every target, as the build spec's rules (SQL) list them", "content": {"application/json": {"schema": {
        "type": "object", "required": ["targets"], "properties": {"targets": {"type": "array", "items": {
            "type": "object", "required": ["os", "arch"], "properties": {
                "os": {"type": "string", "example": "linux"}, "arch": {"type": "string", "example": "arm"},
                "arm_versions": {"type": "array", "items": {"type": "string"}, "description": "GOARM values, arch=arm only", "example": ["5", "6", "7"]},
                "default_arm": {"type": "string", "description": "GOARM of a request naming none, arch=arm only", "example": "7"}}}}}}}}}));
    let mut signing_key_responses = errors(&[("404", "No key was made yet")]);
    signing_key_responses.insert("200".into(), json!({"description": "minisign public key file", "content": {"text/plain": {"schema": {"type": "string"}}}}));
    let mut admin_overview_responses = errors(&[("401", "Missing or wrong admin token"), ("503", "Database unavailable")]);
    admin_overview_responses.insert("200".into(), json!({"description": "Queue state", "content": {"application/json": {"schema": {"type": "object"}}}}));
    let mut admin_action_responses = errors(&[("400", "Bad build key"), ("401", "Missing or wrong admin token"), ("404", "Unknown build"), ("503", "Database unavailable")]);
    admin_action_responses.insert("200".into(), json!({"description": "The build afterwards, as its status JSON",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Build"}}}}));
    let mut reproduce_responses = errors(&[
        ("400", "Bad build key"), ("401", "Missing or wrong admin token"), ("404", "Unknown build"),
        ("409", "The build has not succeeded, or has no recorded inputs"), ("503", "Database unavailable"),
    ]);
    reproduce_responses.insert("202".into(), json!({"description": "The reproduction, queued (or the one already open)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reproduction"}}}}));
    let mut token_list_responses = errors(&[("401", "Missing or wrong admin token"), ("503", "Database unavailable")]);
    token_list_responses.insert("200".into(), json!({"description": "Every token, without its hash", "content": {"application/json": {"schema": {"type": "object"}}}}));
    let mut token_create_responses = errors(&[
        ("400", "Bad name or limits, or an active token has that name"), ("401", "Missing or wrong admin token"),
        ("413", "Body too large"), ("415", "Not JSON"), ("422", "Body is not a token request"), ("503", "Database unavailable"),
    ]);
    token_create_responses.insert("201".into(), json!({"description": "The token, shown this once", "content": {"application/json": {"schema": {
        "type": "object", "required": ["name", "token"], "properties": {"name": {"type": "string"}, "token": {"type": "string"}}}}}}));
    let mut token_revoke_responses = errors(&[("401", "Missing or wrong admin token"), ("404", "No active token of that name"), ("503", "Database unavailable")]);
    token_revoke_responses.insert("204".into(), json!({"description": "Revoked on every api host at once"}));

    json!({
        "openapi": "3.0.3",
        "info": {"title": "caddy-build-server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Builds custom Caddy binaries with the plugins asked for."},
        "paths": {
            "/api/compat": compat_path("Download a Caddy build (caddyserver.com protocol); waits for the build"),
            "/api/download": compat_path("Alias of /api/compat"),
            "/api/builds": {"post": {
                "summary": "Submit a build; versions may be latest, empty or partial",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BuildRequest"}}}},
                "responses": submit_responses,
            }},
            "/api/builds/{key}": {"get": {
                "summary": "A build's status; ?wait=30s long-polls until it is finished",
                "parameters": [key_param(), {"name": "wait", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Duration such as 30s"}],
                "responses": status_responses,
            }},
            "/api/builds/{key}/download": {
                "get": {"summary": "The build's binary", "parameters": [key_param()], "responses": download},
                "head": {"summary": "The build's binary (headers only)", "parameters": [key_param()], "responses": download_head},
            },
            "/api/builds/{key}/sha256": {"get": {"summary": "The binary's sha256", "parameters": [key_param()], "responses": sha_responses}},
            "/api/builds/{key}/signature": {"get": {"summary": "The binary's minisign signature", "parameters": [key_param()], "responses": sig_responses}},
            "/api/builds/{key}/log": {"get": {"summary": "Build output as Server-Sent Events", "parameters": [key_param()], "responses": log_responses}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Serving", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/readyz": {"get": {"summary": "Readiness: database and listener", "responses": {
                "200": {"description": "Ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": error_response("Not ready"),
            }}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "OpenMetrics text",
                "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}},
            "/api/modules/check": {"get": {
                "summary": "Validates a module path and resolves a version query (as a build request would)",
                "parameters": [
                    {"name": "module", "in": "query", "required": true, "schema": {"type": "string"}, "example": "github.com/caddy-dns/cloudflare"},
                    {"name": "version", "in": "query", "required": false, "schema": {"type": "string"}, "description": "latest (default), partial or exact"},
                ],
                "responses": module_check_responses,
            }},
            "/api/targets": {"get": {"summary": "The targets (os, arch, ARM variants and their default) a build may ask for",
                "responses": targets_responses}},
            "/api/signing-key": {"get": {"summary": "The minisign public key that verifies build signatures",
                "responses": signing_key_responses}},
            "/api/admin/overview": {"get": {"summary": "Admin: queue overview, active, queued and failed builds",
                "security": [{"admin": []}], "responses": admin_overview_responses}},
            "/api/admin/builds/{key}/cancel": {"post": {"summary": "Admin: cancel a queued or running build",
                "security": [{"admin": []}], "parameters": [key_param()], "responses": admin_action_responses.clone()}},
            "/api/admin/builds/{key}/requeue": {"post": {"summary": "Admin: build again from scratch",
                "security": [{"admin": []}], "parameters": [key_param()], "responses": admin_action_responses}},
            "/api/admin/builds/{key}/reproduce": {"post": {"summary": "Admin: have another worker rebuild a succeeded build from its recorded inputs and compare hashes",
                "security": [{"admin": []}], "parameters": [key_param()], "responses": reproduce_responses}},
            "/api/admin/tokens": {
                "get": {"summary": "Admin: API tokens", "security": [{"admin": []}], "responses": token_list_responses},
                "post": {"summary": "Admin: make an API token with optional limits of its own", "security": [{"admin": []}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
                    "responses": token_create_responses},
            },
            "/api/admin/tokens/{name}": {"delete": {"summary": "Admin: revoke an API token", "security": [{"admin": []}],
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": token_revoke_responses}},
            "/": {"get": {"summary": "Download page (HTML)", "responses": html_responses(&[("503", "Database unavailable")])}},
            "/builds/{key}": {"get": {"summary": "Build page with the live log (HTML)", "parameters": [key_param()],
                "responses": html_responses(&[("400", "Bad build key"), ("404", "Unknown build"), ("503", "Database unavailable")])}},
            "/admin": {"get": {"summary": "Admin page (HTML; its data needs the admin token)", "responses": html_responses(&[])}},
            "/static/{file}": {"get": {"summary": "Stylesheet and scripts of the pages",
                "parameters": [{"name": "file", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The file", "content": {"text/css": {"schema": {"type": "string"}}, "text/javascript": {"schema": {"type": "string"}}}},
                              "404": error_response("No such file")}}},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"securitySchemes": {
            "admin": {"type": "http", "scheme": "bearer"},
            "token": {"type": "http", "scheme": "bearer", "description": "An API token: new builds are charged to it, with its own limits"},
        }, "schemas": {
            "TokenRequest": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                "burst": {"type": "integer", "nullable": true, "minimum": 0},
                "per_hour": {"type": "number", "nullable": true, "minimum": 0},
                "max_queued": {"type": "integer", "nullable": true, "minimum": 0},
                "max_held": {"type": "integer", "nullable": true, "minimum": 0}}},
            "Error": {"type": "object", "required": ["status_code", "error"], "properties": {
                "status_code": {"type": "integer"},
                "error": {"type": "object", "required": ["message", "id"], "properties": {
                    "message": {"type": "string"}, "id": {"type": "string"}}},
            }},
            "Module": {"type": "object", "required": ["module"], "additionalProperties": false, "properties": {
                "module": {"type": "string"}, "version": {"type": "string"}}},
            "Replacement": {"type": "object", "required": ["old", "new"], "additionalProperties": false, "properties": {
                "old": {"type": "string"}, "new": {"type": "string"}, "version": {"type": "string"}}},
            "BuildRequest": {"type": "object", "required": ["os", "arch"], "additionalProperties": false, "properties": {
                "caddy_version": {"type": "string"},
                "plugins": {"type": "array", "items": {"$ref": "#/components/schemas/Module"}},
                "replacements": {"type": "array", "items": {"$ref": "#/components/schemas/Replacement"}},
                "os": {"type": "string", "example": "linux"}, "arch": {"type": "string", "example": "arm"},
                "arm": {"type": "string", "nullable": true, "example": "7"},
                "tags": {"type": "array", "nullable": true, "maxItems": 32, "description": "Go build tags; absent or null: xcaddy's defaults (nobadger, nomysql, nopgx); []: none. Part of the build key.",
                         "items": {"type": "string", "pattern": "^[A-Za-z0-9_.]{1,64}$"}, "example": ["nobadger", "nomysql"]},
                "go_version": {"type": "string", "example": "1.26.8", "description": "Go release to build with; empty: the server's worker.go_version"},
                "force": {"type": "boolean"},
                "callback_url": {"type": "string", "nullable": true, "description": "POSTed the build's status JSON when it ends; http(s), no credentials, and its host must be or resolve to public addresses only (or be allowed by janitor.webhooks.allow), else 400"}}},
            "Build": {"type": "object",
                "description": "A build, as every client sees it: the status JSON, the admin API's answers, and the body of a webhook (which adds event and delivery_id)",
                "required": ["build_key", "status", "spec", "attempt", "max_attempts", "error", "artifact", "created_at",
                             "started_at", "finished_at", "xcaddy_command", "links", "reproduction"],
                "properties": {
                "build_key": {"type": "string"},
                "status": {"type": "string", "enum": ["queued", "building", "succeeded", "failed", "cancelled"]},
                "spec": {"type": "object", "description": "The canonical spec", "required": ["caddy_version", "plugins", "replacements", "os", "arch"],
                    "properties": {
                        "caddy_version": {"type": "string"}, "os": {"type": "string"}, "arch": {"type": "string"},
                        "arm": {"type": "string", "description": "Only with arch=arm"},
                        "plugins": {"type": "array", "items": {"type": "object", "required": ["module", "version"],
                            "properties": {"module": {"type": "string"}, "version": {"type": "string"}}}},
                        "replacements": {"type": "array", "items": {"type": "object", "required": ["old", "new", "version"],
                            "properties": {"old": {"type": "string"}, "new": {"type": "string"}, "version": {"type": "string"}}}},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "go_version": {"type": "string"}}},
                "attempt": {"type": "integer"}, "max_attempts": {"type": "integer"},
                "error": {"type": "string", "nullable": true},
                "artifact": {"type": "object", "nullable": true, "properties": {
                    "file_name": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}, "signed": {"type": "boolean"}}},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": {"type": "string", "format": "date-time", "nullable": true},
                "finished_at": {"type": "string", "format": "date-time", "nullable": true},
                "xcaddy_command": {"type": "string", "description": "The xcaddy v0.4.5 command that builds the same binary, byte for byte",
                                   "example": "GOTOOLCHAIN=go1.26.8 GOOS=linux GOARCH=amd64 xcaddy build v2.11.9 --with github.com/caddy-dns/cloudflare@v0.2.1"},
                "links": {"type": "object", "properties": {
                    "self": {"type": "string"}, "download": {"type": "string"}, "sha256": {"type": "string"},
                    "signature": {"type": "string"}, "log": {"type": "string"}}},
                "reproduction": {"type": "object", "nullable": true,
                    "description": "The latest reproduction by another worker (see the Reproduction schema); null when none"},
            }},
            "Reproduction": {"type": "object", "required": ["status", "original_sha256", "original_worker_id"], "properties": {
                "status": {"type": "string", "enum": ["queued", "running", "reproduced", "mismatch", "failed"]},
                "requested_by": {"type": "string", "enum": ["admin", "janitor"]},
                "original_sha256": {"type": "string"}, "original_worker_id": {"type": "string"},
                "reproduced_sha256": {"type": "string", "nullable": true},
                "worker_id": {"type": "string", "nullable": true, "description": "The reproducing worker"},
                "go_version": {"type": "string", "nullable": true},
                "inputs_changed": {"type": "array", "items": {"type": "string"}},
                "error": {"type": "string", "nullable": true},
                "requested_at": {"type": "string", "format": "date-time"},
                "finished_at": {"type": "string", "format": "date-time", "nullable": true},
            }},
        }},
    })
}

/// The SBOM and provenance endpoints (kept apart: the main document is at
/// `json!`'s recursion limit).
fn document_paths() -> serde_json::Map<String, Value> {
    let build_errors = |extra: &[(&str, &str)]| {
        let mut m = errors(&[("400", "Bad build key or parameter"), ("503", "Database unavailable")]);
        m.extend(errors(extra));
        m
    };
    let document = |media: &str, what: &str| {
        let mut r = build_errors(&[("409", "The build has no artifact"), ("422", "The build failed")]);
        r.insert("404".into(), error_response("Unknown build, or one made before SBOMs and provenance were published"));
        r.insert("200".into(), json!({"description": what, "content": {media: {"schema": {"type": "object"}}}}));
        json!({"get": {"summary": what, "parameters": [key_param()], "responses": r}})
    };
    let document_signature = |what: &str| {
        let mut r = build_errors(&[("409", "The build has no artifact"), ("422", "The build failed")]);
        r.insert("404".into(), error_response("Unknown build, or one made before SBOMs and provenance were published"));
        r.insert("200".into(), json!({"description": "minisign signature", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}));
        json!({"get": {"summary": format!("The minisign signature of the {what}"), "parameters": [key_param()], "responses": r}})
    };
    let paths = json!({
            "/api/builds/{key}/sbom.cdx.json": document(crate::attest::CYCLONEDX_MEDIA_TYPE, "The build's CycloneDX 1.6 SBOM"),
            "/api/builds/{key}/sbom.cdx.json.minisig": document_signature("CycloneDX SBOM"),
            "/api/builds/{key}/sbom.spdx.json": document(crate::attest::SPDX_MEDIA_TYPE, "The build's SPDX 2.3 SBOM"),
            "/api/builds/{key}/sbom.spdx.json.minisig": document_signature("SPDX SBOM"),
            "/api/builds/{key}/provenance.json": document(crate::attest::PROVENANCE_MEDIA_TYPE, "The build's SLSA v1 provenance (in-toto Statement v1)"),
            "/api/builds/{key}/provenance.json.minisig": document_signature("provenance"),
    });
    paths.as_object().expect("an object").clone()
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = build_document();
    doc["paths"].as_object_mut().expect("paths is an object").extend(super::official::openapi::paths());
    doc["paths"].as_object_mut().expect("paths is an object").extend(document_paths());
    let build = &mut doc["components"]["schemas"]["Build"]["properties"];
    build["artifact"]["properties"]["attested"] =
        json!({"type": "boolean", "description": "SBOMs and provenance were published with the binary"});
    for link in ["sbom_cyclonedx", "sbom_spdx", "provenance"] {
        build["links"]["properties"][link] = json!({"type": "string"});
        build["links"]["properties"][format!("{link}_signature")] = json!({"type": "string"});
    }
    doc["components"]["schemas"].as_object_mut().expect("schemas is an object").extend(super::official::openapi::schemas());
    add_head_refusals(&mut doc);
    doc
});

pub async fn openapi() -> Json<Value> {
    Json(DOCUMENT.clone())
}
