//! Receiving: what is committed before the 200, deduplicated, refused.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_intercom::{
    inbox::{handler_fn, ClaimRequest, InboxStore, ReceivedNotification},
    WebhookBody,
};

use super::super::*;

pub async fn a_notification_is_committed_before_the_200<H: InboxHarness>() {
    let (harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    let body = envelope("notif_1", "conversation.user.created", 1);

    let before = SystemTime::now();
    let answer = deliver(&service, body.clone()).await;
    let after = SystemTime::now();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.duplicate);
    harness
        .inspect(Inspect::Committed {
            id: "notif_1",
            topic: "conversation.user.created",
            body: body.as_bytes(),
            received: before..=after,
        })
        .await;
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));

    // Another store on the same backend (another process) sees it, as it
    // was received; it stays when the receiving inbox is gone.
    let other = open(&harness, Settings::patient()).await;
    drop(service);
    drop(inbox);
    assert_eq!(other.counts().await.unwrap(), counts(1, 0, 0, 0));
    let claimed = other
        .store()
        .claim(ClaimRequest::new(10, Duration::from_secs(30), 5))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 1);
    let received = &claimed.leases[0].notification;
    assert_eq!(received.id(), "notif_1");
    assert_eq!(received.topic(), "conversation.user.created");
    assert_eq!(received.bytes(), body.as_bytes());
    assert_eq!(received.attempt(), 1);
    let received_at = millis(received.received_at());
    assert!(
        (millis(before)..=millis(after)).contains(&received_at),
        "{received_at}"
    );
}

pub async fn a_redelivery_is_answered_200_and_stores_nothing<H: InboxHarness>() {
    let (harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    let first = envelope("notif_1", "ping", 1);
    let answer = deliver(&service, first.clone()).await;
    assert_eq!((answer.status, answer.duplicate), (StatusCode::OK, false));

    // Intercom's retry: same id, new delivery_attempts, so new bytes and a
    // new signature.
    let retry = deliver(&service, envelope("notif_1", "ping", 2)).await;
    assert_eq!((retry.status, retry.duplicate), (StatusCode::OK, true));
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));

    // What is kept, and processed once, is the first delivery's bytes.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let worker = spawn(inbox.worker(handler_fn(move |n: ReceivedNotification| {
        record.lock().unwrap().push(n.into_bytes());
        async { Ok::<_, std::io::Error>(()) }
    })));
    wait_for(&inbox, "done", |c| c.done == 1).await;

    // Still deduplicated once processed.
    let again = deliver(&service, envelope("notif_1", "ping", 3)).await;
    assert_eq!((again.status, again.duplicate), (StatusCode::OK, true));
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    harness
        .inspect(Inspect::DoneAndRedelivered { id: "notif_1" })
        .await;
    worker.stop().await;
    assert_eq!(*seen.lock().unwrap(), [Bytes::from(first)]);
}

