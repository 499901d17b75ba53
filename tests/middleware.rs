//! Every row of the rejection table, driven in-process with `oneshot`.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use http_body::SizeHint;
use serde_json::Value;
use tower::{Layer, Service, ServiceExt};
use tower_intercom::{
    rejection::Rejection, rejection::RejectionKind, sign, webhook::HeadPolicy,
    webhook::DEFAULT_MAX_BODY_SIZE, SignatureScheme, VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::{body_bytes, secret, Recorder, ScriptedBody, Step, PING};

fn signed(body: ScriptedBody, data: &[u8]) -> Request<ScriptedBody> {
    Request::post("/webhooks/intercom")
        .header("x-hub-signature", sign(&secret(), data))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap()
}

fn one_frame(data: &'static [u8]) -> ScriptedBody {
    ScriptedBody::new([Step::Data(Bytes::from_static(data))])
}

async fn send(
    layer: &VerifyIntercomWebhookLayer,
    request: Request<ScriptedBody>,
) -> (Recorder, StatusCode, HeaderMap, Bytes, Option<Rejection>) {
    let recorder = Recorder::default();
    let response = layer
        .layer(recorder.clone())
        .oneshot(request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let rejection = parts.extensions.get::<Rejection>().copied();
    (
        recorder,
        parts.status,
        parts.headers,
        body_bytes(body).await,
        rejection,
    )
}

/// Asserts a JSON rejection with `status`, `kind` and the inner service not
/// called; returns the error message.
async fn assert_rejected(
    layer: &VerifyIntercomWebhookLayer,
    request: Request<ScriptedBody>,
    status: StatusCode,
    kind: RejectionKind,
) -> String {
    let (recorder, got, headers, body, rejection) = send(layer, request).await;
    assert_eq!(got, status);
    assert_eq!(recorder.calls(), 0, "inner service must not be called");
    assert_eq!(rejection.map(|r| r.kind()), Some(kind));
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let json: Value = serde_json::from_slice(&body).expect("rejection body is JSON");
    json["error"].as_str().expect("an error message").to_owned()
}

fn layer() -> VerifyIntercomWebhookLayer {
    VerifyIntercomWebhookLayer::new(secret())
}

#[tokio::test]
async fn valid_signature_reaches_inner_with_request_unchanged() {
    let request = Request::post("/webhooks/intercom?x=1")
        .version(Version::HTTP_2)
        .header("x-hub-signature", sign(&secret(), PING))
        .header("x-custom", "kept")
        .body(one_frame(PING))
        .unwrap();
    let (recorder, status, _, body, rejection) = send(&layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "handled");
    assert!(rejection.is_none());
    let seen = recorder.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "/webhooks/intercom?x=1");
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["x-hub-signature"], sign(&secret(), PING));
    assert_eq!(seen.body, PING);
    let verified = seen.verified.expect("VerifiedWebhook extension");
    assert_eq!(verified.secret_index(), 0);
    assert_eq!(verified.scheme(), SignatureScheme::HubSignature);
}

#[tokio::test]
async fn many_small_frames_and_pending_polls_verify() {
    let steps = PING
        .chunks(7)
        .flat_map(|chunk| [Step::Pending, Step::Data(Bytes::copy_from_slice(chunk))]);
    let request = signed(ScriptedBody::new(steps), PING);
    let (recorder, status, ..) = send(&layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.last().body, PING);

    let request = signed(ScriptedBody::chunked(PING, 1), PING);
    let (recorder, status, ..) = send(&layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.last().body, PING);
}

