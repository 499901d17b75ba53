//! Every setting accepts every value of its type: the largest, the
//! smallest, one less than the largest and values at random, given to each
//! setter, build something that runs one real operation (a notification
//! received and processed in a real SQLite file, a real `redis-server` or
//! a real PostgreSQL server (with the `inbox-postgres` feature),
//! signed requests through the layers, tokens signed and verified) without
//! a panic and as the setter's documentation says.
//!
//! `redis-server` must be on `PATH`, and PostgreSQL's server binaries on
//! `PATH` or in `/usr/lib/postgresql/*/bin` (`./scripts/test.sh` installs
//! both): without them those tests fail, they never skip.
#![cfg(all(
    feature = "inbox-sqlite",
    feature = "inbox-redis",
    feature = "redis",
    feature = "identity"
))]

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, Once, PoisonError,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use tower::{Layer, ServiceExt};
#[cfg(feature = "inbox-postgres")]
use tower_intercom::inbox::{PostgresOptions, PostgresStore};
use tower_intercom::{
    idempotency::{self, Claim, IdempotencyLayer, IdempotencyStore, MemoryStore},
    identity::{IdentitySecret, JwtErrorKind, MessengerJwt, MessengerJwtVerifier},
    inbox::{
        ClaimRequest, Counts, DeadQuery, Inbox, InboxStore, Inserted, NewNotification,
        ReceivedNotification, RedisInbox, RedisStore, SqliteStore, Worker,
    },
    sign,
    webhook::LARGEST_MAX_BODY_SIZE,
    StoreErrorKind, VerifyIntercomWebhookLayer,
};
#[cfg(feature = "inbox-postgres")]
use tower_intercom_test_support::postgres_server::PostgresServer;
use tower_intercom_test_support::{
    redis_server::RedisServer, secret, Recorder, ScriptedBody, Step, PING,
};

// ------------------------------------------------------------------ values

/// A duration: none, the shortest, the longest, one less than the longest,
/// ordinary ones, and any at all.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::MAX),
        Just(Duration::MAX - Duration::from_nanos(1)),
        (0u64..120_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Duration::new(secs, nanos)),
    ]
}

/// A count: 0, 1, the largest, one less, ordinary ones, and any at all.
fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(usize::MAX),
        Just(usize::MAX - 1),
        1usize..10_000,
        any::<usize>(),
    ]
}

/// The same for `u32`.
fn count_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        1u32..100,
        any::<u32>(),
    ]
}

/// The same for `u64`.
fn count_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        1u64..100_000,
        any::<u64>(),
    ]
}

/// Runs `cases` cases of `strategy` through `test`, each in a fresh
/// current-thread runtime.
fn check<S, F, Fut>(cases: u32, strategy: S, test: F)
where
    S: Strategy,
    S::Value: Clone,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test(value))
        })
        .unwrap();
}

// ------------------------------------------------------------------ panics

/// The first panic outside this file (in the crate, its dependencies or
/// the standard library), also one Tokio caught in a spawned task or one
/// in a store's own thread, which no test would see otherwise.
static FIRST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Starts watching for panics (once for the whole binary; each is still
/// printed).
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let print = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // This file's own failed assertions are its tests' failures;
            // the others are what no test would see.
            if info.location().is_some_and(|at| at.file() == file!()) {
                print(info);
                return;
            }
            FIRST_PANIC
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| info.to_string());
            print(info);
        }));
    });
}

/// No panic outside this file since the last call, in any thread or task
/// of this binary.
fn assert_no_panic() {
    // Taken (so that the next case starts afresh), and the lock let go
    // of: the hook takes it for this panic.
    let first = FIRST_PANIC
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(first) = first {
        panic!("something panicked: {first}");
    }
}

// ----------------------------------------------------------- notifications

/// A `ping` notification, as Intercom delivers it for the `attempt`th
/// time.
fn envelope(id: &str, attempt: u32) -> String {
    serde_json::json!({
        "type": "notification_event",
        "app_id": "abc123",
        "data": {"type": "notification_event_data", "item": {"type": "ping", "message": "hi"}},
        "id": id,
        "topic": "ping",
        "delivery_attempts": attempt,
        "first_sent_at": 1_700_000_000,
        "created_at": 1_700_000_000,
    })
    .to_string()
}

