//! The worker's running build tasks, by build key. A task that panics must
//! still give its key back: otherwise its job slot would stay taken for good and
//! a drain would wait out `stop_timeout` for a build that no longer runs.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

/// How a build task ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub build_key: String,
    /// The task's id, as [`BuildTasks::spawn`] returned it.
    pub task: Id,
    /// The panic's message when the task panicked (or was aborted).
    pub panic: Option<String>,
}

#[derive(Default)]
pub struct BuildTasks {
    set: JoinSet<()>,
    keys: HashMap<Id, String>,
}

impl BuildTasks {
    /// Runs `task` for `build_key`; its id tells it apart from a later task of
    /// the same build (handed back and claimed again while this one winds down).
    pub fn spawn(&mut self, build_key: String, task: impl Future<Output = ()> + Send + 'static) -> Id {
        let id = self.set.spawn(task).id();
        self.keys.insert(id, build_key);
        id
    }

    /// The next task to end, `None` when none runs.
    pub async fn next(&mut self) -> Option<Ended> {
        let (id, panic) = match self.set.join_next_with_id().await? {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(panic_message(e))),
        };
        let build_key = self.keys.remove(&id).expect("every task is spawned with its key");
        Some(Ended { build_key, task: id, panic })
    }

    pub fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if e.is_cancelled() {
        return "the build task was aborted".into();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_gives_its_key_back() {
        let mut tasks = BuildTasks::default();
        let a = tasks.spawn("a".into(), async {});
        let b = tasks.spawn("b".into(), async { panic!("boom in b") });
        let mut ended = vec![tasks.next().await.unwrap(), tasks.next().await.unwrap()];
        ended.sort_by(|x, y| x.build_key.cmp(&y.build_key));
        assert_eq!(ended, vec![
            Ended { build_key: "a".into(), task: a, panic: None },
            Ended { build_key: "b".into(), task: b, panic: Some("boom in b".into()) },
        ]);
        assert!(tasks.next().await.is_none());
        assert!(tasks.keys.is_empty());
    }
}
