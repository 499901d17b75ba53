//! The storage interface behind [`Inbox`](super::Inbox), and the types that
//! cross it.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use std::time::SystemTime;

use super::ReceivedNotification;
use crate::store_error::StoreError;

/// The future returned by [`InboxStore`]'s methods.
///
/// It is `'static`: a store clones what it needs (a channel, a connection
/// handle) into the future, so the inbox can drive it from any task and
/// drop it on a deadline.
pub type InboxFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Where an [`Inbox`](super::Inbox) keeps its notifications.
///
/// Each notification goes through these states:
///
/// ```text
///             insert            claim              complete
/// (nothing) ─────────► pending ───────► in progress ─────────► done ──(retention)──► (nothing)
///                       ▲  ▲                │  │
///                       │  └─ fail (retry), ┘  │ fail (last attempt),
///                       │     release, lease   │ lease lapsed at max attempts
///                       │     lapsed           ▼
///                       └──────── requeue ─── dead
/// ```
///
/// The inbox calls [`insert`](Self::insert) from the receiver (and answers
/// 200 only after it returned `Ok`), and the other methods from workers and
/// from its inspection API. Implemented by the SQLite store (feature
/// `inbox-sqlite`), the Redis store (feature `inbox-redis`), the Postgres
/// store (feature `inbox-postgres`), and by
/// `Arc<S>` and `Box<S>` of any store, so an
/// `Arc<dyn InboxStore>` can be picked at run time.
///
/// # Implementing a store
///
/// - [`insert`](Self::insert) is durable and deduplicating in one atomic
///   write: when it returns `Ok`, the notification survives a crash of the
///   process (and, as far as the backend allows, of the machine), and a
///   second insert of the same [`id`](NewNotification::id) — while the id is
///   pending, in progress, dead, or done and not yet pruned — stores
///   nothing and returns [`Inserted::Duplicate`].
/// - [`claim`](Self::claim) first takes back notifications whose lease
///   lapsed (a lapsed lease counts as an attempt: at
///   [`max_attempts`](ClaimRequest::max_attempts) the notification becomes
///   dead), then leases up to [`max`](ClaimRequest::max) pending notifications
///   that are due, oldest first: in about the order they became due (when
///   stored, released or requeued, or when their retry's backoff ended).
///   The order is not a guarantee: `SqliteStore` orders by due time,
///   `RedisStore` queues a due retry behind those already waiting when a
///   claim finds it due. Each lease gets a fresh [`LeaseToken`] and
///   increments the attempt count. Two concurrent claims never lease the
///   same notification.
/// - [`complete`](Self::complete), [`fail`](Self::fail) and
///   [`release`](Self::release) are *fenced*: they change the notification
///   only while it is still leased with the given token, and otherwise
///   return `Ok(false)`. This is what makes "done" happen once per id even
///   when a worker that lost its lease finishes late.
/// - Errors and timeouts are [`StoreError`]s. A store never panics on any
///   input (ids and bodies are arbitrary bytes within the body limit).
///
/// Methods added to this trait later will have default implementations,
/// and the request types are `#[non_exhaustive]`, so a store written today
/// keeps compiling.
///
/// # Example
///
/// Choosing the store at run time:
///
/// ```no_run
/// # #[cfg(feature = "inbox-sqlite")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tower_intercom::inbox::{Inbox, InboxStore, SqliteStore};
///
/// let store: Arc<dyn InboxStore> = Arc::new(SqliteStore::open("inbox.sqlite3")?);
/// let inbox = Inbox::new(store);
/// # let _ = inbox;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "inbox-sqlite"))]
/// # fn main() {}
/// ```
pub trait InboxStore: Send + Sync + 'static {
    /// Stores `notification` unless its id is already known, durably, in
    /// one atomic write.
    fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted>;

    /// Takes back lapsed leases, then leases up to `request.max` due
    /// notifications.
    fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed>;

    /// Marks the notification done if it is still leased with `token`.
    /// Returns whether it did.
    fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool>;

    /// Records a failed attempt if the notification is still leased with
    /// `token`: pending again from [`Failure::retry_at`], or dead when that
    /// is `None`, whatever its attempt count (the worker sends `None` for
    /// the last attempt, and at once for a [`Permanent`](super::Permanent)
    /// failure). Returns whether it did.
    fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool>;

    /// Hands the notification back, pending at once and without using up
    /// the attempt, if it is still leased with `token` (a worker shutting
    /// down). Returns whether it did.
    fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool>;

    /// How many notifications are in each state.
    fn counts(&self) -> InboxFuture<Counts>;

    /// One page of dead notifications, oldest first.
    fn dead(&self, query: DeadQuery) -> InboxFuture<DeadPage>;

    /// Makes a dead notification pending again, due at once, with its
    /// attempt count reset to 0. Returns `false` when `id` is not dead.
    fn requeue(&self, id: &str) -> InboxFuture<bool>;

    /// Forgets done notifications completed before `before` (at most a
    /// bounded number per call, so a call stays short). Returns how many it
    /// forgot; the inbox calls it again while that is not 0.
    ///
    /// After that their ids are no longer deduplicated: a redelivery would
    /// be stored again.
    fn prune_done(&self, before: SystemTime) -> InboxFuture<u64>;

    /// What wakes idle workers when notifications may have become due
    /// that their inbox did not store or requeue itself, so that they
    /// claim at once rather than at their next poll: idle workers listen
    /// to it beside their inbox's own wake-up. The store wakes it with
    /// `notify_waiters`. Return one `Notify` shared by the store and its
    /// clones, woken after an insert that stored notifications (not one
    /// that found only duplicates) and after a requeue that made a dead
    /// notification pending: then the workers of an inbox over one clone
    /// are woken by what the receiver of an inbox over another stored (an
    /// inbox for the receiver and another for the workers). The SQLite,
    /// Redis and Postgres stores do; the Postgres store also wakes it when
    /// another process stored notifications (it `LISTEN`s). `None` (the
    /// default): workers find such notifications by polling
    /// ([`Worker::poll_interval`](super::Worker::poll_interval)).
    fn wakeups(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: InboxStore + ?Sized> InboxStore for $ty {
            fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted> {
                (**self).insert(notification)
            }
            fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
                (**self).claim(request)
            }
            fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
                (**self).complete(id, token)
            }
            fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool> {
                (**self).fail(id, token, failure)
            }
            fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
                (**self).release(id, token)
            }
            fn counts(&self) -> InboxFuture<Counts> {
                (**self).counts()
            }
            fn dead(&self, query: DeadQuery) -> InboxFuture<DeadPage> {
                (**self).dead(query)
            }
            fn requeue(&self, id: &str) -> InboxFuture<bool> {
                (**self).requeue(id)
            }
            fn prune_done(&self, before: SystemTime) -> InboxFuture<u64> {
                (**self).prune_done(before)
            }
            fn wakeups(&self) -> Option<Arc<tokio::sync::Notify>> {
                (**self).wakeups()
            }
        }
    )*};
}

