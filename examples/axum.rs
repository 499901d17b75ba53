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

use std::{
    env,
    error::Error,
    net::SocketAddr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Extension, Router,
};
use tokio::{net::TcpListener, sync::mpsc};
use tower::ServiceBuilder;
use tower_intercom::{
    extract::VerifiedNotification,
    idempotency::{IdempotencyLayer, IdempotencyStore, MemoryStore, RedisStore},
    notification::Notification,
    notification::Topic,
    sign, VerifiedWebhook, VerifyIntercomWebhookLayer, WebhookSecret,
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
        .route(WEBHOOK_PATH, post(webhook).layer(webhook_layers))
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
async fn idempotency_store() -> Result<Arc<dyn IdempotencyStore>, Box<dyn Error>> {
    match env::var("REDIS_URL") {
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
    let store = idempotency_store().await?;
    let listener = listen(dev_secret.as_deref()).await?;

    let (queue, work) = mpsc::channel(QUEUE_CAPACITY);
    let worker = tokio::spawn(worker(work));
    let state = AppState { queue };
    axum::serve(listener, app(verify, store, state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // The router (and its queue sender) is gone: let the worker finish
    // what was accepted.
    worker.await?;
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

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => terminate.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
