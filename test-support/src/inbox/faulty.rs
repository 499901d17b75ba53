//! A real store behind the faults a scenario chooses: completions or
//! claims' answers that are slow (a busy disk, a far database), completions
//! refused (the store gone), a failure recorded but its answer lost.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use tower_intercom::{
    inbox::{
        ClaimRequest, Claimed, Counts, DeadPage, DeadQuery, Failure, InboxFuture, InboxStore,
        Inserted, LeaseToken, NewNotification,
    },
    StoreError,
};

/// `inner`, with the faults set on it; none by default.
pub struct Faulty<S> {
    inner: S,
    complete_delay: Duration,
    claim_delay: Duration,
    refuse_completions: bool,
    lose_first_failure_answer: AtomicBool,
}

impl<S> Faulty<S> {
    /// `inner` without faults.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            complete_delay: Duration::ZERO,
            claim_delay: Duration::ZERO,
            refuse_completions: false,
            lose_first_failure_answer: AtomicBool::new(false),
        }
    }

    /// Each completion waits `delay` before it is written.
    pub fn complete_delay(mut self, delay: Duration) -> Self {
        self.complete_delay = delay;
        self
    }

    /// Each claim is answered `delay` after it was committed (its leases
    /// already running).
    pub fn claim_delay(mut self, delay: Duration) -> Self {
        self.claim_delay = delay;
        self
    }

    /// Completions fail as unavailable ("the disk went away"), and are not
    /// written.
    pub fn refuse_completions(mut self) -> Self {
        self.refuse_completions = true;
        self
    }

    /// The first failure recorded is written, then answered as timed out
    /// (its answer lost), so that the worker tries it again.
    pub fn lose_first_failure_answer(self) -> Self {
        self.lose_first_failure_answer.store(true, Ordering::SeqCst);
        self
    }
}

impl<S: InboxStore> InboxStore for Faulty<S> {
    fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted> {
        self.inner.insert(notification)
    }

    fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
        let (claiming, delay) = (self.inner.claim(request), self.claim_delay);
        Box::pin(async move {
            let claimed = claiming.await;
            tokio::time::sleep(delay).await;
            claimed
        })
    }

    fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        if self.refuse_completions {
            return Box::pin(std::future::ready(Err(StoreError::unavailable(
                "the disk went away",
            ))));
        }
        let (completing, delay) = (self.inner.complete(id, token), self.complete_delay);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            completing.await
        })
    }

    fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool> {
        let failing = self.inner.fail(id, token, failure);
        if !self.lose_first_failure_answer.swap(false, Ordering::SeqCst) {
            return failing;
        }
        Box::pin(async move {
            failing.await?;
            Err(StoreError::timed_out(Duration::from_secs(1)))
        })
    }

    fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        self.inner.release(id, token)
    }

    fn counts(&self) -> InboxFuture<Counts> {
        self.inner.counts()
    }

    fn dead(&self, query: DeadQuery) -> InboxFuture<DeadPage> {
        self.inner.dead(query)
    }

    fn requeue(&self, id: &str) -> InboxFuture<bool> {
        self.inner.requeue(id)
    }

    fn prune_done(&self, before: SystemTime) -> InboxFuture<u64> {
        self.inner.prune_done(before)
    }

    fn wakeups(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.wakeups()
    }
}
