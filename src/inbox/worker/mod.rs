//! Workers: take notifications from the inbox and run your handler.
//!
//! A running worker ([`Worker::run`]) is one loop over events, each
//! handled by a named step:
//!
//! - `shutdown` completed: stop (`stop.rs`): a claim in flight and the
//!   notifications in flight get the grace period, the others are handed
//!   back;
//! - pruning is due: prune (`prune.rs`), in a task of its own;
//! - a handler slot is free: claim (`claim.rs`), for every free slot;
//! - the store answered the claim: each lease is processed in a task of
//!   its own (`process.rs`: one attempt of the handler, then its outcome
//!   recorded by `record.rs`, retried or dead by the retry policy of
//!   `retry.rs`); then the worker claims again, or is idle;
//! - a wake source woke the idle worker, or its sleep ended (`wake.rs`):
//!   claim again.

mod claim;
mod handler_fn;
mod process;
mod prune;
mod record;
mod retry;
mod stop;
mod wake;

use std::{fmt, future::Future, pin::pin, sync::Arc, time::Duration};

use tokio::{
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::{JoinHandle, JoinSet},
};
use tower_service::Service;

pub use self::handler_fn::{handler_fn, HandlerFn};
use self::{
    claim::{Answered, Claim},
    process::Processing,
    prune::Pruning,
    retry::RetryPolicy,
    wake::{Idle, WakeSources},
};
use super::{receiver::FailureLog, Inbox, InboxStore, ReceivedNotification};
use crate::box_error::BoxError;

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
    retry: RetryPolicy,
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
    /// is (or wraps) a [`Permanent`](super::Permanent) error: then the
    /// notification is dead at once.
    pub fn worker<S>(&self, handler: S) -> Worker<St, S> {
        Worker {
            inbox: self.clone(),
            handler,
            settings: Settings {
                concurrency: DEFAULT_CONCURRENCY,
                lease: DEFAULT_LEASE,
                retry: RetryPolicy::default(),
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
        self.settings.retry = self.settings.retry.with_max_attempts(max_attempts);
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
        self.settings.retry = self.settings.retry.with_backoff(base, cap);
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
        let mut shutdown = pin!(shutdown);
        let wake_sources = WakeSources::of(&self.inbox);
        let mut pruning = Pruning::new(&self.inbox);
        let mut worker = Running::new(self);
        let mut phase = Phase::Room;
        loop {
            worker.reap_finished();
            let event = tokio::select! {
                biased;
                () = &mut shutdown => Event::Shutdown,
                () = pruning.due() => Event::PruningDue,
                event = phase.end(&worker.permits) => event,
            };
            phase = match event {
                Event::Shutdown => break,
                Event::PruningDue => {
                    pruning.start();
                    phase
                }
                Event::Room(first) => Phase::Claiming(worker.claim(first, &wake_sources)),
                Event::Claimed(answered) => worker.claimed(answered),
                Event::Woken => Phase::Room,
            };
        }
        worker.stop(phase, pruning).await;
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

/// A running worker: what its steps share.
struct Running<St, S> {
    handler: S,
    settings: Settings,
    /// The `concurrency` handler slots.
    permits: Arc<Semaphore>,
    /// The processing tasks, one per lease.
    tasks: JoinSet<()>,
    processing: Arc<Processing<St>>,
    /// Set at shutdown once the grace period is over: the handlers still
    /// running are stopped and their notifications handed back.
    hand_back: watch::Sender<bool>,
    handing_back: watch::Receiver<bool>,
    /// Claims that failed in a row.
    store_failures: u32,
    /// Where failed claims are reported.
    claim_log: FailureLog,
}

impl<St, S> Running<St, S> {
    fn new(worker: Worker<St, S>) -> Self {
        let Worker {
            inbox,
            handler,
            settings,
        } = worker;
        let (hand_back, handing_back) = watch::channel(false);
        Self {
            handler,
            settings,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            tasks: JoinSet::new(),
            processing: Arc::new(Processing::new(
                inbox,
                settings.lease,
                settings.retry,
                settings.concurrency,
            )),
            hand_back,
            handing_back,
            store_failures: 0,
            claim_log: FailureLog::new("the inbox worker cannot claim notifications"),
        }
    }

    /// Forgets the processing tasks that have finished.
    fn reap_finished(&mut self) {
        while self.tasks.try_join_next().is_some() {}
    }
}

/// What the worker waits for, between two events.
enum Phase<'w> {
    /// A free handler slot, to claim.
    Room,
    /// The answer of a claim.
    Claiming(Claim<'w>),
    /// A wake-up, or the end of its sleep.
    Idle(Idle<'w>),
}

/// What the worker's loop handles, one at a time.
enum Event<'w> {
    /// `shutdown` completed (or the handler slots were closed, which they
    /// never are): the worker stops.
    Shutdown,
    /// Pruning is due.
    PruningDue,
    /// A handler slot is free: claim.
    Room(OwnedSemaphorePermit),
    /// The store answered the claim.
    Claimed(Answered<'w>),
    /// A wake source woke the idle worker, or its sleep ended.
    Woken,
}

impl<'w> Phase<'w> {
    /// Until this phase ends.
    async fn end(&mut self, permits: &Arc<Semaphore>) -> Event<'w> {
        match self {
            Phase::Room => match permits.clone().acquire_owned().await {
                Ok(first) => Event::Room(first),
                Err(_) => Event::Shutdown,
            },
            Phase::Claiming(claim) => Event::Claimed(claim.answered().await),
            Phase::Idle(idle) => {
                idle.until_woken().await;
                Event::Woken
            }
        }
    }
}
