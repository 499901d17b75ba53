//! The idempotency layer with the Redis store, against a real
//! `redis-server` started on a free loopback port for each test.
//!
//! `redis-server` must be on `PATH` (`./scripts/test.sh` installs it):
//! without it these tests fail, they never skip.
#![cfg(feature = "redis")]

use std::time::Duration;

use http::StatusCode;
use redis::AsyncCommands;
use tower_intercom::idempotency::{FailurePolicy, IdempotencyLayer, RedisStore};
use tower_intercom_test_support::{
    idempotency::{
        self as harness, notification, post, receiver, scenarios, send, serve, signed, Calls,
    },
    logs::Logs,
    proxy::SilencingProxy,
    redis_server::RedisServer,
};

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url())
        .await
        .expect("connect to the test redis-server")
}

/// A store whose operations (and connecting) wait at most `timeout`.
async fn store_with_timeout(server: &RedisServer, timeout: Duration) -> RedisStore {
    RedisStore::options()
        .timeout(timeout)
        .connect(&server.url())
        .await
        .expect("connect to the test redis-server")
}

async fn layer(server: &RedisServer) -> IdempotencyLayer<RedisStore> {
    IdempotencyLayer::new(store(server).await)
}

#[tokio::test]
async fn duplicate_after_success_is_answered_200_without_the_handler() {
    let server = RedisServer::start();
    scenarios::duplicate_after_success(layer(&server).await).await;
}

#[tokio::test]
async fn duplicate_after_failure_is_processed_again() {
    let server = RedisServer::start();
    scenarios::duplicate_after_failure(layer(&server).await).await;
}

