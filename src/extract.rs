//! Axum extractors for requests that passed
//! [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer)
//! (feature `axum`).
//!
//! - [`VerifiedNotification<T>`]: the verified body parsed as a
//!   [`Notification<T>`](crate::notification::Notification).
//! - [`VerifiedBody`]: the verified body's exact bytes.
//!
//! Both check the [`VerifiedWebhook`] request extension that only the
//! layer adds. A request without it did not pass the layer (the layer was
//! left off the route, or put on another one): it is refused with 500 and a
//! message saying the layer is missing, never handed to the handler as if
//! it were verified. A body that is not a notification is refused with 400
//! and a message saying what is wrong: not JSON (with serde_json's line and
//! column), not a JSON object, a field of the envelope missing or of the
//! wrong type (`id`, `topic`, `data.item`, …), or a `data.item` that does
//! not fit the extractor's type (with the line and column where it stopped
//! fitting). See [`ExtractorRejection`].
//!
//! The layer has already buffered and bounded the body, so extracting it
//! reads no more than the layer's limit.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, http::{Request, StatusCode}, routing::post, Router};
//! use tower::ServiceExt;
//! use tower_intercom::{sign, extract::VerifiedNotification, VerifyIntercomWebhookLayer, WebhookSecret};
//!
//! async fn webhook(VerifiedNotification(notification): VerifiedNotification) -> StatusCode {
//!     println!("{} {}", notification.topic, notification.id);
//!     StatusCode::OK
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let secret: WebhookSecret = "my-client-secret".parse()?;
//! let app = Router::new()
//!     .route(
//!         "/webhooks/intercom",
//!         post(webhook).layer(VerifyIntercomWebhookLayer::new(secret.clone())),
//!     )
//!     // Forgot the layer: every request is refused with 500.
//!     .route("/webhooks/unprotected", post(webhook));
//!
//! let body = r#"{"type":"notification_event","id":"notif_1","topic":"ping","data":{"item":{"type":"ping"}}}"#;
//! let request = |path: &str| {
//!     Request::post(path)
//!         .header("x-hub-signature", sign(&secret, body.as_bytes()))
//!         .body(Body::from(body))
//! };
//! let response = app.clone().oneshot(request("/webhooks/intercom")?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let response = app.oneshot(request("/webhooks/unprotected")?).await?;
//! assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! # Ok(())
//! # }
//! ```

use std::{
    error::Error,
    fmt,
    ops::{Deref, DerefMut},
};

