//! `examples/send.rs` against a real receiver: the example's own argument
//! parsing, payloads, signing and HTTP client, posting over loopback to an
//! axum app behind `VerifyIntercomWebhookLayer`.

use tower_intercom_test_support as common;

#[allow(dead_code)]
#[path = "../examples/send.rs"]
mod example;

use std::net::SocketAddr;

use axum::{routing::post, Json, Router};
use common::requests::serve_axum;
use example::{parse_args, run, sample_notification, Args, Command, DEFAULT_SECRET_ENV};
use http::StatusCode;
use serde_json::{json, Value};
use tower_intercom::{
    notification::{DeletedItem, Notification, Topic},
    verify, VerifiedBody, VerifiedNotification, VerifyIntercomWebhookLayer, WebhookSecret,
};

const SECRET: &str = "send-example-test-secret";

/// A receiver that reports what it parsed, and one that echoes the bytes.
async fn receiver() -> SocketAddr {
    let verify = VerifyIntercomWebhookLayer::new(SECRET.parse().unwrap());
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
        );
    serve_axum(app).await
}

/// The arguments for sending to `path` on `addr`, with the secret in a
/// variable of this test's own (tests run in parallel).
fn args(addr: SocketAddr, path: &str, var: &str, extra: &[&str]) -> Args {
    std::env::set_var(var, SECRET);
    let mut argv: Vec<String> = vec!["--secret-env".into(), var.into()];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.push(format!("http://{addr}{path}"));
    match parse_args(argv).unwrap() {
        Command::Send(args) => args,
        Command::Help => unreachable!(),
    }
}

#[tokio::test]
async fn generated_notifications_verify_and_parse_at_the_receiver() {
    let addr = receiver().await;
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
        let args = args(
            addr,
            "/webhooks/intercom",
            "TOWER_INTERCOM_SEND_TEST_TOPICS",
            &["--topic", topic],
        );
        let outcome = run(&args).await.unwrap();
        assert_eq!(
            outcome.status,
            StatusCode::OK,
            "{topic}: {:?}",
            outcome.body
        );
        let parsed: Value = serde_json::from_slice(&outcome.body).unwrap();
        assert_eq!(parsed["topic"], topic);
        assert_eq!(parsed["item"], item_type, "{topic}");
        assert!(parsed["id"].as_str().unwrap().starts_with("notif_"));
    }
}

#[tokio::test]
async fn each_send_has_a_fresh_id() {
    let addr = receiver().await;
    let args = args(
        addr,
        "/webhooks/intercom",
        "TOWER_INTERCOM_SEND_TEST_IDS",
        &[],
    );
    let first = run(&args).await.unwrap();
    let second = run(&args).await.unwrap();
    let id = |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap()["id"].clone();
    assert_ne!(id(&first.body), id(&second.body));
}

#[tokio::test]
async fn tampering_after_signing_gets_a_401() {
    let addr = receiver().await;
    let args = args(
        addr,
        "/webhooks/intercom",
        "TOWER_INTERCOM_SEND_TEST_TAMPER",
        &["--tamper", "--topic", "conversation.user.replied"],
    );
    let outcome = run(&args).await.unwrap();
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.body.as_ref(), br#"{"error":"invalid signature"}"#);

    // Exactly one bit differs from the bytes that were signed.
    let secret: WebhookSecret = SECRET.parse().unwrap();
    let signature = http::HeaderValue::from_str(&outcome.signature).unwrap();
    assert!(verify(&secret, &outcome.sent, &signature).is_err());
    let mut restored = outcome.sent.to_vec();
    let middle = restored.len() / 2;
    restored[middle] ^= 0x01;
    assert!(verify(&secret, &restored, &signature).is_ok());
}

#[tokio::test]
async fn a_file_is_sent_byte_for_byte() {
    let addr = receiver().await;
    let bytes = b"{\r\n  \"topic\": \"ping\",\r\n  \"note\": \"caf\xc3\xa9\"\r\n}\r\n\r\n".to_vec();
    let path = std::env::temp_dir().join(format!(
        "tower-intercom-send-test-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, &bytes).unwrap();
    let args = args(
        addr,
        "/webhooks/raw",
        "TOWER_INTERCOM_SEND_TEST_FILE",
        &["--file", path.to_str().unwrap()],
    );
    let outcome = run(&args).await;
    let _ = std::fs::remove_file(&path);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.sent.as_ref(), bytes.as_slice());
    assert_eq!(outcome.body.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn a_missing_secret_or_file_is_a_clear_error() {
    let addr = receiver().await;
    let mut args = args(
        addr,
        "/webhooks/intercom",
        "TOWER_INTERCOM_SEND_TEST_ERR",
        &[],
    );
    args.secret_env = "TOWER_INTERCOM_SEND_TEST_NEVER_SET".into();
    let err = run(&args).await.unwrap_err();
    assert!(err.contains("TOWER_INTERCOM_SEND_TEST_NEVER_SET"), "{err}");
    assert!(err.contains("not set"), "{err}");

    let mut args = args.clone();
    args.secret_env = "TOWER_INTERCOM_SEND_TEST_ERR".into();
    args.file = Some("/nonexistent/payload.json".into());
    let err = run(&args).await.unwrap_err();
    assert!(err.contains("/nonexistent/payload.json"), "{err}");
}

#[test]
fn samples_are_realistic_notifications() {
    for topic in Topic::known() {
        let bytes = sample_notification(topic, "notif_test", 1718096400);
        let n: Notification = Notification::from_slice(&bytes).unwrap();
        assert_eq!(&n.topic, topic);
        assert_eq!(n.id, "notif_test");
        assert_eq!(n.created_at, Some(1718096400));
        assert_eq!(n.delivery_attempts, Some(1));
        assert_eq!(n.delivered_at, Some(0));
        assert!(n.data.item["type"].is_string(), "{topic}");
        if topic.is_deleted() {
            let item: DeletedItem = n.item_as().unwrap();
            assert_eq!(item.deleted, Some(true));
        }
    }
    let bytes = sample_notification(&Topic::CONVERSATION_USER_REPLIED, "notif_test", 1718096400);
    let n: Notification = Notification::from_slice(&bytes).unwrap();
    let parts = &n.data.item["conversation_parts"]["conversation_parts"];
    assert_eq!(parts[0]["author"]["type"], "user");
    assert_eq!(parts[0]["part_type"], "comment");
}

#[test]
fn arguments() {
    let parse = |args: &[&str]| parse_args(args.iter().map(|s| s.to_string()));
    let Command::Send(args) = parse(&["http://127.0.0.1:3000/webhooks/intercom"]).unwrap() else {
        panic!("expected a send");
    };
    assert_eq!(args.topic, Topic::PING);
    assert_eq!(args.secret_env, DEFAULT_SECRET_ENV);
    assert!(!args.tamper);
    assert_eq!(args.file, None);
    assert_eq!(args.url.port_u16(), Some(3000));

    let Command::Send(args) = parse(&[
        "--topic",
        "ticket.created",
        "--secret-env",
        "MY_SECRET",
        "--tamper",
        "http://localhost/hook?x=1",
    ])
    .unwrap() else {
        panic!("expected a send");
    };
    assert_eq!(args.topic, Topic::TICKET_CREATED);
    assert_eq!(args.secret_env, "MY_SECRET");
    assert!(args.tamper);
    assert_eq!(args.url.path_and_query().unwrap().as_str(), "/hook?x=1");

    assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
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
        let err = parse(bad).unwrap_err();
        assert!(err.contains(message), "{bad:?}: {err}");
    }
}