pub async fn concurrent_deliveries_of_one_id_store_one_entry<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    let deliveries: Vec<_> = (1..=64)
        .map(|attempt| tokio::spawn(deliver(&service, envelope("notif_same", "ping", attempt))))
        .collect();
    let mut stored = 0;
    for delivery in deliveries {
        let answer = delivery.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        stored += usize::from(!answer.duplicate);
    }
    assert_eq!(stored, 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

/// Verified bodies that are not notifications.
const NOT_NOTIFICATIONS: &[&[u8]] = &[
    b"",
    b"not json",
    b"[]",
    b"[{\"id\":\"notif_1\"}]",
    b"\"notif_1\"",
    b"42",
    b"null",
    b"{}",
    br#"{"type":"notification_event","topic":"ping"}"#,
    br#"{"data":{"id":"notif_1"}}"#,
    br#"{"id":""}"#,
    br#"{"id":null}"#,
    br#"{"id":42}"#,
    br#"{"id":{"a":1}}"#,
    br#"{"id":true}"#,
    br#"{"id":"a","id":"b"}"#,
    br#"{"id":"notif_1""#,
    br#"{"id":"notif_1"}{"id":"notif_2"}"#,
    br#"{"id":"\ud800"}"#,
    b"{\"id\":\"\xff\"}",
    b"\xef\xbb\xbf{\"id\":\"bom\"}",
    // What the worker needs besides the id.
    br#"{"id":"notif_minimal_1"}"#,
    br#"{"id":"notif_1","topic":7,"data":{"item":{}}}"#,
    br#"{"id":"notif_1","topic":"ping"}"#,
    br#"{"id":"notif_1","topic":"ping","data":{}}"#,
    br#"{"type":"canvas","id":"notif_1","topic":"ping","data":{"item":{}}}"#,
];

pub async fn bodies_that_are_not_notifications_get_400_and_store_nothing<H: InboxHarness>() {
    let (harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    for body in NOT_NOTIFICATIONS {
        let answer = deliver(&service, *body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        // What is wrong (`tests/malformed_bodies.rs` has each message).
        let error = answer.error();
        assert!(
            error.starts_with("the body") || error.starts_with("the notification"),
            "{error}"
        );
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
    harness.inspect(Inspect::NothingStored).await;

    // Valid JSON nested deeper than serde_json's recursion limit: the
    // receiver skips what it does not read without recursing, and stores it.
    let deep = format!(
        "{{\"id\":\"deep\",\"topic\":\"ping\",\"data\":{{\"item\":{{}}}},\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(deliver(&service, deep).await.status, StatusCode::OK);
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

pub async fn odd_but_valid_ids_are_stored_exactly<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    let huge = "n".repeat(2 * 1024 * 1024 - 200); // near the 2 MiB body limit
    let ids = [
        "notif_\u{e9}\u{1F600}\u{65e5}".to_owned(),
        "quote\"back\\slash".to_owned(),
        "nul\u{0}inside".to_owned(),
        "nul".to_owned(), // differs from the one above only after the NUL
        " ".to_owned(),
        "with space and : colon".to_owned(),
        "\u{202e}rtl".to_owned(),
        "{tower-intercom:inbox}:messages".to_owned(),
        huge,
    ];
    for id in &ids {
        let answer = deliver(&service, minimal(id)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", id.len());
    }
    assert_eq!(
        inbox.counts().await.unwrap(),
        counts(ids.len() as u64, 0, 0, 0)
    );
    // Stored exactly, in the order received; handed back untouched.
    let store = inbox.store();
    let claimed = store
        .claim(ClaimRequest::new(ids.len(), Duration::from_secs(30), 5))
        .await
        .unwrap();
    let stored: Vec<&str> = claimed.leases.iter().map(|l| l.notification.id()).collect();
    assert_eq!(stored, ids);
    for lease in &claimed.leases {
        let notification = &lease.notification;
        assert_eq!(notification.topic(), "ping");
        assert_eq!(notification.bytes(), minimal(notification.id()).as_bytes());
        assert!(store
            .release(notification.id(), &lease.token)
            .await
            .unwrap());
    }
    // Each is a duplicate of itself only.
    for id in &ids {
        assert!(deliver(&service, minimal(id)).await.duplicate);
    }
    // One byte over the limit: refused by the verifying layer.
    let over = serde_json::json!({"id": "n".repeat(2 * 1024 * 1024)}).to_string();
    assert_eq!(
        deliver(&service, over).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Workers hand the same ids back.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let worker = spawn(inbox.worker(handler_fn(move |n: ReceivedNotification| {
        assert_eq!(n.topic(), "ping");
        let body: serde_json::Value = n.json().unwrap();
        assert_eq!(body["id"], n.id());
        record.lock().unwrap().push(n.id().to_owned());
        async { Ok::<_, std::io::Error>(()) }
    })));
    wait_for(&inbox, "all done", |c| c.done == ids.len() as u64).await;
    worker.stop().await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(seen, expected);
}

pub async fn requests_that_did_not_pass_the_layer_get_500<H: InboxHarness>() {
    let (harness, inbox) = start::<H>().await;
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
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
    harness.inspect(Inspect::NothingStored).await;

    // Intercom's HEAD URL check is answered by the layer, 200.
    let head = Request::head("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(
        stack(&inbox).oneshot(head).await.unwrap().status(),
        StatusCode::OK
    );
}

/// Two receiver processes (two stores on one backend, two HTTP servers)
/// get the same notification at once: one entry, and the workers of both
/// process it once.
pub async fn two_receivers_sharing_a_backend_store_and_process_a_notification_once<
    H: InboxHarness,
>() {
    let harness = H::start().await;
    let a = open(&harness, Settings::patient()).await;
    let b = open(&harness, Settings::patient()).await;
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
            let answer = post.await.unwrap();
            assert_eq!(answer.status, StatusCode::OK);
            stored += usize::from(!answer.duplicate);
        }
        assert_eq!(stored, 1, "{id}");
    }
    assert_eq!(a.counts().await.unwrap(), counts(5, 0, 0, 0));

    let calls = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = [&a, &b]
        .into_iter()
        .map(|inbox| {
            let calls = calls.clone();
            spawn(
                inbox
                    .worker(handler_fn(move |n: ReceivedNotification| {
                        calls.lock().unwrap().push(n.id().to_owned());
                        async { Ok::<_, std::io::Error>(()) }
                    }))
                    .poll_interval(Duration::from_millis(10)),
            )
        })
        .collect();
    wait_for(&a, "all done", |c| c.done == 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for worker in workers {
        worker.stop().await;
    }
    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("notif_shared_{i}")).collect();
    assert_eq!(calls, expected);
    assert_eq!(b.counts().await.unwrap(), counts(0, 0, 5, 0));
}

/// Many deliveries at once, then many workers: each answered 200, stored
/// once, and processed once.
pub async fn concurrent_deliveries_and_workers_process_each_once<H: InboxHarness>() {
    let harness = H::start().await;
    // Correctness under concurrency, not latency: a busy test machine must
    // not turn slow answers into 503s.
    let inbox = open(&harness, Settings::patient()).await;
    let service = stack(&inbox);
    let n = 2000;
    let start = Instant::now();
    accept_all(&service, n).await;
    let took = start.elapsed();
    assert_eq!(inbox.counts().await.unwrap(), counts(n, 0, 0, 0));

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let start = Instant::now();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (calls, seen) = (calls.clone(), seen.clone());
            spawn(
                inbox
                    .worker(handler_fn(move |n: ReceivedNotification| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        seen.lock().unwrap().insert(n.id().to_owned());
                        async { Ok::<_, std::io::Error>(()) }
                    }))
                    .concurrency(16),
            )
        })
        .collect();
    wait_for(&inbox, "all done", |c| c.done == n).await;
    let processed = start.elapsed();
    for worker in workers {
        worker.stop().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), n as usize);
    assert_eq!(seen.lock().unwrap().len(), n as usize);
    eprintln!(
        "{n} concurrent deliveries stored in {took:?}; processed by 3 workers in {processed:?}"
    );
}
