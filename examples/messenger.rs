//! Run with `cargo run --example messenger` (secret from
//! `INTERCOM_IDENTITY_SECRET`, app id from `INTERCOM_APP_ID`, port from
//! `PORT`; with no secret, a development secret is generated).
//!
//! The server side of the Intercom Messenger's identity check: a small axum
//! server whose `GET /api/intercom-settings` answers what the Messenger
//! needs to know who the signed-in user is (`app_id`, `user_id` and
//! `intercom_user_jwt`: Messenger Security, no `user_hash`), signed with the Messenger security
//! secret, on a response that is never cached. Your page fetches it and
//! boots the Messenger with it.
//!
//! Sign-in here is a DEMO that stands for your real session (cookie,
//! OAuth…): `Authorization: Bearer demo-ada` or `demo-grace`. Anonymous
//! requests get 401 and no hash.
//!
//! ```text
//! curl -i -H 'Authorization: Bearer demo-ada' http://127.0.0.1:3000/api/intercom-settings
//! ```

use std::{env, error::Error, net::SocketAddr, process::ExitCode};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use tokio::net::TcpListener;
use tower_intercom::{
    identity::{IdentitySecret, MessengerJwt, MessengerSettings},
    SecretErrorKind,
};

const SETTINGS_PATH: &str = "/api/intercom-settings";

#[derive(Clone)]
struct AppState {
    /// Your workspace's app id (not a secret: it goes to browsers).
    app_id: String,
    /// The Messenger security secret: it never leaves the server.
    secret: IdentitySecret,
}

/// Who is signed in, as your session knows it.
struct User {
    id: &'static str,
    email: &'static str,
}

/// DEMO sign-in only: a fixed bearer token per demo user stands for your
/// real session. Never do this in production.
fn demo_signed_in_user(headers: &HeaderMap) -> Option<User> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    match token {
        "demo-ada" => Some(User {
            id: "user-ada",
            email: "ada@example.com",
        }),
        "demo-grace" => Some(User {
            id: "user-grace",
            email: "grace@example.com",
        }),
        _ => None,
    }
}

/// The signed-in user's Messenger settings, signed with the identity
/// secret.
fn messenger_settings(state: &AppState, user: &User) -> Result<MessengerSettings, Box<dyn Error>> {
    let jwt = MessengerJwt::new(user.id).email(user.email);
    Ok(MessengerSettings::with_jwt(
        state.app_id.clone(),
        &state.secret,
        &jwt,
    )?)
}

/// `GET /api/intercom-settings`: the settings of the signed-in user, and
/// only theirs; nothing for anonymous requests.
async fn intercom_settings(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(user) = demo_signed_in_user(&headers) else {
        let body = Json(serde_json::json!({ "error": "sign in first" }));
        return (StatusCode::UNAUTHORIZED, body).into_response();
    };
    match messenger_settings(&state, &user) {
        // Per user and secret-derived: no cache may keep it.
        Ok(settings) => ([(header::CACHE_CONTROL, "no-store")], Json(settings)).into_response(),
        Err(err) => {
            tracing::error!(%err, "could not make the Messenger settings");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `INTERCOM_IDENTITY_SECRET`, or a random development secret when unset.
fn identity_secret() -> Result<IdentitySecret, Box<dyn Error>> {
    match IdentitySecret::from_env("INTERCOM_IDENTITY_SECRET") {
        Ok(secret) => Ok(secret),
        Err(err) if err.kind() == SecretErrorKind::NotSet => {
            println!("WARNING: INTERCOM_IDENTITY_SECRET is not set: signing Messenger settings with a random DEVELOPMENT secret (Intercom will not accept them).");
            let bytes: [u8; 32] = rand::random();
            Ok(IdentitySecret::new(hex::encode(bytes))?)
        }
        Err(err) => Err(err.into()),
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let state = AppState {
        app_id: env::var("INTERCOM_APP_ID").unwrap_or_else(|_| "your-app-id".to_owned()),
        secret: identity_secret()?,
    };
    let port = match env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 3000,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let shutdown = shutdown_signal();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    let url = format!("http://{}{SETTINGS_PATH}", listener.local_addr()?);
    println!("Listening for Messenger settings requests on {url}");
    println!("As a signed-in demo user: curl -i -H 'Authorization: Bearer demo-ada' {url}");

    let app = Router::new()
        .route(SETTINGS_PATH, get(intercom_settings))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
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

// Setup, as in the other examples: logs and graceful shutdown.

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
