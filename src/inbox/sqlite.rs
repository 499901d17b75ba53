//! The embedded store: one SQLite file, written by one thread that commits
//! in groups.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc as std_mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use rusqlite::{named_params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{
    ClaimRequest, Claimed, Counts, DeadNotification, DeadPage, DeadQuery, Failure, Inbox,
    InboxFuture, InboxStore, Inserted, Lease, LeaseToken, NewNotification, OverloadStatus,
    ReceivedNotification, StoreError,
};

/// An [`Inbox`] over one SQLite file.
///
/// # Example
///
/// ```
/// use tower_intercom::inbox::SqliteInbox;
///
/// # fn main() -> Result<(), tower_intercom::StoreError> {
/// let dir = std::env::temp_dir().join(format!("tower-intercom-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let inbox = SqliteInbox::options()
///     .channel_capacity(1024)
///     .deadline(std::time::Duration::from_millis(500))
///     .open(dir.join("inbox.sqlite3"))?;
/// # drop(inbox);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub type SqliteInbox = Inbox<SqliteStore>;

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
    channel_capacity: usize,
    max_batch: usize,
    busy_timeout: Duration,
    checkpoint_interval: Duration,
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
            deadline: super::DEFAULT_DEADLINE,
            retention: super::DEFAULT_RETENTION,
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

/// An [`InboxStore`] in one SQLite file (bundled SQLite).
///
/// - **Durable before the 200**: write-ahead log (`journal_mode=WAL`) with
///   `synchronous=FULL`, so each commit is synced to disk before it returns
///   and survives a crash of the process, of the OS, or a power loss.
/// - **Group commit**: one thread owns the only writing connection and is
///   fed by a bounded channel. It takes every write waiting (up to
///   [`max_batch`](SqliteOptions::max_batch)), runs them in one
///   transaction, syncs once, and only then answers each. Under load the
///   batches grow by themselves while the previous sync runs.
/// - **Bounded**: when the channel is full, inserts fail at once with
///   [`StoreErrorKind::Overloaded`](super::StoreErrorKind::Overloaded).
/// - Reads (counts, dead notifications) use a second connection and never
///   wait for the writer.
/// - **The log starts over**: checkpoints run in a helper thread after
///   commits, resting
///   [`checkpoint_interval`](SqliteOptions::checkpoint_interval) after
///   each, and make the log start over even under writes that never pause
///   (SQLite alone would let it grow until the load stops). The `-wal` file is reused
///   from its start, and cut back to 256 MiB when it grew larger.
/// - **Layout**: the tables `intercom_inbox` (one small row per
///   notification: id, topic, state, attempts, lease, times) and
///   `intercom_inbox_body` (the bodies, dropped once done), the schema
///   version in `PRAGMA user_version` (files of an older version are
///   migrated on open; a newer one is refused). So give the inbox a file
///   of its own: another user of `user_version` in the same file (a
///   migration tool) and the inbox would misread each other. Each state has a partial
///   index, and every statement reads through one, so a claim costs the
///   same with a backlog of ten or of a million.
///
/// Several processes may open the same file (their writers then take
/// turns, waiting up to [`busy_timeout`](SqliteOptions::busy_timeout)); a
/// network file system is not supported (SQLite's WAL needs shared memory).
pub struct SqliteStore {
    writes: mpsc::Sender<Box<dyn Job>>,
    reader: Arc<Mutex<Connection>>,
    stats: Arc<Stats>,
    path: PathBuf,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// How the writer thread has grouped writes into commits so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Transactions committed (or attempted).
    pub commits: u64,
    /// Writes they carried.
    pub writes: u64,
    /// The most writes in one transaction.
    pub largest: u64,
}

#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    writes: AtomicU64,
    largest: AtomicU64,
}

const SCHEMA_VERSION: i64 = 2;

