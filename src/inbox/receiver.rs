//! The Tower service that commits verified notifications to the inbox.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use super::{response, Inbox, InboxStore, Inserted, NewNotification, StoreError, StoreErrorKind};
use crate::{
    warn_limit::{Due, WarnLimit},
    webhook::{VerifiedWebhook, WebhookBody},
};

/// The handler to put behind [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer):
/// commits each verified notification to the inbox, then answers 200.
///
/// Built by [`Inbox::receiver`](super::Inbox::receiver); see the
/// [module documentation](super) for what it answers.
pub struct Receiver<St> {
    inbox: Arc<Inbox<St>>,
}

impl<St> Receiver<St> {
    pub(super) fn new(inbox: Arc<Inbox<St>>) -> Self {
        Self { inbox }
    }
}

impl<St> Clone for Receiver<St> {
    fn clone(&self) -> Self {
        Self {
            inbox: self.inbox.clone(),
        }
    }
}

impl<St> fmt::Debug for Receiver<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("deadline", &self.inbox.config.deadline)
            .finish_non_exhaustive()
    }
}

impl<St: InboxStore> Service<Request<WebhookBody>> for Receiver<St> {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: overload is answered per request (429 or 503), never
    /// by queueing callers.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<WebhookBody>) -> Self::Future {
        // Intercom's URL check (when the verifying layer forwards it).
        if request.method() == Method::HEAD {
            return ResponseFuture::ready(response::empty(StatusCode::OK));
        }
        if request.extensions().get::<VerifiedWebhook>().is_none() {
            tracing::error!(
                "the inbox receiver got a request that did not pass VerifyIntercomWebhookLayer; \
                 place the verifying layer in front of it"
            );
            return ResponseFuture::ready(response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the inbox receiver must be placed inside VerifyIntercomWebhookLayer",
            ));
        }
        let body = request.into_body().into_bytes();
        let (id, topic) = match crate::notification::validate::inbox_envelope(&body) {
            Ok(envelope) => envelope,
            Err(invalid) => {
                self.inbox.refused.report(&invalid);
                crate::measure::inbox_receive("invalid");
                return ResponseFuture::ready(response::invalid(&invalid));
            }
        };
        let notification = NewNotification {
            id: id.into(),
            topic: topic.into(),
            body,
            received_at: SystemTime::now(),
        };
        let inbox = self.inbox.clone();
        ResponseFuture {
            inner: Box::pin(receive(inbox, notification)),
        }
    }
}

async fn receive<St: InboxStore>(
    inbox: Arc<Inbox<St>>,
    notification: NewNotification,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let deadline = inbox.config.deadline;
    let started = std::time::Instant::now();
    let inserting = inbox.store.insert(notification);
    let result = match tokio::time::timeout(deadline, inserting).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::timed_out(deadline)),
    };
    Ok(match result {
        Ok(Inserted::Stored) => {
            // Commits only: a duplicate stored nothing, and its quick
            // answer would hide how long commits take.
            crate::measure::inbox_commit_duration(started.elapsed());
            crate::measure::inbox_receive("stored");
            inbox.wake.notify_waiters();
            response::empty(StatusCode::OK)
        }
        Ok(Inserted::Duplicate) => {
            crate::measure::inbox_receive("duplicate");
            crate::duplicate::response().map(Full::new)
        }
        Err(error) => {
            inbox.failures.report(&error);
            match error.kind() {
                StoreErrorKind::Overloaded => {
                    crate::measure::inbox_receive("overloaded");
                    response::error(
                        inbox.config.overload_status,
                        "the inbox is overloaded; retry later",
                    )
                }
                _ => {
                    crate::measure::inbox_receive("unavailable");
                    response::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the inbox is unavailable; retry later",
                    )
                }
            }
        }
    })
}

type Answer = Result<Response<Full<Bytes>>, Infallible>;

/// The response future of [`Receiver`].
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Answer> + Send>>,
}

impl ResponseFuture {
    fn ready(response: Response<Full<Bytes>>) -> Self {
        Self {
            inner: Box::pin(std::future::ready(Ok(response))),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// Reports failures to the operator at `warn`: the first at once, then at
/// most one per interval with a count of the others, so a failing store
/// (or a flood of bad requests) cannot flood the logs.
#[derive(Debug)]
pub(super) struct FailureLog {
    message: &'static str,
    limit: WarnLimit,
}

const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl FailureLog {
    pub(super) fn new(message: &'static str) -> Self {
        Self {
            message,
            limit: WarnLimit::new(FAILURE_LOG_INTERVAL),
        }
    }

    pub(super) fn report(&self, error: &dyn fmt::Display) {
        if let Some(Due { suppressed, .. }) = self.limit.due() {
            tracing::warn!(
                target: "tower_intercom::inbox",
                suppressed,
                "{}: {error}",
                self.message
            );
        }
    }
}