#[tokio::test]
async fn empty_frames_pass_and_unsigned_trailers_are_dropped() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-trailer", HeaderValue::from_static("yes"));
    let body = ScriptedBody::new([
        Step::Data(Bytes::new()),
        Step::Data(Bytes::from_static(&PING[..10])),
        Step::Data(Bytes::new()),
        Step::Data(Bytes::from_static(&PING[10..])),
        Step::Trailers(trailers.clone()),
    ]);
    let (recorder, status, ..) = send(&layer(), signed(body, PING)).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.last();
    assert_eq!(seen.body, PING);
    // Trailers are not covered by the signature: the inner service never
    // sees them.
    assert_eq!(seen.trailers, None);
}

#[tokio::test]
async fn empty_body_with_its_signature_passes() {
    let (recorder, status, ..) = send(&layer(), signed(ScriptedBody::new([]), b"")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(recorder.last().body.is_empty());
}

#[tokio::test]
async fn missing_signature_is_401_before_the_body_is_polled() {
    let body = one_frame(PING);
    let polls = body.polls();
    let request = Request::post("/").body(body).unwrap();
    let message = assert_rejected(
        &layer(),
        request,
        StatusCode::UNAUTHORIZED,
        RejectionKind::MissingSignature,
    )
    .await;
    assert_eq!(message, "missing X-Hub-Signature header");
    assert_eq!(polls.load(Ordering::SeqCst), 0, "body must not be polled");
}

#[tokio::test]
async fn duplicated_signature_headers_are_401_even_if_one_is_valid() {
    let body = one_frame(PING);
    let polls = body.polls();
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), PING))
        .header("x-hub-signature", sign(&secret(), PING))
        .body(body)
        .unwrap();
    assert_rejected(
        &layer(),
        request,
        StatusCode::UNAUTHORIZED,
        RejectionKind::MultipleSignatures,
    )
    .await;
    assert_eq!(polls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_signatures_are_401_before_the_body_is_polled() {
    let good = sign(&secret(), PING);
    let hex = &good.to_str().unwrap()[5..];
    let cases: Vec<HeaderValue> = vec![
        HeaderValue::from_static(""),
        HeaderValue::from_static("sha1="),
        HeaderValue::from_str(hex).unwrap(),
        HeaderValue::from_str(&format!("sha256={hex}")).unwrap(),
        HeaderValue::from_str(&format!("sha1={}", &hex[1..])).unwrap(),
        HeaderValue::from_str(&format!("sha1={hex}a")).unwrap(),
        HeaderValue::from_str(&format!("sha1={}g", &hex[1..])).unwrap(),
        HeaderValue::from_bytes(&[b"sha1=".as_slice(), &[0xe9; 40]].concat()).unwrap(),
        HeaderValue::from_bytes(&[0x80; 45]).unwrap(),
    ];
    for value in cases {
        let body = one_frame(PING);
        let polls = body.polls();
        let request = Request::post("/")
            .header("x-hub-signature", value.clone())
            .body(body)
            .unwrap();
        let message = assert_rejected(
            &layer(),
            request,
            StatusCode::UNAUTHORIZED,
            RejectionKind::MalformedSignature,
        )
        .await;
        assert_eq!(polls.load(Ordering::SeqCst), 0, "{value:?}");
        assert!(!message.contains(hex), "never echo a signature");
    }
}

#[tokio::test]
async fn uppercase_hex_is_accepted() {
    let upper = format!(
        "sha1={}",
        sign(&secret(), PING).to_str().unwrap()[5..].to_ascii_uppercase()
    );
    let request = Request::post("/")
        .header("x-hub-signature", upper)
        .body(one_frame(PING))
        .unwrap();
    let (recorder, status, ..) = send(&layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn mismatch_is_401_and_the_message_echoes_no_signature() {
    let other = WebhookSecret::new("another-secret").unwrap();
    let forged = sign(&other, PING);
    let expected = sign(&secret(), PING);
    let request = Request::post("/")
        .header("x-hub-signature", forged.clone())
        .body(one_frame(PING))
        .unwrap();
    let message = assert_rejected(
        &layer(),
        request,
        StatusCode::UNAUTHORIZED,
        RejectionKind::InvalidSignature,
    )
    .await;
    assert_eq!(message, "invalid signature");
    for signature in [forged, expected] {
        assert!(!message.contains(&signature.to_str().unwrap()[5..]));
    }

    // A body changed by one byte after signing.
    let mut tampered = PING.to_vec();
    tampered[20] ^= 1;
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), PING))
        .body(ScriptedBody::new([Step::Data(tampered.into())]))
        .unwrap();
    assert_rejected(
        &layer(),
        request,
        StatusCode::UNAUTHORIZED,
        RejectionKind::InvalidSignature,
    )
    .await;
}

