//! The api component: the REST and caddyserver.com-compatible HTTP API (axum).
//! Requests for a build that is not finished are held open on the process's
//! single notification listener, never by polling (see [`waiters`]).
//!
//! The api knows nothing of the pages: [`crate::web`] mounts both on one
//! listener.

mod admin;
mod admission;
mod builds;
mod client;
mod coalesce;
mod compat;
mod documents;
mod download;
mod download_count;
mod error;
mod health;
mod held;
mod logs;
mod metrics;
mod middleware;
mod modules;
mod official;
mod openapi;
mod refusals;
mod routes;
mod server;
mod signing_key;
mod spec_input;
mod state;
mod tally;
mod targets;
mod usage;
mod wait;
mod waiters;

pub use builds::{check_key, load, view};
pub use error::{ApiError, ApiResult};
pub use spec_input::split_module_version;
pub use routes::{finish, router};
pub use server::serve as serve_router;
pub use state::AppState;
