//! The connection both Redis stores (idempotency and inbox) share: opened
//! from a URL, checked, and replaced when it stops answering.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client};

use crate::store_error::StoreError;

/// Operations timed out in a row after which a connection the store
/// opened itself is replaced.
const REPLACE_AFTER: u32 = 3;

/// A store's connection to Redis. Cheap to clone: clones share it.
///
/// redis-rs reconnects when its connection fails, but not when it merely
/// stops answering: a connection left half-open (the server's machine
/// gone in a failover, a NAT or firewall that forgot it) would time out
/// every operation until the kernel gives up on it, about 15 minutes
/// later. So after [`REPLACE_AFTER`] timeouts in a row, a connection the
/// store opened from a URL is replaced by a new one, made in the
/// background; operations meanwhile use the old one.
#[derive(Clone)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    current: Mutex<ConnectionManager>,
    /// How to open a new one; `None` for a connection the user made.
    open: Option<(Client, ConnectionManagerConfig)>,
    timeouts: AtomicU32,
    replacing: AtomicBool,
}

impl Connection {
    /// Connects to the Redis at `url`, within `timeout`, for a store whose
    /// every operation has its own timeout: the connection has no response
    /// timeout of its own, which would cut short a longer one set on the
    /// store later (and fail as `Unavailable` instead of `TimedOut`).
    ///
    /// Then checks that Redis takes commands from it. A Redis that
    /// requires a password the URL lacks accepts the connection and
    /// refuses every command (`NOAUTH`): that fails here, instead of every
    /// operation failing later. Other refusals of the check (an ACL user
    /// without `PING`) do not: the store's own commands may still be
    /// allowed. The error never contains the URL or its password.
    pub(crate) async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(StoreError::unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            .set_number_of_retries(3)
            .set_max_delay(timeout);
        let connection = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .map_err(StoreError::unavailable)?;
        let mut pinging = connection.clone();
        match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<()>(&mut pinging))
            .await
        {
            Ok(Err(error)) if error.code() == Some("NOAUTH") => {
                return Err(StoreError::unavailable(error))
            }
            Ok(_) => {}
            Err(_) => return Err(StoreError::timed_out(timeout)),
        }
        Ok(Self::with(connection, Some((client, config))))
    }

    /// A connection the user made: used as it is, never replaced.
    pub(crate) fn given(connection: ConnectionManager) -> Self {
        Self::with(connection, None)
    }

    fn with(
        connection: ConnectionManager,
        open: Option<(Client, ConnectionManagerConfig)>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: Mutex::new(connection),
                open,
                timeouts: AtomicU32::new(0),
                replacing: AtomicBool::new(false),
            }),
        }
    }

    /// The connection to send on now.
    pub(crate) fn get(&self) -> ConnectionManager {
        self.shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Redis answered an operation (an error reply counts: it answered).
    pub(crate) fn answered(&self) {
        self.shared.timeouts.store(0, Ordering::Relaxed);
    }

    /// An operation timed out: the connection is replaced after
    /// [`REPLACE_AFTER`] in a row, one replacement at a time, in a task
    /// of the current runtime.
    pub(crate) fn timed_out(&self) {
        let in_a_row = self.shared.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        let Some((client, config)) = self.shared.open.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if in_a_row < REPLACE_AFTER || self.shared.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        runtime.spawn(async move {
            match ConnectionManager::new_with_config(client, config).await {
                Ok(connection) => {
                    *shared
                        .current
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = connection;
                    shared.timeouts.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        target: "tower_intercom::redis",
                        "Redis stopped answering on its connection ({REPLACE_AFTER} operations \
                         timed out in a row): replaced it with a new one"
                    );
                }
                Err(error) => tracing::debug!(
                    target: "tower_intercom::redis",
                    "replacing the Redis connection failed (tried again at the next timeout): \
                     {error}"
                ),
            }
            shared.replacing.store(false, Ordering::Release);
        });
    }
}