#[tokio::test]
async fn concurrent_delivery_gets_409() {
    let server = RedisServer::start();
    scenarios::concurrent_deliveries(layer(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_deliveries_reach_the_handler_once() {
    let server = RedisServer::start();
    scenarios::many_concurrent_deliveries(layer(&server).await).await;
}

#[tokio::test]
async fn done_ids_expire() {
    let server = RedisServer::start();
    scenarios::done_ttl_expires(layer(&server).await).await;
}

#[tokio::test]
async fn claims_of_crashed_requests_expire() {
    let server = RedisServer::start();
    scenarios::processing_ttl_expires(store(&server).await).await;
}

#[tokio::test]
async fn client_disconnect_releases_the_claim() {
    let server = RedisServer::start();
    scenarios::disconnect_releases_claim(layer(&server).await).await;
}

#[tokio::test]
async fn unverified_requests_are_refused_and_mark_nothing() {
    let server = RedisServer::start();
    scenarios::unverified_requests_are_refused(store(&server).await).await;
}

#[tokio::test]
async fn bodies_without_an_id_pass_through() {
    let server = RedisServer::start();
    scenarios::bodies_without_id_pass_through(layer(&server).await).await;
}

/// One key per notification, under the prefix, with the done TTL: what an
/// operator sees in Redis.
#[tokio::test]
async fn keys_are_prefixed_and_expire() {
    let server = RedisServer::start();
    let store = RedisStore::options()
        .key_prefix("test-app:")
        .connect(&server.url())
        .await
        .unwrap();
    assert_eq!(store.key("notif_k"), "test-app:notif_k");
    let calls = Calls::default();
    let app = receiver(
        IdempotencyLayer::new(store).done_ttl(Duration::from_secs(3600)),
        calls,
        harness::ok(),
    );
    assert!(send(&app, signed(&notification("notif_k", 1)))
        .await
        .is_processed());

    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let value: Option<String> = connection.get("test-app:notif_k").await.unwrap();
    assert_eq!(value.as_deref(), Some("done"));
    let ttl: i64 = connection.pttl("test-app:notif_k").await.unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
    let unprefixed: bool = connection.exists("notif_k").await.unwrap();
    assert!(!unprefixed);
}

/// Two receivers on different ports share one Redis: the same
/// notification sent to both at once is handled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_sharing_redis_handle_each_notification_once() {
    let server = RedisServer::start();
    let slow = harness::behaviour(|_, _| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        StatusCode::OK
    });
    let (calls_a, calls_b) = (Calls::default(), Calls::default());
    let a = serve(receiver(
        layer(&server).await,
        calls_a.clone(),
        slow.clone(),
    ))
    .await;
    let b = serve(receiver(layer(&server).await, calls_b.clone(), slow)).await;
    assert_ne!(a.port(), b.port());

    let ids: Vec<String> = (0..10).map(|n| format!("notif_shared_{n}")).collect();
    let deliveries: Vec<_> = ids
        .iter()
        .map(|id| {
            let (to_a, to_b) = (signed(&notification(id, 1)), signed(&notification(id, 2)));
            tokio::spawn(async move { tokio::join!(post(a, to_a), post(b, to_b)) })
        })
        .collect();
    for (id, delivery) in ids.iter().zip(deliveries) {
        let (from_a, from_b) = delivery.await.unwrap();
        assert_eq!(calls_a.of(id) + calls_b.of(id), 1, "{id} handled once");
        let processed = [&from_a, &from_b]
            .iter()
            .filter(|answer| answer.is_processed())
            .count();
        assert_eq!(processed, 1, "{id}: {from_a:?} {from_b:?}");
        for answer in [&from_a, &from_b] {
            assert!(
                answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
                "{answer:?}"
            );
        }
    }
    // Intercom's later retries, to either receiver, are duplicates.
    for id in &ids {
        for addr in [a, b] {
            let answer = post(addr, signed(&notification(id, 3))).await;
            assert!(answer.is_duplicate(), "{answer:?}");
        }
        assert_eq!(calls_a.of(id) + calls_b.of(id), 1);
    }
}

/// Redis killed mid-test, fail open (the default): every delivery is
/// processed (possibly twice), the receiver keeps answering, and
/// deduplication resumes once Redis is back.
#[tokio::test]
async fn redis_killed_fail_open_keeps_processing() {
    let mut server = RedisServer::start();
    let store = store_with_timeout(&server, Duration::from_millis(300)).await;
    let calls = Calls::default();
    let app = receiver(IdempotencyLayer::new(store), calls.clone(), harness::ok());

    assert!(send(&app, signed(&notification("notif_a", 1)))
        .await
        .is_processed());
    server.kill();

    // Not lost: processed, even twice, while the store is down.
    for attempt in 1..=2 {
        let answer = send(&app, signed(&notification("notif_b", attempt))).await;
        assert!(answer.is_processed(), "{answer:?}");
    }
    assert_eq!(calls.of("notif_b"), 2);
    let answer = send(&app, signed(&notification("notif_a", 2))).await;
    assert!(answer.is_processed(), "{answer:?}");

    server.restart();
    let mut n = 0;
    harness::eventually("deduplication to resume", || {
        n += 1;
        let id = format!("notif_back_{n}");
        let app = app.clone();
        async move {
            send(&app, signed(&notification(&id, 1))).await;
            send(&app, signed(&notification(&id, 2)))
                .await
                .is_duplicate()
        }
    })
    .await;
}

/// Redis killed mid-test, fail closed: 503 and the handler is not called,
/// so Intercom retries; once Redis is back, deliveries are processed once.
#[tokio::test]
async fn redis_killed_fail_closed_answers_503() {
    let mut server = RedisServer::start();
    let store = store_with_timeout(&server, Duration::from_millis(300)).await;
    let calls = Calls::default();
    let layer = IdempotencyLayer::new(store).on_store_error(FailurePolicy::FailClosed);
    let app = receiver(layer, calls.clone(), harness::ok());

    assert!(send(&app, signed(&notification("notif_a", 1)))
        .await
        .is_processed());
    server.kill();
    for attempt in 1..=2 {
        let answer = send(&app, signed(&notification("notif_b", attempt))).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    }
    assert_eq!(calls.of("notif_b"), 0);

    server.restart();
    let mut attempt = 2;
    harness::eventually("the store to be back", || {
        attempt += 1;
        let request = signed(&notification("notif_b", attempt));
        let app = app.clone();
        async move {
            let answer = send(&app, request).await;
            assert!(
                answer.status == StatusCode::SERVICE_UNAVAILABLE || answer.is_processed(),
                "{answer:?}"
            );
            answer.is_processed()
        }
    })
    .await;
    assert_eq!(calls.of("notif_b"), 1);
    let duplicate = send(&app, signed(&notification("notif_b", 99))).await;
    assert!(duplicate.is_duplicate(), "{duplicate:?}");
}

/// A Redis that hangs (frozen with SIGSTOP): each operation gives up after
/// the store's timeout, and each policy applies.
#[tokio::test]
async fn hung_redis_times_out() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(200);
    let open_calls = Calls::default();
    let open = receiver(
        IdempotencyLayer::new(store_with_timeout(&server, timeout).await),
        open_calls.clone(),
        harness::ok(),
    );
    let closed_calls = Calls::default();
    let closed = receiver(
        IdempotencyLayer::new(store_with_timeout(&server, timeout).await)
            .on_store_error(FailurePolicy::FailClosed),
        closed_calls.clone(),
        harness::ok(),
    );

    server.pause();
    let answer = send(&open, signed(&notification("notif_hung", 1))).await;
    assert!(answer.is_processed(), "{answer:?}");
    assert_eq!(open_calls.of("notif_hung"), 1);
    let answer = send(&closed, signed(&notification("notif_hung", 2))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(closed_calls.of("notif_hung"), 0);
    server.resume();
}

/// `Duration::MAX` TTLs used to reach Redis as `PX 18446744073709551615`,
/// which Redis refuses: fail open then processed every redelivery, fail
/// closed answered 503 to everything. The layer clamps TTLs, so Redis
/// deduplicates exactly as the memory store does.
#[tokio::test]
async fn the_longest_ttls_still_deduplicate_under_both_policies() {
    let server = RedisServer::start();
    for policy in [FailurePolicy::FailOpen, FailurePolicy::FailClosed] {
        let layer = layer(&server)
            .await
            .processing_ttl(Duration::MAX)
            .done_ttl(Duration::MAX)
            .on_store_error(policy);
        scenarios::duplicate_after_success(layer).await;
    }
    let memory = IdempotencyLayer::in_memory()
        .processing_ttl(Duration::MAX)
        .done_ttl(Duration::MAX);
    scenarios::duplicate_after_success(memory).await;
}

/// A request dropped while its claim is in flight, outside any Tokio
/// runtime (the runtime's thread has moved on): no panic, the claim is left
/// to expire.
#[test]
fn dropping_an_in_flight_request_outside_a_runtime_does_not_panic() {
    use std::{future::Future, pin::pin, task::Poll};

    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The block hands the pending request out, unfinished, on purpose.
    #[allow(clippy::async_yields_async)]
    let in_flight = runtime.block_on(async {
        let layer = layer(&server).await.processing_ttl(Duration::from_secs(1));
        let service = tower::ServiceBuilder::new()
            .layer(tower_intercom::VerifyIntercomWebhookLayer::new(
                harness::secret(),
            ))
            .layer(layer)
            .service(tower::service_fn(|_: http::Request<_>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            }));
        let id = scenarios::fresh_id("drop");
        let mut future = Box::pin(tower::ServiceExt::oneshot(
            service,
            signed(&notification(&id, 1)),
        ));
        // One poll: verified, the claim is sent to Redis and awaited.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(pin!(future.as_mut()).poll(cx).is_pending()))
                .await;
        assert!(polled, "the claim should still be waiting for Redis");
        // Wrapped, so the block does not yield a future to be awaited.
        Some(future)
    });
    // Outside the runtime's context now.
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(in_flight)));
    assert!(
        dropped.is_ok(),
        "dropping the request outside a runtime panicked"
    );
    drop(runtime);
}

