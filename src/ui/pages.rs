//! Page handlers: each reads what it shows from the queue's SQL API and renders
//! one template. Pages answer like the rest of the API when something is wrong
//! (the JSON error shape), so scripts never have to parse HTML errors.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{context, Environment};
use serde_json::json;

use super::UiState;
use crate::db::BuildStatus;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("index.html", include_str!("../../templates/index.html")),
    ("build.html", include_str!("../../templates/build.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
];

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source).expect("templates are valid");
    }
    env
}

/// The JSON error envelope of the HTTP contract.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"status_code": status.as_u16(), "error": {"message": message, "id": ""}});
    (status, axum::Json(body)).into_response()
}

pub fn not_found(message: &str) -> Response {
    error(StatusCode::NOT_FOUND, message)
}

fn render(state: &UiState, name: &str, ctx: minijinja::Value) -> Response {
    match state.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "page rendering failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed")
        }
    }
}

/// The base URL clients see, for the copy-paste commands.
fn base_url(state: &UiState, headers: &HeaderMap) -> String {
    if !state.config.api.public_url.is_empty() {
        return state.config.api.public_url.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost:8234");
    format!("http://{host}")
}

pub async fn index(State(state): State<UiState>, headers: HeaderMap) -> Response {
    let targets = match state.queue.targets().await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut oses: Vec<String> = targets.iter().map(|(os, _)| os.clone()).collect();
    oses.dedup();
    let mut arches: Vec<String> = targets.iter().map(|(_, arch)| arch.clone()).collect();
    arches.sort();
    arches.dedup();
    let targets: Vec<_> = targets.iter().map(|(os, arch)| json!({"os": os, "arch": arch})).collect();
    let versions = super::versions::caddy_versions(&state).await;
    render(
        &state,
        "index.html",
        context! {
            oses, arches, versions,
            targets => Serde(targets),
            catalog => Serde(&state.config.catalog),
            base_url => base_url(&state, &headers),
        },
    )
}

pub async fn build(State(state): State<UiState>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return error(StatusCode::BAD_REQUEST, "a build key is 64 lowercase hex digits");
    }
    let build = match state.queue.get(&key).await {
        Ok(Some(b)) => b,
        Ok(None) => return not_found(&format!("build {key} not found")),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let artifact = build.artifact.clone().unwrap_or_default();
    let file_name = crate::spec::binary_name(build.spec["os"].as_str().unwrap_or_default());
    render(
        &state,
        "build.html",
        context! {
            key, file_name,
            size => Serde(artifact.get("size")),
            sha256 => Serde(artifact.get("sha256")),
            succeeded => build.status == BuildStatus::Succeeded,
            build => Serde(&build),
            base_url => base_url(&state, &headers),
        },
    )
}

pub async fn admin(State(state): State<UiState>) -> Response {
    render(&state, "admin.html", context! {})
}
