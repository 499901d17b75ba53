//! An Intercom webhook receiver on axum, with the Messenger's identity
//! settings endpoint.
//!
//! Run with `cargo run --example axum` (secret from `INTERCOM_WEBHOOK_SECRET`,
//! port from `PORT`; with no secret, a development secret is generated and a
//! ready `curl` command is printed).
//!
//! - `POST /webhooks/intercom`: behind `VerifyIntercomWebhookLayer`, scoped
//!   to that route. The handler dispatches on the topic, answers at once
//!   and hands slow work to a background task: Intercom counts a delivery
//!   as failed after 5 s and favours endpoints that answer within 500 ms.
//!   Each notification is handled once: `IdempotencyLayer` remembers the
//!   ids it handled, in memory, or in Redis when `REDIS_URL` is set (so
//!   several instances of the receiver share it).
//! - `GET /api/intercom-settings`: what the Messenger needs to know who the
//!   signed-in user is (`app_id` from `INTERCOM_APP_ID`, `user_id`,
//!   `intercom_user_jwt`), signed with `INTERCOM_IDENTITY_SECRET`.
//!   Sign-in here is a DEMO: `Authorization: Bearer demo-ada` or
//!   `demo-grace`. Anonymous requests get 401 and no token.
//! - `GET /healthz`: open.

mod common;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use tokio::sync::mpsc;
use tower::ServiceBuilder;
use tower_intercom::{
    idempotency::{IdempotencyLayer, IdempotencyStore, MemoryStore, RedisStore},
    identity::{IdentitySecret, MessengerJwt, MessengerSettings},
    Notification, SecretErrorKind, Topic, VerifiedNotification, VerifiedWebhook,
    VerifyIntercomWebhookLayer,
};

/// Notifications waiting for the background worker. Bounded: when it is
/// full the receiver answers 503 and Intercom delivers again later.
const QUEUE_CAPACITY: usize = 1024;

#[derive(Clone)]
struct AppState {
    queue: mpsc::Sender<Notification>,
    app_id: String,
    identity_secret: IdentitySecret,
}

/// The application: the verified, deduplicated webhook route, the settings
/// endpoint and an open health check.
fn app(
    verify: VerifyIntercomWebhookLayer,
    store: Arc<dyn IdempotencyStore>,
    state: AppState,
) -> Router {
    // Verify first: the idempotency layer only trusts verified bodies.
    let webhook_layers = ServiceBuilder::new()
        .layer(verify)
        .layer(IdempotencyLayer::new(store));
    Router::new()
        .route(common::WEBHOOK_PATH, post(webhook).layer(webhook_layers))
        .route("/api/intercom-settings", get(intercom_settings))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// Only requests with a valid signature get here, parsed.
async fn webhook(
    State(state): State<AppState>,
    Extension(verified): Extension<VerifiedWebhook>,
    VerifiedNotification(notification): VerifiedNotification,
) -> StatusCode {
    let topic = &notification.topic;
    if verified.secret_index() > 0 {
        tracing::info!("signed with the previous secret: the rotation is not finished");
    }
    if *topic == Topic::PING {
        tracing::info!(id = %notification.id, "ping from Intercom");
        return StatusCode::OK;
    }
    let conversation = [
        Topic::CONVERSATION_USER_CREATED,
        Topic::CONVERSATION_USER_REPLIED,
        Topic::CONVERSATION_ADMIN_REPLIED,
        Topic::CONVERSATION_ADMIN_CLOSED,
    ];
    let contact = [Topic::CONTACT_USER_CREATED, Topic::CONTACT_LEAD_CREATED];
    if !conversation.contains(topic) && !contact.contains(topic) {
        tracing::debug!(%topic, id = %notification.id, "topic not handled here");
        return StatusCode::OK;
    }
    tracing::info!(
        %topic,
        id = %notification.id,
        item = notification.data.item["id"].as_str().unwrap_or("-"),
        "received Intercom notification"
    );
    match state.queue.try_send(notification) {
        Ok(()) => StatusCode::OK,
        Err(_) => {
            tracing::warn!("work queue full: asking Intercom to deliver again later");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The slow part, off the request path: call other APIs, write to a
/// database… Here it only takes a while and logs.
async fn worker(mut queue: mpsc::Receiver<Notification>) {
    while let Some(notification) = queue.recv().await {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tracing::info!(topic = %notification.topic, id = %notification.id, "processed");
    }
}

/// DEMO sign-in only: it stands for your real session (cookie, OAuth…).
/// A fixed bearer token per demo user; never do this in production.
fn demo_signed_in_user(headers: &HeaderMap) -> Option<(&'static str, &'static str)> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    match token {
        "demo-ada" => Some(("user-ada", "ada@example.com")),
        "demo-grace" => Some(("user-grace", "grace@example.com")),
        _ => None,
    }
}

/// `GET /api/intercom-settings`: the signed-in user's Messenger settings.
async fn intercom_settings(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((user_id, email)) = demo_signed_in_user(&headers) else {
        let body = Json(serde_json::json!({ "error": "sign in first" }));
        return (StatusCode::UNAUTHORIZED, body).into_response();
    };
    let jwt = MessengerJwt::new(user_id).email(email);
    match MessengerSettings::with_jwt(state.app_id.clone(), &state.identity_secret, &jwt) {
        Ok(settings) => ([(header::CACHE_CONTROL, "no-store")], Json(settings)).into_response(),
        Err(err) => {
            tracing::error!(%err, "could not sign the Messenger JWT");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Where handled notification ids are kept: Redis when `REDIS_URL` is set
/// (shared by every instance of the receiver), this process's memory
/// otherwise.
async fn idempotency_store() -> Result<Arc<dyn IdempotencyStore>, common::Failure> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let store = RedisStore::connect(&url).await?;
            println!("Idempotency: Redis store (REDIS_URL)");
            Ok(Arc::new(store))
        }
        Err(_) => {
            println!("Idempotency: in-memory store (set REDIS_URL to share it between instances)");
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

/// `INTERCOM_IDENTITY_SECRET`, or a random development secret when unset.
fn identity_secret() -> Result<IdentitySecret, common::Failure> {
    match IdentitySecret::from_env("INTERCOM_IDENTITY_SECRET") {
        Ok(secret) => Ok(secret),
        Err(err) if err.kind() == SecretErrorKind::NotSet => {
            println!("WARNING: INTERCOM_IDENTITY_SECRET is not set: signing Messenger settings with a random DEVELOPMENT secret (Intercom will not accept them).");
            Ok(IdentitySecret::new(common::random_secret())?)
        }
        Err(err) => Err(err.into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    common::init_tracing();
    let settings = common::Settings::from_env()?;
    let identity_secret = identity_secret()?;
    let store = idempotency_store().await?;
    let listener = settings.listen().await?;

    let (queue, work) = mpsc::channel(QUEUE_CAPACITY);
    let worker = tokio::spawn(worker(work));
    let state = AppState {
        queue,
        app_id: std::env::var("INTERCOM_APP_ID").unwrap_or_else(|_| "your-app-id".to_owned()),
        identity_secret,
    };
    axum::serve(listener, app(settings.layer, store, state))
        .with_graceful_shutdown(common::shutdown_signal())
        .await?;
    // The router (and its queue sender) is gone: let the worker finish
    // what was accepted.
    worker.await?;
    Ok(())
}
