use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{header::LOCATION, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::{
    layer::Shared,
    measure,
    rate_limit::{Pacer, Permit, RateLimitHeaders},
    retry::{Retries, Verdict},
    Error, ErrorKind,
};
use crate::{access_token::AccessToken, box_error::BoxError};

/// At most this much of an error answer's body is read, for its
/// `error.list`.
const MAX_ERROR_BODY: usize = 64 * 1024;

type ReadBody = Pin<Box<dyn Future<Output = Bytes> + Send>>;

pin_project! {
    /// Response future of [`IntercomClient`](super::IntercomClient).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, B>,
        sender: Option<Sender<S, B>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Refused before anything was sent.
        Failed { error: Option<Error> },
        // Waiting for a rate-limit permit: a request sent without
        // `poll_ready` first (it carries the request), or a retry (which
        // sends a copy).
        Acquire { request: Option<Request<B>> },
        // Waiting for the inner service to be ready for a retry.
        Ready { permit: Option<Permit>, request: Option<Request<B>> },
        Call { #[pin] future: F, permit: Option<Permit> },
        // Reading a refusal's `error.list`.
        Refused {
            read: ReadBody,
            status: StatusCode,
            rate_limited: Option<(u32, Option<Duration>)>,
        },
        Backoff { #[pin] sleep: Sleep },
        Done,
    }
}

/// After an answer: hand it to the caller, or go on (send again, read a
/// refusal, fail).
enum Next<R, S> {
    Return(R),
    Continue(S),
}

/// What a request needs until it ends: the inner service that sends it, a
/// copy for retries, the token it started with.
struct Sender<S, B> {
    inner: S,
    copy: Option<Request<B>>,
    token: AccessToken,
    shared: Arc<Shared>,
    pacer: Pacer,
    retries: Retries,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn failed(error: Error) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            sender: None,
        }
    }

    /// `request` goes out now through `inner` (driven ready) when `permit`
    /// was reserved by `poll_ready`; otherwise once the rate limiter
    /// admits it.
    pub(crate) fn new(
        mut inner: S,
        request: Request<B>,
        copy: Option<Request<B>>,
        permit: Option<Permit>,
        token: AccessToken,
        shared: Arc<Shared>,
    ) -> Self {
        let retries = Retries::new(request.method());
        let state = match permit {
            Some(permit) => State::Call {
                future: inner.call(request),
                permit: Some(permit),
            },
            None => State::Acquire {
                request: Some(request),
            },
        };
        Self {
            state,
            sender: Some(Sender {
                inner,
                copy,
                token,
                shared,
                pacer: Pacer::default(),
                retries,
            }),
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    B: Clone,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Failed { error } = this.state.as_mut().project() {
                let error = error.take();
                this.state.set(State::Done);
                if let Some(error) = error {
                    return Poll::Ready(Err(error));
                }
            }
            let Some(sender) = this.sender.as_mut() else {
                return Poll::Pending;
            };
            match this.state.as_mut().project() {
                StateProj::Acquire { request } => {
                    let permit = ready!(sender.pacer.poll_acquire(&sender.shared.limiter, cx));
                    let request = request.take();
                    this.state.set(State::Ready {
                        permit: Some(permit),
                        request,
                    });
                }
                StateProj::Ready { permit, request } => {
                    if let Err(err) = ready!(sender.inner.poll_ready(cx)) {
                        this.state.set(State::Failed {
                            error: Some(Error::transport(err)),
                        });
                        continue;
                    }
                    let Some(request) = request.take().or_else(|| sender.copy.clone()) else {
                        // Retries are decided only when a copy was kept.
                        this.state.set(State::Failed {
                            error: Some(Error::transport("no copy of the request to send again")),
                        });
                        continue;
                    };
                    let permit = permit.take();
                    let future = sender.inner.call(request);
                    this.state.set(State::Call { future, permit });
                }
                StateProj::Call { future, permit } => {
                    let result = ready!(future.poll(cx));
                    let permit = permit.take();
                    let next = match result {
                        Ok(response) => match sender.answered(response, permit) {
                            Next::Return(response) => {
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(response));
                            }
                            Next::Continue(next) => next,
                        },
                        Err(err) => sender.failed(err, permit),
                    };
                    this.state.set(next);
                }
                StateProj::Refused {
                    read,
                    status,
                    rate_limited,
                } => {
                    let body = ready!(read.as_mut().poll(cx));
                    let error = sender.refused(*status, &body, *rate_limited);
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Backoff { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Acquire { request: None });
                }
                StateProj::Failed { .. } | StateProj::Done => return Poll::Pending,
            }
        }
    }
}

