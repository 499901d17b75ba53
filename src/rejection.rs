//! Why a request was refused, and the response sent for it.
//!
//! One vocabulary for every layer of the crate: the verifying layer
//! ([`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer)) and
//! the idempotency layer refuse requests with a [`Rejection`], build the
//! response with the same [`RejectionResponse`] (the default,
//! [`JsonRejection`], answers a small JSON object), and put the
//! [`Rejection`] in the response's extensions so outer layers can log or
//! count refusals by [`RejectionKind`]. Whatever the response builder
//! returns, 410 is never sent: it disables an Intercom subscription.

use std::{error::Error, fmt};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::signature::SignatureScheme;

/// A request the layer refused, with the reason.
///
/// Handed to [`RejectionResponse`] to build the response, and put in the
/// extensions of that response, so outer layers can log or count
/// rejections by [`kind`](Self::kind).
///
/// # Example
///
/// Counting rejections in an outer layer:
///
/// ```
/// use http::Response;
/// use tower_intercom::{rejection::Rejection, rejection::RejectionKind};
///
/// fn is_forged<B>(response: &Response<B>) -> bool {
///     response
///         .extensions()
///         .get::<Rejection>()
///         .is_some_and(|r| r.kind() == RejectionKind::InvalidSignature)
/// }
/// # let _ = is_forged::<()>;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    scheme: SignatureScheme,
}

/// The reason for a [`Rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request has no signature header. 401.
    MissingSignature,
    /// The request has more than one signature header. 401.
    MultipleSignatures,
    /// The signature header is not in the scheme's format. 401.
    MalformedSignature,
    /// The signature does not match the body with any of the secrets. 401.
    ///
    /// When Intercom's own deliveries end here, the configured secret is
    /// usually not the app's client secret.
    InvalidSignature,
    /// The body is larger than the limit (announced by `Content-Length`, or
    /// found while reading). 413.
    PayloadTooLarge,
    /// Reading the body failed. 400.
    BodyUnreadable,
    /// A `HEAD` request under [`HeadPolicy::Reject`](crate::webhook::HeadPolicy::Reject). 405.
    HeadNotAllowed,
    /// A method other than `POST` (and `HEAD`, which has its own
    /// [`HeadPolicy`](crate::webhook::HeadPolicy)): Intercom sends every
    /// webhook with `POST`. 405, with `Allow`.
    MethodNotAllowed,
    /// The notification's signed `first_sent_at` (or `created_at`) is older
    /// than the layer's [`ReplayWindow`](crate::webhook::ReplayWindow), or
    /// it has neither. 401: the signature is no longer accepted for it.
    Expired,
    /// Another delivery of the same notification is being processed
    /// (idempotency layer). 409: Intercom retries later.
    InProgress,
    /// The idempotency store failed and the layer fails closed. 503:
    /// Intercom retries later.
    StoreUnavailable,
    /// The request did not pass the verifying layer: a layer that needs a
    /// verified body was placed outside it, or without it. 500.
    NotVerified,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, scheme: SignatureScheme) -> Self {
        Self { kind, scheme }
    }

    /// The reason.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The signature scheme the layer was checking.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The status of the default response: 401, 413, 400, 405, 409, 503 or
    /// 500. Never 410, which would disable the Intercom subscription.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::MissingSignature
            | RejectionKind::MultipleSignatures
            | RejectionKind::MalformedSignature
            | RejectionKind::InvalidSignature
            | RejectionKind::Expired => StatusCode::UNAUTHORIZED,
            RejectionKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RejectionKind::BodyUnreadable => StatusCode::BAD_REQUEST,
            RejectionKind::HeadNotAllowed | RejectionKind::MethodNotAllowed => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            RejectionKind::InProgress => StatusCode::CONFLICT,
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::NotVerified => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, fixed message for the reason. It never contains a received
    /// or expected signature.
    pub fn message(&self) -> &'static str {
        let hub = self.scheme == SignatureScheme::HubSignature;
        match (self.kind, hub) {
            (RejectionKind::MissingSignature, true) => "missing X-Hub-Signature header",
            (RejectionKind::MissingSignature, false) => "missing X-Body-Signature header",
            (RejectionKind::MultipleSignatures, true) => "more than one X-Hub-Signature header",
            (RejectionKind::MultipleSignatures, false) => "more than one X-Body-Signature header",
            (RejectionKind::MalformedSignature, true) => {
                "malformed X-Hub-Signature header: expected sha1= and 40 hex digits"
            }
            (RejectionKind::MalformedSignature, false) => {
                "malformed X-Body-Signature header: expected 64 hex digits"
            }
            (RejectionKind::InvalidSignature, _) => "invalid signature",
            (RejectionKind::PayloadTooLarge, _) => "payload too large",
            (RejectionKind::BodyUnreadable, _) => "request body could not be read",
            (RejectionKind::HeadNotAllowed, _) => "HEAD is not allowed",
            (RejectionKind::MethodNotAllowed, _) => {
                "method not allowed: Intercom sends webhooks with POST"
            }
            (RejectionKind::Expired, _) => {
                "notification older than the replay window, or without a timestamp"
            }
            (RejectionKind::InProgress, _) => {
                "this notification is being processed by another delivery"
            }
            (RejectionKind::StoreUnavailable, _) => "the idempotency store is unavailable",
            (RejectionKind::NotVerified, _) => {
                "this layer must be placed inside VerifyIntercomWebhookLayer"
            }
        }
    }
}

