//! The durable inbox with the Redis store, against a real `redis-server`
//! started on a free loopback port for each test (in a temporary
//! directory, for its append-only file), with real HTTP servers, threads
//! and processes, no mocks.
//!
//! `redis-server` must be on `PATH` (`./scripts/test.sh` installs it):
//! without it these tests fail, they never skip.
#![cfg(feature = "inbox-redis")]

use std::{
    collections::HashSet,
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use redis::AsyncCommands;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_intercom::{
    inbox::{
        handler_fn, ClaimRequest, Counts, DeadQuery, Failure, HandlerFn, Inbox, InboxStore,
        Inserted, NewNotification, OverloadStatus, Persistence, ReceivedNotification, RedisInbox,
        RedisStore,
    },
    sign, StoreErrorKind, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
};
use tower_intercom_test_support::{
    examples::free_port,
    logs::Logs,
    proxy::SilencingProxy,
    redis_server::{RedisServer as Server, AOF_ALWAYS, VOLATILE},
};

/// A plain connection, to look at the keys as another client would.
async fn raw(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn xlen(redis: &mut redis::aio::MultiplexedConnection, key: impl AsRef<str>) -> usize {
    redis::cmd("XLEN")
        .arg(key.as_ref())
        .query_async(redis)
        .await
        .unwrap()
}

fn key(name: &str) -> String {
    format!("{{tower-intercom:inbox}}:{name}")
}

async fn inbox(server: &Server) -> RedisInbox {
    Inbox::new(RedisStore::connect(&server.url()).await.unwrap())
}

// ---------------------------------------------------------------- requests

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

fn stack(inbox: &RedisInbox) -> Stack {
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
    deliver_owned(service, body)
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

/// Serves the stack over HTTP/1.1 on a free loopback port, as a receiver
/// process would.
async fn serve(inbox: &RedisInbox) -> SocketAddr {
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

/// A signed `POST` over a new connection; returns the status and whether it
/// was answered as a duplicate.
async fn post(addr: SocketAddr, body: String) -> (StatusCode, bool) {
    let request = Request::post("/webhooks/intercom")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let duplicate = response.headers().contains_key("x-intercom-duplicate");
    (response.status(), duplicate)
}

async fn wait_for(inbox: &RedisInbox, what: &str, check: impl Fn(Counts) -> bool) -> Counts {
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

fn shutdown() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (trigger, signal) = tokio::sync::oneshot::channel::<()>();
    (trigger, async move {
        let _ = signal.await;
    })
}

type OkHandler =
    HandlerFn<fn(ReceivedNotification) -> std::future::Ready<Result<(), std::io::Error>>>;

fn ok_handler() -> OkHandler {
    handler_fn(|_| std::future::ready(Ok(())))
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ---------------------------------------------------------------- receive

#[tokio::test]
async fn a_notification_is_committed_before_the_200() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let body = envelope("notif_1", "conversation.user.created", 1);

    let before = millis(SystemTime::now());
    let (status, _) = deliver(&service, body.clone()).await;
    let after = millis(SystemTime::now());
    assert_eq!(status, StatusCode::OK);

    // Another client sees it as soon as the 200 is out: the message and
    // its exact bytes, one stream entry, no attempt yet.
    let mut redis = raw(&server).await;
    let message: Vec<u8> = redis.hget(key("messages"), "notif_1").await.unwrap();
    let mut parts = message.splitn(4, |&b| b == b':');
    let (seq, received_at, topic_len) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(seq, b"1");
    let received_at: u64 = std::str::from_utf8(received_at).unwrap().parse().unwrap();
    assert!((before..=after).contains(&received_at), "{received_at}");
    assert_eq!(topic_len, b"25");
    assert_eq!(parts.next().unwrap(), b"conversation.user.created");
    let stored: Vec<u8> = redis.hget(key("bodies"), "notif_1").await.unwrap();
    assert_eq!(stored, body.as_bytes());
    let entries = xlen(&mut redis, key("stream")).await;
    assert_eq!(entries, 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));

    // Another connection (another receiver) sees the same inbox.
    drop(service);
    drop(inbox);
    let inbox = self::inbox(&server).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

#[tokio::test]
async fn a_redelivery_is_answered_200_and_stores_nothing() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let first = envelope("notif_1", "ping", 1);
    assert_eq!(deliver(&service, first.clone()).await.0, StatusCode::OK);

    let retry = envelope("notif_1", "ping", 2);
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), retry.as_bytes()))
        .body(Full::new(Bytes::from(retry)))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-intercom-duplicate"], "true");
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
    let mut redis = raw(&server).await;
    let stored: Vec<u8> = redis.hget(key("bodies"), "notif_1").await.unwrap();
    assert_eq!(stored, first.as_bytes());
    let entries = xlen(&mut redis, key("stream")).await;
    assert_eq!(entries, 1);

    // Still deduplicated once processed.
    let (trigger, signal) = shutdown();
    let worker = inbox.worker(ok_handler()).spawn(signal);
    wait_for(&inbox, "done", |c| c.done == 1).await;
    assert_eq!(
        deliver(&service, envelope("notif_1", "ping", 3)).await.0,
        StatusCode::OK
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    // Done: the message and the body are gone (also the body the
    // redelivery brought), the id is remembered.
    let message: Option<Vec<u8>> = redis.hget(key("messages"), "notif_1").await.unwrap();
    let stored: Option<Vec<u8>> = redis.hget(key("bodies"), "notif_1").await.unwrap();
    assert_eq!((message, stored), (None, None));
    let entries = xlen(&mut redis, key("stream")).await;
    assert_eq!(entries, 0);
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_id_store_one_entry() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let deliveries: Vec<_> = (1..=64)
        .map(|attempt| {
            let service = service.clone();
            tokio::spawn(
                async move { deliver(&service, envelope("notif_same", "ping", attempt)).await },
            )
        })
        .collect();
    for delivery in deliveries {
        assert_eq!(delivery.await.unwrap().0, StatusCode::OK);
    }
    let mut redis = raw(&server).await;
    let entries = xlen(&mut redis, key("stream")).await;
    assert_eq!(entries, 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

/// Inserts that arrive together go to Redis together (one script call per
/// batch): each notification is still deduplicated on its own, also
/// against a copy in the same batch, and gets its own sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_sent_together_are_deduplicated_and_numbered_one_by_one() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let inserts: Vec<_> = (0..300)
        .map(|i| {
            let store = inbox.store().clone();
            let id = format!("notif_batch_{}", i % 100);
            tokio::spawn(async move {
                let inserted = store
                    .insert(NewNotification::new(
                        id.clone(),
                        "ping",
                        Bytes::from(format!("{{\"id\":\"{id}\"}}")),
                    ))
                    .await
                    .unwrap();
                (id, inserted)
            })
        })
        .collect();
    let mut stored = HashSet::new();
    let mut duplicates = 0;
    for insert in inserts {
        match insert.await.unwrap() {
            (id, Inserted::Stored) => assert!(stored.insert(id), "stored twice"),
            (_, Inserted::Duplicate) => duplicates += 1,
        }
    }
    assert_eq!((stored.len(), duplicates), (100, 200));
    let mut redis = raw(&server).await;
    assert_eq!(xlen(&mut redis, key("stream")).await, 100);
    let messages: Vec<Vec<u8>> = redis.hvals(key("messages")).await.unwrap();
    let numbers: HashSet<u64> = messages
        .iter()
        .map(|message| {
            let end = message.iter().position(|&b| b == b':').unwrap();
            std::str::from_utf8(&message[..end])
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (1..=100).collect::<HashSet<u64>>());
    assert_eq!(inbox.counts().await.unwrap(), counts(100, 0, 0, 0));
}

/// The script calls Redis has run so far (`EVALSHA`, from `INFO
/// commandstats`).
async fn script_calls(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

/// Completions that arrive together share one script call, and each is
/// still fenced on its own: a stale token, an unknown id and a second
/// completion of the same lease are refused, the others are done.
#[tokio::test]
async fn completions_sent_together_share_a_call_and_are_fenced_one_by_one() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    for i in 0..100 {
        let id = format!("notif_done_{i}");
        let body = Bytes::from(format!("{{\"id\":\"{id}\"}}"));
        store
            .insert(NewNotification::new(id, "ping", body))
            .await
            .unwrap();
    }
    let claimed = store
        .claim(ClaimRequest::new(100, Duration::from_secs(60), 5))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 100);
    let stale_token = || tower_intercom::inbox::LeaseToken::new(7);
    let mut completions: Vec<(String, _)> = claimed
        .leases
        .iter()
        .map(|lease| (lease.notification.id().to_owned(), lease.token.clone()))
        .collect();
    let first = completions[0].clone();
    completions.push(first); // the same lease twice
    completions.push(("notif_done_1".to_owned(), stale_token())); // someone else's token
    completions.push(("notif_unknown".to_owned(), claimed.leases[2].token.clone()));

    // Redis learns the script first (EVALSHA, NOSCRIPT, then EVAL).
    assert!(!store
        .complete("notif_unknown", &stale_token())
        .await
        .unwrap());
    let mut redis = raw(&server).await;
    let before = script_calls(&mut redis).await;
    // One poll queues them all before the write task runs (this runtime
    // has one thread): they go in one call.
    let answers = futures_util::future::join_all(
        completions
            .iter()
            .map(|(id, token)| store.complete(id, token)),
    )
    .await;
    let calls = script_calls(&mut redis).await - before;
    let answers: Vec<bool> = answers.into_iter().map(Result::unwrap).collect();
    assert!(answers[..100].iter().all(|done| *done));
    assert_eq!(answers[100..], [false, false, false]);
    assert_eq!(
        calls,
        1,
        "{} completions took {calls} script calls",
        answers.len()
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 100, 0));
    let leases: usize = redis.hlen(key("leases")).await.unwrap();
    let messages: usize = redis.hlen(key("messages")).await.unwrap();
    let bodies: usize = redis.hlen(key("bodies")).await.unwrap();
    assert_eq!(
        (
            leases,
            messages,
            bodies,
            xlen(&mut redis, key("stream")).await
        ),
        (0, 0, 0, 0)
    );
}

/// A stream restored by hand, with entry ids whose sequence part is past
/// what a Lua number holds exactly: claims trim only what they read, so
/// every notification waiting is still claimed, one by one, in order.
#[tokio::test]
async fn entries_with_large_sequence_numbers_are_all_claimed() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    for id in ["notif_a", "notif_b", "notif_c", "notif_d"] {
        let body = Bytes::from(format!("{{\"id\":\"{id}\"}}"));
        store
            .insert(NewNotification::new(id, "ping", body))
            .await
            .unwrap();
    }
    let mut redis = raw(&server).await;
    let _: () = redis.del(key("stream")).await.unwrap();
    for (entry, id) in [
        ("5-9007199254740994", "notif_a"),
        ("5-9007199254740995", "notif_b"),
        ("5-9007199254740996", "notif_c"),
        ("5-18446744073709551615", "notif_d"),
    ] {
        let _: String = redis::cmd("XADD")
            .arg(key("stream"))
            .arg(entry)
            .arg("id")
            .arg(id)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let mut claimed = Vec::new();
    for _ in 0..4 {
        let claim = store
            .claim(ClaimRequest::new(1, Duration::from_secs(60), 5))
            .await
            .unwrap();
        assert_eq!(claim.leases.len(), 1, "after {claimed:?}");
        claimed.push(claim.leases[0].notification.id().to_owned());
    }
    assert_eq!(claimed, ["notif_a", "notif_b", "notif_c", "notif_d"]);
    assert_eq!(xlen(&mut redis, key("stream")).await, 0);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 4, 0, 0));
}

