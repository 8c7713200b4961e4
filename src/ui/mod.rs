//! The web pages: download form, build page with its live log, admin page.
//! Server-rendered minijinja templates (compiled into the binary, so the pages
//! work offline and need no front-end build) plus a little plain JavaScript
//! that talks to the same REST API as every other client.

mod assets;
mod pages;

use axum::routing::get;
use axum::Router;

use crate::api::AppState;

/// The pages and their static files.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::index))
        .route("/builds/{key}", get(pages::build))
        .route("/admin", get(pages::admin))
        .route("/static/{file}", get(assets::serve))
}
