//! The writer thread: it owns the only writing connection and commits
//! every write waiting in one transaction.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Notify};

use super::{
    checkpoint::Checkpoints, millis, unavailable, writer_gone, InboxFuture, SqliteStore, Stats,
    StoreError,
};

impl SqliteStore {
    /// Queues `work` for the writer; fails at once when the channel is full
    /// (`try`), or waits for room.
    pub(super) fn write<T, F>(&self, work: F, skip_if_abandoned: bool, wait: bool) -> InboxFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_then_wake(work, skip_if_abandoned, wait, |_| false)
    }

    /// As [`write`](Self::write); once the transaction that ran `work` is
    /// committed, the writer wakes the idle workers of every inbox over
    /// this store's clones when `wakes` says the result made notifications
    /// claimable.
    pub(super) fn write_then_wake<T, F>(
        &self,
        work: F,
        skip_if_abandoned: bool,
        wait: bool,
        wakes: fn(&T) -> bool,
    ) -> InboxFuture<T>
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
            wakes,
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

    pub(super) fn read<T, F>(&self, work: F) -> InboxFuture<T>
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

/// One write, run by the writer thread inside a group transaction.
pub(super) trait Job: Send {
    /// The caller gave up and the write need not happen.
    fn abandoned(&self) -> bool;
    /// Runs the statements (inside the open transaction); why they failed.
    fn run(&mut self, connection: &Connection, now: i64) -> Result<(), String>;
    /// Once committed, what it wrote may be claimed (a notification
    /// stored, a dead one requeued): idle workers are woken.
    fn wakes(&self) -> bool;
    /// Answers the caller once the transaction is over: `failed` when it
    /// was not committed.
    fn finish(self: Box<Self>, failed: Option<&str>);
}

pub(super) struct Task<T, F> {
    work: Option<F>,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    skip_if_abandoned: bool,
    /// Whether its result, once committed, wakes idle workers.
    wakes: fn(&T) -> bool,
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

    fn wakes(&self) -> bool {
        self.result.as_ref().is_some_and(self.wakes)
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
/// transaction, commits (one sync), wakes the idle workers of every inbox
/// over the store's clones when a write made notifications claimable, then
/// answers them.
pub(super) fn write_loop(
    connection: Connection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    stats: &Stats,
    checkpoints: Checkpoints,
    wake: &Notify,
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
            // Committed: the workers of every inbox over this store (not
            // only the receiver's) may claim them. Duplicates wake nobody.
            if batch.iter().any(|job| job.wakes()) {
                wake.notify_waiters();
            }
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
