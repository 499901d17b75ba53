//! The durable inbox with the SQLite store: real files in temporary
//! directories, real threads and processes, no mocks.
#![cfg(feature = "inbox-sqlite")]

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_intercom::{
    inbox::{
        handler_fn, Counts, DeadQuery, Inbox, InboxStore, Inserted, NewNotification,
        ReceivedNotification, SqliteInbox, SqliteStore,
    },
    sign, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
};
use tower_intercom_test_support::logs::Logs;

const SECRET: &str = "inbox-test-client-secret";

fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).unwrap()
}

fn envelope(id: &str, topic: &str, attempt: u32) -> String {
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
fn minimal(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "topic": "ping", "data": {"item": {}}})
}

/// The stack users build: the verifying layer, then the receiver.
type Stack = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_intercom::webhook::ResponseBody<Full<Bytes>>>,
    std::convert::Infallible,
>;

fn stack(inbox: &SqliteInbox) -> Stack {
    tower::util::BoxCloneService::new(
        ServiceBuilder::new()
            .layer(VerifyIntercomWebhookLayer::new(secret()))
            .service(inbox.receiver()),
    )
}

fn deliver(
    service: &Stack,
    body: impl Into<Bytes>,
) -> impl std::future::Future<Output = (StatusCode, Bytes)> + Send + 'static {
    let (service, body) = (service.clone(), body.into());
    async move { deliver_owned(service, body).await }
}

async fn deliver_owned(service: Stack, body: Bytes) -> (StatusCode, Bytes) {
    let request = Request::post("/webhooks/intercom")
        .header("x-hub-signature", sign(&secret(), &body))
        .body(Full::new(body))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let duplicate = response.headers().contains_key("x-intercom-duplicate");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status == StatusCode::OK {
        assert!(bytes.is_empty());
    } else {
        assert!(!duplicate);
    }
    (status, bytes)
}

fn file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("inbox.sqlite3")
}

/// What another connection (another process could do the same) sees in
/// the file: (id, topic, body, received_at ms, state, attempts).
type Row = (String, String, Option<Vec<u8>>, i64, i64, i64);

fn rows(path: &Path) -> Vec<Row> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT id, topic, body, received_at, state, attempts
             FROM intercom_inbox LEFT JOIN intercom_inbox_body USING (seq) ORDER BY seq",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn wait_for<St: InboxStore>(
    inbox: &tower_intercom::inbox::Inbox<St>,
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
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The four numbers of [`Counts`], which these tests compare (when the
/// oldest pending notification became due is checked in `tests/metrics.rs`).
#[derive(Debug)]
struct StateCounts([u64; 4]);

impl PartialEq<StateCounts> for Counts {
    fn eq(&self, expected: &StateCounts) -> bool {
        [self.pending, self.in_progress, self.done, self.dead] == expected.0
    }
}

fn counts(pending: u64, in_progress: u64, done: u64, dead: u64) -> StateCounts {
    StateCounts([pending, in_progress, done, dead])
}

/// A shutdown future and its trigger.
fn shutdown() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (trigger, signal) = tokio::sync::oneshot::channel::<()>();
    (trigger, async move {
        let _ = signal.await;
    })
}

// ---------------------------------------------------------------- receive

#[tokio::test]
async fn a_notification_is_committed_before_the_200() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let body = envelope("notif_1", "conversation.user.created", 1);

    let before = millis(SystemTime::now());
    let (status, _) = deliver(&service, body.clone()).await;
    let after = millis(SystemTime::now());
    assert_eq!(status, StatusCode::OK);

    // Another connection sees the committed row as soon as the 200 is out.
    let stored = rows(&file(&dir));
    assert_eq!(stored.len(), 1);
    let (id, topic, bytes, received_at, state, attempts) = &stored[0];
    assert_eq!(id, "notif_1");
    assert_eq!(topic, "conversation.user.created");
    assert_eq!(bytes.as_deref(), Some(body.as_bytes()));
    assert!((before..=after).contains(received_at), "{received_at}");
    assert_eq!((*state, *attempts), (0, 0));
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));

    // The file is durable across a reopen.
    drop(service);
    drop(inbox);
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

