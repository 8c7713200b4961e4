//! Shared waiting on builds. However many requests wait for one build, the
//! process runs one watcher task per build: it sleeps on the process's single
//! [`Listener`], re-reads the build's row once per wake-up (notification or
//! listener reconnect) and publishes it on a `watch` channel that every waiter
//! of that build reads. Ten thousand waiters thus cost one map entry, one task
//! and one query per wake-up, and no database connection while they sleep.
//!
//! The published state also carries the build's [`SharedDownload`]. When a
//! build that downloads wait for succeeds, the watcher prepares it (reads the
//! artifact once) before it publishes the state, so its waiters are released
//! with their response ready: each only writes it out.
//!
//! A watcher ends when its build reaches a terminal state or when its last
//! waiter has gone (a client that disconnects drops its receiver).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::download::SharedDownload;
use super::state::AppState;
use crate::db::{Build, BuildStatus, Listener, Queue, WatchOn};

/// Pause before a watcher re-reads a build after a database error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Latest known row of a build; `None` until the watcher's first read.
pub type BuildState = Option<Arc<Watched>>;

/// One read of a build's row, as every waiter of the build sees it.
pub struct Watched {
    pub build: Arc<Build>,
    /// Once the build succeeded, its download, prepared once for all waiters.
    pub download: SharedDownload,
}

struct Watcher {
    tx: watch::Sender<BuildState>,
    done: Arc<AtomicBool>,
    /// Set by the first waiter that will download the build: the state to prepare it with.
    download_for: Arc<Mutex<Option<AppState>>>,
}

#[derive(Clone)]
pub struct Waiters {
    inner: Arc<Inner>,
}

struct Inner {
    listener: Listener,
    queue: Queue,
    shutdown: CancellationToken,
    watchers: Mutex<HashMap<String, Watcher>>,
}

impl Waiters {
    pub fn new(listener: Listener, queue: Queue, shutdown: CancellationToken) -> Waiters {
        Waiters { inner: Arc::new(Inner { listener, queue, shutdown, watchers: Mutex::new(HashMap::new()) }) }
    }

    /// A receiver of the build's state, starting a watcher when none runs. A
    /// waiter that will download the build passes `download_with`: the watcher
    /// then prepares the download before it announces the success.
    pub fn subscribe(&self, build_key: &str, download_with: Option<&AppState>) -> watch::Receiver<BuildState> {
        let mut watchers = self.inner.watchers.lock().unwrap();
        let watcher = match watchers.get(build_key).filter(|w| !w.done.load(Ordering::Acquire)) {
            Some(w) => w,
            None => {
                let (tx, _) = watch::channel(None);
                let w = Watcher { tx, done: Arc::new(AtomicBool::new(false)), download_for: Arc::new(Mutex::new(None)) };
                let task = watch_build(self.inner.clone(), build_key.to_string(), w.tx.clone(), w.done.clone(), w.download_for.clone());
                tokio::spawn(task);
                watchers.entry(build_key.to_string()).insert_entry(w).into_mut()
            }
        };
        if let Some(state) = download_with {
            watcher.download_for.lock().unwrap().get_or_insert_with(|| state.clone());
        }
        watcher.tx.subscribe()
    }
}

async fn watch_build(
    inner: Arc<Inner>,
    key: String,
    tx: watch::Sender<BuildState>,
    done: Arc<AtomicBool>,
    download_for: Arc<Mutex<Option<AppState>>>,
) {
    let wake = inner.listener.watch_build(&key, WatchOn::Status);
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let pause = match inner.queue.get(&key).await {
            Ok(build) => {
                let terminal = build.as_ref().is_none_or(|b| b.status.is_terminal());
                let new = build.map(|b| Arc::new(Watched { build: Arc::new(b), download: SharedDownload::default() }));
                if let Some(w) = &new
                    && w.build.status == BuildStatus::Succeeded
                {
                    let state = download_for.lock().unwrap().take();
                    if let Some(state) = state {
                        // An error is kept in the shared download and answered to every waiter.
                        let _ = w.download.get(&state, &w.build).await;
                    }
                }
                tx.send_if_modified(|cur| {
                    let differs = match (&*cur, &new) {
                        (Some(a), Some(b)) => a.build.status != b.build.status || a.build.updated_at != b.build.updated_at,
                        (None, None) => false,
                        _ => true,
                    };
                    if differs {
                        *cur = new;
                    }
                    differs
                });
                if terminal {
                    break;
                }
                None
            }
            Err(e) => {
                tracing::warn!(build_key = %key, error = %e, "cannot read build state; retrying");
                Some(RETRY_AFTER_ERROR)
            }
        };
        let retry = async {
            match pause {
                Some(p) => tokio::time::sleep(p).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = retry => {}
            _ = tx.closed() => break,
            _ = inner.shutdown.cancelled() => break,
        }
    }
    let mut watchers = inner.watchers.lock().unwrap();
    done.store(true, Ordering::Release);
    if watchers.get(&key).is_some_and(|w| Arc::ptr_eq(&w.done, &done)) {
        watchers.remove(&key);
    }
}