/// A request carrying `body`, signed with the test secret.
fn signed(body: &str) -> Request<Full<Bytes>> {
    Request::post("/webhooks/intercom")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// Sends `body`, signed, through the verifying layer to the inbox's
/// receiver: the status, and whether it was answered as a duplicate.
async fn deliver<St: InboxStore>(inbox: &Inbox<St>, body: &str) -> (StatusCode, bool) {
    let service = VerifyIntercomWebhookLayer::new(secret()).layer(inbox.receiver());
    let response = service.oneshot(signed(body)).await.unwrap();
    let duplicate = response.headers().contains_key("x-intercom-duplicate");
    (response.status(), duplicate)
}

/// A handler that succeeds at once and counts its calls (its clones
/// share the count).
#[derive(Clone)]
struct Counting(Arc<AtomicUsize>);

impl Counting {
    fn new() -> Self {
        Self(Arc::new(AtomicUsize::new(0)))
    }

    fn calls(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl tower::Service<ReceivedNotification> for Counting {
    type Response = ();
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<(), Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _notification: ReceivedNotification) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    }
}

/// A running worker and the way to stop it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Spawns `worker`.
fn start<St: InboxStore>(worker: Worker<St, Counting>) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = worker.spawn(async move {
        let _ = stopped.await;
    });
    Running { stop, task }
}

impl Running {
    /// Stops the worker and waits for it (generously): it must end, and
    /// without a panic.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the worker ends after its shutdown")
            .expect("the worker ends without a panic");
    }
}

/// Waits (generously) until `done` notifications are done, failing at
/// once if the worker stopped meanwhile (it panicked).
async fn wait_until_done<St: InboxStore>(inbox: &Inbox<St>, worker: &Running, done: u64) {
    let start = Instant::now();
    loop {
        let counts = inbox.counts().await.unwrap();
        if counts.done == done {
            assert_eq!(counts.in_progress, 0, "{counts:?}");
            return;
        }
        assert!(
            !worker.task.is_finished(),
            "the worker stopped before the notification was done (it panicked): {counts:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not done after 20 s: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One notification received through the layer and the receiver (200),
/// then processed by `worker` until done.
async fn receive_and_process<St: InboxStore>(inbox: &Inbox<St>, worker: Worker<St, Counting>) {
    watch_panics();
    let (status, _) = deliver(inbox, &envelope("notif_settings_1", 1)).await;
    assert_eq!(status, StatusCode::OK);
    let running = start(worker);
    wait_until_done(inbox, &running, 1).await;
    running.stop().await;
    assert_no_panic();
}

/// A connection to the Redis at `url` for a store's `with_connection`,
/// made as its documentation says: no response timeout of its own.
async fn connection_manager(url: &str) -> redis::aio::ConnectionManager {
    let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(None);
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager_with_config(config)
        .await
        .unwrap()
}

/// The inbox's file in `dir`.
fn sqlite_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("inbox.sqlite3")
}

// ------------------------------------------ the panics these settings had

/// An unlimited lease: the worker's deadline for the handler overflowed
/// `Instant` right after the claim had committed, so the worker panicked
/// and the notification stayed leased (for the store's ten-year cap).
#[tokio::test]
async fn a_worker_with_the_longest_lease_processes_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(sqlite_path(&dir)).unwrap());
    let handler = Counting::new();
    let worker = inbox.worker(handler.clone()).lease(Duration::MAX);
    receive_and_process(&inbox, worker).await;
    assert_eq!(handler.calls(), 1);
    assert_eq!(inbox.counts().await.unwrap(), Counts::new(0, 0, 1, 0));
}

/// Unlimited concurrency tripped Tokio's semaphore limit when the worker
/// started.
#[tokio::test]
async fn a_worker_with_the_largest_concurrency_processes_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(sqlite_path(&dir)).unwrap());
    let handler = Counting::new();
    let worker = inbox.worker(handler.clone()).concurrency(usize::MAX);
    receive_and_process(&inbox, worker).await;
    assert_eq!(handler.calls(), 1);
}

