//! Intercom's app installation health check (feature `serde`).
//!
//! Intercom POSTs `{"workspace_id": "…"}` to an app's health check URL at
//! least daily for each workspace that installed it, signed with
//! `X-Body-Signature` (HMAC-SHA256 of the body, 64 hex digits, no prefix),
//! and expects `{"state": "OK" | "UNHEALTHY" | "UNKNOWN", "message": "…"}`,
//! with a message (at most 2,084 characters) required for `UNHEALTHY`.
//!
//! - [`HealthCheckRequest`]: what Intercom sends.
//! - [`HealthCheckResponse`]: the answer; it cannot be built in a state
//!   Intercom refuses ([`HealthMessage`] is checked when made).
//! - [`HealthCheckService`]: a Tower service that parses the request, runs
//!   your check and answers, for the route behind a
//!   [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer) in
//!   [`SignatureScheme::BodySignature`] mode.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_intercom::{
//!     health::{HealthCheckRequest, HealthCheckResponse, HealthCheckService, HealthMessage},
//!     SignatureScheme, VerifyIntercomWebhookLayer, WebhookSecret,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//! let health = ServiceBuilder::new()
//!     .layer(VerifyIntercomWebhookLayer::new(secret.clone()).scheme(SignatureScheme::BodySignature))
//!     .service(HealthCheckService::new(|request: HealthCheckRequest| async move {
//!         if request.workspace_id == "suspended-workspace" {
//!             HealthCheckResponse::unhealthy(HealthMessage::new("the account is suspended").unwrap())
//!         } else {
//!             HealthCheckResponse::ok()
//!         }
//!     }));
//!
//! let body = r#"{"workspace_id":"abc123de"}"#;
//! let request = Request::post("/intercom/health")
//!     .header("x-body-signature", SignatureScheme::BodySignature.sign(&secret, body.as_bytes()))
//!     .body(Full::new(Bytes::from(body)))?;
//! let response = health.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let json = response.into_body().collect().await?.to_bytes();
//! assert_eq!(json, r#"{"state":"OK"}"#);
//! # Ok(())
//! # }
//! ```

use std::{
    convert::Infallible,
    error::Error,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tower_service::Service;

use crate::{
    rejection::json_error,
    signature::SignatureScheme,
    webhook::{VerifiedWebhook, WebhookBody},
};

/// The most characters Intercom accepts in a health check message.
pub const MAX_MESSAGE_CHARS: usize = 2084;

/// What Intercom sends to the health check URL: `{"workspace_id": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthCheckRequest {
    /// The workspace (app id) whose installation is checked.
    pub workspace_id: String,
}

impl HealthCheckRequest {
    /// A request for `workspace_id`, as Intercom would send it (for tests).
    pub fn new(workspace_id: impl Into<String>) -> Self {
        Self {
            workspace_id: workspace_id.into(),
        }
    }

    /// Parses the request body.
    ///
    /// # Errors
    ///
    /// When the body is not a JSON object with a string `workspace_id`.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// The state an installation is in, as Intercom reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum HealthState {
    /// `OK`: the installation works.
    #[serde(rename = "OK")]
    Ok,
    /// `UNHEALTHY`: it does not; the message says why.
    #[serde(rename = "UNHEALTHY")]
    Unhealthy,
    /// `UNKNOWN`: the app cannot tell.
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

/// A health check message: not blank, at most [`MAX_MESSAGE_CHARS`]
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct HealthMessage(String);

impl HealthMessage {
    /// Checks `message`.
    ///
    /// # Errors
    ///
    /// [`HealthMessageError`] when it is empty or blank, or longer than
    /// [`MAX_MESSAGE_CHARS`] characters.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::health::{HealthMessage, MAX_MESSAGE_CHARS};
    ///
    /// assert!(HealthMessage::new("the API key was revoked").is_ok());
    /// assert!(HealthMessage::new("  ").is_err());
    /// assert!(HealthMessage::new("x".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
    /// ```
    pub fn new(message: impl Into<String>) -> Result<Self, HealthMessageError> {
        let message = message.into();
        if message.trim().is_empty() {
            return Err(HealthMessageError::Blank);
        }
        let chars = message.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(HealthMessageError::TooLong { chars });
        }
        Ok(Self(message))
    }

    /// The message.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a [`HealthMessage`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthMessageError {
    /// The message is empty or only whitespace.
    Blank,
    /// The message is longer than [`MAX_MESSAGE_CHARS`] characters.
    TooLong {
        /// How many characters it has.
        chars: usize,
    },
}

impl fmt::Display for HealthMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blank => f.write_str("a health check message cannot be blank"),
            Self::TooLong { chars } => write!(
                f,
                "a health check message has at most {MAX_MESSAGE_CHARS} characters, not {chars}"
            ),
        }
    }
}

impl Error for HealthMessageError {}

