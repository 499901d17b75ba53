//! Group commit: tasks that write the inserts, and the completions,
//! waiting, many at a time, each kind with one statement (one transaction,
//! one sync of the write-ahead log), and answer each caller.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use super::{errors::store_error, pooled, Inserted, StoreError, StoreErrorKind};
use crate::inbox::store_helpers;

/// The most bytes of notifications one statement carries (a larger
/// notification goes alone): one large body must not hold up many small
/// ones, and a statement's arrays stay far below Postgres's 1 GB limit.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Batches of one kind written at once, at most; each carries what
/// arrived while the others were being written.
const BATCHES_IN_FLIGHT: usize = 4;

/// How the inserts have been grouped so far.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) batches: AtomicU64,
    pub(super) inserts: AtomicU64,
    pub(super) largest: AtomicU64,
}

/// What the write tasks need.
pub(super) struct Writer {
    pub(super) pool: Pool,
    pub(super) insert_sql: Arc<str>,
    pub(super) complete_sql: Arc<str>,
    pub(super) channel: Arc<str>,
    /// This store's payload in its notifications.
    pub(super) origin: Arc<str>,
    pub(super) timeout: Duration,
    pub(super) max_batch: usize,
    pub(super) stats: Arc<Stats>,
    /// Woken once inserts stored notifications: the idle workers of every
    /// inbox over this store's clones wait on it.
    pub(super) wake: Arc<Notify>,
}

/// A batch being written: the answer of each item, or why none was.
type Writing<'a, A> = Pin<Box<dyn Future<Output = Result<Vec<A>, Failure>> + Send + 'a>>;

/// One write waiting for its statement, among others of its kind.
pub(super) trait Batched: Sized + Send + 'static {
    type Answer: Send + 'static;
    /// The bytes this item adds to the statement.
    fn size(&self) -> usize;
    /// Whether its caller stopped waiting, and it need not be written.
    fn abandoned(&self) -> bool;
    /// Writes `batch` with one statement: one answer per item, in order.
    fn write<'a>(batch: &'a [Self], writer: &'a Writer) -> Writing<'a, Self::Answer>;
    /// Answers the caller.
    fn answer(self, result: Result<Self::Answer, StoreError>);
}

/// The task: as soon as one of the batches in flight is free, takes every
/// item waiting (up to `max_batch` and [`MAX_BATCH_BYTES`]) and writes
/// them with one statement. Ends when the store is gone (the channel
/// closed) and what was queued is written.
pub(super) async fn write_loop<B: Batched>(mut queue: mpsc::Receiver<B>, writer: Arc<Writer>) {
    let slots = Arc::new(Semaphore::new(
        BATCHES_IN_FLIGHT.min(writer.pool.status().max_size.max(1)),
    ));
    // The item that did not fit in the previous batch.
    let mut carried: Option<B> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(item) => item,
            None => match queue.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let mut bytes = first.size();
        let mut batch = vec![first];
        while batch.len() < writer.max_batch && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(item) if bytes + item.size() > MAX_BATCH_BYTES => {
                    carried = Some(item);
                    break;
                }
                Ok(item) => {
                    bytes += item.size();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        batch.retain(|item| !item.abandoned());
        if batch.is_empty() {
            continue;
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let written = tokio::time::timeout(writer.timeout, B::write(&batch, &writer))
                .await
                .unwrap_or_else(|_| Err(Failure::TimedOut(writer.timeout)));
            match written {
                Ok(answers) => {
                    for (item, answer) in batch.into_iter().zip(answers) {
                        item.answer(Ok(answer));
                    }
                }
                Err(failure) => {
                    if let Failure::Unavailable(reason) = &failure {
                        tracing::debug!(target: "tower_intercom::inbox", "an inbox write failed: {reason}");
                    }
                    for item in batch {
                        item.answer(Err(failure.error()));
                    }
                }
            }
        });
    }
}

/// One notification waiting to be stored.
pub(super) struct Insert {
    pub(super) id: Box<str>,
    pub(super) topic: Box<str>,
    pub(super) body: Bytes,
    pub(super) received_at: SystemTime,
    pub(super) reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

impl Batched for Insert {
    type Answer = Inserted;

    fn size(&self) -> usize {
        self.id.len() + self.topic.len() + self.body.len()
    }

    /// An insert whose caller already gave up (and answered 503) is not
    /// written: the answer said "not stored", and Intercom's retry will
    /// store it.
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn write<'a>(batch: &'a [Self], writer: &'a Writer) -> Writing<'a, Inserted> {
        Box::pin(async move {
            let stats = &writer.stats;
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats
                .inserts
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            stats
                .largest
                .fetch_max(batch.len() as u64, Ordering::Relaxed);
            // The same id twice in one batch (a redelivery racing the
            // first delivery): the first is written, the others are its
            // duplicates.
            let unique = first_of_each(batch.iter().map(|insert| (&*insert.id, 0)));
            let ids: Vec<&[u8]> = unique.iter().map(|&i| batch[i].id.as_bytes()).collect();
            let topics: Vec<&[u8]> = unique.iter().map(|&i| batch[i].topic.as_bytes()).collect();
            let received: Vec<SystemTime> = unique
                .iter()
                .map(|&i| storable_time(batch[i].received_at))
                .collect();
            let bodies: Vec<&[u8]> = unique.iter().map(|&i| &batch[i].body[..]).collect();
            let rows = writer
                .query(
                    &writer.insert_sql,
                    &[
                        &ids,
                        &topics,
                        &received,
                        &bodies,
                        &&*writer.channel,
                        &&*writer.origin,
                    ],
                )
                .await?;
            let stored = rows
                .iter()
                .map(|row| row.try_get::<_, Vec<u8>>(0).map(|id| (id, 0)))
                .collect::<Result<HashSet<_>, _>>()
                .map_err(|error| writer.failure(&store_error(&error, writer.timeout)))?;
            // Committed: the workers of every inbox over this store (not
            // only the receiver's) may claim them. Duplicates wake nobody.
            if !stored.is_empty() {
                writer.wake.notify_waiters();
            }
            let answers = answers(batch.iter().map(|insert| (&*insert.id, 0)), &stored);
            Ok(answers
                .into_iter()
                .map(|stored| {
                    if stored {
                        Inserted::Stored
                    } else {
                        Inserted::Duplicate
                    }
                })
                .collect())
        })
    }

