//! `caddy-build-server all`, the real binary: it migrates a fresh database
//! before anything else starts, its janitor takes the leadership, and SIGTERM
//! stops every component and releases the leader lock.

mod common;
mod janitor_support;

use std::process::Stdio;
use std::time::Duration;

use caddy_build_server::db::{self, SchemaState};
use janitor_support::{lock_holders, temp_dir, wait_for_single_leader};

#[tokio::test]
async fn all_migrates_first_runs_the_janitor_and_stops_on_sigterm() {
    let cfg = common::config_for(&common::empty_database("all").await);
    assert_eq!(db::schema_state(&cfg).await.unwrap(), SchemaState::Behind);

    let dir = temp_dir("all");
    let port = common::free_port();
    let yaml = format!(
        "database:\n  url: \"{}\"\nstorage:\n  path: \"{}\"\napi:\n  listen: \"127.0.0.1:{port}\"\nworker:\n  work_dir: \"{}\"\njanitor:\n  id: single\n  leader_retry: 200ms\nprebuild:\n  enabled: false\n",
        cfg.url,
        dir.join("artifacts").display(),
        dir.join("work").display()
    );
    std::fs::write(dir.join("config.yml"), yaml).unwrap();
    let log = dir.join("all.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_caddy-build-server"))
        .arg("--config")
        .arg(dir.join("config.yml"))
        .arg("all")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // What a standalone api or worker does at start: wait for the schema.
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(20), db::wait_for_schema(&cfg, "test", &stop)).await.unwrap().unwrap();
    let (client, conn) = tokio_postgres::connect(&cfg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(wait_for_single_leader(&client, None, Duration::from_secs(20)).await, "single");
    assert_eq!(db::schema_state(&cfg).await.unwrap(), SchemaState::Current);

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("all stops on SIGTERM").unwrap();
    assert!(lock_holders(&client).await.is_empty(), "leader lock released");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("database schema is current"), "{text}");
    assert!(text.contains("janitor stopped"), "{text}");
}
