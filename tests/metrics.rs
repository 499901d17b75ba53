//! The metrics the layers emit, as a Prometheus exporter shows them.
#![cfg(feature = "metrics")]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Layer, ServiceExt};
use tower_intercom::{sign, VerifyIntercomWebhookLayer, WebhookSecret};
use tower_intercom_test_support::prometheus::sample;
use tower_intercom_test_support::{secret, Recorder, PING};

fn post(signature: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::post("/");
    if let Some(signature) = signature {
        request = request.header("x-hub-signature", signature);
    }
    request.body(Full::new(Bytes::from_static(PING))).unwrap()
}

/// Runs `scenario` on a runtime of its own with a Prometheus recorder of
/// its own installed, and returns what it recorded in Prometheus's text
/// format.
fn recorded(scenario: impl std::future::Future<Output = ()>) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(scenario));
    handle.render()
}

#[test]
fn verified_and_rejected_requests_are_counted() {
    let previous: WebhookSecret = "previous-client-secret".parse().unwrap();
    let service = VerifyIntercomWebhookLayer::with_secrets(secret(), [previous.clone()])
        .layer(Recorder::default());

    let text = recorded(async {
        let current = sign(&secret(), PING);
        let old = sign(&previous, PING);
        let cases = [
            (post(Some(current.to_str().unwrap())), StatusCode::OK),
            (post(Some(current.to_str().unwrap())), StatusCode::OK),
            (post(Some(old.to_str().unwrap())), StatusCode::OK),
            (post(None), StatusCode::UNAUTHORIZED),
            (post(Some("sha1=nothex")), StatusCode::UNAUTHORIZED),
            (
                post(Some("sha1=0000000000000000000000000000000000000000")),
                StatusCode::UNAUTHORIZED,
            ),
        ];
        for (request, status) in cases {
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), status);
        }
    });
    let verified = |index: &str| {
        sample(
            &text,
            &format!(
                "intercom_webhook_verified{{signature_scheme=\"hub\",secret_index=\"{index}\"}}"
            ),
        )
    };
    assert_eq!(verified("0"), Some(2.0), "{text}");
    assert_eq!(verified("1"), Some(1.0), "{text}");
    for reason in ["missing", "malformed", "invalid"] {
        let series = format!("intercom_webhook_rejected{{error_type=\"{reason}\"}}");
        assert_eq!(sample(&text, &series), Some(1.0), "{series}\n{text}");
    }
    let sum = "intercom_webhook_body_size_sum{signature_scheme=\"hub\"}";
    assert_eq!(sample(&text, sum), Some(3.0 * PING.len() as f64), "{text}");
}