/// The timeout of the store's options governs each operation: a longer
/// one than the default (1 s) waits out a Redis that pauses for 2.5 s.
/// (Before, the connection's own 1 s response timeout failed it, and fail
/// closed answered 503.)
#[tokio::test]
async fn the_timeout_of_the_options_is_the_one_used() {
    let server = RedisServer::start();
    let calls = Calls::default();
    let patient = receiver(
        IdempotencyLayer::new(store_with_timeout(&server, Duration::from_secs(10)).await)
            .on_store_error(FailurePolicy::FailClosed),
        calls.clone(),
        harness::ok(),
    );
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut redis)
        .await
        .unwrap();
    let answer = send(&patient, signed(&notification("notif_patient", 1))).await;
    assert!(answer.is_processed(), "{answer:?}");
    assert_eq!(calls.of("notif_patient"), 1);
}

/// A Redis that requires a password the URL lacks accepts the connection
/// and refuses every command: connecting fails with Redis's reason.
#[tokio::test]
async fn connecting_without_the_password_redis_requires_fails() {
    let server = RedisServer::start_with(&["--requirepass", "hunter6-secret"]);
    let url = format!("redis://127.0.0.1:{}/", server.port());
    let error = RedisStore::connect(&url).await.unwrap_err();
    assert!(error.to_string().contains("NOAUTH"), "{error}");
}