#[tokio::test]
async fn a_redelivery_is_answered_200_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let first = envelope("notif_1", "ping", 1);
    assert_eq!(deliver(&service, first.clone()).await.0, StatusCode::OK);

    // Intercom's retry: same id, new delivery_attempts, so new bytes and a
    // new signature.
    let retry = envelope("notif_1", "ping", 2);
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), retry.as_bytes()))
        .body(Full::new(Bytes::from(retry)))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-intercom-duplicate"], "true");

    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
    let stored = rows(&file(&dir));
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].2.as_deref(), Some(first.as_bytes()));

    // Still deduplicated once processed.
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|_n: ReceivedNotification| async {
            Ok::<_, std::io::Error>(())
        }))
        .spawn(signal);
    wait_for(&inbox, "done", |c| c.done == 1).await;
    assert_eq!(
        deliver(&service, envelope("notif_1", "ping", 3)).await.0,
        StatusCode::OK
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_id_store_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let deliveries = (1..=64).map(|attempt| {
        let service = service.clone();
        tokio::spawn(
            async move { deliver(&service, envelope("notif_same", "ping", attempt)).await },
        )
    });
    for delivery in deliveries.collect::<Vec<_>>() {
        assert_eq!(delivery.await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(rows(&file(&dir)).len(), 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

#[tokio::test]
async fn bodies_that_are_not_notifications_get_400_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"[{\"id\":\"notif_1\"}]".to_vec(),
        b"\"notif_1\"".to_vec(),
        b"42".to_vec(),
        b"null".to_vec(),
        b"{}".to_vec(),
        br#"{"type":"notification_event","topic":"ping"}"#.to_vec(),
        br#"{"data":{"id":"notif_1"}}"#.to_vec(),
        br#"{"id":""}"#.to_vec(),
        br#"{"id":null}"#.to_vec(),
        br#"{"id":42}"#.to_vec(),
        br#"{"id":{"a":1}}"#.to_vec(),
        br#"{"id":true}"#.to_vec(),
        br#"{"id":"a","id":"b"}"#.to_vec(),
        br#"{"id":"notif_1""#.to_vec(),
        br#"{"id":"notif_1"}{"id":"notif_2"}"#.to_vec(),
        br#"{"id":"\ud800"}"#.to_vec(),
        b"{\"id\":\"\xff\"}".to_vec(),
        b"\xef\xbb\xbf{\"id\":\"bom\"}".to_vec(),
        // What the worker needs besides the id.
        br#"{"id":"notif_minimal_1"}"#.to_vec(),
        br#"{"id":"notif_1","topic":7,"data":{"item":{}}}"#.to_vec(),
        br#"{"id":"notif_1","topic":"ping"}"#.to_vec(),
        br#"{"id":"notif_1","topic":"ping","data":{}}"#.to_vec(),
        br#"{"type":"canvas","id":"notif_1","topic":"ping","data":{"item":{}}}"#.to_vec(),
    ];
    for body in bad {
        let (status, response) = deliver(&service, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(&body)
        );
        // What is wrong (`tests/malformed_bodies.rs` has each message).
        let json: serde_json::Value = serde_json::from_slice(&response).unwrap();
        let error = json["error"].as_str().unwrap();
        assert!(
            error.starts_with("the body") || error.starts_with("the notification"),
            "{error}"
        );
    }
    assert!(rows(&file(&dir)).is_empty());

    // Valid JSON nested deeper than serde_json's recursion limit: the
    // receiver skips what it does not read without recursing, and stores it.
    let deep = format!(
        "{{\"id\":\"deep\",\"topic\":\"ping\",\"data\":{{\"item\":{{}}}},\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(deliver(&service, deep).await.0, StatusCode::OK);
    assert_eq!(rows(&file(&dir)).len(), 1);
}

#[tokio::test]
async fn odd_but_valid_ids_are_stored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let huge = "n".repeat(2 * 1024 * 1024 - 200); // near the 2 MiB body limit
    let ids = [
        "notif_\u{e9}\u{1F600}\u{65e5}".to_owned(),
        "quote\"back\\slash".to_owned(),
        "nul\u{0}inside".to_owned(),
        "nul".to_owned(), // differs from the one above only after the NUL
        " ".to_owned(),
        "\u{202e}rtl".to_owned(),
        huge.clone(),
    ];
    for id in &ids {
        let body = minimal(id).to_string();
        let (status, _) = deliver(&service, body).await;
        assert_eq!(status, StatusCode::OK, "{}", id.len());
    }
    let stored: Vec<String> = rows(&file(&dir)).into_iter().map(|row| row.0).collect();
    assert_eq!(stored, ids);
    assert!(rows(&file(&dir)).iter().all(|row| row.1 == "ping"));
    // One byte over the limit: refused by the verifying layer.
    let over = serde_json::json!({"id": "n".repeat(2 * 1024 * 1024)}).to_string();
    assert_eq!(
        deliver(&service, over).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Workers hand the same id back.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.lock().unwrap().push(n.id().to_owned());
            async { Ok::<_, std::io::Error>(()) }
        }))
        .spawn(signal);
    wait_for(&inbox, "all done", |c| c.done == ids.len() as u64).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn requests_that_did_not_pass_the_layer_get_500() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let mut receiver = inbox.receiver();
    let request = Request::post("/")
        .body(WebhookBody::from(envelope("notif_1", "ping", 1)))
        .unwrap();
    let response = receiver.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("VerifyIntercomWebhookLayer"));
    assert!(rows(&file(&dir)).is_empty());

    // Intercom's HEAD URL check is answered by the layer, 200.
    let head = Request::head("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(
        stack(&inbox).oneshot(head).await.unwrap().status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- process

#[tokio::test]
async fn failures_are_retried_with_backoff_then_dead_then_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let body = envelope("notif_fail", "contact.created", 1);
    assert_eq!(deliver(&service, body.clone()).await.0, StatusCode::OK);

    let failing = Arc::new(AtomicBool::new(true));
    let attempts = Arc::new(Mutex::new(Vec::<(u32, Instant)>::new()));
    let (fail, log) = (failing.clone(), attempts.clone());
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            log.lock().unwrap().push((n.attempt(), Instant::now()));
            let fail = fail.load(Ordering::SeqCst);
            async move {
                if fail {
                    Err(std::io::Error::other("the CRM is down"))
                } else {
                    Ok(())
                }
            }
        }))
        .max_attempts(3)
        .backoff(Duration::from_millis(40), Duration::from_millis(80))
        .poll_interval(Duration::from_millis(20))
        .spawn(signal);

    wait_for(&inbox, "dead", |c| c.dead == 1).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 1));
    let seen: Vec<u32> = attempts.lock().unwrap().iter().map(|(a, _)| *a).collect();
    assert_eq!(seen, [1, 2, 3]);

    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert!(page.next.is_none());
    let dead = &page.notifications[0];
    assert_eq!(dead.notification.id(), "notif_fail");
    assert_eq!(dead.notification.topic(), "contact.created");
    assert_eq!(dead.notification.bytes(), body.as_bytes());
    assert_eq!(dead.notification.attempt(), 3);
    assert_eq!(dead.last_error(), "the CRM is down");

    failing.store(false, Ordering::SeqCst);
    assert!(!inbox.requeue("notif_unknown").await.unwrap());
    assert!(inbox.requeue("notif_fail").await.unwrap());
    assert!(!inbox.requeue("notif_fail").await.unwrap()); // no longer dead
    wait_for(&inbox, "done", |c| c.done == 1).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    let seen: Vec<u32> = attempts.lock().unwrap().iter().map(|(a, _)| *a).collect();
    assert_eq!(seen, [1, 2, 3, 1]); // attempts restart after a requeue
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn dead_notifications_are_listed_in_pages_and_requeued_together() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    for i in 0..5 {
        deliver(&service, envelope(&format!("notif_{i}"), "ping", 1)).await;
    }
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|_n: ReceivedNotification| async {
            Err::<(), _>("always fails")
        }))
        .max_attempts(1)
        .spawn(signal);
    wait_for(&inbox, "all dead", |c| c.dead == 5).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();

    let mut ids = Vec::new();
    let mut query = DeadQuery::first(2);
    loop {
        let page = inbox.dead(query).await.unwrap();
        assert!(page.notifications.len() <= 2);
        ids.extend(
            page.notifications
                .iter()
                .map(|d| d.notification.id().to_owned()),
        );
        match page.next {
            Some(next) => query = DeadQuery::after(2, next),
            None => break,
        }
    }
    assert_eq!(ids, ["notif_0", "notif_1", "notif_2", "notif_3", "notif_4"]);
    assert_eq!(inbox.requeue_all().await.unwrap(), 5);
    assert_eq!(inbox.counts().await.unwrap(), counts(5, 0, 0, 0));
}