#[tokio::test]
async fn body_stream_error_is_400() {
    let body = ScriptedBody::new([
        Step::Data(Bytes::from_static(&PING[..20])),
        Step::Error("connection reset"),
        Step::Data(Bytes::from_static(&PING[20..])),
    ]);
    let message = assert_rejected(
        &layer(),
        signed(body, PING),
        StatusCode::BAD_REQUEST,
        RejectionKind::BodyUnreadable,
    )
    .await;
    assert_eq!(message, "request body could not be read");
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[tokio::test]
async fn sizes_at_below_and_above_the_limit() {
    const LIMIT: usize = 1000;
    let layer = layer().max_body_size(LIMIT);
    for (len, frame) in [(LIMIT - 1, 64), (LIMIT, 64), (LIMIT, LIMIT)] {
        let data = body_of(len);
        let (recorder, status, ..) =
            send(&layer, signed(ScriptedBody::chunked(&data, frame), &data)).await;
        assert_eq!(status, StatusCode::OK, "{len} bytes");
        assert_eq!(recorder.last().body, data);
    }

    // One byte over, streamed without Content-Length: reading stops at the
    // frame that passes the limit.
    let data = body_of(LIMIT + 1);
    let body = ScriptedBody::chunked(&data, 100);
    let polls = body.polls();
    let message = assert_rejected(
        &layer,
        signed(body, &data),
        StatusCode::PAYLOAD_TOO_LARGE,
        RejectionKind::PayloadTooLarge,
    )
    .await;
    assert_eq!(message, "payload too large");
    assert_eq!(polls.load(Ordering::SeqCst), 11, "stops at the 11th frame");
}

#[tokio::test]
async fn content_length_above_the_limit_is_413_before_the_body_is_read() {
    const LIMIT: usize = 1000;
    let layer = layer().max_body_size(LIMIT);
    let data = body_of(LIMIT + 1);
    let body = ScriptedBody::chunked(&data, 100);
    let polls = body.polls();
    let mut request = signed(body, &data);
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, (LIMIT + 1).into());
    assert_rejected(
        &layer,
        request,
        StatusCode::PAYLOAD_TOO_LARGE,
        RejectionKind::PayloadTooLarge,
    )
    .await;
    assert_eq!(polls.load(Ordering::SeqCst), 0);

    // A huge announced length is refused the same way, never allocated.
    let body = one_frame(PING);
    let polls = body.polls();
    let mut request = signed(body, PING);
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, u64::MAX.into());
    let (recorder, status, ..) = send(&layer, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!((recorder.calls(), polls.load(Ordering::SeqCst)), (0, 0));

    // So is a body whose exact size hint is above the limit.
    let body = one_frame(PING).with_size_hint(SizeHint::with_exact(LIMIT as u64 + 1));
    let polls = body.polls();
    let (_, status, ..) = send(&layer, signed(body, PING)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(polls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_lying_content_length_does_not_bypass_the_limit() {
    const LIMIT: usize = 1000;
    let layer = layer().max_body_size(LIMIT);
    let data = body_of(5 * LIMIT);
    let mut request = signed(ScriptedBody::chunked(&data, 300), &data);
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, 10.into());
    let (recorder, status, ..) = send(&layer, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(recorder.calls(), 0);
}

#[test]
fn default_limit_is_two_mebibytes() {
    assert_eq!(DEFAULT_MAX_BODY_SIZE, 2 * 1024 * 1024);
}

#[tokio::test]
async fn head_is_answered_by_default_without_calling_inner() {
    let body = ScriptedBody::new([]);
    let polls = body.polls();
    let request = Request::head("/webhooks/intercom").body(body).unwrap();
    let (recorder, status, _, body, rejection) = send(&layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert!(rejection.is_none());
    assert_eq!((recorder.calls(), polls.load(Ordering::SeqCst)), (0, 0));
}

#[tokio::test]
async fn head_can_be_forwarded_unverified() {
    let layer = layer().head(HeadPolicy::Forward);
    let request = Request::head("/webhooks/intercom")
        .body(ScriptedBody::new([]))
        .unwrap();
    let (recorder, status, ..) = send(&layer, request).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.last();
    assert_eq!(seen.method, Method::HEAD);
    assert!(seen.verified.is_none(), "a forwarded HEAD is not verified");
}

#[tokio::test]
async fn head_can_be_rejected() {
    let layer = layer().head(HeadPolicy::Reject);
    let request = Request::head("/webhooks/intercom")
        .body(ScriptedBody::new([]))
        .unwrap();
    let (recorder, status, headers, _, rejection) = send(&layer, request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(rejection.unwrap().kind(), RejectionKind::HeadNotAllowed);
    assert_eq!(recorder.calls(), 0);
}

/// Intercom sends every webhook with `POST`: any other method gets 405
/// with `Allow`, signed or not, without a byte of the body read. (`GET`
/// was answered 401 `missing X-Hub-Signature header`, which sent people
/// who opened the URL in a browser looking for a secret problem.)
#[tokio::test]
async fn other_methods_are_405_with_allow_before_the_body_is_read() {
    for (policy, allow) in [
        (HeadPolicy::Respond, "POST, HEAD"),
        (HeadPolicy::Forward, "POST, HEAD"),
        (HeadPolicy::Reject, "POST"),
    ] {
        for method in [
            Method::GET,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ] {
            let body = ScriptedBody::new([Step::Data(Bytes::from_static(PING))]);
            let polls = body.polls();
            let request = Request::builder()
                .method(method.clone())
                .uri("/webhooks/intercom")
                .header("x-hub-signature", sign(&secret(), PING))
                .body(body)
                .unwrap();
            let (recorder, status, headers, body, rejection) =
                send(&layer().head(policy), request).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(headers[header::ALLOW], allow, "{method} {policy:?}");
            assert_eq!(
                rejection.map(|r| r.kind()),
                Some(RejectionKind::MethodNotAllowed)
            );
            let json: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                json["error"],
                "method not allowed: Intercom sends webhooks with POST"
            );
            assert_eq!((recorder.calls(), polls.load(Ordering::SeqCst)), (0, 0));
        }
    }
}

/// A custom rejection response gets the `Allow` header of a 405 too,
/// unless it set its own.
#[tokio::test]
async fn a_custom_405_gets_allow_unless_it_has_one() {
    let plain = layer().on_rejection(|rejection: &Rejection| {
        let mut response = http::Response::new(Bytes::from_static(b"no"));
        *response.status_mut() = rejection.status();
        response
    });
    let own = layer().on_rejection(|rejection: &Rejection| {
        let mut response = http::Response::new(Bytes::from_static(b"no"));
        *response.status_mut() = rejection.status();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        response
    });
    let get = || {
        Request::get("/webhooks/intercom")
            .body(ScriptedBody::new([]))
            .unwrap()
    };
    let response = plain
        .layer(Recorder::default())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "POST, HEAD");
    let response = own.layer(Recorder::default()).oneshot(get()).await.unwrap();
    assert_eq!(response.headers()[header::ALLOW], "POST");
}

#[tokio::test]
async fn rotation_accepts_each_secret_and_reports_which() {
    let current = WebhookSecret::new("new-secret").unwrap();
    let previous = WebhookSecret::new("old-secret").unwrap();
    let layer = VerifyIntercomWebhookLayer::with_secrets(current.clone(), [previous.clone()]);
    for (secret, index) in [(&current, 0), (&previous, 1)] {
        let request = Request::post("/")
            .header("x-hub-signature", sign(secret, PING))
            .body(ScriptedBody::chunked(PING, 50))
            .unwrap();
        let (recorder, status, ..) = send(&layer, request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(recorder.last().verified.unwrap().secret_index(), index);
        assert_eq!(recorder.last().body, PING);
    }
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), PING))
        .body(one_frame(PING))
        .unwrap();
    let (recorder, status, ..) = send(&layer, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(recorder.calls(), 0);

    let err = VerifyIntercomWebhookLayer::try_with_secrets(Vec::new()).unwrap_err();
    assert_eq!(err.kind(), tower_intercom::ConfigErrorKind::NoSecrets);
}

#[tokio::test]
async fn body_signature_mode_checks_x_body_signature_only() {
    let scheme = SignatureScheme::BodySignature;
    let layer = layer().scheme(scheme);

    let request = Request::post("/canvas")
        .header("x-body-signature", scheme.sign(&secret(), PING))
        .body(ScriptedBody::chunked(PING, 33))
        .unwrap();
    let (recorder, status, ..) = send(&layer, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.last().verified.unwrap().scheme(), scheme);

    // X-Hub-Signature is not what this mode reads.
    let message = assert_rejected(
        &layer,
        signed(one_frame(PING), PING),
        StatusCode::UNAUTHORIZED,
        RejectionKind::MissingSignature,
    )
    .await;
    assert_eq!(message, "missing X-Body-Signature header");

    let request = Request::post("/canvas")
        .header("x-body-signature", sign(&secret(), PING))
        .body(one_frame(PING))
        .unwrap();
    assert_rejected(
        &layer,
        request,
        StatusCode::UNAUTHORIZED,
        RejectionKind::MalformedSignature,
    )
    .await;

    let request = Request::post("/canvas")
        .header("x-body-signature", scheme.sign(&secret(), b"other"))
        .body(one_frame(PING))
        .unwrap();
    assert_rejected(
        &layer,
        request,
        StatusCode::UNAUTHORIZED,
        RejectionKind::InvalidSignature,
    )
    .await;
}

#[tokio::test]
async fn custom_rejection_responses_are_used_and_tagged() {
    let layer = VerifyIntercomWebhookLayer::new(secret()).on_rejection(|r: &Rejection| {
        http::Response::builder()
            .status(if r.kind() == RejectionKind::InvalidSignature {
                StatusCode::FORBIDDEN
            } else {
                r.status()
            })
            .body(Bytes::from(format!("nope: {}", r.kind())))
            .unwrap()
    });
    let recorder = Recorder::default();
    let request = Request::post("/")
        .header("x-hub-signature", sign(&secret(), b"other"))
        .body(one_frame(PING))
        .unwrap();
    let response = layer
        .layer(recorder.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.extensions().get::<Rejection>().unwrap().kind(),
        RejectionKind::InvalidSignature
    );
    assert_eq!(
        body_bytes(response.into_body()).await,
        "nope: invalid_signature"
    );
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn a_one_frame_body_reaches_the_inner_service_without_a_copy() {
    let data = Bytes::from(body_of(2048));
    let address = data.as_ptr();
    let layer = layer();
    let service = layer.layer(tower::service_fn(
        move |request: http::Request<tower_intercom::WebhookBody>| async move {
            let same = request.body().bytes().as_ptr() == address;
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from(if same { "shared" } else { "copied" }),
            )))
        },
    ));
    let request = signed(ScriptedBody::new([Step::Data(data.clone())]), &data);
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_bytes(response.into_body()).await, "shared");
}

