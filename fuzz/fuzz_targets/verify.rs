//! `verify` and `SignatureScheme::verify` against any secret, body and
//! header bytes, with an HMAC computed here as the oracle; `sign` and
//! `verify` round trip; a flipped body bit never verifies; secrets refuse
//! blank keys and never print.
#![no_main]

use arbitrary::Arbitrary;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use sha1::Sha1;
use sha2::Sha256;
use tower_intercom::{verify, signature::SignatureError, SignatureScheme, WebhookSecret};
use tower_intercom_fuzz::{model::well_formed, scheme};

#[derive(Arbitrary, Debug)]
struct Input {
    key: Vec<u8>,
    body: Vec<u8>,
    header: Vec<u8>,
    body_scheme: bool,
    flip_at: u16,
    flip_bit: u8,
}

/// The digest, computed without the crate.
fn digest(scheme: SignatureScheme, key: &[u8], body: &[u8]) -> Vec<u8> {
    match scheme {
        SignatureScheme::HubSignature => {
            let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fuzz_target!(|input: Input| {
    let Input {
        key,
        body,
        header,
        body_scheme,
        flip_at,
        flip_bit,
    } = input;
    let scheme = scheme(body_scheme);
    let blank = key
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    let secret = match WebhookSecret::new(key.clone()) {
        Ok(secret) => {
            assert!(!blank, "a blank secret was accepted");
            secret
        }
        Err(_) => {
            assert!(blank, "a non-blank secret was refused");
            return;
        }
    };
    assert_eq!(format!("{secret:?}"), "WebhookSecret(REDACTED)");
    if let Ok(text) = std::str::from_utf8(&key) {
        let padded =
            text.starts_with([' ', '\t', '\r', '\n']) || text.ends_with([' ', '\t', '\r', '\n']);
        match text.parse::<WebhookSecret>() {
            Ok(_) => assert!(!padded),
            Err(err) => {
                assert!(padded);
                let shown = format!("{err} {err:?}");
                assert!(text.trim().len() < 12 || !shown.contains(text.trim()));
            }
        }
    }

    let expected = digest(scheme, &key, &body);

    // Any header bytes that can be a header value.
    if let Ok(value) = HeaderValue::from_bytes(&header) {
        let verdict = scheme.verify(&secret, &body, &value);
        let oracle = match well_formed(scheme, value.as_bytes()) {
            None => Err(SignatureError::Malformed),
            Some(hex) if hex.eq_ignore_ascii_case(hex::encode(&expected).as_bytes()) => Ok(()),
            Some(_) => Err(SignatureError::Mismatch),
        };
        assert_eq!(verdict, oracle, "{value:?}");
        if scheme == SignatureScheme::HubSignature {
            assert_eq!(verify(&secret, &body, &value), verdict);
        }
    }

    // sign: lowercase hex of the HMAC, in the scheme's format; it verifies.
    let signed = scheme.sign(&secret, &body);
    let hex = well_formed(scheme, signed.as_bytes()).expect("sign() is well formed");
    assert_eq!(hex, hex::encode(&expected).as_bytes());
    assert_eq!(scheme.verify(&secret, &body, &signed), Ok(()));

    // One flipped bit of the body never verifies.
    if !body.is_empty() {
        let mut tampered = body.clone();
        tampered[usize::from(flip_at) % body.len()] ^= 1 << (flip_bit % 8);
        assert_eq!(
            scheme.verify(&secret, &tampered, &signed),
            Err(SignatureError::Mismatch)
        );
    }
});
