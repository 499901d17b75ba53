//! The receivers `scripts/inbox-load.sh` loads, and its worker-throughput
//! measurement. A measuring tool, not an example to copy.
//!
//! `cargo run --release -p tower-intercom-test-support --features inbox-redis,inbox-postgres --bin inbox_receiver -- MODE`:
//!
//! - `--mode layer`: `VerifyIntercomWebhookLayer` in front of an empty 200
//!   (no inbox): what verifying alone costs over HTTP.
//! - `--mode sqlite --dir DIR`: the layer in front of the SQLite inbox's
//!   receiver (`DIR/inbox.sqlite3`, WAL, `synchronous=FULL`, group commit),
//!   no workers: each 200 waits for a synced commit.
//! - `--mode redis --url redis://HOST:PORT/` (feature `inbox-redis`): the
//!   layer in front of the Redis inbox's receiver, no workers.
//! - `--mode postgres --url postgres://USER@HOST:PORT/DB` (feature
//!   `inbox-postgres`): the layer in front of the Postgres inbox's
//!   receiver (the store's default settings: a pool of 16, group commit),
//!   no workers: each 200 waits for a commit flushed to the write-ahead
//!   log. Refused when the server could lose acknowledged commits
//!   (`fsync` or `synchronous_commit` off).
//! - The URL comes from `--url`, or else from `INBOX_URL` (which keeps a
//!   password off the command line).
//! - `--checkpoint-interval MS` with `sqlite`: the store's
//!   `checkpoint_interval` (default 50 ms).
//! - `--workers C` with an inbox: a worker with a no-op handler and `C`
//!   concurrent notifications runs in the same process while the receiver
//!   answers (its `done` count is in `GET /stats`): do the workers keep up
//!   with the acknowledgements?
//! - `--drain N --concurrency C --dir DIR` (SQLite; or `--mode redis` or
//!   `--mode postgres` with a URL): no server. Stores `N` unique signed
//!   2 KiB notifications through the layer and the receiver (in process,
//!   512 at a time), then runs a worker with a no-op handler and `C`
//!   concurrent notifications until all are done. Prints one `RESULT`
//!   line: the fill rate, the drain rate, and the writer's group commits
//!   of each phase (SQLite's transactions; Postgres's insert statements,
//!   so none while draining; none for Redis).
//!
//! The server answers `GET /stats` with one line: the inbox's counts and
//! its writer's group commits so far (SQLite: transactions; Postgres:
//! insert statements, each its own transaction; none for Redis; `-`
//! without an inbox). The secret comes from `INTERCOM_WEBHOOK_SECRET`, the
//! port from `PORT`.

