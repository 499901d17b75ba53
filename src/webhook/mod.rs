//! Middleware that verifies Intercom's webhook signature before the inner
//! service runs.
//!
//! [`VerifyIntercomWebhookLayer`] buffers the request body (up to a limit),
//! feeding each frame to the HMAC as it arrives, and checks the signature
//! header. Only a request whose signature matches reaches the inner service,
//! with the same method, URI, version, headers and body bytes, and a
//! [`VerifiedWebhook`] extension. Everything else is answered by the layer:
//!
//! | request | response | inner service called |
//! |---|---|---|
//! | valid signature | the inner service's | yes |
//! | `HEAD` ([`HeadPolicy::Respond`], the default) | 200, empty | no |
//! | any method but `POST` and `HEAD` | 405 with `Allow: POST, HEAD` (`POST` under [`HeadPolicy::Reject`]), body not read | no |
//! | no signature header, or more than one | 401 | no |
//! | malformed signature (not `sha1=` + 40 hex, `sha256=…`, empty, non-ASCII) | 401 | no |
//! | signature that matches no secret | 401 | no |
//! | signed notification (`X-Hub-Signature`), but older than the opt-in [`ReplayWindow`] (or undated) | 401 | no |
//! | `Content-Length` above the limit | 413, body not read | no |
//! | body grows past the limit while read | 413, reading stops there | no |
//! | error while reading the body | 400 | no |
//!
//! Header checks happen before a single body byte is polled. Rejections are
//! small JSON objects (see [`JsonRejection`](crate::rejection::JsonRejection); replace them with
//! [`VerifyIntercomWebhookLayer::on_rejection`]), carry a [`Rejection`] in
//! their extensions and are reported through `tracing`: each at `debug`
//! under the target `tower_intercom::rejection`, and each reason at `warn`
//! the first time and then at most once per
//! [`warn_interval`](VerifyIntercomWebhookLayer::warn_interval), with a
//! count of the rest. The layer never
//! answers 410, which would disable the Intercom subscription.
//!
//! # Memory
//!
//! A request refused for its headers or its `Content-Length` costs nothing:
//! its body is never read. Otherwise the layer holds the body it has read so
//! far, and never more than the limit
//! ([`max_body_size`](VerifyIntercomWebhookLayer::max_body_size), 2 MiB by
//! default): a one-frame body is the frame itself, a body in several frames
//! is copied into one buffer that grows with the bytes that arrive, at most
//! 64 KiB ahead of them and never past the announced `Content-Length` or
//! the limit. An announced length reserves nothing by itself: a client
//! that announces 2 MiB and sends ten bytes holds ten bytes (plus the
//! step), not 2 MiB. So the memory of the webhooks in flight is at most
//!
//! > limit × webhooks in flight + a few KiB per connection (the server's own
//! > buffers)
//!
//! and you cap it with the limit, a concurrency limit, and a timeout that
//! ends slow bodies. Answer 429 when the concurrency limit is reached:
//! Intercom then backs off and retries, instead of counting failures.
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{load_shed::error::Overloaded, service_fn, BoxError, ServiceBuilder, ServiceExt};
//! use tower_intercom::{sign, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//! // At most 256 × 1 MiB buffered, each webhook done within 5 s.
//! let webhooks = ServiceBuilder::new()
//!     .load_shed() // when 256 are in flight: an `Overloaded` error at once
//!     .concurrency_limit(256)
//!     .timeout(Duration::from_secs(5)) // slow bodies included
//!     .layer(VerifyIntercomWebhookLayer::new(secret.clone()).max_body_size(1024 * 1024))
//!     .service(service_fn(|_: Request<WebhookBody>| async {
//!         Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
//!     }));
//!
//! // Turn the limits' errors into answers Intercom understands.
//! let status_for = |err: BoxError| {
//!     if err.is::<Overloaded>() {
//!         StatusCode::TOO_MANY_REQUESTS // Intercom backs off and retries
//!     } else {
//!         StatusCode::REQUEST_TIMEOUT // tower::timeout::error::Elapsed
//!     }
//! };
//!
//! let body = r#"{"type":"notification_event","topic":"ping","id":"notif_1"}"#;
//! let request = Request::post("/webhooks/intercom")
//!     .header("x-hub-signature", sign(&secret, body.as_bytes()))
//!     .body(Full::new(Bytes::from(body)))?;
//! let status = match webhooks.oneshot(request).await {
//!     Ok(response) => response.status(),
//!     Err(err) => status_for(err),
//! };
//! assert_eq!(status, StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/hyper.rs` serves exactly this stack, with hyper's own header
//! read timeout; `scripts/memory.sh` floods it and prints its resident
//! memory. `examples/axum.rs` applies the same limits to its axum router
//! (`HandleErrorLayer` turns their errors into 429 and 408) and serves it
//! with hyper-util's connection builder, for the header read timeout that
//! `axum::serve` does not set.
//!
//! # Verify, then reserve
//!
//! The layer is always ready ([`poll_ready`](tower_service::Service::poll_ready)
//! reserves nothing) and drives the inner service ready only once the
//! signature has matched. So whatever the inner service reserves when it is
//! driven ready (a `ConcurrencyLimit` permit, a `Buffer` slot, a
//! `RateLimit` token) is never held by a request that has not been
//! verified: a forged request whose body stalls cannot starve Intercom's
//! deliveries of the handler's capacity.
//!
//! This is a deliberate difference from tower-http's
//! `AsyncRequireAuthorization`, which drives the inner service ready first
//! and carries the reserved service while it authorizes. That is the right
//! trade for a cheap check on headers; here the check needs the whole body,
//! which an attacker can make as slow as a timeout allows.
//!
//! Where limits belong, then:
//!
//! - **Outside** the layer, what must bound *every* request, verified or
//!   not: the concurrency limit and load shedding that cap the bodies being
//!   read (memory), and the timeouts that end slow bodies, as above.
//! - **Inside** the layer, what protects the handler and whatever it calls
//!   (a database pool, a rate limit towards another API): only verified
//!   requests take from it.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_intercom::{sign, VerifiedWebhook, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(VerifyIntercomWebhookLayer::new(secret.clone()))
//!     .service(service_fn(|request: Request<WebhookBody>| async move {
//!         // Only verified requests get here.
//!         assert!(request.extensions().get::<VerifiedWebhook>().is_some());
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
//!     }));
//!
//! let body = r#"{"type":"notification_event","topic":"ping","id":"notif_1"}"#;
//! let signed = Request::post("/webhooks/intercom")
//!     .header("x-hub-signature", sign(&secret, body.as_bytes()))
//!     .body(Full::new(Bytes::from(body)))?;
//! let response = service.clone().oneshot(signed).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let forged = Request::post("/webhooks/intercom")
//!     .header("x-hub-signature", "sha1=0000000000000000000000000000000000000000")
//!     .body(Full::new(Bytes::from(body)))?;
//! let response = service.oneshot(forged).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod body;
mod collect;
mod future;
mod layer;
#[cfg(feature = "serde")]
mod replay;
// `WebhookSecrets` is re-exported at the crate root, with the other
// secret types.
pub(crate) mod secrets;
mod service;

