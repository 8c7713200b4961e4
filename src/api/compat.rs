//! `GET`/`HEAD /api/compat` and `/api/download`: the caddyserver.com download
//! protocol. Submits the build (deduplicated in SQL), holds the request open
//! until it finishes, then streams the binary. A cached build streams at once.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use tracing::Instrument;

use super::admission;
use super::client::Client;
use super::download::{self, Freshness, SharedDownload};
use super::error::{ApiError, ApiResult};
use super::official;
use super::spec_input::{self, parse_replacement, parse_tags, split_module_version, SpecRequest};
use super::state::AppState;
use super::wait::{until_terminal, WaitEnd};
use crate::db::{Build, BuildStatus};
use crate::spec::Plugin;

/// Parses the compat query; repeated `p` and `r` keys are collected in order.
pub fn parse_query(raw: Option<&str>) -> ApiResult<SpecRequest> {
    let mut req = SpecRequest::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "os" => req.os = value.trim().to_string(),
            "arch" => req.arch = value.trim().to_string(),
            "arm" => req.arm = Some(value.trim().to_string()),
            "version" => req.caddy_version = value.trim().to_string(),
            "go" => req.go_version = value.trim().to_string(),
            "p" if !value.trim().is_empty() => {
                let (module, version) = split_module_version(&value);
                req.plugins.push(Plugin { module, version });
            }
            "r" if !value.trim().is_empty() => req.replacements.push(parse_replacement(&value)?),
            // Not in the official protocol: absent, the build has xcaddy's default tags.
            "tags" => req.tags.get_or_insert_with(Vec::new).extend(parse_tags(&value)),
            // `idempotency` is accepted and ignored, as are keys other clients add.
            _ => {}
        }
    }
    Ok(req)
}

pub async fn compat(
    State(state): State<AppState>,
    client: Client,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    // Boxed, and everything but the key dropped before waiting: a waiting request
    // should hold as little memory as possible (ten thousand may wait at once).
    let req = parse_query(raw.as_deref())?;
    drop(raw);
    let freshness = if req.is_pinned() { Freshness::Immutable } else { Freshness::Revalidate };
    let build = Box::pin(submit(&state, req, &client)).await?;
    let held = if build.status.is_terminal() { None } else { Some(state.held.hold(&client)?) };
    drop(client);
    let span = tracing::info_span!("compat", build_key = %build.build_key);
    async move {
        if build.status.is_terminal() {
            let response = Box::pin(finished(&state, &build, None, &method, &headers, freshness)).await;
            return official::located(&state, &build.build_key, &method, response);
        }
        let _held = held;
        let key = build.build_key.clone();
        drop(build);
        tracing::debug!("waiting for the build");
        let limit = state.config.api.compat_wait_limit;
        match until_terminal(&state, &key, limit, true).await? {
            WaitEnd::Terminal(w) => {
                let response = Box::pin(finished(&state, &w.build, Some(&w.download), &method, &headers, freshness)).await;
                official::located(&state, &key, &method, response)
            }
            WaitEnd::TimedOut(_) => Err(ApiError::WaitLimit(format!(
                "build {key} did not finish within {}; retry the same request to keep waiting",
                humantime::format_duration(limit)
            ))),
        }
    }
    .instrument(span)
    .await
}

/// Parses, validates and resolves the request, then submits its build; identical
/// requests of one client arriving together share one submit (and one charge).
pub(super) async fn submit(state: &AppState, req: SpecRequest, client: &Client) -> ApiResult<Arc<Build>> {
    let spec = spec_input::resolve(state, req).await?;
    let spec = serde_json::to_value(&spec).map_err(|e| ApiError::internal("encoding the spec", e))?;
    let key = format!("{} {spec}", client.id);
    let (state2, client) = (state.clone(), client.clone());
    state
        .submits
        .run(&key, || async move { Ok(Arc::new(admission::submit(&state2, &spec, false, &client).await?)) })
        .await
}

/// Answers with the binary, or with the reason a finished build has none. A
/// request that waited for the build passes the download its build's waiters
/// share; `freshness` is what the request itself named (waiters of one build may
/// differ).
pub async fn finished(
    state: &AppState,
    build: &Build,
    shared: Option<&SharedDownload>,
    method: &Method,
    headers: &HeaderMap,
    freshness: Freshness,
) -> ApiResult<Response> {
    match build.status {
        BuildStatus::Succeeded => {
            let served = match shared {
                Some(shared) => match shared.get(state, build).await {
                    Ok(prepared) => download::respond(state, &prepared, method, headers, freshness).await,
                    Err(e) => Err(e),
                },
                None => download::serve(state, build, method, headers, freshness).await,
            };
            match served {
                Err(ApiError::StorageMissing(path)) => Err(rebuild_lost(state, build, &path).await),
                Ok(response) => {
                    state.downloads.note(&build.build_key, method, &response);
                    Ok(response)
                }
                Err(e) => Err(e),
            }
        }
        BuildStatus::Failed => Err(ApiError::BuildFailed(
            build.error.clone().unwrap_or_else(|| format!("build {} failed", build.build_key)),
        )),
        BuildStatus::Cancelled => Err(ApiError::Conflict(format!(
            "build {} was cancelled: {}",
            build.build_key,
            build.error.as_deref().unwrap_or("no reason given")
        ))),
        s => Err(ApiError::Conflict(format!("build {} is {}", build.build_key, s.as_str()))),
    }
}

/// The binary of a succeeded build is gone from storage (deleted by hand, a lost
/// bucket, a crash between retention's two steps): the build is queued again, so
/// the next request joins its rebuild instead of meeting a 404 for good.
async fn rebuild_lost(state: &AppState, build: &Build, path: &str) -> ApiError {
    let key = &build.build_key;
    match state.queue.artifact_lost(key).await {
        Ok(b) => {
            tracing::warn!(build_key = %key, path, status = b.status.as_str(), "a succeeded build's binary is missing from storage; building it again");
            ApiError::Unavailable(format!("build {key}: {path} is missing from storage; it is being built again, retry in a minute"))
        }
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters() {
        let q = "os=linux&arch=arm&arm=6&p=github.com/a/b@v1.2.3&p=github.com/c/d&r=github.com/x/y%3Dgithub.com/z/y@v1.0.0&idempotency=42";
        let r = parse_query(Some(q)).unwrap();
        assert_eq!((r.os.as_str(), r.arch.as_str(), r.arm.as_deref()), ("linux", "arm", Some("6")));
        assert_eq!(r.plugins, vec![
            Plugin { module: "github.com/a/b".into(), version: "v1.2.3".into() },
            Plugin { module: "github.com/c/d".into(), version: "".into() },
        ]);
        assert_eq!(r.replacements[0].old, "github.com/x/y");
        assert_eq!(r.replacements[0].new, "github.com/z/y");
        assert_eq!(r.replacements[0].version, "v1.0.0");
        assert!(parse_query(Some("r=nonsense")).is_err());
    }
}

