//! The shared connection pool. Every query except LISTEN goes through it.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use super::DbError;
use crate::config::DatabaseConfig;

pub type DbPool = Pool;

pub fn connect_pool(cfg: &DatabaseConfig, application_name: &str) -> Result<DbPool, DbError> {
    let mut pg: tokio_postgres::Config = cfg
        .url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::Unavailable(format!("invalid database.url: {e}")))?;
    pg.application_name(application_name);
    pg.connect_timeout(cfg.connect_timeout);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(cfg.pool_wait),
            create: Some(cfg.connect_timeout),
            recycle: Some(Duration::from_secs(5)),
        })
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}
