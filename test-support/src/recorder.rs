//! An inner service that records what it received.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use tower_intercom::{VerifiedWebhook, WebhookBody};

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

impl tower_service::Service<Request<WebhookBody>> for Recorder {
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
