//! Signed bodies that are not notifications, sent over HTTP/1.1 to a real
//! axum server: the inbox's receiver (over a real SQLite file) and the
//! `VerifiedNotification` extractor answer 400 with what is wrong (not
//! JSON, with serde_json's line and column; not an object; which field of
//! the envelope is missing or of the wrong type) in a small JSON object
//! that repeats none of the body. The receiver stores none of them, and
//! stores every one of Intercom's notifications (the fixtures).
#![cfg(all(feature = "inbox-sqlite", feature = "axum"))]

use axum::{routing::post, Router};
use http::StatusCode;
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_intercom::{
    extract::VerifiedNotification,
    inbox::{Counts, Inbox, SqliteInbox, SqliteStore},
    VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::requests::{self, send, serve_axum, signed_post};

fn secret() -> WebhookSecret {
    "malformed-bodies-test-secret".parse().unwrap()
}

async fn extracted(VerifiedNotification(notification): VerifiedNotification) -> String {
    notification.id
}

/// The receiver on one route, the extractor on another, both behind the
/// verifying layer.
fn app(inbox: &SqliteInbox) -> Router {
    Router::new()
        .route_service(
            "/webhooks/inbox",
            ServiceBuilder::new()
                .layer(VerifyIntercomWebhookLayer::new(secret()))
                .service(inbox.receiver()),
        )
        .route(
            "/webhooks/extracted",
            post(extracted).layer(VerifyIntercomWebhookLayer::new(secret())),
        )
}

/// A truncated delivery: the connection dropped mid-body by a proxy that
/// still forwarded it, or a test that cut it short.
const TRUNCATED: &[u8] =
    b"{\"type\":\"notification_event\",\"id\":\"notif_1\",\n\"topic\":\"conversation.us";

/// A body, and the 400's JSON from the receiver and from the extractor.
struct Case {
    body: &'static [u8],
    inbox: Value,
    /// `None`: the extractor takes it, as `Notification` does.
    extractor: Option<Value>,
}

/// Refused by both, with the same answer.
fn both(body: &'static [u8], answer: Value) -> Case {
    Case {
        body,
        inbox: answer.clone(),
        extractor: Some(answer),
    }
}

/// Refused by the receiver only.
fn inbox_only(body: &'static [u8], answer: Value) -> Case {
    Case {
        body,
        inbox: answer,
        extractor: None,
    }
}

fn cases() -> Vec<Case> {
    vec![
        both(
            TRUNCATED,
            json!({
                "error": "the body is not JSON: EOF while parsing a string at line 2 column 24",
                "line": 2,
                "column": 24,
            }),
        ),
        both(
            b"",
            json!({"error": "the body is empty: a notification is a JSON object"}),
        ),
        both(
            b"[1,2,3]",
            json!({
                "error": "the body is a JSON array, not an object: a notification is a JSON object"
            }),
        ),
        both(
            b"{\"id\":\"notif_1\",\"topic\":\"ping\",\n\"note\":\"\xff\xfe\"}",
            json!({
                "error": "the body is not JSON: invalid UTF-8 at line 2 column 9",
                "line": 2,
                "column": 9,
            }),
        ),
        both(
            br#"{"id":"notif_minimal_1"}"#,
            json!({"error": "the notification has no `topic`"}),
        ),
        both(
            br#"{"type":"notification_event","topic":"ping","data":{"item":{}}}"#,
            json!({"error": "the notification has no `id`"}),
        ),
        both(
            br#"{"type":"notification_event","id":"notif_1","topic":["ping"],"data":{"item":{}}}"#,
            json!({"error": "the notification's `topic` is not a string"}),
        ),
        both(
            br#"{"type":"notification_event","id":"notif_1","topic":"ping"}"#,
            json!({"error": "the notification has no `data`"}),
        ),
        both(
            br#"{"type":"notification_event","id":"notif_1","topic":"ping","data":{"type":"notification_event_data"}}"#,
            json!({"error": "the notification has no `data.item`"}),
        ),
        // Not what the inbox keys on or hands on, yet a `Notification`.
        inbox_only(
            br#"{"type":"notification_event","id":42,"topic":"ping","data":{"item":{}}}"#,
            json!({"error": "the notification's `id` is not a string"}),
        ),
        inbox_only(
            br#"{"type":"canvas_kit_request","id":"notif_1","topic":"ping","data":{"item":{}}}"#,
            json!({
                "error": "the body's `type` is not \"notification_event\": it is not a webhook notification"
            }),
        ),
    ]
}

#[tokio::test]
async fn the_receiver_says_what_is_wrong_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
    let addr = serve_axum(app(&inbox)).await;
    for Case {
        body,
        inbox: expected,
        ..
    } in cases()
    {
        let response = send(addr, signed_post("/webhooks/inbox", &secret(), body)).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{shown}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(requests::json(&response), expected, "{shown}");
    }
    assert_eq!(inbox.counts().await.unwrap(), Counts::default());

    // Every one of Intercom's notifications is stored.
    let fixtures = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/notifications"
    ))
    .unwrap()
    .map(|entry| entry.unwrap().path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
    .collect::<Vec<_>>();
    assert_eq!(fixtures.len(), 6);
    for fixture in &fixtures {
        let body = std::fs::read(fixture).unwrap();
        let response = send(addr, signed_post("/webhooks/inbox", &secret(), &body)).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", fixture.display());
    }
    assert_eq!(inbox.counts().await.unwrap().pending, 6);
}

#[tokio::test]
async fn the_extractor_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
    let addr = serve_axum(app(&inbox)).await;
    for Case {
        body,
        extractor: expected,
        ..
    } in cases()
    {
        let response = send(addr, signed_post("/webhooks/extracted", &secret(), body)).await;
        let shown = String::from_utf8_lossy(body);
        match expected {
            Some(expected) => {
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{shown}");
                assert_eq!(response.headers()["content-type"], "application/json");
                assert_eq!(requests::json(&response), expected, "{shown}");
            }
            None => assert_eq!(response.status(), StatusCode::OK, "{shown}"),
        }
    }
    // An array that serde would take for the envelope's fields in order is
    // still no notification.
    let array = br#"["notif_1","ping",null,null,null,null,null,null,null,{"item":{}}]"#;
    let response = send(addr, signed_post("/webhooks/extracted", &secret(), array)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
