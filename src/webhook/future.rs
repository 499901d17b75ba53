use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::{request::Parts, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{collect::Collector, reject, ResponseBody, WebhookBody};
use crate::{
    box_error::BoxError,
    rejection::{RejectionKind, RejectionResponse},
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
                            crate::measure::webhook_verified(
                                verified.scheme(),
                                verified.secret_index(),
                                body.bytes().len(),
                            );
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
                        Err(kind) => State::Ready {
                            response: Some(reject(on_rejection, kind, collector.config())),
                        },
                    };
                    state.set(next);
                }
            }
        }
    }
}