use axum_core::{
    extract::{FromRequest, Request},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::{
    notification::{validate::Invalid, Notification},
    rejection::json_error,
    webhook::VerifiedWebhook,
};

/// Extractor for a verified webhook, parsed as a
/// [`Notification<T>`](Notification).
///
/// `T` is the type of `data.item`: `serde_json::Value` by default. Refuses
/// requests that did not pass
/// [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer) (500)
/// and bodies that are not a notification with an item of type `T` (400);
/// see [`ExtractorRejection`]. A 400 makes Intercom retry once and then
/// drop the notification, so make `T` as lenient as the data you need
/// (optional fields, or `Value` for topics you do not model).
///
/// To know which secret signed the request (during a rotation), add
/// `Extension<VerifiedWebhook>` to the handler's arguments.
///
/// # Example
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use serde::Deserialize;
/// use tower_intercom::{
///     extract::VerifiedNotification, notification::Topic, VerifiedWebhook,
///     VerifyIntercomWebhookLayer, WebhookSecret,
/// };
///
/// #[derive(Deserialize)]
/// struct Conversation {
///     id: String,
/// }
///
/// async fn conversations(
///     Extension(verified): Extension<VerifiedWebhook>,
///     VerifiedNotification(notification): VerifiedNotification<Conversation>,
/// ) {
///     if notification.topic == Topic::CONVERSATION_USER_CREATED {
///         println!("new conversation {}", notification.data.item.id);
///     }
///     if verified.secret_index() > 0 {
///         println!("signed with the previous secret");
///     }
/// }
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let app: Router = Router::new().route(
///     "/webhooks/intercom/conversations",
///     post(conversations).layer(VerifyIntercomWebhookLayer::new(secret)),
/// );
/// # let _ = app;
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedNotification<T = serde_json::Value>(pub Notification<T>);

impl<T> VerifiedNotification<T> {
    /// The notification.
    pub fn into_inner(self) -> Notification<T> {
        self.0
    }
}

impl<T> Deref for VerifiedNotification<T> {
    type Target = Notification<T>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for VerifiedNotification<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T, S> FromRequest<S> for VerifiedNotification<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ExtractorRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let VerifiedBody(bytes) = VerifiedBody::from_request(request, state).await?;
        match crate::notification::validate::notification(&bytes) {
            Ok(notification) => Ok(Self(notification)),
            Err((invalid, json)) => {
                tracing::warn!(
                    line = invalid.position().map(|(line, _)| line),
                    column = invalid.position().map(|(_, column)| column),
                    category = ?json.as_ref().map(serde_json::Error::classify),
                    "verified Intercom webhook is not a notification of the expected shape: {invalid}"
                );
                Err(ExtractorRejection::invalid(invalid, json))
            }
        }
    }
}

/// Extractor for the exact bytes of a verified webhook body.
///
/// The bytes are the ones the signature was checked on, unchanged: parse
/// them however you like. Refuses requests that did not pass
/// [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer) with
/// 500; see [`ExtractorRejection`].
///
/// # Example
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_intercom::{extract::VerifiedBody, VerifyIntercomWebhookLayer, WebhookSecret};
///
/// async fn archive(VerifiedBody(bytes): VerifiedBody) {
///     // Store the signed bytes as received, e.g. for an audit trail.
///     println!("{} bytes", bytes.len());
/// }
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let app: Router = Router::new().route(
///     "/webhooks/intercom",
///     post(archive).layer(VerifyIntercomWebhookLayer::new(secret)),
/// );
/// # let _ = app;
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBody(pub Bytes);

impl VerifiedBody {
    /// The bytes.
    pub fn into_inner(self) -> Bytes {
        self.0
    }
}

impl Deref for VerifiedBody {
    type Target = Bytes;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S> FromRequest<S> for VerifiedBody
where
    S: Send + Sync,
{
    type Rejection = ExtractorRejection;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if request.extensions().get::<VerifiedWebhook>().is_none() {
            tracing::error!(
                method = %request.method(),
                path = request.uri().path(),
                "refused a request that did not pass VerifyIntercomWebhookLayer: \
                 add the layer to this route"
            );
            return Err(ExtractorRejection::new(
                ExtractorRejectionKind::MissingLayer,
            ));
        }
        // The layer buffered the body within its limit; this only hands the
        // buffered bytes over.
        match request.into_body().collect().await {
            Ok(collected) => Ok(Self(collected.to_bytes())),
            Err(err) => {
                tracing::warn!(error = %err, "could not read a verified webhook body");
                Err(ExtractorRejection::new(
                    ExtractorRejectionKind::BodyUnreadable,
                ))
            }
        }
    }
}

/// Why [`VerifiedNotification`] or [`VerifiedBody`] refused a request.
///
/// Its response is the [`status`](Self::status) and a small JSON object,
/// `{"error":"<message>"}`, with `"line"` and `"column"` for JSON syntax
/// errors and for a `data.item` that does not fit. The message says what
/// is wrong and never repeats any of the body's text; serde_json's own
/// error, which may, is the rejection's [`source`](Error::source), for
/// your logs.
/// It never answers 410 (which would disable the Intercom subscription).
///
/// # Example
///
/// ```
/// use axum::{body::Body, http::{Request, StatusCode}, routing::post, Router};
/// use tower::ServiceExt;
/// use tower_intercom::extract::{ExtractorRejection, ExtractorRejectionKind};
/// use tower_intercom::{sign, extract::VerifiedNotification, VerifyIntercomWebhookLayer, WebhookSecret};
///
/// // Take the rejection to answer in your own way.
/// async fn webhook(
///     notification: Result<VerifiedNotification, ExtractorRejection>,
/// ) -> (StatusCode, String) {
///     match notification {
///         Ok(_) => (StatusCode::OK, String::new()),
///         Err(rejection) if rejection.kind() == ExtractorRejectionKind::InvalidJson => {
///             (rejection.status(), format!("line {:?}: {rejection}", rejection.line()))
///         }
///         Err(rejection) => (rejection.status(), rejection.to_string()),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let app = Router::new().route(
///     "/webhooks/intercom",
///     post(webhook).layer(VerifyIntercomWebhookLayer::new(secret.clone())),
/// );
/// let body = "{\"id\": \"notif_1\",\n \"topic\": }";
/// let request = Request::post("/webhooks/intercom")
///     .header("x-hub-signature", sign(&secret, body.as_bytes()))
///     .body(Body::from(body))?;
/// let response = app.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::BAD_REQUEST);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ExtractorRejection {
    kind: ExtractorRejectionKind,
    invalid: Option<Invalid>,
    json: Option<serde_json::Error>,
}

/// The reason for an [`ExtractorRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExtractorRejectionKind {
    /// The request carries no [`VerifiedWebhook`] extension: the route is
    /// not behind [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer).
    /// 500: a server misconfiguration, never a reason to trust the request.
    MissingLayer,
    /// The verified body is not JSON, not a JSON object, not a notification
    /// envelope (`id`, `topic`, `data.item`, … missing or of the wrong
    /// type), or its `data.item` does not fit the extractor's type. 400.
    InvalidJson,
    /// The body could not be read. 400.
    BodyUnreadable,
}

