use std::{
    borrow::Cow,
    fmt, mem,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::Deserialize;
use tower_service::Service;

use super::{
    future::ResponseFuture, layer::Config, Claim, IdempotencyLayer, IdempotencyStore, MemoryStore,
    DUPLICATE_HEADER,
};
use crate::{VerifiedWebhook, WebhookBody};

/// Middleware that processes each Intercom notification once, however
/// many times it is delivered.
///
/// Built by [`IdempotencyLayer`]; see the [module documentation](super) for
/// the behaviour and an example.
pub struct Idempotency<S, St = MemoryStore> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config<St>>,
}

impl<S, St: IdempotencyStore> Idempotency<S, St> {
    /// Wraps `inner` with `store` and the default settings.
    pub fn new(inner: S, store: St) -> Self {
        tower_layer::Layer::layer(&IdempotencyLayer::new(store), inner)
    }

    /// An [`IdempotencyLayer`] with `store`.
    pub fn layer(store: St) -> IdempotencyLayer<St> {
        IdempotencyLayer::new(store)
    }
}

impl<S, St> Idempotency<S, St> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for Idempotency<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for Idempotency<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, St, ResBody> Service<Request<WebhookBody>> for Idempotency<S, St>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>> + Clone,
    St: IdempotencyStore,
{
    type Response = Response<crate::webhook::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<WebhookBody>) -> Self::Future {
        // `HEAD` carries no body, hence no id to mark: it passes, verified
        // or not (`HeadPolicy::Forward` sends it unverified).
        if request.method() == Method::HEAD {
            return ResponseFuture::pass(self.inner.call(request));
        }
        if request.extensions().get::<VerifiedWebhook>().is_none() {
            tracing::error!(
                "IdempotencyLayer got a request that did not pass VerifyIntercomWebhookLayer; \
                 place the verifying layer outside (before) the idempotency layer"
            );
            return ResponseFuture::ready(not_verified());
        }
        let Some(id) = notification_id(request.body().bytes()) else {
            return ResponseFuture::pass(self.inner.call(request));
        };
        let claim = Claim::new(id);
        let claiming = self.config.store.claim(&claim, self.config.processing_ttl);
        // The service that was driven ready goes into the future; a clone
        // stays behind for the next `poll_ready`.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        ResponseFuture::claiming(claiming, request, inner, self.config.clone(), claim)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// The notification's `id`: a non-empty string at the top of a JSON object.
pub(crate) fn notification_id(body: &[u8]) -> Option<Cow<'_, str>> {
    serde_json::from_slice::<Envelope<'_>>(body)
        .ok()?
        .id
        .filter(|id| !id.is_empty())
}

fn json(status: StatusCode, message: &'static str) -> Response<Bytes> {
    // The messages are fixed ASCII without quotes or backslashes.
    let mut response = Response::new(Bytes::from(format!("{{\"error\":\"{message}\"}}")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 500: the layer is outside the verifying layer, or not behind it at all.
fn not_verified() -> Response<Bytes> {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        "IdempotencyLayer must be placed inside VerifyIntercomWebhookLayer",
    )
}

/// 200 for a notification already processed: Intercom stops retrying.
pub(crate) fn duplicate() -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    response
        .headers_mut()
        .insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
    response
}

/// 409 while another delivery of the notification is processed: Intercom
/// retries later. Never 410, which disables the subscription.
pub(crate) fn in_progress() -> Response<Bytes> {
    json(
        StatusCode::CONFLICT,
        "this notification is being processed by another delivery",
    )
}

/// 503 under `FailurePolicy::FailClosed` when the store fails.
pub(crate) fn store_unavailable() -> Response<Bytes> {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        "the idempotency store is unavailable",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_the_top_level() {
        assert_eq!(
            notification_id(br#"{"type":"notification_event","id":"notif_1","data":{"id":"x"}}"#)
                .as_deref(),
            Some("notif_1")
        );
        assert_eq!(
            notification_id(br#"{"id":"notif_\u00e9\"q"}"#).as_deref(),
            Some("notif_\u{e9}\"q")
        );
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            b"\"notif_1\"",
            br#"{"data":{"id":"notif_1"}}"#,
            br#"{"id":""}"#,
            br#"{"id":null}"#,
            br#"{"id":42}"#,
            br#"{"id":"a","id":"b"}"#,
            br#"{"id":"notif_1""#,
            b"\xff\xfe",
        ] {
            assert_eq!(notification_id(body), None, "{body:?}");
        }
    }

    #[test]
    fn rejections_are_json_and_never_410() {
        for response in [not_verified(), in_progress(), store_unavailable()] {
            assert_ne!(response.status(), StatusCode::GONE);
            let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert!(json["error"].is_string());
        }
        let duplicate = duplicate();
        assert_eq!(duplicate.status(), StatusCode::OK);
        assert_eq!(duplicate.headers()[DUPLICATE_HEADER], "true");
    }
}
