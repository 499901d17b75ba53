//! The middleware in process (`tower::ServiceExt::oneshot`, no socket)
//! against the same inner service without it, for a 2 KiB notification in
//! one frame and in many frames.
//!
//! Run with `cargo bench --bench middleware`. After criterion's figures it
//! prints, from one interleaved run (see `tower_intercom_test_support::bench`), the per-request
//! overhead beyond the HMAC itself: `layer - inner - verify`, where
//! `verify` is the signature check alone on the same bytes. The goal: under
//! 1 µs.
//!
//! It also times what a careful hand-written receiver does instead of the
//! layer (collect the body with `http_body_util::Limited`, then `verify`),
//! to compare like with like.
//!
//! And what the `metrics` feature costs per request: the layer (one frame)
//! with no recorder installed (the facade's no-op) against the same with a
//! Prometheus recorder (`metrics_exporter_prometheus`, set for those
//! iterations only with `metrics::with_local_recorder`). Filter with
//! `cargo bench --bench middleware -- metrics`.
//!
//! And what secrets reloaded from a file cost (feature `reload`): the layer
//! built with `from_source` on a `reload::SecretFile<WebhookSecrets>`
//! against the same with the secret fixed. Filter with
//! `cargo bench --bench middleware -- source`.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use tower::{service_fn, Layer, ServiceExt};
use tower_intercom::{
    reload::SecretFile, sign, verify, webhook::DEFAULT_MAX_BODY_SIZE, VerifyIntercomWebhookLayer,
    WebhookBody, WebhookSecret, WebhookSecrets,
};
use tower_intercom_test_support::bench::{self, interleaved, keep, notification, ns};

const SECRET: &str = "s3cr3t-client-secret";
const LEN: usize = 2 << 10;
/// Frames of the many-frame body: 32 frames of 64 bytes.
const FRAME: usize = 64;

/// A body that yields prepared frames; cloning it allocates nothing, so
/// building a request costs the same with and without the layer.
#[derive(Clone)]
struct Frames {
    frames: Arc<[Bytes]>,
    next: usize,
}

