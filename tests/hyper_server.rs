//! The layer in a real hyper server on a loopback socket, hit by a real
//! HTTP client.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream;
use http::{header, Request, StatusCode};
use http_body::Frame;
use http_body_util::{Empty, Full, StreamBody};
use tower::ServiceBuilder;
use tower_intercom::{sign, VerifyIntercomWebhookLayer};
use tower_intercom_test_support::{client, secret, Recorder, PING};

const LIMIT: usize = 64 * 1024;

async fn server() -> (std::net::SocketAddr, Recorder) {
    let recorder = Recorder::default();
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()).max_body_size(LIMIT))
        .service(recorder.clone());
    (client::serve(service).await, recorder)
}

fn post() -> http::request::Builder {
    Request::post("/webhooks/intercom").header(header::CONTENT_TYPE, "application/json")
}

#[tokio::test]
async fn valid_forged_and_head_over_a_socket() {
    let (addr, recorder) = server().await;

    let request = post()
        .header("x-hub-signature", sign(&secret(), PING))
        .body(Full::new(Bytes::from_static(PING)))
        .unwrap();
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "handled");
    assert_eq!(recorder.calls(), 1);
    assert_eq!(recorder.last().body, PING);
    assert!(recorder.last().verified.is_some());

    let mut forged = PING.to_vec();
    forged[30] ^= 1;
    let request = post()
        .header("x-hub-signature", sign(&secret(), PING))
        .body(Full::new(Bytes::from(forged)))
        .unwrap();
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(answer.body, r#"{"error":"invalid signature"}"#);

    let request = post().body(Full::new(Bytes::from_static(PING))).unwrap();
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body, r#"{"error":"missing X-Hub-Signature header"}"#);

    let request = Request::head("/webhooks/intercom")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());

    assert_eq!(recorder.calls(), 1, "only the valid request was handled");
}

#[tokio::test]
async fn chunked_bodies_verify_and_oversize_is_refused() {
    let (addr, recorder) = server().await;

    // A valid body sent chunked, in many pieces.
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = PING
        .chunks(16)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let request = post()
        .header("x-hub-signature", sign(&secret(), PING))
        .body(StreamBody::new(stream::iter(chunks)))
        .unwrap();
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.last().body, PING);

    // Chunked, no Content-Length, growing past the limit.
    let big = vec![b'x'; LIMIT + 1];
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = big
        .chunks(4096)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let request = post()
        .header("x-hub-signature", sign(&secret(), &big))
        .body(StreamBody::new(stream::iter(chunks)))
        .unwrap();
    assert!(request.headers().get(header::CONTENT_LENGTH).is_none());
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body, r#"{"error":"payload too large"}"#);

    // Announced too large: refused from the headers.
    let request = post()
        .header("x-hub-signature", sign(&secret(), &big))
        .body(Full::new(Bytes::from(big)))
        .unwrap();
    let answer = client::send(addr, request).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(recorder.calls(), 1);
}