/// The notifications' states in one table of small rows, their bodies in
/// another: a claim or a completion rewrites only the small rows (many to
/// a page, next to each other), not the pages holding the bodies.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS intercom_inbox (
  seq          INTEGER PRIMARY KEY,
  id           TEXT    NOT NULL UNIQUE,
  topic        TEXT    NOT NULL,
  received_at  INTEGER NOT NULL,
  state        INTEGER NOT NULL DEFAULT 0,
  attempts     INTEGER NOT NULL DEFAULT 0,
  available_at INTEGER NOT NULL,
  lease_until  INTEGER,
  lease_token  INTEGER,
  last_error   TEXT,
  done_at      INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS intercom_inbox_ready  ON intercom_inbox(available_at, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS intercom_inbox_leased ON intercom_inbox(lease_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS intercom_inbox_done   ON intercom_inbox(done_at) WHERE state = 2;
CREATE INDEX IF NOT EXISTS intercom_inbox_dead   ON intercom_inbox(seq) WHERE state = 3;
CREATE TABLE IF NOT EXISTS intercom_inbox_body (
  seq          INTEGER PRIMARY KEY,
  body         BLOB    NOT NULL
) STRICT;
";

/// From version 1 (bodies in the main table, and an index on state that
/// plans must not use) to version 2.
const MIGRATE_FROM_1: &str = "
DROP INDEX IF EXISTS intercom_inbox_state;
CREATE TABLE intercom_inbox_body (
  seq          INTEGER PRIMARY KEY,
  body         BLOB    NOT NULL
) STRICT;
INSERT INTO intercom_inbox_body (seq, body)
  SELECT seq, body FROM intercom_inbox WHERE body IS NOT NULL;
ALTER TABLE intercom_inbox DROP COLUMN body;
";

// The statements. Those that select by state name their partial index
// (`INDEXED BY`): a plan that walks every pending row would make each
// claim cost grow with the backlog, and SQLite refuses to run a statement
// whose named index cannot serve it rather than fall back to such a plan.
// The test `every_statement_reads_through_an_index` checks the plans.

/// Stores a notification unless its id is there already (its body then
/// goes in with [`INSERT_BODY`]).
const INSERT: &str = "INSERT INTO intercom_inbox (id, topic, received_at, available_at)
  VALUES (:id, :topic, :received_at, :now)
  ON CONFLICT (id) DO NOTHING";

/// The body of the notification [`INSERT`] stored.
const INSERT_BODY: &str = "INSERT INTO intercom_inbox_body (seq, body) VALUES (:seq, :body)";

/// A notification's body.
const BODY: &str = "SELECT body FROM intercom_inbox_body WHERE seq = :seq";

/// Drops a notification's body.
const DELETE_BODY: &str = "DELETE FROM intercom_inbox_body WHERE seq = :seq";

/// Ends the attempts whose lease lapsed: pending again, or dead after the
/// last attempt.
const SWEEP_LAPSED: &str = "UPDATE intercom_inbox INDEXED BY intercom_inbox_leased
    SET state = CASE WHEN attempts >= :max THEN 3 ELSE 0 END,
        available_at = :now,
        last_error = 'the lease lapsed: the worker crashed, hung or was too slow',
        lease_until = NULL, lease_token = NULL
  WHERE state = 1 AND lease_until <= :now";

/// Leases the oldest due notifications.
const CLAIM: &str = "UPDATE intercom_inbox
        SET state = 1, attempts = attempts + 1,
            lease_until = :now + :lease, lease_token = :token
      WHERE seq IN (SELECT seq FROM intercom_inbox INDEXED BY intercom_inbox_ready
                     WHERE state = 0 AND available_at <= :now
                     ORDER BY available_at, seq LIMIT :n)
  RETURNING seq, id, topic, received_at, attempts";

/// When the next notification becomes due (a retry or a lapsing lease).
const NEXT_DUE: &str = "SELECT min(t) FROM (
  SELECT min(available_at) AS t
    FROM intercom_inbox INDEXED BY intercom_inbox_ready WHERE state = 0
  UNION ALL
  SELECT min(lease_until) AS t
    FROM intercom_inbox INDEXED BY intercom_inbox_leased WHERE state = 1)";

/// Marks a leased notification done (its body is dropped with
/// [`DELETE_BODY`]; the id stays, for deduplication).
const COMPLETE: &str = "UPDATE intercom_inbox
    SET state = 2, done_at = :now, last_error = NULL,
        lease_until = NULL, lease_token = NULL
  WHERE id = :id AND state = 1 AND lease_token = :token
  RETURNING seq";

/// Records a failed attempt: pending again at the retry time, or dead.
const FAIL: &str = "UPDATE intercom_inbox
    SET state = CASE WHEN :retry_at IS NULL THEN 3 ELSE 0 END,
        available_at = coalesce(:retry_at, available_at),
        last_error = :error, lease_until = NULL, lease_token = NULL
  WHERE id = :id AND state = 1 AND lease_token = :token";

/// Hands a leased notification back without using up its attempt.
const RELEASE: &str = "UPDATE intercom_inbox
    SET state = 0, attempts = max(attempts - 1, 0), available_at = :now,
        lease_until = NULL, lease_token = NULL
  WHERE id = :id AND state = 1 AND lease_token = :token";

/// The four counts, each read from its state's partial index.
const COUNTS: &str = "SELECT
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_ready
    WHERE state = 0),
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_leased
    WHERE state = 1),
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_done
    WHERE state = 2),
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_dead
    WHERE state = 3)";

