use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::{Buf, Bytes, BytesMut};
use http::{request::Parts, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{
    layer::Config,
    rejection::{respond, Rejection, RejectionKind},
    RejectionResponse, ResponseBody, VerifiedWebhook, WebhookBody,
};
use crate::{
    signature::{ExpectedDigest, MacState},
    BoxError,
};

pin_project! {
    /// Response future of [`VerifyIntercomWebhook`](crate::VerifyIntercomWebhook).
    pub struct ResponseFuture<B, S, R>
    where
        S: Service<Request<WebhookBody>>,
    {
        #[pin]
        state: State<B, S, S::Future, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B, S, F, R> {
        /// Answered without the inner service: a rejection or a `HEAD`.
        Ready { response: Option<Response<Bytes>> },
        /// Reading the body through the HMAC. The inner service is a clone
        /// that has not been driven ready: it reserves nothing yet.
        Collect {
            #[pin]
            body: B,
            // `Option`s are taken when the body is verified.
            parts: Option<Parts>,
            inner: Option<S>,
            collector: Collector,
            on_rejection: R,
        },
        /// Verified: driving the inner service ready (this is where a
        /// concurrency limit, buffer slot or rate-limit token is taken).
        PollReady {
            inner: S,
            // Taken when the inner service is called.
            request: Option<Request<WebhookBody>>,
        },
        /// Waiting for the inner service.
        Call { #[pin] future: F },
    }
}

impl<B, S, R> ResponseFuture<B, S, R>
where
    S: Service<Request<WebhookBody>>,
{
    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    /// Drives `inner` ready, then calls it with `request`.
    pub(crate) fn call(inner: S, request: Request<WebhookBody>) -> Self {
        Self {
            state: State::PollReady {
                inner,
                request: Some(request),
            },
        }
    }

    pub(crate) fn collect(
        body: B,
        parts: Parts,
        collector: Collector,
        inner: S,
        on_rejection: R,
    ) -> Self {
        Self {
            state: State::Collect {
                body,
                parts: Some(parts),
                inner: Some(inner),
                collector,
                on_rejection,
            },
        }
    }
}

impl<B, S, R> fmt::Debug for ResponseFuture<B, S, R>
where
    S: Service<Request<WebhookBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "Ready",
            State::Collect { .. } => "Collect",
            State::PollReady { .. } => "PollReady",
            State::Call { .. } => "Call",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<B, S, R, ResBody> Future for ResponseFuture<B, S, R>
where
    B: Body,
    B::Error: Into<BoxError>,
    S: Service<Request<WebhookBody>, Response = Response<ResBody>>,
    R: RejectionResponse,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Ready { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::PollReady { inner, request } => {
                    ready!(inner.poll_ready(cx))?;
                    let request = request.take().expect("the request is taken once");
                    let future = inner.call(request);
                    state.set(State::Call { future });
                }
                StateProj::Call { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::service)));
                }
                StateProj::Collect {
                    mut body,
                    parts,
                    inner,
                    collector,
                    on_rejection,
                } => {
                    let outcome = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break collector.finish(),
                            Some(Ok(frame)) => {
                                if let Err(kind) = collector.push(frame) {
                                    break Err(kind);
                                }
                            }
                            Some(Err(err)) => {
                                let err: BoxError = err.into();
                                tracing::debug!(error = %err, "error reading an Intercom webhook body");
                                break Err(RejectionKind::BodyUnreadable);
                            }
                        }
                    };
                    let next = match outcome {
                        Ok((body, verified)) => {
                            let mut parts = parts.take().expect("parts are taken once");
                            let inner = inner.take().expect("inner is taken once");
                            if verified.secret_index() > 0 {
                                tracing::info!(
                                    secret_index = verified.secret_index(),
                                    "Intercom webhook verified with a previous secret"
                                );
                            }
                            parts.extensions.insert(verified);
                            State::PollReady {
                                inner,
                                request: Some(Request::from_parts(parts, body)),
                            }
                        }
                        Err(kind) => {
                            let rejection = Rejection::new(kind, collector.config.scheme);
                            State::Ready {
                                response: Some(respond(on_rejection, rejection)),
                            }
                        }
                    };
                    state.set(next);
                }
            }
        }
    }
}

/// One pass over the body: each frame is fed to the HMAC of the current
/// secret as it arrives and kept, up to the limit.
pub(crate) struct Collector {
    config: Arc<Config>,
    expected: ExpectedDigest,
    /// Taken when the body is complete.
    mac: Option<MacState>,
    /// The first data frame, kept as is: a one-frame body is never copied.
    first: Option<Bytes>,
    /// Every frame, once there is more than one.
    joined: BytesMut,
    /// Bytes to reserve when a second frame arrives.
    capacity: usize,
    len: usize,
}

impl Collector {
    pub(crate) fn new(config: Arc<Config>, expected: ExpectedDigest, capacity: usize) -> Self {
        let mac = MacState::new(config.scheme, &config.secrets[0]);
        Self {
            config,
            expected,
            mac: Some(mac),
            first: None,
            joined: BytesMut::new(),
            capacity,
            len: 0,
        }
    }

    fn push<D: Buf>(&mut self, frame: http_body::Frame<D>) -> Result<(), RejectionKind> {
        // Trailers are not covered by the signature: they are dropped, so
        // nothing unsigned reaches the inner service with the body.
        let Ok(mut data) = frame.into_data() else {
            return Ok(());
        };
        let n = data.remaining();
        if n == 0 {
            return Ok(());
        }
        self.len = self
            .len
            .checked_add(n)
            .filter(|&len| len <= self.config.max_body_size)
            .ok_or(RejectionKind::PayloadTooLarge)?;
        // Zero-copy for `Bytes` frames; one copy for other `Buf`s.
        let data = data.copy_to_bytes(n);
        if let Some(mac) = &mut self.mac {
            mac.update(&data);
        }
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(data);
        } else {
            if let Some(first) = self.first.take() {
                self.joined.reserve(self.capacity.max(self.len));
                self.joined.extend_from_slice(&first);
            }
            self.joined.extend_from_slice(&data);
        }
        Ok(())
    }

    /// The body and which secret signed it, or [`RejectionKind::InvalidSignature`].
    fn finish(&mut self) -> Result<(WebhookBody, VerifiedWebhook), RejectionKind> {
        let data = match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.joined).freeze(),
        };
        let current = self.mac.take().map(MacState::finalize);
        let matched = if current.is_some_and(|digest| self.expected.matches(&digest)) {
            Some(0)
        } else {
            // Previous secrets, during a rotation: the body is complete now.
            self.config.secrets[1..]
                .iter()
                .position(|secret| {
                    let mut mac = MacState::new(self.config.scheme, secret);
                    mac.update(&data);
                    self.expected.matches(&mac.finalize())
                })
                .map(|index| index + 1)
        };
        match matched {
            Some(secret_index) => Ok((
                WebhookBody::new(data),
                VerifiedWebhook::new(secret_index, self.config.scheme),
            )),
            None => Err(RejectionKind::InvalidSignature),
        }
    }
}
