//! A durable inbox: each verified notification committed before the 200,
//! then processed by workers with leases, retries and dead letters.
//!
//! Intercom counts a delivery as failed unless it gets a 200 within 5 s,
//! prioritises endpoints that answer in under 500 ms, retries a failed
//! delivery after about a minute, and never sends a notification again
//! once it got a 200. So whatever you do after the 200 is lost if your
//! process dies, and whatever you do before it must be fast. The inbox
//! splits the two:
//!
//! - the [`Receiver`] (behind [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer))
//!   commits the verified notification to a durable store and answers 200
//!   only once the commit has returned, typically within milliseconds;
//! - [`Worker`]s take notifications from the store and run your handler,
//!   with a lease, retries with backoff, and dead letters you can list and
//!   requeue.
//!
//! # Inbox or idempotency layer?
//!
//! | | `IdempotencyLayer` (feature `idempotency`) | the inbox |
//! |---|---|---|
//! | your handler runs | inside the request, before the answer | after the 200, in a worker |
//! | a handler slower than 5 s | fails the delivery; Intercom retries | fine, within the [lease](Worker::lease) |
//! | the process dies mid-handler | Intercom's retry runs it again | another worker runs it after the lease |
//! | the handler fails | non-2xx, Intercom retries about a minute later (pausing delivery after >1000 errors in 15 min) | retried by the worker with your backoff; dead after [`max_attempts`](Worker::max_attempts), then requeued by you |
//! | needs | memory or Redis | a durable store (an SQLite file, PostgreSQL, or Redis with its append-only file) |
//!
//! Use the idempotency layer for quick handlers that can fail the request;
//! use the inbox when processing is slow, calls other services, or must
//! not be lost.
//!
//! # What the receiver answers
//!
//! | request | response | stored |
//! |---|---|---|
//! | a notification with a new `id` | 200, empty, once the commit returned | yes |
//! | an `id` already in the inbox (pending, in progress, dead, or done within the [retention](Inbox::retention)) | 200, `x-intercom-duplicate: true` | no |
//! | a body the worker could not use: not JSON, not an object, no non-empty string `id` or `topic`, no `data.item`, or a `type` other than `notification_event` | 400, saying which | no |
//! | the store failed, or did not commit within the [deadline](Inbox::deadline) (2 s) | 503 (Intercom retries) | no\* |
//! | the store's write queue is full | 429 (or 503, [`overload_status`](Inbox::overload_status)), at once | no |
//! | no [`VerifiedWebhook`](crate::VerifiedWebhook) extension (misplaced layer) | 500 | no |
//! | `HEAD` (Intercom's URL check) | 200, empty | no |
//!
//! Errors are small JSON objects, `{"error":"…"}`; the receiver never
//! answers 410, which would disable the subscription. A 400 says what is
//! wrong with the body without repeating any of it, for instance
//! `the body is not JSON: EOF while parsing a string at line 1 column 57`
//! (with `"line"` and `"column"`), `the body is a JSON array, not an
//! object: …` or ``the notification has no `topic` ``. Every notification
//! Intercom sends has what the receiver checks (its other fields are not
//! looked at: the worker gets the exact bytes), so a 400 answers a request
//! from someone else who holds the app's secret, or a body cut short on
//! its way.
//!
//! Deduplication and storage are one atomic write, so a crash between the
//! commit and the 200 cannot create a second entry: Intercom's redelivery
//! finds the `id` and gets 200. \*A commit that finishes just after the deadline is kept, and
//! the redelivery is then answered 200 as a duplicate. Store failures,
//! and verified requests refused for not being notifications, are logged
//! through `tracing` (`warn`, at most once per 10 s with a count of the
//! others).
//!
//! Nothing waits in memory without bound: the store's queue is bounded
//! (SQLite: `SqliteOptions::channel_capacity`; Postgres:
//! `PostgresOptions::channel_capacity`) and the
//! receiver is always ready, answering 429 at once when it is full.
//!
//! # Guarantees
//!
//! - **Durable before the 200**: with SQLite, the commit is synced to disk
//!   (`synchronous=FULL`) before the receiver answers. With Redis, only as
//!   durable as Redis's persistence: `appendonly yes` with `appendfsync
//!   always` syncs before Redis answers; with `everysec` (Redis's default
//!   once the append-only file is on) a crash of Redis's machine loses up
//!   to about the last second of notifications already answered 200; with
//!   `no-appendfsync-on-rewrite yes`, Redis does not sync at all while it
//!   rewrites the append-only file or saves a snapshot (which it starts on
//!   its own), and such a crash then loses up to about 30 s of them; with
//!   the append-only file off, a restart of Redis loses them. The store
//!   warns at start-up when Redis's settings can lose what it
//!   acknowledged (see `RedisStore::persistence`). With PostgreSQL, the
//!   commit is flushed to the write-ahead log before Postgres answers: the
//!   store's sessions run with `synchronous_commit = on`, and it warns at
//!   start-up when `fsync` is off or the setting did not take (see
//!   `PostgresStore::durability`).
//! - **Stored once per `id`** while the id is remembered: until it has been
//!   done for longer than the [retention](Inbox::retention) (24 h by
//!   default). A redelivery after that would be stored and processed again;
//!   Intercom retries for at most 2 hours.
//! - **At least once**: each notification is given to your handler until
//!   an attempt succeeds, or until it is dead. An attempt that crashes,
//!   hangs past its lease, or is cut short by a shutdown is repeated, so
//!   your handler may see the same notification more than once, even after
//!   its side effects happened.
//! - **Done exactly once per `id`**: marking it done is fenced by the
//!   lease; a worker that lost its lease (it stalled, and another worker
//!   took the notification) cannot mark it done, fail or release it.
//!
//! So **make your side effects idempotent by the notification id**
//! ([`ReceivedNotification::id`]): an upsert keyed by it, a unique
//! constraint, or an idempotency key on the API you call.
//!
//! # Workers
//!
//! [`Inbox::worker`] takes your handler, a [`tower::Service`](tower_service::Service)
//! of [`ReceivedNotification`] or an async function wrapped in
//! [`handler_fn`]. Each notification is leased to one worker for the
//! [`lease`](Worker::lease) (30 s): the handler must finish within it
//! (less a tenth, at most 1 s, kept for recording the result) or the
//! attempt fails. A failed attempt is retried after an exponential backoff
//! with full jitter ([`backoff`](Worker::backoff)), and logged at `warn`
//! with its id and error (at most once per 10 s, with a count of the
//! others); after
//! [`max_attempts`](Worker::max_attempts) (12) it is dead: kept, listed by
//! [`Inbox::dead`], counted by [`Inbox::counts`], and pending again after
//! [`Inbox::requeue`]. A handler error that is (or wraps) a [`Permanent`]
//! makes the notification dead at once, with that error as its reason: a
//! body that does not parse as the handler's type
//! ([`ReceivedNotification::json`] says so itself), or one the handler will
//! never accept, is not retried for an hour. A panic in the handler is a
//! failed attempt. A
//! worker process that dies leaves its notifications leased: any worker
//! takes them again once the lease has lapsed, which counts as a failed
//! attempt. So does a result the store would not take (three tries, 100 ms
//! apart): a notification processed but not marked done is processed
//! again after its lease; the worker logs it at `warn` (at most once per
//! 10 s, with a count of the others).
//!
//! [`Worker::run`] takes a shutdown future. When it completes, the worker
//! stops taking notifications, lets those in flight finish within the
//! [`grace_period`](Worker::grace_period) (10 s), then stops the others
//! and hands them back, pending at once and without using up an attempt.
//!
//! A handler is stopped at its next `.await`. One that does not stop
//! within the lease's margin (a tenth of it, at most 1 s), because it is
//! in blocking code, is not handed back: it keeps its lease, so no other
//! worker runs the notification beside it, and it is taken again when
//! the lease lapses (a failed attempt). Work the handler hands to other
//! tasks (`tokio::spawn`, `spawn_blocking`) is not stopped at all, by a
//! shutdown or by the end of a lease: finish it within the handler.
//!
//! # Stores
//!
//! A store is made on its own, with its own settings; [`Inbox::new`]
//! then makes the inbox over it, with the inbox's settings
//! ([`deadline`](Inbox::deadline), [`retention`](Inbox::retention),
//! [`overload_status`](Inbox::overload_status)):
//!
//! - `SqliteStore` (feature `inbox-sqlite`): one file, bundled SQLite,
//!   group commit. For receivers and workers on one machine (or processes
//!   sharing one local file). `SqliteStore::open(path)?` with the default
//!   settings, or `SqliteStore::options()` (`channel_capacity`,
//!   `busy_timeout`, …) then `.open(path)?`. Give the inbox a file of its
//!   own: it keeps its schema version in the file's `PRAGMA user_version`.
//! - `RedisStore` (feature `inbox-redis`): a Redis Stream with a consumer
//!   group and Lua scripts, for receivers and workers on many machines.
//!   `RedisStore::connect(url).await?` with the default settings, or
//!   `RedisStore::options()` (`key_prefix`, `timeout`, `max_in_flight`)
//!   then `.connect(url).await?`, or `.with_connection(connection)` for a
//!   connection you made. Durable only as Redis's persistence is (above).
//! - `PostgresStore` (feature `inbox-postgres`): PostgreSQL 12 or newer,
//!   group commit, claims with `FOR UPDATE SKIP LOCKED`, wake-ups with
//!   `LISTEN`/`NOTIFY`, a versioned schema; for receivers and workers on
//!   many machines sharing a database. `PostgresStore::connect(url).await?`
//!   with the default settings, or `PostgresStore::options()` (`schema`,
//!   `pool_size`, `timeout`, …) then `.connect(url).await?`.
//! - Your own: implement [`InboxStore`].
//!
//! So moving from SQLite to Redis changes one line:
//! `Inbox::new(SqliteStore::open(path)?)` becomes
//! `Inbox::new(RedisStore::connect(url).await?)`; receivers, workers and
//! the inspection API are the same. `SqliteInbox`, `RedisInbox` and
//! `PostgresInbox` name the inboxes' types.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "inbox-sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_intercom::{
//!     inbox::{handler_fn, Counts, Inbox, Permanent, ReceivedNotification, SqliteStore},
//!     notification::Notification, sign, VerifyIntercomWebhookLayer, WebhookSecret,
//! };
//!
//! # let dir = std::env::temp_dir().join(format!("tower-intercom-inbox-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//! // The store, then the inbox over it.
//! let store = SqliteStore::open(dir.join("inbox.sqlite3"))?;
//! let inbox = Inbox::new(store).deadline(Duration::from_secs(1));
//!
//! // Receive: verify, then commit.
//! let webhooks = ServiceBuilder::new()
//!     .layer(VerifyIntercomWebhookLayer::new(secret.clone()))
//!     .service(inbox.receiver());
//!
//! // Process: after the 200, at least once, done once per id.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let worker = inbox
//!     .worker(handler_fn(|received: ReceivedNotification| async move {
//!         // A body that does not parse is dead at once (`Permanent`).
//!         let notification: Notification = received.json()?;
//!         // Side effects keyed by `received.id()`, so a repeat is harmless.
//!         println!("{} {}", notification.topic, received.id());
//!         Ok::<_, Permanent>(())
//!     }))
//!     .concurrency(8)
//!     .spawn(async move {
//!         let _ = stopped.await;
//!     });
//!
//! let body = r#"{"type":"notification_event","id":"notif_1","topic":"ping","app_id":"a","data":{"item":{"type":"ping"}},"created_at":1700000000}"#;
//! let request = Request::post("/webhooks/intercom")
//!     .header("x-hub-signature", sign(&secret, body.as_bytes()))
//!     .body(Full::new(Bytes::from(body)))?;
//! let response = webhooks.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK); // committed
//!
//! # let start = std::time::Instant::now();
//! while inbox.counts().await?.done == 0 {
//!     # assert!(start.elapsed() < Duration::from_secs(10));
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(inbox.counts().await?, Counts::new(0, 0, 1, 0));
//!
//! let _ = stop.send(());
//! worker.await?;
//! # drop(inbox);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "inbox-sqlite"))]
//! # fn main() {}
//! ```
//!
//! With axum, route the same stack as a service:
//!
//! ```
//! # #[cfg(feature = "inbox-sqlite")]
//! # fn main() {
//! use axum::Router;
//! use tower::ServiceBuilder;
//! use tower_intercom::{inbox::SqliteInbox, VerifyIntercomWebhookLayer, WebhookSecret};
//!
//! fn app(inbox: &SqliteInbox, secret: WebhookSecret) -> Router {
//!     Router::new().route_service(
//!         "/webhooks/intercom",
//!         ServiceBuilder::new()
//!             .layer(VerifyIntercomWebhookLayer::new(secret))
//!             .service(inbox.receiver()),
//!     )
//! }
//! # let _ = app;
//! # }
//! # #[cfg(not(feature = "inbox-sqlite"))]
//! # fn main() {}
//! ```