impl ExtractorRejection {
    fn new(kind: ExtractorRejectionKind) -> Self {
        Self {
            kind,
            invalid: None,
            json: None,
        }
    }

    fn invalid(invalid: Invalid, json: Option<serde_json::Error>) -> Self {
        Self {
            kind: ExtractorRejectionKind::InvalidJson,
            invalid: Some(invalid),
            json,
        }
    }

    /// The reason.
    pub fn kind(&self) -> ExtractorRejectionKind {
        self.kind
    }

    /// The response status: 500 for a missing layer, 400 otherwise.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ExtractorRejectionKind::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            ExtractorRejectionKind::InvalidJson | ExtractorRejectionKind::BodyUnreadable => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// The line (from 1) of a JSON syntax error, or of where `data.item`
    /// stopped fitting the extractor's type.
    pub fn line(&self) -> Option<usize> {
        self.position().map(|(line, _)| line)
    }

    /// The column (from 1) of a JSON syntax error, or of where `data.item`
    /// stopped fitting the extractor's type.
    pub fn column(&self) -> Option<usize> {
        self.position().map(|(_, column)| column)
    }

    fn position(&self) -> Option<(usize, usize)> {
        self.invalid.as_ref().and_then(Invalid::position)
    }
}

impl fmt::Display for ExtractorRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.invalid) {
            (ExtractorRejectionKind::MissingLayer, _) => f.write_str(
                "Intercom webhook verification layer is missing: this route is not behind \
                 tower_intercom::VerifyIntercomWebhookLayer, so the request is refused",
            ),
            (ExtractorRejectionKind::InvalidJson, Some(invalid)) => invalid.fmt(f),
            (ExtractorRejectionKind::InvalidJson, None) => f.write_str("invalid notification JSON"),
            (ExtractorRejectionKind::BodyUnreadable, _) => {
                f.write_str("request body could not be read")
            }
        }
    }
}

impl Error for ExtractorRejection {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.json.as_ref().map(|err| err as &(dyn Error + 'static))
    }
}

impl IntoResponse for ExtractorRejection {
    fn into_response(self) -> Response {
        json_error(self.status(), &self.to_string(), self.position()).map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let missing = ExtractorRejection::new(ExtractorRejectionKind::MissingLayer);
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(missing.to_string().contains("VerifyIntercomWebhookLayer"));
        assert!(missing.source().is_none());

        let body = b"{\n  \"a\": ]";
        let (invalid, json) =
            crate::notification::validate::notification::<serde_json::Value>(body).unwrap_err();
        let invalid = ExtractorRejection::invalid(invalid, json);
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
        assert_eq!((invalid.line(), invalid.column()), (Some(2), Some(8)));
        assert!(invalid.source().is_some());
        let response = invalid.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
