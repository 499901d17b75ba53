//! The durable inbox's shared test suite: what every [`InboxStore`] must
//! give the inbox, written once in [`scenarios`] and run against each
//! store by [`inbox_suite!`](crate::inbox_suite) through the store's
//! [`InboxHarness`].
//!
//! A store's test file keeps what is the store's own, and instantiates the
//! suite:
//!
//! ```ignore
//! use tower_intercom_test_support::{inbox::sqlite::SqliteHarness, inbox_suite};
//!
//! inbox_suite!(SqliteHarness);
//! ```
//!
//! That expands to one `#[tokio::test]` per scenario, named as the
//! scenario, and to the child-process entry point that
//! `a_killed_worker_process_leaves_the_notification_to_another` runs. A
//! new store needs a harness (see [`sqlite`], [`redis`] and [`postgres`]:
//! start a fresh backend, open a store on it, stall it, take it down) and
//! that line.
//!
//! Every store and inbox the inbox tests make is made by a harness module
//! ([`sqlite::open_store`], [`redis::connect_store`],
//! [`postgres::connect_store`]) or by [`open`] and [`open_over_clones`]
//! (`Inbox::new(store)` and the inbox's settings): when the stores'
//! constructors change, those are the places to change.

pub mod faulty;
#[cfg(feature = "inbox-postgres")]
pub mod postgres;
#[cfg(feature = "inbox-redis")]
pub mod redis;
pub mod scenarios;
#[cfg(feature = "inbox-sqlite")]
pub mod sqlite;

use std::{
    future::Future,
    net::SocketAddr,
    ops::RangeInclusive,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_intercom::{
    inbox::{
        handler_fn, Counts, HandlerFn, Inbox, InboxStore, OverloadStatus, ReceivedNotification,
        Worker,
    },
    sign, VerifyIntercomWebhookLayer, WebhookSecret,
};

/// A store's side of the shared scenarios: how to make one on a fresh
/// backend, open more on the same backend (as other processes would),
/// stall it and take it down.
///
/// Implement it in `test-support/src/inbox/STORE.rs`, behind the store's
/// feature, and instantiate the suite with
/// [`inbox_suite!`](crate::inbox_suite). Each scenario calls
/// [`start`](Self::start) once (twice for two unrelated backends), so a
/// harness is one test's backend: a temporary file, a server of its own.
/// Dropping it removes the backend.
///
/// # Adding a store
///
/// 1. In `test-support/Cargo.toml`, a feature for the store (enabling the
///    crate's own), added to the features of the root `Cargo.toml`'s
///    dev-dependency on this crate.
/// 2. `test-support/src/inbox/STORE.rs` behind it (declared below
///    `pub mod sqlite;` in this module): the one function the tests make
///    the store with, and the harness. `start` gives each test a backend
///    of its own (a database, a server); `store` applies the
///    [`StoreSettings`] the store has an equivalent of; `stall`/`resume`
///    make writers wait (another connection holding a lock they need, a
///    frozen server); `take_down`/`bring_back` make them fail (the server
///    stopped and started again, a proxy cut). The two constants say how
///    the store behaves where stores may differ; [`inspect`](Self::inspect)
///    is optional.
/// 3. `tests/inbox_STORE.rs`: `#![cfg(feature = "…")]`,
///    `inbox_suite!(StoreHarness);`, and the tests that are the store's own.
pub trait InboxHarness: Sized + Send + Sync + 'static {
    /// The store under test. Its clones share it (its connections, its
    /// wake-ups), as the clones users make of it do.
    type Store: InboxStore + Clone;

    /// Whether reads (counts, dead pages) fail while the backend is
    /// [down](Self::take_down): a server that is gone cannot answer them
    /// (Redis), a file whose write lock another process holds still can
    /// (SQLite, which the scenario then checks).
    const READS_FAIL_WHEN_DOWN: bool;

    /// Whether an insert the receiver gave up on at its deadline (answered
    /// 503) is dropped by the store rather than written once the backend
    /// answers again. SQLite's writer skips a write nobody waits for any
    /// more; a command already sent to Redis runs when Redis wakes up, and
    /// Intercom's retry is then a duplicate. Either way one entry results.
    const GIVEN_UP_INSERTS_ARE_DROPPED: bool;

    /// A fresh backend that no other test shares (a new file, a new
    /// server), with nothing in it.
    fn start() -> impl Future<Output = Self> + Send;

    /// Opens a store on this backend with `settings`, as another process
    /// would: each call has its own connection (or file handle), and all
    /// of them see the same notifications.
    fn store(&self, settings: &StoreSettings) -> impl Future<Output = Self::Store> + Send;

    /// Where the backend is (its file, its URL): what a child process
    /// passes to [`store_at`](Self::store_at).
    fn address(&self) -> String;

    /// Opens a store with the default settings at an
    /// [`address`](Self::address), in another process.
    fn store_at(address: &str) -> impl Future<Output = Self::Store> + Send;

    /// The backend stops answering writes until [`resume`](Self::resume):
    /// they wait, within the store's timeout (SQLite: another connection
    /// holds the file's write lock; Redis: the server is frozen; Postgres:
    /// another session holds an exclusive lock on the inbox's table).
    fn stall(&mut self);

    /// Undoes [`stall`](Self::stall).
    fn resume(&mut self);

    /// The backend goes down: writes fail within the store's
    /// [`timeout`](StoreSettings::timeout) (SQLite: another connection holds
    /// the write lock; Redis: the server is killed; Postgres: the database's
    /// sessions are ended and new ones refused).
    fn take_down(&mut self);

    /// The backend is back, with every write it acknowledged before
    /// [`take_down`](Self::take_down).
    fn bring_back(&mut self);

    /// Checks of the store's own representation (its rows, its keys, read
    /// as another process would) at points of the scenarios: see
    /// [`Inspect`]. A store may check nothing there.
    fn inspect(&self, point: Inspect<'_>) -> impl Future<Output = ()> + Send {
        let _ = point;
        async {}
    }
}

