//! An Intercom webhook receiver on plain hyper 1 and hyper-util, without a
//! router crate.
//!
//! Run with `cargo run --example hyper` (secret from
//! `INTERCOM_WEBHOOK_SECRET`, port from `PORT`; with no secret, a
//! development secret is generated and a ready `curl` command is printed).
//!
//! Only `/webhooks/intercom` goes through `VerifyIntercomWebhookLayer`;
//! every other path gets 404 without being verified (or buffered).

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_intercom::{VerifiedWebhook, WebhookBody};

/// The webhook handler: it only ever sees verified requests.
async fn webhook(request: Request<WebhookBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let verified = request.extensions().get::<VerifiedWebhook>().copied();
    let envelope: serde_json::Value =
        serde_json::from_slice(request.body().bytes()).unwrap_or_default();
    tracing::info!(
        topic = envelope["topic"].as_str().unwrap_or("-"),
        id = envelope["id"].as_str().unwrap_or("-"),
        secret_index = verified.map(|v| v.secret_index()),
        "received Intercom notification"
    );
    Ok(Response::new(Full::default()))
}

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::from("not found\n"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    common::init_tracing();
    let settings = common::Settings::from_env()?;
    let listener = settings.listen().await?;

    // The verified stack: the layer in a `ServiceBuilder`, then the handler.
    let verified = ServiceBuilder::new()
        .layer(settings.layer)
        .service(service_fn(webhook));

    // Scope it to one path by hand: other requests never reach the layer.
    let app = service_fn(move |request: Request<Incoming>| {
        let verified = verified.clone();
        async move {
            if request.uri().path() == common::WEBHOOK_PATH {
                let response = verified.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(Either::Left))
            } else {
                Ok(not_found().map(Either::Right))
            }
        }
    });

    let server = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
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
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
    Ok(())
}