/// One page of dead notifications, after a cursor.
const DEAD_PAGE: &str = "SELECT seq, id, topic,
        (SELECT body FROM intercom_inbox_body AS b WHERE b.seq = n.seq),
        received_at, attempts, last_error
   FROM intercom_inbox AS n INDEXED BY intercom_inbox_dead
  WHERE state = 3 AND seq > :after
  ORDER BY seq LIMIT :n";

/// Makes a dead notification pending again, with fresh attempts.
const REQUEUE: &str = "UPDATE intercom_inbox
    SET state = 0, attempts = 0, available_at = :now, last_error = NULL
  WHERE id = :id AND state = 3";

/// Deletes a chunk of done notifications older than the retention.
const PRUNE: &str = "DELETE FROM intercom_inbox WHERE seq IN
  (SELECT seq FROM intercom_inbox INDEXED BY intercom_inbox_done
    WHERE state = 2 AND done_at < :before LIMIT :n)";

/// Rows deleted per prune call.
const PRUNE_CHUNK: i64 = 1000;

/// The longest error message kept per notification.
const MAX_ERROR_LEN: usize = 2048;

impl SqliteStore {
    /// Opens (or creates) the store in the SQLite file at `path`, with the
    /// default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), &SqliteOptions::default())
    }

    fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self, StoreError> {
        let writer = open_connection(path, options.busy_timeout, false)?;
        migrate(&writer)?;
        // Checkpoints run in their own thread (below), not inside commits.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(unavailable)?;
        let reader = open_connection(path, options.busy_timeout, true)?;
        let checkpointer = open_connection(path, options.busy_timeout, false)?;

        let (writes, queue) = mpsc::channel::<Box<dyn Job>>(options.channel_capacity);
        let stats = Arc::new(Stats::default());
        let writer_stats = stats.clone();
        let max_batch = options.max_batch;
        let catch_up_wanted = Arc::new(AtomicBool::new(false));
        // The writer wakes the checkpointer after its commits; the
        // checkpointer ends with the writer, which ends once the store is
        // gone and what was queued is written.
        let (wake, woken) = std_mpsc::sync_channel::<()>(1);
        let checkpointer_wake = Checkpoints {
            wake,
            catch_up_wanted: catch_up_wanted.clone(),
        };
        thread::Builder::new()
            .name("intercom-inbox-writer".into())
            .spawn(move || write_loop(writer, queue, max_batch, &writer_stats, checkpointer_wake))
            .map_err(unavailable)?;

        let interval = options.checkpoint_interval;
        thread::Builder::new()
            .name("intercom-inbox-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, woken, interval, &catch_up_wanted))
            .map_err(unavailable)?;

        Ok(Self {
            writes,
            reader: Arc::new(Mutex::new(reader)),
            stats,
            path: path.to_owned(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the writer has grouped writes into commits so far.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
            largest: self.stats.largest.load(Ordering::Relaxed),
        }
    }

    /// Queues `work` for the writer; fails at once when the channel is full
    /// (`try`), or waits for room.
    fn write<T, F>(&self, work: F, skip_if_abandoned: bool, wait: bool) -> InboxFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Task {
            work: Some(work),
            result: None,
            reply,
            skip_if_abandoned,
        });
        if wait {
            let writes = self.writes.clone();
            return Box::pin(async move {
                writes.send(job).await.map_err(|_| writer_gone())?;
                answer.await.map_err(|_| writer_gone())?
            });
        }
        let queued = self.writes.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => StoreError::overloaded(),
            mpsc::error::TrySendError::Closed(_) => writer_gone(),
        });
        Box::pin(async move {
            queued?;
            answer.await.map_err(|_| writer_gone())?
        })
    }

    fn read<T, F>(&self, work: F) -> InboxFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = self.reader.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let connection = reader
                    .lock()
                    .map_err(|_| StoreError::unavailable("the reading connection was poisoned"))?;
                work(&connection).map_err(unavailable)
            })
            .await
            .map_err(unavailable)?
        })
    }
}

