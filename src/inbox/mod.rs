//! A durable inbox: each verified notification committed before the 200,
//! then processed by workers with leases, retries and dead letters.
//!
//! (Module documentation in progress.)

mod notification;
mod receiver;
mod response;
#[cfg(feature = "inbox-sqlite")]
mod sqlite;
mod store;
mod worker;

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderName, StatusCode};

pub use self::{
    notification::ReceivedNotification,
    receiver::{Receiver, ResponseFuture},
    store::{
        ClaimRequest, Claimed, Counts, DeadNotification, DeadPage, DeadQuery, Failure, InboxFuture,
        InboxStore, Inserted, Lease, LeaseToken, NewNotification, StoreError, StoreErrorKind,
    },
    worker::{
        handler_fn, HandlerFn, Worker, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP,
        DEFAULT_CONCURRENCY, DEFAULT_GRACE_PERIOD, DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS,
        DEFAULT_POLL_INTERVAL,
    },
};

#[cfg(feature = "inbox-sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox-sqlite")))]
pub use self::sqlite::{
    BatchStats, SqliteInbox, SqliteOptions, SqliteStore, DEFAULT_CHANNEL_CAPACITY,
    DEFAULT_MAX_BATCH,
};

/// How long the receiver waits for the store's commit before answering
/// 503: 2 s, well under the 5 s after which Intercom counts a delivery as
/// failed.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// How long done ids are remembered for deduplication: 24 h.
///
/// Intercom retries a failed delivery after about a minute and drops a
/// notification delayed more than 2 hours, so a day covers every
/// redelivery with a wide margin.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The header on the 200 answered to a notification the inbox already
/// holds: `x-intercom-duplicate: true`. Intercom ignores it; it tells
/// duplicates apart in access logs and tests.
const DUPLICATE_HEADER: HeaderName = HeaderName::from_static("x-intercom-duplicate");

/// A durable inbox of Intercom notifications, over any [`InboxStore`].
///
/// Cheap to clone: clones share the store. See the [module documentation](self).
pub struct Inbox<St> {
    store: Arc<St>,
    config: Config,
    /// Woken when a notification is stored, so idle workers in this
    /// process claim it at once.
    wake: Arc<tokio::sync::Notify>,
    failures: Arc<receiver::FailureLog>,
}

impl<St> Clone for Inbox<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            config: self.config.clone(),
            wake: self.wake.clone(),
            failures: self.failures.clone(),
        }
    }
}

impl<St> fmt::Debug for Inbox<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the receiver answers when the store cannot take more writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OverloadStatus {
    /// 429 Too Many Requests, the default: Intercom throttles the
    /// subscription for a while (1 minute to 2 hours), then delivers again.
    #[default]
    TooManyRequests,
    /// 503 Service Unavailable: Intercom retries the notification after
    /// about a minute.
    ServiceUnavailable,
}

impl OverloadStatus {
    fn status(self) -> StatusCode {
        match self {
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    deadline: Duration,
    retention: Duration,
    overload_status: StatusCode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_DEADLINE,
            retention: DEFAULT_RETENTION,
            overload_status: OverloadStatus::default().status(),
        }
    }
}

impl<St: InboxStore> Inbox<St> {
    /// An inbox over `store`, with the default settings.
    pub fn new(store: St) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// An inbox over a store already shared.
    pub fn from_arc(store: Arc<St>) -> Self {
        Self {
            store,
            config: Config::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            failures: Arc::new(receiver::FailureLog::new(
                "a notification could not be committed to the inbox (Intercom will retry it)",
            )),
        }
    }

    /// How long the receiver waits for the commit before answering 503
    /// (default [`DEFAULT_DEADLINE`], 2 s). Keep it well under Intercom's
    /// 5 s; under 500 ms, Intercom prioritises the endpoint.
    ///
    /// Applies to receivers created afterwards.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = deadline;
        self
    }

    /// How long done notifications are remembered (default
    /// [`DEFAULT_RETENTION`], 24 h). This is the inbox's dedupe memory: a
    /// redelivery of an id done longer ago than this is stored and
    /// processed again. Workers forget older ones as they run; so does
    /// [`prune`](Self::prune).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config.retention = retention;
        self
    }

    /// What the receiver answers when the store cannot take more writes
    /// (default 429).
    #[must_use]
    pub fn overload_status(mut self, status: OverloadStatus) -> Self {
        self.config.overload_status = status.status();
        self
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The Tower service that commits verified notifications: put it
    /// behind [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer).
    pub fn receiver(&self) -> Receiver<St> {
        Receiver::new(Arc::new(self.clone()))
    }

    /// How many notifications are in each state.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        self.store.counts().await
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

    /// Makes every dead notification pending again. Returns how many.
    pub async fn requeue_all(&self) -> Result<u64, StoreError> {
        let mut requeued = 0;
        loop {
            // Requeued notifications leave the dead set: always read the
            // first page.
            let page = self.store.dead(DeadQuery::first(256)).await?;
            if page.notifications.is_empty() {
                break;
            }
            let before = requeued;
            for dead in &page.notifications {
                if self.store.requeue(dead.notification.id()).await? {
                    requeued += 1;
                }
            }
            if requeued == before {
                break;
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
