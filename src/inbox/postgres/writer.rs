//! Group commit: the task that writes the inserts waiting, many at a time,
//! with one multi-row `INSERT … ON CONFLICT DO NOTHING` (one transaction,
//! one sync of the write-ahead log), and answers each caller.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{errors::store_error, pooled, Inserted, StoreError, StoreErrorKind};
use crate::inbox::store_helpers;

/// One notification waiting to be stored.
pub(super) struct Insert {
    pub(super) id: Box<str>,
    pub(super) topic: Box<str>,
    pub(super) body: Bytes,
    pub(super) received_at: SystemTime,
    pub(super) reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

impl Insert {
    fn size(&self) -> usize {
        self.id.len() + self.topic.len() + self.body.len()
    }
}

/// The most bytes of notifications one statement carries (a larger
/// notification goes alone): one large body must not hold up many small
/// ones, and a statement's arrays stay far below Postgres's 1 GB limit.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Batches written at once, at most; each carries the inserts that arrived
/// while the others were being written.
const BATCHES_IN_FLIGHT: usize = 4;

/// How the inserts have been grouped so far.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) batches: AtomicU64,
    pub(super) inserts: AtomicU64,
    pub(super) largest: AtomicU64,
}

/// What the task needs to write.
pub(super) struct Writer {
    pub(super) pool: Pool,
    pub(super) sql: Arc<str>,
    pub(super) channel: Arc<str>,
    /// This store's payload in its notifications.
    pub(super) origin: Arc<str>,
    pub(super) timeout: Duration,
    pub(super) max_batch: usize,
    pub(super) stats: Arc<Stats>,
}

/// The task: as soon as one of the batches in flight is free, takes every
/// insert waiting (up to `max_batch` and [`MAX_BATCH_BYTES`]) and writes
/// them in one statement. Ends when the store is gone (the channel closed)
/// and what was queued is written.
pub(super) async fn write_loop(mut queue: mpsc::Receiver<Insert>, writer: Writer) {
    let writer = Arc::new(writer);
    let slots = Arc::new(Semaphore::new(
        BATCHES_IN_FLIGHT.min(writer.pool.status().max_size.max(1)),
    ));
    // The insert that did not fit in the previous batch.
    let mut carried: Option<Insert> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(insert) => insert,
            None => match queue.recv().await {
                Some(insert) => insert,
                None => return,
            },
        };
        let mut bytes = first.size();
        let mut batch = vec![first];
        while batch.len() < writer.max_batch && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(insert) if bytes + insert.size() > MAX_BATCH_BYTES => {
                    carried = Some(insert);
                    break;
                }
                Ok(insert) => {
                    bytes += insert.size();
                    batch.push(insert);
                }
                Err(_) => break,
            }
        }
        // An insert whose caller already gave up (and answered 503) is not
        // written: the answer said "not stored", and Intercom's retry will
        // store it.
        batch.retain(|insert| !insert.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            writer.write(batch).await;
        });
    }
}

impl Writer {
    /// Writes `batch` in one statement and answers each insert.
    async fn write(&self, batch: Vec<Insert>) {
        let stats = &self.stats;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .inserts
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .largest
            .fetch_max(batch.len() as u64, Ordering::Relaxed);
        // The same id twice in one batch (a redelivery racing the first
        // delivery): the first is written, the others are its duplicates.
        let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        let unique: Vec<usize> = (0..batch.len())
            .filter(|&i| first_of.insert(&batch[i].id, i).is_none())
            .collect();
        let result = tokio::time::timeout(self.timeout, self.insert(&batch, &unique))
            .await
            .unwrap_or_else(|_| Err(Failure::TimedOut(self.timeout)));
        let stored: HashSet<Vec<u8>> = match result {
            Ok(stored) => stored,
            Err(failure) => {
                if let Failure::Unavailable(reason) = &failure {
                    tracing::debug!(target: "tower_intercom::inbox", "inbox insert failed: {reason}");
                }
                for insert in batch {
                    let _ = insert.reply.send(Err(failure.error()));
                }
                return;
            }
        };
        let mut written: HashSet<&str> = HashSet::with_capacity(unique.len());
        let answers: Vec<Inserted> = batch
            .iter()
            .map(|insert| {
                if stored.contains(insert.id.as_bytes()) && written.insert(&insert.id) {
                    Inserted::Stored
                } else {
                    Inserted::Duplicate
                }
            })
            .collect();
        for (insert, answer) in batch.into_iter().zip(answers) {
            let _ = insert.reply.send(Ok(answer));
        }
    }

    /// The ids the statement stored.
    async fn insert(
        &self,
        batch: &[Insert],
        unique: &[usize],
    ) -> Result<HashSet<Vec<u8>>, Failure> {
        let client = pooled(&self.pool, self.timeout)
            .await
            .map_err(|error| Failure::new(&error, self.timeout))?;
        let failed = |error: tokio_postgres::Error| {
            Failure::new(&store_error(&error, self.timeout), self.timeout)
        };
        let statement = client.prepare_cached(&self.sql).await.map_err(failed)?;
        let ids: Vec<&[u8]> = unique.iter().map(|&i| batch[i].id.as_bytes()).collect();
        let topics: Vec<&[u8]> = unique.iter().map(|&i| batch[i].topic.as_bytes()).collect();
        let received: Vec<SystemTime> = unique
            .iter()
            .map(|&i| storable_time(batch[i].received_at))
            .collect();
        let bodies: Vec<&[u8]> = unique.iter().map(|&i| &batch[i].body[..]).collect();
        let rows = client
            .query(
                &statement,
                &[
                    &ids,
                    &topics,
                    &received,
                    &bodies,
                    &&*self.channel,
                    &&*self.origin,
                ],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| row.try_get::<_, Vec<u8>>(0))
            .collect::<Result<_, _>>()
            .map_err(failed)
    }
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

/// Why a batch was not written, for each of its inserts.
enum Failure {
    TimedOut(Duration),
    Unavailable(Arc<str>),
}

impl Failure {
    /// `error`, kept to be given to each insert of the batch.
    fn new(error: &StoreError, timeout: Duration) -> Self {
        match error.kind() {
            StoreErrorKind::TimedOut => Self::TimedOut(timeout),
            _ => Self::Unavailable(
                std::error::Error::source(error)
                    .map_or_else(|| error.to_string(), ToString::to_string)
                    .into(),
            ),
        }
    }

    fn error(&self) -> StoreError {
        match self {
            Self::TimedOut(timeout) => StoreError::timed_out(*timeout),
            Self::Unavailable(reason) => StoreError::unavailable(reason.to_string()),
        }
    }
}
