//! Workers: take notifications from the inbox and run your handler.

use std::{
    fmt,
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use tokio::{
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::{JoinError, JoinHandle, JoinSet},
};
use tower_service::Service;

use super::{ClaimRequest, Failure, Inbox, InboxStore, Lease, Permanent, ReceivedNotification};
use crate::BoxError;

/// Default [`Worker::concurrency`]: 4 notifications processed at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The largest [`Worker::concurrency`]: 65,536 notifications at once. A
/// larger one is taken as this: each claim asks the store for as many
/// notifications as there are free slots, and holds a slot for each.
pub const MAX_CONCURRENCY: usize = 65_536;
/// Default [`Worker::lease`]: 30 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The longest [`Worker::lease`], and the longest wait of
/// [`Worker::backoff`]: ten years (of 366 days), the longest the stores
/// keep. A longer one is taken as this.
pub const MAX_LEASE: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);
/// Default [`Worker::max_attempts`]: 12.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;
/// Default first backoff of [`Worker::backoff`]: 2 s.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Default longest backoff of [`Worker::backoff`]: 1 h.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(60 * 60);
/// Default [`Worker::grace_period`]: 10 s.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// The shortest wait after a claim that took nothing, whatever the store
/// says is due (at most the poll interval).
const MIN_IDLE_SLEEP: Duration = Duration::from_millis(50);

/// Default [`Worker::poll_interval`]: 1 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a handler on the notifications of an [`Inbox`].
///
/// Built by [`Inbox::worker`]; started by [`run`](Self::run) or
/// [`spawn`](Self::spawn). See the [module documentation](super) for the
/// guarantees.
#[must_use = "a worker does nothing until it is run"]
pub struct Worker<St, S> {
    inbox: Inbox<St>,
    handler: S,
    settings: Settings,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    concurrency: usize,
    lease: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    grace_period: Duration,
    poll_interval: Duration,
}

impl<St, S> fmt::Debug for Worker<St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<St: InboxStore> Inbox<St> {
    /// A worker that runs `handler` on this inbox's notifications.
    ///
    /// The handler is a [`tower::Service`](tower_service::Service) taking a
    /// [`ReceivedNotification`]: wrap an async function with
    /// [`handler_fn`] (or `tower::service_fn`). `Ok` marks the notification
    /// done; `Err` is a failed attempt, retried after a backoff, unless it
    /// is (or wraps) a [`Permanent`] error: then the notification is dead
    /// at once.
    pub fn worker<S>(&self, handler: S) -> Worker<St, S> {
        Worker {
            inbox: self.clone(),
            handler,
            settings: Settings {
                concurrency: DEFAULT_CONCURRENCY,
                lease: DEFAULT_LEASE,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                backoff_base: DEFAULT_BACKOFF_BASE,
                backoff_cap: DEFAULT_BACKOFF_CAP,
                grace_period: DEFAULT_GRACE_PERIOD,
                poll_interval: DEFAULT_POLL_INTERVAL,
            },
        }
    }
}