impl Error for Rejection {}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingSignature => "missing_signature",
            Self::MultipleSignatures => "multiple_signatures",
            Self::MalformedSignature => "malformed_signature",
            Self::InvalidSignature => "invalid_signature",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::HeadNotAllowed => "head_not_allowed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Expired => "expired",
            Self::InProgress => "in_progress",
            Self::StoreUnavailable => "store_unavailable",
            Self::NotVerified => "not_verified",
        })
    }
}

/// Builds the response for a refused request, for every layer of the crate.
///
/// Implemented by [`JsonRejection`] (the default) and by every
/// `FnMut(&Rejection) -> Response<Bytes> + Clone` closure. Set it with
/// `on_rejection` on [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer)
/// and on the idempotency layer. Whatever it returns, the layer adds the
/// [`Rejection`] to the response's extensions, and a 410 is replaced by the
/// rejection's own status: 410 disables an Intercom subscription.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use tower_intercom::{rejection::Rejection, VerifyIntercomWebhookLayer, WebhookSecret};
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let layer = VerifyIntercomWebhookLayer::new(secret).on_rejection(|rejection: &Rejection| {
///     Response::builder()
///         .status(rejection.status())
///         .header("content-type", "text/plain")
///         .body(Bytes::from(format!("refused: {rejection}\n")))
///         .unwrap()
/// });
/// # let _ = layer;
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
pub trait RejectionResponse: Clone {
    /// The response for `rejection`.
    fn response(&mut self, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> RejectionResponse for F
where
    F: FnMut(&Rejection) -> Response<Bytes> + Clone,
{
    fn response(&mut self, rejection: &Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// The default rejection response: the rejection's status and a small JSON
/// object, `{"error":"<message>"}`, with `content-type: application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRejection;

impl RejectionResponse for JsonRejection {
    fn response(&mut self, rejection: &Rejection) -> Response<Bytes> {
        json_error(rejection.status(), rejection.message(), None)
    }
}

/// The crate's one JSON error body: `{"error":"<message>"}`, with
/// `"line"` and `"column"` when a position is given, and
/// `content-type: application/json`.
pub(crate) fn json_error(
    status: StatusCode,
    message: &str,
    position: Option<(usize, usize)>,
) -> Response<Bytes> {
    let mut body = String::with_capacity(message.len() + 48);
    body.push_str("{\"error\":\"");
    escape_json_into(&mut body, message);
    body.push('"');
    if let Some((line, column)) = position {
        body.push_str(&format!(",\"line\":{line},\"column\":{column}"));
    }
    body.push('}');
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `text` as the inside of a JSON string (RFC 8259, section 7).
fn escape_json_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
}

/// Builds the response for `rejection` with the user's builder and
/// enforces the crate's guarantees on it: never 410, and the [`Rejection`]
/// in the extensions. The caller reports the rejection.
pub(crate) fn respond<R: RejectionResponse>(
    on_rejection: &mut R,
    rejection: Rejection,
) -> Response<Bytes> {
    let mut response = on_rejection.response(&rejection);
    if response.status() == StatusCode::GONE {
        tracing::warn!(
            reason = %rejection.kind(),
            "a custom rejection answered 410, which disables the Intercom subscription; sending {} instead",
            rejection.status().as_u16()
        );
        *response.status_mut() = rejection.status();
    }
    response.extensions_mut().insert(rejection);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [RejectionKind; 12] = [
        RejectionKind::MissingSignature,
        RejectionKind::MultipleSignatures,
        RejectionKind::MalformedSignature,
        RejectionKind::InvalidSignature,
        RejectionKind::PayloadTooLarge,
        RejectionKind::BodyUnreadable,
        RejectionKind::HeadNotAllowed,
        RejectionKind::MethodNotAllowed,
        RejectionKind::Expired,
        RejectionKind::InProgress,
        RejectionKind::StoreUnavailable,
        RejectionKind::NotVerified,
    ];

    #[test]
    fn default_bodies_are_valid_json_and_tell_reasons_apart() {
        let mut bodies = std::collections::HashSet::new();
        for scheme in [
            SignatureScheme::HubSignature,
            SignatureScheme::BodySignature,
        ] {
            for kind in KINDS {
                let response = JsonRejection.response(&Rejection::new(kind, scheme));
                assert_ne!(response.status(), StatusCode::GONE);
                assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
                let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
                let message = json["error"].as_str().unwrap().to_owned();
                assert_eq!(json.as_object().unwrap().len(), 1);
                bodies.insert(message);
            }
        }
        assert_eq!(
            bodies.len(),
            2 * KINDS.len() - 9,
            "messages must differ per reason"
        );
    }

    #[test]
    fn json_errors_escape_what_json_needs() {
        let response = json_error(
            StatusCode::BAD_REQUEST,
            "a \"quote\", a \\ and a\nline\u{1}",
            Some((2, 8)),
        );
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(json["error"], "a \"quote\", a \\ and a\nline\u{1}");
        assert_eq!(
            (json["line"].as_u64(), json["column"].as_u64()),
            (Some(2), Some(8))
        );
    }

    #[test]
    fn a_custom_410_is_never_sent() {
        let mut gone = |_: &Rejection| {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::GONE;
            response
        };
        let rejection = Rejection::new(
            RejectionKind::InvalidSignature,
            SignatureScheme::HubSignature,
        );
        let response = respond(&mut gone, rejection);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.extensions().get::<Rejection>(), Some(&rejection));
    }
}
