//! Independent reference values through the public `sign` and `verify`:
//! Intercom-style bodies computed with Python's `hmac` and checked with
//! `openssl`, and the HMAC-SHA1 test cases of RFC 2202.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use tower::{Layer, ServiceExt};
use tower_intercom::{
    sign, signature::SignatureError, verify, VerifyIntercomWebhookLayer, WebhookSecret,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signatures");

#[derive(Deserialize)]
struct Vector {
    name: String,
    body_file: String,
    secret: String,
    x_hub_signature: String,
}

#[derive(Deserialize)]
struct Rfc2202 {
    case: u32,
    key_hex: String,
    data_hex: String,
    hmac_sha1_hex: String,
}

fn vectors() -> Vec<(Vector, Vec<u8>)> {
    let json = std::fs::read(format!("{FIXTURES}/vectors.json")).unwrap();
    let vectors: Vec<Vector> = serde_json::from_slice(&json).unwrap();
    assert_eq!(vectors.len(), 6);
    vectors
        .into_iter()
        .map(|v| {
            let body = std::fs::read(format!("{FIXTURES}/{}", v.body_file)).unwrap();
            (v, body)
        })
        .collect()
}

#[test]
fn intercom_vectors_sign_and_verify() {
    for (vector, body) in vectors() {
        let secret = WebhookSecret::new(vector.secret.as_str()).unwrap();
        let expected = HeaderValue::from_str(&vector.x_hub_signature).unwrap();
        assert_eq!(sign(&secret, &body), expected, "{}", vector.name);
        assert_eq!(verify(&secret, &body, &expected), Ok(()), "{}", vector.name);

        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            verify(&secret, &tampered, &expected),
            Err(SignatureError::Mismatch),
            "{}",
            vector.name
        );
    }
}

#[test]
fn pretty_printed_json_has_another_signature() {
    let vectors = vectors();
    let find = |name: &str| vectors.iter().find(|(v, _)| v.name == name).unwrap();
    let (ping, _) = find("ping");
    let (_, pretty_body) = find("ping_pretty");
    let secret = WebhookSecret::new(ping.secret.as_str()).unwrap();
    let header = HeaderValue::from_str(&ping.x_hub_signature).unwrap();
    assert_eq!(
        verify(&secret, pretty_body, &header),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn rfc2202_hmac_sha1_cases() {
    let json = std::fs::read(format!("{FIXTURES}/rfc2202_hmac_sha1.json")).unwrap();
    let cases: Vec<Rfc2202> = serde_json::from_slice(&json).unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let key = hex::decode(&case.key_hex).unwrap();
        let data = hex::decode(&case.data_hex).unwrap();
        let secret = WebhookSecret::new(key).unwrap();
        let expected = format!("sha1={}", case.hmac_sha1_hex);
        assert_eq!(
            sign(&secret, &data),
            expected.as_str(),
            "case {}",
            case.case
        );
        let header = HeaderValue::from_str(&expected).unwrap();
        assert_eq!(
            verify(&secret, &data, &header),
            Ok(()),
            "case {}",
            case.case
        );
    }
}

#[tokio::test]
async fn intercom_vectors_pass_the_middleware() {
    for (vector, body) in vectors() {
        let secret = WebhookSecret::new(vector.secret.as_str()).unwrap();
        let recorder = tower_intercom_test_support::Recorder::default();
        let service = VerifyIntercomWebhookLayer::new(secret).layer(recorder.clone());
        let request = Request::post("/webhooks/intercom")
            .header("x-hub-signature", vector.x_hub_signature.as_str())
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", vector.name);
        assert_eq!(recorder.last().body, body, "{}", vector.name);
    }
}