impl InboxStore for SqliteStore {
    fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted> {
        let work = move |connection: &Connection, now: i64| {
            let inserted = connection.prepare_cached(INSERT)?.execute(named_params! {
                ":id": &*notification.id,
                ":topic": &*notification.topic,
                ":received_at": millis(notification.received_at),
                ":now": now,
            })?;
            if inserted != 1 {
                return Ok(Inserted::Duplicate);
            }
            connection
                .prepare_cached(INSERT_BODY)?
                .execute(named_params! {
                    ":seq": connection.last_insert_rowid(),
                    ":body": &notification.body[..],
                })?;
            Ok(Inserted::Stored)
        };
        // An insert whose caller already answered 503 is not written: the
        // answer said "not stored", and Intercom's retry will store it.
        self.write(work, true, false)
    }

    fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
        let token = LeaseToken::random();
        let token_value = token.value() as i64;
        self.write(
            move |connection: &Connection, now: i64| {
                // Lapsed leases first: a crashed, hung or too slow worker's
                // attempt counts as failed.
                connection
                    .prepare_cached(SWEEP_LAPSED)?
                    .execute(named_params! {
                        ":max": i64::from(request.max_attempts),
                        ":now": now,
                    })?;
                let mut claim = connection.prepare_cached(CLAIM)?;
                let mut rows = claim
                    .query_map(
                        named_params! {
                            ":now": now,
                            ":lease": duration_millis(request.lease),
                            ":token": token_value,
                            ":n": i64::try_from(request.max).unwrap_or(i64::MAX),
                        },
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                time(row.get(3)?),
                                attempts(row.get(4)?),
                            ))
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.sort_by_key(|(seq, ..)| *seq);
                let mut body = connection.prepare_cached(BODY)?;
                let rows = rows
                    .into_iter()
                    .map(|(seq, id, topic, received_at, attempt)| {
                        let bytes: Option<Vec<u8>> = body
                            .query_row(named_params! { ":seq": seq }, |row| row.get(0))
                            .optional()?;
                        let bytes = Bytes::from(bytes.unwrap_or_default());
                        let notification =
                            ReceivedNotification::new(id, topic, bytes, received_at, attempt);
                        Ok((seq, notification))
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let next_due: Option<i64> = connection
                    .prepare_cached(NEXT_DUE)?
                    .query_row([], |row| row.get(0))?;
                let leases = rows
                    .into_iter()
                    .map(|(_, notification)| Lease::new(notification, token.clone()))
                    .collect();
                Ok(Claimed::new(leases, next_due.map(time)))
            },
            false,
            true,
        )
    }

    fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let (id, token) = (Box::<str>::from(id), token.value() as i64);
        self.write(
            move |connection: &Connection, now: i64| {
                // The body is no longer needed: only the id is kept, for
                // deduplication, until the retention ends.
                let seq: Option<i64> = connection
                    .prepare_cached(COMPLETE)?
                    .query_row(
                        named_params! { ":now": now, ":id": &*id, ":token": token },
                        |row| row.get(0),
                    )
                    .optional()?;
                let Some(seq) = seq else { return Ok(false) };
                connection
                    .prepare_cached(DELETE_BODY)?
                    .execute(named_params! { ":seq": seq })?;
                Ok(true)
            },
            false,
            true,
        )
    }

    fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool> {
        let (id, token) = (Box::<str>::from(id), token.value() as i64);
        let error = truncate(&failure.error, MAX_ERROR_LEN).to_owned();
        let retry_at = failure.retry_at.map(millis);
        self.write(
            move |connection: &Connection, _now: i64| {
                let changed = connection.prepare_cached(FAIL)?.execute(named_params! {
                    ":retry_at": retry_at,
                    ":error": error,
                    ":id": &*id,
                    ":token": token,
                })?;
                Ok(changed == 1)
            },
            false,
            true,
        )
    }

    fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let (id, token) = (Box::<str>::from(id), token.value() as i64);
        self.write(
            move |connection: &Connection, now: i64| {
                let changed = connection
                    .prepare_cached(RELEASE)?
                    .execute(named_params! { ":now": now, ":id": &*id, ":token": token })?;
                Ok(changed == 1)
            },
            false,
            true,
        )
    }

    fn counts(&self) -> InboxFuture<Counts> {
        self.read(|connection| {
            let mut counts = Counts::default();
            // One partial index per state: each count reads only its own.
            let [pending, in_progress, done, dead] = connection
                .prepare_cached(COUNTS)?
                .query_row([], |row| {
                    Ok([row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
                })?
                .map(|n| u64::try_from(n).unwrap_or(0));
            counts.pending = pending;
            counts.in_progress = in_progress;
            counts.done = done;
            counts.dead = dead;
            Ok(counts)
        })
    }

    fn dead(&self, query: DeadQuery) -> InboxFuture<DeadPage> {
        let after = match query.after.as_deref().map(str::parse::<i64>) {
            None => 0,
            Some(Ok(seq)) => seq,
            Some(Err(_)) => {
                return Box::pin(std::future::ready(Err(StoreError::unavailable(
                    "not a cursor of this store",
                ))))
            }
        };
        let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX - 1);
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(DEAD_PAGE)?;
            let mut rows = statement
                .query_map(
                    named_params! { ":after": after, ":n": limit.saturating_add(1) },
                    |row| {
                        let body: Option<Vec<u8>> = row.get(3)?;
                        let notification = ReceivedNotification::new(
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            Bytes::from(body.unwrap_or_default()),
                            time(row.get(4)?),
                            attempts(row.get(5)?),
                        );
                        let error: Option<String> = row.get(6)?;
                        Ok((
                            row.get::<_, i64>(0)?,
                            DeadNotification::new(notification, error.unwrap_or_default()),
                        ))
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = rows.len() as i64 > limit;
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            let next = more
                .then(|| rows.last().map(|(seq, _)| seq.to_string().into_boxed_str()))
                .flatten();
            Ok(DeadPage::new(
                rows.into_iter().map(|(_, dead)| dead).collect(),
                next,
            ))
        })
    }

    fn requeue(&self, id: &str) -> InboxFuture<bool> {
        let id = Box::<str>::from(id);
        self.write(
            move |connection: &Connection, now: i64| {
                let changed = connection
                    .prepare_cached(REQUEUE)?
                    .execute(named_params! { ":now": now, ":id": &*id })?;
                Ok(changed == 1)
            },
            false,
            true,
        )
    }

    fn prune_done(&self, before: SystemTime) -> InboxFuture<u64> {
        let before = millis(before);
        self.write(
            move |connection: &Connection, _now: i64| {
                let deleted = connection
                    .prepare_cached(PRUNE)?
                    .execute(named_params! { ":before": before, ":n": PRUNE_CHUNK })?;
                Ok(deleted as u64)
            },
            false,
            true,
        )
    }
}

/// One write, run by the writer thread inside a group transaction.
trait Job: Send {
    /// The caller gave up and the write need not happen.
    fn abandoned(&self) -> bool;
    /// Runs the statements (inside the open transaction); why they failed.
    fn run(&mut self, connection: &Connection, now: i64) -> Result<(), String>;
    /// Answers the caller once the transaction is over: `failed` when it
    /// was not committed.
    fn finish(self: Box<Self>, failed: Option<&str>);
}

