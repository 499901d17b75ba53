//! The behaviour every store must give the layer, run by the memory and
//! the Redis tests alike.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::body::Body;
use http::{Request, StatusCode};
use tokio::sync::{oneshot, Notify};
use tower_intercom::idempotency::{IdempotencyLayer, IdempotencyStore};

use super::*;

/// A unique notification id per call, so tests sharing a store (Redis)
/// never see each other's ids.
pub fn fresh_id(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "notif_{name}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Redelivered after a 2xx: answered 200 with the duplicate header, the
/// handler ran once.
pub async fn duplicate_after_success<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let app = receiver(layer, calls.clone(), ok());
    let id = fresh_id("dup");

    let first = send(&app, signed(&notification(&id, 1))).await;
    assert!(first.is_processed(), "{first:?}");
    for attempt in 2..=4 {
        let again = send(&app, signed(&notification(&id, attempt))).await;
        assert_eq!(again.status, StatusCode::OK);
        assert!(again.is_duplicate(), "{again:?}");
        assert!(again.body.is_empty());
    }
    assert_eq!(calls.of(&id), 1);

    // Other notifications are not affected.
    let other = fresh_id("dup");
    assert!(send(&app, signed(&notification(&other, 1)))
        .await
        .is_processed());
    assert_eq!(calls.of(&other), 1);
}

/// Redelivered after a non-2xx: processed again, then deduplicated.
pub async fn duplicate_after_failure<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let flaky = behaviour(|_, n| async move {
        match n {
            1 => StatusCode::INTERNAL_SERVER_ERROR,
            2 => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::OK,
        }
    });
    let app = receiver(layer, calls.clone(), flaky);
    let id = fresh_id("fail");

    let first = send(&app, signed(&notification(&id, 1))).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    let second = send(&app, signed(&notification(&id, 2))).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!second.is_duplicate());
    let third = send(&app, signed(&notification(&id, 3))).await;
    assert!(third.is_processed(), "{third:?}");
    let fourth = send(&app, signed(&notification(&id, 4))).await;
    assert!(fourth.is_duplicate(), "{fourth:?}");
    assert_eq!(calls.of(&id), 3);
}

/// Two deliveries of one id at once: the handler runs once, the other
/// delivery gets 409 (never 410), and a later one is a duplicate.
pub async fn concurrent_deliveries<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let entered = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let blocking = {
        let (entered, proceed) = (entered.clone(), proceed.clone());
        behaviour(move |_, _| {
            let (entered, proceed) = (entered.clone(), proceed.clone());
            async move {
                entered.notify_one();
                proceed.notified().await;
                StatusCode::OK
            }
        })
    };
    let app = receiver(layer, calls.clone(), blocking);
    let id = fresh_id("race");

    let first = tokio::spawn({
        let app = app.clone();
        let request = signed(&notification(&id, 1));
        async move { send(&app, request).await }
    });
    entered.notified().await;

    // Answered at once, not after the first (a second handler call would
    // wait for `proceed` forever).
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        send(&app, signed(&notification(&id, 2))),
    )
    .await
    .expect("the second delivery is answered while the first is processed");
    assert_eq!(second.status, StatusCode::CONFLICT, "{second:?}");
    let json: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert!(json["error"].is_string());

    proceed.notify_one();
    let first = first.await.unwrap();
    assert!(first.is_processed(), "{first:?}");

    let third = send(&app, signed(&notification(&id, 3))).await;
    assert!(third.is_duplicate(), "{third:?}");
    assert_eq!(calls.of(&id), 1);
}

/// Many deliveries of one id at once: exactly one reaches the handler.
pub async fn many_concurrent_deliveries<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let slow = behaviour(|_, _| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        StatusCode::OK
    });
    let app = receiver(layer, calls.clone(), slow);
    let id = fresh_id("herd");
    let deliveries: Vec<_> = (1..=16)
        .map(|attempt| {
            let app = app.clone();
            let request = signed(&notification(&id, attempt));
            tokio::spawn(async move { send(&app, request).await })
        })
        .collect();
    let mut processed = 0;
    for delivery in deliveries {
        let answer = delivery.await.unwrap();
        match answer.status {
            StatusCode::OK if !answer.is_duplicate() => processed += 1,
            StatusCode::OK | StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(processed, 1);
    assert_eq!(calls.of(&id), 1);
}

/// A done id is forgotten after the done TTL: processed again.
pub async fn done_ttl_expires<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let app = receiver(
        layer.done_ttl(Duration::from_millis(300)),
        calls.clone(),
        ok(),
    );
    let id = fresh_id("ttl");
    assert!(send(&app, signed(&notification(&id, 1)))
        .await
        .is_processed());
    eventually("the done entry to expire", || {
        let app = app.clone();
        let id = id.clone();
        async move {
            send(&app, signed(&notification(&id, 2)))
                .await
                .is_processed()
        }
    })
    .await;
    assert_eq!(calls.of(&id), 2);
}

