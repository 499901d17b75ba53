//! The checkpointer thread: it copies the write-ahead log into the
//! database after commits, so that the log starts over.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc as std_mpsc, Arc,
    },
    time::{Duration, Instant},
};

use rusqlite::Connection;

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
pub(super) fn checkpoint_loop(
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
        rest_until = crate::inbox::saturating_add(interval, |after| now.checked_add(after));
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
pub(super) struct Checkpoints {
    /// Wakes the checkpointer (a full channel means it is already awake).
    pub(super) wake: std_mpsc::SyncSender<()>,
    /// Set by the checkpointer when the log should start over.
    pub(super) catch_up_wanted: Arc<AtomicBool>,
}

impl Checkpoints {
    /// After a commit: the checkpointer has something to copy.
    pub(super) fn committed(&self) {
        let _ = self.wake.try_send(());
    }

    /// Called between two transactions: when the checkpointer asked,
    /// copies the frames committed since its last checkpoint (few), so
    /// that the next commit starts the log over.
    pub(super) fn catch_up(&self, connection: &Connection) {
        if self.catch_up_wanted.swap(false, Ordering::Relaxed) {
            checkpoint(connection);
        }
    }
}
