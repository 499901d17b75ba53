use std::{
    fmt, mem,
    sync::Arc,
    task::{ready, Context, Poll},
};

use http::{
    header::{ACCEPT, AUTHORIZATION},
    HeaderName, HeaderValue, Request, Response,
};
use http_body::Body;
use tower_service::Service;

use super::{
    future::ResponseFuture,
    layer::{Config, Shared},
    rate_limit::{Pacer, Permit},
    Error, IntercomClientLayer, TokenSource,
};
use crate::{access_token::AccessToken, box_error::BoxError};

/// Middleware for Intercom's REST API over an HTTP client service: sets
/// the bearer token, `Intercom-Version` and `Accept`, sends relative URIs
/// to the API base and nowhere else, paces requests by the rate limit and
/// turns refusals into [`Error`]s.
///
/// Built by [`IntercomClientLayer`] (or [`IntercomClient::https`]); see the
/// [module documentation](super) for the behaviour and an example.
#[must_use]
pub struct IntercomClient<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    /// This clone's wait for a permit, and the permit `poll_ready`
    /// reserved for the next `call`.
    pub(crate) pacer: Pacer,
    pub(crate) permit: Option<Permit>,
}

impl<S> IntercomClient<S> {
    /// Wraps `inner` with the default settings (see
    /// [`IntercomClientLayer::new`]).
    pub fn new(inner: S, token: impl TokenSource) -> Self {
        tower_layer::Layer::layer(&IntercomClientLayer::new(token), inner)
    }

    /// An [`IntercomClientLayer`] sending the token of `token`.
    pub fn layer(token: impl TokenSource) -> IntercomClientLayer {
        IntercomClientLayer::new(token)
    }

    crate::body::define_inner_service_accessors!();
}

impl<S: Clone> Clone for IntercomClient<S> {
    /// A clone sharing the settings and the rate-limit budget; it reserves
    /// its own permit in `poll_ready`.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            pacer: Pacer::default(),
            permit: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for IntercomClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntercomClient")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for IntercomClient<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: Clone,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = Error;
    type Future = ResponseFuture<S, B>;

    /// Ready once the rate limit admits a request (its permit is kept for
    /// the next `call`) and the inner service is ready. While the window's
    /// budget is spent, this waits (a timer until `X-RateLimit-Reset`, or
    /// the next answer), so a `ServiceBuilder` buffer or a
    /// `ready().await` loop is held, not a task sleeping in `call`.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() {
            let permit = ready!(self.pacer.poll_acquire(&self.shared.limiter, cx));
            self.permit = Some(permit);
        }
        self.inner.poll_ready(cx).map_err(Error::transport)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let token = self.shared.token.token();
        let request = match prepare(request, &self.shared.config, &token) {
            Ok(request) => request,
            // Nothing was sent: the permit stays reserved for the next call.
            Err(err) => return ResponseFuture::failed(err),
        };
        let copy = self.shared.config.retries().then(|| request.clone());
        // The inner service that was driven ready goes with this request;
        // this middleware keeps a clone for the next one.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        ResponseFuture::new(
            inner,
            request,
            copy,
            self.permit.take(),
            token,
            self.shared.clone(),
        )
    }
}

/// `Intercom-Version`.
fn intercom_version() -> HeaderName {
    HeaderName::from_static("intercom-version")
}

/// The request as it goes to the API: its URI under the API base (or
/// refused when it names another origin), with the token, the version
/// and `Accept`.
fn prepare<B>(
    request: Request<B>,
    config: &Config,
    token: &AccessToken,
) -> Result<Request<B>, Error> {
    let (mut parts, body) = request.into_parts();
    parts.uri = config
        .base
        .route(parts.uri)
        .map_err(|uri| Error::off_host_request(&uri))?;
    let headers = &mut parts.headers;
    headers.insert(AUTHORIZATION, token.authorization_header());
    headers
        .entry(intercom_version())
        .or_insert_with(|| config.version.header().clone());
    headers
        .entry(ACCEPT)
        .or_insert(HeaderValue::from_static("application/json"));
    Ok(Request::from_parts(parts, body))
}
