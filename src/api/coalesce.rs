//! Single-flight: concurrent identical calls (same key) share one execution.
//! Ten thousand identical compat requests thus make one `cbs.submit_build`
//! call instead of ten thousand updates of one row.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures::future::{BoxFuture, FutureExt, Shared};

pub struct Coalescer<T: Clone> {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Coalescer<T> {
    pub fn new() -> Self {
        Coalescer { inflight: Mutex::new(HashMap::new()) }
    }

    /// Runs `make()` unless a call with the same key is in flight, then shares its result.
    pub async fn run<F>(&self, key: &str, make: impl FnOnce() -> F) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        let shared = {
            let mut inflight = self.inflight.lock().unwrap();
            match inflight.get(key) {
                Some(f) => f.clone(),
                None => {
                    let f = make().boxed().shared();
                    inflight.insert(key.to_string(), f.clone());
                    f
                }
            }
        };
        let out = shared.await;
        let mut inflight = self.inflight.lock().unwrap();
        if inflight.get(key).is_some_and(|f| f.peek().is_some()) {
            inflight.remove(key);
        }
        out
    }
}

impl<T: Clone + Send + Sync + 'static> Default for Coalescer<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn identical_calls_run_once() {
        let c = Arc::new(Coalescer::<usize>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..50).map(|_| {
            let (c, runs) = (c.clone(), runs.clone());
            async move {
                c.run("k", || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    runs.fetch_add(1, Ordering::SeqCst) + 7
                })
                .await
            }
        });
        let out = futures::future::join_all(calls).await;
        assert!(out.iter().all(|v| *v == 7));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(c.run("k", || async { 9 }).await, 9, "a finished call is not reused");
    }
}