/// Large notifications among small ones (batches are bounded in bytes as
/// well as in count): all stored, each answered for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_notifications_sent_together_are_all_stored() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let inserts: Vec<_> = (0..60)
        .map(|i| {
            let store = inbox.store().clone();
            // Every tenth is 1.5 MiB, more than one batch carries.
            let size = if i % 10 == 0 { 1536 * 1024 } else { 2048 };
            let body = Bytes::from(vec![b'x'; size]);
            tokio::spawn(async move {
                let id = format!("notif_size_{i}");
                (
                    size,
                    store.insert(NewNotification::new(id, "ping", body)).await,
                )
            })
        })
        .collect();
    for insert in inserts {
        let (size, inserted) = insert.await.unwrap();
        assert!(
            matches!(inserted, Ok(Inserted::Stored)),
            "{size} bytes: {inserted:?}"
        );
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(60, 0, 0, 0));
    let mut redis = raw(&server).await;
    let large: Vec<u8> = redis.hget(key("bodies"), "notif_size_10").await.unwrap();
    assert_eq!(large, vec![b'x'; 1536 * 1024]);
}

/// The task that sends inserts runs in the store's runtime, not in the
/// runtime of whoever inserted first: a runtime that is kept but no longer
/// driven (a `block_on` done with) holds nothing up.
#[test]
fn inserts_do_not_depend_on_the_runtime_that_made_the_first_one() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start_with(VOLATILE);
    let inbox = main.block_on(inbox(&server));
    let insert = |id: &str| {
        inbox
            .store()
            .insert(NewNotification::new(id, "ping", Bytes::from_static(b"{}")))
    };
    let side = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = side.block_on(insert("notif_first"));
    assert!(matches!(first, Ok(Inserted::Stored)), "{first:?}");
    // `side` stays alive, idle.
    let second = main.block_on(insert("notif_second"));
    assert!(matches!(second, Ok(Inserted::Stored)), "{second:?}");
    drop(side);
    let third = main.block_on(insert("notif_third"));
    assert!(matches!(third, Ok(Inserted::Stored)), "{third:?}");
    assert_eq!(main.block_on(inbox.counts()).unwrap(), counts(3, 0, 0, 0));
}

