//! Verify Intercom webhooks in any Tower stack: Axum, Hyper, Tonic.
//!
//! Intercom signs each webhook with the app's client secret:
//! `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>`.
//! [`VerifyIntercomWebhookLayer`] checks that signature on the exact bytes
//! received and refuses unsigned and forged requests (401), oversized bodies
//! (413), unreadable ones (400) and other methods than `POST` (405) before
//! your service runs. It answers
//! Intercom's unsigned `HEAD` URL check with 200, accepts several secrets
//! for rotation without downtime, and can check Canvas Kit's
//! `X-Body-Signature` instead.
//!
//! - [`WebhookSecret`]: the client secret, refused when empty, never printed,
//!   zeroized on drop.
//! - [`sign`] and [`verify`] ([`signature`]): the signature on its own, for
//!   tests and tools.
//! - [`VerifyIntercomWebhookLayer`] ([`webhook`]): the middleware; the
//!   [`webhook`] module documents every response it gives, and
//!   [`rejection`] the refusals of every layer.
//! - [`notification`]: the typed envelope Intercom sends (`Notification`,
//!   feature `serde`, on by default) and `Topic`, which knows the
//!   `Permission` each topic needs.
//! - `extract` (feature `axum`): extractors for verified, typed
//!   notifications that refuse requests the layer did not see.
//! - `idempotency` (features `idempotency`, `redis`): each notification
//!   handled once despite Intercom's at-least-once delivery, in memory or on
//!   Redis.
//! - `identity` (feature `identity`): Identity Verification `user_hash` and
//!   Messenger Security JWTs.
//! - `health` (feature `serde`): Intercom's app installation health check,
//!   typed, and a service that answers it.
//! - `metrics` (feature `metrics`): what the layers count, through the
//!   `metrics` facade.
//! - [`AccessToken`]: the REST API bearer token, with the same hygiene as
//!   the secrets.
//! - `client` (feature `client`): a Tower layer for Intercom's REST API
//!   that sends the token to the API host only, paced by the rate limit,
//!   with typed errors, and a ready-made HTTPS client.
//! - `audit` (feature `audit`): Intercom's security checklist as one call
//!   in a test (or one command): leaked tokens in git history, `.env`
//!   files kept out of git, secrets well-formed, least privilege.
//! - `reload` (feature `reload`): every secret read from a file and
//!   reloaded when the file changes, without a restart (Kubernetes
//!   Secrets, Vault Agent); [`WebhookSecrets`] is the set a rotation
//!   needs.
//!
//! # Paths
//!
//! Every item has one home: the module of its capability (`webhook`,
//! `signature`, `rejection`, `notification`, `health`, `extract`,
//! `identity`, `idempotency`, `metrics`, `reload`). The root holds the secret types and configuration
//! errors (their only path), and re-exports six items nearly every
//! receiver names: [`VerifyIntercomWebhookLayer`], [`VerifiedWebhook`],
//! [`WebhookBody`], [`sign`], [`verify`] and [`SignatureScheme`]. Nothing
//! else is re-exported, so a name means one thing in your `use` lines.
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
#[cfg(feature = "audit")]
#[cfg_attr(docsrs, doc(cfg(feature = "audit")))]
pub mod audit;
mod body;
mod box_error;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod config_error;
#[cfg(any(feature = "idempotency", feature = "inbox"))]
mod duplicate;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod health;
#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub mod idempotency;
#[cfg(feature = "identity")]
#[cfg_attr(docsrs, doc(cfg(feature = "identity")))]
pub mod identity;
#[cfg(feature = "inbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
pub mod inbox;
mod mac;
mod measure;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod notification;
#[cfg(any(feature = "redis", feature = "inbox-redis"))]
mod redis_connection;
pub mod rejection;
#[cfg(feature = "reload")]
#[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
pub mod reload;
mod report;
mod secret;
pub mod signature;
mod store_error;
mod warn_limit;
pub mod webhook;

// Secrets, configuration errors and store errors live at the root (their
// only path).
pub use crate::{
    access_token::AccessToken,
    config_error::{ConfigError, ConfigErrorKind},
    secret::{SecretError, SecretErrorKind, WebhookSecret},
    store_error::{StoreError, StoreErrorKind},
    webhook::secrets::WebhookSecrets,
};

// The receiver's vocabulary, also at the root: the layer, what it hands
// the inner service, and the signature functions tests and tools need.
pub use crate::{
    signature::{sign, verify, SignatureScheme},
    webhook::{VerifiedWebhook, VerifyIntercomWebhookLayer, WebhookBody},
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