/// The answer to a health check: `{"state": "…", "message": "…"}`.
///
/// Built by [`ok`](Self::ok), [`unknown`](Self::unknown) and
/// [`unhealthy`](Self::unhealthy), which needs a message: no value of this
/// type is one Intercom refuses.
///
/// # Example
///
/// ```
/// use tower_intercom::health::{HealthCheckResponse, HealthMessage, HealthState};
///
/// let answer = HealthCheckResponse::unhealthy(HealthMessage::new("token revoked")?);
/// assert_eq!(answer.state(), HealthState::Unhealthy);
/// assert_eq!(answer.to_json(), r#"{"state":"UNHEALTHY","message":"token revoked"}"#);
///
/// let answer = HealthCheckResponse::unknown().with_message(HealthMessage::new("billing API down")?);
/// assert_eq!(answer.to_json(), r#"{"state":"UNKNOWN","message":"billing API down"}"#);
/// # Ok::<(), tower_intercom::health::HealthMessageError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheckResponse {
    state: HealthState,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<HealthMessage>,
}

impl HealthCheckResponse {
    /// `OK`.
    pub fn ok() -> Self {
        Self {
            state: HealthState::Ok,
            message: None,
        }
    }

    /// `UNKNOWN`.
    pub fn unknown() -> Self {
        Self {
            state: HealthState::Unknown,
            message: None,
        }
    }

    /// `UNHEALTHY`, with the message Intercom requires.
    pub fn unhealthy(message: HealthMessage) -> Self {
        Self {
            state: HealthState::Unhealthy,
            message: Some(message),
        }
    }

    /// Adds or replaces the message (optional for `OK` and `UNKNOWN`).
    #[must_use]
    pub fn with_message(mut self, message: HealthMessage) -> Self {
        self.message = Some(message);
        self
    }

    /// The state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// The message, if any.
    pub fn message(&self) -> Option<&HealthMessage> {
        self.message.as_ref()
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"state":"UNKNOWN"}"#))
    }

    /// The HTTP response: 200 with the JSON body.
    pub fn into_response(self) -> Response<String> {
        let mut response = Response::new(self.to_json());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A Tower service answering Intercom's health check with your `check`.
///
/// Place it behind a [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer)
/// set to [`SignatureScheme::BodySignature`]: a request that did not pass
/// it in that mode is refused with 500 (a misplaced route), and a verified
/// body that is not a health check request with 400. See the [module
/// documentation](self) for an example.
#[derive(Clone)]
pub struct HealthCheckService<F> {
    check: F,
}

impl<F> HealthCheckService<F> {
    /// Answers each health check with `check(request)`.
    pub fn new<Fut>(check: F) -> Self
    where
        F: Fn(HealthCheckRequest) -> Fut,
        Fut: Future<Output = HealthCheckResponse>,
    {
        Self { check }
    }
}

impl<F> fmt::Debug for HealthCheckService<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheckService").finish_non_exhaustive()
    }
}

impl<F, Fut> Service<Request<WebhookBody>> for HealthCheckService<F>
where
    F: Fn(HealthCheckRequest) -> Fut,
    Fut: Future<Output = HealthCheckResponse> + Send + 'static,
{
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<WebhookBody>) -> Self::Future {
        let verified = request
            .extensions()
            .get::<VerifiedWebhook>()
            .is_some_and(|verified| verified.scheme() == SignatureScheme::BodySignature);
        if !verified {
            tracing::error!(
                "HealthCheckService got a request that did not pass \
                 VerifyIntercomWebhookLayer in SignatureScheme::BodySignature mode"
            );
            let response = json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the health check must be behind VerifyIntercomWebhookLayer with X-Body-Signature",
                None,
            )
            .map(into_string);
            return Box::pin(std::future::ready(Ok(response)));
        }
        match HealthCheckRequest::from_slice(request.body().bytes()) {
            Ok(health_check) => {
                let answer = (self.check)(health_check);
                Box::pin(async move { Ok(answer.await.into_response()) })
            }
            Err(err) => {
                let response = json_error(
                    StatusCode::BAD_REQUEST,
                    "not a health check request: expected {\"workspace_id\": \"...\"}",
                    Some((err.line(), err.column())),
                )
                .map(into_string);
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

/// The crate's JSON error bodies are ASCII-safe UTF-8.
fn into_string(body: Bytes) -> String {
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_in_characters() {
        let at_limit = "é".repeat(MAX_MESSAGE_CHARS);
        assert!(HealthMessage::new(at_limit).is_ok());
        assert_eq!(
            HealthMessage::new("é".repeat(MAX_MESSAGE_CHARS + 1)),
            Err(HealthMessageError::TooLong {
                chars: MAX_MESSAGE_CHARS + 1
            })
        );
        assert_eq!(HealthMessage::new(""), Err(HealthMessageError::Blank));
        assert_eq!(HealthMessage::new(" \n"), Err(HealthMessageError::Blank));
    }

    #[test]
    fn responses_serialize_as_intercom_expects() {
        assert_eq!(HealthCheckResponse::ok().to_json(), r#"{"state":"OK"}"#);
        assert_eq!(
            HealthCheckResponse::unknown().to_json(),
            r#"{"state":"UNKNOWN"}"#
        );
        let message = HealthMessage::new("quote \" and \\ escaped").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&HealthCheckResponse::unhealthy(message).to_json()).unwrap();
        assert_eq!(json["state"], "UNHEALTHY");
        assert_eq!(json["message"], "quote \" and \\ escaped");
    }
}