/// A claim that is never finished (a crashed receiver) expires after the
/// processing TTL, so the retry is processed.
pub async fn processing_ttl_expires<St: IdempotencyStore + Clone>(store: St) {
    // One receiver takes the claim and never answers; its future is leaked,
    // as when a process dies: nothing releases the claim.
    let calls = Calls::default();
    let stuck = behaviour(|_, n| async move {
        if n == 1 {
            std::future::pending::<()>().await;
        }
        StatusCode::OK
    });
    let layer = IdempotencyLayer::new(store).processing_ttl(Duration::from_millis(300));
    let app = receiver(layer, calls.clone(), stuck);
    let id = fresh_id("crash");
    let crashed = tokio::spawn({
        let app = app.clone();
        let request = signed(&notification(&id, 1));
        async move { send(&app, request).await }
    });
    eventually("the first delivery to reach the handler", || {
        let n = calls.of(&id);
        async move { n == 1 }
    })
    .await;
    drop(crashed);

    let retry = send(&app, signed(&notification(&id, 2))).await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    eventually("the claim to expire", || {
        let app = app.clone();
        let id = id.clone();
        async move {
            send(&app, signed(&notification(&id, 3)))
                .await
                .is_processed()
        }
    })
    .await;
    assert_eq!(calls.of(&id), 2);
}

/// A client that disconnects mid-handler: the server drops the request,
/// the claim is released, and the next delivery is processed.
pub async fn disconnect_releases_claim<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let hangs_first = behaviour(move |_, n| {
        let signal = (n == 1).then(|| DropSignal(dropped_tx.lock().unwrap().take()));
        async move {
            if let Some(_signal) = signal {
                std::future::pending::<()>().await;
            }
            StatusCode::OK
        }
    });
    let addr = serve(receiver(layer, calls.clone(), hangs_first)).await;
    let id = fresh_id("gone");

    let connection = send_raw(addr, &notification(&id, 1)).await;
    eventually("the first delivery to reach the handler", || {
        let n = calls.of(&id);
        async move { n == 1 }
    })
    .await;
    // The client gives up: its connection closes.
    drop(connection);
    tokio::time::timeout(Duration::from_secs(10), dropped_rx)
        .await
        .expect("the server drops the handler of a closed connection")
        .unwrap();

    // Released (for Redis, by a spawned task): the retry is processed, not
    // refused with 409.
    let mut attempt = 1;
    eventually("the claim to be released", || {
        attempt += 1;
        let request = signed(&notification(&id, attempt));
        async move {
            let answer = post(addr, request).await;
            assert_ne!(answer.status, StatusCode::GONE);
            answer.is_processed()
        }
    })
    .await;
    assert_eq!(calls.of(&id), 2);
    let last = post(addr, signed(&notification(&id, attempt + 1))).await;
    assert!(last.is_duplicate(), "{last:?}");
}

/// Without the verifying layer's marker, the layer refuses with 500 and
/// marks nothing: an attacker cannot mark an id as handled.
pub async fn unverified_requests_are_refused<St: IdempotencyStore + Clone>(store: St) {
    use tower::{service_fn, ServiceBuilder, ServiceExt};
    use tower_intercom::WebhookBody;

    let id = fresh_id("forged");
    let unprotected = ServiceBuilder::new()
        .layer(IdempotencyLayer::new(store.clone()))
        .service(service_fn(|_: Request<WebhookBody>| async {
            panic!("the inner service must not be called without verification");
            #[allow(unreachable_code)]
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        }));
    let forged = Request::post("/webhooks/intercom")
        .body(WebhookBody::from(notification(&id, 1)))
        .unwrap();
    let response = unprotected.oneshot(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("VerifyIntercomWebhookLayer"),
        "{json}"
    );

    // The same store behind the verifying layer still processes the id.
    let calls = Calls::default();
    let app = receiver(IdempotencyLayer::new(store), calls.clone(), ok());
    assert!(send(&app, signed(&notification(&id, 1)))
        .await
        .is_processed());
    assert_eq!(calls.of(&id), 1);
}

/// Requests the layer cannot dedupe pass through every time.
pub async fn bodies_without_id_pass_through<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let calls = Calls::default();
    let app = receiver(layer, calls.clone(), ok());
    for body in [
        r#"{"type":"notification_event","topic":"ping"}"#,
        r#"{"id":""}"#,
        r#"{"id":7}"#,
        "not json",
        "",
    ] {
        for _ in 0..2 {
            let answer = send(&app, signed(body)).await;
            assert!(answer.is_processed(), "{body:?}: {answer:?}");
        }
    }
    // The handler keys these by "" (no string id): 10 calls.
    assert_eq!(calls.of(""), 10);

    // Intercom's URL check (HEAD) still gets its 200.
    let head = Request::head("/webhooks/intercom")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, head).await.status, StatusCode::OK);
}