#[test]
fn idempotency_outcomes_are_counted() {
    use tower_intercom::idempotency::IdempotencyLayer;

    let service = tower::ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()))
        .layer(IdempotencyLayer::in_memory())
        .service(Recorder::default());
    let text = recorded(async {
        for _ in 0..3 {
            let signature = sign(&secret(), PING);
            let response = service
                .clone()
                .oneshot(post(Some(signature.to_str().unwrap())))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    let outcome = |name: &str| {
        sample(
            &text,
            &format!("intercom_idempotency_outcome{{outcome=\"{name}\"}}"),
        )
    };
    assert_eq!(outcome("claimed"), Some(1.0), "{text}");
    assert_eq!(outcome("duplicate"), Some(2.0), "{text}");
}

#[cfg(feature = "inbox-sqlite")]
#[test]
fn inbox_receive_outcomes_and_commit_latency_are_recorded() {
    use tower_intercom::inbox::{Inbox, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let text = recorded(async {
        let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
        let service = VerifyIntercomWebhookLayer::new(secret()).layer(inbox.receiver());
        let no_id: &[u8] = br#"{"topic":"ping"}"#;
        let requests = [
            (PING.to_vec(), StatusCode::OK),
            (PING.to_vec(), StatusCode::OK),
            (no_id.to_vec(), StatusCode::BAD_REQUEST),
        ];
        for (body, status) in requests {
            let request = Request::post("/")
                .header("x-hub-signature", sign(&secret(), &body))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            assert_eq!(
                service.clone().oneshot(request).await.unwrap().status(),
                status
            );
        }
        let counts = inbox.counts().await.unwrap();
        assert_eq!(counts.pending, 1);
    });
    let receive = |outcome: &str| {
        sample(
            &text,
            &format!("intercom_inbox_receive{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(receive("stored"), Some(1.0), "{text}");
    assert_eq!(receive("duplicate"), Some(1.0), "{text}");
    assert_eq!(receive("invalid"), Some(1.0), "{text}");
    // One commit: the duplicate stored nothing.
    assert_eq!(
        sample(&text, "intercom_inbox_commit_duration_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "intercom_inbox_pending"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "intercom_inbox_dead"), Some(0.0), "{text}");
}

/// Intercom's redelivery of a notification (same id, the next
/// `delivery_attempts`, so other bytes and another signature) is answered
/// 200 as a duplicate and commits nothing: the commit latency counts the
/// first delivery only, so that quick duplicate answers cannot hide slow
/// commits.
#[cfg(feature = "inbox-sqlite")]
#[test]
fn inbox_commit_duration_counts_commits_not_redeliveries() {
    use tower_intercom::inbox::{Inbox, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let delivery = |attempt: u32| {
        format!(
            r#"{{"type":"notification_event","id":"notif_redelivered","topic":"ping","app_id":"a","data":{{"item":{{"type":"ping"}}}},"delivery_attempts":{attempt},"first_sent_at":1700000000,"created_at":1700000000}}"#
        )
    };
    let text = recorded(async {
        let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
        let service = VerifyIntercomWebhookLayer::new(secret()).layer(inbox.receiver());
        for (attempt, duplicate) in [(1, false), (2, true)] {
            let body = delivery(attempt);
            let request = Request::post("/")
                .header("x-hub-signature", sign(&secret(), body.as_bytes()))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers().contains_key("x-intercom-duplicate"),
                duplicate
            );
        }
    });
    assert_eq!(
        sample(&text, "intercom_inbox_receive{outcome=\"duplicate\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "intercom_inbox_commit_duration_count"),
        Some(1.0),
        "{text}"
    );
}

/// A minimal notification with this id.
#[cfg(feature = "inbox")]
fn notification(id: &str) -> tower_intercom::inbox::NewNotification {
    let body = format!(
        r#"{{"type":"notification_event","id":"{id}","topic":"ping","data":{{"item":{{"type":"ping"}}}}}}"#
    );
    tower_intercom::inbox::NewNotification::new(id, "ping", Bytes::from(body))
}

/// `Counts::oldest_pending` is when the longest-waiting *due* notification
/// became due, whatever the store: the first one stored while it waits,
/// the next one once a worker leased it, none while the only one pending
/// waits out its retry's backoff, and a retry from when its backoff ended.
#[cfg(feature = "inbox")]
async fn oldest_pending_is_the_longest_waiting_due_notification<St>(store: &St)
where
    St: tower_intercom::inbox::InboxStore,
{
    use std::time::{Duration, SystemTime};
    use tower_intercom::inbox::{ClaimRequest, Failure};

    // Stores keep milliseconds: a time may read up to 2 ms early.
    let slack = Duration::from_millis(2);
    let within = |oldest: Option<SystemTime>, from: SystemTime, to: SystemTime| {
        let oldest = oldest.expect("a due notification");
        assert!(
            oldest + slack >= from && oldest <= to,
            "{oldest:?} not within {from:?} ..= {to:?}"
        );
    };
    let claim = ClaimRequest::new(1, Duration::from_secs(60), 5);
    assert_eq!(store.counts().await.unwrap().oldest_pending, None);

    let before_a = SystemTime::now();
    store.insert(notification("notif_a")).await.unwrap();
    let after_a = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before_b = SystemTime::now();
    store.insert(notification("notif_b")).await.unwrap();
    let after_b = SystemTime::now();
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.pending, 2, "{counts:?}");
    within(counts.oldest_pending, before_a, after_a);

    // A worker took the first: the second has waited longest.
    let mut a = store.claim(claim).await.unwrap().leases;
    assert_eq!(a.len(), 1);
    let a = a.remove(0);
    assert_eq!(a.notification.id(), "notif_a");
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.in_progress), (1, 1), "{counts:?}");
    within(counts.oldest_pending, before_b, after_b);

    // The first fails, retried in an hour; the second is done. What is
    // pending waits out its backoff: nothing is due, no queue is stuck.
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let failed = store
        .fail("notif_a", &a.token, Failure::retry("later", in_an_hour))
        .await;
    assert!(failed.unwrap());
    let b = store.claim(claim).await.unwrap().leases.remove(0);
    assert_eq!(b.notification.id(), "notif_b");
    assert!(store.complete("notif_b", &b.token).await.unwrap());
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.in_progress), (1, 0), "{counts:?}");
    assert_eq!(counts.oldest_pending, None, "{counts:?}");
    assert_eq!(counts.oldest_pending_age(SystemTime::now()), Duration::ZERO);

    // A retry whose backoff ended waits from then on.
    store.insert(notification("notif_c")).await.unwrap();
    let c = store.claim(claim).await.unwrap().leases.remove(0);
    assert_eq!(c.notification.id(), "notif_c");
    let soon = SystemTime::now() + Duration::from_millis(50);
    let failed = store
        .fail("notif_c", &c.token, Failure::retry("soon", soon))
        .await;
    assert!(failed.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let counts = store.counts().await.unwrap();
    let counted = SystemTime::now();
    assert_eq!(counts.pending, 2, "{counts:?}");
    within(counts.oldest_pending, soon, counted);
    assert!(counts.oldest_pending_age(counted) >= Duration::from_millis(40));
}

#[cfg(feature = "inbox-sqlite")]
#[tokio::test]
async fn sqlite_counts_the_oldest_pending_notification() {
    let dir = tempfile::tempdir().unwrap();
    let store = tower_intercom::inbox::SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap();
    oldest_pending_is_the_longest_waiting_due_notification(&store).await;
}

#[cfg(feature = "inbox-redis")]
#[tokio::test]
async fn redis_counts_the_oldest_pending_notification() {
    let server = tower_intercom_test_support::redis_server::RedisServer::start();
    let store = tower_intercom::inbox::RedisStore::connect(&server.url())
        .await
        .unwrap();
    oldest_pending_is_the_longest_waiting_due_notification(&store).await;
}

/// `Inbox::counts` sets the depth gauges and the oldest pending
/// notification's age, and the counts' JSON (the example's `GET /inbox`)
/// keeps its four numbers and adds when the oldest became due.
#[cfg(feature = "inbox-sqlite")]
#[test]
fn inbox_counts_set_the_depth_and_oldest_pending_age_gauges() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tower_intercom::inbox::{ClaimRequest, Inbox, InboxStore, SqliteStore};

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gauges = |text: &str| {
        [
            "intercom_inbox_pending",
            "intercom_inbox_in_progress",
            "intercom_inbox_dead",
            "intercom_inbox_oldest_pending_age",
        ]
        .map(|name| sample(text, name).unwrap_or_else(|| panic!("no {name} in\n{text}")))
    };
    let (empty, waiting, json) = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
            inbox.counts().await.unwrap();
            let empty = gauges(&handle.render());
            for id in ["notif_1", "notif_2", "notif_3"] {
                inbox.store().insert(notification(id)).await.unwrap();
            }
            let claim = ClaimRequest::new(1, Duration::from_secs(60), 5);
            assert_eq!(inbox.store().claim(claim).await.unwrap().leases.len(), 1);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let counts = inbox.counts().await.unwrap();
            let json = serde_json::to_value(counts).unwrap();
            let due = counts.oldest_pending.unwrap();
            let due_ms = due.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            assert_eq!(json["oldest_pending_unix_ms"], due_ms, "{json}");
            assert!(SystemTime::now().duration_since(due).unwrap() >= Duration::from_millis(300));
            (empty, gauges(&handle.render()), json)
        })
    });
    assert_eq!(empty, [0.0; 4]);
    assert_eq!(waiting[..3], [2.0, 1.0, 0.0]);
    // Counted 300 ms or more after the second was stored, well within a
    // second (the gauge is in seconds).
    let age = waiting[3];
    assert!((0.3..1.0).contains(&age), "{age}");
    assert_eq!(
        (json["pending"].clone(), json["in_progress"].clone()),
        (2.into(), 1.into()),
        "{json}"
    );
    assert_eq!(
        (json["done"].clone(), json["dead"].clone()),
        (0.into(), 0.into())
    );
}

