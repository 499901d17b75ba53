//! Run with `cargo run --example axum` (secret from `INTERCOM_WEBHOOK_SECRET`,
//! or from the file `INTERCOM_WEBHOOK_SECRET_FILE` names, reloaded when it
//! changes; ports from `PORT` and `ADMIN_PORT`, inbox from `INBOX_URL`; with
//! no secret, a development secret is generated and ready `curl` commands
//! are printed).
//!
//! An Intercom webhook receiver on axum that loses nothing it acknowledged,
//! and that unauthenticated clients cannot hold. Copy it whole: the limits
//! are part of the receiver, not an extra.
//!
//! On `PORT` (default 3000), the one port to expose to Intercom:
//!
//! - `POST /webhooks/intercom`: `VerifyIntercomWebhookLayer`, then the
//!   inbox's receiver. A notification is answered 200 only once it is
//!   committed to the durable inbox (a redelivery of a stored id is
//!   answered 200 and stored once); a worker in this process then
//!   processes it, with retries and dead letters. Kill the process at any
//!   moment: what was acknowledged is processed after the restart. Other
//!   methods than `POST` (and `HEAD`, Intercom's URL check) get 405.
//! - `POST /intercom/health`: Intercom's app installation health check,
//!   signed with `X-Body-Signature` (hex HMAC-SHA256 of the body with the
//!   client secret).
//! - `GET /healthz`: open, for a load balancer.
//!
//! Every request on that port, signed or not, is bounded, with the numbers
//! of `examples/hyper.rs`: its headers must arrive within `HEADER_TIMEOUT`
//! (5 s) and the whole request, body included, within `REQUEST_TIMEOUT`
//! (5 s, then 408; Intercom retries); at most `MAX_IN_FLIGHT` (256) are
//! handled at once, and more get 429 at once, before their body is read
//! (Intercom backs off and retries); a body is at most `MAX_BODY_SIZE`
//! (1 MiB, then 413). So the memory the webhooks hold is at most
//! 256 × 1 MiB, plus a few KiB per open connection, and a client that
//! trickles its body a byte at a time is cut after 5 s. `axum::serve` takes
//! no header timeout: this example serves its router with hyper-util's
//! connection builder instead, as axum's `serve-with-hyper` example does.
//!
//! On `ADMIN_PORT` (default `PORT` + 1, so 3001), on 127.0.0.1 only, for
//! your monitoring:
//!
//! - `GET /metrics`: the crate's metrics in Prometheus's text format.
//! - `GET /inbox`: the inbox's counts,
//!   `{"pending":…,"in_progress":…,"done":…,"dead":…,"oldest_pending_unix_ms":…}`
//!   (when the longest-waiting due notification became due, or `null`).
//!
//! They are kept off the webhook port on purpose. Whoever reaches the
//! webhook port (the internet, since Intercom must) would otherwise read
//! your traffic and failure rates, and this is where an operator's tools
//! grow: a listing of dead letters (`Inbox::dead`) shows notification
//! contents (conversations, contacts' names and emails) and `requeue`
//! changes state. Keep `ADMIN_PORT` unreachable from outside, or put it
//! behind your own authentication.
//!
//! `INBOX_URL` picks the inbox: unset, an SQLite file
//! `intercom-inbox.sqlite3` in the current directory; `sqlite:<path>`,
//! `sqlite://<path>` or a plain path, another file; `redis://…`,
//! `rediss://…` or `redis+unix://…`, Redis (shared by receivers on many
//! machines; configure its persistence, see the crate's docs);
//! `postgres://…` or `postgresql://…`, PostgreSQL (shared too; its schema
//! `tower_intercom` is created or migrated at start-up; add
//! `?sslmode=require` for TLS). Any other scheme is refused.
//!
//! `INTERCOM_WEBHOOK_SECRET_FILE` names a file of client secrets, one per
//! line, the current one first (a mounted Kubernetes Secret, a file Vault
//! Agent renders). It is read again every 10 s: rotate the secret by
//! writing the new one above the old, then, once Intercom signs with the
//! new one, the new one alone. No restart, no deploy.
//!
//! With `INTERCOM_ACCESS_TOKEN` set (the REST API token your workers call
//! Intercom with; `INTERCOM_API_URL`: `us`, `eu`, `au` or a URL), it checks
//! the token with `GET /me` once it listens: it prints the app and region,
//! warns when Identity Verification is not enforced, and says when the
//! token is refused, without stopping (see `check_access_token`). With
//! `INTERCOM_ACCESS_TOKEN_ISSUED_AT` (RFC 3339) it exports the token's age,
//! and warns past 90 days.
//!
//! Start-up checks every setting (the secrets, the token, `PORT`,
//! `ADMIN_PORT`, `INBOX_URL`) before it opens the inbox, and opens the
//! inbox before it listens: a mistyped setting creates no file and takes
//! no port.