struct Task<T, F> {
    work: Option<F>,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    skip_if_abandoned: bool,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send,
{
    fn abandoned(&self) -> bool {
        self.skip_if_abandoned && self.reply.is_closed()
    }

    fn run(&mut self, connection: &Connection, now: i64) -> Result<(), String> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        match work(connection, now) {
            Ok(value) => {
                self.result = Some(value);
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    fn finish(self: Box<Self>, failed: Option<&str>) {
        let result = match (failed, self.result) {
            (Some(reason), _) => Err(StoreError::unavailable(reason.to_owned())),
            (None, Some(value)) => Ok(value),
            (None, None) => return, // abandoned: nobody is waiting
        };
        let _ = self.reply.send(result);
    }
}

/// The writer thread: takes every write waiting, runs them in one
/// transaction, commits (one sync), then answers them.
fn write_loop(
    connection: Connection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    stats: &Stats,
    checkpoints: Checkpoints,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch.min(1024));
    while let Some(job) = queue.blocking_recv() {
        checkpoints.catch_up(&connection);
        batch.push(job);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failed = commit(&connection, &mut batch);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .largest
            .fetch_max(batch.len() as u64, Ordering::Relaxed);
        if let Some(reason) = &failed {
            tracing::debug!(target: "tower_intercom::inbox", "inbox commit failed: {reason}");
        } else {
            checkpoints.committed();
        }
        for job in batch.drain(..) {
            job.finish(failed.as_deref());
        }
    }
}

/// Runs `batch` in one transaction. Returns why it was not committed.
fn commit(connection: &Connection, batch: &mut [Box<dyn Job>]) -> Option<String> {
    // Take the write lock first, then drop the writes nobody waits for any
    // more (their callers answered 503 while the lock was busy).
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        return Some(error.to_string());
    }
    let now = millis(SystemTime::now());
    for job in batch.iter_mut() {
        if connection.is_autocommit() {
            // SQLite rolled the transaction back (below): nothing more runs.
            break;
        }
        if !job.abandoned() {
            // A write that fails (disk full, I/O error) may have run half
            // of its statements: the whole transaction is rolled back and
            // every write in it fails, so that nothing is kept by halves (a
            // notification without its body) and nothing is answered as
            // stored that was not.
            if let Err(error) = job.run(connection, now) {
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                return Some(error);
            }
        }
    }
    // Some errors (disk full, I/O) roll the transaction back by themselves.
    let failed = if connection.is_autocommit() {
        Some("the transaction was rolled back".to_owned())
    } else {
        connection
            .execute_batch("COMMIT")
            .err()
            .map(|error| error.to_string())
    };
    if failed.is_some() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    failed
}

/// How many frames the write-ahead log may hold after a checkpoint before
/// the checkpointer makes sure it starts over (SQLite's own automatic
/// checkpoint starts at 1,000 pages).
const RESTART_FRAMES: i64 = 1000;

/// Copies the write-ahead log into the database after commits, resting
/// `interval` after each pass, without blocking the writer (`PASSIVE`),
/// until the writer thread ends. A store without commits is not woken,
/// unless the last pass could not copy everything (a reader held an older
/// snapshot, another connection was checkpointing): that is tried again
/// after each rest until it succeeds.
///
/// Checkpoints are small and frequent because each one ends with a sync of
/// the database file, which holds up the log's own syncs (the commits) for
/// as long as it writes: copying a second of writes at 10,000 a second
/// held them for tens of milliseconds.
///
/// SQLite starts the log over only when a write transaction begins with
/// every frame already copied. Under sustained writes that never happens
/// by itself: commits keep arriving while a checkpoint runs, so the log
/// would grow by every write until the load stops. So when a checkpoint
/// leaves a long log, a second one copies what came in during the first,
/// and the writer is asked to copy the little left itself at its next gap
/// between two transactions ([`Checkpoints::catch_up`]); its next commit
/// starts the log over. (A reader that keeps a transaction open, such as
/// another process's backup, still stops the log from starting over:
/// SQLite's rule.)
fn checkpoint_loop(
    connection: Connection,
    woken: std_mpsc::Receiver<()>,
    interval: Duration,
    catch_up_wanted: &AtomicBool,
) {
    let mut frames_before = None;
    // A commit since the last pass, or frames it could not copy.
    let mut pending = false;
    let mut rest_until = Instant::now();
    loop {
        // The rest, noting commits; the end as soon as the writer is gone
        // (the last connection to close copies what is left).
        while let Some(left) = rest_until.checked_duration_since(Instant::now()) {
            match woken.recv_timeout(left) {
                Ok(()) => pending = true,
                Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        if !pending && woken.recv().is_err() {
            return;
        }
        let mut last = checkpoint(&connection);
        let frames = last.map(|pass| pass.log);
        let grown = frames.is_some_and(|n| n > RESTART_FRAMES) && frames != frames_before;
        if grown {
            last = checkpoint(&connection);
            if last.is_some() {
                catch_up_wanted.store(true, Ordering::Relaxed);
            }
        }
        pending = last.is_none_or(|pass| !pass.complete());
        frames_before = frames;
        let now = Instant::now();
        rest_until = super::saturating_add(interval, |after| now.checked_add(after));
    }
}

/// What a `PASSIVE` checkpoint reported.
#[derive(Clone, Copy)]
struct CheckpointPass {
    /// It could not take the checkpoint lock.
    busy: bool,
    /// Frames in the log.
    log: i64,
    /// Frames of the log now in the database.
    copied: i64,
}

impl CheckpointPass {
    fn complete(self) -> bool {
        !self.busy && self.copied >= self.log
    }
}

/// One `PASSIVE` checkpoint: copies what it can of the log into the
/// database without waiting for any lock.
fn checkpoint(connection: &Connection) -> Option<CheckpointPass> {
    connection
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok(CheckpointPass {
                busy: row.get::<_, i64>(0)? != 0,
                log: row.get(1)?,
                copied: row.get(2)?,
            })
        })
        .inspect_err(|error| {
            tracing::debug!(target: "tower_intercom::inbox", "inbox checkpoint failed: {error}");
        })
        .ok()
}

/// The writer's side of the checkpoints.
struct Checkpoints {
    /// Wakes the checkpointer (a full channel means it is already awake).
    wake: std_mpsc::SyncSender<()>,
    /// Set by the checkpointer when the log should start over.
    catch_up_wanted: Arc<AtomicBool>,
}

impl Checkpoints {
    /// After a commit: the checkpointer has something to copy.
    fn committed(&self) {
        let _ = self.wake.try_send(());
    }

