//! `caddy-build-server all`, the real binary: it migrates a fresh database
//! before anything else starts, its janitor takes the leadership, and SIGTERM
//! stops every component and releases the leader lock.

mod support;

use std::time::Duration;

use caddy_build_server::db::{self, SchemaState};
use support::janitor::{lock_holders, wait_for_single_leader};
use support::spawn::Service;

#[tokio::test]
async fn all_migrates_first_runs_the_janitor_and_stops_on_sigterm() {
    let cfg = support::db::config_for(&support::db::empty_database("all").await);
    assert_eq!(db::schema_state(&cfg).await.unwrap(), SchemaState::Behind);

    let port = support::db::free_port();
    let dir = support::tempdir::TempDir::new("all");
    let config = support::config::ConfigYaml::base(&cfg.url, dir.path())
        .set("api.listen", format!("127.0.0.1:{port}"))
        .set("janitor.id", "single")
        .set("janitor.leader_retry", "200ms");
    let mut all = Service::spawn("all", "all", &config);

    // What a standalone api or worker does at start: wait for the schema.
    let stop = tokio_util::sync::CancellationToken::new();
    support::wait::within("the schema never became current", Duration::from_secs(60), db::wait_for_schema(&cfg, "test", &stop)).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&cfg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(wait_for_single_leader(&client, None, Duration::from_secs(60)).await, "single");
    assert_eq!(db::schema_state(&cfg).await.unwrap(), SchemaState::Current);

    all.signal("TERM");
    let status = all.exited(Duration::from_secs(60)).await;
    assert!(status.success(), "all exits cleanly on SIGTERM: {status:?}");
    assert!(lock_holders(&client).await.is_empty(), "leader lock released");
    let text = all.log_text();
    assert!(text.contains("database schema is current"), "{text}");
    assert!(text.contains("janitor stopped"), "{text}");
}