/// An unlimited write queue tripped Tokio's semaphore limit when the
/// store was opened.
#[tokio::test]
async fn an_sqlite_inbox_with_the_largest_channel_capacity_opens_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .channel_capacity(usize::MAX)
            .open(sqlite_path(&dir))
            .unwrap(),
    );
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
}

/// A busy timeout above about 24.8 days hit rusqlite's `expect("too big")`
/// when the store was opened.
#[tokio::test]
async fn an_sqlite_inbox_with_the_longest_busy_timeout_opens_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .busy_timeout(Duration::MAX)
            .open(sqlite_path(&dir))
            .unwrap(),
    );
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
}

/// An unlimited rest between checkpoints overflowed `Instant` in the
/// checkpoint thread after its first pass: the thread panicked (unseen,
/// but for its message) and the log was never copied again.
#[tokio::test]
async fn an_sqlite_inbox_with_the_longest_checkpoint_interval_works() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .checkpoint_interval(Duration::MAX)
            .open(sqlite_path(&dir))
            .unwrap(),
    );
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
    // The checkpointer's first pass follows the first commit: give it
    // time to run (and, before, to panic).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_no_panic();
}

/// Unlimited inserts in flight tripped Tokio's semaphore limit, on a
/// store that connects and on one given a connection.
#[tokio::test]
async fn a_redis_inbox_with_the_largest_max_in_flight_connects_and_works() {
    let server = RedisServer::start();
    let inbox = Inbox::new(
        RedisStore::options()
            .max_in_flight(usize::MAX)
            .connect(&server.url())
            .await
            .unwrap(),
    );
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;

    let store = RedisStore::options()
        .max_in_flight(usize::MAX)
        .with_connection(connection_manager(&server.url()).await);
    let again = NewNotification::new(
        "notif_settings_2",
        "ping",
        envelope("notif_settings_2", 1).into(),
    );
    assert_eq!(store.insert(again).await.unwrap(), Inserted::Stored);
}

/// The largest body limit, and a request announcing a body larger than
/// any buffer can hold (2^63 bytes) in more than one frame: the layer
/// reserved what was announced when the second frame arrived, and
/// panicked ("capacity overflow"). The limit is now at most what a buffer
/// holds, so the announcement is refused at once.
#[tokio::test]
async fn the_largest_body_limit_refuses_what_no_buffer_holds() {
    watch_panics();
    let layer = VerifyIntercomWebhookLayer::new(secret()).max_body_size(usize::MAX);
    let recorder = Recorder::default();
    let service = layer.layer(recorder.clone());
    let (first, second) = PING.split_at(PING.len() / 2);
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), PING))
        .header("content-length", (1u64 << 63).to_string())
        .body(ScriptedBody::new([
            Step::Data(Bytes::from_static(first)),
            Step::Data(Bytes::from_static(second)),
        ]))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(recorder.calls(), 0);

    // What a buffer holds still passes.
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), PING))
        .body(ScriptedBody::new([
            Step::Data(Bytes::from_static(first)),
            Step::Data(Bytes::from_static(second)),
        ]))
        .unwrap();
    assert_eq!(
        service.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(recorder.calls(), 1);
    assert_no_panic();
}

// -------------------------------------------------------------- properties

/// The inbox's and the SQLite store's settings.
#[derive(Debug, Clone)]
struct SqliteSettings {
    channel_capacity: usize,
    max_batch: usize,
    busy_timeout: Duration,
    checkpoint_interval: Duration,
    deadline: Duration,
    retention: Duration,
}

fn sqlite_settings() -> impl Strategy<Value = SqliteSettings> {
    (
        count(),
        count(),
        duration(),
        duration(),
        duration(),
        duration(),
    )
        .prop_map(
            |(
                channel_capacity,
                max_batch,
                busy_timeout,
                checkpoint_interval,
                deadline,
                retention,
            )| {
                SqliteSettings {
                    channel_capacity,
                    max_batch,
                    busy_timeout,
                    checkpoint_interval,
                    deadline,
                    retention,
                }
            },
        )
}

/// A worker's settings.
#[derive(Debug, Clone)]
struct WorkerSettings {
    concurrency: usize,
    lease: Duration,
    max_attempts: u32,
    backoff: (Duration, Duration),
    grace_period: Duration,
    poll_interval: Duration,
}