/// An insert polled outside any runtime (a Tokio timer panics there, as
/// for every store call) leaves the store working for the inserts after
/// it.
#[test]
fn an_insert_polled_outside_a_runtime_does_not_break_the_store() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start_with(VOLATILE);
    let inbox = main.block_on(inbox(&server));
    let _ = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut insert = inbox.store().insert(NewNotification::new(
                    "notif_outside",
                    "ping",
                    Bytes::from_static(b"{}"),
                ));
                let waker = std::task::Waker::noop();
                let _ = insert
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(waker));
            })
            .join()
    });
    for i in 0..3 {
        let later = main.block_on(inbox.store().insert(NewNotification::new(
            format!("notif_later_{i}"),
            "ping",
            Bytes::from_static(b"{}"),
        )));
        assert!(matches!(later, Ok(Inserted::Stored)), "{later:?}");
    }
}

/// Two receiver processes (two inboxes, two connections, two HTTP servers)
/// sharing one Redis get the same notification at once: one entry, and
/// the workers of both process it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_sharing_redis_store_and_process_a_notification_once() {
    let server = Server::start_with(VOLATILE);
    let (a, b) = (inbox(&server).await, inbox(&server).await);
    let (addr_a, addr_b) = (serve(&a).await, serve(&b).await);
    assert_ne!(addr_a, addr_b);

    for round in 0..5 {
        let id = format!("notif_shared_{round}");
        let posts: Vec<_> = (0..16u32)
            .map(|i| {
                let addr = if i % 2 == 0 { addr_a } else { addr_b };
                tokio::spawn(post(addr, envelope(&id, "ping", i + 1)))
            })
            .collect();
        let mut stored = 0;
        for post in posts {
            let (status, duplicate) = post.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            stored += usize::from(!duplicate);
        }
        assert_eq!(stored, 1, "{id}");
    }
    assert_eq!(a.counts().await.unwrap(), counts(5, 0, 0, 0));
    let mut redis = raw(&server).await;
    let entries = xlen(&mut redis, key("stream")).await;
    assert_eq!(entries, 5);

    let calls = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = [&a, &b]
        .into_iter()
        .map(|inbox| {
            let calls = calls.clone();
            let (trigger, signal) = shutdown();
            let worker = inbox
                .worker(handler_fn(move |n: ReceivedNotification| {
                    calls.lock().unwrap().push(n.id().to_owned());
                    async { Ok::<_, std::io::Error>(()) }
                }))
                .poll_interval(Duration::from_millis(10))
                .spawn(signal);
            (trigger, worker)
        })
        .collect();
    wait_for(&a, "all done", |c| c.done == 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (trigger, worker) in workers {
        trigger.send(()).unwrap();
        worker.await.unwrap();
    }
    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("notif_shared_{i}")).collect();
    assert_eq!(calls, expected);
    assert_eq!(b.counts().await.unwrap(), counts(0, 0, 5, 0));
}

#[tokio::test]
async fn inboxes_with_other_prefixes_share_nothing() {
    let server = Server::start_with(VOLATILE);
    let a = inbox(&server).await;
    let b = Inbox::new(
        RedisStore::options()
            .key_prefix("staging:intercom")
            .connect(&server.url())
            .await
            .unwrap(),
    );
    assert_eq!(b.store().prefix(), "staging:intercom");
    let body = envelope("notif_1", "ping", 1);
    assert_eq!(deliver(&stack(&a), body.clone()).await.0, StatusCode::OK);
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = stack(&b).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("x-intercom-duplicate"));
    let mut redis = raw(&server).await;
    let entries = xlen(&mut redis, "{staging:intercom}:stream").await;
    assert_eq!(entries, 1);
    assert_eq!(a.counts().await.unwrap(), counts(1, 0, 0, 0));
    assert_eq!(b.counts().await.unwrap(), counts(1, 0, 0, 0));
}

/// Any key prefix is a setting like another: empty ones and ones with
/// braces (which the keys' hash tag is made of) work, apart from each
/// other. They panicked before.
#[tokio::test]
async fn any_key_prefix_works_and_keeps_inboxes_apart() {
    let server = Server::start_with(VOLATILE);
    let mut inboxes = Vec::new();
    for prefix in ["", "}", "a}b", "{x}", "a}:stream"] {
        let inbox = Inbox::new(
            RedisStore::options()
                .key_prefix(prefix)
                .connect(&server.url())
                .await
                .unwrap(),
        );
        assert_eq!(inbox.store().prefix(), prefix);
        let body = envelope("notif_same", "ping", 1);
        let (status, _) = deliver(&stack(&inbox), body).await;
        assert_eq!(status, StatusCode::OK, "{prefix:?}");
        inboxes.push(inbox);
    }
    // One notification each: the same id in another inbox is no duplicate.
    for inbox in &inboxes {
        assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
    }
    // And on a store made on a connection of its own.
    let store = RedisStore::options()
        .key_prefix("b}{")
        .connect(&server.url())
        .await
        .unwrap();
    assert_eq!(store.prefix(), "b}{");
}

