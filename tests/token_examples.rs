//! The access token in the examples, run as a user runs them against the
//! fake Intercom on a loopback port (`INTERCOM_API_URL`): `cargo run
//! --example token -- check`, the rotation runbook's "verify the new
//! token" step, and the axum example's start-up check. Neither ever
//! prints the token.

use std::{
    process::Output,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{Empty, Full};
use tower_intercom::{sign, WebhookSecret};
use tower_intercom_test_support::prometheus::sample;
use tower_intercom_test_support::{
    client,
    examples::{self, Running},
    fake_intercom::{FakeIntercom, Me, TokenState, TOKEN},
    PING,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `printf %s "$TOKEN" | sha256sum | cut -c1-8`
const FINGERPRINT: &str = "99347af2";

/// What a run of `token` printed, and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Both outputs, for assertion messages.
    fn shown(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The token is in neither output, whatever happened.
    fn assert_no_token(&self) {
        assert!(!self.stdout.contains(TOKEN), "{}", self.shown());
        assert!(!self.stderr.contains(TOKEN), "{}", self.shown());
    }
}

/// Runs `token ARGS` with `env` (and none of the variables the examples
/// read otherwise).
async fn token(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = examples::command("token");
    command.args(args).envs(env.iter().copied());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("token check ended within 120 s")
        .expect("run the token example");
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    run.assert_no_token();
    run
}

/// `token check` against `fake`, with `env` too.
async fn check(fake: &FakeIntercom, token_value: &str, env: &[(&str, &str)]) -> Run {
    let url = fake.base_url();
    let mut all = vec![
        ("INTERCOM_ACCESS_TOKEN", token_value),
        ("INTERCOM_API_URL", url.as_str()),
    ];
    all.extend_from_slice(env);
    token(&["check"], &all).await
}

/// RFC 3339 for `days` days ago.
fn days_ago(days: u32) -> String {
    jiff::Timestamp::try_from(SystemTime::now() - DAY * days)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn token_check_of_a_good_token_says_admin_app_region_verification_and_age() {
    let fake = FakeIntercom::start().await;
    let issued = days_ago(10);
    let run = check(
        &fake,
        TOKEN,
        &[("INTERCOM_ACCESS_TOKEN_ISSUED_AT", issued.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.shown());
    for expected in [
        format!("Intercom API:          {}", fake.base_url()),
        format!("Access token:          fingerprint {FINGERPRINT} "),
        "Admin:                 type admin, id 991267464, admin@example.com".into(),
        "App:                   this_is_an_id_code (MyApp), region US".into(),
        "Identity Verification: enforced".into(),
        "Token age:             10 days (rotate within 80 days)".into(),
        "OK: the token works for an admin of app this_is_an_id_code.".into(),
    ] {
        assert!(
            run.stdout.contains(&expected),
            "{expected}\n{}",
            run.shown()
        );
    }
    assert_eq!(run.stderr, "", "{}", run.shown());
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/me");
    assert_eq!(
        received[0].authorization(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // Without an issued-at time, the age is unknown, and not a problem.
    let run = check(&fake, TOKEN, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.shown());
    assert!(
        run.stdout
            .contains("Token age:             unknown (set INTERCOM_ACCESS_TOKEN_ISSUED_AT"),
        "{}",
        run.shown()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_check_of_a_refused_token_fails_with_intercoms_code_and_request_id() {
    let fake = FakeIntercom::start().await;
    for (state, code) in [
        (TokenState::revoked(), "token_revoked"),
        (TokenState::suspended(), "token_suspended"),
        (TokenState::invalid(), "unauthorized"),
    ] {
        fake.set_token(TOKEN, state);
        let run = check(&fake, TOKEN, &[]).await;
        assert_eq!(run.code, Some(1), "{}", run.shown());
        assert!(
            run.stderr.contains(&format!(
                "error: Intercom refused the access token: 401 Unauthorized, {code}"
            )),
            "{}",
            run.shown()
        );
        assert!(run.stderr.contains(", request_id req_"), "{}", run.shown());
        assert!(
            run.stderr.contains("FAILED: 1 problem(s)"),
            "{}",
            run.shown()
        );
        assert!(!run.stdout.contains("OK:"), "{}", run.shown());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_check_fails_when_identity_verification_is_off() {
    let fake = FakeIntercom::start().await;
    fake.set_me(Me {
        identity_verification: false,
        region: "Europe".into(),
        ..Me::default()
    });
    let run = check(&fake, TOKEN, &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(run.stdout.contains("region Europe"), "{}", run.shown());
    assert!(
        run.stdout.contains("Identity Verification: OFF"),
        "{}",
        run.shown()
    );
    assert!(
        run.stderr
            .contains("error: Identity Verification is not enforced on app this_is_an_id_code"),
        "{}",
        run.shown()
    );
    assert!(!run.stdout.contains("OK:"), "{}", run.shown());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_check_fails_for_a_token_that_is_not_an_admins() {
    let fake = FakeIntercom::start().await;
    fake.set_me(Me {
        kind: "bot".into(),
        ..Me::default()
    });
    let run = check(&fake, TOKEN, &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(
        run.stderr.contains(
            "error: the access token does not belong to an admin: GET /me answered type \"bot\""
        ),
        "{}",
        run.shown()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_check_fails_for_a_token_older_than_90_days() {
    let fake = FakeIntercom::start().await;
    let issued = days_ago(95);
    let run = check(
        &fake,
        TOKEN,
        &[("INTERCOM_ACCESS_TOKEN_ISSUED_AT", issued.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(
        run.stdout
            .contains("Token age:             95 days (rotation due)"),
        "{}",
        run.shown()
    );
    assert!(
        run.stderr
            .contains("error: the token is 95 days old: rotate it (every 90 days)"),
        "{}",
        run.shown()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_check_fails_when_the_api_cannot_be_reached() {
    // Nothing listens on the port of a listener that was dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}");
    let run = token(
        &["check"],
        &[("INTERCOM_ACCESS_TOKEN", TOKEN), ("INTERCOM_API_URL", &url)],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(
        run.stderr
            .contains(&format!("error: cannot reach the Intercom API at {url}: ")),
        "{}",
        run.shown()
    );
}

/// Settings that cannot work are refused before anything is sent, each
/// with what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn token_check_refuses_bad_settings_without_calling_intercom() {
    let fake = FakeIntercom::start().await;
    let url = fake.base_url();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("INTERCOM_API_URL", &url)],
            "error: environment variable `INTERCOM_ACCESS_TOKEN` is not set",
        ),
        (
            &[
                ("INTERCOM_ACCESS_TOKEN", "Bearer dG9rOmFiYw=="),
                ("INTERCOM_API_URL", &url),
            ],
            "error: environment variable `INTERCOM_ACCESS_TOKEN` ",
        ),
        (
            &[
                ("INTERCOM_ACCESS_TOKEN", TOKEN),
                ("INTERCOM_API_URL", "http://api.intercom.example"),
            ],
            "error: environment variable `INTERCOM_API_URL`: the Intercom API base is a plain http:// URL",
        ),
        (
            &[
                ("INTERCOM_ACCESS_TOKEN", TOKEN),
                ("INTERCOM_API_URL", "uk"),
            ],
            "error: environment variable `INTERCOM_API_URL`: the Intercom API base is not `us`, `eu`, `au`",
        ),
        (
            &[
                ("INTERCOM_ACCESS_TOKEN", TOKEN),
                ("INTERCOM_API_URL", &url),
                ("INTERCOM_ACCESS_TOKEN_ISSUED_AT", "2025-01-31"),
            ],
            "error: environment variable `INTERCOM_ACCESS_TOKEN_ISSUED_AT`: the access token's issued-at time is not an RFC 3339 time",
        ),
    ];
    for (env, expected) in cases {
        let run = token(&["check"], env).await;
        assert_eq!(run.code, Some(1), "{expected}\n{}", run.shown());
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.shown());
        assert!(!run.stdout.contains("Admin:"), "{}", run.shown());
    }
    assert!(
        !fake.received().iter().any(|_| true),
        "nothing sent to Intercom"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_command_line_errors_exit_2_with_the_usage() {
    for args in [&[][..], &["chek"], &["check", "extra"], &["--check"]] {
        let run = token(args, &[("INTERCOM_ACCESS_TOKEN", TOKEN)]).await;
        assert_eq!(run.code, Some(2), "{args:?}\n{}", run.shown());
        assert!(
            run.stderr
                .starts_with("usage: cargo run --example token -- check"),
            "{}",
            run.shown()
        );
        assert_eq!(run.stdout, "");
    }
    let run = token(&["--help"], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.shown());
    assert!(run.stdout.starts_with("usage: "), "{}", run.shown());
}

/// Starts the axum example with the access token, its API pointed at
/// `fake`, and `env`.
fn start_axum(fake: &FakeIntercom, env: &[(&str, &str)]) -> Running {
    let url = fake.base_url();
    let mut all = vec![
        ("INTERCOM_WEBHOOK_SECRET", "axum-token-secret"),
        ("INTERCOM_ACCESS_TOKEN", TOKEN),
        ("INTERCOM_API_URL", url.as_str()),
    ];
    all.extend_from_slice(env);
    Running::start("axum", &all)
}

/// The Prometheus text of the axum example's `/metrics`.
async fn metrics(running: &Running) -> String {
    let request = Request::get("/metrics")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(running.admin_addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    String::from_utf8(answer.body.to_vec()).unwrap()
}

/// The output so far holds no token.
fn assert_no_token(running: &Running) {
    let output = running.output();
    assert!(!output.contains(TOKEN), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_example_checks_the_access_token_at_start_up() {
    let fake = FakeIntercom::start().await;
    let running = start_axum(&fake, &[]);
    running.wait_for_line(
        "Intercom API: app this_is_an_id_code (MyApp), region US, token of admin admin@example.com",
    );
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/me");
    assert_eq!(
        received[0].authorization(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let output = running.output();
    assert!(!output.contains("WARNING"), "{output}");
    assert_no_token(&running);
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_example_warns_when_identity_verification_is_off() {
    let fake = FakeIntercom::start().await;
    fake.set_me(Me {
        identity_verification: false,
        region: "Europe".into(),
        ..Me::default()
    });
    let running = start_axum(&fake, &[]);
    let line = running.wait_for_line("Intercom API: app this_is_an_id_code");
    assert!(line.contains("region Europe"), "{line}");
    running.wait_for_line(
        "WARNING: Identity Verification is not enforced on app this_is_an_id_code: anyone can \
         impersonate your users in the Messenger.",
    );
    assert_no_token(&running);
}

/// A refused token is said loudly and counted, and the receiver goes on:
/// it needs no token to store what Intercom sends.
#[tokio::test(flavor = "multi_thread")]
async fn axum_example_keeps_receiving_when_the_token_is_refused() {
    let fake = FakeIntercom::start().await;
    fake.set_token(TOKEN, TokenState::revoked());
    let running = start_axum(&fake, &[]);
    let line = running.wait_for_line(
        "ERROR: the access token failed its check (GET /me): Intercom refused the access \
         token: 401 Unauthorized, token_revoked (Token revoked), request_id req_",
    );
    assert!(
        line.contains("Webhooks are still received and stored"),
        "{line}"
    );

    let secret = WebhookSecret::new("axum-token-secret").unwrap();
    let request = Request::post("/webhooks/intercom")
        .header("content-type", "application/json")
        .header("x-hub-signature", sign(&secret, PING))
        .body(Full::new(Bytes::from_static(PING)))
        .unwrap();
    let answer = client::send(running.addr, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");

    let text = metrics(&running).await;
    assert_eq!(
        sample(
            &text,
            "intercom_client_auth_failures{error_type=\"token_revoked\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_no_token(&running);
}

/// With `INTERCOM_ACCESS_TOKEN_ISSUED_AT`, `/metrics` has the token's age,
/// current at each scrape, and start-up warns past 90 days.
#[tokio::test(flavor = "multi_thread")]
async fn axum_example_exports_the_token_age_and_warns_past_90_days() {
    let fake = FakeIntercom::start().await;
    let issued = days_ago(100);
    let running = start_axum(
        &fake,
        &[("INTERCOM_ACCESS_TOKEN_ISSUED_AT", issued.as_str())],
    );
    running.wait_for_line("WARNING: the access token is over 90 days old: rotate it.");
    let age = sample(&metrics(&running).await, "intercom_client_token_age").unwrap();
    let days = age / DAY.as_secs_f64();
    assert!((100.0..100.1).contains(&days), "{days}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let later = sample(&metrics(&running).await, "intercom_client_token_age").unwrap();
        if later > age {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the age stayed at {age}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_token(&running);
}