forward_store!(Arc<S>, Box<S>);

/// A verified notification to store: what the receiver hands to
/// [`InboxStore::insert`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewNotification {
    /// The notification's `id`: non-empty, at most the body limit long.
    pub id: Box<str>,
    /// The notification's `topic`, or empty when the body has none.
    pub topic: Box<str>,
    /// The exact bytes that were verified.
    pub body: Bytes,
    /// When the receiver got it.
    pub received_at: SystemTime,
}

impl NewNotification {
    /// A notification received now.
    pub fn new(id: impl Into<Box<str>>, topic: impl Into<Box<str>>, body: Bytes) -> Self {
        Self {
            id: id.into(),
            topic: topic.into(),
            body,
            received_at: SystemTime::now(),
        }
    }

    /// Sets when it was received.
    #[must_use]
    pub fn received_at(mut self, received_at: SystemTime) -> Self {
        self.received_at = received_at;
        self
    }
}

impl fmt::Debug for NewNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewNotification")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("body_len", &self.body.len())
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// What [`InboxStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Inserted {
    /// The notification is new and now stored.
    Stored,
    /// A notification with this id was already known: nothing was stored.
    Duplicate,
}

/// What workers ask of [`InboxStore::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// Lease at most this many notifications (at least 1).
    pub max: usize,
    /// How long each lease lasts.
    pub lease: Duration,
    /// A notification whose lease lapsed after this many attempts becomes
    /// dead instead of pending.
    pub max_attempts: u32,
}