mod admin;
mod notification;
mod permanent;
#[cfg(feature = "inbox-postgres")]
mod postgres;
mod receiver;
#[cfg(feature = "inbox-redis")]
mod redis;
mod response;
#[cfg(feature = "inbox-sqlite")]
mod sqlite;
mod store;
#[cfg(any(
    feature = "inbox-redis",
    feature = "inbox-sqlite",
    feature = "inbox-postgres"
))]
mod store_helpers;
mod worker;

use std::{fmt, sync::Arc, time::Duration};

use http::StatusCode;

pub use self::{
    notification::ReceivedNotification,
    receiver::{Receiver, ResponseFuture},
    store::{
        ClaimRequest, Claimed, Counts, DeadNotification, DeadPage, DeadQuery, Failure, InboxFuture,
        InboxStore, Inserted, Lease, LeaseToken, NewNotification,
    },
    worker::{
        handler_fn, HandlerFn, Worker, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP,
        DEFAULT_CONCURRENCY, DEFAULT_GRACE_PERIOD, DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS,
        DEFAULT_POLL_INTERVAL, MAX_CONCURRENCY, MAX_LEASE,
    },
};

pub use self::permanent::Permanent;

// The stores' error lives at the root; the store modules name it here.
use crate::store_error::{StoreError, StoreErrorKind};

