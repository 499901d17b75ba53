//! Intercom's installation health check over a real connection, signed by
//! an independent implementation (Python's `hmac`).
#![cfg(feature = "serde")]

use std::process::Command;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::ServiceBuilder;
use tower_intercom::{
    health::{HealthCheckRequest, HealthCheckResponse, HealthCheckService, HealthMessage},
    SignatureScheme, VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::{client, SECRET};

/// `X-Body-Signature` of `body` as Python's standard library computes it.
fn python_signature(body: &str) -> String {
    let output = Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; \
             print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            SECRET,
            body,
        ])
        .output()
        .expect("python3 runs (the test suite needs it)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn server() -> std::net::SocketAddr {
    let secret: WebhookSecret = SECRET.parse().unwrap();
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret).scheme(SignatureScheme::BodySignature))
        .service(HealthCheckService::new(
            |request: HealthCheckRequest| async move {
                match request.workspace_id.as_str() {
                    "broken" => HealthCheckResponse::unhealthy(
                        HealthMessage::new("the \"billing\" integration lost its token").unwrap(),
                    ),
                    "unsure" => HealthCheckResponse::unknown(),
                    _ => HealthCheckResponse::ok(),
                }
            },
        ));
    client::serve(service).await
}

fn post(body: &str, header: Option<(&str, String)>) -> Request<Full<Bytes>> {
    let mut request = Request::post("/intercom/health").header("content-type", "application/json");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

#[tokio::test]
async fn signed_health_checks_get_a_typed_answer() {
    let addr = server().await;
    for (workspace, expected) in [
        ("abc123de", serde_json::json!({"state": "OK"})),
        ("unsure", serde_json::json!({"state": "UNKNOWN"})),
        (
            "broken",
            serde_json::json!({"state": "UNHEALTHY", "message": "the \"billing\" integration lost its token"}),
        ),
    ] {
        let body = format!(r#"{{"workspace_id":"{workspace}"}}"#);
        let signature = python_signature(&body);
        assert_eq!(signature.len(), 64);
        let answer = client::send(addr, post(&body, Some(("x-body-signature", signature)))).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.headers["content-type"], "application/json");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json, expected);
    }
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_malformed_checks_are_refused() {
    let addr = server().await;
    let body = r#"{"workspace_id":"abc123de"}"#;
    // No signature, a forged one, and the webhook scheme's header instead.
    let forged = "0".repeat(64);
    let hub = format!("sha1={}", "0".repeat(40));
    for header in [
        None,
        Some(("x-body-signature", forged)),
        Some(("x-hub-signature", hub)),
    ] {
        let answer = client::send(addr, post(body, header.clone())).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header:?}");
    }
    // Signed, but not a health check request.
    let other = r#"{"workspace":"abc123de"}"#;
    let answer = client::send(
        addr,
        post(other, Some(("x-body-signature", python_signature(other)))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(json["error"].as_str().unwrap().contains("workspace_id"));
}
