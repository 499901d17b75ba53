//! The PostgreSQL store: group commit, claims with `FOR UPDATE SKIP LOCKED`,
//! wake-ups with `LISTEN`/`NOTIFY`, a versioned schema. See
//! [`PostgresStore`].

mod durability;
mod errors;
mod listen;
mod options;
mod schema;
mod shared;
mod tls;
mod writer;

use std::{
    fmt,
    future::Future,
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime},
};

use tokio::sync::{mpsc, oneshot, Notify};

use self::{
    shared::{pooled, storable_error, Shared},
    writer::{Completion, Insert},
};
use super::{
    store_helpers::duration_millis, ClaimRequest, Claimed, Counts, DeadNotification, DeadPage,
    DeadQuery, Failure, Inbox, InboxFuture, InboxStore, Inserted, Lease, LeaseToken,
    NewNotification, ReceivedNotification, StoreError, StoreErrorKind,
};

pub use self::{
    durability::PostgresDurability,
    options::{
        PostgresOptions, DEFAULT_POSTGRES_CHANNEL_CAPACITY, DEFAULT_POSTGRES_MAX_BATCH,
        DEFAULT_POSTGRES_POOL_SIZE, DEFAULT_POSTGRES_SCHEMA, DEFAULT_POSTGRES_TIMEOUT,
        MAX_POSTGRES_CHANNEL_CAPACITY, MAX_POSTGRES_POOL_SIZE, MAX_POSTGRES_TIMEOUT,
    },
};

/// An [`Inbox`] over PostgreSQL. See [`PostgresStore`].
pub type PostgresInbox = Inbox<PostgresStore>;

