//! Fault injection: an inner service that errors, panics or hangs behind the
//! layer, in a real hyper server on loopback. The server keeps serving
//! every other request, and the composition a receiver should use turns
//! each fault into a response Intercom retries (5xx or 408), never into a
//! lost notification or a closed connection:
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(CatchPanicLayer::new())                      // panic -> 500
//!     .layer(TimeoutLayer::with_status_code(408, ...))     // hang  -> 408
//!     .map_result(|result| /* Err -> 500 */)              // error -> 500
//!     .layer(VerifyIntercomWebhookLayer::new(secret))
//!     .service(handler)
//! ```

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder};
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};
use tower_intercom::{sign, webhook::ResponseBody, VerifyIntercomWebhookLayer, WebhookBody};
use tower_intercom_test_support::{
    client::{self, Raw},
    secret, Recorder, SECRET,
};

/// How long the composed server lets the inner service run.
const HANDLER_TIMEOUT: Duration = Duration::from_millis(300);

/// The inner service: records the call like a [`Recorder`], then fails as
/// the request's `x-fault` header asks (`error`, `panic`, `hang`).
#[derive(Clone, Default)]
struct Faulty {
    recorder: Recorder,
}

impl Service<Request<WebhookBody>> for Faulty {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<WebhookBody>) -> Self::Future {
        let fault = request
            .headers()
            .get("x-fault")
            .map(|value| value.to_str().unwrap().to_owned());
        let recorded = self.recorder.call(request);
        Box::pin(async move {
            let response = recorded.await.unwrap_or_else(|never| match never {});
            match fault.as_deref() {
                None => Ok(response),
                Some("error") => Err(std::io::Error::other("the database is down")),
                Some("panic") => panic!("the handler panicked"),
                Some("hang") => std::future::pending().await,
                Some(other) => panic!("unknown fault {other}"),
            }
        })
    }
}

/// The layer and [`Faulty`], nothing else: what a fault does to a bare
/// hyper server.
async fn bare_server() -> (SocketAddr, Recorder) {
    let faulty = Faulty::default();
    let recorder = faulty.recorder.clone();
    let service = ServiceBuilder::new()
        .layer(VerifyIntercomWebhookLayer::new(secret()))
        .service(faulty);
    (client::serve(service).await, recorder)
}

/// The composition of the module documentation.
async fn composed_server() -> (SocketAddr, Recorder) {
    let faulty = Faulty::default();
    let recorder = faulty.recorder.clone();
    let service = ServiceBuilder::new()
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            HANDLER_TIMEOUT,
        ))
        .map_result(
            |result: Result<Response<ResponseBody<_>>, std::io::Error>| {
                // Every outcome becomes a response (the error type stays the
                // handler's, for `poll_ready`).
                Ok::<_, std::io::Error>(result.unwrap_or_else(|err| {
                    tracing::error!(error = %err, "webhook handler failed");
                    let mut response = Response::new(ResponseBody::default());
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    response
                }))
            },
        )
        .layer(VerifyIntercomWebhookLayer::new(secret()))
        .service(faulty);
    (client::serve(service).await, recorder)
}

fn webhook(id: u32, fault: Option<&str>) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"type":"notification_event","topic":"ping","id":"notif_{id}"}}"#);
    let mut request = Request::post("/webhooks/intercom")
        .header("x-hub-signature", sign(&secret(), body.as_bytes()))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    if let Some(fault) = fault {
        request
            .headers_mut()
            .insert("x-fault", fault.parse().unwrap());
    }
    request
}

fn forged(id: u32, fault: &str) -> Request<Full<Bytes>> {
    let mut request = webhook(id, Some(fault));
    request
        .headers_mut()
        .insert("x-hub-signature", sign(&secret(), b"other"));
    request
}

/// `request` as raw HTTP/1.1 bytes on a fresh connection: the first
/// response, or `None` when the server closed the connection without one.
async fn raw_exchange(addr: SocketAddr, request: Request<Full<Bytes>>) -> Option<client::Answer> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let mut bytes = format!(
        "{} {} HTTP/1.1\r\nhost: localhost\r\n",
        parts.method, parts.uri
    );
    for (name, value) in &parts.headers {
        bytes.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    bytes.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut raw = Raw::connect(addr).await;
    raw.write(&[bytes.as_bytes(), &body].concat()).await;
    raw.response().await
}

#[tokio::test]
async fn bare_server_faults_close_one_connection_only() {
    let (addr, recorder) = bare_server().await;

    // An error or a panic in the handler: hyper closes that connection
    // without a response (the sender sees a failure and retries).
    assert!(raw_exchange(addr, webhook(1, Some("error")))
        .await
        .is_none());
    assert!(raw_exchange(addr, webhook(2, Some("panic")))
        .await
        .is_none());
    assert_eq!(recorder.calls(), 2, "both were verified and handled");

    // The server keeps serving.
    for id in 3..6 {
        let answer = client::send(addr, webhook(id, None)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // A forged request never reaches the faulty handler.
    let answer = client::send(addr, forged(6, "panic")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(recorder.calls(), 5);
}

#[tokio::test]
async fn an_inner_error_becomes_a_500() {
    let (addr, recorder) = composed_server().await;
    let answer = client::send(addr, webhook(1, Some("error"))).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.body.is_empty());
    let answer = client::send(addr, webhook(2, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = client::send(addr, forged(3, "error")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(recorder.calls(), 2);
}

#[tokio::test]
async fn an_inner_panic_is_caught_and_the_connection_survives() {
    let (addr, recorder) = composed_server().await;
    let answer = client::send(addr, webhook(1, Some("panic"))).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!String::from_utf8_lossy(&answer.body).contains(SECRET));

    // Over HTTP/2, a panicking stream among others on one connection: the
    // others are answered.
    let sender = client::h2(addr).await;
    let mut tasks = Vec::new();
    for id in 10..20 {
        let mut sender = sender.clone();
        let fault = (id % 3 == 0).then_some("panic");
        tasks.push(tokio::spawn(async move {
            let request = webhook(id, fault).map(|body| body.map_err(Into::into).boxed());
            let (mut parts, body) = request.into_parts();
            parts.version = http::Version::HTTP_2;
            parts.uri = "http://localhost/webhooks/intercom".parse().unwrap();
            let answer = client::send_h2(&mut sender, Request::from_parts(parts, body))
                .await
                .expect("a response on the same connection");
            (fault.is_some(), answer.status)
        }));
    }
    let mut panicked = 0;
    for task in tasks {
        let (panics, status) = task.await.unwrap();
        if panics {
            panicked += 1;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert_eq!(panicked, 3);
    assert_eq!(recorder.calls(), 11);
    let answer = client::send(addr, webhook(30, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn a_hung_inner_service_times_out_while_others_are_served() {
    let (addr, recorder) = composed_server().await;
    let hung = tokio::spawn(async move { client::send(addr, webhook(1, Some("hang"))).await });
    // Wait until the hung request is inside the handler.
    tokio::time::timeout(client::PATIENCE, async {
        while recorder.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the hung request reached the handler");

    for id in 2..5 {
        let answer = client::send(addr, webhook(id, None)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let answer = hung.await.unwrap();
    assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(recorder.calls(), 4);
}