use std::{
    convert::Infallible,
    env,
    net::SocketAddr,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use bytes::Bytes;
use futures_util::{stream, FutureExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
use tower_intercom::{
    inbox::{handler_fn, Inbox, InboxStore, ReceivedNotification, SqliteStore},
    sign, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
};
use tower_intercom_test_support::bench::{notification, with_unique_id};

const WEBHOOK_PATH: &str = "/webhooks/intercom";

struct Options {
    mode: String,
    dir: Option<String>,
    url: Option<String>,
    drain: Option<u64>,
    concurrency: usize,
    size: usize,
    workers: usize,
    checkpoint_interval: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        mode: String::new(),
        dir: None,
        url: None,
        drain: None,
        concurrency: 16,
        size: 2048,
        workers: 0,
        checkpoint_interval: None,
    };
    let mut args = env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a number, not {value:?}"))
        };
        match flag.as_str() {
            "--mode" => options.mode = value,
            "--dir" => options.dir = Some(value),
            "--url" => options.url = Some(value),
            "--drain" => options.drain = Some(number()?),
            "--concurrency" => options.concurrency = number()? as usize,
            "--size" => options.size = number()? as usize,
            "--workers" => options.workers = number()? as usize,
            "--checkpoint-interval" => options.checkpoint_interval = Some(number()?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if options.mode.is_empty() && options.drain.is_some() {
        // The drain's store when none is named.
        options.mode = "sqlite".into();
    }
    if options.mode.is_empty() {
        return Err("--mode layer|sqlite|redis|postgres, or --drain N, is required".into());
    }
    if options.drain.is_some() && options.mode == "layer" {
        return Err("--drain needs an inbox: --mode sqlite|redis|postgres".into());
    }
    if options.url.is_none() {
        options.url = env::var("INBOX_URL").ok();
    }
    Ok(options)
}

/// An inbox under test: its store, and how the store's writer groups
/// writes into commits (none for Redis, which has no writer of its own).
trait MeasuredStore: InboxStore {
    fn groups(&self) -> Option<Groups>;
}

/// Commits (statements, for Postgres) and the writes they carried so far.
#[derive(Clone, Copy, Default)]
struct Groups {
    commits: u64,
    writes: u64,
    largest: u64,
}

impl MeasuredStore for SqliteStore {
    fn groups(&self) -> Option<Groups> {
        let stats = self.stats();
        Some(Groups {
            commits: stats.commits,
            writes: stats.writes,
            largest: stats.largest,
        })
    }
}

#[cfg(feature = "inbox-redis")]
impl MeasuredStore for tower_intercom::inbox::RedisStore {
    fn groups(&self) -> Option<Groups> {
        None
    }
}

#[cfg(feature = "inbox-postgres")]
impl MeasuredStore for tower_intercom::inbox::PostgresStore {
    fn groups(&self) -> Option<Groups> {
        let batches = self.batches();
        Some(Groups {
            commits: batches.statements,
            writes: batches.inserts,
            largest: batches.largest,
        })
    }
}

/// The SQLite inbox in `--dir`.
fn open_sqlite(options: &Options) -> Result<Inbox<SqliteStore>, String> {
    let mut sqlite = SqliteStore::options();
    if let Some(ms) = options.checkpoint_interval {
        sqlite = sqlite.checkpoint_interval(std::time::Duration::from_millis(ms));
    }
    let dir = options
        .dir
        .as_deref()
        .ok_or("--dir is required for sqlite")?;
    let store = sqlite
        .open(std::path::Path::new(dir).join("inbox.sqlite3"))
        .map_err(|e| e.to_string())?;
    Ok(Inbox::new(store))
}

/// The Redis inbox at `--url` (or `INBOX_URL`).
#[cfg(feature = "inbox-redis")]
async fn connect_redis(
    options: &Options,
) -> Result<Inbox<tower_intercom::inbox::RedisStore>, String> {
    let url = options
        .url
        .as_deref()
        .ok_or("--url is required for redis")?;
    let store = tower_intercom::inbox::RedisStore::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Inbox::new(store))
}

/// The Postgres inbox at `--url` (or `INBOX_URL`), with the store's
/// default settings; refused when Postgres could lose what it acknowledged
/// (`fsync` or `synchronous_commit` off): the figures would not be the
/// durable inbox's.
#[cfg(feature = "inbox-postgres")]
async fn connect_postgres(
    options: &Options,
) -> Result<Inbox<tower_intercom::inbox::PostgresStore>, String> {
    let url = options
        .url
        .as_deref()
        .ok_or("--url (or INBOX_URL) is required for postgres")?;
    // The store's errors never hold the URL or its password.
    let store = tower_intercom::inbox::PostgresStore::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let durability = store.durability().await;
    if !durability.is_durable() {
        return Err(format!(
            "Postgres can lose acknowledged commits ({durability:?}): not measured"
        ));
    }
    Ok(Inbox::new(store))
}

async fn empty_ok(_request: Request<WebhookBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::default()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = async {
        let options = options()?;
        let secret =
            WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET").map_err(|e| e.to_string())?;
        match options.mode.as_str() {
            "layer" => {
                let listener = listen().await?;
                let layer = VerifyIntercomWebhookLayer::new(secret);
                let stats = Arc::new(|| async { "-".to_owned() }.boxed());
                serve(listener, layer.layer(service_fn(empty_ok)), stats).await;
                Ok(())
            }
            "sqlite" => measure(open_sqlite(&options)?, &options, secret).await,
            #[cfg(feature = "inbox-redis")]
            "redis" => measure(connect_redis(&options).await?, &options, secret).await,
            #[cfg(feature = "inbox-postgres")]
            "postgres" => measure(connect_postgres(&options).await?, &options, secret).await,
            mode => Err(format!(
                "--mode {mode}: this build has no such mode (redis needs the inbox-redis \
                 feature, postgres inbox-postgres)"
            )),
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The loopback listener on `PORT` (default 3000).
async fn listen() -> Result<tokio::net::TcpListener, String> {
    let port = env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// `--drain`, or else the receiver (and `--workers`) on `PORT`, over
/// `inbox`.
async fn measure<St: MeasuredStore>(
    inbox: Inbox<St>,
    options: &Options,
    secret: WebhookSecret,
) -> Result<(), String> {
    if let Some(n) = options.drain {
        let drain = Drain {
            secret: &secret,
            n,
            concurrency: options.concurrency,
            size: options.size,
        };
        return drain.run(&inbox).await;
    }
    let listener = listen().await?;
    start_workers(&inbox, options.workers);
    let stats_inbox = inbox.clone();
    let stats = Arc::new(move || {
        let inbox = stats_inbox.clone();
        async move { stats_line(&inbox).await }.boxed()
    });
    let layer = VerifyIntercomWebhookLayer::new(secret);
    serve(listener, layer.layer(inbox.receiver()), stats).await;
    Ok(())
}

/// A worker with a no-op handler, `concurrency` at a time (none for 0).
fn start_workers<St: InboxStore>(inbox: &Inbox<St>, concurrency: usize) {
    if concurrency > 0 {
        // Runs until the process ends.
        drop(
            inbox
                .worker(handler_fn(|_: ReceivedNotification| async {
                    Ok::<_, Infallible>(())
                }))
                .concurrency(concurrency)
                .spawn(std::future::pending()),
        );
    }
}

/// `GET /stats`: the inbox's counts, and its writer's group commits.
async fn stats_line<St: MeasuredStore>(inbox: &Inbox<St>) -> String {
    let counts = match inbox.counts().await {
        Ok(c) => format!(
            "pending={} in_progress={} done={} dead={}",
            c.pending, c.in_progress, c.done, c.dead
        ),
        Err(e) => format!("counts_error={e:?}").replace(' ', "_"),
    };
    match inbox.store().groups() {
        Some(groups) => format!(
            "{counts} commits={} writes={} largest={}\n",
            groups.commits, groups.writes, groups.largest
        ),
        None => counts + "\n",
    }
}

/// A drain measurement: `n` notifications of `size` bytes stored, then a
/// no-op worker with `concurrency` at a time.
struct Drain<'a> {
    secret: &'a WebhookSecret,
    n: u64,
    concurrency: usize,
    size: usize,
}

impl Drain<'_> {
    /// Fills the inbox with `n` notifications, then times a no-op worker
    /// draining it, with the writer's group commits of each phase (zero
    /// for Redis).
    async fn run<St: MeasuredStore>(self, inbox: &Inbox<St>) -> Result<(), String> {
        let Self {
            secret,
            n,
            concurrency,
            size,
        } = self;
        let stats = || inbox.store().groups().unwrap_or_default();
        let template = notification(size);
        let run = std::process::id();
        let requests: Vec<Request<Full<Bytes>>> = (0..n)
            .map(|i| {
                let body = Bytes::from(with_unique_id(&template, run, i));
                let signature = sign(secret, &body);
                Request::post(WEBHOOK_PATH)
                    .header("content-type", "application/json")
                    .header("x-hub-signature", signature)
                    .body(Full::new(body))
                    .expect("a valid request")
            })
            .collect();
        let receiver = VerifyIntercomWebhookLayer::new(secret.clone()).layer(inbox.receiver());
        let before = stats();
        let start = Instant::now();
        let mut refused = 0u64;
        let mut answers = stream::iter(requests)
            .map(|request| receiver.clone().oneshot(request))
            .buffer_unordered(512);
        while let Some(answer) = answers.next().await {
            let answer = answer.map_err(|e| format!("{e:?}"))?;
            if answer.status() != StatusCode::OK {
                refused += 1;
            }
        }
        let fill = start.elapsed().as_secs_f64();
        let filled = stats();
        let counts = inbox.counts().await.map_err(|e| e.to_string())?;
        if counts.pending != n {
            return Err(format!(
                "{} pending after filling {n} ({refused} refused)",
                counts.pending
            ));
        }

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handled = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let worker = inbox
            .worker(handler_fn({
                let handled = handled.clone();
                move |_: ReceivedNotification| {
                    handled.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, Infallible>(()) }
                }
            }))
            .concurrency(concurrency)
            .spawn(async move {
                let _ = stopped.await;
            });
        // The handler's own count first: asking the store for its counts
        // every few milliseconds while it drains would take from what is
        // measured (the counts scan the table: Postgres's, on the load
        // generator's core, SQLite's, on this one). Then the store's
        // counts, until every completion is stored.
        loop {
            if handled.load(Ordering::Relaxed) >= n {
                let counts = inbox.counts().await.map_err(|e| e.to_string())?;
                if counts.done >= n {
                    break;
                }
            }
            if start.elapsed().as_secs() > 600 {
                let counts = inbox.counts().await.map_err(|e| e.to_string())?;
                return Err(format!("not drained after 600 s: {counts:?}"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let drained = start.elapsed().as_secs_f64();
        let after = stats();
        let _ = stop.send(());
        worker.await.map_err(|e| e.to_string())?;
        println!(
            "RESULT fill_rps={:.1} drain_rps={:.1} fill_commits={} fill_writes={} drain_commits={} \
             drain_writes={} largest={}",
            n as f64 / fill,
            n as f64 / drained,
            filled.commits - before.commits,
            filled.writes - before.writes,
            after.commits - filled.commits,
            after.writes - filled.writes,
            after.largest,
        );
        Ok(())
    }
}

type Stats = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, String> + Send + Sync>;

/// Serves `verified` on the webhook path, `GET /stats`, 404 elsewhere.
async fn serve<S, B>(listener: tokio::net::TcpListener, verified: S, stats: Stats)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let app = service_fn(move |request: Request<Incoming>| {
        let verified = verified.clone();
        let stats = stats.clone();
        async move {
            let response = match request.uri().path() {
                WEBHOOK_PATH => match verified.oneshot(request).await {
                    Ok(response) => response.map(Either::Left),
                    Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                },
                "/stats" => status(StatusCode::OK, stats().await),
                _ => status(StatusCode::NOT_FOUND, "not found\n".into()),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let server = auto::Builder::new(TokioExecutor::new());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let connection = server
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = terminate.recv() => break,
        }
    }
}

fn status<B>(status: StatusCode, body: String) -> Response<Either<B, Full<Bytes>>> {
    let mut response = Response::new(Either::Right(Full::from(body)));
    *response.status_mut() = status;
    response
}
