//! Claiming: leasing as many notifications as there are free handler
//! slots, starting their processing, and what to wait for next.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::{sync::OwnedSemaphorePermit, time::Instant};
use tower_service::Service;

use super::{
    process::{handler_timeout, process},
    wake::{Idle, WakeSources, WakeUp},
    Phase, Running,
};
use crate::{
    box_error::BoxError,
    inbox::{saturating_add, ClaimRequest, Claimed, InboxFuture, InboxStore, ReceivedNotification},
    store_error::StoreError,
};

/// The shortest wait after a claim that took nothing, whatever the store
/// says is due (at most the poll interval).
const MIN_IDLE_SLEEP: Duration = Duration::from_millis(50);

/// A claim sent to the store, not answered yet.
pub(super) struct Claim<'w> {
    answer: InboxFuture<Claimed>,
    /// The handler slots it is for, one per notification asked.
    slots: Vec<OwnedSemaphorePermit>,
    /// Every lease of this claim began after this instant: the handlers'
    /// deadlines count from it, not from when each one started (a slow
    /// claim commit would push them past the lease).
    sent_at: Instant,
    /// Listening to the wake sources since before the claim was sent.
    wake_up: WakeUp<'w>,
}

/// A claim and its answer.
pub(super) struct Answered<'w> {
    answer: Result<Claimed, StoreError>,
    slots: Vec<OwnedSemaphorePermit>,
    sent_at: Instant,
    wake_up: WakeUp<'w>,
}

impl<'w> Claim<'w> {
    /// Until the store answers.
    pub(super) async fn answered(&mut self) -> Answered<'w> {
        let answer = (&mut self.answer).await;
        Answered {
            answer,
            slots: std::mem::take(&mut self.slots),
            sent_at: self.sent_at,
            wake_up: std::mem::take(&mut self.wake_up),
        }
    }
}

impl<St, S> Running<St, S>
where
    St: InboxStore,
    S: Service<ReceivedNotification> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    /// Claim: takes `first` and every other free handler slot, starts
    /// listening to the wake sources, and asks the store for as many
    /// notifications.
    pub(super) fn claim<'w>(
        &self,
        first: OwnedSemaphorePermit,
        wake_sources: &'w WakeSources,
    ) -> Claim<'w> {
        let mut slots = vec![first];
        while let Ok(permit) = self.permits.clone().try_acquire_owned() {
            slots.push(permit);
        }
        // Listen before claiming, so an insert that lands in between is not
        // missed.
        let wake_up = wake_sources.listen();
        let request = ClaimRequest::new(
            slots.len(),
            self.settings.lease,
            self.settings.retry.max_attempts(),
        );
        let sent_at = Instant::now();
        Claim {
            answer: self.processing.inbox.store.claim(request),
            slots,
            sent_at,
            wake_up,
        }
    }

    /// The claim answered: each lease is processed in a task of its own
    /// with one of the claim's slots, and the slots left over are freed.
    /// Then the worker claims again as soon as there is room when it got
    /// all it asked for (there may be more), and otherwise is idle until
    /// the next poll or the next retry it knows of, or after a failed
    /// claim, for a backoff.
    pub(super) fn claimed<'w>(&mut self, answered: Answered<'w>) -> Phase<'w> {
        let Answered {
            answer,
            mut slots,
            sent_at,
            wake_up,
        } = answered;
        let sleep_for = match answer {
            Ok(claimed) => {
                self.store_failures = 0;
                let requested = slots.len();
                let got = claimed.leases.len();
                let deadline = saturating_add(handler_timeout(self.settings.lease), |after| {
                    sent_at.checked_add(after)
                });
                for lease in claimed.leases {
                    let Some(slot) = slots.pop() else { break };
                    self.tasks.spawn(process(
                        lease,
                        self.handler.clone(),
                        deadline,
                        Arc::clone(&self.processing),
                        self.handing_back.clone(),
                        slot,
                    ));
                }
                drop(slots);
                if got == requested {
                    return Phase::Room;
                }
                self.until_due(claimed.next_due, got == 0)
            }
            Err(error) => {
                drop(slots);
                self.claim_log.report(&error);
                self.store_failures = self.store_failures.saturating_add(1);
                // 100 ms, 200 ms, … up to the poll interval.
                (Duration::from_millis(100) * 2u32.saturating_pow(self.store_failures.min(16) - 1))
                    .min(self.settings.poll_interval.max(Duration::from_millis(100)))
            }
        };
        Phase::Idle(Idle::new(wake_up, sleep_for))
    }

    /// How long to sleep after a claim that got less than it asked: until
    /// the next retry the store knows of (`next_due`), at most the poll
    /// interval.
    fn until_due(&self, next_due: Option<SystemTime>, got_nothing: bool) -> Duration {
        let poll_interval = self.settings.poll_interval;
        let until_due = next_due.map(|due| {
            due.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        let sleep_for = until_due.map_or(poll_interval, |until| until.min(poll_interval));
        if got_nothing {
            // Nothing taken, yet something due now: a store that says so
            // every time (an entry it cannot hand out) must not make the
            // worker spin.
            sleep_for.max(MIN_IDLE_SLEEP.min(poll_interval))
        } else {
            sleep_for
        }
    }
}