use std::{
    env,
    error::Error,
    net::SocketAddr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    error_handling::HandleErrorLayer,
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    BoxError, Json, Router,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::watch};
use tower::{limit::GlobalConcurrencyLimitLayer, load_shed::error::Overloaded, ServiceBuilder};
use tower_intercom::{
    client::{
        ApiBase, HttpsClient, IntercomClient, IntercomClientLayer, TokenAge, API_URL_VAR,
        ISSUED_AT_VAR,
    },
    health::{HealthCheckRequest, HealthCheckResponse, HealthCheckService},
    inbox::{
        handler_fn, Inbox, InboxStore, PostgresStore, ReceivedNotification, RedisStore, SqliteStore,
    },
    metrics::{BODY_SIZE_BUCKETS, SECONDS_BUCKETS, WEBHOOK_BODY_SIZE},
    notification::{Notification, Topic},
    reload::SecretFile,
    sign, AccessToken, SignatureScheme, VerifyIntercomWebhookLayer, WebhookSecret, WebhookSecrets,
};

/// The largest body buffered: far above Intercom's notifications (tens of
/// KiB), far below what would hurt.
const MAX_BODY_SIZE: usize = 1024 * 1024;
/// Requests handled at once on the webhook port; beyond it, 429 at once,
/// before reading.
const MAX_IN_FLIGHT: usize = 256;
/// Time for a whole request, body and handler included. Intercom gives up
/// after 5 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The inbox, whichever store `INBOX_URL` picked.
type AnyInbox = Inbox<Arc<dyn InboxStore>>;

/// The webhook port: the verified webhook route into the inbox, the
/// installation health check and `/healthz`, every request under the
/// limits.
fn app(verify: VerifyIntercomWebhookLayer, inbox: &AnyInbox) -> Router {
    let verify = verify.max_body_size(MAX_BODY_SIZE);
    let receiver = ServiceBuilder::new()
        .layer(verify.clone())
        .service(inbox.receiver());
    let health = ServiceBuilder::new()
        .layer(verify.scheme(SignatureScheme::BodySignature))
        .service(HealthCheckService::new(|_: HealthCheckRequest| async {
            HealthCheckResponse::ok()
        }));
    // Outermost first: refuse when full, count the request in flight,
    // bound its time. One budget for the whole port (a global limit: axum
    // layers each route apart).
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded_or_timed_out))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .timeout(REQUEST_TIMEOUT);
    Router::new()
        .route_service(WEBHOOK_PATH, receiver)
        .route_service("/intercom/health", health)
        .route("/healthz", get(|| async { "ok" }))
        .layer(limits)
}

/// 429 when `MAX_IN_FLIGHT` requests are already being handled (Intercom
/// backs off and retries), 408 when one was not complete in time.
async fn overloaded_or_timed_out(err: BoxError) -> impl IntoResponse {
    if err.is::<Overloaded>() {
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({"error": "overloaded"})),
        )
    } else {
        // `tower::timeout::error::Elapsed`: the only other error here.
        (
            StatusCode::REQUEST_TIMEOUT,
            Json(serde_json::json!({"error": "timed out"})),
        )
    }
}

