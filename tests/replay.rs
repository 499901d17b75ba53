//! The opt-in replay window, with the idempotency layer: inside the window
//! a replay is absorbed by its id, outside it the replay is refused, and a
//! window the deduplication cannot hold is refused when configured.
#![cfg(feature = "idempotency")]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_intercom::{
    health::{HealthCheckRequest, HealthCheckResponse, HealthCheckService},
    idempotency::{IdempotencyLayer, MemoryStore, DUPLICATE_HEADER},
    rejection::{Rejection, RejectionKind},
    sign,
    webhook::{DeliveryRate, ReplayWindow},
    ConfigErrorKind, SignatureScheme, VerifyIntercomWebhookLayer,
};
use tower_intercom_test_support::{secret, Recorder};

const HOUR: u64 = 3600;
const START: u64 = 1_700_000_000;

fn delivery(id: &str, first_sent_at: Option<u64>, attempt: u32) -> Request<Full<Bytes>> {
    let sent = first_sent_at.map_or(String::new(), |at| format!(r#","first_sent_at":{at}"#));
    let body = format!(
        r#"{{"type":"notification_event","id":"{id}","topic":"ping","delivery_attempts":{attempt}{sent},"data":{{"item":{{}}}}}}"#
    );
    Request::post("/")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn replays_are_absorbed_inside_the_window_and_refused_outside() {
    let now = Arc::new(AtomicU64::new(START));
    let clock = now.clone();
    let dedupe = IdempotencyLayer::in_memory().done_ttl(Duration::from_secs(24 * HOUR));
    let rate = DeliveryRate::per_second(2);
    let window = ReplayWindow::with_delivery_rate(Duration::from_secs(6 * HOUR), rate, &dedupe)
        .unwrap()
        .with_clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst)));
    let recorder = Recorder::default();
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()).replay_window(window))
        .layer(dedupe)
        .service(recorder.clone());
    let send = |request| service.clone().oneshot(request);

    // Sent an hour ago: processed.
    let first = send(delivery("notif_1", Some(START - HOUR), 1))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(recorder.calls(), 1);

    // The same capture replayed two hours later, still inside the window:
    // absorbed by its id.
    now.store(START + 2 * HOUR, Ordering::SeqCst);
    let replay = send(delivery("notif_1", Some(START - HOUR), 1))
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::OK);
    assert!(replay.headers().contains_key(DUPLICATE_HEADER));
    assert_eq!(recorder.calls(), 1);

    // Replayed once the window has passed: refused, never reaches the id
    // check or the handler.
    now.store(START + 6 * HOUR, Ordering::SeqCst);
    let late = send(delivery("notif_1", Some(START - HOUR), 1))
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        late.extensions().get::<Rejection>().map(Rejection::kind),
        Some(RejectionKind::Expired)
    );
    assert_eq!(recorder.calls(), 1);

    // An undated notification is refused under a window.
    let undated = send(delivery("notif_2", None, 1)).await.unwrap();
    assert_eq!(undated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn without_a_window_old_notifications_pass() {
    let recorder = Recorder::default();
    let service = VerifyIntercomWebhookLayer::new(secret());
    let service = tower::Layer::layer(&service, recorder.clone());
    let response = service
        .oneshot(delivery("notif_old", Some(1), 1))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
}

#[test]
fn a_window_longer_than_the_dedupe_memory_is_a_configuration_error() {
    let dedupe = IdempotencyLayer::in_memory().done_ttl(Duration::from_secs(HOUR));
    let err = ReplayWindow::new(Duration::from_secs(HOUR + 1), &dedupe).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::ReplayWindowTooLong);
    assert!(ReplayWindow::new(Duration::from_secs(HOUR), &dedupe).is_ok());
}

fn health_check(workspace: &str) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"workspace_id":"{workspace}"}}"#);
    let signature = SignatureScheme::BodySignature.sign(&secret(), body.as_bytes());
    Request::post("/intercom/health")
        .header("x-body-signature", signature)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Installation health checks (`X-Body-Signature`) carry no
