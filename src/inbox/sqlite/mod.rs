//! The embedded store: one SQLite file, written by one thread that commits
//! in groups.

mod checkpoint;
mod options;
mod queries;
mod schema;
mod writer;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc as std_mpsc, Arc, Mutex,
    },
    thread,
    time::SystemTime,
};

use bytes::Bytes;
use rusqlite::{named_params, Connection, OptionalExtension};
use tokio::sync::{mpsc, Notify};

use self::{
    checkpoint::{checkpoint_loop, Checkpoints},
    queries::*,
    schema::{migrate, open_connection},
    writer::{write_loop, Job},
};
use super::{
    store_helpers::{duration_millis, millis, time, truncate, MAX_ERROR_LEN},
    ClaimRequest, Claimed, Counts, DeadNotification, DeadPage, DeadQuery, Failure, Inbox,
    InboxFuture, InboxStore, Inserted, Lease, LeaseToken, NewNotification, ReceivedNotification,
    StoreError,
};

pub use self::options::{
    SqliteOptions, DEFAULT_BUSY_TIMEOUT, DEFAULT_CHANNEL_CAPACITY, DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_MAX_BATCH, MAX_BUSY_TIMEOUT, MAX_CHANNEL_CAPACITY,
};

/// An [`Inbox`] over one SQLite file: `Inbox::new(SqliteStore::open(path)?)`.
///
/// # Example
///
/// ```
/// use tower_intercom::inbox::{Inbox, SqliteInbox, SqliteStore};
///
/// # fn main() -> Result<(), tower_intercom::StoreError> {
/// let dir = std::env::temp_dir().join(format!("tower-intercom-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let inbox: SqliteInbox = Inbox::new(SqliteStore::open(dir.join("inbox.sqlite3"))?)
///     .deadline(std::time::Duration::from_millis(500));
/// # drop(inbox);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub type SqliteInbox = Inbox<SqliteStore>;

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
///
/// Opened by [`SqliteStore::open`] with the default settings, or by
/// [`SqliteStore::options`] then [`SqliteOptions::open`] with others; the
/// [`Inbox`] made over it with [`Inbox::new`] has the inbox's own
/// settings.
///
/// Clones share the writer, the reading connection and the wake-ups: an
/// insert that stored a notification, or a requeue, wakes the idle workers
/// of every inbox made over the store or its clones (an inbox for the
/// receiver and another for the workers wake each other); workers over
/// another store opened on the same file, in this process or another,
/// find them at their next poll
/// ([`Worker::poll_interval`](super::Worker::poll_interval)). The writer
/// thread ends once the store and all its clones are gone.
#[derive(Clone)]
pub struct SqliteStore {
    writes: mpsc::Sender<Box<dyn Job>>,
    reader: Arc<Mutex<Connection>>,
    stats: Arc<Stats>,
    /// Woken by the writer after a commit that stored or requeued
    /// notifications: the idle workers of every inbox over this store's
    /// clones wait on it.
    wake: Arc<Notify>,
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

/// Rows deleted per prune call.
const PRUNE_CHUNK: i64 = 1000;

impl SqliteStore {
    /// Opens (or creates) the store in the SQLite file at `path`, with the
    /// default settings: `SqliteStore::options().open(path)`.
    ///
    /// # Errors
    ///
    /// As [`SqliteOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteOptions::default().open(path)
    }

    /// The store's settings, at their defaults, to change before
    /// [`SqliteOptions::open`].
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }

    pub(super) fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self, StoreError> {
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
        let wake = Arc::new(Notify::new());
        let writer_wake = wake.clone();
        // The writer wakes the checkpointer after its commits; the
        // checkpointer ends with the writer, which ends once the store is
        // gone and what was queued is written.
        let (checkpoint, woken) = std_mpsc::sync_channel::<()>(1);
        let checkpoints = Checkpoints {
            wake: checkpoint,
            catch_up_wanted: catch_up_wanted.clone(),
        };
        thread::Builder::new()
            .name("intercom-inbox-writer".into())
            .spawn(move || {
                write_loop(
                    writer,
                    queue,
                    max_batch,
                    &writer_stats,
                    checkpoints,
                    &writer_wake,
                );
            })
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
            wake,
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
        self.write_then_wake(work, true, false, |inserted| *inserted == Inserted::Stored)
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
                                time(row.get::<_, i64>(3)?.try_into().unwrap_or(0)),
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
                Ok(Claimed::new(
                    leases,
                    next_due.map(|ms: i64| time(ms.try_into().unwrap_or(0))),
                ))
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
            // One partial index per state: each count reads only its own,
            // and the earliest due time is the pending index's first entry.
            let (counts, earliest_due) =
                connection.prepare_cached(COUNTS)?.query_row([], |row| {
                    let counts = [row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?, row.get(3)?];
                    Ok((counts, row.get::<_, Option<i64>>(4)?))
                })?;
            let [pending, in_progress, done, dead] = counts.map(|n| u64::try_from(n).unwrap_or(0));
            // A due time still ahead is a retry waiting out its backoff:
            // nothing is due yet.
            let now = millis(SystemTime::now());
            let oldest_pending = earliest_due
                .filter(|&due| due <= now)
                .map(|due| time(due.try_into().unwrap_or(0)));
            Ok(Counts::new(pending, in_progress, done, dead).with_oldest_pending(oldest_pending))
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
                            time(row.get::<_, i64>(4)?.try_into().unwrap_or(0)),
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
        self.write_then_wake(
            move |connection: &Connection, now: i64| {
                let changed = connection
                    .prepare_cached(REQUEUE)?
                    .execute(named_params! { ":now": now, ":id": &*id })?;
                Ok(changed == 1)
            },
            false,
            true,
            |requeued| *requeued,
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

    fn wakeups(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }
}

fn unavailable(error: impl Into<crate::box_error::BoxError>) -> StoreError {
    StoreError::unavailable(error)
}

fn writer_gone() -> StoreError {
    StoreError::unavailable("the inbox writer thread has stopped")
}

fn attempts(attempts: i64) -> u32 {
    u32::try_from(attempts).unwrap_or(u32::MAX)
}