/// A worker stalled past its lease (its whole runtime blocked, as in a
/// long GC-like pause): another worker takes the notification once the
/// lease has lapsed, and the stalled worker's late success is fenced off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_loses_its_lease_and_its_late_completion_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    deliver(&stack(&inbox), envelope("notif_slow", "ping", 1)).await;

    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let stalled = {
        let (inbox, started, finished) = (inbox.clone(), started.clone(), finished.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (trigger, signal) = shutdown();
                let done = finished.clone();
                let handler = handler_fn(move |n: ReceivedNotification| {
                    assert_eq!(n.attempt(), 1);
                    started.store(true, Ordering::SeqCst);
                    // Blocks this runtime's only thread: not even the
                    // worker's own lease timer can fire.
                    std::thread::sleep(Duration::from_millis(3000));
                    done.store(true, Ordering::SeqCst);
                    async { Ok::<_, std::io::Error>(()) }
                });
                let worker = inbox
                    .worker(handler)
                    .lease(Duration::from_millis(300))
                    .concurrency(1)
                    .spawn(signal);
                while !finished.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // Let it record its outcome, then stop.
                tokio::time::sleep(Duration::from_millis(300)).await;
                trigger.send(()).unwrap();
                worker.await.unwrap();
            });
        })
    };
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let taken_at = Instant::now();

    let second = Arc::new(AtomicU32::new(0));
    let record = second.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.store(n.attempt(), Ordering::SeqCst);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .lease(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(20))
        .spawn(signal);
    wait_for(&inbox, "done by the second worker", |c| c.done == 1).await;
    let elapsed = taken_at.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(second.load(Ordering::SeqCst), 2);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the stalled worker was still stalled"
    );
    let first_done_at = done_at(&file(&dir), "notif_slow");

    stalled.join().unwrap();
    assert!(finished.load(Ordering::SeqCst));
    // The stalled worker's success changed nothing: done once, by the
    // second worker.
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    assert_eq!(done_at(&file(&dir), "notif_slow"), first_done_at);
    assert_eq!(rows(&file(&dir))[0].5, 2);
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// A handler that returns just after the shutdown began handing
/// notifications back (blocking code, which the abort cannot reach, then
/// done) has its success recorded: the notification is done, not handed
/// back to be processed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_finishes_while_being_handed_back_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    deliver(&stack(&inbox), envelope("notif_late", "ping", 1)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |_: ReceivedNotification| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                // Past the 100 ms grace period, within the lease's 1 s
                // margin.
                std::thread::sleep(Duration::from_millis(500));
                Ok::<_, std::io::Error>(())
            }
        }))
        .lease(Duration::from_secs(10))
        .grace_period(Duration::from_millis(100))
        .spawn(signal);
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    trigger.send(()).unwrap();
    worker.await.unwrap();
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A worker shut down while its handler is in blocking code (which the
/// worker cannot stop between two `.await`s) does not hand the
/// notification back for another worker to run beside it: it leaves it to
/// its lease, and it is taken again, once, when that lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_does_not_stop_at_shutdown_is_not_run_twice_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    deliver(&stack(&inbox), envelope("notif_blocking", "ping", 1)).await;

    let running = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = {
        let (running, most, attempts) = (running.clone(), most.clone(), attempts.clone());
        move || {
            let (running, most, attempts) = (running.clone(), most.clone(), attempts.clone());
            handler_fn(move |n: ReceivedNotification| {
                let (running, most, attempts) = (running.clone(), most.clone(), attempts.clone());
                async move {
                    attempts.lock().unwrap().push(n.attempt());
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    if n.attempt() == 1 {
                        // Blocking: an abort cannot stop it.
                        std::thread::sleep(Duration::from_millis(1200));
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(())
                }
            })
        }
    };
    let lease = Duration::from_secs(3);
    let (stop_first, first_signal) = shutdown();
    let first = inbox
        .worker(handler())
        .lease(lease)
        .grace_period(Duration::from_millis(100))
        .spawn(first_signal);
    while running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let taken_at = Instant::now();
    let (stop_second, second_signal) = shutdown();
    let second = inbox
        .worker(handler())
        .lease(lease)
        .poll_interval(Duration::from_millis(20))
        .spawn(second_signal);
    stop_first.send(()).unwrap();
    // The first worker gives up on its handler after the grace period and
    // the lease's margin (300 ms), while the handler still blocks.
    first.await.unwrap();
    wait_for(&inbox, "done by the second worker", |c| c.done == 1).await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "run twice at once");
    assert_eq!(*attempts.lock().unwrap(), [1, 2]);
    // Taken again only once its lease had lapsed.
    assert!(taken_at.elapsed() >= lease - Duration::from_millis(100));
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    stop_second.send(()).unwrap();
    second.await.unwrap();
}

