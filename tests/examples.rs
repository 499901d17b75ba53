//! The example servers (the webhook receivers and the Messenger settings
//! endpoint), run as a new user runs them: the compiled example binary,
//! started with the environment the README describes, and hit over a
//! loopback socket by a real client.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{Empty, Full};
use tower_intercom::{sign, WebhookSecret};
use tower_intercom_test_support::{
    client,
    examples::{self, free_port, Running},
    redis_server, PING,
};

/// The signature and body of the printed `curl` command.
fn parse_curl(line: &str) -> (String, String) {
    let signature = line
        .split("-H 'x-hub-signature: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("curl line has a signature");
    let body = line
        .split("--data-binary '")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("curl line has a body");
    (signature.to_owned(), body.to_owned())
}

fn post(path: &str, signature: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("content-type", "application/json")
        .header("x-hub-signature", signature)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The printed `curl` gets 200; the same request with one byte changed gets
/// 401; HEAD gets 200; SIGTERM shuts the server down cleanly.
async fn printed_curl_works(name: &str) {
    let running = Running::start(name, &[]);
    let curl = running.wait_for_line("curl ");
    assert!(curl.contains(&format!("http://{}/webhooks/intercom", running.addr)));
    let (signature, body) = parse_curl(&curl);
    let addr = running.addr;

    let answer = client::send(
        addr,
        post("/webhooks/intercom", &signature, body.clone().into_bytes()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{name}: {answer:?}");

    let mut tampered = body.into_bytes();
    let at = tampered.iter().position(|&b| b == b'H').unwrap();
    tampered[at] = b'h';
    let answer = client::send(addr, post("/webhooks/intercom", &signature, tampered)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");

    let head = Request::head("/webhooks/intercom")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        client::send(addr, head).await.status,
        StatusCode::OK,
        "{name}"
    );

    assert!(
        running.terminate().success(),
        "{name} exits cleanly on SIGTERM"
    );
}

#[tokio::test]
async fn axum_example_printed_curl_works() {
    printed_curl_works("axum").await;
}

#[tokio::test]
async fn hyper_example_printed_curl_works() {
    printed_curl_works("hyper").await;
}

#[tokio::test]
async fn tonic_example_printed_curl_works() {
    printed_curl_works("tonic").await;
}

#[tokio::test]
async fn configured_secrets_and_rotation() {
    let current = "current-client-secret";
    let previous = "previous-client-secret";
    for name in ["axum", "hyper", "tonic"] {
        let running = Running::start(
            name,
            &[
                ("INTERCOM_WEBHOOK_SECRET", current),
                ("INTERCOM_WEBHOOK_SECRET_PREVIOUS", previous),
            ],
        );
        let addr = running.addr;
        let body = PING.to_vec();
        for (secret, status) in [
            (current, StatusCode::OK),
            (previous, StatusCode::OK),
            ("some-other-secret", StatusCode::UNAUTHORIZED),
        ] {
            let signature = sign(&WebhookSecret::new(secret).unwrap(), &body);
            let request = post(
                "/webhooks/intercom",
                signature.to_str().unwrap(),
                body.clone(),
            );
            assert_eq!(
                client::send(addr, request).await.status,
                status,
                "{name} {secret}"
            );
        }
    }
}

#[tokio::test]
async fn hyper_example_answers_404_off_the_webhook_path_without_verifying() {
    let running = Running::start("hyper", &[]);
    let request = Request::post("/elsewhere")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let answer = client::send(running.addr, request).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn axum_example_health_check_is_open() {
    let running = Running::start("axum", &[]);
    let request = Request::get("/healthz")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "ok");
}

#[test]
fn an_empty_secret_is_a_clear_error_not_a_panic() {
    for name in ["axum", "hyper", "tonic"] {
        let output = examples::command(name)
            .env("INTERCOM_WEBHOOK_SECRET", "")
            .env("PORT", free_port().to_string())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("environment variable `INTERCOM_WEBHOOK_SECRET` is empty"),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

/// Starts the Messenger settings example with `env`.
fn start_messenger(env: &[(&str, &str)]) -> Running {
    Running::start_until(
        "messenger",
        env,
        "Listening for Messenger settings requests",
    )
}

#[tokio::test]
async fn messenger_example_settings_endpoint_signs_for_the_signed_in_user_only() {
    use tower_intercom::identity::{user_hash, IdentitySecret, MessengerJwtVerifier};

    let identity = "example-identity-secret";
    let running = start_messenger(&[
        ("INTERCOM_IDENTITY_SECRET", identity),
        ("INTERCOM_APP_ID", "abc123de"),
    ]);
    let anonymous = Request::get("/api/intercom-settings")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.addr, anonymous).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(!String::from_utf8_lossy(&answer.body).contains("user_hash"));

    let signed_in = Request::get("/api/intercom-settings")
        .header("authorization", "Bearer demo-ada")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.addr, signed_in).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let secret = IdentitySecret::new(identity).unwrap();
    assert_eq!(json["app_id"], "abc123de");
    assert_eq!(json["user_id"], "user-ada");
    assert_eq!(json["user_hash"], user_hash(&secret, "user-ada"));
    let claims = MessengerJwtVerifier::new(secret)
        .verify(json["intercom_user_jwt"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.user_id(), "user-ada");
    assert_eq!(claims.email(), Some("ada@example.com"));
}

#[tokio::test]
async fn messenger_example_prints_a_ready_curl_and_shuts_down_cleanly() {
    // No identity secret: a development one, and a warning.
    let running = start_messenger(&[]);
    let curl = running.wait_for_line("As a signed-in demo user: curl ");
    let url = format!("http://{}/api/intercom-settings", running.addr);
    assert!(curl.ends_with(&format!("-H 'Authorization: Bearer demo-ada' {url}")));
    let signed_in = Request::get("/api/intercom-settings")
        .header("authorization", "Bearer demo-grace")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.addr, signed_in).await;
    assert_eq!(answer.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["app_id"], "your-app-id");
    assert_eq!(json["user_id"], "user-grace");
    assert!(running.terminate().success());
}

#[test]
fn messenger_example_refuses_an_empty_identity_secret() {
    let output = examples::command("messenger")
        .env("INTERCOM_IDENTITY_SECRET", "")
        .env("PORT", free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("environment variable `INTERCOM_IDENTITY_SECRET` is empty"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn axum_example_answers_handled_and_unhandled_topics() {
    let secret = "topic-test-secret";
    let running = Running::start("axum", &[("INTERCOM_WEBHOOK_SECRET", secret)]);
    let secret = WebhookSecret::new(secret).unwrap();
    for fixture in [
        "conversation.user.replied",
        "contact.user.created",
        "company.created",
        "contact.deleted",
    ] {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/notifications/{fixture}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let signature = sign(&secret, &body);
        let request = post("/webhooks/intercom", signature.to_str().unwrap(), body);
        let answer = client::send(running.addr, request).await;
        assert_eq!(answer.status, StatusCode::OK, "{fixture}");
    }
    // Signed but not a notification: 400 with where the JSON broke.
    let body = b"{\"id\": ".to_vec();
    let signature = sign(&secret, &body);
    let answer = client::send(
        running.addr,
        post("/webhooks/intercom", signature.to_str().unwrap(), body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["line"], 1);
}

/// Delivers `notification` (signed with `secret`) to `addr`.
async fn deliver(addr: SocketAddr, secret: &WebhookSecret, body: &str) -> client::Answer {
    let signature = sign(secret, body.as_bytes());
    client::send(
        addr,
        post(
            "/webhooks/intercom",
            signature.to_str().unwrap(),
            body.as_bytes().to_vec(),
        ),
    )
    .await
}

fn delivery(id: &str, attempt: u32) -> String {
    format!(
        r#"{{"type":"notification_event","id":"{id}","topic":"contact.user.created","delivery_attempts":{attempt},"created_at":1700000000,"data":{{"type":"notification_event_data","item":{{"type":"contact","id":"c1"}}}}}}"#
    )
}

#[tokio::test]
async fn axum_example_handles_a_redelivered_notification_once() {
    let running = Running::start("axum", &[("INTERCOM_WEBHOOK_SECRET", "dedupe-secret")]);
    let secret = WebhookSecret::new("dedupe-secret").unwrap();
    let first = deliver(running.addr, &secret, &delivery("notif_once", 1)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.headers.get("x-intercom-duplicate").is_none());
    let again = deliver(running.addr, &secret, &delivery("notif_once", 2)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers["x-intercom-duplicate"], "true");
}

#[tokio::test]
async fn axum_examples_sharing_redis_handle_a_notification_once() {
    let redis = redis_server::RedisServer::start();
    let url = redis.url();
    let env = [
        ("INTERCOM_WEBHOOK_SECRET", "shared-secret"),
        ("REDIS_URL", url.as_str()),
    ];
    let (one, two) = (Running::start("axum", &env), Running::start("axum", &env));
    let secret = WebhookSecret::new("shared-secret").unwrap();
    for n in 0..5 {
        let id = format!("notif_shared_{n}");
        let (first, second) = (delivery(&id, 1), delivery(&id, 2));
        let (a, b) = tokio::join!(
            deliver(one.addr, &secret, &first),
            deliver(two.addr, &secret, &second),
        );
        // Exactly one instance handled it; the other answered that it was
        // a duplicate (200) or still in progress (409, Intercom retries).
        let handled = [&a, &b]
            .iter()
            .filter(|answer| {
                answer.status == StatusCode::OK
                    && answer.headers.get("x-intercom-duplicate").is_none()
            })
            .count();
        assert_eq!(handled, 1, "{id}: {a:?} {b:?}");
        for answer in [&a, &b] {
            assert!(
                answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
                "{id}: {answer:?}"
            );
        }
        // A later delivery to either instance is a duplicate.
        let later = deliver(two.addr, &secret, &delivery(&id, 3)).await;
        assert_eq!(later.headers["x-intercom-duplicate"], "true", "{id}");
    }
}
