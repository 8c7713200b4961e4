//! Schema migrations and procedures. Numbered files in `migrations/` are applied
//! once each, in their own transaction, and recorded with a checksum; then every
//! file of `sql/procedures/` is re-applied in one transaction. A session advisory
//! lock makes concurrent starts (several janitors, api and workers) safe.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};
use tracing::info;

use crate::config::DatabaseConfig;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/sql_files.rs"));
}

/// Arbitrary but fixed: the advisory lock key that serialises migration runs.
const MIGRATION_LOCK_KEY: i64 = 0x0cb5_0001;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("migration {name} was edited after it was applied (recorded checksum {recorded}, file has {actual}); migrations must never change once applied: add a new one instead")]
    Edited { name: String, recorded: String, actual: String },
    #[error("the database has migration {name}, which this version does not know: it was migrated by a newer caddy-build-server; upgrade this one")]
    NewerSchema { name: String },
    #[error("migration file name {0:?} does not start with a number")]
    BadName(String),
    #[error("applying {name} failed: {source}")]
    Apply { name: String, #[source] source: tokio_postgres::Error },
    #[error("database error during migration: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// What a migration run did.
#[derive(Debug, Default, PartialEq)]
pub struct SchemaReport {
    pub applied: Vec<String>,
    pub already_applied: usize,
    pub procedures: usize,
}

/// A digest of every embedded SQL file: identifies the schema this binary installs.
pub fn schema_fingerprint() -> String {
    let mut h = Sha256::new();
    for (name, sql) in embedded::MIGRATIONS.iter().chain(embedded::PROCEDURES) {
        h.update(name.as_bytes());
        h.update(sql.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The highest migration number this binary knows.
pub(super) fn latest_migration_version() -> i32 {
    embedded::MIGRATIONS.iter().filter_map(|(n, _)| version_of(n).ok()).max().unwrap_or(0)
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

fn version_of(name: &str) -> Result<i32, MigrateError> {
    name.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| MigrateError::BadName(name.to_string()))
}

/// Brings the schema up to date and re-applies the procedures.
pub async fn migrate(cfg: &DatabaseConfig) -> Result<SchemaReport, MigrateError> {
    let mut pg: tokio_postgres::Config = cfg.url.parse().map_err(MigrateError::Connect)?;
    pg.application_name("cbs-migrate");
    pg.connect_timeout(cfg.connect_timeout);
    let (mut client, conn) = pg.connect(NoTls).await.map_err(MigrateError::Connect)?;
    let conn = tokio::spawn(conn);
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    let result = run_locked(&mut client).await;
    // Closing the session releases the lock even if unlocking fails.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    drop(client);
    let _ = conn.await;
    result
}

async fn run_locked(client: &mut Client) -> Result<SchemaReport, MigrateError> {
    client
        .batch_execute(
            "SET client_min_messages = warning;
             CREATE SCHEMA IF NOT EXISTS cbs;
             CREATE TABLE IF NOT EXISTS cbs.schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 checksum   text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await?;
    let recorded: Vec<(i32, String, String)> = client
        .query("SELECT version, name, checksum FROM cbs.schema_migrations ORDER BY version", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();

    let mut report = SchemaReport::default();
    for (version, name, recorded_sum) in &recorded {
        let file = embedded::MIGRATIONS
            .iter()
            .find(|(n, _)| version_of(n).ok() == Some(*version));
        match file {
            None => return Err(MigrateError::NewerSchema { name: name.clone() }),
            Some((file_name, sql)) => {
                let actual = checksum(sql);
                if &actual != recorded_sum {
                    return Err(MigrateError::Edited {
                        name: file_name.to_string(),
                        recorded: recorded_sum.clone(),
                        actual,
                    });
                }
                report.already_applied += 1;
            }
        }
    }

    for (name, sql) in embedded::MIGRATIONS {
        let version = version_of(name)?;
        if recorded.iter().any(|(v, _, _)| *v == version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|source| MigrateError::Apply { name: name.to_string(), source })?;
        tx.execute(
            "INSERT INTO cbs.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&version, name, &checksum(sql)],
        )
        .await?;
        tx.commit().await?;
        info!(migration = %name, "applied migration");
        report.applied.push(name.to_string());
    }

    let tx = client.transaction().await?;
    for (name, sql) in embedded::PROCEDURES {
        tx.batch_execute(sql)
            .await
            .map_err(|source| MigrateError::Apply { name: name.to_string(), source })?;
        report.procedures += 1;
    }
    // Tells waiting api and worker processes (db::wait_for_schema) that the schema is current.
    tx.execute(
        "INSERT INTO cbs.schema_state (fingerprint) VALUES ($1)
         ON CONFLICT (singleton) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, updated_at = now()",
        &[&schema_fingerprint()],
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_have_unique_numbers() {
        let mut versions: Vec<i32> = embedded::MIGRATIONS.iter().map(|(n, _)| version_of(n).unwrap()).collect();
        let n = versions.len();
        versions.dedup();
        assert_eq!(versions.len(), n, "two migrations share a number");
        assert!(n >= 1);
    }

    #[test]
    fn every_sql_file_opens_with_a_comment() {
        for (name, sql) in embedded::MIGRATIONS.iter().chain(embedded::PROCEDURES) {
            assert!(sql.trim_start().starts_with("--"), "{name} must open with a comment saying why");
        }
    }
}