fn done_at(path: &Path, id: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT done_at FROM intercom_inbox WHERE id = ?1",
            [id],
            |row| row.get(0),
        )
        .unwrap()
}

/// The lease fence at the store level: of two holders of one notification
/// (the second after the first's lease lapsed), only the current one can
/// complete, fail or release it.
#[tokio::test]
async fn completion_is_fenced_by_the_lease_token() {
    use tower_intercom::inbox::{ClaimRequest, Failure};
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let store = inbox.store();
    let inserted = store
        .insert(NewNotification::new(
            "notif_1",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    assert_eq!(inserted, Inserted::Stored);
    let lease = Duration::from_millis(100);
    let first = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    assert_eq!(first.leases.len(), 1);
    assert!(store
        .claim(ClaimRequest::new(10, lease, 5))
        .await
        .unwrap()
        .leases
        .is_empty());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = store
        .claim(ClaimRequest::new(10, lease * 50, 5))
        .await
        .unwrap();
    assert_eq!(second.leases.len(), 1);
    assert_eq!(second.leases[0].notification.attempt(), 2);
    let (stale, current) = (&first.leases[0].token, &second.leases[0].token);
    assert!(!store.complete("notif_1", stale).await.unwrap());
    assert!(!store
        .fail("notif_1", stale, Failure::dead("late"))
        .await
        .unwrap());
    assert!(!store.release("notif_1", stale).await.unwrap());
    assert!(store.complete("notif_1", current).await.unwrap());
    assert!(!store.complete("notif_1", current).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
}

const CHILD_ROLE: &str = "TOWER_INTERCOM_INBOX_CHILD";
const CHILD_DB: &str = "TOWER_INTERCOM_INBOX_CHILD_DB";
const CHILD_MARKER: &str = "TOWER_INTERCOM_INBOX_CHILD_MARKER";

/// Not a test on its own: the worker process of
/// `a_killed_worker_process_leaves_the_notification_to_another`, which runs
/// this test binary again with `CHILD_ROLE` set.
#[tokio::test]
async fn child_worker_process() {
    if std::env::var_os(CHILD_ROLE).is_none() {
        return;
    }
    let inbox = Inbox::new(SqliteStore::open(std::env::var_os(CHILD_DB).unwrap()).unwrap());
    let marker = std::env::var_os(CHILD_MARKER).unwrap();
    inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            std::fs::write(&marker, n.id()).unwrap();
            // Hang until killed.
            std::future::pending::<Result<(), std::io::Error>>()
        }))
        .lease(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(20))
        .run(std::future::pending())
        .await;
}

#[tokio::test]
async fn a_killed_worker_process_leaves_the_notification_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir);
    let marker = dir.path().join("started");
    let inbox = Inbox::new(SqliteStore::open(&path).unwrap());
    deliver(&stack(&inbox), envelope("notif_crash", "ping", 1)).await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_worker_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, "worker")
        .env(CHILD_DB, &path)
        .env(CHILD_MARKER, &marker)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the child never started"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child exited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "notif_crash");
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 1, 0, 0));
    child.kill().unwrap(); // SIGKILL: no shutdown, no hand-back
    child.wait().unwrap();
    let killed_at = Instant::now();

    let attempt = Arc::new(AtomicU32::new(0));
    let record = attempt.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.store(n.attempt(), Ordering::SeqCst);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .poll_interval(Duration::from_millis(20))
        .spawn(signal);
    wait_for(&inbox, "done after the lease lapsed", |c| c.done == 1).await;
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    assert_eq!(attempt.load(Ordering::SeqCst), 2);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn shutdown_hands_back_what_is_in_flight_without_using_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    deliver(&service, envelope("notif_quick", "ping", 1)).await;
    deliver(&service, envelope("notif_hang", "ping", 1)).await;

    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|n: ReceivedNotification| async move {
            if n.id() == "notif_hang" {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, std::io::Error>(())
        }))
        .grace_period(Duration::from_millis(400))
        .spawn(signal);
    wait_for(&inbox, "both taken", |c| c.in_progress == 2).await;
    let stopping = Instant::now();
    trigger.send(()).unwrap();
    worker.await.unwrap();
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The quick one finished within the grace period, the other was
    // handed back with its attempt unused.
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 1, 0));
    let hang = rows(&file(&dir))
        .into_iter()
        .find(|r| r.0 == "notif_hang")
        .unwrap();
    assert_eq!((hang.4, hang.5), (0, 0));

    // The next worker gets it as a first attempt, at once.
    let attempt = Arc::new(AtomicU32::new(0));
    let record = attempt.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.store(n.attempt(), Ordering::SeqCst);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .spawn(signal);
    wait_for(&inbox, "done", |c| c.done == 2).await;
    assert_eq!(attempt.load(Ordering::SeqCst), 1);
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn a_handler_that_panics_or_overruns_its_lease_fails_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    deliver(&service, envelope("notif_panic", "ping", 1)).await;
    deliver(&service, envelope("notif_slow", "ping", 1)).await;
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|n: ReceivedNotification| async move {
            if n.id() == "notif_panic" {
                panic!("handler bug");
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::io::Error>(())
        }))
        // The worker stops the handler a tenth of the lease before it
        // ends (100 ms here) to record why; a shorter lease leaves too
        // little margin on a loaded machine, and the lapsed lease is
        // recorded instead.
        .lease(Duration::from_secs(1))
        .max_attempts(1)
        .spawn(signal);
    wait_for(&inbox, "both dead", |c| c.dead == 2).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    let mut errors: Vec<&str> = page.notifications.iter().map(|d| d.last_error()).collect();
    errors.sort();
    assert_eq!(
        errors[0],
        "the handler did not finish within its lease (1s)"
    );
    assert_eq!(errors[1], "the handler panicked");
}

// ---------------------------------------------------------------- failures

/// Another connection holds the file's write lock (a backup, a migration,
/// another process): the store is unavailable to the writer.
fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.execute_batch("BEGIN IMMEDIATE").unwrap();
    connection
}

