//! The idempotency layer with the in-memory store.
#![cfg(feature = "idempotency")]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_intercom::{
    idempotency::{
        Claim, ClaimOutcome, FailurePolicy, IdempotencyLayer, IdempotencyStore, MemoryStore,
        StoreFuture, DUPLICATE_HEADER,
    },
    sign, StoreError, VerifyIntercomWebhookLayer, WebhookBody,
};
use tower_intercom_test_support::idempotency::{
    self as harness, notification, scenarios, secret, send, signed, Calls,
};

#[tokio::test]
async fn duplicate_after_success_is_answered_200_without_the_handler() {
    scenarios::duplicate_after_success(IdempotencyLayer::in_memory()).await;
}

#[tokio::test]
async fn duplicate_after_failure_is_processed_again() {
    scenarios::duplicate_after_failure(IdempotencyLayer::in_memory()).await;
}

#[tokio::test]
async fn concurrent_delivery_gets_409() {
    scenarios::concurrent_deliveries(IdempotencyLayer::in_memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_deliveries_reach_the_handler_once() {
    scenarios::many_concurrent_deliveries(IdempotencyLayer::in_memory()).await;
}

#[tokio::test]
async fn done_ids_expire() {
    scenarios::done_ttl_expires(IdempotencyLayer::in_memory()).await;
}

#[tokio::test]
async fn claims_of_crashed_requests_expire() {
    scenarios::processing_ttl_expires(MemoryStore::new()).await;
}

#[tokio::test]
async fn client_disconnect_releases_the_claim() {
    scenarios::disconnect_releases_claim(IdempotencyLayer::in_memory()).await;
}

#[tokio::test]
async fn unverified_requests_are_refused_and_mark_nothing() {
    scenarios::unverified_requests_are_refused(MemoryStore::new()).await;
}

#[tokio::test]
async fn bodies_without_an_id_pass_through() {
    scenarios::bodies_without_id_pass_through(IdempotencyLayer::in_memory()).await;
}

/// The inner service's `Err` releases the claim like a non-2xx answer.
#[tokio::test]
async fn inner_errors_release_the_claim() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()))
        .layer(IdempotencyLayer::in_memory())
        .service(service_fn(move |_: Request<WebhookBody>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    Err("database down")
                } else {
                    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            }
        }));
    let request = |attempt| {
        let body = notification("notif_err", attempt);
        Request::post("/")
            .header("x-hub-signature", sign(&secret(), body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };

    let error = service.clone().oneshot(request(1)).await.unwrap_err();
    assert_eq!(error, "database down");
    let retry = service.clone().oneshot(request(2)).await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert!(!retry.headers().contains_key(DUPLICATE_HEADER));
    assert_eq!(retry.into_body().collect().await.unwrap().to_bytes(), "ok");
    let duplicate = service.oneshot(request(3)).await.unwrap();
    assert!(duplicate.headers().contains_key(DUPLICATE_HEADER));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A store that always fails, to check each policy on its own. (The Redis
/// tests check them against a real Redis that is killed.)
struct BrokenStore;

impl IdempotencyStore for BrokenStore {
    fn claim(&self, _: &Claim, _: Duration) -> StoreFuture<ClaimOutcome> {
        Box::pin(async { Err(StoreError::timed_out(Duration::from_millis(1))) })
    }

    fn complete(&self, _: &Claim, _: Duration) -> StoreFuture<()> {
        panic!("complete is not called after a failed claim")
    }

    fn release(&self, _: &Claim) -> StoreFuture<()> {
        panic!("release is not called after a failed claim")
    }
}

#[tokio::test]
async fn failing_store_fail_open_processes_every_delivery() {
    let calls = Calls::default();
    let store: Arc<dyn IdempotencyStore> = Arc::new(BrokenStore);
    let app = harness::receiver(IdempotencyLayer::new(store), calls.clone(), harness::ok());
    for attempt in 1..=2 {
        let answer = send(&app, signed(&notification("notif_open", attempt))).await;
        assert!(answer.is_processed(), "{answer:?}");
    }
    assert_eq!(calls.of("notif_open"), 2);
}

#[tokio::test]
async fn failing_store_fail_closed_answers_503() {
    let calls = Calls::default();
    let layer = IdempotencyLayer::new(BrokenStore).on_store_error(FailurePolicy::FailClosed);
    let app = harness::receiver(layer, calls.clone(), harness::ok());
    let answer = send(&app, signed(&notification("notif_closed", 1))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(json["error"].is_string());
    assert_eq!(calls.of("notif_closed"), 0);
}

/// The memory store is bounded: past its capacity, old ids are forgotten
/// (and processed again), recent ones are still deduplicated.
#[tokio::test]
async fn memory_store_is_bounded() {
    let calls = Calls::default();
    let app = harness::receiver(
        IdempotencyLayer::new(MemoryStore::with_capacity(100)),
        calls.clone(),
        harness::ok(),
    );
    for n in 0..1000 {
        let id = format!("notif_{n}");
        assert!(send(&app, signed(&notification(&id, 1)))
            .await
            .is_processed());
    }
    let recent = send(&app, signed(&notification("notif_999", 2))).await;
    assert!(recent.is_duplicate(), "{recent:?}");
    harness::eventually("the oldest id to be evicted", || {
        let app = app.clone();
        async move {
            send(&app, signed(&notification("notif_0", 2)))
                .await
                .is_processed()
        }
    })
    .await;
}

/// The layer's own refusals go through the same `RejectionResponse` as the
/// verifying layer's: replaceable, carrying the `Rejection`, never 410.
#[tokio::test]
async fn refusals_use_the_replaceable_rejection_response() {
    use tower_intercom::rejection::{Rejection, RejectionKind};

    let plain = |rejection: &Rejection| {
        let status = if rejection.kind() == RejectionKind::StoreUnavailable {
            StatusCode::GONE // must never reach Intercom
        } else {
            rejection.status()
        };
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Bytes::from(format!("refused: {}", rejection.kind())))
            .unwrap()
    };
    let layer = IdempotencyLayer::new(BrokenStore)
        .on_store_error(FailurePolicy::FailClosed)
        .on_rejection(plain);
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()).on_rejection(plain))
        .layer(layer.clone())
        .service(service_fn(|_: Request<WebhookBody>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let body = notification("notif_custom", 1);
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .extensions()
            .get::<Rejection>()
            .map(Rejection::kind),
        Some(RejectionKind::StoreUnavailable)
    );
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "refused: store_unavailable");

    // Misplaced (no verifying layer in front): 500, from the same builder.
    let unverified = tower::Layer::layer(
        &layer,
        service_fn(|_: Request<WebhookBody>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
        }),
    );
    let response = unverified
        .oneshot(
            Request::post("/")
                .body(WebhookBody::from("{\"id\":\"x\"}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "refused: not_verified");
}
