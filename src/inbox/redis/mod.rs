//! The Redis store: a Redis Stream with a consumer group, and Lua scripts
//! that make every state change one atomic step. See [`RedisStore`] for the
//! key layout, the scripts and the Redis settings durability needs.

mod batch;
mod claim;
mod keys;
mod options;
mod persistence;
mod reply;
mod scripts;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::{oneshot, Notify, Semaphore};

use crate::redis_connection::Connection;

use self::{
    batch::{Batchers, Completion, Insert},
    keys::Keys,
    reply::{array, bytes, decode, int, list, text},
    scripts::{token_arg, CHUNK, COUNTS, DEAD, FAIL, PRUNE, RELEASE, REQUEUE},
};
use super::{
    store_helpers::{duration_millis, millis, time, truncate, MAX_ERROR_LEN},
    ClaimRequest, Claimed, Counts, DeadNotification, DeadPage, DeadQuery, Failure, Inbox,
    InboxFuture, InboxStore, Inserted, Lease, LeaseToken, NewNotification, ReceivedNotification,
    StoreError,
};

pub use self::{
    options::{
        RedisOptions, DEFAULT_MAX_IN_FLIGHT, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT,
        LARGEST_MAX_IN_FLIGHT,
    },
    persistence::Persistence,
};

/// An [`Inbox`] over Redis, shared by receivers and workers on many
/// machines: `Inbox::new(RedisStore::connect(url).await?)`. See
/// [`RedisStore`].
///
/// Switching from SQLite is one constructor: `SqliteStore::open(path)?`
/// becomes `RedisStore::connect(url).await?`; the inbox over it,
/// receivers, workers and the inspection API are the same.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_intercom::inbox::{Inbox, RedisInbox, RedisStore};
///
/// # async fn run() -> Result<(), tower_intercom::StoreError> {
/// let inbox: RedisInbox = Inbox::new(RedisStore::connect("redis://127.0.0.1:6379/").await?)
///     .retention(Duration::from_secs(6 * 60 * 60));
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
pub type RedisInbox = Inbox<RedisStore>;