#[tokio::test]
async fn storage_unavailable_is_503_and_stores_nothing_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .busy_timeout(Duration::from_millis(100))
            .open(file(&dir))
            .unwrap(),
    );
    let service = stack(&inbox);
    let lock = hold_write_lock(&file(&dir));
    let start = Instant::now();
    let (status, body) = deliver(&service, envelope("notif_1", "ping", 1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < Duration::from_secs(1));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "the inbox is unavailable; retry later");
    drop(lock);
    assert!(rows(&file(&dir)).is_empty());

    // Back: Intercom's retry is accepted.
    assert_eq!(
        deliver(&service, envelope("notif_1", "ping", 2)).await.0,
        StatusCode::OK
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

#[tokio::test]
async fn a_commit_slower_than_the_deadline_is_503_and_not_written_later() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .busy_timeout(Duration::from_secs(5))
            .open(file(&dir))
            .unwrap(),
    )
    .deadline(Duration::from_millis(200));
    let service = stack(&inbox);
    let lock = hold_write_lock(&file(&dir));
    let start = Instant::now();
    let (status, _) = deliver(&service, envelope("notif_1", "ping", 1)).await;
    let took = start.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(3),
        "{took:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(lock);
    // The writer gets the lock now, and drops the insert nobody waits for.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rows(&file(&dir)).is_empty());
    assert_eq!(
        deliver(&service, envelope("notif_1", "ping", 2)).await.0,
        StatusCode::OK
    );
    assert_eq!(rows(&file(&dir)).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_at_once_without_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .channel_capacity(1)
            .busy_timeout(Duration::from_secs(5))
            .open(file(&dir))
            .unwrap(),
    );
    let service = stack(&inbox);
    let lock = hold_write_lock(&file(&dir));
    // The first is taken by the (now stalled) writer, the second fills the
    // channel.
    let first = tokio::spawn({
        let service = service.clone();
        async move { deliver(&service, envelope("notif_1", "ping", 1)).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn({
        let service = service.clone();
        async move { deliver(&service, envelope("notif_2", "ping", 1)).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 3..200 {
        let start = Instant::now();
        let (status, body) = deliver(&service, envelope(&format!("notif_{i}"), "ping", 1)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // At once: a request that waited for the store would take its 5 s
        // (the bound leaves room for a loaded machine).
        assert!(start.elapsed() < Duration::from_secs(1));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "the inbox is overloaded; retry later");
    }
    drop(lock);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
    assert_eq!(inbox.counts().await.unwrap(), counts(2, 0, 0, 0));

    // 503 instead of 429, when configured.
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        SqliteStore::options()
            .channel_capacity(1)
            .busy_timeout(Duration::from_secs(5))
            .open(file(&dir))
            .unwrap(),
    )
    .overload_status(tower_intercom::inbox::OverloadStatus::ServiceUnavailable);
    let service = stack(&inbox);
    let lock = hold_write_lock(&file(&dir));
    let pending: Vec<_> = (0..2)
        .map(|i| {
            let service = service.clone();
            let handle = tokio::spawn(async move {
                deliver(&service, envelope(&format!("notif_{i}"), "ping", 1))
                    .await
                    .0
            });
            std::thread::sleep(Duration::from_millis(100));
            handle
        })
        .collect();
    let (status, _) = deliver(&service, envelope("notif_x", "ping", 1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    drop(lock);
    for handle in pending {
        assert_eq!(handle.await.unwrap(), StatusCode::OK);
    }
}

// ---------------------------------------------------------------- retention

#[tokio::test]
async fn done_ids_are_forgotten_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap())
        // Long enough for the worker's shutdown and the first prune on a
        // loaded machine.
        .retention(Duration::from_secs(1));
    let service = stack(&inbox);
    deliver(&service, envelope("notif_1", "ping", 1)).await;
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|_n: ReceivedNotification| async {
            Ok::<_, std::io::Error>(())
        }))
        .spawn(signal);
    wait_for(&inbox, "done", |c| c.done == 1).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    // Within the retention: a duplicate.
    assert_eq!(inbox.prune().await.unwrap(), 0);
    let (status, _) = deliver(&service, envelope("notif_1", "ping", 2)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    // After it: forgotten, and a redelivery is stored again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(inbox.prune().await.unwrap(), 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
    deliver(&service, envelope("notif_1", "ping", 3)).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

// ---------------------------------------------------------------- load

/// Many deliveries at once go through a few commits (group commit); every
/// one is answered 200 and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_are_committed_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    let n = 2000;
    let start = Instant::now();
    let deliveries: Vec<_> = (0..n)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                deliver(&service, envelope(&format!("notif_{i}"), "ping", 1))
                    .await
                    .0
            })
        })
        .collect();
    for delivery in deliveries {
        assert_eq!(delivery.await.unwrap(), StatusCode::OK);
    }
    let took = start.elapsed();
    let stats = inbox.store().stats();
    eprintln!(
        "{n} concurrent deliveries in {took:?}: {} commits, {:.1} writes per commit on average, {} at most",
        stats.commits,
        stats.writes as f64 / stats.commits as f64,
        stats.largest
    );
    assert_eq!(inbox.counts().await.unwrap().pending, n);
    assert!(stats.largest > 1, "{stats:?}");
    assert!(stats.commits < n, "{stats:?}");
}

// ---------------------------------------------------------------- properties

