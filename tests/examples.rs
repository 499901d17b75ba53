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
    postgres_server, redis_server, PING,
};

/// The signature (in `header`) and body of a printed `curl` command.
fn parse_curl(line: &str, header: &str) -> (String, String) {
    let signature = line
        .split(&format!("-H '{header}: "))
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
/// 401; HEAD gets 200, GET 405 with `Allow`; SIGTERM shuts the server down
/// cleanly.
async fn printed_curl_works(name: &str) {
    let running = Running::start(name, &[]);
    let curl = running.wait_for_line("curl ");
    assert!(curl.contains(&format!("http://{}/webhooks/intercom", running.addr)));
    let (signature, body) = parse_curl(&curl, "x-hub-signature");
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
    // Someone opening the URL in a browser: not a signature problem.
    let get = Request::get("/webhooks/intercom")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(addr, get).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
    assert_eq!(answer.headers["allow"], "POST, HEAD", "{name}");

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

/// The printed health check `curl` (`X-Body-Signature`, the hex
/// HMAC-SHA256 of the body) gets 200 from the installation health check;
/// one byte changed gets 401.
#[tokio::test]
async fn axum_example_printed_health_check_curl_works() {
    let running = Running::start("axum", &[]);
    let url = format!("http://{}/intercom/health", running.addr);
    let curl = running.wait_for_line(&format!("curl -i -X POST {url} "));
    let (signature, body) = parse_curl(&curl, "x-body-signature");
    let health = |body: String| {
        Request::post("/intercom/health")
            .header("content-type", "application/json")
            .header("x-body-signature", &signature)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let answer = client::send(running.addr, health(body.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{curl}: {answer:?}");
    assert_eq!(answer.body, r#"{"state":"OK"}"#);
    let answer = client::send(running.addr, health(body.replacen("dev", "Dev", 1))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

/// The webhook port answers only the webhook, the health checks and
/// `/healthz`; `/metrics` and `/inbox` (whose dead-letter listings would
/// show notification contents) are on the admin port, on loopback, which
/// answers nothing else. (Both were served to anyone who reached the
/// webhook port.)
#[tokio::test]
async fn axum_example_serves_metrics_and_inbox_on_the_admin_port_only() {
    let running = Running::start("axum", &[("INTERCOM_WEBHOOK_SECRET", "admin-secret")]);
    let get = |path: &str| Request::get(path).body(Empty::<Bytes>::new()).unwrap();
    for path in ["/metrics", "/inbox"] {
        let answer = client::send(running.addr, get(path)).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path} on the webhook port"
        );
        let answer = client::send(running.admin_addr, get(path)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path} on the admin port");
    }
    let secret = WebhookSecret::new("admin-secret").unwrap();
    let answer = deliver(running.admin_addr, &secret, &delivery("notif_admin", 1)).await;
    assert_eq!(
        answer.status,
        StatusCode::NOT_FOUND,
        "no webhooks on the admin port"
    );
    let answer = client::send(running.admin_addr, get("/healthz")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

/// A mistyped setting stops the axum example before it opens the inbox or
/// takes a port: a clear message, exit code 1, and no file left in its
/// directory. (`PORT=abc` created the SQLite inbox first.)
#[test]
fn axum_example_checks_every_setting_before_opening_the_inbox() {
    let port = free_port().to_string();
    let cases: [(&[(&str, &str)], &str); 9] = [
        (
            &[("PORT", "abc")],
            "PORT must be a port number, not \"abc\"",
        ),
        (&[("PORT", "65536")], "PORT must be a port number"),
        (
            &[("PORT", &port), ("ADMIN_PORT", "abc")],
            "ADMIN_PORT must be a port number",
        ),
        (
            &[("PORT", &port), ("ADMIN_PORT", &port)],
            "ADMIN_PORT must differ from PORT",
        ),
        (&[("PORT", "65535")], "set ADMIN_PORT"),
        (
            &[("PORT", &port), ("INBOX_URL", "sqlite:inbox.db?mode=rwc")],
            "sqlite:<path> takes no query",
        ),
        (
            &[
                ("PORT", &port),
                ("INTERCOM_ACCESS_TOKEN", "Bearer dG9rOmFiYw=="),
            ],
            "environment variable `INTERCOM_ACCESS_TOKEN` ",
        ),
        (
            &[
                ("PORT", &port),
                ("INTERCOM_ACCESS_TOKEN", "dG9rOmFiYw=="),
                ("INTERCOM_API_URL", "http://api.intercom.example"),
            ],
            "environment variable `INTERCOM_API_URL`: the Intercom API base is a plain http:// URL",
        ),
        (
            &[
                ("PORT", &port),
                ("INTERCOM_ACCESS_TOKEN_ISSUED_AT", "last week"),
            ],
            "environment variable `INTERCOM_ACCESS_TOKEN_ISSUED_AT`: the access token's issued-at time is not",
        ),
    ];
    for (env, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut command = examples::command("axum");
        command.current_dir(dir.path()).envs(env.iter().copied());
        let output = output_within(command, std::time::Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(message), "{env:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{env:?} left {left:?}");
    }
}

/// Runs `command` to its end, or kills it after `limit` and fails (a
/// server that did not refuse its settings would run forever).
fn output_within(
    mut command: std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("still running after {limit:?}");
        }
    }
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
    use tower_intercom::identity::{IdentitySecret, MessengerJwtVerifier};

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
    // Signed but not a notification: 400, and nothing stored.
    let body = b"{\"id\": ".to_vec();
    let signature = sign(&secret, &body);
    let answer = client::send(
        running.addr,
        post("/webhooks/intercom", signature.to_str().unwrap(), body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(json["error"].is_string());
    // All four were stored (and are processed in the background).
    let counts = inbox_counts(running.admin_addr).await;
    let total: u64 = ["pending", "in_progress", "done", "dead"]
        .iter()
        .map(|state| counts[state].as_u64().unwrap())
        .sum();
    assert_eq!(total, 4, "{counts}");
}

/// `GET /inbox` on the axum example's admin port.
async fn inbox_counts(admin_addr: SocketAddr) -> serde_json::Value {
    let request = Request::get("/inbox").body(Empty::<Bytes>::new()).unwrap();
    let answer = client::send(admin_addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_slice(&answer.body).unwrap()
}

/// Waits until the example's inbox counts satisfy `done`.
async fn wait_for_counts(
    admin_addr: SocketAddr,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let counts = inbox_counts(admin_addr).await;
        if done(&counts) {
            return counts;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {counts}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The crash test: every notification answered 200 is processed, even
/// when the receiver is killed (SIGKILL) right after the last answer, and
/// redeliveries of the same ids are absorbed.
#[tokio::test]
async fn axum_example_loses_no_acknowledged_notification_when_killed() {
    const N: usize = 50;
    let env = [("INTERCOM_WEBHOOK_SECRET", "crash-secret")];
    let mut running = Running::start("axum", &env);
    let secret = WebhookSecret::new("crash-secret").unwrap();
    let ids: Vec<String> = (0..N).map(|n| format!("notif_crash_{n}")).collect();
    for id in &ids {
        let answer = deliver(running.addr, &secret, &delivery(id, 1)).await;
        assert_eq!(answer.status, StatusCode::OK, "{id}: {answer:?}");
    }
    running.kill();

    // Started again on the same inbox file: everything acknowledged is
    // processed, nothing is dead.
    let running = running.restart("axum", &env);
    let counts = wait_for_counts(running.admin_addr, "all acknowledged processed", |counts| {
        counts["done"] == N
    })
    .await;
    assert_eq!(counts["dead"], 0, "{counts}");
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(counts["in_progress"], 0, "{counts}");

    // Intercom's redeliveries (new delivery_attempts, new signatures) are
    // answered 200 and absorbed.
    for id in &ids {
        let answer = deliver(running.addr, &secret, &delivery(id, 2)).await;
        assert_eq!(answer.status, StatusCode::OK, "{id}");
        assert_eq!(answer.headers["x-intercom-duplicate"], "true", "{id}");
    }
    let counts = inbox_counts(running.admin_addr).await;
    assert_eq!(counts["done"], N, "{counts}");
}

/// The demo worker logs one line per notification it completes, with the
/// word `processed` and the id.
#[tokio::test]
async fn axum_example_worker_logs_each_processed_notification() {
    let running = Running::start("axum", &[("INTERCOM_WEBHOOK_SECRET", "log-secret")]);
    let secret = WebhookSecret::new("log-secret").unwrap();
    let answer = deliver(running.addr, &secret, &delivery("notif_logged", 1)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let line = running.wait_for_line("processed");
    assert!(line.contains("notif_logged"), "{line}");
}

/// `GET /metrics` on the admin port shows the verified and rejected
/// counters moving after the README's curl commands (a signed ping, then
/// one byte changed).
#[tokio::test]
async fn axum_example_serves_prometheus_metrics() {
    let running = Running::start("axum", &[]);
    let (signature, body) = parse_curl(&running.wait_for_line("curl "), "x-hub-signature");
    let answer = client::send(
        running.addr,
        post("/webhooks/intercom", &signature, body.clone().into_bytes()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let tampered = body.replacen("ping", "pong", 1);
    let answer = client::send(
        running.addr,
        post("/webhooks/intercom", &signature, tampered.into_bytes()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let request = Request::get("/metrics")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.admin_addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    let value = |series: &str| {
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    assert_eq!(
        value("intercom_webhook_verified{signature_scheme=\"hub\",secret_index=\"0\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("intercom_webhook_rejected{error_type=\"invalid\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("intercom_inbox_receive{outcome=\"stored\"}"),
        Some(1.0),
        "{text}"
    );
}

/// Intercom's installation health check, signed with X-Body-Signature.
#[tokio::test]
async fn axum_example_answers_the_installation_health_check() {
    let running = Running::start("axum", &[("INTERCOM_WEBHOOK_SECRET", "health-secret")]);
    let secret = WebhookSecret::new("health-secret").unwrap();
    let body = br#"{"workspace_id":"abc123de"}"#.to_vec();
    let signature = tower_intercom::SignatureScheme::BodySignature.sign(&secret, &body);
    let request = Request::post("/intercom/health")
        .header("x-body-signature", signature)
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let answer = client::send(running.addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, r#"{"state":"OK"}"#);
    // The webhook scheme's signature does not open the health check.
    let request = Request::post("/intercom/health")
        .header("x-hub-signature", sign(&secret, &body))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(
        client::send(running.addr, request).await.status,
        StatusCode::UNAUTHORIZED
    );
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

/// Two instances of the axum example on one Redis inbox (`INBOX_URL`): the
/// same notification delivered to both at once is stored once and
/// processed once.
#[tokio::test]
async fn axum_examples_sharing_a_redis_inbox_process_a_notification_once() {
    let redis = redis_server::RedisServer::start_with(redis_server::AOF_ALWAYS);
    two_axum_examples_share_one_inbox(&redis.url()).await;
}

/// The same with a PostgreSQL inbox (`INBOX_URL=postgres://…`).
#[tokio::test]
async fn axum_examples_sharing_a_postgres_inbox_process_a_notification_once() {
    let postgres = postgres_server::PostgresServer::start();
    two_axum_examples_share_one_inbox(&postgres.url("postgres")).await;
}

/// Two instances of the axum example on the inbox at `url`: each
/// notification delivered to both at once is stored once, and processed
/// once across both.
async fn two_axum_examples_share_one_inbox(url: &str) {
    let env = [
        ("INTERCOM_WEBHOOK_SECRET", "shared-secret"),
        ("INBOX_URL", url),
    ];
    let (one, two) = (Running::start("axum", &env), Running::start("axum", &env));
    let secret = WebhookSecret::new("shared-secret").unwrap();
    const N: usize = 5;
    for n in 0..N {
        let id = format!("notif_shared_{n}");
        let (first, second) = (delivery(&id, 1), delivery(&id, 2));
        let (a, b) = tokio::join!(
            deliver(one.addr, &secret, &first),
            deliver(two.addr, &secret, &second),
        );
        // Both answered 200: one stored it, the other found it stored.
        assert_eq!(a.status, StatusCode::OK, "{id}: {a:?}");
        assert_eq!(b.status, StatusCode::OK, "{id}: {b:?}");
        let stored = [&a, &b]
            .iter()
            .filter(|answer| answer.headers.get("x-intercom-duplicate").is_none())
            .count();
        assert_eq!(stored, 1, "{id}: {a:?} {b:?}");
    }
    // Both instances see the one inbox; each notification is done once.
    let counts = wait_for_counts(two.admin_addr, "all processed", |counts| {
        counts["done"] == N
    })
    .await;
    assert_eq!(counts["dead"], 0, "{counts}");
    let processed: usize = [&one, &two]
        .iter()
        .map(|running| {
            running
                .lines_containing(
                    "processed notif_shared_",
                    std::time::Duration::from_millis(500),
                )
                .len()
        })
        .sum();
    assert_eq!(processed, N, "each notification processed once across both");
}

/// A SIGTERM sent as soon as a server example says it listens ends it
/// cleanly: its signal handlers are installed before it says so, not when
/// the server first polls for shutdown (a signal in between ended the
/// process abruptly, as a loaded CI machine showed).
#[test]
fn server_examples_shut_down_cleanly_on_a_sigterm_sent_as_they_start() {
    let examples = [
        ("axum", "Listening for Intercom webhooks"),
        ("hyper", "Listening for Intercom webhooks"),
        ("tonic", "Listening for Intercom webhooks"),
        ("messenger", "Listening for Messenger settings requests"),
    ];
    for round in 0..3 {
        for (name, ready) in examples {
            let status = Running::start_until(name, &[], ready).terminate();
            assert!(status.success(), "{name}, round {round}: {status}");
        }
    }
}

/// An `INBOX_URL` of a store the example does not have (MongoDB, MySQL)
/// is refused at start, naming the scheme and never the URL, which can
/// carry a password. (Before, it was taken for an SQLite path, and the
/// error printed the URL, password included.)
#[test]
fn axum_example_refuses_an_inbox_url_it_cannot_use_without_showing_it() {
    for (url, scheme) in [
        ("mongodb://admin:TOPSECRETPW@127.0.0.1/inbox", "mongodb"),
        // The `//` forgotten: not taken for an SQLite file name.
        ("redis:default:TOPSECRETPW@127.0.0.1:6379", "redis"),
        ("postgres:admin:TOPSECRETPW@127.0.0.1/inbox", "postgres"),
        ("mysql:admin:TOPSECRETPW@db", "mysql"),
        ("admin:TOPSECRETPW@host/x?next=http://y", "admin"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = examples::command("axum")
            .env("INBOX_URL", url)
            .env("PORT", free_port().to_string())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{url}");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(
            stderr.contains(&format!("cannot use a \"{scheme}\" URL")),
            "{url}: {stderr}"
        );
        assert!(!stdout.contains("TOPSECRETPW"), "{stdout}");
        assert!(!stderr.contains("TOPSECRETPW"), "{stderr}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{url}");
    }
}

/// A `postgres://` `INBOX_URL` whose server does not answer stops the
/// example at start with an error that says so, never the password, and
/// nothing is listening.
#[test]
fn axum_example_reports_an_unreachable_postgres_inbox_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://admin:TOPSECRETPW@127.0.0.1:{}/inbox",
        free_port()
    );
    let output = examples::command("axum")
        .env("INBOX_URL", &url)
        .env("PORT", free_port().to_string())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        stderr.contains(
            "cannot connect to the Postgres inbox: the store is unavailable: cannot reach Postgres"
        ),
        "{stderr}"
    );
    assert!(!stdout.contains("Listening"), "{stdout}");
    for shown in [&stdout, &stderr] {
        assert!(!shown.contains("TOPSECRETPW"), "{shown}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `sqlite://inbox.sqlite3` names a file in the working directory, as
/// `sqlite:inbox.sqlite3` does, whatever the scheme's case (before, it
/// was `/inbox.sqlite3`, at the root of the file system).
#[test]
fn axum_example_opens_an_sqlite_url_relative_to_its_directory() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = examples::command("axum")
        .env("INBOX_URL", "SQLITE://inbox-here.sqlite3")
        .env("PORT", free_port().to_string())
        .env("ADMIN_PORT", free_port().to_string())
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut inbox_line = None;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.starts_with("Inbox:") {
            inbox_line = Some(line);
        } else if line.starts_with("Listening for Intercom webhooks") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        inbox_line.as_deref(),
        Some("Inbox: SQLite file inbox-here.sqlite3")
    );
    assert!(dir.path().join("inbox-here.sqlite3").exists());
}

/// What a slow client saw: the status of the answer it got (if it could
/// read one) and whether the server closed the connection in time.
#[derive(Debug)]
struct Held {
    status: Option<u16>,
    closed: bool,
}

/// Connects to `addr`, writes `head` and `burst` bytes of body at once,
/// then one more byte every 500 ms, as a slowloris client does, until the
/// server closes the connection or `deadline` passes.
async fn hold(
    addr: SocketAddr,
    head: String,
    burst: usize,
    deadline: tokio::time::Instant,
) -> Held {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&vec![b'0'; burst]).await?;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            writer.write_all(b"0").await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = [0; 1024];
    let closed = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    };
    trickle.abort();
    let status = answer
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok());
    Held { status, closed }
}

/// A line of `/proc/PID/status`, in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Unauthenticated clients cannot hold the axum example: slow bodies under
/// a well-formed wrong signature (`sha1=0…`) trickled a byte at a time,
/// bodies announcing 2 MiB with 1 MiB sent at once, and headers that never
/// end. Beyond 256 bodies in flight the example answers 429 at once; the
/// others get 408 when the 5 s request timeout ends them, headers are cut
/// after 5 s, and every connection is closed; its memory stays bounded.
/// (Before, it had no timeout and no limit: every connection stayed open,
/// each holding what it sent.)
#[tokio::test]
async fn axum_example_closes_slow_unsigned_bodies_and_keeps_memory_bounded() {
    /// Trickled bodies: more than the 256 the example handles at once.
    const SLOW: usize = 300;
    /// Bodies announcing 2 MiB (the layer's default limit) that send 1 MiB.
    const LARGE: usize = 150;
    /// Headers that never end.
    const HEADERS: usize = 20;
    /// What the example's memory may grow by: far below what the clients
    /// send (150 MiB), above what the open connections cost.
    const BOUND_KIB: u64 = 64 * 1024;

    let running = Running::start("axum", &[("INTERCOM_WEBHOOK_SECRET", "slow-secret")]);
    let (addr, pid) = (running.addr, running.pid());
    let before = status_kib(pid, "VmRSS");
    let forged = "sha1=0000000000000000000000000000000000000000";
    let request = |length: usize| {
        format!(
            "POST /webhooks/intercom HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             x-hub-signature: {forged}\r\ncontent-length: {length}\r\n\r\n{{\"type\":"
        )
    };
    let start = tokio::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs(30);
    let slow: Vec<_> = (0..SLOW)
        .map(|_| tokio::spawn(hold(addr, request(1024 * 1024), 0, deadline)))
        .collect();
    let large: Vec<_> = (0..LARGE)
        .map(|_| tokio::spawn(hold(addr, request(2 * 1024 * 1024), 1024 * 1024, deadline)))
        .collect();
    let headers: Vec<_> = (0..HEADERS)
        .map(|_| {
            let head = format!("POST /webhooks/intercom HTTP/1.1\r\nhost: {addr}\r\nx-slow: ");
            tokio::spawn(hold(addr, head, 0, deadline))
        })
        .collect();
    let mut outcomes = Vec::new();
    for (group, tasks) in [("slow", slow), ("large", large), ("headers", headers)] {
        for task in tasks {
            outcomes.push((group, task.await.unwrap()));
        }
    }
    let elapsed = start.elapsed();
    let grown = status_kib(pid, "VmHWM").saturating_sub(before);
    let open = outcomes.iter().filter(|(_, held)| !held.closed).count();
    let statuses = |group: &str| {
        let mut counts = std::collections::BTreeMap::new();
        for (_, held) in outcomes.iter().filter(|(g, _)| *g == group) {
            *counts.entry(held.status).or_insert(0) += 1;
        }
        counts
    };
    let report = format!(
        "{open} of {} connections still open after {elapsed:?}; peak memory grew by {grown} KiB; \
         statuses: slow {:?}, large {:?}, headers {:?}",
        outcomes.len(),
        statuses("slow"),
        statuses("large"),
        statuses("headers"),
    );
    println!("{report}");
    assert_eq!(open, 0, "{report}");
    assert!(grown < BOUND_KIB, "{report}");

    // The trickled bodies: 429 beyond the limit, 408 at the timeout.
    let slow = statuses("slow");
    assert!(
        slow.keys().all(|status| matches!(status, Some(408 | 429))),
        "{report}"
    );
    assert!(
        slow.get(&Some(429)).copied().unwrap_or(0) >= SLOW - 256,
        "{report}"
    );
    assert!(slow.get(&Some(408)).copied().unwrap_or(0) >= 1, "{report}");
    // The large ones are refused before their body is read (413, or 429
    // while the slow ones fill the example); some clients see the
    // connection reset before they can read the answer.
    assert!(
        statuses("large")
            .keys()
            .all(|status| matches!(status, None | Some(413 | 429))),
        "{report}"
    );

    // And the example still takes Intercom's deliveries.
    let secret = WebhookSecret::new("slow-secret").unwrap();
    let answer = deliver(addr, &secret, &delivery("notif_after_slowloris", 1)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}
