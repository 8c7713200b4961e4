//! Helpers shared by the janitor and webhook tests: a config for a test
//! database, the current leader-lock holder as Postgres sees it, and the real
//! binary started as a janitor subprocess.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use caddy_build_server::config::{Config, DatabaseConfig};
use caddy_build_server::janitor::leader::{LEADER_APPLICATION_PREFIX, LEADER_LOCK_KEY};

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cbs-{tag}-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Prebuilding off unless the test's YAML configures it: a janitor test counts
/// the builds it made itself.
fn prebuild_off_unless_configured(yaml: &str) -> &'static str {
    if yaml.contains("prebuild:") { "" } else { "prebuild:\n  enabled: false\n" }
}

/// A janitor config for a test database: quick election, no pings, no prebuilds
/// (unless `yaml_janitor` configures them; it may add top-level sections after
/// the janitor's own keys).
pub fn janitor_config(db: &DatabaseConfig, id: &str, yaml_janitor: &str) -> Config {
    let storage = temp_dir("storage");
    let yaml = format!(
        "database:\n  url: \"{}\"\n  pool_size: 4\nstorage:\n  path: \"{}\"\n{}janitor:\n  id: {id}\n  leader_retry: 200ms\n  leader_check: 200ms\n{yaml_janitor}",
        db.url,
        storage.display(),
        prebuild_off_unless_configured(yaml_janitor)
    );
    Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// The janitor id holding the leader lock in this test's database, if any.
/// Also checks that the admins' `cbs.janitor_leader` view says the same.
pub async fn lock_holders(client: &tokio_postgres::Client) -> Vec<String> {
    for _ in 0..5 {
        let holders = raw_lock_holders(client).await;
        let view: Vec<String> = client
            .query("SELECT janitor_id FROM cbs.janitor_leader", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if view == holders {
            return holders;
        }
        // The lock may have changed hands between the two reads: look again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cbs.janitor_leader disagrees with pg_locks");
}

async fn raw_lock_holders(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid::bigint = $1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&LEADER_LOCK_KEY],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0).trim_start_matches(LEADER_APPLICATION_PREFIX).to_string())
        .collect()
}

/// Waits until exactly one janitor holds the lock (other than `not`); returns it.
pub async fn wait_for_single_leader(client: &tokio_postgres::Client, not: Option<&str>, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let holders = lock_holders(client).await;
        if holders.len() == 1 && Some(holders[0].as_str()) != not {
            return holders[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no single new leader within {limit:?}: {holders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary running `janitor` with `yaml` as its config; killed on drop.
pub struct JanitorProcess {
    pub child: tokio::process::Child,
    pub log: PathBuf,
}

impl JanitorProcess {
    pub fn spawn(yaml: &str, tag: &str) -> JanitorProcess {
        let dir = temp_dir(tag);
        let cfg = dir.join("config.yml");
        std::fs::write(&cfg, yaml).unwrap();
        let log = dir.join("janitor.log");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_caddy-build-server"))
            .arg("--config")
            .arg(&cfg)
            .arg("janitor")
            .env_remove("CONFIG_PATH")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start the janitor binary");
        JanitorProcess { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A janitor config file for the binary.
pub fn janitor_yaml(db: &DatabaseConfig, id: &str, yaml_janitor: &str) -> String {
    let storage = temp_dir("storage");
    format!(
        "database:\n  url: \"{}\"\n  pool_size: 4\nstorage:\n  path: \"{}\"\nlog:\n  level: info\n{}janitor:\n  id: {id}\n  leader_retry: 500ms\n  leader_check: 500ms\n{yaml_janitor}",
        db.url,
        storage.display(),
        prebuild_off_unless_configured(yaml_janitor)
    )
}
