//! Hostile clients against the layer in a real hyper server on loopback.
//!
//! The server is composed as the README advises: the layer, with a total
//! request timeout (`tower_http::timeout::TimeoutLayer`) and an idle timeout
//! on the request body (`RequestBodyTimeoutLayer`) around it, and hyper's
//! own `header_read_timeout`. Most requests are written as exact bytes on a
//! raw TCP socket (what a well-behaved client cannot send); HTTP/2 uses
//! hyper's client with prior knowledge (h2c). Every case checks the status
//! the client sees and that the inner service ran only for valid requests.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::stream;
use http::{header, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper_util::rt::TokioTimer;
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_intercom::{sign, VerifyIntercomWebhookLayer};
use tower_intercom_test_support::{
    client::{self, Raw},
    logs::Logs,
    secret, Recorder, SECRET,
};

/// The layer's limit in these tests.
const LIMIT: usize = 4096;

/// The timeouts of [`Timeouts::default`]: short, so the suite stays fast.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const BODY_IDLE_TIMEOUT: Duration = Duration::from_millis(250);
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

/// The timeouts a server is composed with.
#[derive(Clone, Copy)]
struct Timeouts {
    /// `TimeoutLayer`: the whole request, body reading included.
    request: Duration,
    /// `RequestBodyTimeoutLayer`: the longest wait for the next body frame.
    body_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: REQUEST_TIMEOUT,
            body_idle: BODY_IDLE_TIMEOUT,
        }
    }
}

/// The receiver: the layer (limit [`LIMIT`]) and a [`Recorder`], composed
/// with the timeouts as a user would.
async fn server_with(timeouts: Timeouts) -> (SocketAddr, Recorder) {
    let recorder = Recorder::default();
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeouts.request,
        ))
        .layer(RequestBodyTimeoutLayer::new(timeouts.body_idle))
        .layer(VerifyIntercomWebhookLayer::new(secret()).max_body_size(LIMIT))
        .service(recorder.clone());
    let addr = client::serve_with(service, |builder| {
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
    })
    .await;
    (addr, recorder)
}

async fn server() -> (SocketAddr, Recorder) {
    server_with(Timeouts::default()).await
}

/// A webhook body of `len` bytes (JSON-ish, distinct per `id`).
fn body(id: usize, len: usize) -> Vec<u8> {
    let mut body = format!("{{\"id\":\"notif_{id}\",\"pad\":\"").into_bytes();
    body.resize(len.saturating_sub(2), b'x');
    body.extend_from_slice(b"\"}");
    body
}

fn signature(body: &[u8]) -> String {
    sign(&secret(), body).to_str().unwrap().to_owned()
}

