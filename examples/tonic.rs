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

use std::future::Future;

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
use tower_intercom::{VerifiedNotification, VerifiedWebhook, VerifyIntercomWebhookLayer};

mod common;

use common::WEBHOOK_PATH;

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
async fn main() -> Result<(), common::Failure> {
    common::init_tracing();
    let settings = common::Settings::from_env()?;
    println!(
        "gRPC health (grpc.health.v1.Health, HTTP/2) on {}",
        settings.addr()
    );
    let listener = settings.listen().await?;
    let (routes, _health) = app(settings.layer);
    serve(listener, routes, common::shutdown_signal()).await?;
    Ok(())
}