    /// Called between two transactions: when the checkpointer asked,
    /// copies the frames committed since its last checkpoint (few), so
    /// that the next commit starts the log over.
    fn catch_up(&self, connection: &Connection) {
        if self.catch_up_wanted.swap(false, Ordering::Relaxed) {
            checkpoint(connection);
        }
    }
}

fn open_connection(
    path: &Path,
    busy_timeout: Duration,
    query_only: bool,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    connection.busy_timeout(busy_timeout).map_err(unavailable)?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::unavailable(format!(
            "the inbox needs a file in WAL mode; SQLite kept journal_mode={mode}"
        )));
    }
    connection
        .execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = 268435456;",
        )
        .map_err(unavailable)?;
    if query_only {
        connection
            .pragma_update(None, "query_only", true)
            .map_err(unavailable)?;
    }
    Ok(connection)
}

fn migrate(connection: &Connection) -> Result<(), StoreError> {
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(unavailable)?;
    let migrated = (|| {
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::unavailable(format!(
                "the inbox file has schema version {version}, newer than this version of \
                 tower-intercom knows ({SCHEMA_VERSION})"
            )));
        }
        if version == 1 {
            connection
                .execute_batch(MIGRATE_FROM_1)
                .map_err(unavailable)?;
        }
        connection.execute_batch(SCHEMA).map_err(unavailable)?;
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(unavailable)?;
        connection.execute_batch("COMMIT").map_err(unavailable)
    })();
    if migrated.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    migrated
}

fn unavailable(error: impl Into<crate::BoxError>) -> StoreError {
    StoreError::unavailable(error)
}

fn writer_gone() -> StoreError {
    StoreError::unavailable("the inbox writer thread has stopped")
}

/// Milliseconds since the Unix epoch (0 before it, saturated far after).
fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// A lease in milliseconds, at most ten years (so that `now + lease`
/// cannot overflow).
fn duration_millis(duration: Duration) -> i64 {
    const TEN_YEARS: i64 = 10 * 366 * 24 * 60 * 60 * 1000;
    i64::try_from(duration.as_millis()).map_or(TEN_YEARS, |ms| ms.min(TEN_YEARS))
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
        .unwrap_or(UNIX_EPOCH)
}

