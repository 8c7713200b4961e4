//! caddy-build-server: builds custom Caddy binaries with the plugins users ask for.
//! Postgres is the queue (see `sql/procedures/`); the api, worker and janitor
//! components are thin clients of it, woken by LISTEN/NOTIFY.

pub mod api;
pub mod attest;
pub mod blocking;
pub mod build_view;
pub mod config;
pub mod db;
pub mod gocache;
pub mod gomod;
pub mod janitor;
pub mod outbound;
pub mod phase;
pub mod preempt;
pub mod sandbox;
pub mod shutdown;
pub mod signing;
pub mod spec;
pub mod storage;
pub mod toolchain;
pub mod supervise;
pub mod telemetry;
pub mod ui;
pub mod web;
pub mod worker;
pub mod xcaddy;
