//! Inserts and completions sent in batches: one script call carries every
//! write of one kind that arrived while the previous calls ran.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use redis::{aio::ConnectionManager, Value};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::redis_connection::{within, Connection};

use super::{
    keys::{Keys, BODIES},
    reply::{int, list, malformed},
    scripts::{COMPLETE, INSERT},
    RedisStore, StoreError,
};

/// The tasks that send inserts and completions in batches.
#[derive(Default)]
pub(super) struct Batchers {
    pub(super) inserts: Batcher<Insert>,
    pub(super) completions: Batcher<Completion>,
}

/// One write waiting for its script call, among others of its kind that
/// share the call: each item adds its arguments, and the script answers
/// one integer per item (`1` done, `0` not: a duplicate, or a lease lost).
pub(super) trait Batched: Send + Sync + 'static {
    /// The most items one call carries.
    const MAX_ITEMS: usize;
    /// Whether an item done (`1`) may be claimed: once its batch is
    /// written, idle workers are woken.
    const WAKES: bool;
    /// The bytes this item adds to the call.
    fn size(&self) -> usize;
    /// Writes `batch`: the script's answer, one integer per item.
    fn send(batch: &[Self], connection: ConnectionManager, keys: &Keys) -> Sending
    where
        Self: Sized;
    /// Whether its caller stopped waiting for the answer.
    fn abandoned(&self) -> bool;
    /// Answers the caller.
    fn answer(self, result: Result<bool, StoreError>);
}

/// The most bytes of notifications one insert script carries (a larger
/// notification goes alone): one large body must not hold up many small
/// ones, nor the connection the workers share.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Script calls of one kind sent at once; each carries the items that
/// arrived while the others ran.
const BATCHES_IN_FLIGHT: usize = 4;

/// A batch being written.
type Sending =
    std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<Value>> + Send>>;

