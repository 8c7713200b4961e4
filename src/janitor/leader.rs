//! Leader election: the janitor holding a Postgres session advisory lock leads.
//! The lock lives on a dedicated connection; when the leader dies its session
//! ends, Postgres releases the lock, and the next follower that retries takes
//! it (within `janitor.leader_retry`). The leader checks its connection every
//! `janitor.leader_check` and steps down as soon as it breaks.
//!
//! A frozen leader (stopped process, stuck host that still answers TCP) is
//! caught by the server: the lock session has an idle timeout a few check
//! intervals long, which a live leader's checks never let expire.
//!
//! Leadership is advisory for efficiency, not for safety: every policy function
//! is safe to run concurrently (SKIP LOCKED claims, fenced updates), so the short
//! overlap while a partitioned leader notices its loss does no harm.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::DatabaseConfig;

/// Arbitrary but fixed, distinct from the migration lock: the janitor leader lock.
pub const LEADER_LOCK_KEY: i64 = 0x0cb5_0002;
/// The lock connection's application_name starts with this, then the janitor id.
pub const LEADER_APPLICATION_PREFIX: &str = "cbs-janitor ";

/// Timing of the election.
#[derive(Debug, Clone, Copy)]
pub struct ElectionTiming {
    /// How often a follower tries to take the lock.
    pub retry: Duration,
    /// How often the leader checks its connection.
    pub check: Duration,
}

/// Whether this process leads; cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once this process leads (at once if it does); never, once the
    /// elector has stopped.
    pub async fn acquired(&mut self) {
        if self.rx.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once this process no longer leads (or the elector stopped).
    pub async fn lost(&mut self) {
        let _ = self.rx.wait_for(|l| !*l).await;
    }
}

/// Starts the elector; it runs until `shutdown` is cancelled, then releases the lock.
pub fn start(db: &DatabaseConfig, janitor_id: &str, timing: ElectionTiming, shutdown: CancellationToken) -> (Leadership, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run(db.clone(), janitor_id.to_string(), timing, tx, shutdown));
    (Leadership { rx }, task)
}

async fn run(db: DatabaseConfig, id: String, timing: ElectionTiming, tx: watch::Sender<bool>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(e) = session(&db, &id, timing, &tx, &shutdown).await {
            if tx.send_replace(false) {
                warn!(janitor = %id, error = %e, "lost the janitor leadership: lock connection broke");
            } else {
                warn!(janitor = %id, error = %e, "janitor leader election cannot reach the database");
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(timing.retry) => {}
            }
        }
    }
    tx.send_replace(false);
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the lock connection closed or stopped answering")]
    Broken,
}

/// One connection's life: try the lock until it is ours, then hold it until the
/// connection breaks (Err) or shutdown (Ok, lock released).
async fn session(
    db: &DatabaseConfig,
    id: &str,
    timing: ElectionTiming,
    tx: &watch::Sender<bool>,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let mut pg: tokio_postgres::Config = db.url.parse()?;
    pg.application_name(format!("{LEADER_APPLICATION_PREFIX}{id}"))
        .connect_timeout(db.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    let (client, conn) = pg.connect(NoTls).await?;
    let mut conn = tokio::spawn(conn);
    // The server must let go of a dead leader's lock quickly too: keepalives catch
    // a vanished host, the idle timeout a leader that is frozen (its checks keep a
    // live leader's session busy). Older servers lack the idle timeout; that is fine.
    client
        .batch_execute("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3;")
        .await?;
    let idle = (timing.check.max(timing.retry) * 4 + Duration::from_secs(1)).as_millis();
    if let Err(e) = client.batch_execute(&format!("SET idle_session_timeout = {idle}")).await {
        debug!(error = %e, "server has no idle_session_timeout; a frozen leader is only replaced once its connection drops");
    }
    let check_timeout = timing.check.max(Duration::from_secs(1));

    let result: Result<(), SessionError> = async {
        loop {
            let leading = *tx.borrow();
            let probe = if leading {
                client.query_one("SELECT true", &[])
            } else {
                client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK_KEY])
            };
            // A probe that hangs is a broken connection as far as leading goes.
            let leads: bool = tokio::time::timeout(check_timeout, probe).await.map_err(|_| SessionError::Broken)??.get(0);
            if leads && !tx.send_replace(true) {
                info!(janitor = %id, "became the janitor leader");
            }
            let pause = if leads { timing.check } else { timing.retry };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = &mut conn => return Err(SessionError::Broken),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
    .await;

    if result.is_ok() && *tx.borrow() {
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK_KEY]).await;
        tx.send_replace(false);
        info!(janitor = %id, "stepped down as janitor leader");
    }
    drop(client);
    if result.is_ok() {
        let _ = conn.await;
    } else {
        conn.abort();
    }
    result
}
