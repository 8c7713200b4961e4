//! Waiting on events instead of sleeping: poll a condition (a row, an HTTP
//! answer, a counter the test's own server keeps) until it holds, with a
//! deadline that fails the test and says what never happened. Deadlines are
//! generous (the machine may be loaded); they bound a hang, they are not what a
//! test asserts.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

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

/// Waits until the value `read` returns has changed `n` times (a timestamp a
/// loop stamps on each round), polling every `every`; fails the test with
/// "`what` (after `limit`)" otherwise.
pub async fn changes<T: PartialEq, Fut: Future<Output = Option<T>>>(
    what: &str,
    n: usize,
    every: Duration,
    limit: Duration,
    mut read: impl FnMut() -> Fut,
) {
    let deadline = Instant::now() + limit;
    let mut last = read().await;
    let mut seen = 0;
    while seen < n {
        assert!(Instant::now() < deadline, "{what}: {seen} of {n} (after {limit:?})");
        tokio::time::sleep(every).await;
        let now = read().await;
        if now.is_some() && now != last {
            seen += 1;
            last = now;
        }
    }
}