/// A request head: the request line, `Host`, then `headers`, as raw lines.
fn head(headers: &[&[u8]]) -> Vec<u8> {
    let mut head = b"POST /webhooks/intercom HTTP/1.1\r\nhost: localhost\r\n".to_vec();
    for line in headers {
        head.extend_from_slice(line);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A complete, signed request with an honest `Content-Length`.
fn signed_request(body: &[u8]) -> Vec<u8> {
    let mut request = head(&[
        format!("x-hub-signature: {}", signature(body)).as_bytes(),
        format!("content-length: {}", body.len()).as_bytes(),
    ]);
    request.extend_from_slice(body);
    request
}

/// Sends `bytes` on a fresh connection and returns the first response.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<client::Answer> {
    let mut raw = Raw::connect(addr).await;
    raw.write(bytes).await;
    raw.response().await
}

async fn status_of(addr: SocketAddr, bytes: &[u8]) -> StatusCode {
    exchange(addr, bytes).await.expect("a response").status
}

#[tokio::test]
async fn odd_header_bytes_never_reach_the_service_unverified() {
    let (addr, recorder) = server().await;
    let data = body(1, 200);
    let valid = signature(&data);
    let with = |signature_line: &[u8]| {
        let length = format!("content-length: {}", data.len());
        let mut request = head(&[signature_line, length.as_bytes()]);
        request.extend_from_slice(&data);
        request
    };

    // Bytes a header may carry but a signature may not: 401.
    let mut obs_text = b"x-hub-signature: sha1=".to_vec();
    obs_text.extend_from_slice(&[0xe9; 40]);
    let mut high = b"x-hub-signature: ".to_vec();
    high.extend((0x80..=0xff).map(|b: u8| b));
    let tab_inside = format!("x-hub-signature: sha1=\t{}", &valid[5..]);
    let other_algorithm = format!("x-hub-signature: sha256={}", &valid[5..]);
    let upper_prefix = format!("X-Hub-Signature: SHA1={}", &valid[5..]);
    for line in [
        obs_text.as_slice(),
        high.as_slice(),
        tab_inside.as_bytes(),
        other_algorithm.as_bytes(),
        upper_prefix.as_bytes(),
        b"x-hub-signature:",
    ] {
        let answer = exchange(addr, &with(line)).await.expect("a response");
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{line:?}");
        assert_eq!(
            answer.body,
            r#"{"error":"malformed X-Hub-Signature header: expected sha1= and 40 hex digits"}"#,
            "{line:?}"
        );
    }

    // Bytes no header may carry: hyper refuses the request before the layer.
    let mut nul = format!("x-hub-signature: {valid}").into_bytes();
    nul[30] = 0;
    let mut bad_name = format!("x-hub-signature\x01: {valid}").into_bytes();
    bad_name[15] = 1;
    for line in [
        nul.as_slice(),
        bad_name.as_slice(),
        format!("x-hub-signature: {}\r\n {}", &valid[..20], &valid[20..]).as_bytes(), // obs-fold
        format!("x-hub-signature : {valid}").as_bytes(), // space before the colon
    ] {
        assert_eq!(
            status_of(addr, &with(line)).await,
            StatusCode::BAD_REQUEST,
            "{line:?}"
        );
    }
    assert_eq!(recorder.calls(), 0);

    // Field names are case-insensitive and surrounding whitespace is not
    // part of a field value (RFC 9110, 5.5): these are the valid signature.
    for line in [
        format!("X-HUB-SIGNATURE: {valid}"),
        format!("x-hub-signature:{valid}"),
        format!("x-hub-signature: \t {valid} \t "),
    ] {
        assert_eq!(
            status_of(addr, &with(line.as_bytes())).await,
            StatusCode::OK,
            "{line:?}"
        );
    }
    assert_eq!(recorder.calls(), 3);
    assert_eq!(recorder.last().body, data);
}

#[tokio::test]
async fn huge_header_values_are_refused() {
    let (addr, recorder) = server().await;
    let data = body(2, 100);
    for (len, status) in [
        // Large but within hyper's header buffer: the layer refuses it.
        (64 * 1024, StatusCode::UNAUTHORIZED),
        // Beyond hyper's header buffer (about 400 KiB): hyper refuses it.
        (1024 * 1024, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
    ] {
        let mut line = b"x-hub-signature: sha1=".to_vec();
        line.resize(len, b'a');
        let length = format!("content-length: {}", data.len());
        let mut request = head(&[&line, length.as_bytes()]);
        request.extend_from_slice(&data);
        let answer = exchange(addr, &request).await.expect("a response");
        assert_eq!(answer.status, status, "{len} bytes");
        assert!(answer.body.len() < 200, "a refusal never echoes the header");
    }

    // A valid signature followed by a huge unrelated header still works.
    let mut filler = b"x-filler: ".to_vec();
    filler.resize(64 * 1024, b'f');
    let mut request = head(&[
        format!("x-hub-signature: {}", signature(&data)).as_bytes(),
        &filler,
        format!("content-length: {}", data.len()).as_bytes(),
    ]);
    request.extend_from_slice(&data);
    assert_eq!(status_of(addr, &request).await, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn many_signature_headers_are_refused_even_when_all_are_valid() {
    let (addr, recorder) = server().await;
    let data = body(3, 100);
    let line = format!("x-hub-signature: {}", signature(&data));
    let length = format!("content-length: {}", data.len());
    for copies in [2, 10, 90] {
        let mut lines = vec![line.as_bytes(); copies];
        lines.push(length.as_bytes());
        let mut request = head(&lines);
        request.extend_from_slice(&data);
        let answer = exchange(addr, &request).await.expect("a response");
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{copies} copies");
        assert_eq!(
            answer.body,
            r#"{"error":"more than one X-Hub-Signature header"}"#
        );
    }
    // More headers than hyper accepts (100): refused before the layer.
    let mut lines = vec![line.as_bytes(); 150];
    lines.push(length.as_bytes());
    let mut request = head(&lines);
    request.extend_from_slice(&data);
    assert_eq!(
        status_of(addr, &request).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn content_length_shorter_than_the_body() {
    let (addr, recorder) = server().await;
    let data = body(4, 300);

    // Signed over the whole body but announcing 10 bytes: the server reads
    // 10 bytes, which do not match; the rest is not a request.
    let mut request = head(&[
        format!("x-hub-signature: {}", signature(&data)).as_bytes(),
        b"content-length: 10",
    ]);
    request.extend_from_slice(&data);
    let mut raw = Raw::connect(addr).await;
    raw.write(&request).await;
    let answer = raw.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body, r#"{"error":"invalid signature"}"#);
    assert_eq!(
        raw.response().await.map(|a| a.status),
        Some(StatusCode::BAD_REQUEST)
    );
    assert_eq!(recorder.calls(), 0);

    // Signed over exactly the announced bytes: those bytes are the request,
    // and they are what the service gets.
    let mut request = head(&[
        format!("x-hub-signature: {}", signature(&data[..10])).as_bytes(),
        b"content-length: 10",
    ]);
    request.extend_from_slice(&data);
    let mut raw = Raw::connect(addr).await;
    raw.write(&request).await;
    assert_eq!(raw.response().await.unwrap().status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
    assert_eq!(recorder.last().body, &data[..10]);
}

#[tokio::test]
async fn content_length_longer_than_the_body() {
    let (addr, recorder) = server().await;
    let data = body(5, 300);
    let lying = |announced: usize| {
        let mut request = head(&[
            format!("x-hub-signature: {}", signature(&data)).as_bytes(),
            format!("content-length: {announced}").as_bytes(),
        ]);
        request.extend_from_slice(&data);
        request
    };

    // The client stops sending: the body idle timeout ends the wait (400,
    // the body could not be read).
    let answer = exchange(addr, &lying(1000)).await.expect("a response");
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, r#"{"error":"request body could not be read"}"#);

    // The client half-closes: the body ends early, an error for hyper.
    let mut raw = Raw::connect(addr).await;
    raw.write(&lying(1000)).await;
    raw.shutdown_write().await;
    let answer = raw.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // Announcing more than the limit: refused from the headers, before the
    // client sends a byte of the body.
    let mut raw = Raw::connect(addr).await;
    raw.write(&head(&[
        format!("x-hub-signature: {}", signature(&data)).as_bytes(),
        format!("content-length: {}", LIMIT + 1).as_bytes(),
    ]))
    .await;
    let answer = raw.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = exchange(addr, &lying(1 << 62)).await.unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Beyond what hyper can count (u64::MAX - 2): hyper refuses it.
    let answer = exchange(addr, &lying(u64::MAX as usize)).await.unwrap();
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn malformed_and_conflicting_lengths_are_refused_by_the_server() {
    let (addr, recorder) = server().await;
    let data = body(6, 50);
    let sig = format!("x-hub-signature: {}", signature(&data));
    for lines in [
        vec![sig.as_bytes(), b"content-length: abc".as_slice()],
        vec![sig.as_bytes(), b"content-length: +50"],
        vec![sig.as_bytes(), b"content-length: -1"],
        vec![sig.as_bytes(), b"content-length: 50", b"content-length: 10"],
        vec![sig.as_bytes(), b"content-length: 99999999999999999999999"],
        vec![
            sig.as_bytes(),
            b"content-length: 50",
            b"transfer-encoding: chunked",
        ],
    ] {
        let mut request = head(&lines);
        request.extend_from_slice(&data);
        let answer = exchange(addr, &request).await;
        assert_eq!(
            answer.map(|a| a.status),
            Some(StatusCode::BAD_REQUEST),
            "{lines:?}"
        );
    }
    assert_eq!(recorder.calls(), 0);
}

/// A chunked request with a valid signature of `data` and `chunks` as the
/// raw chunked encoding.
fn chunked(data: &[u8], chunks: &[u8]) -> Vec<u8> {
    let mut request = head(&[
        format!("x-hub-signature: {}", signature(data)).as_bytes(),
        b"transfer-encoding: chunked",
    ]);
    request.extend_from_slice(chunks);
    request
}

#[tokio::test]
async fn chunked_bodies_with_bad_chunk_sizes_are_400() {
    let (addr, recorder) = server().await;
    let data = body(7, 40);
    let first = format!("14\r\n{}\r\n", String::from_utf8_lossy(&data[..20]));
    for bad in [
        "zz\r\n",
        "-14\r\n",
        "fffffffffffffffffffff\r\n",
        "14 14\r\n",
        "\r\n",
        "0x14\r\n",
    ] {
        let chunks = format!(
            "{first}{bad}{}\r\n0\r\n\r\n",
            String::from_utf8_lossy(&data[20..])
        );
        let answer = exchange(addr, &chunked(&data, chunks.as_bytes())).await;
        assert_eq!(
            answer.map(|a| a.status),
            Some(StatusCode::BAD_REQUEST),
            "{bad:?}"
        );
    }
    // A chunk that claims more than is sent, then silence: idle timeout.
    let chunks = format!("{first}100\r\n{}", String::from_utf8_lossy(&data[20..]));
    let answer = exchange(addr, &chunked(&data, chunks.as_bytes()))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(recorder.calls(), 0);

    // The same body, well chunked (with an extension and a trailer), passes,
    // without the trailer: it is not signed.
    let chunks = format!(
        "{first}14;ext=1\r\n{}\r\n0\r\nx-trailer: kept\r\n\r\n",
        String::from_utf8_lossy(&data[20..])
    );
    let answer = exchange(addr, &chunked(&data, chunks.as_bytes()))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
    assert_eq!(recorder.last().body, data);
    assert_eq!(recorder.last().trailers, None);
}

#[tokio::test]
async fn a_huge_chunk_is_cut_at_the_limit() {
    let (addr, recorder) = server().await;
    let data = body(8, 2 * LIMIT);
    // One chunk announcing 1 GiB; the client sends just past the limit and
    // waits: the answer comes without the rest.
    let mut chunks = b"40000000\r\n".to_vec();
    chunks.extend_from_slice(&data[..LIMIT + 1]);
    let mut raw = Raw::connect(addr).await;
    raw.write(&chunked(&data, &chunks)).await;
    let answer = raw.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn expect_100_continue_is_refused_before_the_body_is_sent() {
    let (addr, recorder) = server().await;
    let data = body(13, 300);
    let request = |signature: &str, length: usize| {
        head(&[
            format!("x-hub-signature: {signature}").as_bytes(),
            format!("content-length: {length}").as_bytes(),
            b"expect: 100-continue",
        ])
    };

    // Refused from the headers: the final answer comes at once, without a
    // `100 Continue` inviting the body.
    for (signature, length, status) in [
        ("sha1=nope".to_owned(), data.len(), StatusCode::UNAUTHORIZED),
        (signature(&data), LIMIT + 1, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let mut raw = Raw::connect(addr).await;
        raw.write(&request(&signature, length)).await;
        let answer = raw.response().await.expect("a response");
        assert_eq!(answer.status, status);
    }

    // Accepted headers: `100 Continue`, then the body, then the verdict.
    let mut raw = Raw::connect(addr).await;
    raw.write(&request(&signature(&data), data.len())).await;
    let answer = raw.response().await.expect("a 100 Continue");
    assert_eq!(answer.status, StatusCode::CONTINUE);
    raw.write(&data).await;
    assert_eq!(raw.response().await.unwrap().status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn a_stalled_body_is_cut_by_the_body_idle_timeout() {
    let (addr, recorder) = server_with(Timeouts {
        request: Duration::from_secs(30),
        body_idle: BODY_IDLE_TIMEOUT,
    })
    .await;
    let data = body(9, 300);
    let mut raw = Raw::connect(addr).await;
    raw.write(&signed_request(&data)[..200]).await;
    let answer = raw.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, r#"{"error":"request body could not be read"}"#);
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn a_trickled_body_is_cut_by_the_request_timeout() {
    let (addr, recorder) = server_with(Timeouts {
        request: REQUEST_TIMEOUT,
        body_idle: Duration::from_secs(30),
    })
    .await;
    let data = body(10, 300);
    let request = signed_request(&data);
    let (head_len, rest) = (request.len() - data.len(), request.len());
    let mut raw = Raw::connect(addr).await;
    raw.write(&request[..head_len]).await;
    // A byte every 50 ms: never idle for long, never done in time.
    let trickle = async {
        for at in head_len..rest - 1 {
            if !raw.write(&request[at..at + 1]).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), trickle)
        .await
        .ok();
    let answer = raw.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn slow_headers_are_cut_by_the_header_read_timeout() {
    let (addr, recorder) = server().await;
    let mut raw = Raw::connect(addr).await;
    raw.write(b"POST /webhooks/intercom HTTP/1.1\r\nhost: localhost\r\nx-hub-sig")
        .await;
    assert!(raw.response().await.is_none(), "closed without a response");
    assert!(raw.closed().await);
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn connections_dropped_mid_body_never_reach_the_service() {
    let (addr, recorder) = server().await;
    let data = body(11, 1000);
    let full = signed_request(&data);
    for cut in [full.len() - data.len(), full.len() - 500, full.len() - 1] {
        let mut raw = Raw::connect(addr).await;
        raw.write(&full[..cut]).await;
        drop(raw);
    }
    // Chunked, dropped inside a chunk.
    let mut chunks = b"3e8\r\n".to_vec();
    chunks.extend_from_slice(&data[..600]);
    let mut raw = Raw::connect(addr).await;
    raw.write(&chunked(&data, &chunks)).await;
    drop(raw);

    // The server still serves, and only the complete request was handled.
    assert_eq!(status_of(addr, &full).await, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
    assert_eq!(recorder.last().body, data);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (addr, recorder) = server().await;
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| body(100 + i, 150)).collect();
    let mut forged = signed_request(&bodies[0]);
    let last = forged.len() - 3;
    forged[last] ^= 1;
    let mut unsigned = head(&[b"content-length: 5"]);
    unsigned.extend_from_slice(b"hello");

    let mut all = Vec::new();
    all.extend(signed_request(&bodies[0]));
    all.extend(&forged);
    all.extend(signed_request(&bodies[1]));
    all.extend(&unsigned);
    all.extend(signed_request(&bodies[2]));
    let mut raw = Raw::connect(addr).await;
    raw.write(&all).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(raw.response().await.expect("a response").status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::OK
        ]
    );
    let seen: Vec<_> = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|seen| seen.body.to_vec())
        .collect();
    assert_eq!(seen, bodies, "each notification handled once, in order");
}

/// An HTTP/2 request body: `data` in frames of `frame` bytes, then `error`
/// if given (which makes the client reset the stream).
fn h2_body(
    data: &[u8],
    frame: usize,
    error: bool,
) -> http_body_util::combinators::BoxBody<Bytes, client::BoxError> {
    let mut frames: Vec<Result<Frame<Bytes>, client::BoxError>> = data
        .chunks(frame.max(1))
        .map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    if error {
        frames.push(Err("the client gave up".into()));
    }
    StreamBody::new(stream::iter(frames)).boxed()
}

fn h2_request(signature: Option<&str>) -> http::request::Builder {
    let builder =
        Request::post("http://localhost/webhooks/intercom").version(http::Version::HTTP_2);
    match signature {
        Some(signature) => builder.header("x-hub-signature", signature),
        None => builder,
    }
}

#[tokio::test]
async fn http2_requests_on_one_connection() {
    let (addr, recorder) = server().await;
    let sender = client::h2(addr).await;

    // Concurrent streams: valid ones, forged ones, unsigned ones, doubly
    // signed ones, announced too large, streamed too large, reset mid-body.
    let mut tasks = Vec::new();
    let mut valid = Vec::new();
    for i in 0..40 {
        let mut sender = sender.clone();
        let data = body(200 + i, 100 + 50 * i);
        let kind = i % 8;
        if kind == 0 || kind == 1 {
            valid.push(data.clone());
        }
        tasks.push(tokio::spawn(async move {
            let sig = signature(&data);
            let request = match kind {
                0 => h2_request(Some(&sig))
                    .body(Full::new(Bytes::from(data)).map_err(Into::into).boxed()),
                1 => h2_request(None)
                    .header("x-hub-signature", &sig)
                    .body(h2_body(&data, 7, false)),
                2 => h2_request(Some(&signature(b"other"))).body(h2_body(&data, 64, false)),
                3 => h2_request(None).body(h2_body(&data, 64, false)),
                4 => h2_request(Some(&sig))
                    .header("x-hub-signature", &sig)
                    .body(h2_body(&data, 64, false)),
                5 => {
                    let big = body(0, LIMIT + 1);
                    h2_request(Some(&signature(&big)))
                        .header(header::CONTENT_LENGTH, big.len())
                        .body(Full::new(Bytes::from(big)).map_err(Into::into).boxed())
                }
                6 => {
                    let big = body(0, 3 * LIMIT);
                    h2_request(Some(&signature(&big))).body(h2_body(&big, 1000, false))
                }
                _ => h2_request(Some(&sig)).body(h2_body(&data[..data.len() / 2], 16, true)),
            }
            .unwrap();
            (kind, client::send_h2(&mut sender, request).await)
        }));
    }
    for task in tasks {
        let (kind, result) = task.await.unwrap();
        let expected = match kind {
            0 | 1 => Some(StatusCode::OK),
            2..=4 => Some(StatusCode::UNAUTHORIZED),
            5 | 6 => Some(StatusCode::PAYLOAD_TOO_LARGE),
            // The client reset the stream: there is no response to see.
            _ => None,
        };
        assert_eq!(result.ok().map(|a| a.status), expected, "kind {kind}");
    }
    let mut seen: Vec<Vec<u8>> = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|seen| {
            assert_eq!(seen.version, http::Version::HTTP_2);
            seen.body.to_vec()
        })
        .collect();
    seen.sort();
    valid.sort();
    assert_eq!(
        seen, valid,
        "every valid request handled once, and only those"
    );

    // HEAD over HTTP/2 is Intercom's URL check: 200, service not called.
    let mut sender = sender;
    let request = Request::head("http://localhost/webhooks/intercom")
        .version(http::Version::HTTP_2)
        .body(Empty::new().map_err(Into::into).boxed())
        .unwrap();
    let answer = client::send_h2(&mut sender, request).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.calls(), valid.len());
}

#[tokio::test]
async fn a_stalled_http2_body_is_cut_by_the_body_idle_timeout() {
    let (addr, recorder) = server().await;
    let mut sender = client::h2(addr).await;
    let data = body(14, 300);
    // Half the body, then nothing, with the stream left open.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tx.send(Bytes::copy_from_slice(&data[..150])).unwrap();
    let frames = stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|data| data.map(|data| Ok::<_, client::BoxError>(Frame::data(data))))
    });
    let request = h2_request(Some(&signature(&data)))
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let answer = client::send_h2(&mut sender, request).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, r#"{"error":"request body could not be read"}"#);
    drop(tx);
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn nothing_logged_holds_the_secret_or_a_signature() {
    let (logs, _guard) = Logs::start();
    let (addr, _) = server().await;
    let data = body(12, 100);
    let valid = signature(&data);
    let forged = signature(b"forged");
    for request in [
        signed_request(&data),
        {
            let mut request = head(&[
                format!("x-hub-signature: {forged}").as_bytes(),
                format!("content-length: {}", data.len()).as_bytes(),
            ]);
            request.extend_from_slice(&data);
            request
        },
        {
            let mut request = head(&[
                format!("x-hub-signature: {valid}").as_bytes(),
                format!("x-hub-signature: {forged}").as_bytes(),
                b"content-length: 0",
            ]);
            request.extend_from_slice(b"");
            request
        },
        signed_request(&data)[..150].to_vec(),
    ] {
        let _ = exchange(addr, &request).await;
    }
    let text = logs.text();
    assert!(text.contains("rejected Intercom webhook"), "{text}");
    for needle in [SECRET, &valid[5..], &forged[5..]] {
        assert!(!text.contains(needle), "{needle} was logged:\n{text}");
    }
}

#[tokio::test]
async fn http2_content_length_lies_reset_the_stream_not_the_connection() {
    let (addr, recorder) = server().await;
    let mut sender = client::h2(addr).await;
    let data = body(300, 300);
    for announced in [10, 299, 301, 1000] {
        let request = h2_request(Some(&signature(&data)))
            .header(header::CONTENT_LENGTH, announced)
            .body(h2_body(&data, 50, false))
            .unwrap();
        // A content-length that disagrees with the DATA frames is a stream
        // error in HTTP/2 (RFC 9113, 8.1.1): the stream is reset.
        let result = client::send_h2(&mut sender, request).await;
        assert!(result.is_err(), "{announced}: {result:?}");
    }
    assert_eq!(recorder.calls(), 0);
    // The connection still serves.
    let request = h2_request(Some(&signature(&data)))
        .header(header::CONTENT_LENGTH, data.len())
        .body(h2_body(&data, 50, false))
        .unwrap();
    let answer = client::send_h2(&mut sender, request).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn http2_trailers_never_reach_the_inner_service() {
    let (addr, recorder) = server().await;
    let mut sender = client::h2(addr).await;
    let data = body(15, 300);
    // A captured delivery replayed with trailers the signature does not
    // cover: the body passes, the trailers are dropped.
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-injected", http::HeaderValue::from_static("attacker"));
    trailers.insert("x-hub-signature", http::HeaderValue::from_static("sha1=0"));
    let frames = vec![
        Ok::<_, client::BoxError>(Frame::data(Bytes::copy_from_slice(&data[..100]))),
        Ok(Frame::data(Bytes::copy_from_slice(&data[100..]))),
        Ok(Frame::trailers(trailers)),
    ];
    let request = h2_request(Some(&signature(&data)))
        .body(StreamBody::new(stream::iter(frames)).boxed())
        .unwrap();
    let answer = client::send_h2(&mut sender, request).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
    let seen = recorder.last();
    assert_eq!(seen.body, data);
    assert_eq!(seen.trailers, None, "unsigned trailers reached the service");
}

/// A forged request whose body stalls must hold nothing of the inner
/// service: with a concurrency limit of one *inside* the layer, a signed
/// request is served while the forged one is still being read.
#[tokio::test]
async fn a_stalled_forged_body_holds_no_inner_capacity() {
    let recorder = Recorder::default();
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()).max_body_size(LIMIT))
        .concurrency_limit(1)
        .service(recorder.clone());
    let addr = client::serve(service).await;

    // The attacker: a well-formed but wrong signature, half a body, then
    // silence with the connection held open.
    let data = body(16, 300);
    let mut attacker = Raw::connect(addr).await;
    let mut forged = head(&[
        format!("x-hub-signature: {}", signature(b"something else")).as_bytes(),
        format!("content-length: {}", data.len()).as_bytes(),
    ]);
    forged.extend_from_slice(&data[..150]);
    assert!(attacker.write(&forged).await);
    // Let the server read the head and start on the body.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Intercom: a signed request on another connection is served at once
    // (the guard only keeps a broken build from hanging the suite).
    let valid = body(17, 300);
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        exchange(addr, &signed_request(&valid)),
    )
    .await
    .expect("the signed request waited for the forged one's permit")
    .expect("a response");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
    assert_eq!(recorder.last().body, valid);

    // The forged request, once its body is complete, is refused.
    assert!(attacker.write(&data[150..]).await);
    let answer = attacker.response().await.expect("a response");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(recorder.calls(), 1);
}
