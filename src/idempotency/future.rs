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
    layer::Config, Claim, ClaimOutcome, FailurePolicy, IdempotencyStore, ResponseBody, StoreError,
    StoreFuture,
};
use crate::{
    duplicate,
    rejection::{respond, Rejection, RejectionKind, RejectionResponse},
    signature::SignatureScheme,
    webhook::WebhookBody,
};

pin_project! {
    /// Response future of [`Idempotency`](super::Idempotency).
    ///
    /// Dropping it (the client went away) before the inner service
    /// answered releases the claim, so Intercom's retry is processed.
    pub struct ResponseFuture<S, St, R>
    where
        S: Service<Request<WebhookBody>>,
        St: IdempotencyStore,
    {
        #[pin]
        state: State<S, S::Future, S::Response, S::Error, R>,
        // Set while this request holds (or is taking) a claim.
        guard: Option<ClaimGuard<St>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, Res, E, R> {
        /// Answered by the layer: a duplicate, a conflict, or a refusal.
        Ready { response: Option<Response<Bytes>> },
        /// Waiting for the store's claim.
        Claiming {
            claiming: StoreFuture<ClaimOutcome>,
            // Taken when the inner service is called.
            request: Option<Request<WebhookBody>>,
            inner: Option<S>,
            on_rejection: R,
            scheme: SignatureScheme,
        },
        /// Waiting for the inner service.
        Calling { #[pin] future: F },
        /// Recording the inner service's outcome (done, or released)
        /// before answering.
        Recording {
            recording: StoreFuture<()>,
            output: Option<Result<Res, E>>,
        },
    }
}

impl<S, St, R> ResponseFuture<S, St, R>
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
        request: Request<WebhookBody>,
        inner: S,
        config: Arc<Config<St>>,
        claim: Claim,
        on_rejection: R,
        scheme: SignatureScheme,
    ) -> Self {
        let claiming = config.store.claim(&claim, config.processing_ttl);
        Self {
            state: State::Claiming {
                claiming,
                request: Some(request),
                inner: Some(inner),
                on_rejection,
                scheme,
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

impl<S, St, R> fmt::Debug for ResponseFuture<S, St, R>
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

impl<S, St, R, ResBody> Future for ResponseFuture<S, St, R>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>>,
    St: IdempotencyStore,
    R: RejectionResponse,
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
                    on_rejection,
                    scheme,
                } => {
                    let outcome = ready!(claiming.as_mut().poll(cx));
                    match answer_without_calling(outcome, this.guard, on_rejection, *scheme) {
                        Some(response) => State::Ready {
                            response: Some(response),
                        },
                        None => {
                            let request = request.take().expect("the request is taken once");
                            let mut inner = inner.take().expect("the inner service is taken once");
                            State::Calling {
                                future: inner.call(request),
                            }
                        }
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
                    State::Recording {
                        recording: guard.record(succeeded),
                        output: Some(output),
                    }
                }
                StateProj::Recording { recording, output } => {
                    let recorded = ready!(recording.as_mut().poll(cx));
                    if let Some(mut guard) = this.guard.take() {
                        if let Err(error) = recorded {
                            report_failure(&guard.claim, guard.on_drop, &error);
                        }
                        guard.disarm();
                    }
                    let output = output.take().expect("the output is taken once");
                    return Poll::Ready(output.map(|response| response.map(ResponseBody::service)));
                }
            };
            this.state.set(next);
        }
    }
}

/// After the claim: the answer to send without calling the inner service
/// (a duplicate, a delivery in progress, a store failure when failing
/// closed), or `None` to call it. Only a successful claim keeps the guard
/// armed.
fn answer_without_calling<St: IdempotencyStore, R: RejectionResponse>(
    outcome: Result<ClaimOutcome, StoreError>,
    guard: &mut Option<ClaimGuard<St>>,
    on_rejection: &mut R,
    scheme: SignatureScheme,
) -> Option<Response<Bytes>> {
    if matches!(outcome, Ok(ClaimOutcome::Claimed)) {
        crate::measure::idempotency_outcome("claimed");
        return None;
    }
    // Not ours to finish: the guard has nothing to do.
    let mut guard = guard.take()?;
    guard.disarm();
    let id = guard.claim.id();
    let reject = |on_rejection: &mut R, kind| respond(on_rejection, Rejection::new(kind, scheme));
    match outcome {
        Ok(ClaimOutcome::Done) => {
            crate::measure::idempotency_outcome("duplicate");
            tracing::debug!(
                notification_id = id,
                "duplicate Intercom notification: already processed"
            );
            Some(duplicate::response())
        }
        Ok(_) => {
            crate::measure::idempotency_outcome("in_progress");
            tracing::info!(
                notification_id = id,
                "duplicate Intercom notification while the first delivery is processed: 409"
            );
            Some(reject(on_rejection, RejectionKind::InProgress))
        }
        // A claim taken despite the error expires by itself.
        Err(error) => {
            crate::measure::idempotency_outcome("store_error");
            match guard.config.on_store_error {
                FailurePolicy::FailClosed => {
                    tracing::warn!(
                        notification_id = id,
                        %error,
                        "idempotency store failed: answering 503, Intercom will retry"
                    );
                    Some(reject(on_rejection, RejectionKind::StoreUnavailable))
                }
                FailurePolicy::FailOpen => {
                    tracing::warn!(
                        notification_id = id,
                        %error,
                        "idempotency store failed: processing the notification without deduplication"
                    );
                    None
                }
            }
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

    /// Records the inner service's outcome: done after a success (and, if
    /// the future is dropped from here on, done anyway), released otherwise.
    fn record(&mut self, succeeded: bool) -> StoreFuture<()> {
        let config = &self.config;
        if succeeded {
            self.on_drop = OnDrop::Complete;
            config.store.complete(&self.claim, config.done_ttl)
        } else {
            self.on_drop = OnDrop::Release;
            config.store.release(&self.claim)
        }
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

fn report_failure(claim: &Claim, on_drop: OnDrop, error: &StoreError) {
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
