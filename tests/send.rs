//! `examples/send.rs`, run as a user runs it: the sender binary posting
//! over loopback to an axum app behind `VerifyIntercomWebhookLayer`, which
//! also records every request as it arrived, before verification.

use std::{
    net::SocketAddr,
    process::Output,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
    routing::post,
    Json, Router,
};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, Uri};
use serde_json::{json, Value};
use tower_intercom::{
    extract::VerifiedBody,
    extract::VerifiedNotification,
    notification::{DeletedItem, Notification, Topic},
    verify, VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::{examples, requests::serve_axum};

const SECRET: &str = "send-example-test-secret";

/// One request as the receiver got it, before verification.
#[derive(Debug, Clone)]
struct Received {
    uri: Uri,
    signature: Option<HeaderValue>,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Received>>>);

impl Log {
    fn last(&self) -> Received {
        self.0.lock().unwrap().last().cloned().expect("a request")
    }
}

async fn record(State(log): State<Log>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    log.0.lock().unwrap().push(Received {
        uri: parts.uri.clone(),
        signature: parts.headers.get("x-hub-signature").cloned(),
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A receiver that reports what it parsed, and one that echoes the bytes;
/// the log of what reached them.
async fn receiver() -> (SocketAddr, Log) {
    let verify = VerifyIntercomWebhookLayer::new(SECRET.parse().unwrap());
    let log = Log::default();
    let app = Router::new()
        .route(
            "/webhooks/intercom",
            post(|VerifiedNotification(n): VerifiedNotification| async move {
                Json(json!({ "topic": n.topic, "id": n.id, "item": n.data.item["type"] }))
            })
            .layer(verify.clone()),
        )
        .route(
            "/webhooks/raw",
            post(|VerifiedBody(bytes): VerifiedBody| async move { bytes }).layer(verify),
        )
        .layer(middleware::from_fn_with_state(log.clone(), record));
    (serve_axum(app).await, log)
}

/// Runs the sender with `args` and the secret in `INTERCOM_WEBHOOK_SECRET`.
async fn send(args: &[&str]) -> Output {
    let mut command = examples::command("send");
    command.env("INTERCOM_WEBHOOK_SECRET", SECRET).args(args);
    tokio::process::Command::from(command)
        .output()
        .await
        .expect("run the sender")
}

/// What the sender printed about a webhook it sent.
#[derive(Debug)]
struct Outcome {
    /// The first line: what was sent where, signed with which variable.
    what: String,
    /// The `X-Hub-Signature` sent.
    signature: String,
    /// How many bytes were sent.
    sent: usize,
    /// The receiver's status.
    status: StatusCode,
    /// The receiver's body.
    body: String,
}

/// Reads the sender's report; panics when it did not send anything.
fn outcome(output: &Output) -> Outcome {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let mut lines = stdout.splitn(5, '\n');
    let mut line = || lines.next().unwrap_or_else(|| panic!("{output:?}"));
    let what = line().to_owned();
    let signature = line().strip_prefix("x-hub-signature: ").unwrap().to_owned();
    let sent = line()
        .strip_prefix("sent ")
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .unwrap()
        .parse()
        .unwrap();
    let status = line().split(' ').next().unwrap().parse().unwrap();
    let status = StatusCode::from_u16(status).unwrap();
    let body = line().strip_suffix('\n').unwrap_or_default().to_owned();
    Outcome {
        what,
        signature,
        sent,
        status,
        body,
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[tokio::test]
async fn generated_notifications_verify_and_parse_at_the_receiver() {
    let (addr, _) = receiver().await;
    let url = url(addr, "/webhooks/intercom");
    for (topic, item_type) in [
        ("ping", "ping"),
        ("conversation.user.created", "conversation"),
        ("conversation.user.replied", "conversation"),
        ("conversation.admin.replied", "conversation"),
        ("conversation.admin.closed", "conversation"),
        ("contact.user.created", "contact"),
        ("contact.lead.created", "contact"),
        ("company.created", "company"),
        ("ticket.created", "ticket"),
        ("admin.logged_in", "admin"),
        ("contact.deleted", "contact"),
        ("conversation.deleted", "conversation"),
        ("spaceship.launched", "spaceship"),
    ] {
        let output = send(&["--topic", topic, &url]).await;
        assert!(output.status.success(), "{topic}: {output:?}");
        let outcome = outcome(&output);
        assert_eq!(outcome.status, StatusCode::OK, "{topic}: {outcome:?}");
        let parsed: Value = serde_json::from_str(&outcome.body).unwrap();
        assert_eq!(parsed["topic"], topic);
        assert_eq!(parsed["item"], item_type, "{topic}");
        assert!(parsed["id"].as_str().unwrap().starts_with("notif_"));
    }
}

#[tokio::test]
async fn each_send_has_a_fresh_id() {
    let (addr, _) = receiver().await;
    let url = url(addr, "/webhooks/intercom");
    let first = outcome(&send(&[&url]).await);
    let second = outcome(&send(&[&url]).await);
    let id = |body: &str| serde_json::from_str::<Value>(body).unwrap()["id"].clone();
    assert_ne!(id(&first.body), id(&second.body));
}

#[tokio::test]
async fn tampering_after_signing_gets_a_401() {
    let (addr, log) = receiver().await;
    let url = url(addr, "/webhooks/intercom");
    let output = send(&["--tamper", "--topic", "conversation.user.replied", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let outcome = outcome(&output);
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.body, r#"{"error":"invalid signature"}"#);

    // Exactly one bit differs from the bytes that were signed.
    let received = log.last();
    let secret: WebhookSecret = SECRET.parse().unwrap();
    let signature = received.signature.unwrap();
    assert_eq!(signature, outcome.signature.as_str());
    assert_eq!(received.body.len(), outcome.sent);
    assert!(verify(&secret, &received.body, &signature).is_err());
    let mut restored = received.body.to_vec();
    let middle = restored.len() / 2;
    restored[middle] ^= 0x01;
    assert!(verify(&secret, &restored, &signature).is_ok());
}

#[tokio::test]
async fn a_file_is_sent_byte_for_byte() {
    let (addr, log) = receiver().await;
    let bytes = "{\r\n  \"topic\": \"ping\",\r\n  \"note\": \"caf\u{e9}\"\r\n}\r\n\r\n";
    let path = std::env::temp_dir().join(format!(
        "tower-intercom-send-test-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    let output = send(&[
        "--file",
        path.to_str().unwrap(),
        &url(addr, "/webhooks/raw"),
    ])
    .await;
    let _ = std::fs::remove_file(&path);
    let outcome = outcome(&output);
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(log.last().body.as_ref(), bytes.as_bytes());
    assert_eq!(outcome.sent, bytes.len());
    assert_eq!(outcome.body, bytes);
}

#[tokio::test]
async fn a_missing_secret_or_file_is_a_clear_error() {
    let (addr, _) = receiver().await;
    let url = url(addr, "/webhooks/intercom");
    let output = send(&["--secret-env", "TOWER_INTERCOM_SEND_TEST_NEVER_SET", &url]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("TOWER_INTERCOM_SEND_TEST_NEVER_SET"), "{err}");
    assert!(err.contains("not set"), "{err}");

    let output = send(&["--file", "/nonexistent/payload.json", &url]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("/nonexistent/payload.json"), "{err}");
}

#[tokio::test]
async fn samples_are_realistic_notifications() {
    let (addr, log) = receiver().await;
    let url = url(addr, "/webhooks/raw");
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    for topic in Topic::known() {
        let before = now();
        let output = send(&["--topic", topic.as_str(), &url]).await;
        assert!(output.status.success(), "{topic}: {output:?}");
        let bytes = log.last().body;
        let n: Notification = Notification::from_slice(&bytes).unwrap();
        assert_eq!(&n.topic, topic);
        assert!(n.id.starts_with("notif_"), "{topic}: {}", n.id);
        let created_at = n.created_at.unwrap();
        assert!((before..=now()).contains(&created_at), "{topic}");
        assert_eq!(n.delivery_attempts, Some(1));
        assert_eq!(n.delivered_at, Some(0));
        assert!(n.data.item["type"].is_string(), "{topic}");
        if topic.is_deleted() {
            let item: DeletedItem = n.item_as().unwrap();
            assert_eq!(item.deleted, Some(true));
        }
    }
    send(&["--topic", "conversation.user.replied", &url]).await;
    let n: Notification = Notification::from_slice(&log.last().body).unwrap();
    let parts = &n.data.item["conversation_parts"]["conversation_parts"];
    assert_eq!(parts[0]["author"]["type"], "user");
    assert_eq!(parts[0]["part_type"], "comment");
}

#[tokio::test]
async fn arguments() {
    let (addr, log) = receiver().await;
    let url = url(addr, "/webhooks/intercom");
    let output = send(&[&url]).await;
    assert_eq!(
        outcome(&output).what,
        format!("POST {url} with a ping notification, signed with $INTERCOM_WEBHOOK_SECRET")
    );

    let mut command = examples::command("send");
    command.env("MY_SECRET", SECRET).args([
        "--topic",
        "ticket.created",
        "--secret-env",
        "MY_SECRET",
        "--tamper",
        &format!("http://{addr}/hook?x=1"),
    ]);
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .unwrap();
    assert_eq!(
        outcome(&output).what,
        format!(
            "POST http://{addr}/hook?x=1 with a ticket.created notification \
             (tampered after signing), signed with $MY_SECRET"
        )
    );
    assert_eq!(log.last().uri, "/hook?x=1");

    let help = send(&["--help"]).await;
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: "));
    for (bad, message) in [
        (&[][..], "missing URL"),
        (&["--topic"][..], "--topic needs a value"),
        (&["--bogus", "http://x/"][..], "unknown option --bogus"),
        (&["http://x/", "http://y/"][..], "unexpected argument"),
        (&["https://example.com/hook"][..], "https is not supported"),
        (&["/webhooks/intercom"][..], "must start with http://"),
        (&["example.com/hook"][..], "bad URL"),
        (
            &["--topic", "ping", "--file", "a.json", "http://x/"][..],
            "cannot be used together",
        ),
    ] {
        let output = send(bad).await;
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(message), "{bad:?}: {err}");
    }
}
