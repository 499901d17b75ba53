//! The axum extractors end to end: a real axum server on a loopback port,
//! a real HTTP/1.1 client.

use axum::{routing::post, Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_intercom::{
    extract::VerifiedBody, extract::VerifiedNotification, notification::Topic,
    VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::requests::{
    forged_post, head, json, ping_body, send, serve_axum, signed_post,
};

fn secret() -> WebhookSecret {
    "axum-extractor-test-secret".parse().unwrap()
}

#[derive(Deserialize)]
struct Conversation {
    id: String,
    conversation_parts: Parts,
}

#[derive(Deserialize)]
struct Parts {
    conversation_parts: Vec<Value>,
}

async fn untyped(VerifiedNotification(notification): VerifiedNotification) -> Json<Value> {
    Json(json!({ "topic": notification.topic, "id": notification.id }))
}

async fn conversation(
    VerifiedNotification(notification): VerifiedNotification<Conversation>,
) -> Json<Value> {
    let conversation = notification.data.item;
    Json(json!({
        "conversation": conversation.id,
        "parts": conversation.conversation_parts.conversation_parts.len(),
    }))
}

async fn raw(VerifiedBody(bytes): VerifiedBody) -> Vec<u8> {
    bytes.to_vec()
}

/// Verified routes, and the same handlers on routes that forgot the layer.
fn app() -> Router {
    let verify = VerifyIntercomWebhookLayer::new(secret());
    Router::new()
        .route("/webhooks/intercom", post(untyped).layer(verify.clone()))
        .route(
            "/webhooks/conversations",
            post(conversation).layer(verify.clone()),
        )
        .route("/webhooks/raw", post(raw).layer(verify))
        .route("/unprotected/intercom", post(untyped))
        .route("/unprotected/raw", post(raw))
}

#[tokio::test]
async fn a_signed_ping_reaches_the_handler_parsed() {
    let addr = serve_axum(app()).await;
    let response = send(
        addr,
        signed_post("/webhooks/intercom", &secret(), &ping_body()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(&response),
        json!({ "topic": "ping", "id": "notif_8c0d4b3e-2a4f-4e1b-9d7c-5f6a7b8c9d0e" })
    );
}

#[tokio::test]
async fn forged_and_unsigned_requests_never_reach_the_handler() {
    let addr = serve_axum(app()).await;
    let response = send(addr, forged_post("/webhooks/intercom", &ping_body())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(&response), json!({ "error": "invalid signature" }));

    let mut unsigned = signed_post("/webhooks/intercom", &secret(), &ping_body());
    unsigned.headers_mut().remove("x-hub-signature");
    let response = send(addr, unsigned).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Signed with another secret.
    let other: WebhookSecret = "someone-elses-secret".parse().unwrap();
    let response = send(
        addr,
        signed_post("/webhooks/intercom", &other, &ping_body()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn head_is_answered_for_intercoms_url_check() {
    let addr = serve_axum(app()).await;
    let response = send(addr, head("/webhooks/intercom")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().is_empty());
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_is_a_400_with_line_and_column() {
    let addr = serve_axum(app()).await;
    let body =
        b"{\n  \"type\": \"notification_event\",\n  \"topic\": \"ping\",\n  \"id\": notif_1\n}";
    let response = send(addr, signed_post("/webhooks/intercom", &secret(), body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json = json(&response);
    assert_eq!(json["line"], 4);
    assert_eq!(json["column"], 10);
    let error = json["error"].as_str().unwrap();
    assert_eq!(
        error,
        "the body is not JSON: expected ident at line 4 column 10"
    );
}

#[tokio::test]
async fn json_that_is_not_a_notification_is_a_400() {
    let addr = serve_axum(app()).await;
    let body = br#"{"id":"notif_1","data":{"item":{}}}"#;
    let response = send(addr, signed_post("/webhooks/intercom", &secret(), body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(&response),
        json!({"error": "the notification has no `topic`"})
    );
}

#[tokio::test]
async fn typed_items_parse_and_a_mismatched_item_is_a_400() {
    let addr = serve_axum(app()).await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/notifications/conversation.user.replied.json"
    ))
    .unwrap();
    let response = send(
        addr,
        signed_post("/webhooks/conversations", &secret(), &body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(&response),
        json!({ "conversation": "215468012345678", "parts": 2 })
    );

    // A ping's item is no conversation.
    let response = send(
        addr,
        signed_post("/webhooks/conversations", &secret(), &ping_body()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json = json(&response);
    assert_eq!(
        json["error"],
        "the notification's `data.item` does not have the shape this handler reads"
    );
    assert!(json["line"].is_u64() && json["column"].is_u64(), "{json}");
}

#[tokio::test]
async fn the_raw_body_is_the_exact_signed_bytes() {
    let addr = serve_axum(app()).await;
    // Odd but signed: whitespace, unicode and bytes that are not JSON.
    let body = b"  {\"topic\" :\t\"ping\"}\r\n\xc3\xa9\x00\xff trailing".to_vec();
    let response = send(addr, signed_post("/webhooks/raw", &secret(), &body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body().as_ref(), body.as_slice());
}

#[tokio::test]
async fn a_route_without_the_layer_refuses_even_correctly_signed_requests_with_500() {
    let addr = serve_axum(app()).await;
    for path in ["/unprotected/intercom", "/unprotected/raw"] {
        let response = send(addr, signed_post(path, &secret(), &ping_body())).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        let error = json(&response)["error"].as_str().unwrap().to_owned();
        assert!(error.contains("layer is missing"), "{error}");
        assert!(error.contains("VerifyIntercomWebhookLayer"), "{error}");

        // Unsigned and forged requests are refused the same way: nothing
        // unverified is handed to the handler.
        let response = send(addr, forged_post(path, &ping_body())).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
    }
}

#[tokio::test]
async fn rotation_accepts_the_previous_secret_through_the_extractor() {
    let current: WebhookSecret = "new-client-secret".parse().unwrap();
    let previous: WebhookSecret = "old-client-secret".parse().unwrap();
    let verify = VerifyIntercomWebhookLayer::with_secrets(current.clone(), [previous.clone()]);
    let app = Router::new().route(
        "/webhooks/intercom",
        post(
            |axum::Extension(verified): axum::Extension<tower_intercom::VerifiedWebhook>,
             VerifiedNotification(n): VerifiedNotification| async move {
                assert_eq!(n.topic, Topic::PING);
                verified.secret_index().to_string()
            },
        )
        .layer(verify),
    );
    let addr = serve_axum(app).await;
    for (secret, index) in [(&current, "0"), (&previous, "1")] {
        let response = send(
            addr,
            signed_post("/webhooks/intercom", secret, &ping_body()),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), index.as_bytes());
    }
}
