//! The receivers `examples/hyper.rs` is measured against: the same server,
//! the same limits and the same handler, without `VerifyIntercomWebhookLayer`.
//!
//! Run with `cargo run --release -p tower-intercom-test-support --bin baseline -- --verify MODE`:
//!
//! - `--verify none`: reads the body and runs the handler, checks nothing.
//!   The ceiling: no correct receiver can be faster.
//! - `--verify handler`: reads the body, then calls
//!   [`tower_intercom::verify`] once, the way a careful receiver written by
//!   hand does. The least work a correct receiver can do.
//! - `--verify layer`: `examples/hyper.rs`'s stack, with the limits below
//!   settable, for the memory script.
//!
//! `--time-verify FILE` prints the time of one `verify` of the
//! file's bytes, in nanoseconds, and exits (the HMAC time the load script
//! adds to the ceiling).
//!
//! `--max-in-flight N` (0: no limit), `--timeout-secs S` (0: none) and
//! `--max-body-size BYTES` change the limits (defaults: those of
//! `examples/hyper.rs`). The secret comes from `INTERCOM_WEBHOOK_SECRET`
//! (required), the port from `PORT`. `scripts/load.sh` and
//! `scripts/memory.sh` start it; it is a measuring tool, not an example to
//! copy.

use std::{
    borrow::Cow, convert::Infallible, env, net::SocketAddr, process::ExitCode, time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tower::{
    limit::ConcurrencyLimit,
    load_shed::{error::Overloaded, LoadShed},
    service_fn,
    timeout::Timeout,
    BoxError, Service, ServiceBuilder, ServiceExt,
};
use tower_intercom::{
    verify, VerifiedWebhook, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
};

const WEBHOOK_PATH: &str = "/webhooks/intercom";

// The handler of `examples/hyper.rs`, copied as it is: every receiver
// measured runs the same handler. Keep the two in step.

/// The envelope fields the handler reads, borrowed from the body; serde
/// skips the rest of the notification without building it.
#[derive(Default, serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    topic: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Cow<'a, str>,
}

/// The webhook handler: it only ever sees verified requests.
async fn webhook(request: Request<WebhookBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let verified = request.extensions().get::<VerifiedWebhook>().copied();
    let envelope: Envelope<'_> = serde_json::from_slice(request.body().bytes()).unwrap_or_default();
    tracing::info!(
        topic = %envelope.topic,
        id = %envelope.id,
        secret_index = verified.map(|v| v.secret_index()),
        "received Intercom notification"
    );
    Ok(Response::new(Full::default()))
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    None,
    Handler,
    Layer,
}

struct Options {
    mode: Mode,
    time_verify: Option<String>,
    max_in_flight: usize,
    timeout: Option<Duration>,
    max_body_size: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        mode: Mode::Layer,
        time_verify: None,
        max_in_flight: 256,
        timeout: Some(Duration::from_secs(5)),
        max_body_size: 1024 * 1024,
    };
    let mut mode = None;
    let mut args = env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} takes a number, not {value:?}"))
        };
        match flag.as_str() {
            "--verify" => {
                mode = Some(match value.as_str() {
                    "none" => Mode::None,
                    "handler" => Mode::Handler,
                    "layer" => Mode::Layer,
                    _ => return Err(format!("--verify none|handler|layer, not {value:?}")),
                })
            }
            "--max-in-flight" => options.max_in_flight = number()?,
            "--time-verify" => {
                options.time_verify = Some(value);
                mode = Some(Mode::Handler);
            }
            "--timeout-secs" => {
                options.timeout = Some(number()?)
                    .filter(|&s| s > 0)
                    .map(|s| Duration::from_secs(s as u64))
            }
            "--max-body-size" => options.max_body_size = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    options.mode = mode.ok_or("--verify none|handler|layer is required")?;
    Ok(options)
}

fn status(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response
}

