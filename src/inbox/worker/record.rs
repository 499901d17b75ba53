//! Recording the outcome of an attempt: done, failed (retried or dead,
//! by the retry policy) or handed back, fenced by the lease token.

use std::{future::Future, time::Duration, time::SystemTime};

use tokio::sync::OwnedSemaphorePermit;

use super::{
    process::{Attempt, Outcome, Processing},
    retry::AfterFailure,
};
use crate::inbox::{saturating_add, Failure, InboxStore, Permanent, StoreError};

impl<St: InboxStore> Processing<St> {
    /// Record the outcome: writes what became of `attempt` to the store.
    /// The handler is done: its `slot` goes to the next notification as
    /// soon as there is room among the outcomes being written, so that the
    /// next claim can share a commit with this outcome.
    pub(super) async fn record(
        &self,
        attempt: &Attempt,
        outcome: Outcome,
        slot: OwnedSemaphorePermit,
    ) {
        let _recording = self.recording.acquire().await;
        drop(slot);
        let id = &*attempt.id;
        let token = &attempt.token;
        let started = attempt.started;
        let attempt = attempt.number;
        let store = &self.inbox.store;
        // A write the store did not take after its tries: reported (the
        // notification is taken again when its lease lapses).
        let not_recorded = |error: StoreError| {
            tracing::debug!(
                target: "tower_intercom::inbox",
                id = %id,
                attempt,
                "what became of the notification was not recorded: {error}"
            );
            self.record_log.report(&error);
        };
        // Whether the handler said no retry can help (a `Permanent` error).
        let mut permanent = false;
        let error = match outcome {
            Outcome::Finished(Ok(Ok(()))) => {
                crate::measure::inbox_processed("done", started.elapsed());
                match with_store_retries(|| store.complete(id, token)).await {
                    Ok((true, _)) => {}
                    Ok((false, retried)) => tracing::debug!(
                        target: "tower_intercom::inbox",
                        id = %id,
                        attempt,
                        "processed, but not marked done by this worker: {}",
                        if retried {
                            "an earlier try that timed out marked it done, or its lease lapsed \
                             meanwhile and another worker has it"
                        } else {
                            "its lease lapsed and another worker has it"
                        }
                    ),
                    Err(error) => not_recorded(error),
                }
                return;
            }
            Outcome::HandBack => {
                if let Err(error) = with_store_retries(|| store.release(id, token)).await {
                    not_recorded(error);
                }
                return;
            }
            Outcome::Abandoned => return,
            Outcome::Finished(Ok(Err(error))) => {
                permanent = Permanent::marks(&*error);
                error.to_string()
            }
            Outcome::Finished(Err(join_error)) if join_error.is_panic() => {
                "the handler panicked".to_owned()
            }
            Outcome::Finished(Err(_)) => "the handler was cancelled".to_owned(),
            Outcome::TimedOut => {
                format!(
                    "the handler did not finish within its lease ({:?})",
                    self.lease
                )
            }
        };
        let failure = match self.retry.after_failure(attempt, permanent) {
            AfterFailure::DeadPermanent => {
                crate::measure::inbox_processed("dead", started.elapsed());
                tracing::warn!(
                    target: "tower_intercom::inbox",
                    id = %id,
                    attempt,
                    "notification dead at attempt {attempt}, without retries: the handler's \
                     error is permanent: {error}"
                );
                Failure::dead(error)
            }
            AfterFailure::DeadAttemptsUsedUp => {
                crate::measure::inbox_processed("dead", started.elapsed());
                tracing::warn!(
                    target: "tower_intercom::inbox",
                    id = %id,
                    attempt,
                    "notification dead after {attempt} attempts: {error}"
                );
                Failure::dead(error)
            }
            AfterFailure::RetryAfter(delay) => {
                crate::measure::inbox_processed("retried", started.elapsed());
                tracing::debug!(
                    target: "tower_intercom::inbox",
                    id = %id,
                    attempt,
                    ?delay,
                    "attempt failed, will retry: {error}"
                );
                self.attempt_log.report(&format_args!(
                    "notification {id}, attempt {attempt} of {}: {error}",
                    self.retry.max_attempts()
                ));
                let now = SystemTime::now();
                Failure::retry(error, saturating_add(delay, |after| now.checked_add(after)))
            }
        };
        match with_store_retries(|| store.fail(id, token, failure.clone())).await {
            // A retry: the claims look again, to wait for it rather than for
            // the poll interval (the last claim did not know of it). Also when
            // a second try found the lease ended: the first, whose answer was
            // lost, may have written the retry.
            Ok((recorded, retried)) if failure.retry_at.is_some() && (recorded || retried) => {
                self.inbox.wake.notify_waiters()
            }
            Ok(_) => {}
            Err(error) => not_recorded(error),
        }
    }
}

/// A store operation tried up to three times, 100 ms apart: its answer,
/// and whether it took more than one try (an earlier try that timed out
/// may have been written); or the last try's error.
async fn with_store_retries<T, F>(mut operation: impl FnMut() -> F) -> Result<(T, bool), StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok((value, tries > 1)),
            Err(error) if tries < 3 => {
                tracing::debug!(
                    target: "tower_intercom::inbox",
                    "inbox store operation failed, trying again: {error}"
                );
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