/// The capacity of the buffer a body in several frames was collected in,
/// as the inner service received it (`usize::MAX` if not collected once).
async fn collected_capacity(
    layer: &VerifyIntercomWebhookLayer,
    request: Request<ScriptedBody>,
) -> usize {
    let service = layer.layer(tower::service_fn(
        |request: http::Request<tower_intercom::WebhookBody>| async move {
            let capacity = request
                .into_body()
                .into_bytes()
                .try_into_mut()
                .map_or(usize::MAX, |buffer| buffer.capacity());
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from(capacity.to_string()),
            )))
        },
    ));
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_bytes(response.into_body()).await;
    std::str::from_utf8(&body).unwrap().parse().unwrap()
}

/// `Content-Length` is a claim, not bytes: a body announcing 2 MiB whose
/// first frames are a few bytes is buffered in what arrived plus at most
/// 64 KiB. (The buffer was sized from the announced length at the second
/// frame: 2 MiB reserved per connection for a few bytes sent, which let
/// slow clients hold gigabytes of address space.)
#[tokio::test]
async fn a_body_in_several_frames_is_buffered_as_it_arrives_not_as_announced() {
    let data = br#"{"type":"notification_event","id":"notif_1","topic":"ping"}"#;
    let (first, second) = data.split_at(10);
    let body = ScriptedBody::new([
        Step::Data(Bytes::from_static(first)),
        Step::Pending,
        Step::Data(Bytes::from_static(second)),
    ]);
    let mut request = signed(body, data);
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, DEFAULT_MAX_BODY_SIZE.into());
    let capacity = collected_capacity(&layer(), request).await;
    assert!(
        capacity <= data.len() + 64 * 1024,
        "{capacity} bytes reserved for {} received",
        data.len()
    );
}