mod arbitrary_bodies {
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            "\\PC{0,200}".prop_map(String::into_bytes),
            (any::<String>(), any::<String>()).prop_map(|(id, topic)| serde_json::json!({
                "id": id,
                "topic": topic,
                "data": {"item": {}}
            })
            .to_string()
            .into_bytes()),
            // Envelopes with each field present or not, of the right type
            // or not, sometimes twice.
            (
                "(\"type\":(\"notification_event\"|\"x\"|null|7),)?",
                "(\"id\":(\"[a-z]{0,3}\"|7|null),){0,2}",
                "(\"topic\":(\"[a-z]{0,3}\"|\\[\\]),){0,2}",
                "(\"data\":(\\{\\}|\\{\"item\":1\\}|\\{\"item\":1,\"item\":2\\}|1),)?",
            )
                .prop_map(|(kind, id, topic, data)| {
                    format!("{{{kind}{id}{topic}{data}\"x\":0}}").into_bytes()
                }),
            (any::<i64>(), "[a-z{}\\[\\]\":,0-9 ]{0,64}")
                .prop_map(|(n, s)| format!("{{\"id\":{n},\"x\":\"{s}\"}}").into_bytes()),
            "[{}\\[\\]\":,a-z0-9\\\\ ]{0,128}"
                .prop_map(|s| format!("{{\"id\":\"{s}\"}}").into_bytes()),
        ]
    }

    /// The id the receiver must find: a JSON object (UTF-8) with a
    /// non-empty string `id`, a non-empty string `topic`, a `data` object
    /// with an `item`, and no `type` but `notification_event`; none of
    /// these twice.
    fn expected_id(body: &[u8]) -> Option<String> {
        use serde::{de::IgnoredAny, Deserialize, Deserializer};
        use serde_json::Value;

        fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
            Value::deserialize(d).map(Some)
        }
        fn item<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
            IgnoredAny::deserialize(d).map(|_| true)
        }
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(rename = "type", default, deserialize_with = "present")]
            kind: Option<Value>,
            #[serde(default, deserialize_with = "present")]
            id: Option<Value>,
            #[serde(default, deserialize_with = "present")]
            topic: Option<Value>,
            #[serde(default)]
            data: Option<Data>,
        }
        #[derive(Deserialize)]
        struct Data {
            #[serde(default, deserialize_with = "item")]
            item: bool,
        }
        let text = std::str::from_utf8(body).ok()?;
        serde_json::from_str::<IgnoredAny>(text).ok()?;
        if !text
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with('{')
        {
            return None;
        }
        let envelope = serde_json::from_str::<Envelope>(text).ok()?;
        match &envelope.kind {
            None => {}
            Some(Value::String(kind)) if kind == "notification_event" => {}
            Some(_) => return None,
        }
        let non_empty = |field: Option<Value>| match field {
            Some(Value::String(text)) if !text.is_empty() => Some(text),
            _ => None,
        };
        let topic = non_empty(envelope.topic);
        let id = non_empty(envelope.id);
        (topic.is_some() && envelope.data?.item).then_some(id?)
    }

    /// One inbox for every case: opening a file per case would spend the
    /// test's time in `fsync`.
    fn shared() -> &'static (tempfile::TempDir, SqliteInbox) {
        static SHARED: std::sync::OnceLock<(tempfile::TempDir, SqliteInbox)> =
            std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
            (dir, inbox)
        })
    }

    fn stored(path: &Path, id: &str) -> bool {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM intercom_inbox WHERE id = ?1",
                [id],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_receiver_never_panics(bodies in proptest::collection::vec(body(), 1..8)) {
            let (dir, inbox) = shared();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let service = stack(inbox);
                let before = rows(&file(dir)).len();
                let mut valid = std::collections::HashSet::new();
                for body in bodies {
                    let (status, _) = deliver(&service, body.clone()).await;
                    match expected_id(&body) {
                        Some(id) => {
                            prop_assert_eq!(status, StatusCode::OK);
                            prop_assert!(stored(&file(dir), &id));
                            valid.insert(id);
                        }
                        None => prop_assert_eq!(status, StatusCode::BAD_REQUEST),
                    }
                }
                // Nothing else was stored.
                prop_assert!(rows(&file(dir)).len() <= before + valid.len());
                Ok(())
            })?;
        }
    }
}

/// A store whose completions, or whose claims' answers, are slow (a busy
/// disk, a far database).
struct SlowStore {
    inner: tower_intercom::inbox::SqliteStore,
    /// Before each completion is written.
    delay: Duration,
    /// After each claim was committed (its leases already running), before
    /// the worker hears of it.
    claim_delay: Duration,
    /// Completions fail (the store is gone), and are not written.
    refuse_completions: bool,
    /// The first failure recorded is written, then answered as timed out
    /// (its answer lost), so that the worker tries it again.
    lose_first_failure_answer: AtomicBool,
}

impl InboxStore for SlowStore {
    fn insert(&self, n: NewNotification) -> tower_intercom::inbox::InboxFuture<Inserted> {
        self.inner.insert(n)
    }
    fn claim(
        &self,
        request: tower_intercom::inbox::ClaimRequest,
    ) -> tower_intercom::inbox::InboxFuture<tower_intercom::inbox::Claimed> {
        let (claiming, delay) = (self.inner.claim(request), self.claim_delay);
        Box::pin(async move {
            let claimed = claiming.await;
            tokio::time::sleep(delay).await;
            claimed
        })
    }
    fn complete(
        &self,
        id: &str,
        token: &tower_intercom::inbox::LeaseToken,
    ) -> tower_intercom::inbox::InboxFuture<bool> {
        if self.refuse_completions {
            return Box::pin(std::future::ready(Err(
                tower_intercom::StoreError::unavailable("the disk went away"),
            )));
        }
        let (completing, delay) = (self.inner.complete(id, token), self.delay);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            completing.await
        })
    }
    fn fail(
        &self,
        id: &str,
        token: &tower_intercom::inbox::LeaseToken,
        failure: tower_intercom::inbox::Failure,
    ) -> tower_intercom::inbox::InboxFuture<bool> {
        let failing = self.inner.fail(id, token, failure);
        if !self.lose_first_failure_answer.swap(false, Ordering::SeqCst) {
            return failing;
        }
        Box::pin(async move {
            failing.await?;
            Err(tower_intercom::StoreError::timed_out(Duration::from_secs(
                1,
            )))
        })
    }
    fn release(
        &self,
        id: &str,
        token: &tower_intercom::inbox::LeaseToken,
    ) -> tower_intercom::inbox::InboxFuture<bool> {
        self.inner.release(id, token)
    }
    fn counts(&self) -> tower_intercom::inbox::InboxFuture<Counts> {
        self.inner.counts()
    }
    fn dead(
        &self,
        query: DeadQuery,
    ) -> tower_intercom::inbox::InboxFuture<tower_intercom::inbox::DeadPage> {
        self.inner.dead(query)
    }
    fn requeue(&self, id: &str) -> tower_intercom::inbox::InboxFuture<bool> {
        self.inner.requeue(id)
    }
    fn prune_done(&self, before: SystemTime) -> tower_intercom::inbox::InboxFuture<u64> {
        self.inner.prune_done(before)
    }
}