impl ClaimRequest {
    /// Up to `max` leases of `lease` each, dead after `max_attempts`.
    pub fn new(max: usize, lease: Duration, max_attempts: u32) -> Self {
        Self {
            max: max.max(1),
            lease,
            max_attempts: max_attempts.max(1),
        }
    }
}

/// What [`InboxStore::claim`] returns: the leased notifications, and when
/// the next pending one is due.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Claimed {
    /// The notifications now leased to the caller.
    pub leases: Vec<Lease>,
    /// When the earliest notification still pending becomes due, if the
    /// store knows cheaply (workers sleep until then, or until something is
    /// inserted). `None`: nothing pending, or unknown.
    pub next_due: Option<SystemTime>,
}

impl Claimed {
    /// The leases, and when the next pending notification is due.
    pub fn new(leases: Vec<Lease>, next_due: Option<SystemTime>) -> Self {
        Self { leases, next_due }
    }
}

/// A notification leased to a worker, and the token that proves it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Lease {
    /// The notification, with its attempt number (1 for the first).
    pub notification: ReceivedNotification,
    /// The token [`complete`](InboxStore::complete), [`fail`](InboxStore::fail)
    /// and [`release`](InboxStore::release) are fenced with.
    pub token: LeaseToken,
}

impl Lease {
    /// A lease on `notification` under `token`.
    pub fn new(notification: ReceivedNotification, token: LeaseToken) -> Self {
        Self {
            notification,
            token,
        }
    }
}

/// Proof of one lease: a random number, and optionally the store's own
/// handle on the leased entry (a queue's receipt handle, for instance).
///
/// Not a secret: the store is trusted.
///
/// # Example
///
/// ```
/// use tower_intercom::inbox::LeaseToken;
///
/// let a = LeaseToken::random();
/// let b = LeaseToken::random();
/// assert_ne!(a, b);
/// let entry = LeaseToken::new(7).with_receipt("1700000000000-0");
/// assert_eq!(entry.receipt(), Some("1700000000000-0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    value: u64,
    receipt: Option<Box<str>>,
}

impl LeaseToken {
    /// A token with this value.
    pub fn new(value: u64) -> Self {
        Self {
            value,
            receipt: None,
        }
    }

    /// A token with a random value.
    pub fn random() -> Self {
        Self::new(fastrand::u64(..))
    }

    /// Adds the store's handle on the leased entry.
    #[must_use]
    pub fn with_receipt(mut self, receipt: impl Into<Box<str>>) -> Self {
        self.receipt = Some(receipt.into());
        self
    }

    /// The token's value.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The store's handle on the leased entry, if it set one.
    pub fn receipt(&self) -> Option<&str> {
        self.receipt.as_deref()
    }
}

/// A failed attempt, as recorded by [`InboxStore::fail`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// Why it failed (the handler's error, shortened); kept as the dead
    /// notification's [`last_error`](DeadNotification::last_error).
    pub error: Box<str>,
    /// When to try again; `None`: the notification is dead.
    pub retry_at: Option<SystemTime>,
}

impl Failure {
    /// Pending again from `retry_at`.
    pub fn retry(error: impl Into<Box<str>>, retry_at: SystemTime) -> Self {
        Self {
            error: error.into(),
            retry_at: Some(retry_at),
        }
    }

    /// Dead: kept, listed by [`InboxStore::dead`], until requeued; at any
    /// attempt.
    pub fn dead(error: impl Into<Box<str>>) -> Self {
        Self {
            error: error.into(),
            retry_at: None,
        }
    }
}

