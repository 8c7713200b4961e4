//! Static files of the pages, compiled in: no external assets, nothing to deploy.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../templates/static/app.css")),
    ("index.js", "text/javascript; charset=utf-8", include_str!("../../templates/static/index.js")),
    ("build.js", "text/javascript; charset=utf-8", include_str!("../../templates/static/build.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../templates/static/admin.js")),
];

pub async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, mime, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::NotFound(format!("no static file {file:?}")))?;
    Ok(([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=300")], *body).into_response())
}
