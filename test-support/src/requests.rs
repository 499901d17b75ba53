//! Requests shaped like Intercom's, and an axum app served on a loopback
//! port, for the end-to-end tests of the stacks.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use tokio::net::TcpListener;
use tower_intercom::{sign, WebhookSecret};

/// Serves `app` with `axum::serve` on a free loopback port, in the
/// background, and returns its address.
pub async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("axum server");
    });
    addr
}

/// Sends `request` to `addr` with [`client::send`](crate::client::send)
/// and returns what came back as a `Response`.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Response<Bytes> {
    let answer = crate::client::send(addr, request).await;
    let mut response = Response::new(answer.body);
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

/// A POST of `body` to `path`, signed with `secret` as Intercom signs.
pub fn signed_post(path: &str, secret: &WebhookSecret, body: &[u8]) -> Request<Full<Bytes>> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-hub-signature", sign(secret, body))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request")
}

/// A POST of `body` to `path` with a well-formed signature that matches
/// nothing.
pub fn forged_post(path: &str, body: &[u8]) -> Request<Full<Bytes>> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "x-hub-signature",
            "sha1=0123456789abcdef0123456789abcdef01234567",
        )
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request")
}

/// A bodiless HEAD to `path`, as Intercom sends when a webhook URL is saved.
pub fn head(path: &str) -> Request<Full<Bytes>> {
    Request::head(path).body(Full::default()).expect("request")
}

/// A realistic, compact ping notification.
pub fn ping_body() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/notifications/ping.json"
    ))
    .expect("ping fixture")
}

/// The response body as JSON.
pub fn json(response: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(response.body()).unwrap_or_else(|err| {
        panic!(
            "response body is not JSON ({err}): {:?}",
            String::from_utf8_lossy(response.body())
        )
    })
}
