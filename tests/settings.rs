//! Every setting accepts every value of its type: the largest, the
//! smallest, one less than the largest and values at random, given to each
//! setter, build something that runs one real operation (a notification
//! received and processed in a real SQLite file or a real `redis-server`,
//! signed requests through the layers, tokens signed and verified) without
//! a panic and as the setter's documentation says.
//!
//! `redis-server` must be on `PATH` (`./scripts/test.sh` installs it):
//! without it the Redis tests fail, they never skip.
#![cfg(all(
    feature = "inbox-sqlite",
    feature = "inbox-redis",
    feature = "redis",
    feature = "identity"
))]

use std::{
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
use tower::{Layer, ServiceExt};
use tower_intercom::{
    inbox::{
        Counts, Inbox, InboxStore, Inserted, NewNotification, ReceivedNotification, RedisOptions,
        SqliteInbox, SqliteOptions, Worker,
    },
    sign, VerifyIntercomWebhookLayer,
};
use tower_intercom_test_support::{
    redis_server::RedisServer, secret, Recorder, ScriptedBody, Step, PING,
};

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
    let inbox = SqliteInbox::open(sqlite_path(&dir)).unwrap();
    let handler = Counting::new();
    let worker = inbox.worker(handler.clone()).lease(Duration::MAX);
    receive_and_process(&inbox, worker).await;
    assert_eq!(handler.calls(), 1);
    assert_eq!(
        inbox.counts().await.unwrap(),
        Counts {
            pending: 0,
            in_progress: 0,
            done: 1,
            dead: 0
        }
    );
}

/// Unlimited concurrency tripped Tokio's semaphore limit when the worker
/// started.
#[tokio::test]
async fn a_worker_with_the_largest_concurrency_processes_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(sqlite_path(&dir)).unwrap();
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
    let inbox = SqliteOptions::default()
        .channel_capacity(usize::MAX)
        .open(sqlite_path(&dir))
        .unwrap();
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
}

/// A busy timeout above about 24.8 days hit rusqlite's `expect("too big")`
/// when the store was opened.
#[tokio::test]
async fn an_sqlite_inbox_with_the_longest_busy_timeout_opens_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteOptions::default()
        .busy_timeout(Duration::MAX)
        .open(sqlite_path(&dir))
        .unwrap();
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
}

/// An unlimited rest between checkpoints overflowed `Instant` in the
/// checkpoint thread after its first pass: the thread panicked (unseen,
/// but for its message) and the log was never copied again.
#[tokio::test]
async fn an_sqlite_inbox_with_the_longest_checkpoint_interval_works() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteOptions::default()
        .checkpoint_interval(Duration::MAX)
        .open(sqlite_path(&dir))
        .unwrap();
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;
    // The checkpointer's first pass follows the first commit: give it
    // time to run (and, before, to panic).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_no_panic();
}

/// Unlimited inserts in flight tripped Tokio's semaphore limit, through
/// the options and on the store.
#[tokio::test]
async fn a_redis_inbox_with_the_largest_max_in_flight_connects_and_works() {
    let server = RedisServer::start();
    let inbox = RedisOptions::default()
        .max_in_flight(usize::MAX)
        .connect(&server.url())
        .await
        .unwrap();
    let handler = Counting::new();
    receive_and_process(&inbox, inbox.worker(handler.clone())).await;

    let store = inbox.store().clone().max_in_flight(usize::MAX);
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
