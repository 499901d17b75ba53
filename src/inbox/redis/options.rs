//! The settings of a [`RedisStore`] and of the [`RedisInbox`] over it.

use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Inbox, OverloadStatus, RedisInbox, RedisStore, StoreError};

impl Inbox<RedisStore> {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// with the default settings, and warns (through `tracing`) when Redis
    /// can lose acknowledged writes. Needs a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached. The error never
    /// contains the URL or its password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        RedisOptions::default().connect(url).await
    }

    /// Settings for [`RedisOptions::connect`].
    pub fn options() -> RedisOptions {
        RedisOptions::default()
    }
}

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

/// Settings of a [`RedisStore`] and of the [`RedisInbox`] over it.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
    max_in_flight: usize,
    deadline: Duration,
    retention: Duration,
    overload_status: OverloadStatus,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            deadline: crate::inbox::DEFAULT_DEADLINE,
            retention: crate::inbox::DEFAULT_RETENTION,
            overload_status: OverloadStatus::default(),
        }
    }
}

impl RedisOptions {
    /// See [`RedisStore::key_prefix`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// See [`RedisStore::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// See [`RedisStore::max_in_flight`] (at most
    /// [`LARGEST_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.clamp(1, LARGEST_MAX_IN_FLIGHT);
        self
    }

    /// See [`Inbox::deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// See [`Inbox::retention`].
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// See [`Inbox::overload_status`].
    pub fn overload_status(mut self, status: OverloadStatus) -> Self {
        self.overload_status = status;
        self
    }

    /// Connects to the Redis at `url` and warns when Redis can lose
    /// acknowledged writes (see [`RedisStore::connect`]).
    ///
    /// # Errors
    ///
    /// As [`RedisStore::connect`]: when the URL is invalid, Redis cannot be
    /// reached, or it refuses commands. The error never contains the URL
    /// or its password.
    pub async fn connect(self, url: &str) -> Result<RedisInbox, StoreError> {
        let (deadline, retention, overload) = (self.deadline, self.retention, self.overload_status);
        Ok(Inbox::new(self.connect_store(url).await?)
            .deadline(deadline)
            .retention(retention)
            .overload_status(overload))
    }

    /// Connects just the store. The inbox settings of these options
    /// ([`deadline`](Self::deadline), [`retention`](Self::retention),
    /// [`overload_status`](Self::overload_status)) are not the store's: set
    /// them on the [`Inbox`] you make over it, or use
    /// [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_store(self, url: &str) -> Result<RedisStore, StoreError> {
        let store = RedisStore::open(url, self.timeout).await?;
        let store = store
            .key_prefix(self.prefix)
            .max_in_flight(self.max_in_flight);
        store.warn_if_not_durable().await;
        Ok(store)
    }
}