/// Reads the body within the limit, checks the signature unless `secret`
/// is `None`, then runs the handler.
async fn by_hand(
    secret: Option<WebhookSecret>,
    limit: usize,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Ok(status(StatusCode::PAYLOAD_TOO_LARGE, "too large\n"))
        }
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST, "unreadable\n")),
    };
    if let Some(secret) = secret {
        let valid = parts
            .headers
            .get("x-hub-signature")
            .is_some_and(|signature| verify(&secret, &body, signature).is_ok());
        if !valid {
            return Ok(status(StatusCode::UNAUTHORIZED, "invalid signature\n"));
        }
    }
    webhook(Request::from_parts(parts, WebhookBody::from(body))).await
}

/// `inner` behind the limits of `examples/hyper.rs`: refuse when full,
/// count in flight, bound the time.
fn limited<S>(options: &Options, inner: S) -> Limits<S> {
    let max_in_flight = if options.max_in_flight == 0 {
        usize::MAX >> 4
    } else {
        options.max_in_flight
    };
    let timeout = options.timeout.unwrap_or(Duration::from_secs(24 * 3600));
    ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(max_in_flight)
        .timeout(timeout)
        .service(inner)
}

type Limits<S> = LoadShed<ConcurrencyLimit<Timeout<S>>>;

/// One `verify` of `body`, in ns: the fastest of 41 batches of ~5 ms.
fn time_verify(secret: &WebhookSecret, body: &[u8]) -> f64 {
    let signature = tower_intercom::sign(secret, body);
    let batch = |n: u32| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(verify(secret, std::hint::black_box(body), &signature))
                .expect("valid");
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
    };
    let n = (5e6 / batch(100)).clamp(1.0, 1e6) as u32;
    (0..41).map(|_| batch(n)).fold(f64::INFINITY, f64::min)
}

/// As `examples/hyper.rs`: 429 when full, 408 when too slow.
fn overloaded_or_timed_out(err: BoxError) -> Response<Full<Bytes>> {
    if err.is::<Overloaded>() {
        status(StatusCode::TOO_MANY_REQUESTS, r#"{"error":"overloaded"}"#)
    } else {
        status(StatusCode::REQUEST_TIMEOUT, r#"{"error":"timed out"}"#)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let secret = match WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET") {
        Ok(secret) => secret,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = &options.time_verify {
        return match std::fs::read(file) {
            Ok(body) => {
                println!("{:.0}", time_verify(&secret, &body));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: cannot read {file}: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let port = env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("Listening for Intercom webhooks on http://{addr}{WEBHOOK_PATH}");

    let limit = options.max_body_size;
    match options.mode {
        Mode::Layer => {
            let layer = VerifyIntercomWebhookLayer::new(secret).max_body_size(limit);
            let stack = ServiceBuilder::new()
                .layer(layer)
                .service(service_fn(webhook));
            serve(listener, limited(&options, stack)).await
        }
        Mode::Handler | Mode::None => {
            let secret = (options.mode == Mode::Handler).then_some(secret);
            let stack = service_fn(move |request| by_hand(secret.clone(), limit, request));
            serve(listener, limited(&options, stack)).await
        }
    }
    ExitCode::SUCCESS
}

/// Serves `verified` on the webhook path, 404 elsewhere, as
/// `examples/hyper.rs` does.
async fn serve<S, B>(listener: tokio::net::TcpListener, verified: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let app = service_fn(move |request: Request<Incoming>| {
        let verified = verified.clone();
        async move {
            if request.uri().path() == WEBHOOK_PATH {
                let response = match verified.oneshot(request).await {
                    Ok(response) => response.map(Either::Left),
                    Err(err) => overloaded_or_timed_out(err).map(Either::Right),
                };
                Ok::<_, Infallible>(response)
            } else {
                Ok(status(StatusCode::NOT_FOUND, "not found\n").map(Either::Right))
            }
        }
    });

    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5));
    let graceful = GracefulShutdown::new();
    let shutdown = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let connection = server.serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(app.clone()),
                );
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
}