/// `intercom.inbox.processing.delay` is the time from a notification's
/// receipt to the start of its first attempt; its retries add nothing.
#[cfg(feature = "inbox-sqlite")]
#[test]
fn processing_delay_is_measured_from_receipt_to_the_first_attempt() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};
    use tower_intercom::inbox::{handler_fn, Inbox, InboxStore, ReceivedNotification, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let text = recorded(async {
        let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
        // Received 30 s ago (a receiver whose workers were stopped).
        let received_at = SystemTime::now() - Duration::from_secs(30);
        let stored = notification("notif_late").received_at(received_at);
        inbox.store().insert(stored).await.unwrap();
        // The first attempt fails, the second succeeds.
        let calls = Arc::new(AtomicU32::new(0));
        let handler = handler_fn({
            let calls = calls.clone();
            move |_: ReceivedNotification| {
                let calls = calls.clone();
                async move {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 => Err("the first attempt fails"),
                        _ => Ok(()),
                    }
                }
            }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = inbox
            .worker(handler)
            .backoff(Duration::from_millis(1), Duration::from_millis(1))
            .spawn(async move {
                let _ = stopped.await;
            });
        let start = std::time::Instant::now();
        while inbox.counts().await.unwrap().done == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "not processed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(());
        worker.await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
    let processed = |outcome: &str| {
        sample(
            &text,
            &format!("intercom_inbox_processed{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(processed("retried"), Some(1.0), "{text}");
    assert_eq!(processed("done"), Some(1.0), "{text}");
    // Two attempts, one delay: the first attempt's, 30 s and a little.
    assert_eq!(
        sample(&text, "intercom_inbox_processing_delay_count"),
        Some(1.0),
        "{text}"
    );
    let delay = sample(&text, "intercom_inbox_processing_delay_sum").unwrap();
    assert!((30.0..40.0).contains(&delay), "{delay}\n{text}");
}
