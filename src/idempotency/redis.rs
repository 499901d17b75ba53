//! The Redis store: shared by every receiver that uses the same Redis.

use std::{fmt, future::Future, sync::Arc, sync::LazyLock, time::Duration};

use redis::{aio::ConnectionManager, Script};

use crate::redis_connection::{config_get, within, Connection, StoreKeys};

use super::{
    store::{Claim, ClaimOutcome, IdempotencyStore, StoreFuture},
    StoreError, MAX_TTL, MIN_TTL,
};

/// The default [`RedisOptions::key_prefix`]: `tower-intercom:notification:`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tower-intercom:notification:";

/// The default [`RedisOptions::timeout`]: [`RedisStore`] waits for Redis 1
/// second per operation.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The value of a done id.
const DONE: &str = "done";

/// Deletes the key only while it holds this delivery's claim.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// An [`IdempotencyStore`] in Redis, shared by every receiver that uses
/// the same Redis (and key prefix): a notification delivered to two
/// machines at once is processed by one of them.
///
/// Built on the `redis` crate's [`ConnectionManager`], which reconnects by
/// itself after Redis restarts. Each notification is one key,
/// `<prefix><notification id>`:
///
/// - a claim is `SET key processing:<token> NX PX <processing TTL>`
///   (atomic: one delivery wins);
/// - done is `SET key done PX <done TTL>`;
/// - a release deletes the key only while it holds its own claim (a short
///   Lua script).
///
/// No `KEYS` or `SCAN`: each request costs one round trip to claim and one
/// to mark done. Every operation gives up after
/// [`timeout`](RedisOptions::timeout) (default [`DEFAULT_REDIS_TIMEOUT`]);
/// the layer's [`FailurePolicy`](super::FailurePolicy) then decides.
///
/// Redis must keep these keys until they expire: set `maxmemory-policy
/// noeviction` (Redis's default), so that a full Redis refuses new claims
/// (the layer's [`FailurePolicy`](super::FailurePolicy) decides) rather
/// than forgetting done ids. Every key the store writes has a TTL, so a
/// `volatile-*` policy evicts exactly these keys, as an `allkeys-*` one
/// does: an evicted done marker lets a duplicate through, processed again.
/// [`connect`](Self::connect) reads the policy with `CONFIG GET` and logs
/// a `warn` when it is anything else
/// ([`check_redis_settings`](Self::check_redis_settings) does the same on
/// a store made with [`RedisOptions::with_connection`]). For `rediss://`
/// (TLS), enable one of the `redis` crate's TLS features
/// (`tokio-rustls-comp` or `tokio-native-tls-comp`) in your own
/// `Cargo.toml`.
///
/// Made by [`RedisStore::connect`] with the default settings, or by
/// [`RedisStore::options`] then [`RedisOptions::connect`] (or
/// [`RedisOptions::with_connection`]) with others. Needs a Tokio runtime.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_intercom::idempotency::{IdempotencyLayer, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = RedisStore::options()
///     .key_prefix("my-app:intercom:")
///     .timeout(Duration::from_millis(300))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// let layer = IdempotencyLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: Arc<str>,
    timeout: Duration,
}

/// Settings of a [`RedisStore`], from [`RedisStore::options`]; then
/// [`connect`](Self::connect) connects the store to Redis with them, or
/// [`with_connection`](Self::with_connection) makes it on a connection you
/// made. The layer's own settings (its TTLs, its
/// [`FailurePolicy`](super::FailurePolicy)) are set on the
/// [`IdempotencyLayer`](super::IdempotencyLayer).
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }
}