use bytes::Bytes;
use http::Response;

use crate::{
    rejection::{respond, Rejection, RejectionKind, RejectionResponse},
    signature::SignatureScheme,
};

pub use self::{
    body::{ResponseBody, WebhookBody},
    future::ResponseFuture,
    layer::{HeadPolicy, VerifyIntercomWebhookLayer, DEFAULT_MAX_BODY_SIZE, LARGEST_MAX_BODY_SIZE},
    secrets::WebhookSecretSource,
    service::VerifyIntercomWebhook,
};

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use self::replay::{DedupeMemory, DeliveryRate, ReplayWindow, DEFAULT_DELIVERY_RATE};

/// Reports a refused request (see [`warn_interval`](VerifyIntercomWebhookLayer::warn_interval))
/// and builds its response: the one place where the verifying layer
/// refuses.
pub(crate) fn reject<R: RejectionResponse>(
    on_rejection: &mut R,
    kind: RejectionKind,
    config: &layer::Config,
) -> Response<Bytes> {
    let rejection = Rejection::new(kind, config.scheme);
    config.reports.report(&rejection);
    crate::measure::webhook_rejected(kind);
    let mut response = respond(on_rejection, rejection);
    if matches!(
        kind,
        RejectionKind::MethodNotAllowed | RejectionKind::HeadNotAllowed
    ) {
        // A 405 says what is allowed (RFC 9110, 15.5.6), whoever built it.
        response
            .headers_mut()
            .entry(http::header::ALLOW)
            .or_insert_with(|| config.head.allow());
    }
    response
}

/// Proof that a request passed [`VerifyIntercomWebhook`]: a request
/// extension on every request the layer let through.
///
/// Only the layer can create one, so handlers and further middleware can
/// refuse requests that lack it (for instance when the layer was left out
/// of a route by mistake).
///
/// # Example
///
/// ```
/// use http::Request;
/// use tower_intercom::{VerifiedWebhook, WebhookBody};
///
/// fn handle(request: Request<WebhookBody>) -> Result<(), &'static str> {
///     let verified = request
///         .extensions()
///         .get::<VerifiedWebhook>()
///         .ok_or("the request did not pass VerifyIntercomWebhookLayer")?;
///     if verified.secret_index() > 0 {
///         // Still signed with the previous secret: the rotation is not over.
///     }
///     Ok(())
/// }
/// assert!(handle(Request::new(WebhookBody::empty())).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedWebhook {
    secret_index: usize,
    scheme: SignatureScheme,
}

impl VerifiedWebhook {
    pub(crate) fn new(secret_index: usize, scheme: SignatureScheme) -> Self {
        Self {
            secret_index,
            scheme,
        }
    }

    /// Which secret signed the request, by its position in
    /// [`VerifyIntercomWebhookLayer::with_secrets`] (or in the
    /// [`WebhookSecrets`](crate::WebhookSecrets) its source gave): 0 for
    /// the first (the current one).
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }

    /// The signature that was checked.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