fn worker_settings() -> impl Strategy<Value = WorkerSettings> {
    (
        count(),
        duration(),
        count_u32(),
        (duration(), duration()),
        duration(),
        duration(),
    )
        .prop_map(
            |(concurrency, lease, max_attempts, backoff, grace_period, poll_interval)| {
                WorkerSettings {
                    concurrency,
                    lease,
                    max_attempts,
                    backoff,
                    grace_period,
                    poll_interval,
                }
            },
        )
}

impl WorkerSettings {
    fn apply<St: InboxStore>(&self, worker: Worker<St, Counting>) -> Worker<St, Counting> {
        worker
            .concurrency(self.concurrency)
            .lease(self.lease)
            .max_attempts(self.max_attempts)
            .backoff(self.backoff.0, self.backoff.1)
            .grace_period(self.grace_period)
            .poll_interval(self.poll_interval)
    }
}

/// The inspection API's counts and a direct claim's settings.
#[derive(Debug, Clone)]
struct Queries {
    dead_limit: usize,
    claim_max: usize,
    claim_lease: Duration,
    claim_attempts: u32,
}

fn queries() -> impl Strategy<Value = Queries> {
    (count(), count(), duration(), count_u32()).prop_map(
        |(dead_limit, claim_max, claim_lease, claim_attempts)| Queries {
            dead_limit,
            claim_max,
            claim_lease,
            claim_attempts,
        },
    )
}

/// Long enough that an answer or a handler that is not slow fits in it,
/// on a loaded machine too.
const AMPLE: Duration = Duration::from_secs(10);

/// One notification delivered to a fresh inbox, its redelivery, then a
/// worker until the notification is processed, then the inspection API:
/// whatever the settings, nothing panics, and:
/// - the delivery is answered 200 (or 503 within a deadline too short for
///   the commit), its redelivery 200 as a duplicate;
/// - with a lease long enough for the handler, the notification ends done
///   after one call; with any lease, the handler is called and the
///   notification is kept or done, never lost;
/// - the worker stops when told.
async fn sqlite_case(
    store: SqliteSettings,
    worker: WorkerSettings,
    queries: Queries,
) -> Result<(), TestCaseError> {
    watch_panics();
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .channel_capacity(store.channel_capacity)
            .max_batch(store.max_batch)
            .busy_timeout(store.busy_timeout)
            .checkpoint_interval(store.checkpoint_interval)
            .open(sqlite_path(&dir))
            .unwrap(),
    )
    .deadline(store.deadline)
    .retention(store.retention);
    deliver_once_and_again(&inbox, store.deadline).await?;
    process_one(&inbox, &worker, store.retention).await?;
    inspect(&inbox, &queries).await?;
    assert_no_panic();
    Ok(())
}

