//! Static files of the pages, compiled in: no external assets, nothing to deploy.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../templates/static/app.css")),
    ("index.js", "text/javascript; charset=utf-8", include_str!("../../templates/static/index.js")),
    ("build.js", "text/javascript; charset=utf-8", include_str!("../../templates/static/build.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../templates/static/admin.js")),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => (
            [(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=300")],
            *body,
        )
            .into_response(),
        None => super::pages::not_found(&format!("no static file {file:?}")),
    }
}
