//! The example receivers, run as a new user runs them: the compiled
//! example binary, started with the environment the README describes, and
//! hit over a loopback socket by a real client.

mod common;
#[allow(dead_code)]
#[path = "common/idempotency/redis_server.rs"]
mod redis_server;

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::client;
use http::{Request, StatusCode};
use http_body_util::{Empty, Full};
use tower_intercom::{sign, WebhookSecret};

/// Builds the example (a no-op when it is up to date) and returns its path.
fn example_binary(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--all-features", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name} failed");
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running example, killed when dropped.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Running {
    fn start(name: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(example_binary(name));
        command
            .env_remove("INTERCOM_WEBHOOK_SECRET")
            .env_remove("INTERCOM_WEBHOOK_SECRET_PREVIOUS")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start example");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let running = Self {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        running.wait_for_line("Listening for Intercom webhooks");
        running
    }

    /// The first output line that starts with `prefix`.
    fn wait_for_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(err) => panic!("no line starting with {prefix:?}: {err}"),
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "example did not shut down");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        let body = common::PING.to_vec();
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
        let output = Command::new(example_binary(name))
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

#[tokio::test]
async fn axum_example_settings_endpoint_signs_for_the_signed_in_user_only() {
    use tower_intercom::identity::{IdentitySecret, MessengerJwtVerifier};

    let identity = "example-identity-secret";
    let running = Running::start(
        "axum",
        &[
            ("INTERCOM_IDENTITY_SECRET", identity),
            ("INTERCOM_APP_ID", "abc123de"),
        ],
    );
    let anonymous = Request::get("/api/intercom-settings")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.addr, anonymous).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(!String::from_utf8_lossy(&answer.body).contains("intercom_user_jwt"));

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
    // Messenger Security only: no user_hash next to the JWT.
    assert!(json.get("user_hash").is_none());
    let claims = MessengerJwtVerifier::new(secret)
        .verify(json["intercom_user_jwt"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.user_id(), "user-ada");
    assert_eq!(claims.email(), Some("ada@example.com"));
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