/// A handler that overran its lease is stopped before its slot goes to
/// another notification, even while outcomes wait to be written: the same
/// notification never runs twice at once, in one worker or across two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_never_runs_twice_at_once_when_outcomes_are_slow() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = tower_intercom::inbox::Inbox::new(SlowStore {
        inner: tower_intercom::inbox::SqliteStore::open(file(&dir)).unwrap(),
        delay: Duration::from_secs(3),
        claim_delay: Duration::ZERO,
        refuse_completions: false,
        lose_first_failure_answer: AtomicBool::new(false),
    });
    for id in ["notif_quick", "notif_slow"] {
        inbox
            .store()
            .insert(NewNotification::new(id, "ping", Bytes::from_static(b"{}")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    /// Counts the runs of the slow notification going on.
    struct Running(Arc<AtomicU32>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let handler = {
        let (running, most) = (running.clone(), most.clone());
        handler_fn(move |notification: ReceivedNotification| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                if notification.id() == "notif_slow" {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _running = Running(running);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok::<_, std::io::Error>(())
            }
        })
    };
    let first = inbox
        .worker(handler.clone())
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .spawn(std::future::pending());
    while running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = inbox
        .worker(handler)
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .spawn(std::future::pending());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.abort();
    second.abort();
    assert_eq!(most.load(Ordering::SeqCst), 1, "ran twice at once");
}

/// A claim that takes long to come back (its commit waited for a slow
/// disk) leaves the handler less time: the worker stops it a margin before
/// the lease ends, counted from the claim, and records the overrun itself,
/// before the lease lapses.
#[tokio::test]
async fn a_slow_claim_does_not_push_the_handler_past_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = tower_intercom::inbox::Inbox::new(SlowStore {
        inner: tower_intercom::inbox::SqliteStore::open(file(&dir)).unwrap(),
        delay: Duration::ZERO,
        // More than the worker's margin (a tenth of the lease).
        claim_delay: Duration::from_millis(300),
        refuse_completions: false,
        lose_first_failure_answer: AtomicBool::new(false),
    });
    inbox
        .store()
        .insert(NewNotification::new(
            "notif_stuck",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|_: ReceivedNotification| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .lease(Duration::from_secs(1))
        .max_attempts(1)
        .spawn(signal);
    wait_for(&inbox, "dead", |c| c.dead == 1).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(
        page.notifications[0].last_error(),
        "the handler did not finish within its lease (1s)"
    );
}

/// A store that does not answer a claim (a stalled disk) cannot hold a
/// worker's shutdown: the worker waits for the claim within its grace
/// period, then stops; what the claim leased is taken again, by another
/// worker, once its lease has lapsed.
#[tokio::test]
async fn a_claim_that_never_answers_does_not_hold_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let stalled = tower_intercom::inbox::Inbox::new(SlowStore {
        inner: tower_intercom::inbox::SqliteStore::open(file(&dir)).unwrap(),
        delay: Duration::ZERO,
        // Committed at once, answered after an hour.
        claim_delay: Duration::from_secs(3600),
        refuse_completions: false,
        lose_first_failure_answer: AtomicBool::new(false),
    });
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    stalled
        .store()
        .insert(NewNotification::new(
            "notif_stalled",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    let (trigger, signal) = shutdown();
    let worker = stalled
        .worker(handler_fn(|_: ReceivedNotification| async {
            Ok::<_, std::io::Error>(())
        }))
        .lease(Duration::from_secs(1))
        .grace_period(Duration::from_millis(200))
        .spawn(signal);
    wait_for(&inbox, "leased by the stalled claim", |c| {
        c.in_progress == 1
    })
    .await;
    let stopping = Instant::now();
    trigger.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the shutdown waited for a claim that never answers")
        .unwrap();
    assert!(stopping.elapsed() >= Duration::from_millis(150));

    // Nothing lost: another worker takes it once the lease has lapsed.
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|_: ReceivedNotification| async {
            Ok::<_, std::io::Error>(())
        }))
        .poll_interval(Duration::from_millis(20))
        .spawn(signal);
    wait_for(&inbox, "done by another worker", |c| c.done == 1).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// A failed attempt is reported at `warn` (at most once per 10 s), with
/// the notification's id and the handler's error: otherwise retries go
/// unseen until the notification is dead, an hour later. So is a request
/// signed with the app's secret but refused for not being a notification.
/// (Before, both were logged at `debug` only.)
#[tokio::test]
async fn failed_attempts_and_refused_requests_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    // This test's runtime runs on this thread: its logs are captured.
    let (logs, capturing) = Logs::start();
    let service = stack(&inbox);
    let (status, _) = deliver(&service, r#"{"topic":"ping"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        deliver(&service, envelope("notif_flaky", "ping", 1))
            .await
            .0,
        StatusCode::OK
    );
    let failed = Arc::new(AtomicBool::new(false));
    let (trigger, signal) = shutdown();
    let worker = {
        let failed = failed.clone();
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                let first = !failed.swap(true, Ordering::SeqCst);
                async move {
                    if first {
                        return Err(std::io::Error::other("the CRM said no"));
                    }
                    Ok(())
                }
            }))
            .backoff(Duration::from_millis(10), Duration::from_millis(10))
            .poll_interval(Duration::from_millis(20))
            .spawn(signal)
    };
    wait_for(&inbox, "done after a retry", |c| c.done == 1).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    drop(capturing);
    let logs = logs.text();
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains("WARN")).collect();
    assert!(
        warnings.iter().any(|line| line.contains("notif_flaky")
            && line.contains("attempt 1 of 12")
            && line.contains("the CRM said no")),
        "{logs}"
    );
    assert!(
        warnings.iter().any(|line| line.contains("refused with 400")
            && line.contains("the notification has no `id`")),
        "{logs}"
    );
    assert_eq!(warnings.len(), 2, "{logs}");
}

