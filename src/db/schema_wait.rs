//! Api and worker processes do not migrate: they wait, with a clear log line,
//! until a janitor (or `migrate`) has installed exactly the schema this binary
//! was built with, and refuse to run against a newer one.

use std::time::Duration;

use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::migrate::{latest_migration_version, schema_fingerprint};
use crate::config::DatabaseConfig;

/// First and longest pause between two looks at the schema.
const RECHECK_MIN: Duration = Duration::from_millis(250);
const RECHECK_MAX: Duration = Duration::from_secs(2);
/// How often the "still waiting" line is repeated.
const REMIND_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SchemaWaitError {
    #[error("the database has migration {version}, newer than this caddy-build-server knows ({known}); upgrade this process")]
    Newer { version: i32, known: i32 },
    #[error("stopped while waiting for the database schema")]
    Cancelled,
}

/// What the database holds compared with this binary's SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    Current,
    /// Not migrated yet, or migrated by a different version of the SQL.
    Behind,
    Newer { version: i32 },
}

/// Looks once at the schema of the database `cfg` points to.
pub async fn schema_state(cfg: &DatabaseConfig) -> Result<SchemaState, tokio_postgres::Error> {
    let mut pg: tokio_postgres::Config = cfg.url.parse()?;
    pg.application_name("cbs-schema-check").connect_timeout(cfg.connect_timeout);
    let (client, conn) = pg.connect(NoTls).await?;
    let conn = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT to_regclass('cbs.schema_migrations') IS NOT NULL, to_regclass('cbs.schema_state') IS NOT NULL",
            &[],
        )
        .await?;
    let (has_migrations, has_state): (bool, bool) = (row.get(0), row.get(1));
    let mut state = SchemaState::Behind;
    if has_migrations {
        let newest: Option<i32> = client.query_one("SELECT max(version) FROM cbs.schema_migrations", &[]).await?.get(0);
        if let Some(v) = newest.filter(|v| *v > latest_migration_version()) {
            state = SchemaState::Newer { version: v };
        } else if has_state {
            let found: Option<String> = client
                .query_opt("SELECT fingerprint FROM cbs.schema_state", &[])
                .await?
                .map(|r| r.get(0));
            if found.as_deref() == Some(schema_fingerprint().as_str()) {
                state = SchemaState::Current;
            }
        }
    }
    drop(client);
    let _ = conn.await;
    Ok(state)
}

/// Returns once the schema is current; logs why it waits while it does.
pub async fn wait_for_schema(cfg: &DatabaseConfig, component: &str, shutdown: &CancellationToken) -> Result<(), SchemaWaitError> {
    let mut pause = RECHECK_MIN;
    let mut last_said: Option<tokio::time::Instant> = None;
    loop {
        let why = match schema_state(cfg).await {
            Ok(SchemaState::Current) => {
                if last_said.is_some() {
                    info!(component, "database schema is current; starting");
                }
                return Ok(());
            }
            Ok(SchemaState::Newer { version }) => {
                return Err(SchemaWaitError::Newer { version, known: latest_migration_version() });
            }
            Ok(SchemaState::Behind) => None,
            Err(e) => Some(e.to_string()),
        };
        if last_said.is_none_or(|t| t.elapsed() >= REMIND_EVERY) {
            match &why {
                None => info!(component, "waiting for a janitor to make the database schema current (run `caddy-build-server janitor` or `migrate`)"),
                Some(e) => warn!(component, error = %e, "waiting for the database to become reachable"),
            }
            last_said = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(SchemaWaitError::Cancelled),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RECHECK_MAX);
    }
}
