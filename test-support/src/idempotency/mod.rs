//! Shared by the idempotency tests: a receiver (axum, verifying layer,
//! idempotency layer, a handler that counts its calls) and signed Intercom
//! notifications. [`crate::redis_server`] runs the real `redis-server` the
//! Redis tests need.

pub mod scenarios;

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Body, routing, Router};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_intercom::{
    idempotency::{IdempotencyLayer, IdempotencyStore, DUPLICATE_HEADER},
    sign, VerifyIntercomWebhookLayer, WebhookSecret,
};

pub const SECRET: &str = "test-client-secret";

pub fn secret() -> WebhookSecret {
    SECRET.parse().unwrap()
}

/// The body of delivery `attempt` of notification `id`: the attempt
/// changes the body, hence the signature, as Intercom's retries do.
pub fn notification(id: &str, attempt: u32) -> String {
    format!(
        r#"{{"type":"notification_event","app_id":"abc123","id":"{id}","topic":"ping","delivery_attempts":{attempt},"first_sent_at":1700000000,"created_at":1700000000,"data":{{"type":"notification_event_data","item":{{"type":"ping","message":"hi"}}}}}}"#
    )
}

/// A signed `POST` of `body`.
pub fn signed(body: &str) -> Request<Body> {
    Request::post("/webhooks/intercom")
        .header("content-type", "application/json")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// What the handler does on its `n`th call (1-based) for an id.
pub type Behaviour = Arc<dyn Fn(&str, usize) -> BoxFuture<StatusCode> + Send + Sync>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub fn behaviour<F, Fut>(f: F) -> Behaviour
where
    F: Fn(&str, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = StatusCode> + Send + 'static,
{
    Arc::new(move |id: &str, n| Box::pin(f(id, n)) as BoxFuture<StatusCode>)
}

/// Answers 200 at once.
pub fn ok() -> Behaviour {
    behaviour(|_, _| async { StatusCode::OK })
}

/// How many times the handler was called, per notification id.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    pub fn of(&self, id: &str) -> usize {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn record(&self, id: &str) -> usize {
        let mut calls = self.0.lock().unwrap();
        let n = calls.entry(id.to_owned()).or_default();
        *n += 1;
        *n
    }
}

/// A receiver: the verifying layer, then `layer`, then a handler that
/// counts its calls per id and does what `behaviour` says.
pub fn receiver<St: IdempotencyStore>(
    layer: IdempotencyLayer<St>,
    calls: Calls,
    behaviour: Behaviour,
) -> Router {
    let handler = move |body: Bytes| {
        let calls = calls.clone();
        let behaviour = behaviour.clone();
        async move {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = json["id"].as_str().unwrap_or("").to_owned();
            let n = calls.record(&id);
            behaviour(&id, n).await
        }
    };
    Router::new().route(
        "/webhooks/intercom",
        routing::post(handler).layer(
            ServiceBuilder::new()
                .layer(VerifyIntercomWebhookLayer::new(secret()))
                .layer(layer),
        ),
    )
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn is_duplicate(&self) -> bool {
        self.headers
            .get(DUPLICATE_HEADER)
            .is_some_and(|value| value == "true")
    }

    /// 200 from the handler (not the layer's duplicate answer).
    pub fn is_processed(&self) -> bool {
        self.status == StatusCode::OK && !self.is_duplicate()
    }
}

/// Sends `request` to `router` in process.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Serves `router` on a free loopback port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Sends `request` to the server at `addr` over a new HTTP/1.1 connection.
pub async fn post(addr: SocketAddr, request: Request<Body>) -> Answer {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let request = Request::from_parts(parts, Full::new(body));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Writes a signed `POST` of `body` on a new connection and returns the
/// connection without reading the answer; dropping it hangs up.
pub async fn send_raw(addr: SocketAddr, body: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhooks/intercom HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-hub-signature: {}\r\ncontent-length: {}\r\n\r\n",
        sign(&secret(), body.as_bytes()).to_str().unwrap(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// Polls `condition` every 20 ms until it holds; panics after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sets a flag when dropped: tells a test that the server dropped a
/// handler's future.
pub struct DropSignal(pub Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(());
        }
    }
}