/// An [`InboxStore`] in PostgreSQL (12 or newer; tested with 15), shared by
/// every receiver and worker that uses the same database and schema.
///
/// # Durability
///
/// The receiver answers 200 once the insert's commit returned, and the
/// store's connections run with `synchronous_commit = on` (sent when they
/// start, overriding the server's, the database's or the role's `off`):
/// Postgres has flushed the commit to its write-ahead log on disk before
/// it answers; completions, failures and releases wait for the same flush
/// (claims need not: see below). [`PostgresOptions::connect`] reads the
/// setting back, and `fsync`, and logs a `warn` when Postgres can lose
/// what it acknowledged; [`durability`](Self::durability) returns the same
/// finding. Replication to standbys is asynchronous unless
/// `synchronous_standby_names` says otherwise: a failover can lose
/// acknowledged commits.
///
/// # Layout
///
/// In the schema `S` ([`PostgresOptions::schema`], default
/// [`DEFAULT_POSTGRES_SCHEMA`]):
///
/// | table | holds |
/// |---|---|
/// | `S.inbox` | one small row per notification: `seq` (identity), `id` and `topic` (`bytea`: the exact UTF-8 bytes, NUL included, which `text` cannot hold; read them with `convert_from(id, 'UTF8')`), `id_key` (`sha256(id)`, generated, unique: the dedupe key, whatever the id's length), `received_at` (to the millisecond, between 1970 and the end of 9999: a time outside is taken as the nearest), `state` (0 pending, 1 in progress, 2 done, 3 dead), `attempts`, `available_at`, `lease_until`, `lease_token`, `last_error`, `done_at` |
/// | `S.inbox_body` | `seq` → the exact verified bytes, while the notification is not done (deleted with it: `ON DELETE CASCADE`) |
/// | `S.inbox_migrations` | the schema versions applied, and when |
///
/// Each state has a partial index (`inbox_ready` on `(available_at, seq)`
/// where pending, `inbox_leased` on `lease_until` where in progress,
/// `inbox_done` on `done_at` where done, `inbox_dead` on `seq` where
/// dead), and every statement reads through an index, so a claim costs
/// the same with a backlog of ten or of a million.
///
/// # Statements
///
/// - insert: one statement for every insert waiting (group commit, below):
///   `INSERT … SELECT … FROM unnest($ids, …) ON CONFLICT (id_key) DO
///   NOTHING RETURNING`, the bodies of the rows it returned, and
///   `pg_notify`: dedupe, storage and the wake-up are one transaction.
/// - claim: one statement. Up to 256 notifications are taken, each with
///   a new token and one more attempt: lapsed leases first (a crashed,
///   hung or too slow worker's attempt counts as failed; after the last
///   attempt the notification is dead instead), then due ones, oldest
///   first. Rows are locked with `FOR UPDATE SKIP LOCKED` (concurrent
///   claims never wait for each other nor lease the same row), and a
///   lapsed lease is read at its current version once locked, so a lease
///   just completed is never taken back. The same statement says when the
///   next one is due. Its commit does not wait for the write-ahead log's
///   flush (`synchronous_commit = off` for that transaction only): a claim
///   lost with the server leaves its notifications pending, to be claimed
///   again, and the token fences the worker that had them; each
///   completion's synced commit makes the claims before it durable too.
///   A claim whose caller stopped waiting (its timeout, a stopping worker)
///   before the answer came hands its leases back when the answer comes.
/// - complete, fail, release: `UPDATE … WHERE id_key = sha256($id) AND id
///   = $id AND state = 1 AND lease_token = $token` (the fence); complete
///   also deletes the body, and goes in batches as inserts do (below),
///   each completion fenced on its own, rows locked in `seq` order.
/// - prune: `DELETE` of at most 1000 done rows older than the retention
///   per call.
///
/// Times are Postgres's clock (`now()`): the machines' clocks need not
/// agree; a retry's time and the prune's cutoff are sent as durations.
///
/// # Group commit
///
/// Inserts (and, the same way, completions) go through a bounded channel
/// ([`channel_capacity`](PostgresOptions::channel_capacity); when it is
/// full the receiver answers 429 at once) to a task that takes every
/// insert waiting (up to [`max_batch`](PostgresOptions::max_batch) and
/// 4 MiB), writes them with one statement, in the order of their ids (so
/// that two receivers inserting the same ids never deadlock), and answers
/// each `Stored` or `Duplicate` once it committed. Up to 4 statements
/// are in flight; under load the batches grow by themselves while the
/// previous commits run. Completions wait for room in their channel rather
/// than fail: the workers bound how many there are.
///
/// # Wake-ups, and poolers
///
/// An insert that stored notifications, or a requeue, wakes the idle
/// workers of every inbox made over the store or its clones (an inbox for
/// the receiver and another for the workers wake each other); an insert
/// also notifies the channel
/// `S.inbox` in its transaction. A connection of the store's own, outside
/// the pool, `LISTEN`s on it and wakes them when another process stored
/// notifications; it reconnects by itself, and workers poll meanwhile
/// ([`Worker::poll_interval`](super::Worker::poll_interval)). When it
/// cannot connect or `LISTEN` again, a `warn` says so, with why, once
/// (not at every try), and an `info` when it listens again. A pooler in
/// transaction mode (PgBouncer's default) breaks `LISTEN`: turn it off
/// ([`PostgresOptions::listen`]), and workers find other processes'
/// notifications by polling. Such a pooler must also keep the store's
/// prepared statements (PgBouncer 1.21 or newer, with
/// `max_prepared_statements` set), and take or ignore its startup options
/// (see [`session_settings`](PostgresOptions::session_settings)). Every
/// operation is one statement, so one transaction: none spans two.
///
/// # Schema versions
///
/// The schema's version is the last row of `S.inbox_migrations`.
/// [`PostgresOptions::connect`] reads it; when the schema is missing or
/// older, it applies the missing migrations in one transaction holding a
/// `pg_advisory_xact_lock` for the schema, so receivers starting at once
/// migrate one after the other; a schema newer than this version of the
/// crate knows is refused. A role that may not create tables can use a
/// schema that another role created and keeps current; it needs `USAGE`
/// on the schema, `SELECT, INSERT, UPDATE, DELETE` on its tables and
/// `USAGE` on the `inbox` table's sequence.
///
/// # Connections
///
/// A pool of at most [`pool_size`](PostgresOptions::pool_size)
/// connections (deadpool-postgres), plus the listening one. Every
/// operation gives up after [`timeout`](PostgresOptions::timeout)
/// (default 1 s, under the receiver's 2 s deadline), and the connections'
/// `statement_timeout` is the same, so Postgres stops what nobody waits
/// for. A server that goes away makes operations fail (the receiver
/// answers 503) until it is back; the pool then connects again by itself.
/// TLS with `sslmode=require`, verified (rustls, the webpki roots and
/// [`root_certificates`](PostgresOptions::root_certificates)). Errors
/// never contain the URL or its password.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_intercom::inbox::{Inbox, PostgresStore};
///
/// # async fn run() -> Result<(), tower_intercom::StoreError> {
/// let store = PostgresStore::options()
///     .schema("my_app_inbox")
///     .timeout(Duration::from_millis(800))
///     .connect("postgres://inbox:secret@db.internal:5432/app?sslmode=require")
///     .await?;
/// if !store.durability().await.is_durable() {
///     // Also logged at `warn` by `connect`.
///     eprintln!("Postgres can lose notifications that were answered 200");
/// }
/// let inbox = Inbox::new(store);
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool holds the URL's credentials: not printed.
        let shared = &self.shared;
        f.debug_struct("PostgresStore")
            .field("schema", &shared.schema)
            .field("pool_size", &shared.pool.status().max_size)
            .field("max_batch", &shared.max_batch)
            .field("channel_capacity", &shared.channel_capacity)
            .field("timeout", &shared.timeout)
            .field("listen", &shared.stop_listening.is_some())
            .field("batches", &self.batches())
            .finish_non_exhaustive()
    }
}

