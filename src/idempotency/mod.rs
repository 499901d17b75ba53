//! Exactly-once processing of Intercom's at-least-once deliveries.
//!
//! Intercom delivers each notification at least once: after a slow or
//! failed response it sends the same notification `id` again (with a new
//! `delivery_attempts`, so the body and signature differ). [`IdempotencyLayer`]
//! remembers each `id` in an [`IdempotencyStore`] and calls your service
//! once per notification:
//!
//! | request | response | inner service called |
//! |---|---|---|
//! | first delivery of an `id` | the inner service's | yes |
//! | `id` already processed (inner answered 2xx) | 200, empty, `x-intercom-duplicate: true` ([`DUPLICATE_HEADER`]) | no |
//! | `id` being processed by another request | 409 (Intercom retries later) | no |
//! | delivery after the inner service answered non-2xx, failed, or was dropped | the inner service's | yes, again |
//! | body without a string `id`, or not JSON | the inner service's | yes, every time |
//! | `HEAD` | the inner service's | yes |
//! | no [`VerifiedWebhook`](crate::VerifiedWebhook) extension | 500 | no |
//!
//! The 409, 503 and 500 are [`Rejection`](crate::rejection::Rejection)s,
//! built by the same [`RejectionResponse`](crate::rejection::RejectionResponse)
//! as the verifying layer's (replace it with
//! [`IdempotencyLayer::on_rejection`]) and carried in the response's
//! extensions.
//! | store failed, [`FailurePolicy::FailOpen`] (default) | the inner service's | yes, without deduplication |
//! | store failed, [`FailurePolicy::FailClosed`] | 503 (Intercom retries later) | no |
//!
//! Per `id`, a *claim* (atomic, for [`processing_ttl`](IdempotencyLayer::processing_ttl),
//! default 30 s) is taken before the inner service is called. When the
//! inner service answers 2xx, the `id` is marked *done* (for
//! [`done_ttl`](IdempotencyLayer::done_ttl), default 24 h) before the
//! response is sent; otherwise, or if the request is dropped because the
//! client went away, the claim is released so Intercom's retry is processed.
//! Nothing is lost, and nothing processed successfully is processed twice
//! while the store remembers it. The layer never answers 410, which would
//! disable the subscription.
//!
//! # Placement
//!
//! The layer trusts the `id` only in a body whose signature was checked:
//! place it *inside* [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer),
//! which passes it a `Request<WebhookBody>`. A request without the
//! [`VerifiedWebhook`](crate::VerifiedWebhook) marker is refused with 500,
//! so nobody can mark an `id` as handled with a forged request. With axum,
//! stack both in one [`ServiceBuilder`](https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html),
//! verifying layer first:
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower::ServiceBuilder;
//! use tower_intercom::{idempotency::IdempotencyLayer, VerifyIntercomWebhookLayer, WebhookSecret};
//!
//! # fn main() -> Result<(), tower_intercom::SecretError> {
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//! let app: Router = Router::new().route(
//!     "/webhooks/intercom",
//!     post(|body: String| async move {
//!         // Runs once per notification.
//!         let _ = body;
//!     })
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(VerifyIntercomWebhookLayer::new(secret))
//!             .layer(IdempotencyLayer::in_memory()),
//!     ),
//! );
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # Stores
//!
//! - [`MemoryStore`], the default: bounded, entries expire, in this
//!   process only.
//! - `RedisStore` (feature `redis`): shared by every receiver using the same
//!   Redis, so a notification delivered to two machines at once is
//!   processed once. Each operation has a timeout.
//!   `RedisStore::connect(url).await?` with the default settings, or
//!   `RedisStore::options()` (`key_prefix`, `timeout`) then
//!   `.connect(url).await?`, or `.with_connection(connection)` for a
//!   connection you made.
//! - Your own: implement [`IdempotencyStore`].
//!
//! The layer needs a Tokio runtime only to release or complete the claim
//! of a request dropped mid-flight with a store that cannot do it at once
//! (Redis); [`MemoryStore`] does it at once.
//!
//! # Example
//!
//! ```
//! use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_intercom::{
//!     idempotency::{IdempotencyLayer, MemoryStore, DUPLICATE_HEADER},
//!     sign, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let service = ServiceBuilder::new()
//!     .layer(VerifyIntercomWebhookLayer::new(secret.clone()))
//!     .layer(IdempotencyLayer::new(MemoryStore::new()))
//!     .service(service_fn(move |_request: Request<WebhookBody>| {
//!         counter.fetch_add(1, Ordering::SeqCst);
//!         async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new()))) }
//!     }));
//!
//! // The same notification, delivered twice.
//! for attempt in 1..=2 {
//!     let body = format!(r#"{{"type":"notification_event","id":"notif_1","delivery_attempts":{attempt}}}"#);
//!     let request = Request::post("/webhooks/intercom")
//!         .header("x-hub-signature", sign(&secret, body.as_bytes()))
//!         .body(Full::new(Bytes::from(body)))?;
//!     let response = service.clone().oneshot(request).await?;
//!     assert_eq!(response.status(), StatusCode::OK);
//!     assert_eq!(response.headers().contains_key(DUPLICATE_HEADER), attempt == 2);
//! }
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod store;

crate::body::define_response_body! {
    /// The response body of [`Idempotency`]: the inner service's body, or
    /// the body of an answer the layer wrote itself (a duplicate's empty
    /// 200, a refusal).
    ResponseBody
}

// The duplicate's answer is the inbox's too; its header is named here.
pub use crate::duplicate::DUPLICATE_HEADER;

pub use self::{
    future::ResponseFuture,
    layer::{
        FailurePolicy, IdempotencyLayer, DEFAULT_DONE_TTL, DEFAULT_PROCESSING_TTL, MAX_TTL, MIN_TTL,
    },
    memory::{MemoryStore, DEFAULT_CAPACITY},
    service::Idempotency,
    store::{Claim, ClaimOutcome, IdempotencyStore, StoreFuture},
};

// The stores' error, public at the root; the store modules name it here.
use crate::store_error::StoreError;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisOptions, RedisStore, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT};
