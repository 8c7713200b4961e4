//! The process's one LISTEN connection. It lives outside the pool for good,
//! reconnects with capped backoff, and fans notifications out to any number of
//! in-process subscribers: a broadcast stream of every event (workers) and
//! per-build watches (api waiters, log followers), so ten thousand waiters cost
//! one connection and one hash lookup per notification.
//!
//! Notifications are wake-ups only. After every (re)connect each subscriber is
//! told to re-read the state it waits on ([`ListenerEvent::Reconnected`] and a
//! wake-up of every watch), so a notification lost while disconnected never
//! strands anyone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::DatabaseConfig;

/// How many events a slow broadcast subscriber may fall behind before it is told it lagged.
const BROADCAST_CAPACITY: usize = 4096;
/// First and longest wait between reconnect attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The application_name of the LISTEN session, for admins (and tests) looking at pg_stat_activity.
pub const LISTENER_APPLICATION_NAME: &str = "cbs-listener";

/// The NOTIFY channels of the SQL contract; each carries a build key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Queued,
    Finished,
    Cancelled,
    Log,
    /// A reproduction was queued (or handed back): workers try to claim.
    ReproductionQueued,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Channel::Queued, Channel::Finished, Channel::Cancelled, Channel::Log, Channel::ReproductionQueued];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Queued => "cbs_build_queued",
            Channel::Finished => "cbs_build_finished",
            Channel::Cancelled => "cbs_build_cancelled",
            Channel::Log => "cbs_build_log",
            Channel::ReproductionQueued => "cbs_reproduction_queued",
        }
    }

    fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerEvent {
    Notification { channel: Channel, build_key: String },
    /// The connection was (re)established: re-read whatever state you wait on.
    Reconnected,
}

struct Inner {
    events: broadcast::Sender<ListenerEvent>,
    watches: Mutex<HashMap<(String, WatchOn), Weak<Notify>>>,
    connected: AtomicBool,
    connected_changed: Notify,
    connections: AtomicU64,
}

/// Handle to the listener task; cheap to clone.
#[derive(Clone)]
pub struct Listener {
    inner: Arc<Inner>,
}

/// What a [`BuildWatch`] wakes for: a status watch on the build's end
/// (finished, cancelled), a log watch also on every batch of new log lines, so
/// that a build's log traffic never makes status waiters re-read the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchOn {
    Status,
    Log,
}

/// Wakes its owner on notifications about one build (see [`WatchOn`]) and
/// after every reconnect. Arm `notified()` before reading the
/// state, then await it, so that no wake-up falls between the two.
pub struct BuildWatch {
    notify: Arc<Notify>,
}

impl BuildWatch {
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Listener {
    /// Starts the listener task; it runs until `shutdown` is cancelled.
    pub fn start(cfg: &DatabaseConfig, shutdown: CancellationToken) -> Listener {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let listener = Listener {
            inner: Arc::new(Inner {
                events,
                watches: Mutex::new(HashMap::new()),
                connected: AtomicBool::new(false),
                connected_changed: Notify::new(),
                connections: AtomicU64::new(0),
            }),
        };
        tokio::spawn(run(listener.clone(), cfg.clone(), shutdown));
        listener
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ListenerEvent> {
        self.inner.events.subscribe()
    }

    pub fn watch_build(&self, build_key: &str, on: WatchOn) -> BuildWatch {
        let key = (build_key.to_string(), on);
        let mut watches = self.inner.watches.lock().unwrap();
        if let Some(notify) = watches.get(&key).and_then(Weak::upgrade) {
            return BuildWatch { notify };
        }
        let notify = Arc::new(Notify::new());
        watches.insert(key, Arc::downgrade(&notify));
        BuildWatch { notify }
    }

    /// Number of builds currently watched by at least one waiter.
    pub fn watched_builds(&self) -> usize {
        self.inner.watches.lock().unwrap().values().filter(|w| w.strong_count() > 0).count()
    }

    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// How many times a LISTEN session was established (1 after the first connect).
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Resolves once the LISTEN session is up.
    pub async fn wait_connected(&self) {
        loop {
            let changed = self.inner.connected_changed.notified();
            if self.is_connected() {
                return;
            }
            changed.await;
        }
    }

    fn set_connected(&self, up: bool) {
        self.inner.connected.store(up, Ordering::Release);
        self.inner.connected_changed.notify_waiters();
    }

    fn dispatch(&self, channel: Channel, build_key: String) {
        let kinds: &[WatchOn] = match channel {
            Channel::Queued | Channel::ReproductionQueued => &[],
            Channel::Log => &[WatchOn::Log],
            Channel::Finished | Channel::Cancelled => &[WatchOn::Status, WatchOn::Log],
        };
        for &on in kinds {
            let notify = self.inner.watches.lock().unwrap().get(&(build_key.clone(), on)).and_then(Weak::upgrade);
            if let Some(n) = notify {
                n.notify_waiters();
            }
        }
        let _ = self.inner.events.send(ListenerEvent::Notification { channel, build_key });
    }

    fn recheck_everyone(&self) {
        let live: Vec<Arc<Notify>> = {
            let mut watches = self.inner.watches.lock().unwrap();
            watches.retain(|_, w| w.strong_count() > 0);
            watches.values().filter_map(Weak::upgrade).collect()
        };
        for n in live {
            n.notify_waiters();
        }
        let _ = self.inner.events.send(ListenerEvent::Reconnected);
    }

    /// Drops map entries whose waiters are all gone.
    fn prune(&self) {
        self.inner.watches.lock().unwrap().retain(|_, w| w.strong_count() > 0);
    }
}

async fn run(listener: Listener, cfg: DatabaseConfig, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    while !shutdown.is_cancelled() {
        match listen_once(&listener, &cfg, &shutdown).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                warn!(error = %e, retry_in = ?backoff, "notification listener cannot connect");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    listener.set_connected(false);
}

/// One LISTEN session: returns Ok when an established session ended (reconnect at
/// once), Err when it could not be established.
async fn listen_once(listener: &Listener, cfg: &DatabaseConfig, shutdown: &CancellationToken) -> Result<(), tokio_postgres::Error> {
    let mut pg: tokio_postgres::Config = cfg.url.parse()?;
    pg.application_name(LISTENER_APPLICATION_NAME)
        .connect_timeout(cfg.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10));
    let (client, mut conn) = pg.connect(NoTls).await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(error = %e, "listener connection ended");
                    break;
                }
            }
        }
    });

    let listen: String = Channel::ALL.iter().map(|c| format!("LISTEN {};", c.name())).collect();
    if let Err(e) = client.batch_execute(&listen).await {
        driver.abort();
        return Err(e);
    }
    let n = listener.inner.connections.fetch_add(1, Ordering::AcqRel) + 1;
    if n == 1 {
        info!("notification listener connected");
    } else {
        info!(reconnects = n - 1, "notification listener reconnected; subscribers re-check their state");
    }
    listener.set_connected(true);
    listener.recheck_everyone();

    let mut prune_tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = prune_tick.tick() => listener.prune(),
            msg = rx.recv() => match msg {
                Some(n) => {
                    if let Some(channel) = Channel::from_name(n.channel()) {
                        listener.dispatch(channel, n.payload().to_string());
                    }
                }
                None => {
                    warn!("notification listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
    listener.set_connected(false);
    driver.abort();
    drop(client);
    Ok(())
}