impl RedisOptions {
    /// The prefix of the keys (default [`DEFAULT_REDIS_KEY_PREFIX`]).
    /// Receivers that must not share what they handled (two environments
    /// on one Redis) need different prefixes.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long each operation waits for Redis (default
    /// [`DEFAULT_REDIS_TIMEOUT`]); also how long [`connect`](Self::connect)
    /// waits for Redis.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// within the [`timeout`](Self::timeout). After three operations in a
    /// row timed out, the connection is replaced by a new one (redis-rs
    /// reconnects by itself only when a connection fails, not when it goes
    /// silent: a failover that took the server's machine away, a NAT that
    /// forgot the connection).
    ///
    /// Warns (through `tracing`) when Redis's `maxmemory-policy` is not
    /// `noeviction`: Redis could then evict done markers (see
    /// [`RedisStore::check_redis_settings`]).
    ///
    /// # Errors
    ///
    /// When the URL is invalid, Redis cannot be reached (after a few
    /// attempts), or it refuses commands for want of a password the URL
    /// lacks (`NOAUTH`). The error never contains the URL or its password.
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
    /// [`RedisStore::check_redis_settings`] for the same warning once
    /// Redis is up.
    pub fn with_connection(self, connection: ConnectionManager) -> RedisStore {
        RedisStore::with(Connection::given(connection), self)
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// with the default settings: `RedisStore::options().connect(url)`, see
    /// [`RedisOptions::connect`].
    ///
    /// # Errors
    ///
    /// As [`RedisOptions::connect`]. The error never contains the URL or
    /// its password.
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
            prefix: options.prefix.into(),
            timeout: options.timeout,
        }
    }

    /// The Redis key of a notification id: the prefix, then the id.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_intercom::StoreError> {
    /// use tower_intercom::idempotency::RedisStore;
    ///
    /// let store = RedisStore::options()
    ///     .key_prefix("app:")
    ///     .connect("redis://127.0.0.1/")
    ///     .await?;
    /// assert_eq!(store.key("notif_1"), "app:notif_1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn key(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.len());
        key.push_str(&self.prefix);
        key.push_str(id);
        key
    }

    /// Reads Redis's `maxmemory-policy` with `CONFIG GET` and logs a
    /// `warn` when it can evict the store's keys (anything but
    /// `noeviction`). When `CONFIG` is refused (an ACL user without it, a
    /// managed Redis that renames it), the policy cannot be read, and this
    /// is logged at `debug` only.
    /// [`RedisOptions::connect`] does this once connected; call it
    /// yourself on a store made with [`RedisOptions::with_connection`].
    pub async fn check_redis_settings(&self) {
        let mut connection = self.connection.get();
        let reading = config_get(&mut connection, &["maxmemory-policy"]);
        match tokio::time::timeout(self.timeout, reading).await {
            Ok(Ok(mut config)) => {
                if let Some(policy) = config.remove("maxmemory-policy") {
                    StoreKeys::Idempotency.warn_if_evicted_under(&policy);
                }
            }
            Ok(Err(error)) => tracing::debug!(
                target: "tower_intercom::redis",
                code = error.code().unwrap_or("none"),
                "could not read Redis's maxmemory-policy (CONFIG GET refused); \
                 unless it is noeviction, Redis may evict done markers"
            ),
            Err(_) => tracing::debug!(
                target: "tower_intercom::redis",
                "could not read Redis's maxmemory-policy (no answer in time)"
            ),
        }
    }

    /// Runs `operation` on a clone of the connection, within the timeout.
    fn run<T, F, Fut>(&self, operation: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut + Send + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send,
    {
        let connection = self.connection.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            within(&connection, timeout, operation)
                .await?
                .map_err(StoreError::unavailable)
        })
    }
}

/// Redis's `PX` takes whole milliseconds, at least 1, and refuses values
/// near `i64::MAX`: clamped as the layer clamps (to [`MAX_TTL`]), for
/// callers that use the store directly.
fn millis(ttl: Duration) -> u64 {
    let millis = ttl.clamp(MIN_TTL, MAX_TTL).as_millis();
    u64::try_from(millis).unwrap_or(u64::MAX).max(1)
}

fn claim_value(claim: &Claim) -> String {
    format!("processing:{:016x}", claim.token())
}

impl IdempotencyStore for RedisStore {
    fn claim(&self, claim: &Claim, ttl: Duration) -> StoreFuture<ClaimOutcome> {
        let key = self.key(claim.id());
        let value = claim_value(claim);
        let ttl = millis(ttl);
        self.run(move |mut connection| async move {
            // SET NX and GET in one round trip: GET sees our value when the
            // claim succeeded, or what is there instead.
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .cmd("GET")
                .arg(&key);
            // An entry can expire or be released between the two commands:
            // try again a few times.
            for _ in 0..3 {
                let (set, current): (Option<String>, Option<String>) =
                    pipe.query_async(&mut connection).await?;
                if set.is_some() {
                    return Ok(ClaimOutcome::Claimed);
                }
                match current.as_deref() {
                    Some(DONE) => return Ok(ClaimOutcome::Done),
                    Some(_) => return Ok(ClaimOutcome::InProgress),
                    None => continue,
                }
            }
            Ok(ClaimOutcome::InProgress)
        })
    }

    fn complete(&self, claim: &Claim, ttl: Duration) -> StoreFuture<()> {
        let key = self.key(claim.id());
        let ttl = millis(ttl);
        self.run(move |mut connection| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(DONE)
                .arg("PX")
                .arg(ttl)
                .exec_async(&mut connection)
                .await
        })
    }

    fn release(&self, claim: &Claim) -> StoreFuture<()> {
        let key = self.key(claim.id());
        let value = claim_value(claim);
        self.run(move |mut connection| async move {
            let _deleted: i64 = RELEASE
                .key(&key)
                .arg(&value)
                .invoke_async(&mut connection)
                .await?;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection holds the URL's credentials: not printed.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_whole_positive_milliseconds() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::from_secs(86_400)), 86_400_000);
        assert_eq!(millis(Duration::MAX), 365 * 86_400_000);
    }
}