#[derive(Clone)]
struct AdminState {
    inbox: AnyInbox,
    metrics: PrometheusHandle,
    token_age: TokenAge,
}

/// The admin port: the inbox's counts and the metrics.
fn admin(state: AdminState) -> Router {
    Router::new()
        .route("/inbox", get(inbox_counts))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn inbox_counts(State(state): State<AdminState>) -> impl IntoResponse {
    match state.inbox.counts().await {
        Ok(counts) => Json(counts).into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    // Refreshes the inbox's gauges (its counts and the oldest pending
    // notification's age), and the token's age.
    let _ = state.inbox.counts().await;
    state.token_age.record();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The processing, off the request path and after the commit: call other
/// APIs, write to a database… It runs at least once per notification (a
/// crash mid-way runs it again), so its side effects must be idempotent by
/// the notification id. An error is retried with backoff, except a
/// permanent one (`tower_intercom::inbox::Permanent`), which no retry can
/// fix: a body that does not parse (`json()?`) goes dead at once.
async fn process(notification: ReceivedNotification) -> Result<(), Box<dyn Error + Send + Sync>> {
    let parsed: Notification = notification.json()?;
    let topic = &parsed.topic;
    if *topic == Topic::PING {
        // Nothing to do.
    } else if topic.as_str().starts_with("conversation.") || topic.as_str().starts_with("contact.")
    {
        // The slow part of a real handler; here it only takes a while.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "processed {} ({topic}, attempt {})",
        notification.id(),
        notification.attempt()
    );
    Ok(())
}

/// Where the inbox is (`INBOX_URL`): checked with the other settings,
/// opened once they are all good.
enum InboxUrl {
    Sqlite(String),
    Redis(String),
    Postgres(String),
}

impl InboxUrl {
    /// Reads `INBOX_URL`. Errors name the URL's scheme, never the rest,
    /// which can carry a password.
    fn from_env() -> Result<Self, Box<dyn Error>> {
        let url = match env::var("INBOX_URL") {
            Ok(url) => url,
            Err(env::VarError::NotPresent) => String::new(),
            Err(env::VarError::NotUnicode(_)) => return Err("INBOX_URL is not UTF-8".into()),
        };
        // A URL's scheme, if `url` starts with one (`word:`).
        let scheme = url.split_once(':').and_then(|(scheme, _)| {
            let mut chars = scheme.chars();
            let is_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            is_scheme.then(|| scheme.to_ascii_lowercase())
        });
        let rest = scheme
            .as_ref()
            .map_or(&url[..], |scheme| &url[scheme.len() + 1..]);
        match scheme.as_deref() {
            Some(
                "redis" | "rediss" | "redis+unix" | "unix" | "valkey" | "valkeys" | "valkey+unix",
            ) if rest.starts_with("//") => Ok(Self::Redis(url)),
            Some("postgres" | "postgresql") if rest.starts_with("//") => Ok(Self::Postgres(url)),
            // `sqlite:inbox.db` and `sqlite://inbox.db` name `inbox.db`,
            // `sqlite:///srv/inbox.db` an absolute path; or a plain path.
            Some("sqlite") | None => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.contains('?') {
                    return Err("INBOX_URL: sqlite:<path> takes no query (?…)".into());
                }
                let path = if path.is_empty() {
                    "intercom-inbox.sqlite3"
                } else {
                    path
                };
                Ok(Self::Sqlite(path.to_owned()))
            }
            Some(scheme) => Err(format!(
                "INBOX_URL: cannot use a {scheme:?} URL: use redis://… (or rediss://, \
                 redis+unix://) for Redis, postgres://… for PostgreSQL, or sqlite:<path> or \
                 a plain path for SQLite"
            )
            .into()),
        }
    }

    /// Opens the store (an SQLite file is created if missing).
    async fn open(&self) -> Result<AnyInbox, Box<dyn Error>> {
        let store: Arc<dyn InboxStore> = match self {
            Self::Redis(url) => {
                // Warns at start-up when Redis's persistence can lose what
                // was acknowledged (see `RedisStore`).
                let store = RedisStore::connect(url)
                    .await
                    .map_err(|err| format!("cannot connect to the Redis inbox: {err}"))?;
                println!("Inbox: Redis (INBOX_URL)");
                Arc::new(store)
            }
            Self::Postgres(url) => {
                // Creates or migrates the schema, and warns at start-up when
                // Postgres can lose what was acknowledged (see
                // `PostgresStore`).
                let store = PostgresStore::connect(url)
                    .await
                    .map_err(|err| format!("cannot connect to the Postgres inbox: {err}"))?;
                println!("Inbox: PostgreSQL (INBOX_URL)");
                Arc::new(store)
            }
            Self::Sqlite(path) => {
                let store = SqliteStore::open(path)
                    .map_err(|err| format!("cannot open the inbox {path}: {err}"))?;
                println!("Inbox: SQLite file {path}");
                Arc::new(store)
            }
        };
        Ok(Inbox::new(store))
    }
}

/// Every setting, read and checked before anything is opened or bound.
struct Settings {
    verify: VerifyIntercomWebhookLayer,
    /// The development secret, when `INTERCOM_WEBHOOK_SECRET` is unset.
    dev_secret: Option<String>,
    port: u16,
    admin_port: u16,
    inbox: InboxUrl,
    /// The REST API token and where to call Intercom, when
    /// `INTERCOM_ACCESS_TOKEN` is set.
    intercom: Option<(AccessToken, ApiBase)>,
    /// When the token was issued (`INTERCOM_ACCESS_TOKEN_ISSUED_AT`).
    token_age: TokenAge,
}

impl Settings {
    async fn from_env() -> Result<Self, Box<dyn Error>> {
        let (verify, dev_secret) = webhook_layer().await?;
        let port = port_from_env("PORT")?.unwrap_or(3000);
        let admin_port = match port_from_env("ADMIN_PORT")? {
            Some(admin_port) => admin_port,
            None => port
                .checked_add(1)
                .ok_or("PORT is 65535: set ADMIN_PORT to another port")?,
        };
        if admin_port == port {
            return Err(format!("ADMIN_PORT must differ from PORT ({port})").into());
        }
        let intercom = match env::var_os("INTERCOM_ACCESS_TOKEN") {
            Some(_) => Some((
                AccessToken::from_env("INTERCOM_ACCESS_TOKEN")?,
                ApiBase::from_env(API_URL_VAR)?,
            )),
            None => None,
        };
        Ok(Self {
            verify,
            dev_secret,
            port,
            admin_port,
            inbox: InboxUrl::from_env()?,
            intercom,
            token_age: TokenAge::from_env(ISSUED_AT_VAR)?,
        })
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
    // Every setting first, then the inbox, then the ports: a mistyped
    // setting creates no file and takes no port.
    let settings = Settings::from_env().await?;
    // Histograms with buckets (not the exporter's default summaries), so
    // that Prometheus can aggregate them and the Grafana dashboard in
    // deploy/grafana can draw their quantiles.
    let metrics = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WEBHOOK_BODY_SIZE.into()), BODY_SIZE_BUCKETS)?
        .install_recorder()?;
    // The REST API client, built once the recorder is in place so that its
    // counters are exported.
    let intercom = settings
        .intercom
        .map(|(token, base)| IntercomClientLayer::new(token).api_base(base).https())
        .transpose()?;
    let inbox = settings.inbox.open().await?;
    let shutdown = shutdown_signal();
    let webhook_listener = bind(settings.port).await?;
    let admin_listener = bind(settings.admin_port).await?;
    announce(
        &webhook_listener,
        &admin_listener,
        settings.dev_secret.as_deref(),
    )?;

    // On shutdown, the servers stop accepting and finish the requests in
    // flight; the worker stops taking notifications and hands back what it
    // could not finish within its grace period.
    let (stop, stopped) = watch::channel(false);
    let worker = inbox
        .worker(handler_fn(process))
        .concurrency(4)
        // A short lease: after a crash, what was in progress is taken
        // again within seconds.
        .lease(Duration::from_secs(5))
        .spawn({
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        });
    let webhooks = tokio::spawn(serve(
        webhook_listener,
        app(settings.verify, &inbox),
        stopped.clone(),
    ));
    let admin = tokio::spawn(serve(
        admin_listener,
        admin(AdminState {
            inbox,
            metrics,
            token_age: settings.token_age.clone(),
        }),
        stopped,
    ));
    if let Some(intercom) = intercom {
        tokio::spawn(check_access_token(intercom, settings.token_age));
    }
    shutdown.await;
    let _ = stop.send(true);
    webhooks.await?;
    admin.await?;
    worker.await?;
    Ok(())
}

/// `GET /me` with the access token, once the receiver listens: which app
/// and region the token works on, and whether Identity Verification is
/// enforced there.
///
/// A refused token does not stop the receiver: it needs no token to
/// acknowledge and store notifications, and stopping it would make
/// Intercom retry and then pause the webhooks. What needs the token (the
/// workers' calls to Intercom) fails until it is replaced: the notifications
/// wait in the inbox (retried, or dead and re-queued later), the refusal is
/// counted (`intercom_client_auth_failures` on `/metrics`) and
/// `deploy/prometheus/alerts.yml` pages on it.
async fn check_access_token(intercom: IntercomClient<HttpsClient<Full<Bytes>>>, age: TokenAge) {
    match tokio::time::timeout(Duration::from_secs(30), intercom.me()).await {
        Ok(Ok(me)) => {
            let app = me.app();
            println!(
                "Intercom API: app {} ({}), region {}, token of admin {}",
                app.id_code(),
                app.name(),
                app.region(),
                me.email()
            );
            if app.identity_verification() != Some(true) {
                println!(
                    "WARNING: Identity Verification is not enforced on app {}: anyone can \
                     impersonate your users in the Messenger. Enforce it in Intercom's \
                     Messenger security settings.",
                    app.id_code()
                );
            }
        }
        Ok(Err(err)) => println!(
            "ERROR: the access token failed its check (GET /me): {err}. Webhooks are still \
             received and stored; calls to Intercom's API fail until INTERCOM_ACCESS_TOKEN \
             is replaced."
        ),
        Err(_) => println!("WARNING: Intercom's API did not answer GET /me within 30 s"),
    }
    if age.rotation_due() {
        println!("WARNING: the access token is over 90 days old: rotate it.");
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets the
/// requests in flight finish.
///
/// A connection's request headers must arrive within `HEADER_TIMEOUT`:
/// `axum::serve` sets no such timeout, so a client that never finished its
/// headers would hold its connection (and a task) forever.
async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors, most often: wait for
                        // connections to close rather than spin.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
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
            () = &mut stopped => break,
        }
    }
    graceful.shutdown().await;
}

