//! Verify Intercom webhooks in any Tower stack: Axum, Hyper, Tonic.
//!
//! Intercom signs each webhook with the app's client secret:
//! `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>`.
//! [`VerifyIntercomWebhookLayer`] checks that signature on the exact bytes
//! received and refuses unsigned and forged requests (401), oversized bodies
//! (413) and unreadable ones (400) before your service runs. It answers
//! Intercom's unsigned `HEAD` URL check with 200, accepts several secrets
//! for rotation without downtime, and can check Canvas Kit's
//! `X-Body-Signature` instead.
//!
//! - [`WebhookSecret`]: the client secret, refused when empty, never printed,
//!   zeroized on drop.
//! - [`sign`] and [`verify`]: the signature on its own, for tests and tools.
//! - [`VerifyIntercomWebhookLayer`]: the middleware; the [`webhook`] module
//!   documents every response it gives.
//! - [`notification`]: the typed envelope Intercom sends (`Notification`,
//!   feature `serde`, on by default) and [`Topic`], which knows the
//!   [`Permission`] each topic needs.
//! - `axum` (feature `axum`): extractors for verified, typed notifications
//!   that refuse requests the layer did not see.
//! - `idempotency` (features `idempotency`, `redis`): each notification
//!   handled once despite Intercom's at-least-once delivery, in memory or on
//!   Redis.
//! - `identity` (feature `identity`): Identity Verification `user_hash` and
//!   Messenger Security JWTs.
//! - [`AccessToken`]: the REST API bearer token, with the same hygiene as
//!   the secrets.
//!
//! # Example
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower_intercom::{VerifyIntercomWebhookLayer, WebhookSecret};
//!
//! # fn main() -> Result<(), tower_intercom::SecretError> {
//! # std::env::set_var("INTERCOM_WEBHOOK_SECRET", "doc-example-secret");
//! let secret = WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET")?;
//! let app: Router = Router::new().route(
//!     "/webhooks/intercom",
//!     post(|body: String| async move {
//!         // Only requests signed by Intercom get here.
//!         let _ = body;
//!     })
//!     .layer(VerifyIntercomWebhookLayer::new(secret)),
//! );
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_token;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub mod idempotency;
#[cfg(feature = "identity")]
#[cfg_attr(docsrs, doc(cfg(feature = "identity")))]
pub mod identity;
#[cfg(feature = "inbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
pub mod inbox;
pub mod notification;
mod secret;
pub mod signature;
pub mod webhook;

#[cfg(feature = "axum")]
pub use crate::axum::{VerifiedBody, VerifiedNotification};
#[cfg(feature = "serde")]
pub use crate::notification::Notification;
pub use crate::{
    access_token::AccessToken,
    notification::{Permission, Topic},
    secret::{SecretError, SecretErrorKind, WebhookSecret},
    signature::{sign, verify, SignatureError, SignatureScheme},
    webhook::{
        HeadPolicy, JsonRejection, Rejection, RejectionKind, RejectionResponse, VerifiedWebhook,
        VerifyIntercomWebhook, VerifyIntercomWebhookLayer, WebhookBody, DEFAULT_MAX_BODY_SIZE,
    },
};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::idempotency::RedisStore;
#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub use crate::idempotency::{IdempotencyLayer, IdempotencyStore, MemoryStore};

/// The error type bodies' errors are converted into.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
