//! Every task the front door spawns to answer a request, tracked, so shutdown waits for the
//! work in flight with a deadline instead of polling a gauge.
//!
//! A `subscriptions/listen` stream is not tracked: it is no work, and it lasts as long as its
//! client likes.

use std::future::Future;
use std::time::Duration;

use tokio_util::task::TaskTracker;

/// The front door's tracked tasks, shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
}

impl Tasks {
    /// Run `work` as a tracked task.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(work);
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Wait until every tracked task has finished, or `deadline` has passed; whether they
    /// all finished. Tasks spawned meanwhile are waited for too.
    pub async fn wait(&self, deadline: Duration) -> bool {
        self.tracker.close();
        let finished = tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok();
        self.tracker.reopen();
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_drain_waits_for_the_work_in_flight_up_to_its_deadline() {
        let tasks = Tasks::default();
        assert!(
            tasks.wait(Duration::from_secs(1)).await,
            "nothing to wait for"
        );
        tasks.spawn(tokio::time::sleep(Duration::from_secs(3)));
        let started = tokio::time::Instant::now();
        assert!(!tasks.wait(Duration::from_secs(1)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(tasks.running(), 1);
        assert!(tasks.wait(Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