/// How the store has grouped inserts into statements so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresBatches {
    /// Insert statements sent (or attempted).
    pub statements: u64,
    /// Inserts they carried.
    pub inserts: u64,
    /// The most inserts in one statement.
    pub largest: u64,
}

/// The most notifications one claim leases (a worker that asked for more
/// claims again at once), lapsed leases taken over included.
const MAX_CLAIM: usize = 256;

/// How long a claim's answer is still waited for after its caller gave up
/// (at most the lease), to hand its leases back.
const LATE_CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Done notifications deleted per prune call.
const PRUNE_CHUNK: i64 = 1000;

/// The largest page of dead notifications one call returns.
const MAX_PAGE: usize = 100_000;

impl PostgresStore {
    /// The schema.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// How inserts have been grouped into statements so far.
    pub fn batches(&self) -> PostgresBatches {
        let stats = &self.shared.stats;
        PostgresBatches {
            statements: stats.batches.load(Ordering::Relaxed),
            inserts: stats.inserts.load(Ordering::Relaxed),
            largest: stats.largest.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` within the timeout.
    fn bounded<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> InboxFuture<T> {
        let timeout = self.shared.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| Err(StoreError::timed_out(timeout)))
        })
    }
}

impl InboxStore for PostgresStore {
    fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted> {
        let (reply, answer) = oneshot::channel();
        let insert = Insert {
            id: notification.id,
            topic: notification.topic,
            body: notification.body,
            received_at: notification.received_at,
            reply,
        };
        // Refused at once when the channel is full: nothing queues
        // without bound.
        let queued = self
            .shared
            .writes
            .try_send(insert)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => StoreError::overloaded(),
                mpsc::error::TrySendError::Closed(_) => writer_gone(),
            });
        Box::pin(async move {
            queued?;
            // The writer answers within its timeout.
            answer.await.map_err(|_| writer_gone())?
        })
    }

    fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
        let shared = self.shared.clone();
        self.bounded(async move {
            let (answer, answered) = oneshot::channel();
            // In a task of its own: when the caller stops waiting (its
            // timeout, or the worker stopping) after Postgres leased the
            // rows but before the answer came, the task still gets the
            // answer, and hands the leases back, instead of leaving them
            // to lapse.
            let handing_back = shared.clone();
            let runtime = shared.runtime.clone();
            runtime.spawn(async move {
                // A late answer is waited for a while, never past the
                // lease (the rows are then taken again anyway): a claim
                // that hangs (no statement timeout, a dead connection)
                // does not keep its connection for a whole lease.
                let give_up = shared.timeout + request.lease.min(LATE_CLAIM_WAIT);
                let claimed = tokio::time::timeout(give_up, claim(&shared, &request))
                    .await
                    .unwrap_or_else(|_| Err(StoreError::timed_out(shared.timeout)));
                if let Err(Ok((seqs, claimed))) = answer.send(claimed) {
                    hand_back(&shared, &seqs, &claimed).await;
                }
            });
            let mut answered = PendingAnswer {
                answer: answered,
                shared: handing_back,
            };
            let (_, claimed) = (&mut answered.answer)
                .await
                .map_err(|_| StoreError::unavailable("the claim's task has stopped"))??;
            Ok(claimed)
        })
    }

    fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let (reply, answer) = oneshot::channel();
        let completion = Completion {
            id: id.into(),
            token: token.value() as i64,
            reply,
        };
        let completions = self.shared.completions.clone();
        // Written with the others waiting (group commit); the writer
        // answers within its timeout.
        self.bounded(async move {
            completions
                .send(completion)
                .await
                .map_err(|_| writer_gone())?;
            answer.await.map_err(|_| writer_gone())?
        })
    }

    fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool> {
        let (shared, id, token) = (
            self.shared.clone(),
            Box::<str>::from(id),
            token.value() as i64,
        );
        let delay = failure.retry_at.map(|retry_at| {
            duration_millis(
                retry_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            )
        });
        let error = storable_error(&failure.error, self.shared.ascii_errors);
        self.bounded(async move {
            shared
                .update_one(&shared.sql.fail, &[&id.as_bytes(), &token, &delay, &error])
                .await
        })
    }

    fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let (shared, id, token) = (
            self.shared.clone(),
            Box::<str>::from(id),
            token.value() as i64,
        );
        self.bounded(async move {
            shared
                .update_one(&shared.sql.release, &[&id.as_bytes(), &token])
                .await
        })
    }

    fn counts(&self) -> InboxFuture<Counts> {
        let shared = self.shared.clone();
        self.bounded(async move {
            let client = shared.client().await?;
            let rows = shared.query(&client, &shared.sql.counts, &[]).await?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::unavailable("no row from the counts query"))?;
            let count = |index| {
                shared
                    .get::<i64>(row, index)
                    .map(|n| u64::try_from(n).unwrap_or(0))
            };
            // When the earliest due one became due: its age by Postgres's
            // clock, dated by this process's (the clocks need not agree).
            let waited: Option<f64> = shared.get(row, 4)?;
            let oldest_pending = waited
                .filter(|millis| millis.is_finite() && *millis >= 0.0)
                .and_then(|millis| {
                    SystemTime::now().checked_sub(Duration::from_millis(millis.min(1e15) as u64))
                });
            Ok(Counts::new(count(0)?, count(1)?, count(2)?, count(3)?)
                .with_oldest_pending(oldest_pending))
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
        let limit = query.limit.clamp(1, MAX_PAGE);
        let shared = self.shared.clone();
        self.bounded(async move {
            let client = shared.client().await?;
            let rows = shared
                .query(
                    &client,
                    &shared.sql.dead_page,
                    &[&after, &(limit as i64 + 1)],
                )
                .await?;
            let mut page = Vec::with_capacity(rows.len().min(limit));
            for row in rows.iter().take(limit) {
                let seq: i64 = shared.get(row, 0)?;
                let body: Option<Vec<u8>> = shared.get(row, 3)?;
                let notification = shared.notification(row, [1, 2, 4, 5], body)?;
                let error: Option<String> = shared.get(row, 6)?;
                page.push((
                    seq,
                    DeadNotification::new(notification, error.unwrap_or_default()),
                ));
            }
            let next = (rows.len() > limit)
                .then(|| page.last().map(|(seq, _)| seq.to_string().into_boxed_str()))
                .flatten();
            Ok(DeadPage::new(
                page.into_iter().map(|(_, dead)| dead).collect(),
                next,
            ))
        })
    }

    fn requeue(&self, id: &str) -> InboxFuture<bool> {
        let (shared, id) = (self.shared.clone(), Box::<str>::from(id));
        self.bounded(async move {
            let requeued = shared
                .update_one(&shared.sql.requeue, &[&id.as_bytes()])
                .await?;
            // Pending again: the workers of every inbox over this store
            // (not only the requeuing one's) may claim it.
            if requeued {
                shared.wake.notify_waiters();
            }
            Ok(requeued)
        })
    }

    fn prune_done(&self, before: SystemTime) -> InboxFuture<u64> {
        // Postgres's clock decides when an id was done: the cutoff is sent
        // as an age, so the two clocks need not agree.
        let age: i64 = match SystemTime::now().duration_since(before) {
            Ok(age) => duration_millis(age),
            Err(ahead) => -duration_millis(ahead.duration()),
        };
        let shared = self.shared.clone();
        self.bounded(async move {
            let client = shared.client().await?;
            shared
                .execute(&client, &shared.sql.prune, &[&age, &PRUNE_CHUNK])
                .await
        })
    }

    fn wakeups(&self) -> Option<Arc<Notify>> {
        Some(self.shared.wake.clone())
    }
}

/// Leases up to `request.max` due notifications, with one statement (see
/// `sql/claim.sql`): the rows' `seq`s, and the claim.
async fn claim(shared: &Shared, request: &ClaimRequest) -> Result<(Vec<i64>, Claimed), StoreError> {
    let token = LeaseToken::random();
    let max_attempts = i32::try_from(request.max_attempts).unwrap_or(i32::MAX);
    let lease = duration_millis(request.lease);
    let max = request.max.clamp(1, MAX_CLAIM) as i64;
    let token_value = token.value() as i64;
    let client = shared.client().await?;
    let rows = shared
        .query(
            &client,
            &shared.sql.claim,
            &[&lease, &token_value, &max, &max_attempts],
        )
        .await?;
    drop(client);
    // One row per lease, each with when the next one is due; or, when
    // nothing was leased, one row of NULLs but that.
    let next: Option<f64> = match rows.first() {
        Some(row) => shared.get(row, 6)?,
        None => return Err(StoreError::unavailable("no row from the claim")),
    };
    let mut leased = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(seq) = shared.get::<Option<i64>>(row, 0)? else {
            continue;
        };
        let body: Option<Vec<u8>> = shared.get(row, 5)?;
        leased.push((seq, shared.notification(row, [1, 2, 3, 4], body)?));
    }
    leased.sort_by_key(|(seq, _)| *seq);
    let next_due = next.map(|millis| {
        let now = SystemTime::now();
        if millis.is_finite() && millis > 0.0 {
            now + Duration::from_millis(millis.min(1e15) as u64)
        } else {
            now
        }
    });
    let seqs = leased.iter().map(|(seq, _)| *seq).collect();
    let leases = leased
        .into_iter()
        .map(|(_, notification)| Lease::new(notification, token.clone()))
        .collect();
    Ok((seqs, Claimed::new(leases, next_due)))
}

/// The answer of a claim, being waited for. Dropped with the answer
/// already sent but not taken (the caller stopped waiting in between),
/// its leases are handed back.
struct PendingAnswer {
    answer: oneshot::Receiver<Result<(Vec<i64>, Claimed), StoreError>>,
    shared: Arc<Shared>,
}

impl Drop for PendingAnswer {
    fn drop(&mut self) {
        if let Ok(Ok((seqs, claimed))) = self.answer.try_recv() {
            let shared = self.shared.clone();
            let runtime = shared.runtime.clone();
            runtime.spawn(async move { hand_back(&shared, &seqs, &claimed).await });
        }
    }
}

/// Hands back the leases of a claim nobody waits for any more: pending
/// again at once, rather than after the lease. When that fails too, they
/// lapse as a crashed worker's would.
async fn hand_back(shared: &Shared, seqs: &[i64], claimed: &Claimed) {
    let Some(lease) = claimed.leases.first() else {
        return;
    };
    let token = lease.token.value() as i64;
    let handed_back = async {
        let client = shared.client().await?;
        shared
            .execute(&client, &shared.sql.hand_back, &[&seqs, &token])
            .await
    };
    match tokio::time::timeout(shared.timeout, handed_back).await {
        Ok(Ok(n)) => tracing::debug!(
            target: "tower_intercom::inbox",
            "a claim was answered after its caller stopped waiting: {n} notifications handed back"
        ),
        Ok(Err(error)) => tracing::debug!(
            target: "tower_intercom::inbox",
            "handing back a claim nobody waited for failed (its leases will lapse): {error}"
        ),
        Err(_) => tracing::debug!(
            target: "tower_intercom::inbox",
            "handing back a claim nobody waited for timed out (its leases will lapse)"
        ),
    }
}

fn writer_gone() -> StoreError {
    StoreError::unavailable("the inbox's Postgres write task has stopped")
}