impl<St, S> Worker<St, S>
where
    St: InboxStore,
    S: Service<ReceivedNotification> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    /// How many handlers run at once (default [`DEFAULT_CONCURRENCY`]; at
    /// least 1, at most [`MAX_CONCURRENCY`]: a value outside is taken as
    /// the nearest of the two). A handler's slot is handed on when it
    /// returns, while its outcome is being written (at most as many
    /// outcomes again), so that taking the next notifications shares a
    /// commit with those outcomes.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency.clamp(1, MAX_CONCURRENCY);
        self
    }

    /// How long one attempt may take (default [`DEFAULT_LEASE`]; at least
    /// 1 ms, at most [`MAX_LEASE`]: a value outside is taken as the
    /// nearest of the two, so `Duration::MAX` is ten years). The handler is
    /// stopped and the attempt counted as failed when it runs longer; and
    /// when this worker crashes or stalls, another worker takes the
    /// notification once the lease has lapsed.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease.clamp(Duration::from_millis(1), MAX_LEASE);
        self
    }

    /// After this many failed attempts, the notification is dead (default
    /// [`DEFAULT_MAX_ATTEMPTS`]; at least 1): kept and listed by
    /// [`Inbox::dead`], and not tried again until
    /// [`Inbox::requeue`]d.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.settings.max_attempts = max_attempts.max(1);
        self
    }

    /// The backoff after a failed attempt: exponential with full jitter, a
    /// random delay between 0 and `min(cap, base × 2^(attempt − 1))`
    /// (defaults [`DEFAULT_BACKOFF_BASE`], [`DEFAULT_BACKOFF_CAP`]).
    ///
    /// With the defaults, the waits between the 12 attempts add up to
    /// about 34 minutes on average and 68 at most (2 s + 4 s + … + 2,048
    /// s), besides the handler's own time.
    ///
    /// Both are taken as at most [`MAX_LEASE`] (ten years), and `cap` as
    /// at least `base`.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.settings.backoff_base = base.min(MAX_LEASE);
        self.settings.backoff_cap = cap.clamp(self.settings.backoff_base, MAX_LEASE);
        self
    }

    /// On shutdown, how long to let notifications in flight finish
    /// (default [`DEFAULT_GRACE_PERIOD`]; any duration, `Duration::MAX`
    /// waiting for them all however long). Those still running then are
    /// stopped and handed back, pending at once without using up an
    /// attempt; a handler that does not stop (blocking code) keeps its
    /// lease instead, and its notification is taken again when the lease
    /// lapses (see the [module docs](super#workers)).
    pub fn grace_period(mut self, grace_period: Duration) -> Self {
        self.settings.grace_period = grace_period;
        self
    }

    /// How often an idle worker looks for work it was not told about
    /// (default [`DEFAULT_POLL_INTERVAL`]): notifications received by
    /// another process, retries recorded by another process's workers.
    /// Notifications received through this process's receiver wake the
    /// worker at once, and it waits for the retries it knows of (those
    /// waiting when it last claimed, and those this process's workers
    /// recorded since) until each is due. At least 1 ms; any longer
    /// duration is taken as it is (`Duration::MAX`: never polls).
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.settings.poll_interval = poll_interval.max(Duration::from_millis(1));
        self
    }

    /// Processes notifications until `shutdown` completes, then stops
    /// claiming, lets the notifications in flight finish within the
    /// [`grace_period`](Self::grace_period), and hands the others back. A
    /// claim the store has not answered yet is waited for within the grace
    /// period too; past it the worker stops, and whatever the claim leased
    /// is taken again when its leases lapse.
    ///
    /// `shutdown` can be `tokio::signal::ctrl_c()` (mapped to `()`), a
    /// `CancellationToken::cancelled_owned()`, a oneshot receiver, or
    /// `std::future::pending()` to run forever. Store errors are logged and
    /// retried; they do not end the run.
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        let Worker {
            inbox,
            handler,
            settings,
        } = self;
        let mut shutdown = pin!(shutdown);
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        // Handlers that finished hand their slot on before their outcome is
        // written; at most `concurrency` outcomes wait to be written, so
        // that a slow store slows the claiming down.
        let recording = Arc::new(Semaphore::new(settings.concurrency));
        let (hand_back, handing_back) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut pruning: Option<JoinHandle<()>> = None;
        let mut last_prune: Option<Instant> = None;
        let prune_every =
            (inbox.config.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut store_failures = 0u32;
        let failure_log =
            super::receiver::FailureLog::new("the inbox worker cannot claim notifications");
        let attempt_log = Arc::new(super::receiver::FailureLog::new(
            "processing a notification failed; it is retried after its backoff",
        ));
        let record_log = Arc::new(super::receiver::FailureLog::new(
            "the inbox worker cannot record what became of a notification (done, failed or \
             handed back); it is taken again when its lease lapses",
        ));

        'claiming: loop {
            while tasks.try_join_next().is_some() {}

            if last_prune.is_none_or(|last| last.elapsed() >= prune_every)
                && pruning.as_ref().is_none_or(JoinHandle::is_finished)
            {
                last_prune = Some(Instant::now());
                let inbox = inbox.clone();
                pruning = Some(tokio::spawn(async move {
                    if let Err(error) = inbox.prune().await {
                        tracing::debug!(
                            target: "tower_intercom::inbox",
                            "pruning done notifications failed: {error}"
                        );
                    }
                }));
            }

            // Wait for room, then take all the room there is.
            let first =
                match first_of(shutdown.as_mut(), pin!(permits.clone().acquire_owned())).await {
                    First::A(()) | First::B(Err(_)) => break 'claiming,
                    First::B(Ok(permit)) => permit,
                };
            let mut held = vec![first];
            while let Ok(permit) = permits.clone().try_acquire_owned() {
                held.push(permit);
            }

            // Listen before claiming, so an insert that lands in between
            // is not missed.
            let mut woken = pin!(inbox.wake.notified());
            woken.as_mut().enable();

            let requested = held.len();
            let request = ClaimRequest::new(requested, settings.lease, settings.max_attempts);
            // Every lease of this claim began after this instant: the
            // handlers' deadlines count from it, not from when each one
            // started (a slow claim commit would push them past the lease).
            let claimed_at = tokio::time::Instant::now();
            // A claim given up half-way would still lease notifications,
            // which would then wait for their lease to lapse and lose an
            // attempt: on shutdown it is waited for, but within the grace
            // period, so that a store that does not answer (a stalled
            // disk) cannot hold the shutdown forever.
            let mut claiming = pin!(inbox.store.claim(request));
            let mut stopping = false;
            let claimed = match first_of(shutdown.as_mut(), claiming.as_mut()).await {
                First::B(claimed) => claimed,
                First::A(()) => {
                    stopping = true;
                    match tokio::time::timeout(settings.grace_period, claiming).await {
                        Ok(claimed) => claimed,
                        Err(_) => {
                            tracing::warn!(
                                target: "tower_intercom::inbox",
                                "the inbox store did not answer a claim within the grace \
                                 period of the shutdown; what it leased is taken again when \
                                 the leases lapse"
                            );
                            break 'claiming;
                        }
                    }
                }
            };
            let sleep_for = match claimed {
                Ok(claimed) => {
                    store_failures = 0;
                    let got = claimed.leases.len();
                    for lease in claimed.leases {
                        let Some(permit) = held.pop() else { break };
                        tasks.spawn(process(
                            inbox.clone(),
                            handler.clone(),
                            lease,
                            super::saturating_add(handler_timeout(settings.lease), |after| {
                                claimed_at.checked_add(after)
                            }),
                            settings,
                            handing_back.clone(),
                            Slot {
                                permit,
                                recording: recording.clone(),
                                record_log: record_log.clone(),
                                attempt_log: attempt_log.clone(),
                            },
                        ));
                    }
                    drop(held);
                    if stopping {
                        break 'claiming;
                    }
                    if got == requested {
                        // There may be more: claim again as soon as there
                        // is room.
                        continue 'claiming;
                    }
                    let until_due = claimed.next_due.map(|due| {
                        due.duration_since(SystemTime::now())
                            .unwrap_or(Duration::ZERO)
                    });
                    let sleep_for = until_due.map_or(settings.poll_interval, |until| {
                        until.min(settings.poll_interval)
                    });
                    if got == 0 {
                        // Nothing taken, yet something due now: a store
                        // that says so every time (an entry it cannot
                        // hand out) must not make the worker spin.
                        sleep_for.max(MIN_IDLE_SLEEP.min(settings.poll_interval))
                    } else {
                        sleep_for
                    }
                }
                Err(error) => {
                    drop(held);
                    failure_log.report(&error);
                    if stopping {
                        break 'claiming;
                    }
                    store_failures = store_failures.saturating_add(1);
                    // 100 ms, 200 ms, … up to the poll interval.
                    (Duration::from_millis(100) * 2u32.saturating_pow(store_failures.min(16) - 1))
                        .min(settings.poll_interval.max(Duration::from_millis(100)))
                }
            };
            let sleep = pin!(tokio::time::sleep(sleep_for));
            let woken_or_slept = pin!(first_of(woken, sleep));
            if let First::A(()) = first_of(shutdown.as_mut(), woken_or_slept).await {
                break 'claiming;
            }
        }

        // Shutdown: let what is in flight finish, then hand the rest back.
        let finished = tokio::time::timeout(settings.grace_period, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            let _ = hand_back.send(true);
            let handed_back = tokio::time::timeout(settings.lease, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            if handed_back.is_err() {
                // The store does not answer: the leases will lapse.
                tasks.abort_all();
            }
        }
        if let Some(pruning) = pruning {
            pruning.abort();
        }
    }

    /// [`run`](Self::run) in a new Tokio task.
    pub fn spawn<F>(self, shutdown: F) -> JoinHandle<()>
    where
        St: InboxStore,
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.run(shutdown))
    }
}