#[tokio::test]
async fn bodies_that_are_not_notifications_get_400_and_store_nothing() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"[{\"id\":\"notif_1\"}]".to_vec(),
        b"\"notif_1\"".to_vec(),
        b"null".to_vec(),
        b"{}".to_vec(),
        br#"{"data":{"id":"notif_1"}}"#.to_vec(),
        br#"{"id":""}"#.to_vec(),
        br#"{"id":null}"#.to_vec(),
        br#"{"id":42}"#.to_vec(),
        br#"{"id":{"a":1}}"#.to_vec(),
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
    let mut redis = raw(&server).await;
    let keys: Vec<String> = redis.keys("*").await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");

    // Requests that did not pass the verifying layer: 500, nothing stored.
    let mut receiver = inbox.receiver();
    let request = Request::post("/")
        .body(WebhookBody::from(envelope("notif_1", "ping", 1)))
        .unwrap();
    let response = receiver.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let keys: Vec<String> = redis.keys("*").await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn odd_but_valid_ids_are_stored_exactly() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let huge = "n".repeat(2 * 1024 * 1024 - 200); // near the 2 MiB body limit
    let ids = [
        "notif_\u{e9}\u{1F600}\u{65e5}".to_owned(),
        "quote\"back\\slash".to_owned(),
        "nul\u{0}inside".to_owned(),
        "nul".to_owned(),
        " ".to_owned(),
        "with space and : colon".to_owned(),
        "\u{202e}rtl".to_owned(),
        "{tower-intercom:inbox}:messages".to_owned(),
        huge.clone(),
    ];
    for id in &ids {
        let body = minimal(id).to_string();
        assert_eq!(
            deliver(&service, body).await.0,
            StatusCode::OK,
            "{}",
            id.len()
        );
    }
    assert_eq!(
        inbox.counts().await.unwrap(),
        counts(ids.len() as u64, 0, 0, 0)
    );
    // Each is a duplicate of itself only.
    for id in &ids {
        let body = minimal(id).to_string();
        let request = Request::post("/")
            .header("x-hub-signature", sign(&secret(), body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-intercom-duplicate"], "true");
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            assert_eq!(n.topic(), "ping");
            let body: serde_json::Value = n.json().unwrap();
            assert_eq!(body["id"], n.id());
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

// ---------------------------------------------------------------- process

#[tokio::test]
async fn failures_are_retried_with_backoff_then_dead_then_requeued() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
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
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
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
    // In the order they were received.
    assert_eq!(ids, ["notif_0", "notif_1", "notif_2", "notif_3", "notif_4"]);
    assert!(inbox
        .dead(DeadQuery::after(2, "not a cursor"))
        .await
        .is_err());
    assert_eq!(inbox.requeue_all().await.unwrap(), 5);
    assert_eq!(inbox.counts().await.unwrap(), counts(5, 0, 0, 0));
}

/// A worker stalled past its lease (its whole runtime blocked): another
/// worker takes the notification once the lease has lapsed, and the
/// stalled worker's late success is fenced off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_loses_its_lease_and_its_late_completion_is_fenced() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
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
    assert!(!finished.load(Ordering::SeqCst));
    let mut redis = raw(&server).await;
    let first_done_at: f64 = redis.zscore(key("done"), "notif_slow").await.unwrap();

    stalled.join().unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    let done_at: f64 = redis.zscore(key("done"), "notif_slow").await.unwrap();
    assert_eq!(done_at, first_done_at);
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// The fence at the store level: of two holders of one notification (the
/// second after the first's lease lapsed), only the current one can
/// complete, fail or release it. A lease lapses at its holder's deadline,
/// whatever lease the next claimer asks for.
#[tokio::test]
async fn completion_is_fenced_by_the_lease_token() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
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
    let again = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    assert!(again.leases.is_empty());
    // The next thing due is the lease's end.
    let due = again
        .next_due
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(due <= lease, "{due:?}");
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
    assert!(!store.complete("notif_other", current).await.unwrap());
    assert!(store.complete("notif_1", current).await.unwrap());
    assert!(!store.complete("notif_1", current).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
}

/// The store's contract step by step: attempts, release, retry times,
/// dead after a lapsed last attempt, requeue.
#[tokio::test]
async fn attempts_release_retries_and_lapses_follow_the_store_contract() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    let long = Duration::from_secs(30);
    for id in ["a", "b", "c"] {
        store
            .insert(NewNotification::new(id, "t", Bytes::from(id)))
            .await
            .unwrap();
    }
    // Oldest first, at most `max`.
    let claimed = store.claim(ClaimRequest::new(2, long, 3)).await.unwrap();
    let ids: Vec<&str> = claimed.leases.iter().map(|l| l.notification.id()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(claimed.next_due, Some(claimed.next_due.unwrap())); // "c" waits
    assert!(claimed.next_due.unwrap() <= SystemTime::now() + Duration::from_millis(5));
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 2, 0, 0));
    let (a, b) = (&claimed.leases[0], &claimed.leases[1]);
    assert_eq!(a.notification.bytes(), "a");
    assert_eq!(a.notification.topic(), "t");

    // Release: pending at once, the attempt not used; behind "c".
    assert!(store.release("a", &a.token).await.unwrap());
    assert!(!store.release("a", &a.token).await.unwrap());
    // Fail with a retry 300 ms from now.
    let retry_at = SystemTime::now() + Duration::from_millis(300);
    assert!(store
        .fail("b", &b.token, Failure::retry("boom", retry_at))
        .await
        .unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(3, 0, 0, 0));
    let claimed = store.claim(ClaimRequest::new(10, long, 3)).await.unwrap();
    let got: Vec<(&str, u32)> = claimed
        .leases
        .iter()
        .map(|l| (l.notification.id(), l.notification.attempt()))
        .collect();
    assert_eq!(got, [("c", 1), ("a", 1)]);
    // Due when the retry is: not before it (give or take the milliseconds
    // Redis rounds to), and late only by the round trips, however slow
    // the machine.
    let next_due = claimed.next_due.unwrap();
    assert!(
        next_due + Duration::from_millis(20) >= retry_at,
        "due {:?} before the retry",
        retry_at.duration_since(next_due).unwrap_or_default()
    );
    assert!(
        next_due <= retry_at + Duration::from_millis(500),
        "due {:?} after the retry",
        next_due.duration_since(retry_at).unwrap_or_default()
    );
    let until = next_due
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until + Duration::from_millis(20)).await;
    let claimed_b = store
        .claim(ClaimRequest::new(10, Duration::from_millis(50), 2))
        .await
        .unwrap();
    assert_eq!(claimed_b.leases.len(), 1);
    assert_eq!(claimed_b.leases[0].notification.id(), "b");
    assert_eq!(claimed_b.leases[0].notification.attempt(), 2);

    // Its lease lapses at its second attempt of two: dead.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let none = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    assert!(none.leases.is_empty());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 2, 0, 1));
    let dead = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(dead.notifications.len(), 1);
    assert_eq!(dead.notifications[0].notification.id(), "b");
    assert_eq!(dead.notifications[0].notification.attempt(), 2);
    assert!(dead.notifications[0].last_error().contains("lease lapsed"));
    // The lapsed holder can do nothing any more.
    assert!(!store
        .complete("b", &claimed_b.leases[0].token)
        .await
        .unwrap());

    // Requeue: attempts start again.
    assert!(store.requeue("b").await.unwrap());
    let claimed = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    assert_eq!(claimed.leases.len(), 1);
    assert_eq!(claimed.leases[0].notification.attempt(), 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 3, 0, 0));

    // Nothing pending and no lease ending soon: next due is a lease end.
    let none = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    let until = none
        .next_due
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(until > Duration::from_secs(25), "{until:?}");

    // The consumer group deleted by hand: rebuilt from the stream, and the
    // leases still hold.
    let mut redis = raw(&server).await;
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(key("stream"))
        .arg("workers")
        .query_async(&mut redis)
        .await
        .unwrap();
    store
        .insert(NewNotification::new("d", "t", Bytes::new()))
        .await
        .unwrap();
    let claimed_d = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    let ids: Vec<&str> = claimed_d
        .leases
        .iter()
        .map(|l| l.notification.id())
        .collect();
    assert_eq!(ids, ["d"]);
    assert!(store.complete("b", &claimed.leases[0].token).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 3, 1, 0));
}

