//! Processing one lease: one attempt of the handler, then its outcome
//! recorded (see `record.rs`). Each lease is processed in a task of its
//! own.

use std::{
    future::poll_fn,
    sync::Arc,
    task::Context,
    time::{Duration, Instant},
};

use tokio::{
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::JoinError,
};
use tower_service::Service;

use super::retry::RetryPolicy;
use crate::{
    box_error::BoxError,
    inbox::{receiver::FailureLog, Inbox, InboxStore, Lease, LeaseToken, ReceivedNotification},
};

/// What the processing tasks of one worker share.
pub(super) struct Processing<St> {
    pub(super) inbox: Inbox<St>,
    /// How long one attempt may take.
    pub(super) lease: Duration,
    pub(super) retry: RetryPolicy,
    /// The bound on outcomes waiting to be written. A handler that
    /// finished hands its slot on before its outcome is written; at most
    /// `concurrency` outcomes wait, so that a slow store slows the
    /// claiming down.
    pub(super) recording: Semaphore,
    /// Where outcomes the store did not take are reported.
    pub(super) record_log: FailureLog,
    /// Where failed attempts that will be retried are reported.
    pub(super) attempt_log: FailureLog,
}

impl<St> Processing<St> {
    pub(super) fn new(
        inbox: Inbox<St>,
        lease: Duration,
        retry: RetryPolicy,
        concurrency: usize,
    ) -> Self {
        Self {
            inbox,
            lease,
            retry,
            recording: Semaphore::new(concurrency),
            record_log: FailureLog::new(
                "the inbox worker cannot record what became of a notification (done, failed or \
                 handed back); it is taken again when its lease lapses",
            ),
            attempt_log: FailureLog::new(
                "processing a notification failed; it is retried after its backoff",
            ),
        }
    }
}

/// The attempt being recorded.
pub(super) struct Attempt {
    pub(super) id: Box<str>,
    /// Its number: the first is 1.
    pub(super) number: u32,
    pub(super) token: LeaseToken,
    /// When the handler was called.
    pub(super) started: Instant,
}

/// How an attempt ended.
pub(super) enum Outcome {
    /// The handler returned (or panicked, or was cancelled).
    Finished(Result<Result<(), BoxError>, JoinError>),
    /// The handler ran past its deadline and was stopped.
    TimedOut,
    /// The worker shuts down: the handler was stopped, the notification is
    /// handed back.
    HandBack,
    /// Handed back at shutdown, but the handler did not stop: nothing is
    /// recorded, the lease lapses.
    Abandoned,
}

/// Process one lease: runs the handler on its notification until
/// `deadline` (a margin before the lease ends), then records the outcome
/// (fenced by the lease token). `slot` is the handler slot the claim took
/// for it; it is handed on once the handler is done.
pub(super) async fn process<St, S>(
    lease: Lease,
    handler: S,
    deadline: tokio::time::Instant,
    processing: Arc<Processing<St>>,
    handing_back: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) where
    St: InboxStore,
    S: Service<ReceivedNotification> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    let Lease {
        notification,
        token,
    } = lease;
    let attempt = Attempt {
        id: notification.id().into(),
        number: notification.attempt(),
        token,
        started: Instant::now(),
    };
    crate::measure::inbox_attempt_started(notification.received_at(), attempt.number);
    let outcome = run_handler(
        handler,
        notification,
        deadline,
        processing.lease,
        handing_back,
        &attempt,
    )
    .await;
    processing.record(&attempt, outcome, slot).await;
}

/// One attempt: the handler runs in its own task (a panic is a failed
/// attempt, and it can be stopped) until it finishes, `deadline` passes,
/// or the worker hands its notifications back.
async fn run_handler<S>(
    mut handler: S,
    notification: ReceivedNotification,
    deadline: tokio::time::Instant,
    lease: Duration,
    mut handing_back: watch::Receiver<bool>,
    attempt: &Attempt,
) -> Outcome
where
    S: Service<ReceivedNotification> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    let mut running = tokio::spawn(async move {
        poll_fn(|cx: &mut Context<'_>| handler.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        handler
            .call(notification)
            .await
            .map(drop)
            .map_err(Into::into)
    });
    // The handler's result first: one that finished as the lease ended
    // still counts.
    let outcome = tokio::select! {
        biased;
        finished = &mut running => Outcome::Finished(finished),
        () = tokio::time::sleep_until(deadline) => Outcome::TimedOut,
        _ = handing_back.wait_for(|handing_back| *handing_back) => Outcome::HandBack,
    };
    if matches!(outcome, Outcome::Finished(_)) {
        return outcome;
    }
    // Stopped, and given the lease's margin to stop (it ends at its next
    // `.await`), before its slot or the notification goes to another
    // attempt: one notification never runs twice at once.
    running.abort();
    let stopped =
        tokio::time::timeout(lease.saturating_sub(handler_timeout(lease)), &mut running).await;
    match stopped {
        // It finished on its own before the abort could reach it (blocking
        // code that then returned): its result counts, so a notification
        // it processed is not handed back to run again.
        Ok(finished) if !finished.as_ref().is_err_and(JoinError::is_cancelled) => {
            Outcome::Finished(finished)
        }
        // Stopped.
        Ok(_) => outcome,
        // Still running (blocking code between two `.await`s): handed back
        // now, the notification would run twice at once. Its lease is left
        // to lapse instead, as for a hung handler.
        Err(_) if matches!(outcome, Outcome::HandBack) => {
            tracing::warn!(
                target: "tower_intercom::inbox",
                id = %attempt.id,
                attempt = attempt.number,
                "the handler did not stop when the worker shut down (blocking code?); \
                 the notification is not handed back but left to its lease, and is \
                 taken again when that lapses"
            );
            Outcome::Abandoned
        }
        // Past its deadline: the failure is recorded, with its backoff.
        Err(_) => outcome,
    }
}

/// How long the handler may run: the lease less a margin (a tenth, at
/// most 1 s), so that the worker records the failure itself, with its
/// backoff, before the lease lapses and another worker could take it.
pub(super) fn handler_timeout(lease: Duration) -> Duration {
    lease - (lease / 10).min(Duration::from_secs(1))
}