/// Runs a worker (50 ms backoff, 5 s poll) whose handler fails `failing`
/// times before it succeeds, until the inbox's one notification is done:
/// how long that took, and how many times the handler ran.
async fn done_after_failures<St: InboxStore>(
    inbox: &tower_intercom::inbox::Inbox<St>,
    failing: u32,
) -> (Duration, u32) {
    let runs = Arc::new(AtomicU32::new(0));
    let (trigger, signal) = shutdown();
    let started = Instant::now();
    let worker = {
        let runs = runs.clone();
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                let failed = runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    if failed < failing {
                        return Err(std::io::Error::other("not yet"));
                    }
                    Ok(())
                }
            }))
            .backoff(Duration::from_millis(50), Duration::from_millis(50))
            .poll_interval(Duration::from_secs(5))
            .spawn(signal)
    };
    wait_for(inbox, "done after the retries", |c| c.done == 1).await;
    let took = started.elapsed();
    trigger.send(()).unwrap();
    worker.await.unwrap();
    (took, runs.load(Ordering::SeqCst))
}

/// A retry is taken when it is due, not at the next poll (here 5 s): the
/// failure is recorded after the worker's last claim looked for work.
#[tokio::test]
async fn a_retry_is_taken_when_due_not_at_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let service = stack(&inbox);
    deliver(&service, envelope("notif_flaky", "ping", 1)).await;
    let (took, runs) = done_after_failures(&inbox, 2).await;
    assert_eq!(runs, 3);
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// A retry whose recording needed a second try (the first was written,
/// its answer lost) is still waited for, not found at the next poll
/// (here 5 s): the second try answers "not recorded", since the first
/// ended the lease.
#[tokio::test]
async fn a_retry_recorded_on_a_second_try_is_taken_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = tower_intercom::inbox::Inbox::new(SlowStore {
        inner: tower_intercom::inbox::SqliteStore::open(file(&dir)).unwrap(),
        delay: Duration::ZERO,
        claim_delay: Duration::ZERO,
        refuse_completions: false,
        lose_first_failure_answer: AtomicBool::new(true),
    });
    inbox
        .store()
        .insert(NewNotification::new(
            "notif_flaky",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    let (took, runs) = done_after_failures(&inbox, 1).await;
    assert_eq!(runs, 2);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A notification processed but not marked done, because the store
/// refused the completion and its retries, is reported at `warn`: it will
/// be processed again when its lease lapses, and the operator must hear of
/// it. (Before, the worker said so only at `debug`.)
#[tokio::test]
async fn a_completion_the_store_refuses_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = tower_intercom::inbox::Inbox::new(SlowStore {
        inner: tower_intercom::inbox::SqliteStore::open(file(&dir)).unwrap(),
        delay: Duration::ZERO,
        claim_delay: Duration::ZERO,
        refuse_completions: true,
        lose_first_failure_answer: AtomicBool::new(false),
    });
    inbox
        .store()
        .insert(NewNotification::new(
            "notif_unrecorded",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    // This test's runtime runs on this thread: the worker's logs are
    // captured.
    let (logs, capturing) = Logs::start();
    let runs = Arc::new(AtomicU32::new(0));
    let (trigger, signal) = shutdown();
    let worker = {
        let runs = runs.clone();
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                runs.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::io::Error>(()) }
            }))
            .lease(Duration::from_secs(30))
            .spawn(signal)
    };
    let start = Instant::now();
    while !logs.text().contains("WARN") && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger.send(()).unwrap();
    worker.await.unwrap();
    drop(capturing);
    let logs = logs.text();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let warning = logs
        .lines()
        .find(|line| line.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(
        warning.contains("cannot record") && warning.contains("the disk went away"),
        "{warning}"
    );
    // Not done: still leased, taken again when the lease lapses.
    let counts = inbox.counts().await.unwrap();
    assert_eq!((counts.done, counts.in_progress), (0, 1), "{counts:?}");
}

/// `requeue_all` requeues each notification dead when it started, once,
/// and ends, even while a worker fails what it requeues as fast as it
/// can: going back to the first page until none was left, it requeued
/// the same notifications again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_all_ends_while_workers_keep_failing_what_it_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(file(&dir)).unwrap());
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..600 {
        let inbox = inbox.clone();
        inserts.spawn(async move {
            inbox
                .store()
                .insert(NewNotification::new(
                    format!("notif_{i:03}"),
                    "ping",
                    Bytes::from_static(b"{}"),
                ))
                .await
                .unwrap()
        });
    }
    while inserts.join_next().await.is_some() {}
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(|_: ReceivedNotification| async {
            Err::<(), _>(std::io::Error::other("always fails"))
        }))
        .max_attempts(1)
        .concurrency(64)
        .poll_interval(Duration::from_millis(1))
        .spawn(signal);
    wait_for(&inbox, "all dead", |c| c.dead == 600).await;

    let requeued = tokio::time::timeout(Duration::from_secs(30), inbox.requeue_all())
        .await
        .expect("requeue_all kept requeueing what the worker failed again")
        .unwrap();
    assert_eq!(requeued, 600);
    trigger.send(()).unwrap();
    worker.await.unwrap();
}
