//! The route table: every endpoint of the HTTP contract, and [`finish`]: the
//! request body limit and the envelope/metrics layer around a whole service
//! (the fallback and wrong-method answers included), whatever else it mounts.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::Router;

use super::error::ApiError;
use super::state::AppState;
use super::{admin, builds, compat, documents, health, logs, middleware, modules, official, openapi, signing_key, targets};

/// The api's endpoints, without state or layers: see [`finish`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/compat", get(compat::compat).head(compat::compat))
        .route("/api/download", get(compat::compat).head(compat::compat))
        .route("/api/builds", post(builds::submit))
        .route("/api/builds/{key}", get(builds::status))
        .route("/api/builds/{key}/download", get(builds::download).head(builds::download))
        .route("/api/builds/{key}/sha256", get(builds::sha256))
        .route("/api/builds/{key}/signature", get(builds::signature))
        .route("/api/builds/{key}/log", get(logs::log))
        .route("/api/builds/{key}/sbom.cdx.json", get(documents::sbom_cdx))
        .route("/api/builds/{key}/sbom.cdx.json.minisig", get(documents::sbom_cdx_signature))
        .route("/api/builds/{key}/sbom.spdx.json", get(documents::sbom_spdx))
        .route("/api/builds/{key}/sbom.spdx.json.minisig", get(documents::sbom_spdx_signature))
        .route("/api/builds/{key}/provenance.json", get(documents::provenance))
        .route("/api/builds/{key}/provenance.json.minisig", get(documents::provenance_signature))
        .route("/api/openapi.json", get(openapi::openapi))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .route("/api/modules/check", get(modules::check))
        .route("/api/targets", get(targets::list))
        .route("/api/signing-key", get(signing_key::public_key))
        .route("/api/admin/overview", get(admin::overview))
        .route("/api/admin/builds/{key}/cancel", post(admin::cancel))
        .route("/api/admin/builds/{key}/requeue", post(admin::requeue))
        .route("/api/admin/builds/{key}/reproduce", post(admin::reproduce))
        .route("/api/admin/tokens", get(admin::list_tokens).post(admin::create_token))
        .route("/api/admin/tokens/{name}", delete(admin::revoke_token))
        .merge(official::router())
}

/// Wraps a service's routes (the api's, and whatever is mounted beside them)
/// in the api's answers for unknown paths, its body limit and its envelope.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.config.api.max_body_bytes;
    routes
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::around))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Read at scrape time; an unreachable database leaves the last figures.
    match state.queue.queued_by_priority().await {
        Ok(counts) => {
            for (priority, n) in counts {
                state.metrics.queued_builds.get_or_create(&super::metrics::PriorityLabels { priority }).set(n);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read queued builds for the metrics"),
    }
    match state.queue.reproduction_counts().await {
        Ok(counts) => {
            for (outcome, n) in counts {
                state.metrics.reproductions.get_or_create(&super::metrics::OutcomeLabels { outcome }).set(n);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read reproductions for the metrics"),
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
}
