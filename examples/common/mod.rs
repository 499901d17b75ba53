//! What every example receiver shares: configuration from the environment,
//! the development secret, and graceful shutdown.
#![allow(dead_code)]

use std::{env, fmt, net::SocketAddr, time::SystemTime};

use tower_intercom::{sign, VerifyIntercomWebhookLayer, WebhookSecret};

/// The path every example serves webhooks on.
pub const WEBHOOK_PATH: &str = "/webhooks/intercom";

/// A receiver's settings, read from the environment.
pub struct Settings {
    /// The verifying layer, with the current (and previous) secret.
    pub layer: VerifyIntercomWebhookLayer,
    /// Set when `INTERCOM_WEBHOOK_SECRET` was unset and a random development
    /// secret was generated.
    pub dev_secret: Option<(String, WebhookSecret)>,
    /// From `PORT`, default 3000.
    pub port: u16,
}

/// Why a receiver could not start or stopped with an error: a clear
/// message instead of a panic. Returned from `main`, it is printed as
/// `Error: <message>` and the process exits with status 1.
pub struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

impl Settings {
    /// Reads `INTERCOM_WEBHOOK_SECRET`, `INTERCOM_WEBHOOK_SECRET_PREVIOUS` and
    /// `PORT`.
    pub fn from_env() -> Result<Self, Failure> {
        let port = match env::var("PORT") {
            Err(_) => 3000,
            Ok(port) => port
                .parse()
                .map_err(|_| Failure(format!("PORT must be a port number, not {port:?}")))?,
        };
        let (current, dev_secret) = match env::var_os("INTERCOM_WEBHOOK_SECRET") {
            Some(_) => (WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET")?, None),
            None => {
                let text = random_secret();
                let secret: WebhookSecret = text.parse()?;
                (secret.clone(), Some((text, secret)))
            }
        };
        let mut previous = Vec::new();
        if env::var_os("INTERCOM_WEBHOOK_SECRET_PREVIOUS").is_some() {
            previous.push(WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET_PREVIOUS")?);
        }
        let layer = VerifyIntercomWebhookLayer::with_secrets(current, previous);
        Ok(Self {
            layer,
            dev_secret,
            port,
        })
    }

    /// The loopback address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Binds the loopback port and announces the receiver.
    pub async fn listen(&self) -> Result<tokio::net::TcpListener, Failure> {
        let addr = self.addr();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|err| Failure(format!("cannot listen on {addr}: {err}")))?;
        self.announce(listener.local_addr()?);
        Ok(listener)
    }

    /// Says where the receiver listens and, with a development secret, how
    /// to send it a signed ping.
    pub fn announce(&self, addr: SocketAddr) {
        let url = format!("http://{addr}{WEBHOOK_PATH}");
        println!("Listening for Intercom webhooks on {url}");
        if let Some((text, secret)) = &self.dev_secret {
            let body = ping_body();
            let signature = sign(secret, body.as_bytes());
            let signature = signature.to_str().expect("hex is ASCII");
            println!();
            println!("WARNING: INTERCOM_WEBHOOK_SECRET is not set.");
            println!("WARNING: using a random DEVELOPMENT secret; Intercom's real deliveries will be refused.");
            println!(
                "WARNING: set INTERCOM_WEBHOOK_SECRET to your app's client secret for real use."
            );
            println!("development secret: {text}");
            println!();
            println!("Send a correctly signed ping:");
            println!(
                "curl -i -X POST {url} -H 'content-type: application/json' -H 'x-hub-signature: {signature}' --data-binary '{body}'"
            );
            println!();
        }
    }
}

/// 32 random bytes, hex-encoded.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// A ping notification as Intercom sends it when a webhook is saved.
pub fn ping_body() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        r#"{{"type":"notification_event","app_id":"dev-app","data":{{"type":"notification_event_data","item":{{"type":"ping","message":"Hello from a local test"}}}},"links":{{}},"id":"notif_dev_{now}","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":{now},"created_at":{now},"self":null}}"#
    )
}

/// Logs to stderr; `RUST_LOG` overrides the default level.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
