//! Run with `cargo run --example axum` (secret from `INTERCOM_WEBHOOK_SECRET`,
//! port from `PORT`; with no secret, a development secret is generated and a
//! ready `curl` command is printed).
//!
//! An Intercom webhook receiver on axum:
//!
//! - `POST /webhooks/intercom`: behind `VerifyIntercomWebhookLayer`, scoped
//!   to that route. The handler dispatches on the topic, answers at once
//!   and hands slow work to a background task: Intercom counts a delivery
//!   as failed after 5 s and favours endpoints that answer within 500 ms.
//!   Each notification is handled once: `IdempotencyLayer` remembers the
//!   ids it handled, in memory, or in Redis when `REDIS_URL` is set (so
//!   several instances of the receiver share it).
//! - `GET /healthz`: open.

mod common;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Extension, Router,
};
use tokio::sync::mpsc;
use tower::ServiceBuilder;
use tower_intercom::{
    idempotency::{IdempotencyLayer, IdempotencyStore, MemoryStore, RedisStore},
    Notification, Topic, VerifiedNotification, VerifiedWebhook, VerifyIntercomWebhookLayer,
};

/// Notifications waiting for the background worker. Bounded: when it is
/// full the receiver answers 503 and Intercom delivers again later.
const QUEUE_CAPACITY: usize = 1024;

#[derive(Clone)]
struct AppState {
    queue: mpsc::Sender<Notification>,
}

/// The application: the verified, deduplicated webhook route and an open
/// health check.
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

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    common::init_tracing();
    let settings = common::Settings::from_env()?;
    let store = idempotency_store().await?;
    let listener = settings.listen().await?;

    let (queue, work) = mpsc::channel(QUEUE_CAPACITY);
    let worker = tokio::spawn(worker(work));
    let state = AppState { queue };
    axum::serve(listener, app(settings.layer, store, state))
        .with_graceful_shutdown(common::shutdown_signal())
        .await?;
    // The router (and its queue sender) is gone: let the worker finish
    // what was accepted.
    worker.await?;
    Ok(())
}