/// An [`InboxStore`] in Redis, shared by every receiver and worker that
/// uses the same Redis and key prefix.
///
/// # Durability: configure Redis for it
///
/// The receiver answers 200 once Redis acknowledged the write, so the
/// inbox is exactly as durable as Redis's own persistence:
///
/// - **`appendonly yes`** is required: without the append-only file,
///   Redis keeps only periodic RDB snapshots (if any), and a restart loses
///   what was written since the last one.
/// - **`appendfsync always`** for no loss on a crash of the machine or a
///   power loss: Redis syncs the AOF before it answers. Redis groups the
///   writes of all clients into one `fsync` per event-loop turn, so this
///   costs latency (one disk sync per turn) far more than throughput.
/// - `appendfsync everysec` (the default when the AOF is on) survives a
///   crash of Redis itself but loses up to about 1 s of acknowledged
///   notifications (2 s at worst, when the disk is slow) if the machine
///   crashes or loses power. `appendfsync no` leaves it to the OS.
/// - **`no-appendfsync-on-rewrite no`** (Redis's default): with `yes`,
///   Redis does not sync while it rewrites the AOF or saves an RDB
///   snapshot, whatever `appendfsync` says (its own `redis.conf`: the
///   durability of `appendfsync no` meanwhile, up to about 30 s lost on a
///   power loss with Linux's defaults). Rewrites start on their own as the
///   file grows (`auto-aof-rewrite-percentage`), so this is a loss window
///   that opens regularly, not a rare event.
/// - **Replication is asynchronous**: a failover to a replica (Sentinel,
///   Cluster, a managed service) can lose writes the old primary had
///   acknowledged, whatever the fsync policy.
/// - **`maxmemory-policy noeviction`**: the keys have no TTL, and an
///   `allkeys-*` policy would evict notifications and dedupe records
///   (`volatile-*` ones leave them alone, but evict the keys of the
///   idempotency layer's `RedisStore`, all with a TTL, if it shares this
///   Redis). With `noeviction`, a full Redis refuses inserts, and the
///   receiver answers 503 (Intercom retries).
///
/// [`connect`](Self::connect) (and [`RedisOptions::connect`]) read
/// `appendonly`, `appendfsync`, `no-appendfsync-on-rewrite` and
/// `maxmemory-policy` with `CONFIG GET` (falling back to `INFO
/// persistence` when `CONFIG` is refused) and log a `warn` when Redis can
/// lose what it acknowledged;
/// [`check_redis_settings`](Self::check_redis_settings) does the same on
/// any store (one made with [`RedisOptions::with_connection`] too), and
/// [`persistence`](Self::persistence) returns the finding without logging.
///
/// # Keys
///
/// All under one hash tag, the key prefix `P` (default
/// [`DEFAULT_REDIS_KEY_PREFIX`]), so that every key of an inbox is in one
/// Cluster slot, and every script declares each key it touches:
///
/// | key | type | holds |
/// |---|---|---|
/// | `{P}:stream` | stream, group `workers` | one entry (`id` → notification id) per notification waiting, oldest first |
/// | `{P}:messages` | hash | id → sequence number, `received_at` and topic, for every notification not yet done |
/// | `{P}:bodies` | hash | id → the notification's exact verified bytes, for every notification not yet done |
/// | `{P}:attempts` | hash | id → attempts made |
/// | `{P}:errors` | hash | id → the last attempt's error |
/// | `{P}:leased` | sorted set | id → end of its lease (ms), for notifications in progress |
/// | `{P}:leases` | hash | id → lease token, the fence |
/// | `{P}:delayed` | sorted set | id → when its retry is due (ms) |
/// | `{P}:dead` | sorted set | id → sequence number, for dead notifications |
/// | `{P}:done` | sorted set | id → when it was done (ms): the dedupe memory until the retention ends |
/// | `{P}:seq` | string | the last sequence number |
///
/// Each operation is one Lua script, so atomic:
///
/// - insert: one `MULTI` transaction: `HSETNX bodies` for each
///   notification, then the script: if the id is in `messages` or `done`,
///   nothing (a duplicate; a body just written for a done id is deleted);
///   else `HSET messages` and `XADD stream`. Dedupe, body and enqueue are
///   one atomic write; the receiver answers 200 once it returned. The
///   bodies go through plain `HSETNX`, not through Lua, which would copy
///   each several times.
/// - claim: lapsed leases first (`leased` up to now: a failed attempt
///   each, dead at the maximum), then due retries from `delayed` join the
///   stream, then `XREADGROUP … NOACK … >` leases the oldest entries,
///   counting an attempt and writing the lease's end and token. The group
///   is the stream's cursor; the entries it passed are trimmed (`XTRIM
///   MINID`), so the stream holds only what is waiting. The leased
///   notifications' bodies are then read with a plain `HMGET` (the Lua
///   of Redis 7.0 hashes every byte of each string it is handed). If
///   that read fails, the leases are handed back at once, attempts
///   included; a notification whose body is missing (deleted by hand,
///   or evicted) is marked dead with that error, not handed out empty.
/// - complete, fail and release check the token in `leases` (the fence);
///   done ids go to `done` (their body is dropped), retries to `delayed`,
///   dead ones to `dead`, released ones back to the stream.
///
/// Inserts that arrive together share one script call (up to 128 per call,
/// at most 4 calls at once, the next one taking all that arrived
/// meanwhile), and so do completions (up to 256 per call); each script
/// reads and writes a whole batch with one multi-key command per key
/// (`HMGET`, `ZMSCORE`, `HSET`, `ZADD`, `HDEL`), one `XADD` per
/// notification stored. That costs Redis and the process far less than
/// one call, or one command, per notification; each notification is
/// still deduplicated, or fenced, on its own.
///
/// Leases lapse at the holder's own deadline (`leased`), not at the
/// claimer's idea of it: `XAUTOCLAIM`'s idle time would let a worker with
/// a short lease take over a notification still within a longer lease.
/// Times (lease ends, retries, done times) are Redis's clock (`TIME`), so
/// the machines' clocks need not agree.
///
/// # Wake-ups
///
/// An insert that stored notifications, or a requeue, wakes the idle
/// workers of every inbox made over the store or its clones (an inbox for
/// the receiver and another for the workers wake each other). Workers in
/// other processes find them at their next poll
/// ([`Worker::poll_interval`](super::Worker::poll_interval)).
///
/// # Redis version and topology
///
/// Redis 6.2 or newer (tested with 7.0: `ZMSCORE` and `XTRIM MINID` are
/// from 6.2); not `XAUTOCLAIM` or Redis 8's stream idempotency.
/// Scripts are sent with `EVALSHA` and loaded again after a restart of
/// Redis.
///
/// The key layout is ready for Redis Cluster (one hash tag, so one slot
/// and one node per inbox), but the store talks to one server through a
/// [`ConnectionManager`](redis::aio::ConnectionManager), which does not
/// follow Cluster redirections (`MOVED`): use a standalone primary, or a
/// Cluster only while the slot stays on the node the URL names.
///
/// # Bounds
///
/// Every operation gives up after [`timeout`](RedisOptions::timeout)
/// (default [`DEFAULT_REDIS_TIMEOUT`]) with an error, which the receiver
/// answers with 503; at most [`max_in_flight`](RedisOptions::max_in_flight)
/// inserts wait for Redis at once, beyond which the receiver answers 429
/// at once.
/// Nothing queues in the process. A write that Redis runs after the
/// timeout is kept (Intercom's retry then gets 200 as a duplicate), and a
/// claim that timed out may have leased notifications its worker never
/// saw: they are taken again when the lease lapses.
///
/// For `rediss://` (TLS), enable one of the `redis` crate's TLS features
/// (`tokio-rustls-comp` or `tokio-native-tls-comp`) in your own
/// `Cargo.toml`. Needs a Tokio runtime.
///
/// # Example
///
/// ```no_run
/// use tower_intercom::inbox::{Inbox, RedisStore};
///
/// # async fn run() -> Result<(), tower_intercom::StoreError> {
/// let store = RedisStore::options()
///     .key_prefix("my-app:intercom")
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// let inbox = Inbox::new(store);
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    keys: Arc<Keys>,
    timeout: Duration,
    inserts: Arc<Semaphore>,
    max_in_flight: usize,
    batchers: Arc<Batchers>,
    /// Woken once inserts stored notifications or a requeue made a dead
    /// one pending: the idle workers of every inbox over this store's
    /// clones wait on it.
    wake: Arc<Notify>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection holds the URL's credentials: not printed.
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// The error recorded when a lease lapsed (the SQLite store's words).
const LAPSED: &str = "the lease lapsed: the worker crashed, hung or was too slow";