/// The delivery, then (when it was answered 200) its redelivery; a
/// delivery answered 503 is stored as Intercom's retry would.
async fn deliver_once_and_again<St: InboxStore>(
    inbox: &Inbox<St>,
    deadline: Duration,
) -> Result<(), TestCaseError> {
    let body = envelope("notif_settings_any", 1);
    let (status, duplicate) = deliver(inbox, &body).await;
    prop_assert!(!duplicate);
    if status == StatusCode::SERVICE_UNAVAILABLE && deadline < AMPLE {
        // Not committed within the deadline: stored by the retry (or
        // found, when the commit finished after the answer). The write
        // given up may still hold the store's queue for a moment.
        let body = Bytes::from(body);
        let start = Instant::now();
        let inserted = loop {
            let retry = NewNotification::new("notif_settings_any", "ping", body.clone());
            match inbox.store().insert(retry).await {
                Err(error) if error.kind() == StoreErrorKind::Overloaded => {
                    prop_assert!(start.elapsed() < AMPLE, "still overloaded");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                inserted => break inserted.unwrap(),
            }
        };
        prop_assert!(matches!(inserted, Inserted::Stored | Inserted::Duplicate));
        return Ok(());
    }
    prop_assert_eq!(status, StatusCode::OK);
    let (status, duplicate) = deliver(inbox, &envelope("notif_settings_any", 2)).await;
    if deadline >= AMPLE {
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert!(duplicate);
    } else {
        prop_assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(())
}

/// Runs a worker with `settings` until the one notification is processed,
/// then stops it. With a lease under a second, the attempt may fail (a
/// lease shorter than the claim's own round trip ends before the handler
/// starts), and the notification is then dead or waits for its retry: the
/// worker runs until the handler was called, the notification is dead, or
/// for a second.
async fn process_one<St: InboxStore>(
    inbox: &Inbox<St>,
    settings: &WorkerSettings,
    retention: Duration,
) -> Result<(), TestCaseError> {
    let handler = Counting::new();
    let running = start(settings.apply(inbox.worker(handler.clone())));
    let short_lease = settings.lease < Duration::from_secs(1);
    let start = Instant::now();
    loop {
        let counts = inbox.counts().await.unwrap();
        let called = handler.calls() > 0;
        let settled = counts.pending == 0 && counts.in_progress == 0 && counts.dead == 0;
        let tried = called || counts.dead == 1 || start.elapsed() > Duration::from_secs(1);
        if (called && settled) || (short_lease && tried) {
            break;
        }
        prop_assert!(
            !running.task.is_finished(),
            "the worker stopped (it panicked): {:?}",
            counts
        );
        prop_assert!(start.elapsed() < Duration::from_secs(20), "{:?}", counts);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    let counts = inbox.counts().await.unwrap();
    let kept = counts.pending + counts.in_progress + counts.done + counts.dead;
    if settings.lease >= Duration::from_secs(1) {
        // Processed once, and done (unless already forgotten, with a
        // retention shorter than the test).
        prop_assert_eq!(handler.calls(), 1);
        prop_assert_eq!(counts.pending + counts.in_progress + counts.dead, 0);
    }
    if retention >= Duration::from_secs(60) {
        prop_assert_eq!(kept, 1, "{:?}", counts);
    } else {
        prop_assert!(kept <= 1, "{:?}", counts);
    }
    Ok(())
}

/// Dead notifications, pruning and a claim, with any count and lease.
async fn inspect<St: InboxStore>(
    inbox: &Inbox<St>,
    queries: &Queries,
) -> Result<(), TestCaseError> {
    let page = inbox
        .dead(DeadQuery::first(queries.dead_limit))
        .await
        .unwrap();
    prop_assert!(page.notifications.len() <= 1);
    inbox.prune().await.unwrap();
    let request = ClaimRequest::new(
        queries.claim_max,
        queries.claim_lease,
        queries.claim_attempts,
    );
    let claimed = inbox.store().claim(request).await.unwrap();
    prop_assert!(claimed.leases.len() <= 1);
    Ok(())
}

#[test]
fn every_sqlite_inbox_and_worker_setting_is_accepted() {
    check(
        32,
        (sqlite_settings(), worker_settings(), queries()),
        |(store, worker, queries)| sqlite_case(store, worker, queries),
    );
}

/// The Redis inbox's settings: on the store that connects and the inbox
/// over it, and on a second store given a connection.
#[derive(Debug, Clone)]
struct RedisSettings {
    timeout: Duration,
    max_in_flight: usize,
    deadline: Duration,
    retention: Duration,
    store_timeout: Duration,
    store_max_in_flight: usize,
}

fn redis_settings() -> impl Strategy<Value = RedisSettings> {
    (
        duration(),
        count(),
        duration(),
        duration(),
        duration(),
        count(),
    )
        .prop_map(
            |(timeout, max_in_flight, deadline, retention, store_timeout, store_max_in_flight)| {
                RedisSettings {
                    timeout,
                    max_in_flight,
                    deadline,
                    retention,
                    store_timeout,
                    store_max_in_flight,
                }
            },
        )
}

/// As [`sqlite_case`], against one `redis-server` (each case under its own
/// key prefix); connecting with a timeout too short for it fails with an
/// error, and an insert through a store with such a timeout too.
#[test]
fn every_redis_inbox_setting_is_accepted() {
    let server = RedisServer::start();
    let url = server.url();
    let cases = AtomicUsize::new(0);
    check(
        10,
        (redis_settings(), worker_settings(), queries()),
        |(settings, worker, queries)| {
            let prefix = format!("settings-{}", cases.fetch_add(1, Ordering::SeqCst));
            let url = url.clone();
            async move {
                watch_panics();
                let connected = RedisStore::options()
                    .key_prefix(prefix.clone())
                    .timeout(settings.timeout)
                    .max_in_flight(settings.max_in_flight)
                    .connect(&url)
                    .await;
                let inbox: RedisInbox = match connected {
                    Ok(store) => Inbox::new(store)
                        .deadline(settings.deadline)
                        .retention(settings.retention),
                    Err(_) if settings.timeout < AMPLE => return Ok(()),
                    Err(error) => panic!("connecting failed: {error}"),
                };
                if settings.timeout >= AMPLE {
                    deliver_once_and_again(&inbox, settings.deadline).await?;
                    process_one(&inbox, &worker, settings.retention).await?;
                    inspect(&inbox, &queries).await?;
                }
                let store = RedisStore::options()
                    .key_prefix(prefix)
                    .timeout(settings.store_timeout)
                    .max_in_flight(settings.store_max_in_flight)
                    .with_connection(connection_manager(&url).await);
                let another = NewNotification::new(
                    "notif_settings_other",
                    "ping",
                    Bytes::from(envelope("notif_settings_other", 1)),
                );
                match store.insert(another).await {
                    Ok(inserted) => prop_assert_eq!(inserted, Inserted::Stored),
                    Err(error) => prop_assert!(
                        settings.store_timeout < AMPLE,
                        "the insert failed: {}",
                        error
                    ),
                }
                assert_no_panic();
                Ok(())
            }
        },
    );
}

/// The Postgres store's settings (on its options) and the inbox's.
#[cfg(feature = "inbox-postgres")]
#[derive(Debug, Clone)]
struct PostgresSettings {
    timeout: Duration,
    pool_size: usize,
    max_batch: usize,
    channel_capacity: usize,
    deadline: Duration,
    retention: Duration,
}

#[cfg(feature = "inbox-postgres")]
fn postgres_settings() -> impl Strategy<Value = PostgresSettings> {
    (
        duration(),
        count(),
        count(),
        count(),
        duration(),
        duration(),
    )
        .prop_map(
            |(timeout, pool_size, max_batch, channel_capacity, deadline, retention)| {
                PostgresSettings {
                    timeout,
                    pool_size,
                    max_batch,
                    channel_capacity,
                    deadline,
                    retention,
                }
            },
        )
}

/// The largest counts and the longest timeout, given to the options, are
/// taken as their bounds (a pool of `usize::MAX` connections would
/// allocate its slots at once, a channel past Tokio's limit panics, a
/// `statement_timeout` past 2^31 − 1 ms is refused by Postgres), and the
/// store works.
#[cfg(feature = "inbox-postgres")]
#[tokio::test]
async fn a_postgres_store_with_the_largest_settings_connects_and_works() {
    let server = PostgresServer::start();
    let store = PostgresOptions::default()
        .pool_size(usize::MAX)
        .max_batch(usize::MAX)
        .channel_capacity(usize::MAX)
        .timeout(Duration::MAX)
        .connect(&server.url("postgres"))
        .await
        .unwrap();
    let inbox = Inbox::new(store);
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
}

/// As [`sqlite_case`], against one PostgreSQL server (each case in a
/// schema of its own); connecting with a timeout too short for it fails
/// with an error.
#[cfg(feature = "inbox-postgres")]
#[test]
fn every_postgres_store_setting_is_accepted() {
    let server = PostgresServer::start();
    let url = server.url("postgres");
    let cases = AtomicUsize::new(0);
    check(
        10,
        (postgres_settings(), worker_settings(), queries()),
        |(settings, worker, queries)| {
            let schema = format!("settings_{}", cases.fetch_add(1, Ordering::SeqCst));
            let url = url.clone();
            async move {
                watch_panics();
                let connected = PostgresStore::options()
                    .schema(schema)
                    .timeout(settings.timeout)
                    .pool_size(settings.pool_size)
                    .max_batch(settings.max_batch)
                    .channel_capacity(settings.channel_capacity)
                    .connect(&url)
                    .await;
                let store = match connected {
                    Ok(store) => store,
                    Err(_) if settings.timeout < AMPLE => return Ok(()),
                    Err(error) => panic!("connecting failed: {error}"),
                };
                let inbox = Inbox::new(store)
                    .deadline(settings.deadline)
                    .retention(settings.retention);
                if settings.timeout >= AMPLE {
                    deliver_once_and_again(&inbox, settings.deadline).await?;
                    process_one(&inbox, &worker, settings.retention).await?;
                    inspect(&inbox, &queries).await?;
                } else {
                    // Stored, or given up within the short timeout.
                    let one = NewNotification::new(
                        "notif_settings_short",
                        "ping",
                        Bytes::from(envelope("notif_settings_short", 1)),
                    );
                    match inbox.store().insert(one).await {
                        Ok(inserted) => prop_assert_eq!(inserted, Inserted::Stored),
                        Err(error) => prop_assert!(
                            matches!(
                                error.kind(),
                                StoreErrorKind::TimedOut | StoreErrorKind::Unavailable
                            ),
                            "{}",
                            error
                        ),
                    }
                }
                assert_no_panic();
                Ok(())
            }
        },
    );
}

/// The idempotency layer's TTLs and the memory store's capacity; and the
/// store called directly with any TTL.
#[test]
fn every_idempotency_setting_is_accepted() {
    check(
        64,
        (count_u64(), duration(), duration(), duration()),
        |(capacity, processing_ttl, done_ttl, direct_ttl)| async move {
            watch_panics();
            let store = MemoryStore::with_capacity(capacity);
            let recorder = Recorder::default();
            let service = tower::ServiceBuilder::new()
                .layer(VerifyIntercomWebhookLayer::new(secret()))
                .layer(
                    IdempotencyLayer::new(store.clone())
                        .processing_ttl(processing_ttl)
                        .done_ttl(done_ttl),
                )
                .service(recorder.clone());
            for _ in 0..2 {
                let request = Request::post("/")
                    .header("x-hub-signature", sign(&secret(), PING))
                    .body(Full::new(Bytes::from_static(PING)))
                    .unwrap();
                let status = service.clone().oneshot(request).await.unwrap().status();
                prop_assert_eq!(status, StatusCode::OK);
            }
            // Remembered, unless the store holds nothing or forgets at once.
            if capacity >= 1 && done_ttl >= AMPLE {
                prop_assert_eq!(recorder.calls(), 1);
            } else {
                prop_assert!((1..=2).contains(&recorder.calls()));
            }
            let claim = Claim::new("notif_direct");
            store.claim(&claim, direct_ttl).await.unwrap();
            store.complete(&claim, direct_ttl).await.unwrap();
            store.release(&claim).await.unwrap();
            assert_no_panic();
            Ok(())
        },
    );
}

/// The idempotency layer over Redis: any timeout on the store, any TTL on
/// the layer and given to the store directly.
#[test]
fn every_redis_idempotency_setting_is_accepted() {
    let server = RedisServer::start();
    let url = server.url();
    check(
        10,
        (duration(), duration(), duration()),
        |(timeout, done_ttl, direct_ttl)| {
            let url = url.clone();
            async move {
                watch_panics();
                let store = idempotency::RedisStore::options()
                    .key_prefix(format!("settings-{}:", next_prefix_number()))
                    .timeout(timeout)
                    .with_connection(connection_manager(&url).await);
                let recorder = Recorder::default();
                let service = tower::ServiceBuilder::new()
                    .layer(VerifyIntercomWebhookLayer::new(secret()))
                    .layer(IdempotencyLayer::new(store.clone()).done_ttl(done_ttl))
                    .service(recorder.clone());
                for _ in 0..2 {
                    let request = Request::post("/")
                        .header("x-hub-signature", sign(&secret(), PING))
                        .body(Full::new(Bytes::from_static(PING)))
                        .unwrap();
                    // Fails open: processed even when Redis did not answer
                    // within the timeout. A claim Redis wrote after the
                    // timeout holds the id, and the next delivery is 409
                    // until the claim's TTL ends.
                    let status = service.clone().oneshot(request).await.unwrap().status();
                    if timeout >= AMPLE {
                        prop_assert_eq!(status, StatusCode::OK);
                    } else {
                        prop_assert!(
                            status == StatusCode::OK || status == StatusCode::CONFLICT,
                            "{}",
                            status
                        );
                    }
                }
                if timeout >= AMPLE && done_ttl >= AMPLE {
                    prop_assert_eq!(recorder.calls(), 1);
                }
                let claim = Claim::new("notif_direct");
                let claimed = store.claim(&claim, direct_ttl).await;
                let completed = store.complete(&claim, direct_ttl).await;
                for result in [claimed.map(drop), completed] {
                    if let Err(error) = result {
                        prop_assert!(timeout < AMPLE, "{}", error);
                    }
                }
                assert_no_panic();
                Ok(())
            }
        },
    );
}

/// A key prefix no other case uses.
fn next_prefix_number() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst) as u64
}

/// The verifying layer's body limit and warning interval: a signed
/// notification passes when it fits the limit and is refused with 413
/// otherwise, a body announced above the limit is refused with 413 before
/// it is read, and an unsigned request is refused with 401 (and reported).
#[test]
fn every_layer_setting_is_accepted() {
    check(
        128,
        (count(), duration()),
        |(limit, warn_interval)| async move {
            watch_panics();
            let recorder = Recorder::default();
            let service = VerifyIntercomWebhookLayer::new(secret())
                .max_body_size(limit)
                .warn_interval(warn_interval)
                .layer(recorder.clone());
            let request = Request::post("/")
                .header("x-hub-signature", sign(&secret(), PING))
                .body(Full::new(Bytes::from_static(PING)))
                .unwrap();
            let status = service.clone().oneshot(request).await.unwrap().status();
            if limit >= PING.len() {
                prop_assert_eq!(status, StatusCode::OK);
            } else {
                prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            }
            let announced = u64::try_from(limit.min(LARGEST_MAX_BODY_SIZE))
                .unwrap()
                .saturating_add(1);
            let request = Request::post("/")
                .header("x-hub-signature", sign(&secret(), PING))
                .header("content-length", announced.to_string())
                .body(ScriptedBody::new([
                    Step::Data(Bytes::from_static(PING)),
                    Step::Data(Bytes::from_static(PING)),
                ]))
                .unwrap();
            let status = service.clone().oneshot(request).await.unwrap().status();
            prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            let unsigned = Request::post("/")
                .body(Full::new(Bytes::from_static(PING)))
                .unwrap();
            let status = service.oneshot(unsigned).await.unwrap().status();
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            prop_assert_eq!(recorder.calls(), usize::from(limit >= PING.len()));
            assert_no_panic();
            Ok(())
        },
    );
}

/// A Messenger JWT's lifetime and the verifier's leeway: a token is signed
/// unless its expiry is past what a JWT holds (the year 9999), and a
/// signed one verifies unless it expired (only with a lifetime and a
/// leeway of about a second).
#[test]
fn every_identity_setting_is_accepted() {
    check(
        256,
        (duration(), duration()),
        |(lifetime, leeway)| async move {
            watch_panics();
            let secret: IdentitySecret = "identity-settings-secret".parse().unwrap();
            let signed = MessengerJwt::new("user-42")
                .expires_in(lifetime)
                .sign(&secret);
            let token = match signed {
                Ok(token) => token,
                Err(error) => {
                    prop_assert_eq!(error.kind(), JwtErrorKind::InvalidClaims);
                    // After the year 9999: more than 7,900 years from now.
                    prop_assert!(lifetime > Duration::from_secs(7_900 * 365 * 24 * 3600));
                    return Ok(());
                }
            };
            match MessengerJwtVerifier::new(secret)
                .leeway(leeway)
                .verify(&token)
            {
                Ok(claims) => prop_assert_eq!(claims.user_id(), "user-42"),
                Err(error) => {
                    prop_assert_eq!(error.kind(), JwtErrorKind::Expired);
                    prop_assert!(lifetime < Duration::from_secs(2));
                    prop_assert!(leeway < Duration::from_secs(2));
                }
            }
            assert_no_panic();
            Ok(())
        },
    );
}