/// A notification's place among those being processed.
struct Slot {
    /// One of the `concurrency` handler slots.
    permit: OwnedSemaphorePermit,
    /// The bound on outcomes waiting to be written.
    recording: Arc<Semaphore>,
    /// Where outcomes the store did not take are reported.
    record_log: Arc<super::receiver::FailureLog>,
    /// Where failed attempts that will be retried are reported.
    attempt_log: Arc<super::receiver::FailureLog>,
}

enum Outcome<T> {
    Finished(T),
    TimedOut,
    HandBack,
    /// Handed back at shutdown, but the handler did not stop: nothing is
    /// recorded, the lease lapses.
    Abandoned,
}

/// One attempt: runs the handler until `deadline` (a margin before the
/// lease ends), then records the outcome (fenced by the lease token).
async fn process<St, S>(
    inbox: Inbox<St>,
    mut handler: S,
    lease: Lease,
    deadline: tokio::time::Instant,
    settings: Settings,
    mut handing_back: watch::Receiver<bool>,
    slot: Slot,
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
    let id: Box<str> = notification.id().into();
    let attempt = notification.attempt();
    let started = std::time::Instant::now();
    crate::measure::inbox_attempt_started(notification.received_at(), attempt);
    // The handler runs in its own task: a panic is a failed attempt, and
    // it can be stopped at the end of the lease or on shutdown.
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
    let mut outcome = match first_of(
        &mut running,
        pin!(first_of(
            pin!(tokio::time::sleep_until(deadline)),
            pin!(handing_back.wait_for(|handing_back| *handing_back)),
        )),
    )
    .await
    {
        First::A(finished) => Outcome::Finished(finished),
        First::B(First::A(())) => Outcome::TimedOut,
        First::B(First::B(_)) => Outcome::HandBack,
    };
    if matches!(outcome, Outcome::TimedOut | Outcome::HandBack) {
        // Stopped, and given the lease's margin to stop (it ends at its
        // next `.await`), before its slot or the notification goes to
        // another attempt: one notification never runs twice at once.
        running.abort();
        let stopped = tokio::time::timeout(
            settings
                .lease
                .saturating_sub(handler_timeout(settings.lease)),
            &mut running,
        )
        .await;
        match stopped {
            // It finished on its own before the abort could reach it
            // (blocking code that then returned): its result counts, so a
            // notification it processed is not handed back to run again.
            Ok(finished) if !finished.as_ref().is_err_and(JoinError::is_cancelled) => {
                outcome = Outcome::Finished(finished);
            }
            // Stopped.
            Ok(_) => {}
            // Still running (blocking code between two `.await`s): handed
            // back now, the notification would run twice at once. Its
            // lease is left to lapse instead, as for a hung handler.
            Err(_) if matches!(outcome, Outcome::HandBack) => {
                tracing::warn!(
                    target: "tower_intercom::inbox",
                    id = %id,
                    attempt,
                    "the handler did not stop when the worker shut down (blocking code?); \
                     the notification is not handed back but left to its lease, and is \
                     taken again when that lapses"
                );
                outcome = Outcome::Abandoned;
            }
            // Past its deadline: the failure is recorded, with its backoff.
            Err(_) => {}
        }
    }
    // The handler is done: its slot goes to the next notification as soon
    // as there is room among the outcomes being written, so that the next
    // claim can share a commit with this outcome.
    let _recording = slot.recording.acquire_owned().await;
    drop(slot.permit);
    let store = &inbox.store;
    // A write the store did not take after its tries: reported (the
    // notification is taken again when its lease lapses).
    let not_recorded = |error: super::StoreError| {
        tracing::debug!(
            target: "tower_intercom::inbox",
            id = %id,
            attempt,
            "what became of the notification was not recorded: {error}"
        );
        slot.record_log.report(&error);
    };
    // Whether the handler said no retry can help (a `Permanent` error).
    let mut permanent = false;
    let error = match outcome {
        Outcome::Finished(Ok(Ok(()))) => {
            crate::measure::inbox_processed("done", started.elapsed());
            match retry(|| store.complete(&id, &token)).await {
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
            if let Err(error) = retry(|| store.release(&id, &token)).await {
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
                settings.lease
            )
        }
    };
    let failure = if permanent {
        crate::measure::inbox_processed("dead", started.elapsed());
        tracing::warn!(
            target: "tower_intercom::inbox",
            id = %id,
            attempt,
            "notification dead at attempt {attempt}, without retries: the handler's error \
             is permanent: {error}"
        );
        Failure::dead(error)
    } else if attempt >= settings.max_attempts {
        crate::measure::inbox_processed("dead", started.elapsed());
        tracing::warn!(
            target: "tower_intercom::inbox",
            id = %id,
            attempt,
            "notification dead after {attempt} attempts: {error}"
        );
        Failure::dead(error)
    } else {
        crate::measure::inbox_processed("retried", started.elapsed());
        let delay = backoff(settings.backoff_base, settings.backoff_cap, attempt);
        tracing::debug!(
            target: "tower_intercom::inbox",
            id = %id,
            attempt,
            ?delay,
            "attempt failed, will retry: {error}"
        );
        slot.attempt_log.report(&format_args!(
            "notification {id}, attempt {attempt} of {}: {error}",
            settings.max_attempts
        ));
        let now = SystemTime::now();
        Failure::retry(
            error,
            super::saturating_add(delay, |after| now.checked_add(after)),
        )
    };
    match retry(|| store.fail(&id, &token, failure.clone())).await {
        // A retry: the claims look again, to wait for it rather than for
        // the poll interval (the last claim did not know of it). Also when
        // a second try found the lease ended: the first, whose answer was
        // lost, may have written the retry.
        Ok((recorded, retried)) if failure.retry_at.is_some() && (recorded || retried) => {
            inbox.wake.notify_waiters()
        }
        Ok(_) => {}
        Err(error) => not_recorded(error),
    }
}

/// How long the handler may run: the lease less a margin (a tenth, at
/// most 1 s), so that the worker records the failure itself, with its
/// backoff, before the lease lapses and another worker could take it.
fn handler_timeout(lease: Duration) -> Duration {
    lease - (lease / 10).min(Duration::from_secs(1))
}

enum First<A, B> {
    A(A),
    B(B),
}

/// Waits for the first of `a` and `b` to finish, polling `a` first.
async fn first_of<A, B>(mut a: A, mut b: B) -> First<A::Output, B::Output>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    poll_fn(|cx| {
        if let Poll::Ready(output) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(First::A(output));
        }
        if let Poll::Ready(output) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(First::B(output));
        }
        Poll::Pending
    })
    .await
}