#[tokio::test]
async fn a_claim_that_fails_after_leasing_hands_its_leases_back() {
    // A user who may run the inbox's scripts (and `HMGET` from them) but
    // not `HMGET` the bodies' hash: the claim script leases, then
    // reading the bodies fails.
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let mut redis = raw(&server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("claimer")
        .arg("on")
        .arg(">claimer-password")
        .arg("+@all")
        .arg("-hmget")
        .arg("~*")
        .arg("(+hmget ~{tower-intercom:inbox}:[^b]*)")
        .query_async(&mut redis)
        .await
        .unwrap();
    let url = format!(
        "redis://claimer:claimer-password@127.0.0.1:{}/",
        server.port()
    );
    let claimer = Inbox::new(RedisStore::connect(&url).await.unwrap());
    inbox
        .store()
        .insert(NewNotification::new("x", "t", Bytes::from("x body")))
        .await
        .unwrap();

    let lease = Duration::from_secs(30);
    let failed = claimer
        .store()
        .claim(ClaimRequest::new(10, lease, 1))
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("NoPerm"), "{failed}");
    // The script ran: the lease was taken before the reading failed.
    let counted: Option<String> = redis.hget(key("attempts"), "x").await.unwrap();
    assert!(counted.is_some());
    // Handed back at once, its attempt with it: not in progress until
    // the lease's end, not dead of a lapse no handler caused.
    wait_for(&inbox, "the lease handed back", |c| c == counts(1, 0, 0, 0)).await;
    let attempts: Option<String> = redis.hget(key("attempts"), "x").await.unwrap();
    assert_eq!(attempts.as_deref(), Some("0"));
    let claimed = inbox
        .store()
        .claim(ClaimRequest::new(10, lease, 1))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 1);
    assert_eq!(claimed.leases[0].notification.attempt(), 1);
    assert_eq!(claimed.leases[0].notification.bytes(), "x body");
}

#[tokio::test]
async fn a_notification_whose_body_is_missing_is_dead_not_handed_out_empty() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    for id in ["kept", "lost"] {
        store
            .insert(NewNotification::new(id, "t", Bytes::from(id)))
            .await
            .unwrap();
    }
    // Deleted by hand (or evicted under an allkeys- policy).
    let mut redis = raw(&server).await;
    let _: () = redis.hdel(key("bodies"), "lost").await.unwrap();

    let claimed = store
        .claim(ClaimRequest::new(10, Duration::from_secs(30), 5))
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.leases.iter().map(|l| l.notification.id()).collect();
    assert_eq!(ids, ["kept"]);
    wait_for(&inbox, "the missing one dead", |c| c.dead == 1).await;
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(page.notifications.len(), 1);
    let dead = &page.notifications[0];
    assert_eq!(dead.notification.id(), "lost");
    assert!(
        dead.last_error().contains("body is missing"),
        "{}",
        dead.last_error()
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 1, 0, 1));
}

#[tokio::test]
async fn shutdown_hands_back_what_is_in_flight_without_using_an_attempt() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
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
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 1, 0));
    let mut redis = raw(&server).await;
    let attempts: u32 = redis.hget(key("attempts"), "notif_hang").await.unwrap();
    assert_eq!(attempts, 0);

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
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
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
        errors,
        [
            "the handler did not finish within its lease (1s)",
            "the handler panicked"
        ]
    );
}

const CHILD_ROLE: &str = "TOWER_INTERCOM_INBOX_REDIS_CHILD";
const CHILD_URL: &str = "TOWER_INTERCOM_INBOX_REDIS_CHILD_URL";
const CHILD_MARKER: &str = "TOWER_INTERCOM_INBOX_REDIS_CHILD_MARKER";

/// Not a test on its own: the worker process of
/// `a_killed_worker_process_leaves_the_notification_to_another`.
#[tokio::test]
async fn child_worker_process() {
    if std::env::var_os(CHILD_ROLE).is_none() {
        return;
    }
    let inbox = Inbox::new(
        RedisStore::connect(&std::env::var(CHILD_URL).unwrap())
            .await
            .unwrap(),
    );
    let marker = std::env::var_os(CHILD_MARKER).unwrap();
    inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            std::fs::write(&marker, n.id()).unwrap();
            std::future::pending::<Result<(), std::io::Error>>()
        }))
        .lease(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(20))
        .run(std::future::pending())
        .await;
}

#[tokio::test]
async fn a_killed_worker_process_leaves_the_notification_to_another() {
    let server = Server::start_with(VOLATILE);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let inbox = inbox(&server).await;
    deliver(&stack(&inbox), envelope("notif_crash", "ping", 1)).await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_worker_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, "worker")
        .env(CHILD_URL, server.url())
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
    child.kill().unwrap();
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

// ---------------------------------------------------------------- Redis failures

/// Redis killed: the receiver answers 503 and nothing is stored; Redis
/// back (from its append-only file): Intercom's retry is accepted, and what
/// was acknowledged before is still there.
#[tokio::test]
async fn redis_down_is_503_and_stores_nothing_until_it_is_back() {
    let mut server = Server::start_with(AOF_ALWAYS);
    let inbox = Inbox::new(
        RedisStore::options()
            .timeout(Duration::from_millis(300))
            .connect(&server.url())
            .await
            .unwrap(),
    );
    let service = stack(&inbox);
    assert_eq!(
        deliver(&service, envelope("notif_a", "ping", 1)).await.0,
        StatusCode::OK
    );
    server.kill();
    for attempt in 1..=2 {
        let start = Instant::now();
        let (status, body) = deliver(&service, envelope("notif_b", "ping", attempt)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(start.elapsed() < Duration::from_millis(2500));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "the inbox is unavailable; retry later");
    }
    let error = inbox.counts().await.unwrap_err();
    assert!(matches!(
        error.kind(),
        StoreErrorKind::Unavailable | StoreErrorKind::TimedOut
    ));

    server.restart();
    let mut redis = raw(&server).await;
    let b: bool = redis.hexists(key("messages"), "notif_b").await.unwrap();
    assert!(!b, "a delivery answered 503 was stored");
    let a: bool = redis.hexists(key("messages"), "notif_a").await.unwrap();
    assert!(a);

    // Back: the receiver reconnects by itself.
    let start = Instant::now();
    let mut attempt = 2;
    loop {
        attempt += 1;
        let (status, _) = deliver(&service, envelope("notif_b", "ping", attempt)).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(2, 0, 0, 0));
}

