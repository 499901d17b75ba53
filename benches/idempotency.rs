//! Latency the idempotency layer adds to the verifying layer, per store.
//!
//! Run with `cargo bench --all-features --bench idempotency` (needs
//! `redis-server` on `PATH`; it starts its own on a free loopback port).
//!
//! Each configuration handles signed ~1 KiB notifications in process
//! (tower `oneshot`, no sockets except the one to Redis), one request at a
//! time, in interleaved rounds so every configuration sees the same
//! machine conditions. It prints per-request latency and the ratio to the
//! verifying layer alone, from the same run, as a Markdown table. Under
//! `cargo test --all-targets` it runs a few requests only, as a smoke test.

use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, util::BoxCloneService, ServiceBuilder, ServiceExt};
use tower_intercom::{
    idempotency::{IdempotencyLayer, IdempotencyStore, MemoryStore, RedisStore},
    sign, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
};
use tower_intercom_test_support::redis_server::RedisServer;

type Service = BoxCloneService<Request<Full<Bytes>>, StatusCode, Infallible>;

/// A notification of realistic size (about 1 KiB), as Intercom sends it.
fn notification(id: &str) -> String {
    format!(
        r#"{{"type":"notification_event","app_id":"abc123de","data":{{"type":"notification_event_data","item":{{"type":"conversation","id":"1234567890","created_at":1700000000,"updated_at":1700000100,"source":{{"type":"conversation","id":"987654321","delivered_as":"customer_initiated","subject":"","body":"<p>Hello, I cannot log in to my account since this morning. Could you help?</p>","author":{{"type":"user","id":"5f1a2b3c4d5e6f7a8b9c0d1e","name":"Ada Lovelace","email":"ada@example.com"}},"attachments":[],"url":null}},"contacts":{{"type":"contact.list","contacts":[{{"type":"contact","id":"5f1a2b3c4d5e6f7a8b9c0d1e","external_id":"user-42"}}]}},"state":"open","open":true,"read":false,"priority":"not_priority","tags":{{"type":"tag.list","tags":[]}}}}}},"links":{{}},"id":"{id}","topic":"conversation.user.created","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":1700000100,"created_at":1700000100,"self":null}}"#
    )
}

async fn handler(_: Request<WebhookBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::new())))
}

fn verify_only(secret: &WebhookSecret) -> Service {
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_response(|response: Response<_>| response.status())
            .layer(VerifyIntercomWebhookLayer::new(secret.clone()))
            .service(service_fn(handler)),
    )
}

fn with_idempotency<St: IdempotencyStore>(
    secret: &WebhookSecret,
    layer: IdempotencyLayer<St>,
) -> Service {
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_response(|response: Response<_>| response.status())
            .layer(VerifyIntercomWebhookLayer::new(secret.clone()))
            .layer(layer)
            .service(service_fn(handler)),
    )
}

struct Config {
    name: &'static str,
    service: Service,
    /// Sends each notification a second time and measures that (the
    /// duplicate path) instead of the first delivery.
    duplicates: bool,
    samples: Vec<Duration>,
}

fn request(body: &Bytes, signature: &HeaderValue) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body.clone()));
    *request.method_mut() = http::Method::POST;
    request
        .headers_mut()
        .insert("x-hub-signature", signature.clone());
    request
}

async fn run_round(config: &mut Config, secret: &WebhookSecret, round: usize, per_round: usize) {
    let bodies: Vec<(Bytes, HeaderValue)> = (0..per_round)
        .map(|n| {
            let body = notification(&format!("notif_{}_{round}_{n}", config.name));
            let signature = sign(secret, body.as_bytes());
            (Bytes::from(body), signature)
        })
        .collect();
    for (body, signature) in &bodies {
        if config.duplicates {
            let first = config.service.clone().oneshot(request(body, signature));
            assert_eq!(first.await.unwrap(), StatusCode::OK);
        }
        let request = request(body, signature);
        let start = Instant::now();
        let status = config.service.clone().oneshot(request).await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(status, StatusCode::OK);
        config.samples.push(elapsed);
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (rounds, per_round) = if full { (21, 2_000) } else { (2, 20) };

    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let secret: WebhookSecret = "bench-client-secret".parse().unwrap();
        let redis = RedisStore::connect(&server.url()).await.unwrap();
        let memory = MemoryStore::new();
        let mut configs = vec![
            Config {
                name: "verify",
                service: verify_only(&secret),
                duplicates: false,
                samples: Vec::new(),
            },
            Config {
                name: "memory",
                service: with_idempotency(&secret, IdempotencyLayer::new(memory.clone())),
                duplicates: false,
                samples: Vec::new(),
            },
            Config {
                name: "redis",
                service: with_idempotency(&secret, IdempotencyLayer::new(redis.clone())),
                duplicates: false,
                samples: Vec::new(),
            },
            Config {
                name: "memory_dup",
                service: with_idempotency(&secret, IdempotencyLayer::new(memory)),
                duplicates: true,
                samples: Vec::new(),
            },
            Config {
                name: "redis_dup",
                service: with_idempotency(&secret, IdempotencyLayer::new(redis)),
                duplicates: true,
                samples: Vec::new(),
            },
        ];
        for round in 0..rounds {
            for config in &mut configs {
                run_round(config, &secret, round, per_round).await;
                if round == 0 {
                    // Warm-up round: not counted.
                    config.samples.clear();
                }
            }
        }
        if !full {
            println!("idempotency bench: smoke run passed (run `cargo bench` for figures)");
            return;
        }

        let baseline = {
            let mut sorted = configs[0].samples.clone();
            sorted.sort();
            percentile(&sorted, 0.5)
        };
        println!(
            "{} requests per configuration, one at a time, in process; Redis {} on loopback",
            (rounds - 1) * per_round,
            redis_version()
        );
        println!();
        println!("| configuration | median | p99 | added (median) | ratio (median) |");
        println!("|---|---:|---:|---:|---:|");
        for config in &configs {
            let mut sorted = config.samples.clone();
            sorted.sort();
            let median = percentile(&sorted, 0.5);
            let p99 = percentile(&sorted, 0.99);
            let label = match config.name {
                "verify" => "verifying layer alone",
                "memory" => "+ idempotency, MemoryStore",
                "redis" => "+ idempotency, RedisStore",
                "memory_dup" => "+ idempotency, MemoryStore, duplicate",
                _ => "+ idempotency, RedisStore, duplicate",
            };
            println!(
                "| {label} | {:.1} µs | {:.1} µs | {:+.1} µs | {:.2}× |",
                micros(median),
                micros(p99),
                micros(median) - micros(baseline),
                median.as_secs_f64() / baseline.as_secs_f64(),
            );
        }
    });
    drop(server);
}

fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| {
            text.split_whitespace()
                .find_map(|word| word.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "?".to_owned())
}
