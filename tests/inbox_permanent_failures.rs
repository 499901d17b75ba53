//! A handler's permanent failure makes the notification dead at once,
//! with its reason in the dead-letter listing, while other failures are
//! still retried with backoff: with the SQLite store (a real file) and the
//! Redis store (a real `redis-server`, which must be on `PATH`).
#![cfg(all(feature = "inbox-sqlite", feature = "inbox-redis"))]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use tower::{ServiceBuilder, ServiceExt};
use tower_intercom::{
    inbox::{handler_fn, Counts, DeadQuery, Inbox, InboxStore, Permanent, ReceivedNotification},
    notification::Notification,
    sign, VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::redis_server::{RedisServer, VOLATILE};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn secret() -> WebhookSecret {
    "permanent-failures-test-secret".parse().unwrap()
}

fn notification(id: &str, app_id: &str, item: serde_json::Value) -> String {
    serde_json::json!({
        "type": "notification_event",
        "app_id": app_id,
        "id": id,
        "topic": "conversation.user.created",
        "data": {"type": "notification_event_data", "item": item},
        "delivery_attempts": 1,
        "created_at": 1_700_000_000,
    })
    .to_string()
}

/// The part of a conversation the handler reads.
#[derive(Deserialize)]
struct Conversation {
    #[allow(dead_code)]
    id: String,
}

async fn counts_reach<St: InboxStore>(inbox: &Inbox<St>, done: u64, dead: u64) -> Counts {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = inbox.counts().await.unwrap();
        if counts.done == done && counts.dead == dead && counts.pending == 0 {
            return counts;
        }
        assert!(Instant::now() < deadline, "still {counts:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Three notifications, received through the verifying layer and the
/// receiver: one whose item does not parse as the handler's type, one
/// the handler refuses for good, and one whose handler fails twice (the
/// CRM is down) before it succeeds.
async fn permanent_failures_are_dead_at_once<St: InboxStore>(inbox: Inbox<St>) {
    let receiver = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()))
        .service(inbox.receiver());
    for body in [
        notification(
            "notif_unreadable",
            "a86dr8yl",
            serde_json::json!({"type": "conversation"}),
        ),
        notification(
            "notif_foreign",
            "someone-else",
            serde_json::json!({"type": "conversation", "id": "c2"}),
        ),
        notification(
            "notif_flaky",
            "a86dr8yl",
            serde_json::json!({"type": "conversation", "id": "c3"}),
        ),
    ] {
        let request = Request::post("/webhooks/intercom")
            .header("x-hub-signature", sign(&secret(), body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = receiver.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let counted = calls.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = inbox
        .worker(handler_fn(move |received: ReceivedNotification| {
            let attempt = {
                let mut calls = counted.lock().unwrap();
                let n = calls.entry(received.id().to_owned()).or_default();
                *n += 1;
                *n
            };
            async move {
                // Not a conversation: Permanent, from `json` itself.
                let notification: Notification<Conversation> = received.json()?;
                if notification.app_id.as_deref() != Some("a86dr8yl") {
                    return Err(Permanent::new("a notification for another workspace").into());
                }
                if attempt < 3 {
                    return Err(std::io::Error::other("the CRM is down").into());
                }
                Ok::<_, BoxError>(())
            }
        }))
        .max_attempts(5)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .poll_interval(Duration::from_millis(20))
        .spawn(async move {
            let _ = stopped.await;
        });

    counts_reach(&inbox, 1, 2).await;
    stop.send(()).unwrap();
    worker.await.unwrap();

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls["notif_flaky"], 3, "retried, then done: {calls:?}");
    assert_eq!(calls["notif_unreadable"], 1, "{calls:?}");
    assert_eq!(calls["notif_foreign"], 1, "{calls:?}");

    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    let dead: HashMap<&str, (u32, &str)> = page
        .notifications
        .iter()
        .map(|dead| {
            (
                dead.notification.id(),
                (dead.notification.attempt(), dead.last_error()),
            )
        })
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let (attempts, reason) = dead["notif_unreadable"];
    assert_eq!(attempts, 1, "{reason}");
    assert!(
        reason.starts_with("missing field `id` at line 1 column"),
        "{reason}"
    );
    assert_eq!(
        dead["notif_foreign"],
        (1, "a notification for another workspace")
    );
}

#[tokio::test]
async fn sqlite_permanent_failures_are_dead_at_once_and_others_retried() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(
        tower_intercom::inbox::SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap(),
    );
    permanent_failures_are_dead_at_once(inbox).await;
}

#[tokio::test]
async fn redis_permanent_failures_are_dead_at_once_and_others_retried() {
    let server = RedisServer::start_with(VOLATILE);
    let inbox = Inbox::new(
        tower_intercom::inbox::RedisStore::connect(&server.url())
            .await
            .unwrap(),
    );
    permanent_failures_are_dead_at_once(inbox).await;
}