fn attempts(attempts: i64) -> u32 {
    u32::try_from(attempts).unwrap_or(u32::MAX)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement finds its rows through an index, never by walking
    /// the table or sorting what it found: the cost of a claim must not
    /// grow with the number of notifications waiting.
    #[test]
    fn every_statement_reads_through_an_index() {
        let dir = std::env::temp_dir().join(format!(
            "tower-intercom-plans-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let connection = open_connection(&dir.join("inbox.sqlite3"), Duration::ZERO, false)
            .expect("a connection");
        migrate(&connection).expect("the schema");
        let statements = [
            ("INSERT", INSERT),
            ("INSERT_BODY", INSERT_BODY),
            ("BODY", BODY),
            ("DELETE_BODY", DELETE_BODY),
            ("SWEEP_LAPSED", SWEEP_LAPSED),
            ("CLAIM", CLAIM),
            ("NEXT_DUE", NEXT_DUE),
            ("COMPLETE", COMPLETE),
            ("FAIL", FAIL),
            ("RELEASE", RELEASE),
            ("COUNTS", COUNTS),
            ("DEAD_PAGE", DEAD_PAGE),
            ("REQUEUE", REQUEUE),
            ("PRUNE", PRUNE),
        ];
        for (name, sql) in statements {
            let mut plan = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            // Parameters left unbound: the plan does not depend on them.
            let mut rows = plan.raw_query();
            let mut steps = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                steps.push(row.get::<_, String>(3).unwrap());
            }
            for step in &steps {
                let reads_table = step.contains("intercom_inbox")
                    && (step.starts_with("SCAN") || step.starts_with("SEARCH"));
                if reads_table {
                    let partial_scan = step.starts_with("SCAN")
                        && ["_ready", "_leased", "_done", "_dead"]
                            .iter()
                            .any(|index| step.contains(&format!("INDEX intercom_inbox{index}")));
                    assert!(
                        step.starts_with("SEARCH") && step.contains("USING") || partial_scan,
                        "{name} reads the table without an index: {steps:?}"
                    );
                    assert!(!step.contains("intercom_inbox_state"), "{name}: {steps:?}");
                }
                assert!(!step.contains("TEMP B-TREE"), "{name} sorts: {steps:?}");
            }
        }
        drop(connection);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file of the first schema (bodies in the main table, an index on
    /// state): opening it moves the bodies out and drops that index.
    #[test]
    fn a_version_1_file_is_migrated() {
        let dir = std::env::temp_dir().join(format!(
            "tower-intercom-migrate-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inbox.sqlite3");
        let connection = open_connection(&path, Duration::ZERO, false).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE intercom_inbox (
                   seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
                   body BLOB, received_at INTEGER NOT NULL,
                   state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
                   available_at INTEGER NOT NULL, lease_until INTEGER, lease_token INTEGER,
                   last_error TEXT, done_at INTEGER
                 ) STRICT;
                 CREATE INDEX intercom_inbox_ready  ON intercom_inbox(available_at, seq) WHERE state = 0;
                 CREATE INDEX intercom_inbox_leased ON intercom_inbox(lease_until) WHERE state = 1;
                 CREATE INDEX intercom_inbox_state  ON intercom_inbox(state);
                 CREATE INDEX intercom_inbox_done   ON intercom_inbox(done_at) WHERE state = 2;
                 CREATE INDEX intercom_inbox_dead   ON intercom_inbox(seq) WHERE state = 3;
                 INSERT INTO intercom_inbox (id, topic, body, received_at, available_at)
                   VALUES ('notif_pending', 'ping', X'7B7D', 1, 1);
                 INSERT INTO intercom_inbox (id, topic, body, received_at, available_at, state, done_at)
                   VALUES ('notif_done', 'ping', NULL, 1, 1, 2, 5);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        drop(connection);

        let store = SqliteStore::open(&path).expect("a version-1 file opens");
        drop(store);
        let connection = Connection::open(&path).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let state_index: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'intercom_inbox_state'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(state_index, 0);
        let moved: Vec<(String, Vec<u8>)> = connection
            .prepare("SELECT id, body FROM intercom_inbox JOIN intercom_inbox_body USING (seq)")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(moved, [("notif_pending".to_owned(), b"{}".to_vec())]);
        let ids: i64 = connection
            .query_row("SELECT count(*) FROM intercom_inbox", [], |row| row.get(0))
            .unwrap();
        assert_eq!(ids, 2, "the done id stays, for deduplication");
        drop(connection);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
