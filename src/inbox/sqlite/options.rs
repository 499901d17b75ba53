//! The settings of a [`SqliteStore`].

use std::{path::Path, time::Duration};

#[cfg(doc)]
use super::Inbox;
use super::{SqliteStore, StoreError};

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

/// Settings of a [`SqliteStore`], from [`SqliteStore::options`]; then
/// [`open`](Self::open) opens the store with them.
///
/// They are the store's own: the inbox's settings
/// ([`deadline`](Inbox::deadline), [`retention`](Inbox::retention),
/// [`overload_status`](Inbox::overload_status)) are set on the [`Inbox`]
/// made over the store.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_intercom::inbox::{Inbox, SqliteStore};
///
/// # fn main() -> Result<(), tower_intercom::StoreError> {
/// # let dir = std::env::temp_dir().join(format!("tower-intercom-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let store = SqliteStore::options()
///     .channel_capacity(1024)
///     .busy_timeout(Duration::from_secs(2))
///     .open(dir.join("inbox.sqlite3"))?;
/// let inbox = Inbox::new(store).deadline(Duration::from_millis(500));
/// # drop(inbox);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteOptions {
    pub(super) channel_capacity: usize,
    pub(super) max_batch: usize,
    pub(super) busy_timeout: Duration,
    pub(super) checkpoint_interval: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

impl SqliteOptions {
    /// How many writes may wait for the writer thread (default
    /// [`DEFAULT_CHANNEL_CAPACITY`]). When they are that many, the receiver
    /// answers 429 (see [`Inbox::overload_status`]) at once:
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

    /// Opens (or creates) the store in the SQLite file at `path`, with
    /// these settings. Needs no runtime; the receivers and workers of the
    /// [`Inbox`] over it need a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or created, is not an SQLite
    /// database, or holds a schema of a newer version of the inbox.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path.as_ref(), &self)
    }
}
