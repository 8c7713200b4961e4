//! The migration runner: idempotent, safe when started twice at once, and
//! refusing databases whose applied migrations were edited or are newer.

mod support;

use caddy_build_server::db::{migrate, MigrateError};
use support::db::{config_for, TestDb};

async fn empty_database() -> String {
    support::db::empty_database("m").await
}

#[tokio::test]
async fn two_concurrent_runs_on_a_fresh_database_both_succeed() {
    let cfg = config_for(&empty_database().await);
    let (a, b) = tokio::join!(migrate(&cfg), migrate(&cfg));
    let (a, b) = (a.unwrap(), b.unwrap());
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert!(files >= 1);
    assert_eq!(a.applied.len() + b.applied.len(), files, "each file applied once, by one of the two runs");
    let again = migrate(&cfg).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, files);
    assert!(again.procedures >= 1);
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute("UPDATE cbs.schema_migrations SET checksum = 'deadbeef' WHERE version = 1")
        .await
        .unwrap();
    match migrate(&db.config).await {
        Err(e @ MigrateError::Edited { .. }) => assert!(e.to_string().contains("0001_schema.sql"), "{e}"),
        other => panic!("expected Edited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute("INSERT INTO cbs.schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', 'x')")
        .await
        .unwrap();
    match migrate(&db.config).await {
        Err(e @ MigrateError::NewerSchema { .. }) => assert!(e.to_string().contains("9999_future.sql"), "{e}"),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

/// Admins read `\dt+ cbs.*` and `\df+ cbs.*`: every table, view and function says what it is for.
#[tokio::test]
async fn every_table_view_and_function_has_a_comment() {
    let db = TestDb::new().await;
    let missing: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'cbs' AND obj_description(p.oid, 'pg_proc') IS NULL
             UNION ALL
             SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'cbs' AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(missing, Vec::<String>::new(), "without a COMMENT");
}