#[cfg(feature = "inbox-sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox-sqlite")))]
pub use self::sqlite::{
    BatchStats, SqliteInbox, SqliteOptions, SqliteStore, DEFAULT_BUSY_TIMEOUT,
    DEFAULT_CHANNEL_CAPACITY, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_MAX_BATCH, MAX_BUSY_TIMEOUT,
    MAX_CHANNEL_CAPACITY,
};

#[cfg(feature = "inbox-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox-redis")))]
pub use self::redis::{
    Persistence, RedisInbox, RedisOptions, RedisStore, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, LARGEST_MAX_IN_FLIGHT,
};

#[cfg(feature = "inbox-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox-postgres")))]
pub use self::postgres::{
    PostgresBatches, PostgresDurability, PostgresInbox, PostgresOptions, PostgresStore,
    DEFAULT_POSTGRES_CHANNEL_CAPACITY, DEFAULT_POSTGRES_MAX_BATCH, DEFAULT_POSTGRES_POOL_SIZE,
    DEFAULT_POSTGRES_SCHEMA, DEFAULT_POSTGRES_TIMEOUT, MAX_POSTGRES_CHANNEL_CAPACITY,
    MAX_POSTGRES_POOL_SIZE, MAX_POSTGRES_TIMEOUT,
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

/// `add(after)`: the time `after` from some start (`add` is `|after|
/// start.checked_add(after)`), or, when that is past what the clock holds
/// (a duration near `Duration::MAX`), a time within a factor of two of the
/// furthest it holds. Never panics.
pub(crate) fn saturating_add<T>(after: Duration, add: impl Fn(Duration) -> Option<T>) -> T {
    let mut after = after;
    loop {
        // Adding zero always fits.
        if let Some(time) = add(after) {
            return time;
        }
        after /= 2;
    }
}

/// A durable inbox of Intercom notifications, over any [`InboxStore`]:
/// `Inbox::new(store)`, then the inbox's own settings.
///
/// Cheap to clone: clones share the store. See the [module documentation](self).
pub struct Inbox<St> {
    store: Arc<St>,
    config: Config,
    /// Woken when a notification is stored, so idle workers in this
    /// process claim it at once.
    wake: Arc<tokio::sync::Notify>,
    failures: Arc<receiver::FailureLog>,
    /// Verified bodies that are not notifications.
    refused: Arc<receiver::FailureLog>,
}

impl<St> Clone for Inbox<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            config: self.config.clone(),
            wake: self.wake.clone(),
            failures: self.failures.clone(),
            refused: self.refused.clone(),
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
    /// An inbox over `store`, with the default settings, which the
    /// methods below change: [`deadline`](Self::deadline),
    /// [`retention`](Self::retention) and
    /// [`overload_status`](Self::overload_status). The store's own
    /// settings are given when it is made.
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
            refused: Arc::new(receiver::FailureLog::new(
                "a verified request was refused with 400: it is signed with the app's secret \
                 but is not a notification",
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
}

/// An inbox remembers a done id for its [`retention`](Inbox::retention),
/// however many ids there are (neither store has a capacity): a
/// [`ReplayWindow`](crate::webhook::ReplayWindow) may be as long, at any
/// delivery rate.
impl<St> crate::webhook::DedupeMemory for Inbox<St> {
    fn dedupe_memory(&self) -> Duration {
        self.config.retention
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;

    #[test]
    fn saturating_add_is_exact_when_it_fits_and_never_panics() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(saturating_add(second, |d| now.checked_add(d)), now + second);
        assert!(saturating_add(Duration::MAX, |d| now.checked_add(d)) > now + second);
        let wall = SystemTime::now();
        assert!(saturating_add(Duration::MAX, |d| wall.checked_add(d)) > wall + second);
        // Nothing fits but zero: the start itself.
        assert_eq!(
            saturating_add(Duration::MAX, |d| (d.is_zero()).then_some(7)),
            7
        );
    }
}