/// A body without `Content-Length`, in many frames, grows its buffer as it
/// arrives and never past the limit (the limit bounds the memory, not only
/// the bytes accepted).
#[tokio::test]
async fn a_growing_body_never_holds_more_than_the_limit() {
    const LIMIT: usize = 1_000_000;
    let data = body_of(LIMIT);
    let request = signed(ScriptedBody::chunked(&data, 16 * 1024), &data);
    let capacity = collected_capacity(&layer().max_body_size(LIMIT), request).await;
    assert!(capacity >= LIMIT, "{capacity}");
    assert!(
        capacity <= LIMIT,
        "{capacity} bytes reserved, above the {LIMIT}-byte limit"
    );
}

/// An inner service that must be driven ready before each call, and fails
/// if called without it.
#[derive(Clone, Default)]
struct NeedsReady {
    ready: bool,
}

impl tower::Service<Request<tower_intercom::WebhookBody>> for NeedsReady {
    type Response = http::Response<http_body_util::Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<tower_intercom::WebhookBody>) -> Self::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        std::future::ready(Ok(http::Response::new(http_body_util::Full::new(
            Bytes::from_static(b"ok"),
        ))))
    }
}

#[tokio::test]
async fn the_service_that_was_driven_ready_is_the_one_called() {
    let mut service = layer().layer(NeedsReady::default());
    for _ in 0..3 {
        let ready = ServiceExt::<Request<ScriptedBody>>::ready(&mut service)
            .await
            .unwrap();
        let response = ready
            .call(signed(ScriptedBody::chunked(PING, 16), PING))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[test]
fn layer_debug_shows_no_secret() {
    let layer = VerifyIntercomWebhookLayer::with_secrets(
        WebhookSecret::new("topsecret-one").unwrap(),
        [WebhookSecret::new("topsecret-two").unwrap()],
    );
    let service = layer.layer(Recorder::default().calls());
    let shown = format!("{layer:?} {service:?}");
    assert!(!shown.contains("topsecret"), "{shown}");
    assert!(shown.contains("secrets: 2"), "{shown}");
}
