//! An Intercom webhook receiver on plain hyper 1 and hyper-util, without a
//! router crate.
//!
//! Run with `cargo run --example hyper` (secret from
//! `INTERCOM_WEBHOOK_SECRET`, port from `PORT`; with no secret, a
//! development secret is generated and a ready `curl` command is printed).
//!
//! Only `/webhooks/intercom` goes through `VerifyIntercomWebhookLayer`;
//! every other path gets 404 without being verified (or buffered).
//!
//! Memory is bounded: the layer buffers at most `MAX_BODY_SIZE` per
//! request, at most `MAX_IN_FLIGHT` webhooks are handled at once (more get
//! 429, which makes Intercom back off and retry instead of counting
//! failures), every webhook must be complete within `REQUEST_TIMEOUT`
//! (slow bodies get 408) and headers within `HEADER_TIMEOUT`. Worst case:
//! `MAX_IN_FLIGHT × MAX_BODY_SIZE`, plus a few KiB per open connection.

mod common;

use std::{borrow::Cow, convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tower::{load_shed::error::Overloaded, service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_intercom::{VerifiedWebhook, WebhookBody};

/// The largest body buffered: far above Intercom's notifications (tens of
/// KiB), far below what would hurt.
const MAX_BODY_SIZE: usize = 1024 * 1024;
/// Webhooks handled at once; beyond it, 429 at once, before reading.
const MAX_IN_FLIGHT: usize = 256;
/// Time for a whole webhook, body and handler included. Intercom gives up
/// after 5 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The envelope fields the handler reads, borrowed from the body; serde
/// skips the rest of the notification without building it.
#[derive(Default, serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    topic: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Cow<'a, str>,
}

/// The webhook handler: it only ever sees verified requests.
pub async fn webhook(request: Request<WebhookBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let verified = request.extensions().get::<VerifiedWebhook>().copied();
    let envelope: Envelope<'_> = serde_json::from_slice(request.body().bytes()).unwrap_or_default();
    tracing::info!(
        topic = %envelope.topic,
        id = %envelope.id,
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

/// 429 when `MAX_IN_FLIGHT` webhooks are already being handled (Intercom
/// backs off and retries), 408 when one was not complete in time.
fn overloaded_or_timed_out(err: BoxError) -> Response<Full<Bytes>> {
    let (status, body) = if err.is::<Overloaded>() {
        (StatusCode::TOO_MANY_REQUESTS, r#"{"error":"overloaded"}"#)
    } else {
        // `tower::timeout::error::Elapsed`: the only other error here.
        (StatusCode::REQUEST_TIMEOUT, r#"{"error":"timed out"}"#)
    };
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    common::init_tracing();
    let settings = common::Settings::from_env()?;
    let listener = settings.listen().await?;

    // The verified stack, outermost first: refuse when full, count the
    // webhook in flight, bound its time, verify (and bound its body), then
    // the handler.
    let verified = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(MAX_IN_FLIGHT)
        .timeout(REQUEST_TIMEOUT)
        .layer(settings.layer.max_body_size(MAX_BODY_SIZE))
        .service(service_fn(webhook));

    // Scope it to one path by hand: other requests never reach the layer.
    let app = service_fn(move |request: Request<Incoming>| {
        let verified = verified.clone();
        async move {
            if request.uri().path() == common::WEBHOOK_PATH {
                let response = match verified.oneshot(request).await {
                    Ok(response) => response.map(Either::Left),
                    Err(err) => overloaded_or_timed_out(err).map(Either::Right),
                };
                Ok::<_, Infallible>(response)
            } else {
                Ok(not_found().map(Either::Right))
            }
        }
    });

    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
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
