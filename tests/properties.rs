//! Property tests of the signature and of the middleware's verdicts.

mod common;

use bytes::Bytes;
use common::{Recorder, ScriptedBody, Step};
use http::{HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use tower::{Layer, ServiceExt};
use tower_intercom::{sign, verify, SignatureError, VerifyIntercomWebhookLayer, WebhookSecret};

fn secret_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes that are not blank: the secret's own rules refuse the rest.
    prop::collection::vec(any::<u8>(), 1..100).prop_filter("not blank", |bytes| {
        !bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    })
}

proptest! {
    #[test]
    fn signatures_verify_and_any_flipped_bit_fails(
        key in secret_bytes(),
        body in prop::collection::vec(any::<u8>(), 0..2048),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let secret = WebhookSecret::new(key).unwrap();
        let header = sign(&secret, &body);
        prop_assert_eq!(verify(&secret, &body, &header), Ok(()));

        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 1 << bit;
            prop_assert_eq!(verify(&secret, &tampered, &header), Err(SignatureError::Mismatch));
        }

        // Flip one bit of the hex digest: either another hex digit (a
        // mismatch) or not hex at all (malformed); never a pass.
        let mut value = header.as_bytes().to_vec();
        let at = 5 + flip.index(40);
        value[at] ^= 1 << bit;
        if let Ok(flipped) = HeaderValue::from_bytes(&value) {
            let verdict = verify(&secret, &body, &flipped);
            let digit_case_only = value[at].eq_ignore_ascii_case(&header.as_bytes()[at]);
            if digit_case_only {
                prop_assert_eq!(verdict, Ok(()));
            } else {
                prop_assert!(verdict.is_err());
            }
        }
    }

    #[test]
    fn any_frame_split_gives_the_verdict_of_the_whole_body(
        body in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        forged in any::<bool>(),
        limit in 300usize..700,
    ) {
        let secret = WebhookSecret::new("prop-secret").unwrap();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut steps = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            steps.push(Step::Data(Bytes::copy_from_slice(&body[start..cut])));
            start = cut;
        }
        let header = if forged { sign(&secret, b"something else") } else { sign(&secret, &body) };
        let request = Request::post("/").header("x-hub-signature", header).body(ScriptedBody::new(steps)).unwrap();
        let recorder = Recorder::default();
        let service = VerifyIntercomWebhookLayer::new(secret).max_body_size(limit).layer(recorder.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let status = runtime.block_on(service.oneshot(request)).unwrap().status();

        let expected = if body.len() > limit {
            StatusCode::PAYLOAD_TOO_LARGE
        } else if forged {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        prop_assert_eq!(status, expected);
        prop_assert_eq!(recorder.calls(), usize::from(expected == StatusCode::OK));
        if expected == StatusCode::OK {
            prop_assert_eq!(&recorder.last().body[..], &body[..]);
        }
    }
}
