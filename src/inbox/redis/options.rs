//! The settings of a [`RedisStore`].

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Semaphore;

use crate::redis_connection::Connection;

#[cfg(doc)]
use super::Inbox;
use super::{RedisStore, StoreError};

/// The default [`RedisOptions::key_prefix`]: `tower-intercom:inbox`, so the
/// keys are `{tower-intercom:inbox}:stream` and so on.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tower-intercom:inbox";

/// The default [`RedisOptions::timeout`]: each operation waits at most 1 s
/// for Redis.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The default [`RedisOptions::max_in_flight`]: 4096 inserts waiting for
/// Redis at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// The largest [`RedisOptions::max_in_flight`]: the most a Tokio semaphore
/// counts (`tokio::sync::Semaphore::MAX_PERMITS`, 2^61 − 1 on 64-bit
/// machines). A larger one is taken as this.
pub const LARGEST_MAX_IN_FLIGHT: usize = Semaphore::MAX_PERMITS;

/// Settings of a [`RedisStore`], from [`RedisStore::options`]; then
/// [`connect`](Self::connect) connects the store to Redis with them, or
/// [`with_connection`](Self::with_connection) makes it on a connection you
/// made.
///
/// They are the store's own: the inbox's settings
/// ([`deadline`](Inbox::deadline), [`retention`](Inbox::retention),
/// [`overload_status`](Inbox::overload_status)) are set on the [`Inbox`]
/// made over the store.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_intercom::inbox::{Inbox, Persistence, RedisStore};
///
/// # async fn run() -> Result<(), tower_intercom::StoreError> {
/// let store = RedisStore::options()
///     .key_prefix("my-app:intercom")
///     .timeout(Duration::from_millis(500))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// if store.persistence().await != Persistence::Durable {
///     // Also logged at `warn` by `connect`.
///     eprintln!("Redis can lose notifications that were answered 200");
/// }
/// let inbox = Inbox::new(store).deadline(Duration::from_secs(1));
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisOptions {
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) max_in_flight: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl RedisOptions {
    /// The key prefix (default [`DEFAULT_REDIS_KEY_PREFIX`]): the keys are
    /// `{prefix}:stream` and so on, so the prefix is also their hash tag.
    /// Inboxes that must not share notifications (two environments on one
    /// Redis) need different prefixes.
    ///
    /// Any string is accepted, and two different prefixes never share a
    /// key. A prefix that is empty or starts with `}` gives keys without a
    /// common hash tag, which matters only to a Redis Cluster (whose
    /// redirections the store does not follow anyway).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long each operation waits for Redis (default
    /// [`DEFAULT_REDIS_TIMEOUT`]) before failing with
    /// [`StoreErrorKind::TimedOut`](crate::StoreErrorKind::TimedOut); also
    /// how long [`connect`](Self::connect) waits for Redis.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many inserts may wait for Redis at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]; at least 1, at most
    /// [`LARGEST_MAX_IN_FLIGHT`]: a value outside is taken as the nearest
    /// of the two). Beyond that, inserts fail at once with
    /// [`StoreErrorKind::Overloaded`](crate::StoreErrorKind::Overloaded),
    /// which the receiver answers with 429: nothing queues without bound.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.clamp(1, LARGEST_MAX_IN_FLIGHT);
        self
    }

    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// within the [`timeout`](Self::timeout), then reads Redis's settings
    /// and logs a `warn` when it can lose or evict what it acknowledged
    /// (see [`RedisStore::check_redis_settings`]). After three operations
    /// in a row timed out, the connection is replaced by a new one
    /// (redis-rs reconnects by itself only when a connection fails, not
    /// when it goes silent: a failover that took the server's machine
    /// away, a NAT that forgot the connection). Needs a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the URL is invalid, Redis cannot be reached (after a few
    /// attempts), or it refuses commands (a password it requires and the
    /// URL lacks: `NOAUTH`). The error never contains the URL or its
    /// password.
    pub async fn connect(self, url: &str) -> Result<RedisStore, StoreError> {
        let connection = Connection::open(url, self.timeout).await?;
        let store = RedisStore::with(connection, self);
        store.check_redis_settings().await;
        Ok(store)
    }

    /// The store on a connection you configured yourself (for instance
    /// one made with `ConnectionManager::new_lazy_with_config`, to start
    /// while Redis is still down). Give it no response timeout
    /// (`ConnectionManagerConfig::set_response_timeout(None)`; redis-rs's
    /// default is 500 ms): every operation of the store has its own
    /// [`timeout`](Self::timeout), which a shorter one on the connection
    /// would cut short. Unlike one opened by [`connect`](Self::connect),
    /// it is never replaced when it goes silent.
    ///
    /// Sends nothing to Redis, so it does not check Redis's settings as
    /// [`connect`](Self::connect) does: call
    /// [`RedisStore::check_redis_settings`] for the same warnings once
    /// Redis is up.
    pub fn with_connection(self, connection: ConnectionManager) -> RedisStore {
        RedisStore::with(Connection::given(connection), self)
    }
}
