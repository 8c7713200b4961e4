//! Everything that talks to Postgres: the pool, the migration runner, typed
//! wrappers around the `cbs.*` queue functions, and the per-process LISTEN
//! connection. Other modules never write SQL of their own.

mod admission;
mod build_row;
mod builder_images;
mod builds;
mod error;
mod gocache;
mod janitor;
mod listener;
mod migrate;
mod packages;
mod pool;
mod prebuilds;
mod reproductions;
mod schema_wait;
mod spec_rules;
mod webhooks;
mod worker_support;

pub use admission::{ApiToken, Priority, Submitted, Submitter, TokenLimits};
pub use build_row::{BuildArtifact, Provenance, RecordedDocuments, Toolchain};
pub use builds::{Build, BuildStatus, LogLine, Queue, StoredLogLine, WorkerInfo};
pub use error::{DbError, Refusal};
pub use listener::{BuildWatch, Channel, Listener, ListenerEvent, WatchOn};
pub use migrate::{migrate, schema_fingerprint, MigrateError, SchemaReport};
pub use packages::PackageRow;
pub use gocache::{GoCacheCandidate, GoCacheKind};
pub use janitor::{RetentionCandidate, StatusCount};
pub use pool::{connect_pool, DbPool};
pub use prebuilds::{PopularSpec, PrebuildReason, PrebuildRequest};
pub use reproductions::{ClaimedReproduction, Reproduction};
pub use schema_wait::{schema_state, wait_for_schema, SchemaState, SchemaWaitError};
pub use spec_rules::Target;
pub use webhooks::{WebhookAttempt, WebhookDelivery, WebhookOutcome, WebhookRetry};

/// The text of a statement in `sql/queries/`, checked at compile time.
macro_rules! query {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/queries/", $name, ".sql"))
    };
}
pub(crate) use query;