/// Redis frozen (SIGSTOP): the receiver answers 503 at its deadline.
/// Redis runs the write when it wakes up, and Intercom's retry is then a
/// duplicate: one entry.
#[tokio::test]
async fn a_write_slower_than_the_deadline_is_503() {
    let server = Server::start_with(VOLATILE);
    let inbox = Inbox::new(
        RedisStore::options()
            .timeout(Duration::from_secs(5))
            .connect(&server.url())
            .await
            .unwrap(),
    )
    .deadline(Duration::from_millis(200));
    let service = stack(&inbox);
    server.pause();
    let start = Instant::now();
    let (status, _) = deliver(&service, envelope("notif_1", "ping", 1)).await;
    let took = start.elapsed();
    server.resume();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let start = Instant::now();
    loop {
        if deliver(&service, envelope("notif_1", "ping", 2)).await.0 == StatusCode::OK {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

/// With Redis frozen, inserts beyond `max_in_flight` are refused at once
/// (429, or 503 when configured): nothing waits in memory without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_at_once_without_queueing() {
    let server = Server::start_with(VOLATILE);
    let inbox = Inbox::new(
        RedisStore::options()
            .timeout(Duration::from_secs(5))
            .max_in_flight(2)
            .connect(&server.url())
            .await
            .unwrap(),
    )
    .deadline(Duration::from_secs(5));
    let service = stack(&inbox);
    server.pause();
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                deliver(&service, envelope(&format!("notif_{i}"), "ping", 1))
                    .await
                    .0
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 2..100 {
        let start = Instant::now();
        let (status, body) = deliver(&service, envelope(&format!("notif_{i}"), "ping", 1)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // At once: a request that waited for the store would take its 5 s
        // (the bound leaves room for a loaded machine).
        assert!(start.elapsed() < Duration::from_secs(1));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "the inbox is overloaded; retry later");
    }
    server.resume();
    for handle in waiting {
        assert_eq!(handle.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(2, 0, 0, 0));

    let inbox = Inbox::new(
        RedisStore::options()
            .max_in_flight(1)
            .timeout(Duration::from_secs(5))
            .key_prefix("other")
            .connect(&server.url())
            .await
            .unwrap(),
    )
    .overload_status(OverloadStatus::ServiceUnavailable);
    let service = stack(&inbox);
    server.pause();
    let first = tokio::spawn({
        let service = service.clone();
        async move { deliver(&service, envelope("notif_x", "ping", 1)).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = deliver(&service, envelope("notif_y", "ping", 1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    server.resume();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
}

/// `appendfsync always`: every notification answered 200 survives
/// redis-server being killed (SIGKILL) and restarted on the same files,
/// and is then processed; so do the done ids and their deduplication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_notifications_survive_redis_being_killed() {
    let mut server = Server::start_with(AOF_ALWAYS);
    let inbox = Inbox::new(
        RedisStore::options()
            .timeout(Duration::from_secs(10))
            .connect(&server.url())
            .await
            .unwrap(),
    )
    .deadline(Duration::from_secs(10));
    assert_eq!(inbox.store().persistence().await, Persistence::Durable);
    let service = stack(&inbox);
    let n = 400;
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
    eprintln!(
        "{n} concurrent deliveries with appendfsync always in {:?}",
        start.elapsed()
    );
    // Some processed before the crash.
    let store = inbox.store();
    let claimed = store
        .claim(ClaimRequest::new(50, Duration::from_secs(30), 3))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 50);
    for lease in &claimed.leases {
        assert!(store
            .complete(lease.notification.id(), &lease.token)
            .await
            .unwrap());
    }
    server.kill();
    server.restart();

    // The same inbox reconnects by itself.
    let start = Instant::now();
    let after = loop {
        match inbox.counts().await {
            Ok(counts) => break counts,
            Err(_) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never reconnected"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(after, counts(n - 50, 0, 50, 0));
    let done_id = claimed.leases[0].notification.id().to_owned();
    let request = Request::post("/")
        .header(
            "x-hub-signature",
            sign(&secret(), envelope(&done_id, "ping", 2).as_bytes()),
        )
        .body(Full::new(Bytes::from(envelope(&done_id, "ping", 2))))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.headers()["x-intercom-duplicate"], "true");

    let seen = Arc::new(Mutex::new(HashSet::new()));
    let record = seen.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            assert!(record.lock().unwrap().insert(n.id().to_owned()));
            async { Ok::<_, std::io::Error>(()) }
        }))
        .concurrency(16)
        .spawn(signal);
    wait_for(&inbox, "all done", |c| c.done == n).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    let done: HashSet<String> = claimed
        .leases
        .iter()
        .map(|l| l.notification.id().to_owned())
        .collect();
    let seen = seen.lock().unwrap();
    for i in 0..n {
        let id = format!("notif_{i}");
        assert!(seen.contains(&id) != done.contains(&id), "{id}");
    }
}

// ---------------------------------------------------------------- persistence check

async fn connect_logged(server: &Server) -> (RedisInbox, String) {
    let (logs, capturing) = Logs::start();
    let inbox = inbox(server).await;
    drop(capturing);
    (inbox, logs.text())
}

#[tokio::test]
async fn redis_without_an_append_only_file_is_reported_and_warned_about() {
    let server = Server::start_with(VOLATILE);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::NotDurable);
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("appendonly no"), "{logs}");
    assert!(!logs.contains(&server.url()), "{logs}");
}

#[tokio::test]
async fn redis_with_appendfsync_always_is_durable_and_not_warned_about() {
    let server = Server::start_with(AOF_ALWAYS);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::Durable);
    assert!(inbox.store().persistence().await.is_durable());
    assert!(!logs.contains("WARN"), "{logs}");
}

/// `no-appendfsync-on-rewrite yes`: while Redis rewrites its append-only
/// file or saves a snapshot (which it starts on its own), it does not
/// fsync, whatever `appendfsync` says.
#[tokio::test]
async fn redis_that_skips_fsync_during_rewrites_is_not_durable_and_warned_about() {
    for appendfsync in ["always", "everysec"] {
        let server = Server::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--no-appendfsync-on-rewrite",
            "yes",
        ]);
        let (inbox, logs) = connect_logged(&server).await;
        let persistence = inbox.store().persistence().await;
        assert_ne!(persistence, Persistence::Durable, "{appendfsync}");
        assert!(!persistence.is_durable(), "{appendfsync}");
        assert_eq!(
            persistence,
            Persistence::LosesWritesDuringRewrites,
            "{appendfsync}"
        );
        assert!(logs.contains("WARN"), "{appendfsync}: {logs}");
        assert!(
            logs.contains("no-appendfsync-on-rewrite yes"),
            "{appendfsync}: {logs}"
        );
    }

    // An ACL user without CONFIG cannot tell: unknown, never durable.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--no-appendfsync-on-rewrite",
        "yes",
        "--user",
        "inbox",
        "on",
        ">inbox-password",
        "~*",
        "&*",
        "+@all",
        "-config",
    ]);
    let url = format!("redis://inbox:inbox-password@127.0.0.1:{}/", server.port());
    let (logs, capturing) = Logs::start();
    let inbox = Inbox::new(RedisStore::connect(&url).await.unwrap());
    drop(capturing);
    let logs = logs.text();
    assert_eq!(inbox.store().persistence().await, Persistence::Unknown);
    assert!(logs.contains("no-appendfsync-on-rewrite no"), "{logs}");
}

