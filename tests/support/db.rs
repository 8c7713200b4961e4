//! Test support: a database of its own for every test, cloned from a template
//! that is migrated once per schema version (keyed by the SQL's fingerprint), on
//! the throwaway cluster `make test` starts (`CBS_TEST_DATABASE_URL`).

use std::sync::atomic::{AtomicU64, Ordering};

use caddy_build_server::config::DatabaseConfig;
use caddy_build_server::db::{self, connect_pool, Queue};
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::config::ConfigYaml;
use super::tempdir::TempDir;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn admin_url() -> String {
    std::env::var("CBS_TEST_DATABASE_URL").expect(
        "CBS_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway Postgres",
    )
}

fn url_for(db: &str) -> String {
    let mut cfg: tokio_postgres::Config = admin_url().parse().unwrap();
    cfg.dbname(db);
    let host = match &cfg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("unsupported host {other:?}"),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg.get_user().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{db}")
}

pub async fn admin_client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls).await.expect("connect to test cluster");
    tokio::spawn(conn);
    client
}

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("cbs_tpl_{}", &db::schema_fingerprint()[..16]);
            let admin = admin_client().await;
            // Serialises test binaries that start at the same time.
            admin.execute("SELECT pg_advisory_lock(4242)", &[]).await.unwrap();
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .unwrap()
                .is_some();
            if !exists {
                let building = format!("{name}_building");
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await.unwrap();
                admin.batch_execute(&format!("CREATE DATABASE {building}")).await.unwrap();
                db::migrate(&config_for(&building)).await.expect("migrate template");
                admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}")).await.unwrap();
            }
            admin.execute("SELECT pg_advisory_unlock(4242)", &[]).await.unwrap();
            name
        })
        .await
}

pub fn config_for(db: &str) -> DatabaseConfig {
    DatabaseConfig { url: url_for(db), pool_size: 12, ..DatabaseConfig::default() }
}

/// A new database with no schema at all (for migration and start-up tests);
/// returns its name.
pub async fn empty_database(prefix: &str) -> String {
    let name = format!("cbs_{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), rand_suffix());
    admin_client().await.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
    name
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh, migrated database for one test, and a scratch directory of the
/// test's own (removed when this is dropped).
pub struct TestDb {
    pub name: String,
    pub config: DatabaseConfig,
    pub queue: Queue,
    pub dir: TempDir,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let template = template().await;
        let name = format!(
            "cbs_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let admin = admin_client().await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("clone template database");
        let config = config_for(&name);
        let queue = Queue::new(connect_pool(&config, "cbs-test").unwrap());
        let dir = TempDir::new("test");
        TestDb { name, config, queue, dir }
    }

    /// A config for this test: its database, everything on disk under its directory.
    pub fn yaml(&self) -> ConfigYaml {
        ConfigYaml::base(&self.config.url, self.dir.path())
    }

    /// Moves the leases of every running build `by` into the past, as if that
    /// much time had passed: a lease runs out without the test sleeping for it.
    pub async fn age_leases(&self, by: std::time::Duration) {
        let secs = by.as_secs_f64();
        self.client()
            .await
            .execute("UPDATE cbs.builds SET lease_expires_at = lease_expires_at - make_interval(secs => $1) WHERE status = 'building'", &[&secs])
            .await
            .unwrap();
    }

    /// A plain connection to this test's database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.config.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos()
}

/// A valid spec with the given plugins (module, version).
pub fn spec(plugins: &[(&str, &str)]) -> Value {
    json!({
        "caddy_version": "v2.11.9",
        "os": "linux",
        "arch": "amd64",
        "plugins": plugins.iter().map(|(m, v)| json!({"module": m, "version": v})).collect::<Vec<_>>(),
    })
}

/// A distinct valid spec per `n`.
pub fn nth_spec(n: usize) -> Value {
    spec(&[(&format!("github.com/example/plugin{n}"), "v1.0.0")])
}