/// A connection that goes silent (Redis's machine gone without closing
/// it, a NAT that forgot it) is replaced after a few timeouts: fail closed
/// answers 503 meanwhile, then the layer processes again. (Before, every
/// delivery was 503 until the kernel gave up on the connection, about 15
/// minutes later.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_silent_is_replaced() {
    let server = RedisServer::start();
    let proxy = SilencingProxy::start(([127, 0, 0, 1], server.port()).into()).await;
    let store = RedisStore::options()
        .timeout(Duration::from_millis(200))
        .connect(&format!("redis://{}/", proxy.addr))
        .await
        .unwrap();
    let calls = Calls::default();
    let closed = receiver(
        IdempotencyLayer::new(store).on_store_error(FailurePolicy::FailClosed),
        calls.clone(),
        harness::ok(),
    );
    proxy.silence_existing();
    let started = std::time::Instant::now();
    let mut refused = 0;
    for attempt in 1.. {
        let answer = send(&closed, signed(&notification("notif_silent", attempt))).await;
        if answer.is_processed() {
            break;
        }
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        refused += 1;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still refused after {refused} deliveries"
        );
    }
    assert!(refused >= 1);
    assert_eq!(calls.of("notif_silent"), 1);
}

/// Every key the store writes has a TTL, so a `volatile-*` policy evicts
/// exactly its done markers (and an `allkeys-*` one evicts them too): a
/// duplicate of an evicted id is processed again. Connecting warns unless
/// the policy is `noeviction`.
#[tokio::test]
async fn an_eviction_policy_other_than_noeviction_is_warned_about() {
    for policy in ["volatile-lru", "volatile-ttl", "allkeys-lru"] {
        let server = RedisServer::start_with(&["--maxmemory-policy", policy]);
        let (logs, capturing) = Logs::start();
        store(&server).await;
        drop(capturing);
        let logs = logs.text();
        assert!(logs.contains("WARN"), "{policy}: {logs}");
        assert!(
            logs.contains(&format!("maxmemory-policy {policy}")),
            "{policy}: {logs}"
        );
        assert!(logs.contains("noeviction"), "{policy}: {logs}");
        assert!(!logs.contains(&server.url()), "{policy}: {logs}");
    }
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let (logs, capturing) = Logs::start();
    store(&server).await;
    drop(capturing);
    let logs = logs.text();
    assert!(!logs.contains("WARN"), "{logs}");
}