/// Runs `operation` on the current connection within `timeout`, and tells
/// the connection whether Redis answered.
pub(crate) async fn within<T, F, Fut>(
    connection: &Connection,
    timeout: Duration,
    operation: F,
) -> Result<redis::RedisResult<T>, StoreError>
where
    F: FnOnce(ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match tokio::time::timeout(timeout, operation(connection.get())).await {
        Ok(result) => {
            connection.answered();
            Ok(result)
        }
        Err(_) => {
            connection.timed_out();
            Err(StoreError::timed_out(timeout))
        }
    }
}

/// Reads Redis settings with `CONFIG GET`, one per name, in one round trip.
/// A setting this Redis does not know is missing from the map. Fails when
/// Redis refuses `CONFIG` (an ACL user without it, a managed Redis that
/// renamed it).
pub(crate) async fn config_get(
    connection: &mut ConnectionManager,
    names: &[&str],
) -> redis::RedisResult<HashMap<String, String>> {
    let mut pipe = redis::pipe();
    for name in names {
        pipe.cmd("CONFIG").arg("GET").arg(*name);
    }
    let found: Vec<HashMap<String, String>> = pipe.query_async(connection).await?;
    Ok(found.into_iter().flatten().collect())
}

/// Whose keys a `maxmemory-policy` is judged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKeys {
    /// The inbox's: none has a TTL.
    #[cfg(feature = "inbox-redis")]
    Inbox,
    /// The idempotency store's: every one has a TTL.
    #[cfg(feature = "redis")]
    Idempotency,
}

impl StoreKeys {
    /// Whether Redis can evict these keys under `policy`. Only
    /// `noeviction` keeps every key. The `volatile-*` policies evict only
    /// keys with a TTL, but those they evict first: for a store whose
    /// every key has one, they are no safer than `allkeys-*`.
    pub(crate) fn evicted_under(self, policy: &str) -> bool {
        let policy = policy.trim().to_ascii_lowercase();
        match self {
            #[cfg(feature = "inbox-redis")]
            Self::Inbox => policy != "noeviction" && !policy.starts_with("volatile-"),
            #[cfg(feature = "redis")]
            Self::Idempotency => policy != "noeviction",
        }
    }

    /// Logs a `warn` when Redis can evict these keys under `policy`.
    pub(crate) fn warn_if_evicted_under(self, policy: &str) {
        if !self.evicted_under(policy) {
            return;
        }
        let loss = match self {
            #[cfg(feature = "inbox-redis")]
            Self::Inbox => "the inbox's keys, losing notifications and their deduplication",
            #[cfg(feature = "redis")]
            Self::Idempotency => {
                "the idempotency store's done markers (each has a TTL), and a duplicate \
                 delivery of an evicted id is processed again"
            }
        };
        tracing::warn!(
            target: "tower_intercom::redis",
            policy = %policy,
            "with maxmemory-policy {policy}, Redis may evict {loss}; \
             set maxmemory-policy noeviction"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::StoreKeys;

    #[test]
    #[cfg(feature = "redis")]
    fn only_noeviction_keeps_keys_with_a_ttl() {
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "some-future-policy",
        ] {
            assert!(StoreKeys::Idempotency.evicted_under(policy), "{policy}");
        }
        assert!(!StoreKeys::Idempotency.evicted_under("noeviction"));
        assert!(!StoreKeys::Idempotency.evicted_under(" NoEviction "));
    }

    #[test]
    #[cfg(feature = "inbox-redis")]
    fn keys_without_a_ttl_survive_volatile_policies() {
        for policy in ["noeviction", "volatile-lru", "volatile-ttl", "VOLATILE-LFU"] {
            assert!(!StoreKeys::Inbox.evicted_under(policy), "{policy}");
        }
        for policy in ["allkeys-lru", "allkeys-random", "some-future-policy"] {
            assert!(StoreKeys::Inbox.evicted_under(policy), "{policy}");
        }
    }
}
