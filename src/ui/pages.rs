//! Page handlers: each reads what it shows through the queue's SQL API and
//! renders one template. Errors answer like the rest of the API (the JSON
//! envelope), so scripts never have to parse an HTML error page.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{context, Environment};

use crate::api::{load, split_module_version, ApiError, AppState};
use crate::spec::CADDY_MODULE;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("index.html", include_str!("../../templates/index.html")),
    ("build.html", include_str!("../../templates/build.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
];

static TEMPLATE_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source).expect("templates are valid");
    }
    env
});

fn render(name: &str, ctx: minijinja::Value) -> Result<Response, ApiError> {
    let html = TEMPLATE_ENV
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::internal(format!("rendering {name}"), e))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

/// The base URL clients see, for the copy-paste commands.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if !state.config.api.public_url.is_empty() {
        return state.config.api.public_url.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost:8234");
    format!("http://{host}")
}

/// `?package=module[@version]` (repeated), as the official page takes them: catalog
/// plugins asked for without a version are checked, the others listed as added
/// modules; values that are no module path (SQL's `cbs.module_path_problem`) are ignored.
async fn preselected(state: &AppState, raw: Option<&str>) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let asked: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(key, _)| key == "package")
        .map(|(_, value)| split_module_version(&value))
        // No module path holds NUL (and no Postgres text can: SQL is not asked).
        .filter(|(module, version)| !module.contains('\0') && !version.contains('\0'))
        .collect();
    let (mut checked, mut extras) = (Vec::new(), Vec::new());
    if asked.is_empty() {
        return Ok((checked, extras));
    }
    let modules: Vec<String> = asked.iter().map(|(m, _)| m.clone()).collect();
    let problems = state.queue.module_path_problems(&modules).await?;
    for ((module, version), problem) in asked.into_iter().zip(problems) {
        if problem.is_some() {
            continue;
        }
        let in_catalog = state.config.catalog.iter().any(|c| c.module == module);
        let (list, value) = match version.is_empty() {
            true if in_catalog => (&mut checked, module),
            true => (&mut extras, module),
            false => (&mut extras, format!("{module}@{version}")),
        };
        if !list.contains(&value) {
            list.push(value);
        }
    }
    Ok((checked, extras))
}

pub async fn index(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let (checked, extras) = preselected(&state, raw.as_deref()).await?;
    // What the page offers is what SQL lists (the script reads the same list from
    // the arch picker's data attribute): no target or ARM variant of its own.
    let targets = state.targets().await?;
    let mut oses: Vec<String> = targets.iter().map(|t| t.os.clone()).collect();
    oses.dedup();
    let mut arches: Vec<String> = targets.iter().map(|t| t.arch.clone()).collect();
    arches.sort();
    arches.dedup();
    let arm_target = targets.iter().find(|t| t.arm_versions.is_some());
    // Newest first, as the official page lists them.
    let arm_versions: Vec<String> = arm_target.and_then(|t| t.arm_versions.clone()).into_iter().flatten().rev().collect();
    // Without the proxy the picker still offers "latest".
    let versions = state.resolver.releases(CADDY_MODULE).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list Caddy versions");
        Vec::new()
    });
    render(
        "index.html",
        context! {
            oses, arches, arm_versions, versions, checked, extras,
            targets => Serde(targets),
            catalog => Serde(&state.config.catalog),
            base_url => base_url(&state, &headers),
        },
    )
}

pub async fn build(State(state): State<AppState>, Path(key): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let build = load(&state, &key).await?;
    let view = crate::api::view(&state, &build).await?;
    // A build that is still to succeed will have them; one that succeeded without is older.
    let attested = view.artifact.as_ref().is_none_or(|a| a.attested);
    render(
        "build.html",
        context! {
            key, attested,
            file_name => build.spec.binary_name(),
            size => Serde(view.artifact.as_ref().map(|a| a.size)),
            sha256 => Serde(view.artifact.as_ref().map(|a| &a.sha256)),
            xcaddy_command => &view.xcaddy_command,
            xcaddy_install => crate::xcaddy::install_command(),
            xcaddy_version => crate::xcaddy::VERSION,
            reproduction => Serde(&view.reproduction),
            build => Serde(&view),
            base_url => base_url(&state, &headers),
        },
    )
}

pub async fn admin() -> Result<Response, ApiError> {
    render("admin.html", context! {})
}
