//! The Redis store: shared by every receiver that uses the same Redis.

use std::{fmt, future::Future, sync::Arc, sync::LazyLock, time::Duration};

use redis::{aio::ConnectionManager, Script};

use crate::redis_connection::{config_get, within, Connection, StoreKeys};

use super::{
    store::{Claim, ClaimOutcome, IdempotencyStore, StoreFuture},
    StoreError, MAX_TTL, MIN_TTL,
};

/// The prefix of the keys [`RedisStore`] writes: `tower-intercom:notification:`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tower-intercom:notification:";

/// How long [`RedisStore`] waits for Redis, per operation: 1 second.
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
/// to mark done. Every operation gives up after [`timeout`](Self::timeout)
/// (default [`DEFAULT_REDIS_TIMEOUT`]); the layer's
/// [`FailurePolicy`](super::FailurePolicy) then decides.
///
/// Redis must keep these keys until they expire: set `maxmemory-policy
/// noeviction` (Redis's default), so that a full Redis refuses new claims
/// (the layer's [`FailurePolicy`](super::FailurePolicy) decides) rather
/// than forgetting done ids. Every key the store writes has a TTL, so a
/// `volatile-*` policy evicts exactly these keys, as an `allkeys-*` one
/// does: an evicted done marker lets a duplicate through, processed again.
/// [`connect`](Self::connect) reads the policy with `CONFIG GET` and logs
/// a `warn` when it is anything else. For `rediss://` (TLS), enable one of
/// the `redis` crate's TLS features (`tokio-rustls-comp` or
/// `tokio-native-tls-comp`) in your own `Cargo.toml`.
///
/// Needs a Tokio runtime.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_intercom::idempotency::{IdempotencyLayer, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .key_prefix("my-app:intercom:")
///     .timeout(Duration::from_millis(300));
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

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`),
    /// with [`DEFAULT_REDIS_TIMEOUT`] for connecting and for each command.
    /// After three operations in a row timed out, the connection is
    /// replaced by a new one (redis-rs reconnects by itself only when a
    /// connection fails, not when it goes silent: a failover that took the
    /// server's machine away, a NAT that forgot the connection).
    ///
    /// Warns (through `tracing`) when Redis's `maxmemory-policy` is not
    /// `noeviction`: Redis could then evict done markers. When `CONFIG` is
    /// refused (an ACL user without it, a managed Redis that renames it),
    /// the policy cannot be read, and this is logged at `debug` only.
    ///
    /// # Errors
    ///
    /// When the URL is invalid, Redis cannot be reached (after a few
    /// attempts), or it refuses commands for want of a password the URL
    /// lacks (`NOAUTH`). The error never contains the URL or its password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let connection = Connection::open(url, DEFAULT_REDIS_TIMEOUT).await?;
        let store = Self::with(connection);
        store.warn_if_evicting().await;
        Ok(store)
    }

    /// A store on a connection you configured yourself (for instance one
    /// made with `ConnectionManager::new_lazy_with_config`, to start while
    /// Redis is still down). Give it no response timeout
    /// (`ConnectionManagerConfig::set_response_timeout(None)`; redis-rs's
    /// default is 500 ms): every operation of the store has its own
    /// [`timeout`](Self::timeout), which a shorter one on the connection
    /// would cut short. Unlike one opened by [`connect`](Self::connect),
    /// it is never replaced when it goes silent.
    pub fn new(connection: ConnectionManager) -> Self {
        Self::with(Connection::given(connection))
    }

    fn with(connection: Connection) -> Self {
        Self {
            connection,
            prefix: DEFAULT_REDIS_KEY_PREFIX.into(),
            timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }

    /// Sets the prefix of the keys (default [`DEFAULT_REDIS_KEY_PREFIX`]).
    /// Receivers that must not share what they handled (two environments
    /// on one Redis) need different prefixes.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// Sets how long each operation waits for Redis (default
    /// [`DEFAULT_REDIS_TIMEOUT`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The Redis key of a notification id: the prefix, then the id.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_intercom::StoreError> {
    /// use tower_intercom::idempotency::RedisStore;
    ///
    /// let store = RedisStore::connect("redis://127.0.0.1/").await?.key_prefix("app:");
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

    /// Logs a `warn` when Redis's `maxmemory-policy` can evict the store's
    /// keys.
    async fn warn_if_evicting(&self) {
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
