//! Stopping: on shutdown, the notifications in flight are given the grace
//! period to finish, and the others are handed back.

use tower_service::Service;

use super::{prune::Pruning, Phase, Running};
use crate::{
    box_error::BoxError,
    inbox::{InboxStore, ReceivedNotification},
};

impl<St, S> Running<St, S>
where
    St: InboxStore,
    S: Service<ReceivedNotification> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    /// Stop, in `phase`, once `shutdown` completed: no more claims.
    ///
    /// A claim given up half-way would still lease notifications, which
    /// would then wait for their lease to lapse and lose an attempt: a
    /// claim in flight is waited for and its leases processed like any
    /// others, but within the grace period, so that a store that does not
    /// answer (a stalled disk) cannot hold the shutdown forever.
    ///
    /// Then the notifications in flight are given the grace period to
    /// finish; past it, their handlers are stopped and the notifications
    /// handed back (released: pending at once, without using up an
    /// attempt), unless the store does not answer within a lease: then the
    /// leases are left to lapse.
    pub(super) async fn stop(mut self, phase: Phase<'_>, pruning: Pruning<St>) {
        let grace_period = self.settings.grace_period;
        if let Phase::Claiming(mut claim) = phase {
            match tokio::time::timeout(grace_period, claim.answered()).await {
                Ok(answered) => {
                    let _ = self.claimed(answered);
                }
                Err(_) => tracing::warn!(
                    target: "tower_intercom::inbox",
                    "the inbox store did not answer a claim within the grace period of the \
                     shutdown; what it leased is taken again when the leases lapse"
                ),
            }
        }

        let finished = tokio::time::timeout(grace_period, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            let _ = self.hand_back.send(true);
            let handed_back = tokio::time::timeout(self.settings.lease, async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await;
            if handed_back.is_err() {
                // The store does not answer: the leases will lapse.
                self.tasks.abort_all();
            }
        }
        pruning.stop();
    }
}