/// The error recorded for a notification whose body is missing.
const MISSING_BODY: &str = "the notification's body is missing from Redis (deleted or evicted)";

/// The most notifications one claim leases, so that one call stays short;
/// a worker that asked for more claims again at once.
const MAX_CLAIM: usize = 256;

/// The largest page of dead notifications one call returns.
const MAX_PAGE: usize = 100_000;

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// with the default settings, and logs a `warn` when Redis can lose
    /// acknowledged writes: `RedisStore::options().connect(url)`, see
    /// [`RedisOptions::connect`].
    ///
    /// # Errors
    ///
    /// As [`RedisOptions::connect`]: when the URL is invalid, Redis cannot
    /// be reached, or it refuses commands. The error never contains the
    /// URL or its password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        RedisOptions::default().connect(url).await
    }

    /// The store's settings, at their defaults, to change before
    /// [`RedisOptions::connect`] or [`RedisOptions::with_connection`].
    pub fn options() -> RedisOptions {
        RedisOptions::default()
    }

    fn with(connection: Connection, options: RedisOptions) -> Self {
        Self {
            connection,
            keys: Arc::new(Keys::new(&options.prefix)),
            timeout: options.timeout,
            inserts: Arc::new(Semaphore::new(options.max_in_flight)),
            max_in_flight: options.max_in_flight,
            batchers: Arc::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }
}

impl InboxStore for RedisStore {
    fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted> {
        // At most `max_in_flight` inserts wait for Redis; the others are
        // refused at once.
        let Ok(permit) = self.inserts.clone().try_acquire_owned() else {
            return Box::pin(std::future::ready(Err(StoreError::overloaded())));
        };
        let mut meta = format!(
            "{}:{}:",
            millis(notification.received_at),
            notification.topic.len()
        )
        .into_bytes();
        meta.extend_from_slice(notification.topic.as_bytes());
        let (reply, answer) = oneshot::channel();
        let insert = Insert {
            id: notification.id,
            meta,
            body: notification.body,
            reply,
            _permit: permit,
        };
        let store = self.clone();
        Box::pin(async move {
            let stored = store.batchers.inserts.write(insert, answer, &store).await?;
            Ok(if stored {
                Inserted::Stored
            } else {
                Inserted::Duplicate
            })
        })
    }

    fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
        self.lease(request)
    }

    fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let (reply, answer) = oneshot::channel();
        let completion = Completion {
            id: id.into(),
            token: token_arg(token),
            reply,
        };
        let store = self.clone();
        Box::pin(async move {
            store
                .batchers
                .completions
                .write(completion, answer, &store)
                .await
        })
    }

    fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool> {
        let delay = failure.retry_at.map(|retry_at| {
            let delay = retry_at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            duration_millis(delay).to_string().into_bytes()
        });
        let args = vec![
            id.as_bytes().to_vec(),
            token_arg(token),
            truncate(&failure.error, MAX_ERROR_LEN).as_bytes().to_vec(),
            delay.unwrap_or_default(),
        ];
        self.invoke(&FAIL, args, |value| Ok(int(&value)? == 1))
    }

    fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let args = vec![id.as_bytes().to_vec(), token_arg(token)];
        self.invoke(&RELEASE, args, |value| Ok(int(&value)? == 1))
    }

    fn counts(&self) -> InboxFuture<Counts> {
        self.invoke(&COUNTS, Vec::new(), |value| {
            let [messages, leased, dead, done, oldest] = array::<5>(value)?;
            let [messages, leased, dead, done] =
                [messages, leased, dead, done].map(|n| int(&n).map(|n| n.max(0) as u64));
            let (leased, dead) = (leased?, dead?);
            let pending = messages?.saturating_sub(leased).saturating_sub(dead);
            // A stream entry left over from a notification no longer
            // pending is no notification waiting.
            let oldest = int(&oldest)?;
            let oldest_pending =
                (pending > 0 && oldest >= 0).then(|| time(u64::try_from(oldest).unwrap_or(0)));
            Ok(Counts::new(pending, leased, done?, dead).with_oldest_pending(oldest_pending))
        })
    }

    fn dead(&self, query: DeadQuery) -> InboxFuture<DeadPage> {
        let after = match query.after.as_deref().map(str::parse::<u64>) {
            None => 0,
            Some(Ok(seq)) => seq,
            Some(Err(_)) => {
                return Box::pin(std::future::ready(Err(StoreError::unavailable(
                    "not a cursor of this store",
                ))))
            }
        };
        let limit = query.limit.clamp(1, MAX_PAGE);
        let args = vec![
            after.to_string().into_bytes(),
            (limit + 1).to_string().into_bytes(),
        ];
        self.invoke(&DEAD, args, move |value| {
            let mut rows = Vec::new();
            for row in list(value)? {
                let [id, seq, message, attempts, error, body] = array::<6>(row)?;
                let id = text(id)?;
                let seq = text(seq)?;
                let (_, received_at, topic, body) = decode(bytes(message)?, body)?;
                let attempts = u32::try_from(int(&attempts)?.max(0)).unwrap_or(u32::MAX);
                let error = String::from_utf8_lossy(&bytes(error)?).into_owned();
                let notification =
                    ReceivedNotification::new(id, topic, body, received_at, attempts);
                rows.push((seq, DeadNotification::new(notification, error)));
            }
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = more
                .then(|| rows.last().map(|(seq, _)| seq.clone().into_boxed_str()))
                .flatten();
            Ok(DeadPage::new(
                rows.into_iter().map(|(_, dead)| dead).collect(),
                next,
            ))
        })
    }

    fn requeue(&self, id: &str) -> InboxFuture<bool> {
        let wake = self.wake.clone();
        self.invoke(&REQUEUE, vec![id.as_bytes().to_vec()], move |value| {
            let requeued = int(&value)? == 1;
            if requeued {
                wake.notify_waiters();
            }
            Ok(requeued)
        })
    }

    fn prune_done(&self, before: SystemTime) -> InboxFuture<u64> {
        // Redis's clock decides when an id was done: the cutoff is sent as
        // an age, so the two clocks need not agree.
        let now = SystemTime::now();
        let age: i64 = match now.duration_since(before) {
            Ok(age) => duration_millis(age),
            Err(ahead) => -duration_millis(ahead.duration()),
        };
        let args = vec![age.to_string().into_bytes(), CHUNK.to_string().into_bytes()];
        self.invoke(&PRUNE, args, |value| {
            Ok(u64::try_from(int(&value)?).unwrap_or(0))
        })
    }
    fn wakeups(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }
}
