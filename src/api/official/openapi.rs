//! The official endpoints' part of the OpenAPI document (merged into
//! `/api/openapi.json` beside the rest).

use serde_json::{json, Map, Value};

use crate::api::openapi::{admission_errors, binary_responses, compat_params, errors, key_param, resolve_errors};

pub fn paths() -> Map<String, Value> {
    let mut packages = errors(&[("503", "Database unavailable")]);
    packages.insert("200".into(), json!({"description": "The catalog and every plugin built here, with the Caddy modules each adds",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PackageList"}}}}));

    let mut start = resolve_errors();
    start.extend(errors(&[("400", "Bad input: module path, version, os/arch/arm, too many plugins")]));
    start.extend(admission_errors());
    let started = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BuildStarted"}}}});
    start.insert("200".into(), started("The build is finished: status complete (download it), failed or cancelled"));
    start.insert("202".into(), started("The build is queued or building: follow its events"));
    let params: Vec<Value> = compat_params().as_array().expect("an array").iter().filter(|p| p["name"] != "idempotency").cloned().collect();

    let mut events = errors(&[("400", "Bad build key"), ("404", "Unknown build"), ("503", "Database unavailable")]);
    events.extend(admission_errors());
    events.insert("200".into(), json!({"description": "Server-Sent Events: `step` ({\"step\": name}: create_environment, initialize_module, \
        pin_versions, tidy_module, compile, cleanup, each as it starts), `log` ({\"line\"}), then one `result` ({\"success\", \"error\"})",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}));

    let with_bad_key = |mut r: Value| {
        r.as_object_mut().expect("an object").extend(errors(&[("400", "Bad build key")]));
        r
    };
    let mut m = Map::new();
    m.insert("/api/packages".into(), json!({"get": {"summary": "Packages (official listing shape): catalog and plugins built here", "responses": packages}}));
    m.insert("/api/build".into(), json!({"post": {"summary": "Start a build (official streaming API); no body", "parameters": params, "responses": start}}));
    m.insert("/api/build/{key}/events".into(), json!({"get": {"summary": "A build's progress as Server-Sent Events (official streaming API)",
        "parameters": [key_param()], "responses": events}}));
    m.insert("/api/build/{key}/download".into(), json!({
        "get": {"summary": "The build's binary (official streaming API)", "parameters": [key_param()], "responses": with_bad_key(binary_responses(false))},
        "head": {"summary": "The build's binary, headers only (official streaming API)", "parameters": [key_param()], "responses": with_bad_key(binary_responses(true))},
    }));
    m
}

/// The schemas the paths above refer to.
pub fn schemas() -> Map<String, Value> {
    let module = json!({"type": "object", "required": ["name", "docs", "package", "repo"], "properties": {
        "name": {"type": "string"}, "docs": {"type": "string"}, "package": {"type": "string"}, "repo": {"type": "string"}}});
    let package = json!({"type": "object", "required": ["id", "path", "repo", "published", "listed", "available", "downloads", "modules"], "properties": {
        "id": {"type": "string"}, "path": {"type": "string"}, "repo": {"type": "string"},
        "published": {"type": "string", "format": "date-time", "nullable": true},
        "listed": {"type": "boolean"}, "available": {"type": "boolean"}, "downloads": {"type": "integer"},
        "modules": {"type": "array", "items": module}}});
    let mut m = Map::new();
    m.insert("PackageList".into(), json!({"type": "object", "required": ["result"], "properties": {"result": {"type": "array", "items": package}}}));
    m.insert("BuildStarted".into(), json!({"type": "object", "required": ["result"], "properties": {"result": {"type": "object",
        "required": ["status", "key"], "properties": {
            "status": {"type": "string", "enum": ["complete", "queued", "building", "failed", "cancelled"]},
            "key": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}}));
    m
}
