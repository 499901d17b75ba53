//! Run with `cargo run --example hyper` (secret from
//! `INTERCOM_WEBHOOK_SECRET`, port from `PORT`; with no secret, a
//! development secret is generated and a ready `curl` command is printed).
//!
//! An Intercom webhook receiver on plain hyper 1 and hyper-util, without a
//! router crate.
//!
//! Only `/webhooks/intercom` goes through `VerifyIntercomWebhookLayer`;
//! every other path gets 404 without being verified (or buffered).
//!
//! Memory is bounded: the layer buffers at most `MAX_BODY_SIZE` per
//! request, at most `MAX_IN_FLIGHT` webhooks are handled at once (more get
//! 429, which makes Intercom back off and retry instead of counting
//! failures), every webhook must be complete within `REQUEST_TIMEOUT`
//! (slow bodies get 408) and headers within `HEADER_TIMEOUT`. Worst case:
//! `MAX_IN_FLIGHT × MAX_BODY_SIZE`, plus a few KiB per open connection.

use std::{
    borrow::Cow,
    convert::Infallible,
    env,
    error::Error,
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::{load_shed::error::Overloaded, service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_intercom::{
    sign, VerifiedWebhook, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
};

/// The largest body buffered: far above Intercom's notifications (tens of
/// KiB), far below what would hurt.
const MAX_BODY_SIZE: usize = 1024 * 1024;
/// Webhooks handled at once; beyond it, 429 at once, before reading.
const MAX_IN_FLIGHT: usize = 256;
/// Time for a whole webhook, body and handler included. Intercom gives up
/// after 5 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

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

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::from("not found\n"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// 429 when `MAX_IN_FLIGHT` webhooks are already being handled (Intercom
/// backs off and retries), 408 when one was not complete in time.
fn overloaded_or_timed_out(err: BoxError) -> Response<Full<Bytes>> {
    let (status, body) = if err.is::<Overloaded>() {
        (StatusCode::TOO_MANY_REQUESTS, r#"{"error":"overloaded"}"#)
    } else {
        // `tower::timeout::error::Elapsed`: the only other error here.
        (StatusCode::REQUEST_TIMEOUT, r#"{"error":"timed out"}"#)
    };
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (verify, dev_secret) = webhook_layer()?;
    let shutdown = shutdown_signal();
    let listener = listen(dev_secret.as_deref()).await?;

    // The verified stack, outermost first: refuse when full, count the
    // webhook in flight, bound its time, verify (and bound its body), then
    // the handler.
    let verified = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(MAX_IN_FLIGHT)
        .timeout(REQUEST_TIMEOUT)
        .layer(verify.max_body_size(MAX_BODY_SIZE))
        .service(service_fn(webhook));

    // Scope it to one path by hand: other requests never reach the layer.
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
                Ok(not_found().map(Either::Right))
            }
        }
    });

    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        continue;
                    }
                };
                let connection = server.serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(app.clone()),
                );
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
    Ok(())
}

// Setup, the same in every example receiver: the secret, the port, a ready
// `curl` command with a development secret, logs and graceful shutdown.

/// The path Intercom posts webhooks to.
const WEBHOOK_PATH: &str = "/webhooks/intercom";

/// The verifying layer, with the app's client secret from
/// `INTERCOM_WEBHOOK_SECRET` (and, during a rotation, the one being retired
/// from `INTERCOM_WEBHOOK_SECRET_PREVIOUS`). When it is unset, a random
/// development secret, also returned to be printed.
fn webhook_layer() -> Result<(VerifyIntercomWebhookLayer, Option<String>), Box<dyn Error>> {
    let (current, dev_secret) = match env::var_os("INTERCOM_WEBHOOK_SECRET") {
        Some(_) => (WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET")?, None),
        None => {
            let text = hex::encode(rand::random::<[u8; 32]>());
            (text.parse()?, Some(text))
        }
    };
    let mut previous = Vec::new();
    if env::var_os("INTERCOM_WEBHOOK_SECRET_PREVIOUS").is_some() {
        previous.push(WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET_PREVIOUS")?);
    }
    Ok((
        VerifyIntercomWebhookLayer::with_secrets(current, previous),
        dev_secret,
    ))
}

/// Binds 127.0.0.1 on `PORT` (default 3000) and says where webhooks go;
/// with a development secret, warns and prints a `curl` command that sends
/// a correctly signed ping.
async fn listen(dev_secret: Option<&str>) -> Result<TcpListener, Box<dyn Error>> {
    let port: u16 = match env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 3000,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    let url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr()?);
    println!("Listening for Intercom webhooks on {url}");
    if let Some(secret) = dev_secret {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let body = format!(
            r#"{{"type":"notification_event","app_id":"dev-app","data":{{"type":"notification_event_data","item":{{"type":"ping","message":"Hello from a local test"}}}},"links":{{}},"id":"notif_dev_{now}","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":{now},"created_at":{now},"self":null}}"#
        );
        let signature = sign(&secret.parse()?, body.as_bytes());
        let signature = signature.to_str()?;
        println!();
        println!("WARNING: INTERCOM_WEBHOOK_SECRET is not set.");
        println!("WARNING: using a random DEVELOPMENT secret; Intercom's real deliveries will be refused.");
        println!("WARNING: set INTERCOM_WEBHOOK_SECRET to your app's client secret for real use.");
        println!("development secret: {secret}");
        println!();
        println!("Send a correctly signed ping:");
        println!("curl -i -X POST {url} -H 'content-type: application/json' -H 'x-hub-signature: {signature}' --data-binary '{body}'");
        println!();
    }
    Ok(listener)
}

/// Logs to stderr; `RUST_LOG` overrides the default level.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed by this call,
/// not when the future is first polled: call it before saying the server
/// listens, so that a signal sent right after is not missed (it would end
/// the process abruptly instead).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        [
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ]
    };
    async move {
        #[cfg(unix)]
        {
            let [interrupt, terminate] = signals;
            let received = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
