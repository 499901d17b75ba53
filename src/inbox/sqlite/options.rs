//! The settings of a [`SqliteStore`] and of the [`SqliteInbox`] over it.

use std::{path::Path, time::Duration};

use super::{Inbox, OverloadStatus, SqliteInbox, SqliteStore, StoreError};

impl Inbox<SqliteStore> {
    /// Opens (or creates) the inbox in the SQLite file at `path`, with the
    /// default settings. Needs no runtime; its receiver and workers need a
    /// Tokio runtime.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteOptions::default().open(path)
    }

    /// Settings for [`SqliteOptions::open`].
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }
}

/// The default bound of [`SqliteOptions::channel_capacity`]: 4096 writes
/// waiting for the writer thread.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 4096;

/// The largest [`SqliteOptions::channel_capacity`]: the most a Tokio
/// channel holds (`tokio::sync::Semaphore::MAX_PERMITS`, 2^61 − 1 on 64-bit
/// machines). A larger one is taken as this.
pub const MAX_CHANNEL_CAPACITY: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// The default [`SqliteOptions::busy_timeout`]: 1 s.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest [`SqliteOptions::busy_timeout`]: 2^31 − 1 ms (about 24.8
/// days), the most SQLite takes. A longer one is taken as this.
pub const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The default bound of [`SqliteOptions::max_batch`]: 512 writes per commit.
pub const DEFAULT_MAX_BATCH: usize = 512;

/// The default [`SqliteOptions::checkpoint_interval`]: 50 ms.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// Settings of a [`SqliteStore`] and of the [`SqliteInbox`] over it.
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteOptions {
    pub(super) channel_capacity: usize,
    pub(super) max_batch: usize,
    pub(super) busy_timeout: Duration,
    pub(super) checkpoint_interval: Duration,
    deadline: Duration,
    retention: Duration,
    overload_status: OverloadStatus,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            deadline: crate::inbox::DEFAULT_DEADLINE,
            retention: crate::inbox::DEFAULT_RETENTION,
            overload_status: OverloadStatus::default(),
        }
    }
}

impl SqliteOptions {
    /// How many writes may wait for the writer thread (default
    /// [`DEFAULT_CHANNEL_CAPACITY`]). When they are that many, the receiver
    /// answers 429 (see [`overload_status`](Self::overload_status)) at once:
    /// nothing queues without bound. Memory held by waiting notifications is
    /// at most this × the body limit. At least 1, at most
    /// [`MAX_CHANNEL_CAPACITY`] (a value outside is taken as the nearest of
    /// the two); the channel takes memory for what waits in it, not for
    /// its capacity.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.clamp(1, MAX_CHANNEL_CAPACITY);
        self
    }

    /// At most this many writes per transaction (default
    /// [`DEFAULT_MAX_BATCH`]; at least 1, and any larger count). Writes
    /// that arrive while a commit is being synced wait, then go in the
    /// next one: one `fsync` for all of them.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How long the writer waits for the file's write lock when another
    /// process holds it (default [`DEFAULT_BUSY_TIMEOUT`], 1 s) before
    /// failing the batch, which the receiver answers with 503. At most
    /// [`MAX_BUSY_TIMEOUT`] (about 24.8 days, SQLite's limit): a longer
    /// one is taken as that; a fraction of a millisecond is dropped.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
        self
    }

    /// How long the checkpoint thread rests after each pass (default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`]). The thread copies the write-ahead
    /// log into the database file after commits, outside the writer so
    /// that commits do not wait for it; a store without commits (workers'
    /// claims are commits too) is left alone. Each pass ends with a sync of
    /// the database file, which holds up the commits' own syncs while it
    /// writes: a longer interval means fewer, longer holds. At 10,000
    /// notifications a second, on a disk doing about 3,000 syncs a second,
    /// the 99th percentile of the answers was 42–55 ms with one pass a
    /// second and 11–14 ms with one every 50 ms (three runs of each). When
    /// the log is long, the writer copies the last few frames itself
    /// between two transactions, so that the log starts over even when
    /// writes never pause. At least 10 ms; any longer duration is taken
    /// as it is (the log then grows for as long, until the store is
    /// closed).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval.max(Duration::from_millis(10));
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

    /// Opens (or creates) the inbox in the SQLite file at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteInbox, StoreError> {
        let (deadline, retention, overload) = (self.deadline, self.retention, self.overload_status);
        Ok(Inbox::new(self.open_store(path)?)
            .deadline(deadline)
            .retention(retention)
            .overload_status(overload))
    }

    /// Opens (or creates) just the store in the SQLite file at `path`. The
    /// inbox settings of these options ([`deadline`](Self::deadline),
    /// [`retention`](Self::retention),
    /// [`overload_status`](Self::overload_status)) are not the store's:
    /// set them on the [`Inbox`] you make over it, or use
    /// [`open`](Self::open).
    pub fn open_store(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path.as_ref(), &self)
    }
}
