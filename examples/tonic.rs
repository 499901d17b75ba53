//! Run with `cargo run --example tonic --features axum`
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

use std::{future::Future, net::SocketAddr, process::ExitCode, time::SystemTime};

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
    sign, SecretErrorKind, VerifiedNotification, VerifiedWebhook, VerifyIntercomWebhookLayer,
    WebhookSecret,
};

/// The path Intercom delivers to.
pub const WEBHOOK_PATH: &str = "/webhooks/intercom";

/// The server's routes: gRPC health, and the verified webhook route.
///
/// The returned [`HealthReporter`] changes what the health service reports.
pub fn app(verify: VerifyIntercomWebhookLayer) -> (Routes, HealthReporter) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let router = Routes::new(health_service)
        .into_axum_router()
        .route(WEBHOOK_PATH, post(webhook).layer(verify))
        .fallback(not_found);
    (Routes::from(router), reporter)
}

/// Serves `routes` on `listener` (HTTP/2 for gRPC, HTTP/1.1 for webhooks)
/// until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], settings.port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    settings.announce(addr);

    let (routes, _health) = app(settings.verify);
    match serve(listener, routes, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The receiver's settings, from the environment.
struct Settings {
    verify: VerifyIntercomWebhookLayer,
    /// The generated secret and its text, when `INTERCOM_WEBHOOK_SECRET` is
    /// unset.
    dev_secret: Option<(WebhookSecret, String)>,
    port: u16,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let port = match std::env::var("PORT") {
            Err(_) => 3000,
            Ok(port) => port
                .parse()
                .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        };
        let (current, dev_secret) = match WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET") {
            Ok(secret) => (secret, None),
            Err(err) if err.kind() == SecretErrorKind::NotSet => {
                let text = hex::encode(rand::random::<[u8; 32]>());
                let secret: WebhookSecret = text.parse().map_err(|err| format!("{err}"))?;
                (secret.clone(), Some((secret, text)))
            }
            // Set but unusable (blank, padded with whitespace, …): never
            // fall back to a made-up secret.
            Err(err) => return Err(err.to_string()),
        };
        let mut secrets = vec![current];
        match WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET_PREVIOUS") {
            Ok(previous) => secrets.push(previous),
            Err(err) if err.kind() == SecretErrorKind::NotSet => {}
            Err(err) => return Err(err.to_string()),
        }
        let verify =
            VerifyIntercomWebhookLayer::with_secrets(secrets).map_err(|err| err.to_string())?;
        Ok(Self {
            verify,
            dev_secret,
            port,
        })
    }

    fn announce(&self, addr: SocketAddr) {
        let url = format!("http://{addr}{WEBHOOK_PATH}");
        println!("gRPC health and Intercom webhooks on {addr}");
        println!("  webhooks:    POST {url}");
        println!("  gRPC health: grpc.health.v1.Health/Check (HTTP/2)");
        let Some((secret, text)) = &self.dev_secret else {
            return;
        };
        let body = ping_body();
        let signature = sign(secret, body.as_bytes());
        let signature = signature.to_str().unwrap_or_default();
        println!();
        println!("WARNING: INTERCOM_WEBHOOK_SECRET is not set.");
        println!("WARNING: using a random DEVELOPMENT secret: Intercom's real deliveries will be refused.");
        println!("WARNING: set INTERCOM_WEBHOOK_SECRET to your app's client secret for real use.");
        println!("development secret: {text}");
        println!();
        println!("Send a correctly signed ping:");
        println!(
            "curl -i -X POST {url} -H 'content-type: application/json' -H 'x-hub-signature: {signature}' --data-binary '{body}'"
        );
        println!();
    }
}

/// A ping notification like the one Intercom sends when a webhook is saved.
fn ping_body() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    format!(
        r#"{{"type":"notification_event","app_id":"dev-app","data":{{"type":"notification_event_data","item":{{"type":"ping","message":"Hello from a local test"}}}},"links":{{}},"id":"notif_dev_{now}","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":{now},"created_at":{now},"self":null}}"#
    )
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
