//! Run with `cargo run --example tonic`
//!
//! One tonic server on one port serving gRPC health checks
//! (`grpc.health.v1.Health`, from `tonic-health`) and Intercom webhooks on
//! `POST /webhooks/intercom`. Only the webhook route is verified; gRPC calls
//! never meet the layer.
//!
//! Settings come from the environment, as in the other example receivers:
//!
//! - `INTERCOM_WEBHOOK_SECRET`: the app's client secret. When it is unset, a
//!   random development secret is generated, a warning says so, and a ready
//!   `curl` command that sends a correctly signed ping is printed.
//! - `INTERCOM_WEBHOOK_SECRET_PREVIOUS` (optional): the old secret during a
//!   rotation; requests signed with either are accepted.
//! - `PORT`: default 3000. The server binds 127.0.0.1.
//!
//! Ctrl-C or SIGTERM stops it gracefully.
//!
//! # How the layer is scoped to one path
//!
//! In tonic 0.14 a set of gRPC services ([`Routes`]) is an axum `Router`
//! underneath. So:
//!
//! 1. build the gRPC routes (`Routes::new(health_service)`),
//! 2. turn them into an axum router ([`Routes::into_axum_router`]) and add
//!    the webhook route, with `VerifyIntercomWebhookLayer` applied to that
//!    route alone (`post(handler).layer(...)`),
//! 3. hand the router back to tonic's [`Server`] (`Routes::from(router)`,
//!    [`Server::add_routes`]).
//!
//! No path-dispatch code: the router sends `/grpc.health.v1.Health/*` to the
//! health service and `/webhooks/intercom` through the layer to the handler.
//! Two more settings matter:
//!
//! - [`Server::accept_http1`]: tonic speaks only HTTP/2 by default, while
//!   Intercom delivers webhooks over HTTP/1.1. With it, the same port takes
//!   both.
//! - A fallback: tonic answers every unknown path with a gRPC "unimplemented"
//!   status inside an HTTP 200, which Intercom would count as a successful
//!   delivery to a mistyped URL. Here non-gRPC requests to unknown paths get
//!   a 404; gRPC requests still get "unimplemented".
//!
//! Try it, with the `curl` command printed at start-up (200), the same
//! command with one character of the body changed (401), and a gRPC health
//! check from any client, e.g. tonic-health's `HealthClient` (SERVING).

use std::{
    env,
    error::Error,
    future::Future,
    net::SocketAddr,
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::Request,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Extension,
};
use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{server::TcpIncoming, Server},
};
use tonic_health::server::HealthReporter;
use tower_intercom::{
    extract::VerifiedNotification, sign, VerifiedWebhook, VerifyIntercomWebhookLayer, WebhookSecret,
};

/// The server's routes: gRPC health, and the verified webhook route.
///
/// The returned [`HealthReporter`] changes what the health service reports.
fn app(verify: VerifyIntercomWebhookLayer) -> (Routes, HealthReporter) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let router = Routes::new(health_service)
        .into_axum_router()
        .route(WEBHOOK_PATH, post(webhook).layer(verify))
        .fallback(not_found);
    (Routes::from(router), reporter)
}

/// Serves `routes` on `listener` (HTTP/2 for gRPC, HTTP/1.1 for webhooks)
/// until `shutdown` completes, then lets requests in flight finish.
async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// Only requests signed with the client secret get here, parsed. Answer
/// fast: Intercom counts a delivery as failed after 5 s.
async fn webhook(
    Extension(verified): Extension<VerifiedWebhook>,
    VerifiedNotification(notification): VerifiedNotification,
) -> StatusCode {
    tracing::info!(
        topic = %notification.topic,
        id = %notification.id,
        attempt = notification.delivery_attempts.unwrap_or(1),
        secret_index = verified.secret_index(),
        "received Intercom notification"
    );
    StatusCode::OK
}

/// Unknown paths: gRPC's "unimplemented" for gRPC requests, 404 otherwise.
async fn not_found(request: Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        tonic::Status::unimplemented("no such gRPC service").into_http()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
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
    println!(
        "gRPC health (grpc.health.v1.Health, HTTP/2) on {}",
        listener.local_addr()?
    );
    let (routes, _health) = app(verify);
    serve(listener, routes, shutdown).await?;
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
