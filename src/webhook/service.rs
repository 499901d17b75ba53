use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::{
    collect::Collector, future::ResponseFuture, layer::Config, HeadPolicy, ResponseBody,
    VerifyIntercomWebhookLayer, WebhookBody,
};
use crate::{
    box_error::BoxError,
    mac::Digest,
    rejection::{JsonRejection, RejectionKind, RejectionResponse},
    secret::WebhookSecret,
};

/// Middleware that verifies Intercom's signature on each request before the
/// inner service sees it.
///
/// Built by [`VerifyIntercomWebhookLayer`]; see the [crate
/// documentation](crate) for the behaviour and an example.
#[derive(Clone)]
#[must_use]
pub struct VerifyIntercomWebhook<S, R = JsonRejection> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
    pub(crate) on_rejection: R,
}

impl<S> VerifyIntercomWebhook<S> {
    /// Wraps `inner` with the default settings and one secret.
    pub fn new(inner: S, secret: WebhookSecret) -> Self {
        tower_layer::Layer::layer(&VerifyIntercomWebhookLayer::new(secret), inner)
    }

    /// A [`VerifyIntercomWebhookLayer`] with one secret.
    pub fn layer(secret: WebhookSecret) -> VerifyIntercomWebhookLayer {
        VerifyIntercomWebhookLayer::new(secret)
    }
}

impl<S, R> VerifyIntercomWebhook<S, R> {
    crate::body::define_inner_service_accessors!();
}

impl<S: fmt::Debug, R> fmt::Debug for VerifyIntercomWebhook<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyIntercomWebhook")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("on_rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyIntercomWebhook<S, R>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>> + Clone,
    R: RejectionResponse,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ReqBody, S, R>;

    /// Always ready: the layer reserves nothing of the inner service for a
    /// request it has not verified. The inner service is driven ready by
    /// the response future, once the signature matched.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // `self.inner` is never driven ready here, so a clone is as good as
        // the original: the future drives its own clone ready after
        // verification, and takes whatever the inner service reserves
        // (a permit, a buffer slot) only then.
        let inner = self.inner.clone();
        let config = &*self.config;
        let reject = |on_rejection: &mut R, kind| {
            ResponseFuture::ready(super::reject(on_rejection, kind, config))
        };

        if request.method() == Method::HEAD {
            return match config.head {
                HeadPolicy::Respond => ResponseFuture::ready(head_ok()),
                HeadPolicy::Reject => reject(&mut self.on_rejection, RejectionKind::HeadNotAllowed),
                HeadPolicy::Forward => {
                    let (parts, _body) = request.into_parts();
                    ResponseFuture::call(inner, Request::from_parts(parts, WebhookBody::empty()))
                }
            };
        }
        if request.method() != Method::POST {
            return reject(&mut self.on_rejection, RejectionKind::MethodNotAllowed);
        }

        let expected = match expected_digest(config, &request) {
            Ok(expected) => expected,
            Err(kind) => return reject(&mut self.on_rejection, kind),
        };

        let limit = config.max_body_size;
        let declared = declared_length(&request);
        if declared.is_some_and(|len| len > limit as u64) {
            return reject(&mut self.on_rejection, RejectionKind::PayloadTooLarge);
        }

        let (parts, body) = request.into_parts();
        // Announced, so at most the limit here.
        let announced = declared.map_or(0, |len| len.min(limit as u64) as usize);
        let collector = Collector::new(self.config.clone(), expected, announced);
        ResponseFuture::collect(body, parts, collector, inner, self.on_rejection.clone())
    }
}

/// The empty 200 answered to `HEAD` under [`HeadPolicy::Respond`].
fn head_ok() -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::OK;
    response
}

/// The digest in the request's one signature header, or why there is none.
fn expected_digest<B>(config: &Config, request: &Request<B>) -> Result<Digest, RejectionKind> {
    let mut values = request
        .headers()
        .get_all(config.scheme.header_name())
        .iter();
    let value = values.next().ok_or(RejectionKind::MissingSignature)?;
    if values.next().is_some() {
        return Err(RejectionKind::MultipleSignatures);
    }
    config
        .scheme
        .parse(value.as_bytes())
        .map_err(|_| RejectionKind::MalformedSignature)
}

/// The body length the request announces: its `Content-Length`, or the
/// body's exact size hint. An unparsable `Content-Length` announces nothing
/// (the streaming limit still holds).
fn declared_length<B: Body>(request: &Request<B>) -> Option<u64> {
    let header = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let hint = request.body().size_hint();
    match (header, hint.upper()) {
        (Some(len), _) => Some(len.max(hint.lower())),
        (None, Some(upper)) if upper == hint.lower() => Some(upper),
        (None, _) => (hint.lower() > 0).then_some(hint.lower()),
    }
}