impl<S, B> Sender<S, B> {
    /// The answer to hand to the caller, or what to do next.
    fn answered<F, ResBody>(
        &mut self,
        response: Response<ResBody>,
        permit: Option<Permit>,
    ) -> Next<Response<ResBody>, State<F, B>>
    where
        ResBody: Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<BoxError>,
    {
        let status = response.status();
        measure::answered(Some(status));
        if let Some(permit) = permit {
            let headers = RateLimitHeaders::parse(response.headers());
            let rate_limited = status == StatusCode::TOO_MANY_REQUESTS;
            if let Some(remaining) =
                permit.answered(headers, rate_limited, self.shared.config.max_wait)
            {
                measure::remaining(remaining);
            }
        }
        // Without a copy (no retries configured) the verdict is never a retry.
        let verdict = self
            .retries
            .answer(&self.shared.config, status, response.headers());
        match verdict {
            Verdict::Return => Next::Return(response),
            Verdict::RetryRateLimited => {
                measure::retry("rate_limited");
                Next::Continue(State::Acquire { request: None })
            }
            Verdict::RetryAfter(wait) => {
                measure::retry("error");
                Next::Continue(State::Backoff {
                    sleep: tokio::time::sleep(wait),
                })
            }
            Verdict::OffHost => Next::Continue(State::Failed {
                error: Some(Error::off_host_redirect(
                    status,
                    response.headers().get(LOCATION),
                )),
            }),
            Verdict::Refused { rate_limited } => {
                let body = Limited::new(response.into_body(), MAX_ERROR_BODY);
                let read: ReadBody = Box::pin(async move {
                    body.collect()
                        .await
                        .map(|collected| collected.to_bytes())
                        .unwrap_or_default()
                });
                Next::Continue(State::Refused {
                    read,
                    status,
                    rate_limited,
                })
            }
        }
    }

    /// After the HTTP client failed: a retry of an idempotent request when
    /// opted in, else the error.
    fn failed<F>(&mut self, err: impl Into<BoxError>, permit: Option<Permit>) -> State<F, B> {
        measure::answered(None);
        drop(permit);
        match self
            .copy
            .as_ref()
            .and_then(|_| self.retries.error(&self.shared.config))
        {
            Some(wait) => {
                measure::retry("error");
                State::Backoff {
                    sleep: tokio::time::sleep(wait),
                }
            }
            None => State::Failed {
                error: Some(Error::transport(err)),
            },
        }
    }

    /// The error of a refusal, counted, and told to the token source when
    /// it is the token that was refused.
    fn refused(
        &self,
        status: StatusCode,
        body: &[u8],
        rate_limited: Option<(u32, Option<Duration>)>,
    ) -> Error {
        let error = Error::refused(status, body, &self.token, rate_limited);
        if self.shared.config.candidate {
            // A token being checked before it is put in use: the refusal
            // is the check's answer, the token in use is fine.
            return error;
        }
        match error.kind() {
            ErrorKind::Unauthorized => {
                measure::auth_failure(error.code_label());
                self.shared.token.token_rejected(&self.token, &error);
            }
            ErrorKind::Forbidden => measure::auth_failure(error.code_label()),
            _ => {}
        }
        error
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
