use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll, Waker},
};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{
    layer::Config,
    service::{duplicate, in_progress, store_unavailable},
    Claim, ClaimOutcome, FailurePolicy, IdempotencyStore, StoreFuture,
};
use crate::{webhook::ResponseBody, WebhookBody};

pin_project! {
    /// Response future of [`Idempotency`](super::Idempotency).
    ///
    /// Dropping it (the client went away) before the inner service
    /// answered releases the claim, so Intercom's retry is processed.
    pub struct ResponseFuture<S, St>
    where
        S: Service<Request<WebhookBody>>,
        St: IdempotencyStore,
    {
        #[pin]
        state: State<S, S::Future, S::Response, S::Error>,
        // Set while this request holds (or is taking) a claim.
        guard: Option<ClaimGuard<St>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, R, E> {
        /// Answered by the layer: a duplicate, a conflict, or a refusal.
        Ready { response: Option<Response<Bytes>> },
        /// Waiting for the store's claim.
        Claiming {
            claiming: StoreFuture<ClaimOutcome>,
            // Taken when the inner service is called.
            request: Option<Request<WebhookBody>>,
            inner: Option<S>,
        },
        /// Waiting for the inner service.
        Calling { #[pin] future: F },
        /// Recording the inner service's outcome (done, or released)
        /// before answering.
        Recording {
            recording: StoreFuture<()>,
            output: Option<Result<R, E>>,
        },
    }
}

impl<S, St> ResponseFuture<S, St>
where
    S: Service<Request<WebhookBody>>,
    St: IdempotencyStore,
{
    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
            guard: None,
        }
    }

    pub(crate) fn pass(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
            guard: None,
        }
    }

    pub(crate) fn claiming(
        claiming: StoreFuture<ClaimOutcome>,
        request: Request<WebhookBody>,
        inner: S,
        config: Arc<Config<St>>,
        claim: Claim,
    ) -> Self {
        Self {
            state: State::Claiming {
                claiming,
                request: Some(request),
                inner: Some(inner),
            },
            // Dropped mid-claim, the claim may have been taken: release it
            // (a no-op when it was not ours).
            guard: Some(ClaimGuard {
                config,
                claim,
                on_drop: OnDrop::Release,
            }),
        }
    }
}

impl<S, St> fmt::Debug for ResponseFuture<S, St>
where
    S: Service<Request<WebhookBody>>,
    St: IdempotencyStore,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "Ready",
            State::Claiming { .. } => "Claiming",
            State::Calling { .. } => "Calling",
            State::Recording { .. } => "Recording",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("claim", &self.guard.as_ref().map(|guard| guard.claim.id()))
            .finish()
    }
}

impl<S, St, ResBody> Future for ResponseFuture<S, St>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>>,
    St: IdempotencyStore,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Ready { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Claiming {
                    claiming,
                    request,
                    inner,
                } => {
                    let outcome = ready!(claiming.as_mut().poll(cx));
                    if !matches!(outcome, Ok(ClaimOutcome::Claimed)) {
                        // Not ours to finish: the guard has nothing to do.
                        let mut guard = this.guard.take().expect("a claiming request has a guard");
                        guard.disarm();
                        let id = guard.claim.id();
                        let response = match outcome {
                            Ok(ClaimOutcome::Done) => {
                                tracing::debug!(
                                    notification_id = id,
                                    "duplicate Intercom notification: already processed"
                                );
                                Some(duplicate())
                            }
                            Ok(_) => {
                                tracing::info!(
                                    notification_id = id,
                                    "duplicate Intercom notification while the first delivery is processed: 409"
                                );
                                Some(in_progress())
                            }
                            // A claim taken despite the error expires by itself.
                            Err(error) => match guard.config.on_store_error {
                                FailurePolicy::FailClosed => {
                                    tracing::warn!(
                                        notification_id = id,
                                        %error,
                                        "idempotency store failed: answering 503, Intercom will retry"
                                    );
                                    Some(store_unavailable())
                                }
                                FailurePolicy::FailOpen => {
                                    tracing::warn!(
                                        notification_id = id,
                                        %error,
                                        "idempotency store failed: processing the notification without deduplication"
                                    );
                                    None
                                }
                            },
                        };
                        if let Some(response) = response {
                            this.state.set(State::Ready {
                                response: Some(response),
                            });
                            continue;
                        }
                    }
                    let request = request.take().expect("the request is taken once");
                    let mut inner = inner.take().expect("the inner service is taken once");
                    State::Calling {
                        future: inner.call(request),
                    }
                }
                StateProj::Calling { future } => {
                    let output = ready!(future.poll(cx));
                    let Some(guard) = this.guard.as_mut() else {
                        // No claim: a pass-through, or the store failed.
                        return Poll::Ready(
                            output.map(|response| response.map(ResponseBody::service)),
                        );
                    };
                    let succeeded = output
                        .as_ref()
                        .is_ok_and(|response| response.status().is_success());
                    let config = &guard.config;
                    let recording = if succeeded {
                        // From here on, the notification was processed: if
                        // this future is dropped, mark it done anyway.
                        guard.on_drop = OnDrop::Complete;
                        config.store.complete(&guard.claim, config.done_ttl)
                    } else {
                        guard.on_drop = OnDrop::Release;
                        config.store.release(&guard.claim)
                    };
                    State::Recording {
                        recording,
                        output: Some(output),
                    }
                }
                StateProj::Recording { recording, output } => {
                    let recorded = ready!(recording.as_mut().poll(cx));
                    let output = output.take().expect("the output is taken once");
                    if let Some(mut guard) = this.guard.take() {
                        if let Err(error) = recorded {
                            report_failure(&guard.claim, guard.on_drop, &error);
                        }
                        guard.disarm();
                    }
                    return Poll::Ready(output.map(|response| response.map(ResponseBody::service)));
                }
            };
            this.state.set(next);
        }
    }
}