/// The store's own settings a scenario asks for; `None` keeps the store's
/// default.
#[derive(Debug, Clone, Default)]
pub struct StoreSettings {
    /// How long the store waits for its backend before an operation fails
    /// (SQLite: for the file's write lock; Redis: for each answer;
    /// Postgres: for each operation, and each statement on the server).
    pub timeout: Option<Duration>,
    /// How many inserts may wait for a stalled backend before the next is
    /// refused at once as an overload (SQLite: one held by its writer, the
    /// others in its channel, so at least 2; Redis: its in-flight inserts;
    /// Postgres: one being written on a pool of one connection, the others
    /// in its channel, so at least 2).
    pub waiting_inserts: Option<usize>,
}

impl StoreSettings {
    /// Waits 10 s for the backend: for scenarios about correctness, not
    /// latency, where a loaded test machine must not turn slow answers
    /// into failures.
    pub fn patient() -> Self {
        Self {
            timeout: Some(PATIENT),
            ..Self::default()
        }
    }
}

/// How long a [patient](Settings::patient) inbox waits.
const PATIENT: Duration = Duration::from_secs(10);

/// What a scenario asks of the inbox it opens: the store's settings and the
/// inbox's own. `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The store's settings.
    pub store: StoreSettings,
    /// See [`Inbox::deadline`].
    pub deadline: Option<Duration>,
    /// See [`Inbox::retention`].
    pub retention: Option<Duration>,
    /// See [`Inbox::overload_status`].
    pub overload_status: Option<OverloadStatus>,
}

impl Settings {
    /// A [patient store](StoreSettings::patient), and a receiver that
    /// waits as long for it (a 10 s deadline).
    pub fn patient() -> Self {
        Self {
            store: StoreSettings::patient(),
            deadline: Some(PATIENT),
            ..Self::default()
        }
    }
}

/// Points of the scenarios where a harness may check the store's own
/// representation ([`InboxHarness::inspect`]).
#[derive(Debug)]
pub enum Inspect<'a> {
    /// The only notification stored, just answered 200: `id`, `topic` and
    /// the exact `body`, received within `received`.
    Committed {
        id: &'a str,
        topic: &'a str,
        body: &'a [u8],
        received: RangeInclusive<SystemTime>,
    },
    /// The only notification stored is done and was redelivered since:
    /// only its id should be left (for deduplication).
    DoneAndRedelivered { id: &'a str },
    /// Nothing was stored, not even a trace of a refused request.
    NothingStored,
    /// The scenario is over: whatever the store left, it left under its
    /// own names.
    End,
}

/// Opens an inbox over a new store on `harness`'s backend, with
/// `settings`.
pub async fn open<H: InboxHarness>(harness: &H, settings: Settings) -> Inbox<H::Store> {
    let store = harness.store(&settings.store).await;
    configure(Inbox::new(store), &settings)
}