#[tokio::test]
async fn other_persistence_settings_are_reported_and_warned_about() {
    // everysec: up to a second on a power loss.
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(
        inbox.store().persistence().await,
        Persistence::LosesUpToOneSecond
    );
    assert!(logs.contains("appendfsync everysec"), "{logs}");

    // appendfsync no: left to the OS.
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    assert_eq!(inbox_persistence(&server).await, Persistence::NotDurable);

    // CONFIG renamed away (as on managed Redis): INFO tells the AOF is off…
    let server = Server::start_with(&["--appendonly", "no", "--rename-command", "CONFIG", ""]);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::NotDurable);
    assert!(logs.contains("WARN"), "{logs}");
    // … or that it is on, but not its fsync policy.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::Unknown);
    assert!(
        logs.contains("could not read Redis's persistence settings"),
        "{logs}"
    );

    // An eviction policy that could drop the inbox's keys.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let (_, logs) = connect_logged(&server).await;
    assert!(logs.contains("maxmemory-policy allkeys-lru"), "{logs}");

    // A volatile-* policy evicts only keys with a TTL, and none of the
    // inbox's has one: nothing to warn about.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "volatile-lru",
    ]);
    let (_, logs) = connect_logged(&server).await;
    assert!(!logs.contains("WARN"), "{logs}");
}

async fn inbox_persistence(server: &Server) -> Persistence {
    inbox(server).await.store().persistence().await
}

#[tokio::test]
async fn neither_errors_nor_debug_output_show_the_url_or_password() {
    let server = Server::start_with(&["--requirepass", "hunter2-secret"]);
    let url = format!("redis://:hunter2-secret@127.0.0.1:{}/", server.port());
    let inbox = Inbox::new(RedisStore::connect(&url).await.unwrap());
    inbox
        .store()
        .insert(NewNotification::new("n", "t", Bytes::new()))
        .await
        .unwrap();
    for shown in [
        format!("{inbox:?}"),
        format!("{:?}", inbox.store()),
        format!("{:?}", RedisStore::options()),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&server.port().to_string()), "{shown}");
    }
    let wrong = format!("redis://:wrong-hunter3@127.0.0.1:{}/", server.port());
    let error = RedisStore::connect(&wrong).await.unwrap_err();
    for shown in [format!("{error}"), format!("{error:?}")] {
        assert!(!shown.contains("hunter3"), "{shown}");
    }
    let closed = format!("redis://:hunter4@127.0.0.1:{}/", free_port());
    let error = RedisStore::connect(&closed).await.unwrap_err();
    for shown in [format!("{error}"), format!("{error:?}")] {
        assert!(!shown.contains("hunter4"), "{shown}");
    }
}