impl Frames {
    fn new(data: &Bytes, frame: usize) -> Self {
        let frames: Vec<Bytes> = (0..data.len())
            .step_by(frame)
            .map(|start| data.slice(start..(start + frame).min(data.len())))
            .collect();
        Self {
            frames: frames.into(),
            next: 0,
        }
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = self.frames.get(self.next).cloned();
        self.next += 1;
        Poll::Ready(frame.map(|data| Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        let left: usize = self.frames[self.next.min(self.frames.len())..]
            .iter()
            .map(Bytes::len)
            .sum();
        SizeHint::with_exact(left as u64)
    }
}

/// The inner service: looks at the body, answers 200.
async fn handler(request: Request<WebhookBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    keep(request.body().bytes().len());
    Ok(Response::new(Full::default()))
}

/// The request as hyper would hand it over: method, path, Intercom's headers.
fn request<B>(body: B, signature: &HeaderValue) -> Request<B> {
    Request::post("/webhooks/intercom")
        .header("content-type", "application/json")
        .header("content-length", LEN)
        .header("user-agent", "intercom-parrot-service-rb")
        .header("x-hub-signature", signature.clone())
        .body(body)
        .expect("a valid request")
}

/// Drives a future that never waits (every body here is in memory).
fn now<F: std::future::Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("in-memory futures complete at once")
}

/// What a careful receiver writes by hand instead of the layer.
async fn by_hand<B>(
    secret: &WebhookSecret,
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let Some(signature) = parts.headers.get("x-hub-signature").cloned() else {
        return Ok(status(StatusCode::UNAUTHORIZED));
    };
    let Ok(collected) = Limited::new(body, DEFAULT_MAX_BODY_SIZE).collect().await else {
        return Ok(status(StatusCode::PAYLOAD_TOO_LARGE));
    };
    let bytes = collected.to_bytes();
    if verify(secret, &bytes, &signature).is_err() {
        return Ok(status(StatusCode::UNAUTHORIZED));
    }
    handler(Request::from_parts(parts, WebhookBody::from(bytes))).await
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

fn main() {
    let secret = WebhookSecret::new(SECRET).expect("a valid secret");
    let body = Bytes::from(notification(LEN));
    let signature = sign(&secret, &body);
    let one = Full::new(body.clone());
    let many = Frames::new(&body, FRAME);

    let inner = service_fn(handler);
    let layered = VerifyIntercomWebhookLayer::new(secret.clone()).layer(inner);
    // The same secret from a file; its watcher waits on a runtime that is
    // never driven (the file does not change).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("webhook-secrets");
    std::fs::write(&path, format!("{SECRET}\n")).expect("the secret file");
    let file = runtime
        .block_on(SecretFile::<WebhookSecrets>::open(&path))
        .expect("the secret file opens");
    let from_file = VerifyIntercomWebhookLayer::from_source(file).layer(inner);

    // Each request: built, sent with `oneshot` on a clone of the service,
    // response body read to the end.
    let without = || {
        let request = request(WebhookBody::from(body.clone()), &signature);
        let response = now(inner.oneshot(request)).expect("infallible");
        keep(now(response.into_body().collect()));
    };
    let with_one = || {
        let response = now(layered.clone().oneshot(request(one.clone(), &signature)));
        let response = response.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        keep(now(response.into_body().collect()));
    };
    let with_many = || {
        let response = now(layered.clone().oneshot(request(many.clone(), &signature)));
        let response = response.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        keep(now(response.into_body().collect()));
    };
    let with_source = || {
        let response = now(from_file.clone().oneshot(request(one.clone(), &signature)));
        let response = response.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        keep(now(response.into_body().collect()));
    };
    let hand_one = || {
        let response = now(by_hand(&secret, request(one.clone(), &signature))).expect("ok");
        assert_eq!(response.status(), StatusCode::OK);
        keep(now(response.into_body().collect()));
    };
    let hand_many = || {
        let response = now(by_hand(&secret, request(many.clone(), &signature))).expect("ok");
        assert_eq!(response.status(), StatusCode::OK);
        keep(now(response.into_body().collect()));
    };
    let verify_only = || keep(verify(&secret, &body, &signature));
    // The same requests, counted by a Prometheus recorder (in memory, no
    // HTTP listener), set for the duration of each call only.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let with_recorder = || metrics::with_local_recorder(&prometheus, with_one);

    // Every path gets a 200 before anything is timed.
    with_one();
    with_many();
    hand_one();
    hand_many();
    with_recorder();
    with_source();
    assert!(
        prometheus
            .handle()
            .render()
            .contains("intercom_webhook_verified"),
        "the recorder sees the layer's metrics"
    );

    let mut criterion = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("middleware");
        group.throughput(Throughput::Bytes(LEN as u64));
        group.bench_function("verify_only/2KiB", |b| b.iter(verify_only));
        group.bench_function("inner_without_layer/2KiB", |b| b.iter(without));
        group.bench_function(BenchmarkId::new("layer", "2KiB_one_frame"), |b| {
            b.iter(with_one)
        });
        group.bench_function(BenchmarkId::new("layer", "2KiB_32_frames"), |b| {
            b.iter(with_many)
        });
        group.bench_function(BenchmarkId::new("by_hand", "2KiB_one_frame"), |b| {
            b.iter(hand_one)
        });
        group.bench_function(BenchmarkId::new("by_hand", "2KiB_32_frames"), |b| {
            b.iter(hand_many)
        });
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("metrics");
        group.throughput(Throughput::Bytes(LEN as u64));
        group.bench_function("layer_no_recorder/2KiB_one_frame", |b| b.iter(with_one));
        group.bench_function("layer_prometheus_recorder/2KiB_one_frame", |b| {
            b.iter(with_recorder)
        });
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("source");
        group.throughput(Throughput::Bytes(LEN as u64));
        group.bench_function("layer_fixed_secret/2KiB_one_frame", |b| b.iter(with_one));
        group.bench_function("layer_secret_file/2KiB_one_frame", |b| b.iter(with_source));
        group.finish();
    }
    criterion.final_summary();

    if bench::benchmarking() {
        let mut verify_only = verify_only;
        let mut without = without;
        let mut with_one = with_one;
        let mut with_many = with_many;
        let mut hand_one = hand_one;
        let mut hand_many = hand_many;
        let mut with_recorder = with_recorder;
        let mut with_source = with_source;
        let t = interleaved(
            &mut [
                ("verify", &mut verify_only),
                ("inner", &mut without),
                ("layer one frame", &mut with_one),
                ("layer 32 frames", &mut with_many),
                ("by hand one frame", &mut hand_one),
                ("by hand 32 frames", &mut hand_many),
                ("layer one frame, Prometheus recorder", &mut with_recorder),
                ("layer one frame, secret from a file", &mut with_source),
            ],
            41,
        );
        let [verify_t, inner_t, one_t, many_t, hand_one_t, hand_many_t, recorded_t, source_t] =
            [t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]].map(ns);
        println!();
        println!(
            "middleware, 2 KiB notification, fastest of 41 interleaved batches ({})",
            bench::machine()
        );
        println!("  verify alone (the HMAC):        {verify_t:>8.0} ns");
        println!("  inner service without layer:    {inner_t:>8.0} ns");
        for (label, layer_t, hand_t) in [
            ("one frame", one_t, hand_one_t),
            ("32 frames", many_t, hand_many_t),
        ] {
            let overhead = layer_t - inner_t - verify_t;
            println!(
                "  {label}: layer {layer_t:>6.0} ns, by hand {hand_t:>6.0} ns; \
                 overhead beyond the HMAC {overhead:>5.0} ns (goal < 1000), \
                 layer/by hand {:.2}",
                layer_t / hand_t
            );
        }
        println!(
            "  metrics (one frame): no recorder {one_t:>6.0} ns, Prometheus recorder \
             {recorded_t:>6.0} ns; +{:.0} ns per request, with/without {:.3}",
            recorded_t - one_t,
            recorded_t / one_t
        );
        println!(
            "  secret from a file (one frame): fixed {one_t:>6.0} ns, SecretFile \
             {source_t:>6.0} ns; {:+.0} ns per request, file/fixed {:.3}",
            source_t - one_t,
            source_t / one_t
        );
    }
}
