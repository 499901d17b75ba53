//! `examples/tonic.rs` end to end: the example binary on a loopback port,
//! with tonic's health client for gRPC and an HTTP/1.1 client for webhooks.

use std::net::SocketAddr;

use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{server::TcpIncoming, Server},
};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use tower_intercom::{VerifyIntercomWebhookLayer, WebhookSecret};
use tower_intercom_test_support::{
    examples::Running,
    requests::{forged_post, head, ping_body, send, signed_post},
};

const WEBHOOK_PATH: &str = "/webhooks/intercom";
const SECRET: &str = "tonic-example-test-secret";

fn secret() -> WebhookSecret {
    SECRET.parse().unwrap()
}

/// Starts the example on a free port, with the test's secret.
fn start() -> Running {
    Running::start("tonic", &[("INTERCOM_WEBHOOK_SECRET", SECRET)])
}

async fn health_check(addr: SocketAddr, service: &str) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connection");
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn grpc_health_passes_untouched_by_the_webhook_layer() {
    let server = start();
    // No signature on gRPC calls: the layer is scoped to the webhook route.
    assert_eq!(
        health_check(server.addr, "").await.unwrap(),
        ServingStatus::Serving
    );
    let unknown = health_check(server.addr, "nope").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// The example's composition (health routes turned into an axum router,
/// the layer on the webhook route alone), built here with a
/// `HealthReporter` in hand: what the reporter says is what a client sees,
/// through a server that also verifies webhooks.
#[tokio::test]
async fn the_health_reporter_reaches_clients_past_the_webhook_layer() {
    let (health, health_service) = tonic_health::server::health_reporter();
    let router = Routes::new(health_service).into_axum_router().route(
        WEBHOOK_PATH,
        post(|| async { StatusCode::OK }).layer(VerifyIntercomWebhookLayer::new(secret())),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(router))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    health
        .set_service_status("webhooks", tonic_health::ServingStatus::NotServing)
        .await;
    assert_eq!(
        health_check(addr, "webhooks").await.unwrap(),
        ServingStatus::NotServing
    );
    assert_eq!(
        health_check(addr, "").await.unwrap(),
        ServingStatus::Serving
    );
    let response = send(addr, signed_post(WEBHOOK_PATH, &secret(), &ping_body())).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_webhook_route_is_verified_on_the_same_port() {
    let server = start();
    let path = WEBHOOK_PATH;

    let response = send(server.addr, signed_post(path, &secret(), &ping_body())).await;
    assert_eq!(response.status(), StatusCode::OK);

    let response = send(server.addr, forged_post(path, &ping_body())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let mut unsigned = signed_post(path, &secret(), &ping_body());
    unsigned.headers_mut().remove("x-hub-signature");
    let response = send(server.addr, unsigned).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = send(server.addr, head(path)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Signed, but not a notification: the handler's extractor refuses it.
    let response = send(server.addr, signed_post(path, &secret(), b"{not json")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // gRPC still works on the same port alongside HTTP/1.1 webhooks.
    assert_eq!(
        health_check(server.addr, "").await.unwrap(),
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn unknown_paths_are_404_for_http_and_unimplemented_for_grpc() {
    let server = start();
    // A mistyped webhook URL must not look like a successful delivery.
    let response = send(
        server.addr,
        signed_post("/webhooks/intercomm", &secret(), &ping_body()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A gRPC call to a service that does not exist, over HTTP/2.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("http://{}/no.such.Service/Call", server.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "12"); // UNIMPLEMENTED
    let _ = response.into_body().collect().await;
}

#[tokio::test]
async fn shutdown_stops_the_server_cleanly() {
    let server = start();
    let addr = server.addr;
    let response = send(addr, signed_post(WEBHOOK_PATH, &secret(), &ping_body())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(server.terminate().success());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