    fn answer(self, result: Result<Inserted, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// One completion waiting to be written.
pub(super) struct Completion {
    pub(super) id: Box<str>,
    pub(super) token: i64,
    /// `true`: marked done; `false`: the lease was lost.
    pub(super) reply: oneshot::Sender<Result<bool, StoreError>>,
}

impl Batched for Completion {
    type Answer = bool;

    fn size(&self) -> usize {
        self.id.len() + 8
    }

    /// A completion is written even when its worker stopped waiting (it
    /// timed out): the handler succeeded, and the token fences it.
    fn abandoned(&self) -> bool {
        false
    }

    fn write<'a>(batch: &'a [Self], writer: &'a Writer) -> Writing<'a, bool> {
        Box::pin(async move {
            // The statement locks the rows in one order (seq), the same in
            // every batch: two batches never wait for each other.
            let unique = first_of_each(batch.iter().map(|c| (&*c.id, c.token)));
            let ids: Vec<&[u8]> = unique.iter().map(|&i| batch[i].id.as_bytes()).collect();
            let tokens: Vec<i64> = unique.iter().map(|&i| batch[i].token).collect();
            let rows = writer.query(&writer.complete_sql, &[&ids, &tokens]).await?;
            let done = rows
                .iter()
                .map(|row| Ok((row.try_get::<_, Vec<u8>>(0)?, row.try_get::<_, i64>(1)?)))
                .collect::<Result<HashSet<_>, tokio_postgres::Error>>()
                .map_err(|error| writer.failure(&store_error(&error, writer.timeout)))?;
            Ok(answers(batch.iter().map(|c| (&*c.id, c.token)), &done))
        })
    }

    fn answer(self, result: Result<bool, StoreError>) {
        let _ = self.reply.send(result);
    }
}

impl Writer {
    /// Runs `sql` on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, Failure> {
        // The write tasks run on the store's runtime.
        let client = pooled(&self.pool, self.timeout, &tokio::runtime::Handle::current())
            .await
            .map_err(|error| self.failure(&error))?;
        let failed =
            |error: tokio_postgres::Error| self.failure(&store_error(&error, self.timeout));
        let statement = client.prepare_cached(sql).await.map_err(failed)?;
        client.query(&statement, params).await.map_err(failed)
    }

    fn failure(&self, error: &StoreError) -> Failure {
        match error.kind() {
            StoreErrorKind::TimedOut => Failure::TimedOut(self.timeout),
            _ => Failure::Unavailable(
                std::error::Error::source(error)
                    .map_or_else(|| error.to_string(), ToString::to_string)
                    .into(),
            ),
        }
    }
}

/// The index of the first item of each distinct key, in order.
fn first_of_each<'a>(keys: impl Iterator<Item = (&'a str, i64)>) -> Vec<usize> {
    let mut seen = HashSet::new();
    keys.enumerate()
        .filter(|(_, key)| seen.insert(*key))
        .map(|(i, _)| i)
        .collect()
}

/// For each item, whether the statement wrote it: its key is among those
/// written, and it is the first item with that key (a later one with the
/// same key was a duplicate of the first).
fn answers<'a>(
    keys: impl Iterator<Item = (&'a str, i64)>,
    written: &HashSet<(Vec<u8>, i64)>,
) -> Vec<bool> {
    let mut answered: HashSet<(&str, i64)> = HashSet::new();
    keys.map(|(id, token)| {
        written.contains(&(id.as_bytes().to_vec(), token)) && answered.insert((id, token))
    })
    .collect()
}

/// The last millisecond of the year 9999, the latest `received_at` kept.
const LATEST_MILLIS: i64 = 253_402_300_799_999;

/// `time` as the store keeps it: to the millisecond (as the other stores),
/// and between the Unix epoch and the end of the year 9999 (a time
/// outside is taken as the nearest), so that a time no `timestamptz`
/// holds cannot fail the statement of every insert sent with it.
fn storable_time(time: SystemTime) -> SystemTime {
    store_helpers::time(store_helpers::millis(time).clamp(0, LATEST_MILLIS) as u64)
}

/// Why a batch was not written, for each of its items.
pub(super) enum Failure {
    TimedOut(Duration),
    Unavailable(Arc<str>),
}

impl Failure {
    fn error(&self) -> StoreError {
        match self {
            Self::TimedOut(timeout) => StoreError::timed_out(*timeout),
            Self::Unavailable(reason) => StoreError::unavailable(reason.to_string()),
        }
    }
}
