//! Every component of the crate, run once under a Prometheus exporter set
//! up as `examples/axum.rs` sets it up, so that each metric it can export
//! is in the scrape: the verifying layer, the idempotency layer, the inbox
//! (receiver, worker, counts), the REST API client against a fake
//! Intercom, the token's age, and a secret file reloaded then refused.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_intercom::{
    client::{IntercomClientLayer, TokenAge},
    idempotency::IdempotencyLayer,
    inbox::{handler_fn, Inbox, ReceivedNotification, SqliteStore},
    metrics::{BODY_SIZE_BUCKETS, SECONDS_BUCKETS, WEBHOOK_BODY_SIZE},
    reload::SecretFile,
    sign, AccessToken, VerifyIntercomWebhookLayer,
};
use tower_intercom_test_support::{
    fake_intercom::{FakeIntercom, TokenState, TOKEN},
    secret, Recorder, PING,
};

/// How long a step may wait for something to happen before failing.
const PATIENCE: Duration = Duration::from_secs(15);

/// The Prometheus text of every metric, after running every component.
pub fn every_component() -> String {
    let recorder = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)
        .unwrap()
        .set_buckets_for_metric(Matcher::Full(WEBHOOK_BODY_SIZE.into()), BODY_SIZE_BUCKETS)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            webhooks_and_idempotency().await;
            inbox().await;
            api_client().await;
            secret_file(&handle).await;
        })
    });
    handle.render()
}

fn signed(body: &[u8]) -> Request<Full<Bytes>> {
    Request::post("/")
        .header("x-hub-signature", sign(&secret(), body))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
}

/// Verified and rejected requests, body sizes, idempotency outcomes.
async fn webhooks_and_idempotency() {
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()))
        .layer(IdempotencyLayer::in_memory())
        .service(Recorder::default());
    for _ in 0..2 {
        let response = service.clone().oneshot(signed(PING)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let unsigned = Request::post("/")
        .body(Full::new(Bytes::from_static(PING)))
        .unwrap();
    let response = service.oneshot(unsigned).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Receive outcomes and commit latency, a worker's processing, and the
/// counts' gauges.
async fn inbox() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::new(SqliteStore::open(dir.path().join("inbox.sqlite3")).unwrap());
    let receiver = VerifyIntercomWebhookLayer::new(secret()).layer(inbox.receiver());
    for _ in 0..2 {
        let response = receiver.clone().oneshot(signed(PING)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = inbox
        .worker(handler_fn(|_: ReceivedNotification| async {
            Ok::<_, std::io::Error>(())
        }))
        .spawn(async move {
            let _ = stopped.await;
        });
    let start = Instant::now();
    while inbox.counts().await.unwrap().done == 0 {
        assert!(start.elapsed() < PATIENCE, "the notification not processed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap();
}

/// Answers by status class, a 429 retried after pacing, a refused token,
/// the rate-limit budget, and the token's age.
async fn api_client() {
    let fake = FakeIntercom::start().await;
    fake.set_rate_limit(2, Duration::from_secs(1));
    fake.inject_429(1);
    let token: AccessToken = TOKEN.parse().unwrap();
    let client = IntercomClientLayer::new(token)
        .api_base(fake.base_url().parse().unwrap())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let get = |uri: &str| Request::get(uri).body(Full::default()).unwrap();
    for i in 0..3 {
        let response = client
            .clone()
            .oneshot(get(&format!("/contacts/{i}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    fake.set_token(TOKEN, TokenState::revoked());
    let refused = client.oneshot(get("/me")).await;
    assert!(refused.is_err(), "a revoked token is refused");
    TokenAge::since(SystemTime::now() - Duration::from_secs(86_400)).record();
}

/// A token file replaced (a reload), then emptied (a refused change).
async fn secret_file(handle: &PrometheusHandle) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    replace(&path, "dG9rOm9uZQ==\n");
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(Duration::from_millis(50))
        .open()
        .await
        .unwrap();
    replace(&path, "dG9rOnR3bw==\n");
    let start = Instant::now();
    while file.current().expose_secret() != "dG9rOnR3bw==" {
        assert!(start.elapsed() < PATIENCE, "the new token not read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    replace(&path, "\n");
    while !handle.render().contains("intercom_secret_reload_failures{") {
        assert!(
            start.elapsed() < PATIENCE,
            "the empty token file not refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `content` beside `path`, then renames it over `path`.
fn replace(path: &Path, content: &str) {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, content).unwrap();
    fs::rename(&temporary, path).unwrap();
}