/// How many notifications are in each state, and how long the longest
/// waiting one has waited.
///
/// Serializes to
/// `{"pending":…,"in_progress":…,"done":…,"dead":…,"oldest_pending_unix_ms":…}`,
/// the last one [`oldest_pending`](Self::oldest_pending) in milliseconds
/// since the Unix epoch, or `null`.
///
/// A store builds it with [`new`](Self::new) and
/// [`with_oldest_pending`](Self::with_oldest_pending): fields may be added
/// later.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tower_intercom::inbox::Counts;
///
/// let due = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let counts = Counts::new(3, 1, 40, 0).with_oldest_pending(due);
/// assert_eq!(
///     serde_json::to_string(&counts).unwrap(),
///     r#"{"pending":3,"in_progress":1,"done":40,"dead":0,"oldest_pending_unix_ms":1700000000000}"#
/// );
/// // Counted 90 s later: the oldest has waited a minute and a half.
/// let now = due + Duration::from_secs(90);
/// assert_eq!(counts.oldest_pending_age(now), Duration::from_secs(90));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Waiting to be processed, including failed attempts waiting for their
    /// retry.
    pub pending: u64,
    /// Leased to a worker.
    pub in_progress: u64,
    /// Processed, and still remembered for deduplication (see
    /// [`Inbox::retention`](super::Inbox::retention)).
    pub done: u64,
    /// Failed on every attempt; kept until requeued.
    pub dead: u64,
    /// When the pending notification that has waited longest became due:
    /// when it was stored, handed back, requeued, or when its retry's
    /// backoff ended. `None` when no pending notification is due (none is
    /// pending, or all wait for their retry's backoff), or when the store
    /// does not know.
    ///
    /// The time it became due, not the time it was received: a retry
    /// waiting out its backoff is not a stuck queue, while a due
    /// notification that waits shows that no worker takes it. An
    /// approximation within a claim's interval: `RedisStore` dates a due
    /// retry from when a claim moved it to the queue, and both stores use
    /// their own clock (SQLite: the writing process's; Redis: the
    /// server's).
    #[serde(rename = "oldest_pending_unix_ms", serialize_with = "unix_millis")]
    pub oldest_pending: Option<SystemTime>,
}

impl Counts {
    /// These counts, with no pending notification due.
    pub fn new(pending: u64, in_progress: u64, done: u64, dead: u64) -> Self {
        Self {
            pending,
            in_progress,
            done,
            dead,
            oldest_pending: None,
        }
    }

    /// Sets when the longest-waiting due notification became due
    /// ([`oldest_pending`](Self::oldest_pending)).
    #[must_use]
    pub fn with_oldest_pending(mut self, oldest_pending: impl Into<Option<SystemTime>>) -> Self {
        self.oldest_pending = oldest_pending.into();
        self
    }

    /// How long, at `now`, the longest-waiting due notification has waited
    /// since it became due: zero when none is due (or `now` is earlier).
    pub fn oldest_pending_age(&self, now: SystemTime) -> Duration {
        self.oldest_pending
            .and_then(|due| now.duration_since(due).ok())
            .unwrap_or_default()
    }
}

/// A time as milliseconds since the Unix epoch (0 before it), or `null`.
fn unix_millis<S: serde::Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_u64(
            time.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                }),
        ),
        None => serializer.serialize_none(),
    }
}

/// Which page of dead notifications [`InboxStore::dead`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadQuery {
    /// At most this many (at least 1).
    pub limit: usize,
    /// Start after this cursor: [`DeadPage::next`] of the previous page.
    pub after: Option<Box<str>>,
}

impl DeadQuery {
    /// The first `limit` dead notifications.
    pub fn first(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            after: None,
        }
    }

    /// The `limit` dead notifications after `cursor` (a [`DeadPage::next`]).
    pub fn after(limit: usize, cursor: impl Into<Box<str>>) -> Self {
        Self {
            limit: limit.max(1),
            after: Some(cursor.into()),
        }
    }
}

/// One page of dead notifications.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeadPage {
    /// The dead notifications, oldest first.
    pub notifications: Vec<DeadNotification>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<Box<str>>,
}

impl DeadPage {
    /// A page, and the cursor of the next one.
    pub fn new(notifications: Vec<DeadNotification>, next: Option<Box<str>>) -> Self {
        Self {
            notifications,
            next,
        }
    }
}

/// A notification that failed on every attempt.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadNotification {
    /// The notification, with the number of attempts made.
    pub notification: ReceivedNotification,
    /// The error of the last attempt.
    pub last_error: Box<str>,
}

impl DeadNotification {
    /// `notification` (its [`attempt`](ReceivedNotification::attempt) is
    /// the number of attempts made) and its last error.
    pub fn new(notification: ReceivedNotification, last_error: impl Into<Box<str>>) -> Self {
        Self {
            notification,
            last_error: last_error.into(),
        }
    }

    /// The error of the last attempt.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }
}
