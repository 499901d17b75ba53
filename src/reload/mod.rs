//! Secrets read from files and reloaded without a restart (feature
//! `reload`): the webhook client secrets, the identity secret and the
//! access token.
//!
//! [`SecretFile`] reads one secret file, parses it with the secret type's
//! own parser, and starts a watcher task that reads the file again every
//! [`DEFAULT_INTERVAL`] (10 s; [`SecretFileBuilder::interval`]). The value
//! in use is replaced only when the file's content changed, is the same on
//! two reads a moment apart, parses, and passes the optional
//! [`Check`] (for an access token, `GET /me`). Anything else — a missing
//! or unreadable file, an empty, blank or malformed secret, a failed or
//! timed out check — leaves the value in use as it is, is logged once at
//! `warn` (the path and the reason, never the content) and counted.
//!
//! [`SecretFile::current`] is a clone of an `Arc`: synchronous, lock-free
//! and cheap, so a request takes the value once and finishes on it while a
//! newer one is swapped in for the next requests.
//!
//! | secret | type | variable naming its file |
//! |---|---|---|
//! | the webhook client secrets (current, then previous ones) | [`SecretFile<WebhookSecrets>`](crate::WebhookSecrets), a [`WebhookSecretSource`](crate::webhook::WebhookSecretSource) for [`VerifyIntercomWebhookLayer::from_source`](crate::VerifyIntercomWebhookLayer::from_source) | `INTERCOM_WEBHOOK_SECRET_FILE` |
//! | the Messenger identity secret (feature `identity`) | `SecretFile<IdentitySecret>` | `INTERCOM_IDENTITY_SECRET_FILE` |
//! | the REST API access token | [`SecretFile<AccessToken>`](crate::AccessToken) | `INTERCOM_ACCESS_TOKEN_FILE` |
//!
//! The variables are conventions (`.env.example`, `examples/axum.rs`): the
//! crate reads no variable itself.
//!
//! # File formats
//!
//! - **Access token, identity secret**: the secret alone. One line ending
//!   at the end (`\n` or `\r\n`, as `echo` and editors write) is not part
//!   of it; any other surrounding whitespace refuses the file, as the
//!   types' parsers refuse it from an environment variable.
//! - **Webhook secrets**: one secret per line, the **current** one first,
//!   then the previous ones still accepted, newest first. Blank lines are
//!   skipped; a line with surrounding whitespace refuses the whole file
//!   (the error names the line); at most [`MAX_SECRETS`] secrets.
//!
//! A file larger than [`MAX_FILE_SIZE`] is refused without being kept in
//! memory. What is read is wiped from memory once parsed.
//!
//! # Rotating the webhook secret with a file
//!
//! One file holds the whole set, so each step of a rotation is one atomic
//! change, and the layer never sees the new secret without the old one:
//!
//! 1. Regenerate the client secret in the Developer Hub and write the file
//!    as `NEW` then `OLD`, one per line. Within an interval both are
//!    accepted (a delivery refused in between is retried by Intercom).
//! 2. Watch `intercom.webhook.verified{secret.index="1"}` (or the `info`
//!    line "verified with a previous secret") until it stops moving.
//! 3. Write the file as `NEW` alone: the old secret is refused from the
//!    next interval on.
//!
//! # Where the files come from
//!
//! The file is opened by its path on every read, so each of these is seen:
//!
//! - **Kubernetes mounted Secrets**: the file is a symlink through `..data`,
//!   which the kubelet points at a new timestamped directory in one atomic
//!   rename. The file's content is compared (by its SHA-256), never only
//!   its modification time or inode. Secrets mounted with `subPath` are
//!   never updated by the kubelet: mount the directory instead.
//! - **Vault Agent, the CSI secrets store driver, cloud secret managers'
//!   agents**: they write a temporary file and rename it over the old one.
//! - **In-place writes** (`echo "$TOKEN" > file`): the file is empty, then
//!   partly written, for a moment. A changed file is taken only once two
//!   reads half an interval apart (at most 250 ms) agree and it parses; an
//!   empty or torn file is never put in use. Prefer a rename where you
//!   can: a writer that stalls mid-file longer than that could still be
//!   read as a shorter secret, until the next interval.
//!
//! # Checks
//!
//! A [`Check`] runs on each new value before it replaces the old one, and
//! on the first value at [`SecretFileBuilder::open`]. For the access
//! token, the API client checks a new token with `GET /me`; a token that
//! answers 401 never replaces a working one:
//!
//! ```
//! use tower_intercom::{reload::{Check, SecretFile}, AccessToken};
//!
//! /// `GET /me` with the token; `Err` unless Intercom answers an admin.
//! async fn me(token: AccessToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     # let _ = token;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("access-token");
//! # std::fs::write(&path, "dG9rOmFiYw==\n")?;
//! let token = SecretFile::<AccessToken>::builder(&path)
//!     .check(|token: &AccessToken| me(token.clone()))
//!     .open()
//!     .await?;
//! # let _ = token;
//! # Ok(())
//! # }
//! ```
//!
//! `SecretFile<AccessToken>` is the API client's token source (with the
//! `client` feature): each request takes the token in use once, and a
//! token Intercom refuses makes the watcher read the file at once
//! ([`SecretFile::wake`]), so that a token already rewritten there is
//! taken without waiting for the interval.
//! [`SecretFile::modified`] is the token's age (Intercom's API tells no
//! token's age).
//!
//! # Metrics
//!
//! With the feature `metrics`: `intercom.secret.reloads` counts the values
//! swapped in and `intercom.secret.reload.failures` the failures (each
//! distinct failure once), both labelled `secret` (`webhook`, `identity`,
//! `access_token`); failures also by `error.type` (`unreadable`,
//! `too_large`, `invalid`, `check`). See [`metrics`](crate::metrics).
//!
//! # Runtime
//!
//! The watcher is a task on the Tokio runtime that
//! [`open`](SecretFileBuilder::open) is called on (its time driver must be
//! enabled, as `#[tokio::main]` does); reads run on its blocking pool. It
//! stops at its next tick once every clone of the [`SecretFile`] (and
//! every layer holding one) is dropped.
//!
//! The value in use is held in an [`arc_swap::ArcSwap`] rather than a
//! `RwLock<Arc<T>>`: reading it takes no lock that readers on many cores
//! contend for, never waits for the watcher's swap, and cannot be
//! poisoned.
//!
//! # Example
//!
//! A webhook layer whose secrets follow a file:
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceExt};
//! use tower_intercom::{
//!     reload::SecretFile, sign, VerifyIntercomWebhookLayer, WebhookBody, WebhookSecret,
//!     WebhookSecrets,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("webhook-secrets");
//! std::fs::write(&path, "old-client-secret\n")?;
//!
//! let secrets = SecretFile::<WebhookSecrets>::builder(&path)
//!     .interval(Duration::from_millis(50))
//!     .open()
//!     .await?;
//! let service = tower::ServiceBuilder::new()
//!     .layer(VerifyIntercomWebhookLayer::from_source(secrets.clone()))
//!     .service(service_fn(|_: Request<WebhookBody>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
//!     }));
//! let deliver = |secret: &str| {
//!     let secret: WebhookSecret = secret.parse().unwrap();
//!     let body = r#"{"type":"notification_event","topic":"ping","id":"notif_1"}"#;
//!     let request = Request::post("/webhooks/intercom")
//!         .header("x-hub-signature", sign(&secret, body.as_bytes()))
//!         .body(Full::new(Bytes::from(body)))
//!         .unwrap();
//!     service.clone().oneshot(request)
//! };
//!
//! // Rotation, step 1: the new secret first, the old one still accepted.
//! std::fs::write(&path, "new-client-secret\nold-client-secret\n")?;
//! while secrets.current().previous().is_empty() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(deliver("new-client-secret").await?.status(), StatusCode::OK);
//! assert_eq!(deliver("old-client-secret").await?.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```

mod check;
mod error;
mod file;
mod format;
mod in_use;
mod read;
mod watch;

use std::time::Duration;

pub use self::{
    check::{Check, CheckError, CheckFuture},
    error::{ReloadError, ReloadErrorKind},
    file::{SecretFile, SecretFileBuilder},
    format::Reloadable,
};

/// How often a secret file is read by default: every 10 seconds.
///
/// A Kubernetes Secret reaches the pod's files a minute or so after it is
/// changed (the kubelet's sync period and cache); 10 s adds little to that,
/// and reading a small file that often costs nothing measurable.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest interval: shorter ones are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest interval (and check timeout): longer ones are lowered to it.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a [`Check`] may take by default: 30 seconds.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest secret file read: 64 KiB. A secret is far smaller; a larger
/// file is a wrong path (a log, a device), refused without being held.
pub const MAX_FILE_SIZE: usize = 64 * 1024;

/// The most secrets a webhook secrets file may list: the current one and
/// seven previous ones. A rotation needs two; each previous secret costs
/// one more HMAC on every request that matches none (forged ones).
pub const MAX_SECRETS: usize = 8;
