//! What the verifying layer logs under a flood of forged requests: the
//! operator sees the first rejection at once, the attacker cannot flood
//! the logs, and the summaries count every rejection.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_intercom::{sign, VerifyIntercomWebhookLayer};
use tower_intercom_test_support::{logs::Logs, secret, Recorder, PING, SECRET};

const FORGED: &str = "sha1=0123456789abcdef0123456789abcdef01234567";

fn forged() -> Request<Full<Bytes>> {
    Request::post("/")
        .header("x-hub-signature", FORGED)
        .body(Full::new(Bytes::from_static(PING)))
        .unwrap()
}

/// The `suppressed=N` of a log line, if it has one.
fn suppressed(line: &str) -> Option<u64> {
    let at = line.find("suppressed=")? + "suppressed=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_forged_requests_give_a_bounded_number_of_warnings() {
    const N: u64 = 10_000;
    let interval = Duration::from_millis(200);
    let service = VerifyIntercomWebhookLayer::new(secret())
        .warn_interval(interval)
        .layer(Recorder::default());

    let (logs, guard) = Logs::start();
    let started = Instant::now();
    for _ in 0..N {
        let response = service.clone().oneshot(forged()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // One more after a quiet interval: its warning carries the count of
    // those not yet reported.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    service.clone().oneshot(forged()).await.unwrap();
    let elapsed = started.elapsed();
    drop(guard);
    let text = logs.text();

    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" WARN ") && line.contains("invalid_signature"))
        .collect();
    assert!(
        !warnings.is_empty(),
        "no warning:\n{}",
        &text[..text.len().min(2000)]
    );
    assert!(
        warnings[0].contains("invalid signature") && warnings[0].contains("client secret"),
        "the first warning says what is wrong: {}",
        warnings[0]
    );
    assert_eq!(
        suppressed(warnings[0]),
        None,
        "the first is reported at once"
    );
    // At most one warning per interval, and the first.
    let bound = (elapsed.as_millis() / interval.as_millis()) as usize + 2;
    assert!(
        warnings.len() <= bound,
        "{} warnings in {elapsed:?} (bound {bound})",
        warnings.len()
    );
    // Every rejection is either a warning or counted in a later one.
    let counted: u64 = warnings.iter().filter_map(|line| suppressed(line)).sum();
    assert_eq!(counted + warnings.len() as u64, N + 1, "{warnings:#?}");

    // Each rejection at debug, under the fixed target.
    let debug = text
        .lines()
        .filter(|line| line.contains(" DEBUG tower_intercom::rejection:"))
        .count();
    assert_eq!(debug as u64, N + 1);
    // Never a secret or a signature.
    assert!(!text.contains(SECRET));
    assert!(!text.contains(&FORGED[5..]));
}

#[tokio::test(flavor = "current_thread")]
async fn each_reason_is_warned_on_its_own() {
    let service = VerifyIntercomWebhookLayer::new(secret()).layer(Recorder::default());
    let (logs, guard) = Logs::start();
    for _ in 0..3 {
        service.clone().oneshot(forged()).await.unwrap();
        let missing = Request::post("/")
            .body(Full::new(Bytes::from_static(PING)))
            .unwrap();
        service.clone().oneshot(missing).await.unwrap();
        let signed = Request::post("/")
            .header("x-hub-signature", sign(&secret(), PING))
            .body(Full::new(Bytes::from_static(PING)))
            .unwrap();
        assert_eq!(
            service.clone().oneshot(signed).await.unwrap().status(),
            StatusCode::OK
        );
    }
    drop(guard);
    let text = logs.text();
    let warned = |reason: &str| {
        text.lines()
            .filter(|line| line.contains(" WARN ") && line.contains(reason))
            .count()
    };
    // With the default interval (a minute), one warning per reason.
    assert_eq!(warned("invalid_signature"), 1, "{text}");
    assert_eq!(warned("missing_signature"), 1, "{text}");
}