/// One notification waiting to be stored.
pub(super) struct Insert {
    pub(super) id: Box<str>,
    /// `received_at:topic_len:topic`.
    pub(super) meta: Vec<u8>,
    pub(super) body: Bytes,
    /// `true`: stored; `false`: a duplicate.
    pub(super) reply: oneshot::Sender<Result<bool, StoreError>>,
    /// Its place among the `max_in_flight`, held until it is answered.
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Batched for Insert {
    const MAX_ITEMS: usize = 128;
    const WAKES: bool = true;
    fn size(&self) -> usize {
        self.id.len() + self.meta.len() + self.body.len()
    }
    /// One transaction: the bodies with plain `HSETNX` (Redis copies them
    /// once, Lua never sees them), then the insert script with `EVAL`
    /// (never `NOSCRIPT` half-way through the transaction).
    fn send(batch: &[Self], mut connection: ConnectionManager, keys: &Keys) -> Sending {
        let mut transaction = redis::pipe();
        transaction.atomic();
        for insert in batch {
            transaction
                .cmd("HSETNX")
                .arg(&keys.all[BODIES])
                .arg(insert.id.as_bytes())
                .arg(&insert.body[..])
                .ignore();
        }
        let script = transaction.cmd("EVAL").arg(INSERT).arg(keys.all.len());
        for key in &keys.all {
            script.arg(key);
        }
        for insert in batch {
            script.arg(insert.id.as_bytes()).arg(&insert.meta[..]);
        }
        Box::pin(async move {
            let (results,): (Value,) = transaction.query_async(&mut connection).await?;
            Ok(results)
        })
    }
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
    fn answer(self, result: Result<bool, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// One completion waiting to be written.
pub(super) struct Completion {
    pub(super) id: Box<str>,
    pub(super) token: Vec<u8>,
    /// `true`: marked done; `false`: the lease was lost.
    pub(super) reply: oneshot::Sender<Result<bool, StoreError>>,
}

impl Batched for Completion {
    // Small items: a call of 256 is still short.
    const MAX_ITEMS: usize = 256;
    const WAKES: bool = false;
    fn size(&self) -> usize {
        self.id.len() + self.token.len()
    }
    fn send(batch: &[Self], mut connection: ConnectionManager, keys: &Keys) -> Sending {
        let mut invocation = COMPLETE.prepare_invoke();
        for key in &keys.all {
            invocation.key(key);
        }
        for completion in batch {
            invocation
                .arg(completion.id.as_bytes())
                .arg(&completion.token[..]);
        }
        Box::pin(async move { invocation.invoke_async::<Value>(&mut connection).await })
    }
    // A completion is written even when its worker stopped waiting (it
    // timed out): the handler succeeded, and the lease's token fences it.
    fn abandoned(&self) -> bool {
        false
    }
    fn answer(self, result: Result<bool, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// Sends writes of one kind in batches: one script call writes every item
/// that arrived while the previous calls ran, as the SQLite store groups
/// writes into one commit. A batch is one script, so one atomic step; each
/// item in it is checked on its own, in order.
///
/// The task that sends them starts with the first item, in the runtime
/// the store was made in (the connection's), or else the one polling the
/// write; it ends when the store and its clones are dropped, and starts
/// again if its runtime ended.
pub(super) struct Batcher<B> {
    queue: Mutex<Option<mpsc::UnboundedSender<B>>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl<B> Default for Batcher<B> {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

impl<B: Batched> Batcher<B> {
    /// Queues `item` for the task, and waits for its answer (at most the
    /// store's timeout). The queue is bounded by its callers: inserts by
    /// the store's `inserts` semaphore, completions by the workers'
    /// concurrency.
    pub(super) async fn write(
        &self,
        item: B,
        answer: oneshot::Receiver<Result<bool, StoreError>>,
        store: &RedisStore,
    ) -> Result<bool, StoreError> {
        self.queue(item, store)?;
        match tokio::time::timeout(store.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::unavailable(
                "the inbox's Redis write task stopped",
            )),
            Err(_) => Err(StoreError::timed_out(store.timeout)),
        }
    }

    fn queue(&self, item: B, store: &RedisStore) -> Result<(), StoreError> {
        // Nothing panics while the lock is held; a poisoned lock is used.
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let item = match queue.as_ref() {
            Some(sender) => match sender.send(item) {
                Ok(()) => return Ok(()),
                // The task's runtime ended: a new task.
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        // The store's runtime, unless it is a current-thread runtime that
        // is not the one polling (its tasks run only while it is driven);
        // then, or when it has ended, the caller's.
        let current = tokio::runtime::Handle::try_current().ok();
        let own = self.runtime.clone().filter(|own| {
            own.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread
                || current
                    .as_ref()
                    .is_some_and(|current| current.id() == own.id())
        });
        let mut item = item;
        for runtime in own.into_iter().chain(current) {
            let (sender, receiver) = mpsc::unbounded_channel();
            runtime.spawn(send_batches(
                receiver,
                store.connection.clone(),
                store.keys.clone(),
                store.timeout,
                store.wake.clone(),
            ));
            match sender.send(item) {
                Ok(()) => {
                    *queue = Some(sender);
                    return Ok(());
                }
                // That runtime has ended.
                Err(mpsc::error::SendError(back)) => item = back,
            }
        }
        drop(item);
        Err(StoreError::unavailable(
            "the inbox's Redis store needs a running Tokio runtime",
        ))
    }
}

/// The write task: as soon as one of the [`BATCHES_IN_FLIGHT`] is free,
/// takes every item waiting (up to `MAX_ITEMS` and [`MAX_BATCH_BYTES`])
/// and writes them with one script call. Once inserts stored
/// notifications, it wakes `wake`, which the idle workers of every inbox
/// over the store's clones wait on.
async fn send_batches<B: Batched>(
    mut queue: mpsc::UnboundedReceiver<B>,
    connection: Connection,
    keys: Arc<Keys>,
    timeout: Duration,
    wake: Arc<Notify>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
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
        while batch.len() < B::MAX_ITEMS && bytes < MAX_BATCH_BYTES {
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
        // An insert whose caller already gave up (and answered 503) is not
        // written: the answer said "not stored", and Intercom's retry will
        // store it.
        batch.retain(|item| !item.abandoned());
        if batch.is_empty() {
            continue;
        }
        let (connection, keys, wake) = (connection.clone(), keys.clone(), wake.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match write_batch(&batch, connection, &keys, timeout).await {
                Ok(results) => {
                    // Written: the workers of every inbox over this store
                    // (not only the receiver's) may claim them. Duplicates
                    // wake nobody.
                    if B::WAKES && results.contains(&true) {
                        wake.notify_waiters();
                    }
                    for (item, done) in batch.into_iter().zip(results) {
                        item.answer(Ok(done));
                    }
                }
                Err(failure) => {
                    for item in batch {
                        item.answer(Err(failure.error()));
                    }
                }
            }
        });
    }
}

/// Why a batch was not written, for each of its items.
enum BatchFailure {
    TimedOut(Duration),
    Unavailable(Arc<redis::RedisError>),
    Malformed,
}

impl BatchFailure {
    fn error(&self) -> StoreError {
        match self {
            Self::TimedOut(timeout) => StoreError::timed_out(*timeout),
            Self::Unavailable(error) => StoreError::unavailable(error.clone()),
            Self::Malformed => malformed(),
        }
    }
}

/// Runs the batch's script: each item's answer.
async fn write_batch<B: Batched>(
    batch: &[B],
    connection: Connection,
    keys: &Keys,
    timeout: Duration,
) -> Result<Vec<bool>, BatchFailure> {
    let writing = within(&connection, timeout, |connection| {
        B::send(batch, connection, keys)
    });
    let value = match writing.await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => return Err(BatchFailure::Unavailable(Arc::new(error))),
        Err(_) => return Err(BatchFailure::TimedOut(timeout)),
    };
    let results = list(value).map_err(|_| BatchFailure::Malformed)?;
    if results.len() != batch.len() {
        return Err(BatchFailure::Malformed);
    }
    results
        .iter()
        .map(|result| int(result).map(|done| done == 1))
        .collect::<Result<_, _>>()
        .map_err(|_| BatchFailure::Malformed)
}
