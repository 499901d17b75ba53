//! What an operator does with an inbox beside receiving and processing:
//! counting, listing and requeueing dead notifications, pruning.

use super::{Counts, DeadPage, DeadQuery, Inbox, InboxStore};
use crate::store_error::StoreError;

impl<St: InboxStore> Inbox<St> {
    /// How many notifications are in each state, and when the
    /// longest-waiting due one became due.
    ///
    /// With the `metrics` feature, also sets the gauges
    /// `intercom.inbox.pending`, `intercom.inbox.in_progress`,
    /// `intercom.inbox.dead` and `intercom.inbox.oldest_pending.age`: they
    /// are only as fresh as the last call, so call it from your metrics
    /// endpoint (as `examples/axum.rs` does) to keep them current.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let counts = self.store.counts().await?;
        crate::measure::inbox_counts(
            counts.pending,
            counts.in_progress,
            counts.dead,
            counts.oldest_pending_age(std::time::SystemTime::now()),
        );
        Ok(counts)
    }

    /// One page of dead notifications, oldest first. Pass
    /// [`DeadPage::next`] to [`DeadQuery::after`] for the next page.
    pub async fn dead(&self, query: DeadQuery) -> Result<DeadPage, StoreError> {
        self.store.dead(query).await
    }

    /// Makes the dead notification `id` pending again, with its attempts
    /// reset. Returns `false` when `id` is not dead.
    pub async fn requeue(&self, id: &str) -> Result<bool, StoreError> {
        let requeued = self.store.requeue(id).await?;
        if requeued {
            self.wake.notify_waiters();
        }
        Ok(requeued)
    }

    /// Makes every notification that is dead when it starts pending again,
    /// once. Returns how many. One that dies again meanwhile (a worker
    /// took it and failed it at once) stays dead: the call goes through
    /// the dead notifications page by page, not until none is left, so it
    /// ends even while workers keep failing what it requeues.
    pub async fn requeue_all(&self) -> Result<u64, StoreError> {
        let mut requeued = 0;
        let mut query = DeadQuery::first(256);
        loop {
            let page = self.store.dead(query).await?;
            for dead in &page.notifications {
                if self.store.requeue(dead.notification.id()).await? {
                    requeued += 1;
                }
            }
            // The cursor is a place in the dead notifications' order, which
            // requeued ones leave: the next page starts after this one.
            match page.next {
                Some(next) if !page.notifications.is_empty() => {
                    query = DeadQuery::after(256, next);
                }
                _ => break,
            }
        }
        if requeued > 0 {
            self.wake.notify_waiters();
        }
        Ok(requeued)
    }

    /// Forgets the done notifications older than the
    /// [`retention`](Self::retention). Returns how many. Running workers
    /// do this regularly.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let before = std::time::SystemTime::now()
            .checked_sub(self.config.retention)
            .unwrap_or(std::time::UNIX_EPOCH);
        let mut pruned = 0;
        loop {
            let n = self.store.prune_done(before).await?;
            pruned += n;
            if n == 0 {
                return Ok(pruned);
            }
        }
    }
}