/// A retry is taken when it is due, not at the next poll: the failure is
/// recorded after the worker's last claim looked for work, and that claim
/// knew of no retry to wait for. (Before, each retry waited for the poll
/// interval, here 5 s.)
#[tokio::test]
async fn a_retry_is_taken_when_due_not_at_the_next_poll() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    deliver(&service, envelope("notif_flaky", "ping", 1)).await;
    let failures = Arc::new(AtomicU32::new(0));
    let (trigger, signal) = shutdown();
    let started = Instant::now();
    let worker = {
        let failures = failures.clone();
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                let failed = failures.fetch_add(1, Ordering::SeqCst);
                async move {
                    if failed < 2 {
                        return Err(std::io::Error::other("not yet"));
                    }
                    Ok(())
                }
            }))
            .backoff(Duration::from_millis(50), Duration::from_millis(50))
            .poll_interval(Duration::from_secs(5))
            .spawn(signal)
    };
    wait_for(&inbox, "done after two retries", |c| c.done == 1).await;
    let took = started.elapsed();
    trigger.send(()).unwrap();
    worker.await.unwrap();
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// An insert that fails half-way (here the stream's key holds a string)
/// leaves nothing that the redelivery would take for stored: once the key
/// is fixed, the redelivery is stored and processed. (Before, the message
/// was written before the stream entry: the redelivery was answered 200 as
/// a duplicate, and the notification never processed.)
#[tokio::test]
async fn an_insert_that_fails_half_way_does_not_strand_the_notification() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let mut redis = raw(&server).await;
    let _: () = redis.set(key("stream"), "not a stream").await.unwrap();
    let (status, _) = deliver(&service, envelope("notif_stranded", "ping", 1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let _: () = redis.del(key("stream")).await.unwrap();
    let (status, _) = deliver(&service, envelope("notif_stranded", "ping", 2)).await;
    assert_eq!(status, StatusCode::OK);
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(ok_handler())
        .poll_interval(Duration::from_millis(20))
        .spawn(signal);
    wait_for(&inbox, "processed after the redelivery", |c| c.done == 1).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// A message without its stream entry (deleted by hand, or left by an
/// older insert that failed half-way) cannot be claimed; an idle worker
/// must not claim again and again because of it. (Before, every claim
/// answered that work was due now: the worker ran hundreds of claims a
/// second.)
#[tokio::test]
async fn a_message_without_its_entry_does_not_make_workers_spin() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let mut redis = raw(&server).await;
    let _: () = redis
        .hset(key("messages"), "notif_orphan", "1:0:4:ping")
        .await
        .unwrap();
    let scripts = |info: String| -> u64 {
        info.lines()
            .filter(|line| line.starts_with("cmdstat_eval"))
            .filter_map(|line| {
                let calls = line.split("calls=").nth(1)?;
                calls.split(',').next()?.parse::<u64>().ok()
            })
            .sum()
    };
    let (trigger, signal) = shutdown();
    let worker = inbox.worker(ok_handler()).spawn(signal);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await
        .unwrap();
    trigger.send(()).unwrap();
    worker.await.unwrap();
    // One claim per poll (1 s), and the pruning now and then.
    let calls = scripts(after) - scripts(before);
    assert!(calls <= 10, "{calls} script calls in 1.5 s");
}

/// A connection that goes silent (Redis's machine gone without closing
/// it, a NAT that forgot it) is replaced after a few timeouts, and the
/// store answers again. (Before, every operation timed out until the
/// kernel gave up on the connection, about 15 minutes later.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_silent_is_replaced() {
    let server = Server::start_with(VOLATILE);
    let proxy = SilencingProxy::start(([127, 0, 0, 1], server.port()).into()).await;
    let store = RedisStore::options()
        .timeout(Duration::from_millis(200))
        .connect(&format!("redis://{}/", proxy.addr))
        .await
        .unwrap();
    store
        .insert(NewNotification::new(
            "notif_before",
            "ping",
            Bytes::from("{}"),
        ))
        .await
        .unwrap();
    proxy.silence_existing();
    let started = Instant::now();
    let mut timeouts = 0;
    let answered = loop {
        match store.counts().await {
            Ok(counts) => break counts,
            Err(error) => {
                assert_eq!(error.kind(), StoreErrorKind::TimedOut, "{error}");
                timeouts += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still timing out after {timeouts} tries"
        );
    };
    assert!(timeouts >= 1);
    assert_eq!(answered, counts(1, 0, 0, 0));
    // Inserts too: their write task uses the new connection.
    assert_eq!(
        store
            .insert(NewNotification::new(
                "notif_after",
                "ping",
                Bytes::from("{}")
            ))
            .await
            .unwrap(),
        Inserted::Stored
    );
}

/// A Redis that requires a password the URL lacks accepts the connection
/// and refuses every command: connecting fails, with Redis's reason,
/// instead of succeeding and answering every delivery 503.
#[tokio::test]
async fn connecting_without_the_password_redis_requires_fails() {
    let server = Server::start_with(&["--requirepass", "hunter5-secret"]);
    let url = format!("redis://127.0.0.1:{}/", server.port());
    let error = RedisStore::options().connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    assert!(error.to_string().contains("NOAUTH"), "{error}");
    let error = tower_intercom::inbox::RedisStore::connect(&url)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("NOAUTH"), "{error}");

    // A user who may not `PING` (least privilege) still connects: the
    // check fails only for want of a password.
    let url = format!("redis://:hunter5-secret@127.0.0.1:{}/", server.port());
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "worker",
            "on",
            ">worker-password",
            "+@all",
            "-ping",
            "~*",
        ])
        .query_async(&mut redis)
        .await
        .unwrap();
    let url = format!(
        "redis://worker:worker-password@127.0.0.1:{}/",
        server.port()
    );
    let inbox = Inbox::new(RedisStore::connect(&url).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
}

/// `RedisOptions::timeout` governs each operation of the store: a longer
/// one waits out a Redis that pauses longer than the default timeout, and
/// a shorter one fails with `TimedOut` at its own time.
#[tokio::test]
async fn the_timeout_of_the_options_is_the_one_used() {
    let server = Server::start_with(VOLATILE);
    let patient = RedisStore::options()
        .timeout(Duration::from_secs(10))
        .connect(&server.url())
        .await
        .unwrap();
    let hasty = RedisStore::options()
        .timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let mut redis = raw(&server).await;
    // Longer than the default timeout (1 s).
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut redis)
        .await
        .unwrap();
    let paused = Instant::now();
    let (waited, hurried) = tokio::join!(patient.counts(), async {
        let started = Instant::now();
        (hasty.counts().await, started.elapsed())
    });
    let error = hurried.0.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::TimedOut, "{error}");
    assert!(hurried.1 < Duration::from_millis(2000), "{:?}", hurried.1);
    assert_eq!(waited.unwrap(), counts(0, 0, 0, 0));
    assert!(paused.elapsed() >= Duration::from_millis(2000));
}

// ---------------------------------------------------------------- retention and load

#[tokio::test]
async fn done_ids_are_forgotten_after_the_retention() {
    let server = Server::start_with(VOLATILE);
    let inbox = Inbox::new(RedisStore::connect(&server.url()).await.unwrap())
        // Long enough for the worker's shutdown and the first prune on a
        // loaded machine.
        .retention(Duration::from_secs(1));
    let service = stack(&inbox);
    deliver(&service, envelope("notif_1", "ping", 1)).await;
    let (trigger, signal) = shutdown();
    let worker = inbox.worker(ok_handler()).spawn(signal);
    wait_for(&inbox, "done", |c| c.done == 1).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    assert_eq!(inbox.prune().await.unwrap(), 0);
    assert_eq!(
        deliver(&service, envelope("notif_1", "ping", 2)).await.0,
        StatusCode::OK
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(inbox.prune().await.unwrap(), 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
    deliver(&service, envelope("notif_1", "ping", 3)).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
    let mut redis = raw(&server).await;
    let keys: HashSet<String> = redis.keys("*").await.unwrap();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("{tower-intercom:inbox}:")),
        "{keys:?}"
    );
}

/// Many deliveries at once, then many workers: each answered 200, stored
/// once, and processed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_and_workers_process_each_once() {
    let server = Server::start_with(VOLATILE);
    // Correctness under concurrency, not latency: a busy test machine must
    // not turn slow answers into 503s.
    let inbox = Inbox::new(
        RedisStore::options()
            .timeout(Duration::from_secs(10))
            .connect(&server.url())
            .await
            .unwrap(),
    )
    .deadline(Duration::from_secs(10));
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
    assert_eq!(inbox.counts().await.unwrap(), counts(n, 0, 0, 0));

    let calls = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let calls = calls.clone();
            let (trigger, signal) = shutdown();
            let worker = inbox
                .worker(handler_fn(move |_n: ReceivedNotification| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, std::io::Error>(()) }
                }))
                .concurrency(16)
                .spawn(signal);
            (trigger, worker)
        })
        .collect();
    wait_for(&inbox, "all done", |c| c.done == n).await;
    let processed = start.elapsed();
    for (trigger, worker) in workers {
        trigger.send(()).unwrap();
        worker.await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), n as usize);
    eprintln!(
        "{n} concurrent deliveries stored in {took:?}; processed by 3 workers in {processed:?}"
    );
}
