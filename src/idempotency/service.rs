use std::{
    fmt, mem,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use tower_service::Service;

use super::{
    future::ResponseFuture, layer::Config, Claim, IdempotencyLayer, IdempotencyStore, MemoryStore,
    ResponseBody,
};
use crate::{
    rejection::{respond, JsonRejection, Rejection, RejectionKind, RejectionResponse},
    signature::SignatureScheme,
    webhook::{VerifiedWebhook, WebhookBody},
};

/// Middleware that processes each Intercom notification once, however
/// many times it is delivered.
///
/// Built by [`IdempotencyLayer`]; see the [module documentation](super) for
/// the behaviour and an example.
#[must_use]
pub struct Idempotency<S, St = MemoryStore, R = JsonRejection> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config<St>>,
    pub(crate) on_rejection: R,
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

impl<S, St, R> Idempotency<S, St, R> {
    crate::body::define_inner_service_accessors!();
}

impl<S: Clone, St, R: Clone> Clone for Idempotency<S, St, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<S: fmt::Debug, St, R> fmt::Debug for Idempotency<S, St, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("on_rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, St, R, ResBody> Service<Request<WebhookBody>> for Idempotency<S, St, R>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>> + Clone,
    St: IdempotencyStore,
    R: RejectionResponse,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<WebhookBody>) -> Self::Future {
        // `HEAD` carries no body, hence no id to mark: it passes, verified
        // or not (`HeadPolicy::Forward` sends it unverified).
        if request.method() == Method::HEAD {
            return ResponseFuture::pass(self.inner.call(request));
        }
        let Some(verified) = request.extensions().get::<VerifiedWebhook>().copied() else {
            tracing::error!(
                "IdempotencyLayer got a request that did not pass VerifyIntercomWebhookLayer; \
                 place the verifying layer outside (before) the idempotency layer"
            );
            let rejection = Rejection::new(RejectionKind::NotVerified, SignatureScheme::default());
            return ResponseFuture::ready(respond(&mut self.on_rejection, rejection));
        };
        let Some(claim) = crate::notification::envelope::id_and_topic(request.body().bytes())
            .map(|(id, _)| Claim::new(id))
        else {
            return ResponseFuture::pass(self.inner.call(request));
        };
        // The service that was driven ready goes into the future; a clone
        // stays behind for the next `poll_ready`.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        ResponseFuture::claiming(
            request,
            inner,
            self.config.clone(),
            claim,
            self.on_rejection.clone(),
            verified.scheme(),
        )
    }
}
