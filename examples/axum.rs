//! An Intercom webhook receiver on axum.
//!
//! Run with `cargo run --example axum` (secret from `INTERCOM_WEBHOOK_SECRET`,
//! port from `PORT`; with no secret, a development secret is generated and a
//! ready `curl` command is printed).
//!
//! `POST /webhooks/intercom` is behind `VerifyIntercomWebhookLayer`, scoped
//! to that route; `GET /healthz` is open.

mod common;

use std::process::ExitCode;

use axum::{
    body::Bytes,
    http::StatusCode,
    routing::{get, post},
    Extension, Router,
};
use tower_intercom::{VerifiedWebhook, VerifyIntercomWebhookLayer};

/// The application: a verified webhook route and an open health check.
fn app(verify: VerifyIntercomWebhookLayer) -> Router {
    Router::new()
        .route(common::WEBHOOK_PATH, post(webhook).layer(verify))
        .route("/healthz", get(|| async { "ok" }))
}

/// Only requests with a valid signature get here. Answer fast: Intercom
/// counts a delivery as failed after 5 s and prefers endpoints that answer
/// within 500 ms.
async fn webhook(Extension(verified): Extension<VerifiedWebhook>, body: Bytes) -> StatusCode {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        id: Option<&'a str>,
        #[serde(borrow)]
        topic: Option<&'a str>,
    }
    match serde_json::from_slice::<Envelope<'_>>(&body) {
        Ok(envelope) => tracing::info!(
            topic = envelope.topic.unwrap_or("-"),
            id = envelope.id.unwrap_or("-"),
            secret_index = verified.secret_index(),
            "received Intercom notification"
        ),
        Err(err) => tracing::warn!(error = %err, "signed body is not an Intercom notification"),
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    let settings = match common::Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.addr()).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", settings.addr());
            return ExitCode::FAILURE;
        }
    };
    settings.announce(listener.local_addr().unwrap_or(settings.addr()));
    let served = axum::serve(listener, app(settings.layer))
        .with_graceful_shutdown(common::shutdown_signal())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