/// What a dropped [`ClaimGuard`] still has to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDrop {
    /// The inner service did not succeed (or was never called): free the id
    /// for Intercom's retry.
    Release,
    /// The inner service succeeded: remember the id as done.
    Complete,
    /// Nothing left to do.
    Nothing,
}

/// Finishes a claim when the response future is dropped before it did.
///
/// Needs the current Tokio runtime: the store's future is polled once here
/// (it finishes at once for [`MemoryStore`](super::MemoryStore)) and
/// spawned on the runtime when it does not. Dropped outside a runtime, the
/// guard does nothing and the claim expires after the processing TTL.
struct ClaimGuard<St: IdempotencyStore> {
    config: Arc<Config<St>>,
    claim: Claim,
    on_drop: OnDrop,
}

impl<St: IdempotencyStore> ClaimGuard<St> {
    fn disarm(&mut self) {
        self.on_drop = OnDrop::Nothing;
    }
}

impl<St: IdempotencyStore> Drop for ClaimGuard<St> {
    fn drop(&mut self) {
        if self.on_drop == OnDrop::Nothing {
            return;
        }
        // A store's future may need the runtime (Redis's timeout does) as
        // soon as it is polled: without one, leave the claim to expire
        // rather than poll it, which would panic (and abort when this drop
        // runs during unwinding).
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                notification_id = self.claim.id(),
                "no Tokio runtime to finish the claim of a dropped request; it expires after the processing TTL"
            );
            return;
        };
        let mut recording = match self.on_drop {
            OnDrop::Nothing => return,
            OnDrop::Release => {
                tracing::debug!(
                    notification_id = self.claim.id(),
                    "request dropped before it was answered: releasing its claim"
                );
                self.config.store.release(&self.claim)
            }
            OnDrop::Complete => self
                .config
                .store
                .complete(&self.claim, self.config.done_ttl),
        };
        let mut cx = Context::from_waker(Waker::noop());
        match recording.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => report_failure(&self.claim, self.on_drop, &error),
            Poll::Pending => {
                let claim = self.claim.clone();
                let on_drop = self.on_drop;
                runtime.spawn(async move {
                    if let Err(error) = recording.await {
                        report_failure(&claim, on_drop, &error);
                    }
                });
            }
        }
    }
}

fn report_failure(claim: &Claim, on_drop: OnDrop, error: &super::StoreError) {
    let id = claim.id();
    match on_drop {
        OnDrop::Complete => tracing::warn!(
            notification_id = id,
            %error,
            "processed an Intercom notification but could not mark it done; \
             a redelivery after the claim expires would be processed again"
        ),
        OnDrop::Release => tracing::warn!(
            notification_id = id,
            %error,
            "could not release the claim on an Intercom notification; \
             redeliveries get 409 until it expires"
        ),
        OnDrop::Nothing => {}
    }
}