/// `first_sent_at` or `created_at`: a windowed layer reused for them, as
/// the axum example reuses its layer, answers them, and still refuses
/// stale notifications on the notification route.
#[tokio::test]
async fn the_window_leaves_health_checks_alone() {
    let dedupe = IdempotencyLayer::in_memory();
    let window = ReplayWindow::new(Duration::from_secs(HOUR), &dedupe).unwrap();
    let health =
        || HealthCheckService::new(|_: HealthCheckRequest| async { HealthCheckResponse::ok() });
    let verify = VerifyIntercomWebhookLayer::new(secret()).replay_window(window.clone());
    let recorder = Recorder::default();
    let notifications = ServiceBuilder::new()
        .layer(verify.clone())
        .layer(dedupe)
        .service(recorder.clone());
    // The window set before the scheme, as the example does, and after it.
    let health_checks = [
        ServiceBuilder::new()
            .layer(verify.scheme(SignatureScheme::BodySignature))
            .service(health()),
        ServiceBuilder::new()
            .layer(
                VerifyIntercomWebhookLayer::new(secret())
                    .scheme(SignatureScheme::BodySignature)
                    .replay_window(window),
            )
            .service(health()),
    ];
    for health_checks in health_checks {
        let answer = health_checks
            .oneshot(health_check("abc123de"))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json, serde_json::json!({"state": "OK"}));
    }

    // Notifications are still held to the window.
    let stale = notifications
        .clone()
        .oneshot(delivery("notif_stale", Some(1), 1))
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        stale.extensions().get::<Rejection>().map(Rejection::kind),
        Some(RejectionKind::Expired)
    );
    let undated = notifications
        .oneshot(delivery("notif_undated", None, 1))
        .await
        .unwrap();
    assert_eq!(undated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(recorder.calls(), 0);
}

/// Sends `ids` notifications sent a minute ago, then a replay of the first
/// one, through a windowed layer over `dedupe`; returns the replay's
/// status, and whether it was answered as a duplicate.
async fn replay_after(
    ids: usize,
    window: ReplayWindow,
    dedupe: IdempotencyLayer,
    recorder: &Recorder,
) -> (StatusCode, bool) {
    let window = window.with_clock(|| UNIX_EPOCH + Duration::from_secs(START));
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()).replay_window(window))
        .layer(dedupe)
        .service(recorder.clone());
    for i in 0..ids {
        let answer = service
            .clone()
            .oneshot(delivery(&format!("notif_{i}"), Some(START - 60), 1))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let replay = service
        .oneshot(delivery("notif_0", Some(START - 60), 1))
        .await
        .unwrap();
    (
        replay.status(),
        replay.headers().contains_key(DUPLICATE_HEADER),
    )
}

/// A store of 10 ids under a window of an hour: after 500 notifications,
/// a replay of the first one, sent a minute ago, would be processed again
/// (its id evicted). Refused when configured, at any rate above 10 an hour.
#[test]
fn a_window_the_memory_store_cannot_hold_is_refused() {
    let dedupe = IdempotencyLayer::new(MemoryStore::with_capacity(10));
    let hour = Duration::from_secs(HOUR);
    for built in [
        ReplayWindow::new(hour, &dedupe),
        ReplayWindow::with_delivery_rate(hour, DeliveryRate::per_second(1), &dedupe),
        ReplayWindow::with_delivery_rate(hour, DeliveryRate::per_hour(11), &dedupe),
    ] {
        let err = built.unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::ReplayWindowExceedsCapacity);
        assert!(err.to_string().contains("window x rate"), "{err}");
    }
    assert!(ReplayWindow::with_delivery_rate(hour, DeliveryRate::per_hour(10), &dedupe).is_ok());
    // The default store (50,000 ids) at the default rate (10 a second).
    let default = IdempotencyLayer::in_memory();
    assert!(ReplayWindow::new(Duration::from_secs(5_000), &default).is_ok());
    assert!(ReplayWindow::new(Duration::from_secs(5_001), &default).is_err());
}

/// The arithmetic holds: a store sized for the window at the stated rate
/// (60 s at 10 a second: 600 ids) absorbs a replay after 500 notifications.
#[tokio::test]
async fn a_replay_inside_a_window_the_store_holds_is_absorbed() {
    let minute = Duration::from_secs(60);
    let rate = DeliveryRate::per_second(10);
    let dedupe = IdempotencyLayer::new(MemoryStore::with_capacity(rate.count_in(minute)));
    let window = ReplayWindow::with_delivery_rate(minute, rate, &dedupe).unwrap();
    let recorder = Recorder::default();
    let (status, duplicate) = replay_after(500, window, dedupe, &recorder).await;
    assert_eq!(status, StatusCode::OK);
    assert!(duplicate, "the replay was not recognised");
    assert_eq!(recorder.calls(), 500, "the replay was processed again");
}