/// Opens two inboxes over clones of one new store on `harness`'s backend,
/// with `settings`: one for the receiver and one for the workers, as a
/// service may be written.
pub async fn open_over_clones<H: InboxHarness>(
    harness: &H,
    settings: Settings,
) -> (Inbox<H::Store>, Inbox<H::Store>) {
    let store = harness.store(&settings.store).await;
    (
        configure(Inbox::new(store.clone()), &settings),
        configure(Inbox::new(store), &settings),
    )
}

/// `inbox` with the inbox's own `settings`.
fn configure<St: InboxStore>(mut inbox: Inbox<St>, settings: &Settings) -> Inbox<St> {
    if let Some(deadline) = settings.deadline {
        inbox = inbox.deadline(deadline);
    }
    if let Some(retention) = settings.retention {
        inbox = inbox.retention(retention);
    }
    if let Some(status) = settings.overload_status {
        inbox = inbox.overload_status(status);
    }
    inbox
}

/// A fresh backend and a [patient](Settings::patient) inbox over it.
pub async fn start<H: InboxHarness>() -> (H, Inbox<H::Store>) {
    let harness = H::start().await;
    let inbox = open(&harness, Settings::patient()).await;
    (harness, inbox)
}

// ---------------------------------------------------------------- requests

/// The secret the inbox tests sign with.
pub const SECRET: &str = "inbox-test-client-secret";

/// [`SECRET`], parsed.
pub fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).unwrap()
}

/// Delivery `attempt` of notification `id`, as Intercom sends it: the
/// attempt changes the bytes, hence the signature.
pub fn envelope(id: &str, topic: &str, attempt: u32) -> String {
    serde_json::json!({
        "type": "notification_event",
        "app_id": "abc123",
        "data": {"type": "notification_event_data", "item": {"type": "ping", "message": "hi"}},
        "id": id,
        "topic": topic,
        "delivery_attempts": attempt,
        "first_sent_at": 1_700_000_000,
        "created_at": 1_700_000_000,
    })
    .to_string()
}

/// The least the receiver stores: an `id`, a `topic` and a `data.item`.
pub fn minimal(id: &str) -> String {
    serde_json::json!({"id": id, "topic": "ping", "data": {"item": {}}}).to_string()
}

/// The stack users build: the verifying layer, then the receiver.
pub type Stack = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_intercom::webhook::ResponseBody<Full<Bytes>>>,
    std::convert::Infallible,
>;

/// The verifying layer in front of `inbox`'s receiver.
pub fn stack<St: InboxStore>(inbox: &Inbox<St>) -> Stack {
    tower::util::BoxCloneService::new(
        ServiceBuilder::new()
            .layer(VerifyIntercomWebhookLayer::new(secret()))
            .service(inbox.receiver()),
    )
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// Answered as a notification the inbox already holds
    /// (`x-intercom-duplicate: true`).
    pub duplicate: bool,
    pub body: Bytes,
}

impl Answer {
    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        let json: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        json["error"].as_str().unwrap().to_owned()
    }
}

/// Delivers a signed `body` to `service` in process. A 200 has an empty
/// body; only a 200 is ever a duplicate.
pub fn deliver(
    service: &Stack,
    body: impl Into<Bytes>,
) -> impl Future<Output = Answer> + Send + 'static {
    let request = signed(body.into());
    let service = service.clone();
    async move { read(service.oneshot(request).await.unwrap()).await }
}

/// Delivers a signed `body`, which must be stored (answered 200).
pub async fn accept(service: &Stack, body: impl Into<Bytes>) -> Answer {
    let answer = deliver(service, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer
}

/// Delivers `notif_0` to `notif_{n-1}` all at once; each must be stored.
pub async fn accept_all(service: &Stack, n: u64) {
    let deliveries: Vec<_> = (0..n)
        .map(|i| tokio::spawn(deliver(service, envelope(&format!("notif_{i}"), "ping", 1))))
        .collect();
    for delivery in deliveries {
        assert_eq!(delivery.await.unwrap().status, StatusCode::OK);
    }
}

fn signed(body: Bytes) -> Request<Full<Bytes>> {
    Request::post("/webhooks/intercom")
        .header("content-type", "application/json")
        .header("x-hub-signature", sign(&secret(), &body))
        .body(Full::new(body))
        .unwrap()
}

async fn read<B>(response: Response<B>) -> Answer
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let duplicate = match response.headers().get("x-intercom-duplicate") {
        None => false,
        Some(value) => {
            assert_eq!(value, "true");
            true
        }
    };
    let body = response.into_body().collect().await.unwrap().to_bytes();
    if status == StatusCode::OK {
        assert!(body.is_empty(), "{body:?}");
    } else {
        assert!(!duplicate, "a {status} marked as a duplicate");
    }
    Answer {
        status,
        duplicate,
        body,
    }
}

