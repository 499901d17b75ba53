//! Helpers shared by the integration tests: bodies that record how they were
//! read, and an inner service that records what it received.
#![allow(dead_code)]

pub mod client;

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tower_intercom::{VerifiedWebhook, WebhookBody, WebhookSecret};

pub const SECRET: &str = "s3cr3t-client-secret";

pub fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).unwrap()
}

pub const PING: &[u8] = br#"{"type":"notification_event","app_id":"abc123","data":{"type":"notification_event_data","item":{"type":"ping","message":"Hi"}},"links":{},"id":"notif_ping","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":1700000000,"created_at":1700000000,"self":null}"#;

/// One step of a [`ScriptedBody`].
#[derive(Clone)]
pub enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    Error(&'static str),
    /// Returns `Pending` once (and wakes itself), as a slow network would.
    Pending,
}

/// A request body that plays a script of frames and counts every poll.
pub struct ScriptedBody {
    steps: VecDeque<Step>,
    polls: Arc<AtomicUsize>,
    size_hint: SizeHint,
}

impl ScriptedBody {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            steps: steps.into_iter().collect(),
            polls: Arc::default(),
            size_hint: SizeHint::default(),
        }
    }

    /// `data` cut into frames of `frame` bytes.
    pub fn chunked(data: &[u8], frame: usize) -> Self {
        Self::new(
            data.chunks(frame.max(1))
                .map(|chunk| Step::Data(Bytes::copy_from_slice(chunk))),
        )
    }

    pub fn with_size_hint(mut self, hint: SizeHint) -> Self {
        self.size_hint = hint;
        self
    }

    /// A counter of `poll_frame` calls, readable after the body is gone.
    pub fn polls(&self) -> Arc<AtomicUsize> {
        self.polls.clone()
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match self.steps.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Data(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Step::Trailers(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Some(Step::Error(message)) => Poll::Ready(Some(Err(std::io::Error::other(message)))),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}

/// What the inner service saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    pub verified: Option<VerifiedWebhook>,
}

/// An inner service that records each request and answers 200 `handled`.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("inner service was called")
    }
}

impl tower::Service<Request<WebhookBody>> for Recorder {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<WebhookBody>) -> Self::Future {
        let seen = self.seen.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let direct = body.bytes().clone();
            let collected = body.collect().await.unwrap();
            let trailers = collected.trailers().cloned();
            let body = collected.to_bytes();
            assert_eq!(direct, body, "bytes() and the polled body agree");
            seen.lock().unwrap().push(Seen {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                body,
                trailers,
                verified: parts.extensions.get::<VerifiedWebhook>().copied(),
            });
            Ok(Response::new(Full::new(Bytes::from_static(b"handled"))))
        })
    }
}

/// Reads a whole response body.
pub async fn body_bytes<B>(body: B) -> Bytes
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes()
}
