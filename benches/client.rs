//! Requests per second through the Intercom client layer against the bare
//! hyper-util client, both sending `GET /contacts/{id}` to the same fake
//! Intercom on a loopback port (`tower_intercom_test_support::fake_intercom`,
//! its record of requests off, a rate limit no run reaches, so every answer
//! carries `X-RateLimit-*` headers the layer reads).
//!
//! Run with `cargo bench --bench client` (add `-- --measurement-time 3`
//! for a short run). Both are used as tower services the same way
//! (`oneshot` on a clone, 16 requests in flight), and the bare client
//! sends the same headers the layer sets (`Authorization`,
//! `Intercom-Version`, `Accept`), built by hand for each request. After criterion's figures it prints, from one interleaved
//! run (see `tower_intercom_test_support::bench`), both rates and their
//! ratio. The goal: the layer at 0.95 of the bare client or better.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::{stream, StreamExt};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tower::{Layer, ServiceExt};
use tower_intercom::{
    client::{IntercomClient, IntercomClientLayer, DEFAULT_INTERCOM_VERSION},
    AccessToken,
};
use tower_intercom_test_support::{
    bench::{self, interleaved, keep},
    fake_intercom::{FakeIntercom, TOKEN},
};

type Http = Client<HttpConnector, Full<Bytes>>;

/// Requests in flight at once, and requests per measured batch.
const CONCURRENCY: usize = 16;
const BATCH: usize = 64;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `count` requests, `CONCURRENCY` at a time, each answer read to the end.
async fn bare(client: &Http, base: &str, token: &AccessToken, count: usize) {
    stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |i| async move {
            let request = Request::get(format!("{base}/contacts/{i}"))
                .header(header::AUTHORIZATION, token.authorization_header())
                .header("intercom-version", DEFAULT_INTERCOM_VERSION)
                .header(header::ACCEPT, "application/json")
                .body(Full::default())
                .expect("a valid request");
            let response = client.clone().oneshot(request).await.expect("an answer");
            assert_eq!(response.status(), StatusCode::OK);
            keep(response.into_body().collect().await.expect("a body"));
        })
        .await;
}

async fn layered(client: &IntercomClient<Http>, count: usize) {
    stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |i| async move {
            let request = Request::get(format!("/contacts/{i}"))
                .body(Full::default())
                .expect("a valid request");
            let response = client.clone().oneshot(request).await.expect("an answer");
            assert_eq!(response.status(), StatusCode::OK);
            keep(response.into_body().collect().await.expect("a body"));
        })
        .await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let fake = runtime.block_on(FakeIntercom::start());
    fake.set_record_limit(0);
    fake.set_rate_limit(u32::MAX, Duration::from_secs(10));
    let base = fake.base_url();
    let token: AccessToken = TOKEN.parse().expect("a valid token");
    let bare_client = http();
    let layered_client = IntercomClientLayer::new(token.clone())
        .api_base(base.parse().expect("a loopback base"))
        .layer(http());
    // Warm both pools up to the concurrency.
    runtime.block_on(async {
        bare(&bare_client, &base, &token, 4 * CONCURRENCY).await;
        layered(&layered_client, 4 * CONCURRENCY).await;
    });

    let run = |layer: bool, count: usize| {
        runtime.block_on(async {
            if layer {
                layered(&layered_client, count).await;
            } else {
                bare(&bare_client, &base, &token, count).await;
            }
        })
    };

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("client");
        group.throughput(Throughput::Elements(1));
        group.bench_function("bare_hyper_util", |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                run(false, iters as usize);
                started.elapsed()
            })
        });
        group.bench_function("intercom_client_layer", |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                run(true, iters as usize);
                started.elapsed()
            })
        });
        group.finish();
    }
    criterion.final_summary();

    if bench::benchmarking() {
        let mut bare_batch = || run(false, BATCH);
        let mut layer_batch = || run(true, BATCH);
        let rounds = 41;
        let t = interleaved(
            &mut [("bare", &mut bare_batch), ("layer", &mut layer_batch)],
            rounds,
        );
        let per_second = |batch: Duration| BATCH as f64 / batch.as_secs_f64();
        let (bare_rps, layer_rps) = (per_second(t[0]), per_second(t[1]));
        println!();
        println!(
            "client, GET /contacts/{{id}} to a loopback fake, {CONCURRENCY} in flight, \
             fastest of {rounds} interleaved batches of {BATCH} ({})",
            bench::machine()
        );
        println!("  bare hyper-util client:  {bare_rps:>8.0} requests/s");
        println!("  IntercomClientLayer:     {layer_rps:>8.0} requests/s");
        println!("  layer/bare: {:.3} (goal >= 0.95)", layer_rps / bare_rps);
    }
}
