//! caddy-build-server: builds custom Caddy binaries with the plugins users ask for.
//! Postgres is the queue (see `sql/procedures/`); the api, worker and janitor
//! components are thin clients of it, woken by LISTEN/NOTIFY.

pub mod config;
pub mod db;
pub mod telemetry;
