//! Waiting on events instead of sleeping: poll a condition until it holds,
//! with a deadline that fails the test and says what never happened, or hear
//! a Postgres NOTIFY. Deadlines are generous (the machine may be loaded); they
//! bound a hang, they are not what a test asserts.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, NoTls};

/// How often a condition is polled at most: quick to notice, light on the
/// database and the Docker daemon.
pub const POLL_MAX: Duration = Duration::from_millis(200);

/// Polls `check` until it holds; fails the test with "`what` (after `limit`)" otherwise.
pub async fn until<Fut: Future<Output = bool>>(what: &str, limit: Duration, mut check: impl FnMut() -> Fut) {
    until_some(what, limit, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await
}

/// Polls `check` until it returns a value; that value. Fails the test with
/// "`what` (after `limit`)" otherwise.
pub async fn until_some<T, Fut: Future<Output = Option<T>>>(what: &str, limit: Duration, mut check: impl FnMut() -> Fut) -> T {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} (after {limit:?})");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// `fut`'s output, or a failed test naming `what` when it takes longer than `limit`.
pub async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| panic!("{what} (after {limit:?})"))
}

/// A connection that LISTENs on channels of a test database and hands over
/// each notification's payload in order.
pub struct Listener {
    rx: mpsc::UnboundedReceiver<(String, String)>,
    _client: tokio_postgres::Client,
}

impl Listener {
    /// Listens on `channels` of the database at `url`; returns once LISTEN took
    /// effect, so nothing sent after this is missed.
    pub async fn new(url: &str, channels: &[&str]) -> Listener {
        let (client, mut conn) = tokio_postgres::connect(url, NoTls).await.expect("connect to listen");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        tokio::spawn(async move {
            while let Some(Ok(m)) = messages.next().await {
                if let AsyncMessage::Notification(n) = m
                    && tx.send((n.channel().to_string(), n.payload().to_string())).is_err()
                {
                    break;
                }
            }
        });
        for c in channels {
            client.batch_execute(&format!("LISTEN {c}")).await.expect("listen");
        }
        Listener { rx, _client: client }
    }

    /// The next notification `(channel, payload)` for which `matches` holds (others are
    /// dropped); fails the test naming `what` after `limit`.
    pub async fn next_matching(&mut self, what: &str, limit: Duration, matches: impl Fn(&str, &str) -> bool) -> (String, String) {
        within(what, limit, async {
            loop {
                let (c, p) = self.rx.recv().await.expect("listener connection closed");
                if matches(&c, &p) {
                    return (c, p);
                }
            }
        })
        .await
    }
}