/// A store operation tried up to three times, 100 ms apart: its answer,
/// and whether it took more than one try (an earlier try that timed out
/// may have been written); or the last try's error.
async fn retry<T, F>(mut operation: impl FnMut() -> F) -> Result<(T, bool), super::StoreError>
where
    F: Future<Output = Result<T, super::StoreError>>,
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

/// Exponential backoff with full jitter: uniform in
/// `[0, min(cap, base × 2^(attempt − 1))]`.
pub(crate) fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(63);
    let ceiling = base
        .checked_mul(1u32 << exponent.min(31))
        .unwrap_or(cap)
        .min(cap);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ceiling_ms))
}

/// A handler from an async function: `handler_fn(|notification| async
/// move { …; Ok::<_, MyError>(()) })`.
///
/// # Example
///
/// ```
/// use tower_intercom::inbox::{handler_fn, ReceivedNotification};
///
/// let handler = handler_fn(|notification: ReceivedNotification| async move {
///     println!("{} {}", notification.topic(), notification.id());
///     Ok::<_, std::io::Error>(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F>(f: F) -> HandlerFn<F> {
    HandlerFn { f }
}

/// A handler made from an async function by [`handler_fn`].
#[derive(Clone, Copy)]
pub struct HandlerFn<F> {
    f: F,
}

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerFn").finish_non_exhaustive()
    }
}

impl<F, Fut, E> Service<ReceivedNotification> for HandlerFn<F>
where
    F: FnMut(ReceivedNotification) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Response = ();
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, notification: ReceivedNotification) -> Self::Future {
        (self.f)(notification)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_by_the_exponential_and_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for attempt in [0, 1, 2, 3, 4, 10, 40, 64, u32::MAX] {
            for _ in 0..200 {
                let ceiling =
                    (base * 2u32.saturating_pow(attempt.saturating_sub(1).min(31))).min(cap);
                assert!(backoff(base, cap, attempt) <= ceiling, "attempt {attempt}");
            }
        }
        let huge = Duration::from_secs(u64::MAX / 2);
        assert!(backoff(huge, Duration::MAX, 50) <= Duration::MAX);
    }

    #[test]
    fn backoff_is_jittered() {
        let delays: std::collections::HashSet<Duration> = (0..100)
            .map(|_| backoff(Duration::from_secs(1), Duration::from_secs(60), 5))
            .collect();
        assert!(delays.len() > 10);
    }
}