/// Serves the stack over HTTP/1.1 on a free loopback port, as a receiver
/// process would.
pub async fn serve<St: InboxStore>(inbox: &Inbox<St>) -> SocketAddr {
    let router = axum::Router::new().route_service(
        "/webhooks/intercom",
        ServiceBuilder::new()
            .layer(VerifyIntercomWebhookLayer::new(secret()))
            .service(inbox.receiver()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A signed `POST` of `body` over a new connection to `addr`.
pub async fn post(addr: SocketAddr, body: String) -> Answer {
    let mut request = signed(Bytes::from(body));
    request
        .headers_mut()
        .insert("host", addr.to_string().parse().unwrap());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    read(sender.send_request(request).await.unwrap()).await
}

// ---------------------------------------------------------------- waiting

/// The four numbers of [`Counts`] `(pending, in_progress, done, dead)`,
/// which the scenarios compare (when the oldest pending notification
/// became due is checked in `tests/metrics.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCounts(pub [u64; 4]);

impl PartialEq<StateCounts> for Counts {
    fn eq(&self, expected: &StateCounts) -> bool {
        [self.pending, self.in_progress, self.done, self.dead] == expected.0
    }
}

/// The counts `(pending, in_progress, done, dead)`.
pub fn counts(pending: u64, in_progress: u64, done: u64, dead: u64) -> StateCounts {
    StateCounts([pending, in_progress, done, dead])
}

/// Polls the inbox's counts until `check` holds; panics after 30 s (a
/// bound for a loaded machine, not a measure).
pub async fn wait_for<St: InboxStore>(
    inbox: &Inbox<St>,
    what: &str,
    check: impl Fn(Counts) -> bool,
) -> Counts {
    let start = Instant::now();
    loop {
        let counts = inbox.counts().await.unwrap();
        if check(counts) {
            return counts;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `condition` until it holds; panics after 30 s (a bound for a
/// loaded machine, not a measure).
pub async fn until(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `signal` is notified; panics after 30 s. Unlike a polling
/// wait, it needs no timer to wake: a handler's blocking code can hold up
/// the runtime's timers (its thread was the one driving them, as when the
/// claim's answer came over a socket).
pub async fn notified(what: &str, signal: &tokio::sync::Notify) {
    tokio::time::timeout(Duration::from_secs(30), signal.notified())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// A shutdown future and its trigger.
pub fn shutdown() -> (
    tokio::sync::oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (trigger, signal) = tokio::sync::oneshot::channel::<()>();
    (trigger, async move {
        let _ = signal.await;
    })
}

/// A worker [spawned](spawn) until [stopped](Self::stop).
pub struct Spawned {
    trigger: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Spawned {
    /// Shuts the worker down and waits until it has stopped (30 s at
    /// most: a bound for a loaded machine, not a measure).
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(30)).await;
    }

    /// Shuts the worker down; panics unless it stops within `limit`.
    pub async fn stop_within(self, limit: Duration) {
        self.trigger.send(()).unwrap();
        tokio::time::timeout(limit, self.task)
            .await
            .unwrap_or_else(|_| panic!("the worker did not stop within {limit:?}"))
            .unwrap();
    }
}

/// Spawns `worker` until [`Spawned::stop`].
pub fn spawn<St, S>(worker: Worker<St, S>) -> Spawned
where
    St: InboxStore,
    S: Service<ReceivedNotification> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    let (trigger, signal) = shutdown();
    Spawned {
        trigger,
        task: worker.spawn(signal),
    }
}

/// A handler that succeeds, and the attempt number of the last
/// notification it ran.
pub fn last_attempt() -> (
    Arc<AtomicU32>,
    HandlerFn<impl Fn(ReceivedNotification) -> Succeeded + Clone>,
) {
    let attempt = Arc::new(AtomicU32::new(0));
    let record = attempt.clone();
    let handler = handler_fn(move |n: ReceivedNotification| {
        record.store(n.attempt(), Ordering::SeqCst);
        std::future::ready(Ok(()))
    });
    (attempt, handler)
}

/// What a handler that succeeds at once returns.
pub type Succeeded = std::future::Ready<Result<(), std::io::Error>>;

/// A handler that succeeds at once.
pub type OkHandler = HandlerFn<fn(ReceivedNotification) -> Succeeded>;

/// See [`OkHandler`].
pub fn ok_handler() -> OkHandler {
    handler_fn(|_| std::future::ready(Ok(())))
}

/// Milliseconds since the epoch: the precision the stores keep times at.
pub fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The name libtest gives the child-process entry point that
/// [`inbox_suite!`](crate::inbox_suite) expanded in `module` (its
/// `module_path!()`), for `--exact`.
pub fn child_test(module: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::child_worker_process"),
        None => "child_worker_process".to_owned(),
    }
}

/// One `#[tokio::test]` per shared scenario (see [`scenarios`]) for the
/// store whose [`InboxHarness`] is `$harness`, each named as its scenario,
/// and `child_worker_process`, the worker process that
/// `a_killed_worker_process_leaves_the_notification_to_another` runs (a
/// test that does nothing when run as one).
#[macro_export]
macro_rules! inbox_suite {
    ($harness:ty) => {
        $crate::inbox_suite!(@each $harness, [],
            a_notification_is_committed_before_the_200,
            a_redelivery_is_answered_200_and_stores_nothing,
            bodies_that_are_not_notifications_get_400_and_store_nothing,
            odd_but_valid_ids_are_stored_exactly,
            requests_that_did_not_pass_the_layer_get_500,
            failures_are_retried_with_backoff_then_dead_then_requeued,
            dead_notifications_are_listed_in_pages_and_requeued_together,
            completion_is_fenced_by_the_lease_token,
            attempts_release_retries_and_lapses_follow_the_store_contract,
            shutdown_hands_back_what_is_in_flight_without_using_an_attempt,
            a_handler_that_panics_or_overruns_its_lease_fails_the_attempt,
            storage_unavailable_is_503_and_stores_nothing_until_it_is_back,
            a_commit_slower_than_the_deadline_is_503,
            done_ids_are_forgotten_after_the_retention,
            a_slow_claim_does_not_push_the_handler_past_its_lease,
            a_claim_that_never_answers_does_not_hold_the_shutdown,
            failed_attempts_and_refused_requests_are_warned_about,
            a_retry_is_taken_when_due_not_at_the_next_poll,
            a_retry_recorded_on_a_second_try_is_taken_when_due,
            a_completion_the_store_refuses_is_warned_about,
            inboxes_over_clones_of_one_store_wake_each_others_workers,
        );
        $crate::inbox_suite!(@each $harness, [(flavor = "multi_thread", worker_threads = 2)],
            concurrent_deliveries_of_one_id_store_one_entry,
            two_receivers_sharing_a_backend_store_and_process_a_notification_once,
            concurrent_deliveries_and_workers_process_each_once,
            a_stalled_worker_loses_its_lease_and_its_late_completion_is_fenced,
            overload_is_answered_at_once_without_queueing,
            a_notification_never_runs_twice_at_once_when_outcomes_are_slow,
            requeue_all_ends_while_workers_keep_failing_what_it_requeues,
        );
        $crate::inbox_suite!(@each $harness, [(flavor = "multi_thread", worker_threads = 4)],
            a_handler_that_finishes_while_being_handed_back_is_done,
            a_handler_that_does_not_stop_at_shutdown_is_not_run_twice_at_once,
        );

        #[tokio::test]
        async fn a_killed_worker_process_leaves_the_notification_to_another() {
            $crate::inbox::scenarios::a_killed_worker_process_leaves_the_notification_to_another::<
                $harness,
            >(&$crate::inbox::child_test(module_path!()))
            .await;
        }

        /// Not a test on its own: the worker process of
        /// `a_killed_worker_process_leaves_the_notification_to_another`,
        /// which runs this test binary again with its address set.
        #[tokio::test]
        async fn child_worker_process() {
            $crate::inbox::scenarios::child_worker_process::<$harness>().await;
        }

        #[test]
        fn the_receiver_never_panics() {
            $crate::inbox::scenarios::the_receiver_never_panics::<$harness>();
        }
    };
    (@each $harness:ty, $flavor:tt, $($scenario:ident),* $(,)?) => {$(
        $crate::inbox_suite!(@one $harness, $flavor, $scenario);
    )*};
    (@one $harness:ty, [$($flavor:tt)?], $scenario:ident) => {
        #[tokio::test $($flavor)?]
        async fn $scenario() {
            $crate::inbox::scenarios::$scenario::<$harness>().await;
        }
    };
}
