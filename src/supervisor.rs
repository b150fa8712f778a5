//! The supervisor of long-lived background tasks: every task that must run as long as the process (the
//! table builder, providers, ACME, the health prober, the access-log writer…) is spawned here under a name,
//! so that one that panics or ends on its own is noticed instead of silently freezing what it maintained.
//!
//! The policy is the simplest correct one for a Swarm global service: the first failure is logged with the
//! task's name, the root [`CancellationToken`] is cancelled (everything else stops and the listeners
//! drain), and the application returns the failure, so the process exits non-zero and Swarm restarts the
//! task. No in-process restart: a task that panicked may have left its state half-updated.
//!
//! Generic on purpose (a named [`JoinSet`]): any layer may spawn into it without knowing the app.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// Why a supervised task stopped the process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskFailure {
    /// The task panicked.
    #[error("task `{task}` panicked: {message}")]
    Panicked {
        /// The task's name.
        task: String,
        /// The panic message (or a placeholder when it was not a string).
        message: String,
    },
    /// A task that must run until shutdown returned before it.
    #[error("task `{task}` ended before shutdown")]
    Ended {
        /// The task's name.
        task: String,
    },
}

/// How a task may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifetime {
    /// Runs until the root token is cancelled; ending earlier is a failure.
    UntilShutdown,
    /// May finish on its own (a provider that disables itself); only a panic is a failure.
    MayEnd,
}

/// Named background tasks tied to one root [`CancellationToken`].
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, (String, Lifetime)>,
    root: CancellationToken,
}

impl Supervisor {
    /// A supervisor that cancels `root` on the first failure. Tasks are expected to watch `root` (or a
    /// child of it) and return once it is cancelled.
    #[must_use]
    pub fn new(root: CancellationToken) -> Supervisor {
        Supervisor {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            root,
        }
    }

    /// Spawns `task`, which must run until the root token is cancelled: returning earlier or panicking
    /// stops the process. Must be called inside a Tokio runtime.
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_with(name.into(), Lifetime::UntilShutdown, task);
    }

    /// Spawns `task`, which may end on its own (a provider that gives up on a bad setting and leaves its
    /// neighbours working); only a panic stops the process.
    pub fn spawn_may_end<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_with(name.into(), Lifetime::MayEnd, task);
    }

    fn spawn_with<F>(&mut self, name: String, lifetime: Lifetime, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), (name, lifetime));
    }

    /// Waits for the first failure: logs it with the task's name, cancels the root token and returns it.
    /// Tasks ending as allowed are forgotten; with none left (or only well-behaved ones) this waits
    /// forever, so callers race it against their shutdown signal.
    pub async fn failure(&mut self) -> TaskFailure {
        loop {
            let Some(joined) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            if let Some(failure) = self.judge(joined) {
                tracing::error!("{failure}; stopping");
                self.root.cancel();
                return failure;
            }
        }
    }

    /// After the root token is cancelled: waits up to `deadline` for every task to end, then aborts the
    /// rest (logged by name). Returns the first panic seen meanwhile, if any.
    pub async fn join(mut self, deadline: Duration) -> Option<TaskFailure> {
        let mut first = None;
        let waited = tokio::time::timeout(deadline, async {
            while let Some(joined) = self.tasks.join_next_with_id().await {
                if let Some(f) = self.judge(joined) {
                    tracing::error!("{f}");
                    first.get_or_insert(f);
                }
            }
        })
        .await;
        if waited.is_err() {
            for (name, _) in self.names.values() {
                tracing::warn!(task = %name, "task still running at shutdown; aborted");
            }
            self.tasks.shutdown().await;
        }
        first
    }

    /// Names of the tasks still running (for logs and tests).
    #[must_use]
    pub fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.values().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    }

    fn judge(&mut self, joined: Result<(Id, ()), tokio::task::JoinError>) -> Option<TaskFailure> {
        let id = match &joined {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        let (task, lifetime) = self
            .names
            .remove(&id)
            .unwrap_or_else(|| ("unnamed".to_string(), Lifetime::UntilShutdown));
        match joined {
            Err(e) if e.is_panic() => Some(TaskFailure::Panicked {
                task,
                message: panic_message(e.into_panic().as_ref()),
            }),
            Err(_) => None, // aborted by us
            Ok(_) if lifetime == Lifetime::MayEnd || self.root.is_cancelled() => {
                tracing::debug!(task = %task, "task ended");
                None
            }
            Ok(_) => Some(TaskFailure::Ended { task }),
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
#[must_use]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn forever(cancel: CancellationToken) {
        cancel.cancelled().await;
    }

    #[tokio::test]
    async fn a_panicking_task_is_named_and_cancels_the_rest() {
        let root = CancellationToken::new();
        let mut s = Supervisor::new(root.clone());
        s.spawn("table builder", forever(root.child_token()));
        s.spawn("health checks", async {
            tokio::task::yield_now().await;
            panic!("index out of range");
        });
        let failure = tokio::time::timeout(Duration::from_secs(5), s.failure())
            .await
            .expect("failure reported");
        assert_eq!(
            failure,
            TaskFailure::Panicked {
                task: "health checks".into(),
                message: "index out of range".into()
            }
        );
        assert!(root.is_cancelled(), "the rest is told to stop");
        assert_eq!(s.running(), vec!["table builder".to_string()]);
        assert_eq!(s.join(Duration::from_secs(5)).await, None);
    }

    #[tokio::test]
    async fn ending_early_is_a_failure_unless_allowed() {
        let root = CancellationToken::new();
        let mut s = Supervisor::new(root.clone());
        s.spawn_may_end("docker provider", async {});
        s.spawn("file provider", async {});
        let failure = tokio::time::timeout(Duration::from_secs(5), s.failure())
            .await
            .expect("failure reported");
        assert_eq!(
            failure,
            TaskFailure::Ended {
                task: "file provider".into()
            }
        );
        assert!(root.is_cancelled());
    }

    #[tokio::test]
    async fn shutdown_is_not_a_failure_and_stragglers_are_aborted() {
        let root = CancellationToken::new();
        let mut s = Supervisor::new(root.clone());
        s.spawn("builder", forever(root.clone()));
        s.spawn("stuck", std::future::pending());
        let quiet = tokio::time::timeout(Duration::from_millis(50), s.failure()).await;
        assert!(quiet.is_err(), "no failure while running");
        root.cancel();
        assert_eq!(s.join(Duration::from_millis(100)).await, None);
    }
}
