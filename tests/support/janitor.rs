//! Helpers shared by the janitor and webhook tests: a config for a test
//! database, the current leader-lock holder as Postgres sees it, and the real
//! binary started as a janitor subprocess.

use std::time::Duration;

use caddy_build_server::config::{Config, DatabaseConfig};
use caddy_build_server::janitor::leader::{LEADER_APPLICATION_PREFIX, LEADER_LOCK_KEY};

use super::config::ConfigYaml;
use super::spawn::Service;
use super::tempdir::TempDir;

/// A janitor config for a test database: quick election, no pings, no prebuilds
/// (unless `yaml_janitor` configures them), storage in a scratch directory. The
/// snippet holds more keys of the `janitor:` section, indented by two spaces, and
/// may add top-level sections after them.
pub fn janitor_yaml_doc(db: &DatabaseConfig, id: &str, yaml_janitor: &str, election: &str) -> ConfigYaml {
    let dir = TempDir::new("janitor").keep();
    let mut doc = ConfigYaml::base(&db.url, &dir)
        .set("janitor.id", id)
        .set("janitor.leader_retry", election)
        .set("janitor.leader_check", election);
    if yaml_janitor.contains("prebuild:") {
        doc = doc.set("prebuild.enabled", Config::default().prebuild.enabled);
    }
    doc.merge(&format!("janitor:\n{yaml_janitor}"))
}

/// [`janitor_yaml_doc`] for a janitor in this process (elections every 200 ms).
pub fn janitor_config(db: &DatabaseConfig, id: &str, yaml_janitor: &str) -> Config {
    janitor_yaml_doc(db, id, yaml_janitor, "200ms").config()
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
    let what = format!("no single leader other than {not:?}");
    super::wait::until_some(&what, limit, || async {
        let holders = lock_holders(client).await;
        (holders.len() == 1 && Some(holders[0].as_str()) != not).then(|| holders[0].clone())
    })
    .await
}

/// The real binary running `janitor` with `config`; killed on drop.
pub struct JanitorProcess(pub Service);

impl JanitorProcess {
    pub fn spawn(config: &ConfigYaml, tag: &str) -> JanitorProcess {
        JanitorProcess(Service::spawn("janitor", tag, config))
    }
}

impl std::ops::Deref for JanitorProcess {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.0
    }
}

impl std::ops::DerefMut for JanitorProcess {
    fn deref_mut(&mut self) -> &mut Service {
        &mut self.0
    }
}

/// A janitor config for the binary (elections every 500 ms: a process is slower to start).
pub fn janitor_yaml(db: &DatabaseConfig, id: &str, yaml_janitor: &str) -> ConfigYaml {
    janitor_yaml_doc(db, id, yaml_janitor, "500ms")
}

/// Waits until janitor `id`'s lock session has run `n` more statements (its
/// tries for the lock as a follower, its checks as the leader): proof that its
/// election loop went round `n` times since the call, where a fixed sleep
/// would only hope so.
pub async fn wait_for_tries(client: &tokio_postgres::Client, id: &str, n: usize, limit: Duration) {
    let app = format!("{LEADER_APPLICATION_PREFIX}{id}");
    let read = || async {
        client
            .query_one("SELECT max(state_change) FROM pg_stat_activity WHERE application_name = $1", &[&app])
            .await
            .unwrap()
            .get::<_, Option<chrono::DateTime<chrono::Utc>>>(0)
    };
    super::wait::changes(&format!("janitor {id} trying for the lock"), n, Duration::from_millis(20), limit, read).await;
}
