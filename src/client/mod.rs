//! A Tower client layer for Intercom's REST API: the access token sent to
//! the API host and nowhere else, paced by Intercom's rate limit.
//!
//! [`IntercomClientLayer`] goes over any HTTP client service
//! (`Service<http::Request<B>>`: hyper-util's client, [`https_client`], a
//! test double). For each request it
//!
//! - takes the token from its [`TokenSource`] once (a fixed
//!   [`AccessToken`](crate::AccessToken), or a source that reloads it: a
//!   request in flight finishes on the token it started with, its retries
//!   included) and sets `Authorization: Bearer …`, marked sensitive;
//! - sets `Intercom-Version` ([`DEFAULT_INTERCOM_VERSION`] unless the layer
//!   or the request says otherwise) and `Accept: application/json` (unless
//!   the request has one);
//! - sends a relative URI (`/contacts/42`) to the [`ApiBase`]: a region's
//!   host, or a URL for a proxy or a local fake API (`INTERCOM_API_URL`,
//!   [`ApiBase::from_env`]).
//!
//! # The token goes to the API host only
//!
//! | request or answer | result | inner service called |
//! |---|---|---|
//! | relative URI | sent to the API base | yes |
//! | absolute URI with the base's scheme, host and port | sent as is | yes |
//! | absolute URI to another scheme, host or port (or with a user) | [`ErrorKind::OffHost`] | **no** |
//! | 3xx whose `Location` stays on the base | returned (the client follows no redirect) | yes |
//! | 3xx whose `Location` leaves it (or cannot be read) | [`ErrorKind::OffHost`]: never followed with the token | yes |
//! | 401, or a `token_…` code | [`ErrorKind::Unauthorized`], with Intercom's codes and `request_id` | yes |
//! | 403 | [`ErrorKind::Forbidden`], likewise | yes |
//! | 429 | held until `X-RateLimit-Reset` and sent again, up to [`rate_limit_retries`](IntercomClientLayer::rate_limit_retries); then [`ErrorKind::RateLimited`] | yes |
//! | the HTTP client fails | [`ErrorKind::Transport`] (sent again only for idempotent methods, [if you opt in](IntercomClientLayer::retry_idempotent_errors)) | yes |
//!
//! Plain `http://` bases are accepted for loopback hosts only.
//!
//! # Rate limits
//!
//! Intercom allows 10,000 requests a minute per app (25,000 per workspace
//! for private apps), spread over 10-second windows, and says in every
//! answer how much of the window is left (`X-RateLimit-Limit`,
//! `X-RateLimit-Remaining`, `X-RateLimit-Reset`). The client keeps the
//! newest window in state shared by every service the layer makes and
//! their clones, counts the requests in flight against it, and when the
//! budget is spent holds new requests in
//! [`poll_ready`](tower_service::Service::poll_ready) (a timer until
//! `Reset`, at most [`max_rate_limit_wait`](IntercomClientLayer::max_rate_limit_wait)),
//! never in a sleep inside `call`. A workload above the limit is slowed to
//! it instead of being refused. Before the first answer the budget is
//! unknown and requests go; a 429 is then sent again after the reset:
//! Intercom does not act on a request it refuses with 429, so this is safe
//! for every method. To send again, the client keeps a copy of each
//! request, so request bodies must be [`Clone`] (`Full<Bytes>`, `String`,
//! `Vec<u8>` are; bodies for Intercom are small JSON documents). Pacing
//! needs a Tokio runtime with its timer, and clocks in sync with
//! Intercom's (NTP): `Reset` is a Unix time.
//!
//! # Checking a token
//!
//! [`IntercomClient::me`] is `GET /me` as a typed answer ([`Me`]): the
//! admin the token belongs to, its app's `id_code`, region and whether
//! Identity Verification is enforced; anything but an admin is an error
//! ([`ErrorKind::NotAdmin`]). [`IntercomClientLayer::check_token`] runs
//! the same check on a token *not in use yet*, with the layer's settings
//! and without touching its token source: what a source that reloads the
//! token runs before it swaps a new one in. `cargo run --example token --
//! check` is the rotation runbook's "verify the new token" step.
//!
//! # The token's age
//!
//! Intercom's tokens never expire and no API says when one was made:
//! [`TokenAge`] takes the time it was issued (`INTERCOM_ACCESS_TOKEN_ISSUED_AT`,
//! RFC 3339, or the token file's modification time) and records the
//! `intercom.client.token.age` gauge; `deploy/prometheus/alerts.yml` asks
//! for a rotation past 90 days.
//!
//! Errors are [`Error`]s: their `Debug` and `Display` show Intercom's
//! status, codes, messages and `request_id`, never the token nor anything
//! else of the answer. With the `metrics` feature the client counts
//! answers by status class, auth failures by Intercom's code, the window's
//! remaining budget, time held by pacing and retries (see
//! `crate::metrics`); `deploy/prometheus/alerts.yml` pages on the first
//! refused token.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{header, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_intercom::{
//!     client::{ErrorKind, IntercomClientLayer},
//!     AccessToken,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let token: AccessToken = "dG9rOmV4YW1wbGU=".parse()?;
//! // In production the inner service is an HTTP client, such as
//! // `tower_intercom::client::https_client()?`; here it shows what it gets.
//! let client = ServiceBuilder::new()
//!     .layer(IntercomClientLayer::new(token))
//!     .service(service_fn(|request: Request<Full<Bytes>>| async move {
//!         assert_eq!(request.uri(), "https://api.intercom.io/contacts/42");
//!         let authorization = &request.headers()[header::AUTHORIZATION];
//!         assert_eq!(authorization, "Bearer dG9rOmV4YW1wbGU=");
//!         assert!(authorization.is_sensitive());
//!         assert_eq!(request.headers()["intercom-version"], "2.14");
//!         assert_eq!(request.headers()[header::ACCEPT], "application/json");
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
//!     }));
//!
//! let request = Request::get("/contacts/42").body(Full::default())?;
//! let response = client.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // Another host never gets the token: the inner service is not called.
//! let request = Request::get("https://example.com/contacts/42").body(Full::default())?;
//! let err = client.oneshot(request).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::OffHost);
//! # Ok(())
//! # }
//! ```

mod age;
mod api;
mod error;
mod future;
mod https;
mod layer;
mod me;
mod measure;
mod rate_limit;
mod retry;
mod service;
mod token;
mod version;

pub use self::{
    age::{TokenAge, ISSUED_AT_VAR},
    api::{ApiBase, Region, API_URL_VAR},
    error::{ApiErrorDetail, Error, ErrorKind},
    future::ResponseFuture,
    https::{https_client, HttpsClient},
    layer::{
        IntercomClientLayer, DEFAULT_MAX_RATE_LIMIT_WAIT, DEFAULT_RATE_LIMIT_RETRIES,
        MAX_RATE_LIMIT_WAIT, MAX_RETRIES,
    },
    me::{App, Me},
    service::IntercomClient,
    token::TokenSource,
    version::{IntercomVersion, DEFAULT_INTERCOM_VERSION},
};