// Setup, as in every example receiver: the secret, the ports, ready `curl`
// commands with a development secret, logs and graceful shutdown.

/// The path Intercom posts webhooks to.
const WEBHOOK_PATH: &str = "/webhooks/intercom";

/// The verifying layer, with the app's client secrets from the file
/// `INTERCOM_WEBHOOK_SECRET_FILE` names (reloaded when it changes), or from
/// `INTERCOM_WEBHOOK_SECRET` (and, during a rotation, the one being retired
/// from `INTERCOM_WEBHOOK_SECRET_PREVIOUS`). When neither is set, a random
/// development secret, also returned to be printed.
async fn webhook_layer() -> Result<(VerifyIntercomWebhookLayer, Option<String>), Box<dyn Error>> {
    if let Some(path) = env::var_os("INTERCOM_WEBHOOK_SECRET_FILE") {
        if [
            "INTERCOM_WEBHOOK_SECRET",
            "INTERCOM_WEBHOOK_SECRET_PREVIOUS",
        ]
        .iter()
        .any(|name| env::var_os(name).is_some())
        {
            return Err("INTERCOM_WEBHOOK_SECRET_FILE holds every secret: \
                        unset INTERCOM_WEBHOOK_SECRET and INTERCOM_WEBHOOK_SECRET_PREVIOUS"
                .into());
        }
        // Read now, then every 10 s; each request is verified against the
        // secrets in the file when it came in.
        let secrets = SecretFile::<WebhookSecrets>::open(path).await?;
        return Ok((VerifyIntercomWebhookLayer::from_source(secrets), None));
    }
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

/// The port number in the environment variable `name`, if it is set.
fn port_from_env(name: &str) -> Result<Option<u16>, Box<dyn Error>> {
    match env::var(name) {
        Ok(port) => match port.parse() {
            Ok(port) => Ok(Some(port)),
            Err(_) => Err(format!("{name} must be a port number, not {port:?}").into()),
        },
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(_)) => Err(format!("{name} must be a port number").into()),
    }
}

/// Binds `port` on 127.0.0.1. Put a reverse proxy or a tunnel in front of
/// the webhook port; to serve webhooks on other interfaces, change their
/// address only, never the admin port's.
async fn bind(port: u16) -> Result<TcpListener, Box<dyn Error>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}").into())
}

/// Says where each port is; with a development secret, warns and prints
/// `curl` commands that send a correctly signed ping and a correctly signed
/// installation health check.
fn announce(
    webhooks: &TcpListener,
    admin: &TcpListener,
    dev_secret: Option<&str>,
) -> Result<(), Box<dyn Error>> {
    let base = format!("http://{}", webhooks.local_addr()?);
    println!(
        "Admin (GET /metrics, GET /inbox) on http://{}: keep it private",
        admin.local_addr()?
    );
    println!("Listening for Intercom webhooks on {base}{WEBHOOK_PATH}");
    let Some(dev_secret) = dev_secret else {
        return Ok(());
    };
    let secret: WebhookSecret = dev_secret.parse()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let ping = format!(
        r#"{{"type":"notification_event","app_id":"dev-app","data":{{"type":"notification_event_data","item":{{"type":"ping","message":"Hello from a local test"}}}},"links":{{}},"id":"notif_dev_{now}","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":{now},"created_at":{now},"self":null}}"#
    );
    // X-Hub-Signature: `sha1=` and the hex HMAC-SHA1 of the body.
    let ping_signature = sign(&secret, ping.as_bytes());
    let health = r#"{"workspace_id":"dev-workspace"}"#;
    // X-Body-Signature: the hex HMAC-SHA256 of the body, no prefix.
    let health_signature = SignatureScheme::BodySignature.sign(&secret, health.as_bytes());
    println!();
    println!("WARNING: INTERCOM_WEBHOOK_SECRET is not set.");
    println!(
        "WARNING: using a random DEVELOPMENT secret; Intercom's real deliveries will be refused."
    );
    println!("WARNING: set INTERCOM_WEBHOOK_SECRET to your app's client secret for real use.");
    println!("development secret: {dev_secret}");
    println!();
    println!("Send a correctly signed ping:");
    println!(
        "curl -i -X POST {base}{WEBHOOK_PATH} -H 'content-type: application/json' -H 'x-hub-signature: {}' --data-binary '{ping}'",
        ping_signature.to_str()?
    );
    println!();
    println!("Send a correctly signed installation health check (X-Body-Signature: hex HMAC-SHA256 of the body):");
    println!(
        "curl -i -X POST {base}/intercom/health -H 'content-type: application/json' -H 'x-body-signature: {}' --data-binary '{health}'",
        health_signature.to_str()?
    );
    println!();
    Ok(())
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
