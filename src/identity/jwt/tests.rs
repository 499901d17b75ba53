//! The unit tests of signing and checking Messenger JWTs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::Mac;

use super::{verify::MAX_LEEWAY, *};
use crate::identity::IdentitySecret;

fn secret() -> IdentitySecret {
    "unit-test-identity-secret".parse().unwrap()
}

#[test]
fn signs_the_documented_claims_in_order() {
    let token = MessengerJwt::new("u-1")
        .email("a@example.com")
        .attribute("name", "Ada")
        .expires_at(UNIX_EPOCH + Duration::from_secs(4_102_444_800))
        .sign(&secret())
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
    assert_eq!(header, br#"{"typ":"JWT","alg":"HS256"}"#);
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    assert_eq!(
        payload,
        br#"{"user_id":"u-1","email":"a@example.com","exp":4102444800,"name":"Ada"}"#
    );
}

#[test]
fn default_expiry_is_one_hour() {
    let before = SystemTime::now();
    let token = MessengerJwt::new("u-1").sign(&secret()).unwrap();
    let claims = MessengerJwtVerifier::new(secret()).verify(&token).unwrap();
    let lifetime = claims
        .expires_at()
        .duration_since(before)
        .unwrap_or_default();
    assert!(lifetime <= MessengerJwt::DEFAULT_LIFETIME + Duration::from_secs(1));
    assert!(lifetime >= MessengerJwt::DEFAULT_LIFETIME - Duration::from_secs(2));
}

#[test]
fn refuses_to_sign_bad_claims() {
    let s = secret();
    for jwt in [
        MessengerJwt::new(""),
        MessengerJwt::new("  "),
        MessengerJwt::new("u").email(""),
        MessengerJwt::new("u").attribute("user_id", "someone-else"),
        MessengerJwt::new("u").attribute("exp", 1),
        MessengerJwt::new("u").attribute("email", "x@example.com"),
        MessengerJwt::new("u").expires_at(UNIX_EPOCH - Duration::from_secs(1)),
        MessengerJwt::new("u").expires_in(Duration::MAX),
        MessengerJwt::new("u").expires_at(UNIX_EPOCH + Duration::from_secs(MAX_EXP + 1)),
    ] {
        assert_eq!(
            jwt.sign(&s).unwrap_err().kind(),
            JwtErrorKind::InvalidClaims,
            "{jwt:?}"
        );
    }
}

/// A token with exactly this header and payload JSON, signed with `key`.
fn token(key: &IdentitySecret, header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = key.hmac();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

const NOW: u64 = 2_000_000_000;
const HS256: &str = r#"{"alg":"HS256"}"#;

fn verify(token: &str) -> Result<MessengerClaims, JwtError> {
    MessengerJwtVerifier::new(secret()).verify_at(token, NOW)
}

fn kind(token: &str) -> JwtErrorKind {
    verify(token).unwrap_err().kind()
}

#[test]
fn the_header_is_the_documented_constant() {
    assert_eq!(
        URL_SAFE_NO_PAD.encode(HEADER),
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"
    );
}

#[test]
fn accepts_a_minimal_token_signed_elsewhere() {
    let claims = verify(&token(
        &secret(),
        HS256,
        r#"{"exp":2000000000,"user_id":"u","iat":1}"#,
    ))
    .unwrap();
    assert_eq!(claims.user_id(), "u");
    assert_eq!(claims.attribute("iat"), Some(&1.into()));
}

#[test]
fn refuses_padding_foreign_bytes_and_stray_bits() {
    let good = token(&secret(), HS256, r#"{"user_id":"u","exp":2000000000}"#);
    assert!(verify(&good).is_ok());
    let (input, signature) = good.rsplit_once('.').unwrap();
    let (header, payload) = input.split_once('.').unwrap();
    // 43 characters for 32 bytes: the last one carries 2 unused bits.
    assert_eq!(signature.len(), 43);
    for bad in [
        format!("{good}="),
        format!("{header}=.{payload}.{signature}"),
        format!("{header}.{payload}=.{signature}"),
        format!("{header}.{payload}.{signature}=="),
        format!(" {good}"),
        format!("{good} "),
        format!("{good}\n"),
        format!("+{}.{payload}.{signature}", &header[1..]),
        format!("{header}.{payload}./{}", &signature[1..]),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{header}.{payload}"),
        format!("{header}..{payload}.{signature}"),
    ] {
        assert_ne!(bad, good);
        assert!(verify(&bad).is_err(), "{bad}");
    }
    // A signature with non-zero unused bits decodes to the same bytes
    // in lenient decoders: it must be refused all the same.
    let mut bits = signature.as_bytes().to_vec();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.iter().position(|&c| c == bits[42]).unwrap();
    bits[42] = alphabet[index ^ 1];
    let bits = String::from_utf8(bits).unwrap();
    assert_eq!(
        kind(&format!("{header}.{payload}.{bits}")),
        JwtErrorKind::Malformed
    );
}

#[test]
fn the_header_must_be_an_hs256_object_without_crit() {
    let s = secret();
    let payload = r#"{"user_id":"u","exp":2000000000}"#;
    for (header, expected) in [
        (r#"{"alg":"none"}"#, JwtErrorKind::UnsupportedAlgorithm),
        (r#"{"alg":"HS512"}"#, JwtErrorKind::UnsupportedAlgorithm),
        (r#"{"alg":"hs256"}"#, JwtErrorKind::UnsupportedAlgorithm),
        (r#"{"alg":["HS256"]}"#, JwtErrorKind::UnsupportedAlgorithm),
        (r#"{"alg":null}"#, JwtErrorKind::UnsupportedAlgorithm),
        (r#"{"typ":"JWT"}"#, JwtErrorKind::Malformed),
        (r#"["HS256"]"#, JwtErrorKind::Malformed),
        (r#""HS256""#, JwtErrorKind::Malformed),
        ("", JwtErrorKind::Malformed),
        ("{", JwtErrorKind::Malformed),
        ("\u{feff}{\"alg\":\"HS256\"}", JwtErrorKind::Malformed),
        (r#"{"alg":"HS256","crit":["exp"]}"#, JwtErrorKind::Malformed),
        (
            r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
            JwtErrorKind::Malformed,
        ),
    ] {
        assert_eq!(kind(&token(&s, header, payload)), expected, "{header}");
    }
    // Whitespace and other members are fine: it is JSON.
    assert!(verify(&token(
        &s,
        " {\"kid\":\"k\", \"alg\" : \"HS256\"}\n",
        payload
    ))
    .is_ok());
}

#[test]
fn the_signature_is_checked_before_the_claims() {
    let other: IdentitySecret = "another-secret".parse().unwrap();
    for payload in [
        r#"{"user_id":"u","exp":1}"#,
        r#"{"user_id":"u","exp":2000000000,"nbf":3000000000}"#,
        r#"{"user_id":"u"}"#,
        r#"{"exp":2000000000}"#,
        r#"{"user_id":"u","exp":2000000000,"aud":"x"}"#,
        "[]",
        "not json",
    ] {
        assert_eq!(
            kind(&token(&other, HS256, payload)),
            JwtErrorKind::InvalidSignature,
            "{payload}"
        );
    }
    // A signature of the wrong length is a wrong signature.
    let good = token(&secret(), HS256, r#"{"user_id":"u","exp":2000000000}"#);
    let input = good.rsplit_once('.').unwrap().0;
    for signature in [
        "",
        "AA",
        &URL_SAFE_NO_PAD.encode([0u8; 31]),
        &URL_SAFE_NO_PAD.encode([0u8; 64]),
    ] {
        assert_eq!(
            kind(&format!("{input}.{signature}")),
            JwtErrorKind::InvalidSignature
        );
    }
}

#[test]
fn claims_are_checked_once_signed() {
    let s = secret();
    let check = |payload: &str| verify(&token(&s, HS256, payload)).map(|c| c.user_id().to_owned());
    let kind_of = |payload: &str| check(payload).unwrap_err().kind();
    assert_eq!(check(r#"{"user_id":"u","exp":2000000000}"#).unwrap(), "u");
    // exp: required, a whole number, not in the past beyond the leeway.
    assert_eq!(kind_of(r#"{"user_id":"u"}"#), JwtErrorKind::InvalidClaims);
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":"2000000000"}"#),
        JwtErrorKind::InvalidClaims
    );
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":2000000000.5}"#),
        JwtErrorKind::InvalidClaims
    );
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":-1}"#),
        JwtErrorKind::InvalidClaims
    );
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":null}"#),
        JwtErrorKind::InvalidClaims
    );
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":1999999939}"#),
        JwtErrorKind::Expired
    );
    assert!(check(r#"{"user_id":"u","exp":1999999940}"#).is_ok());
    assert!(check(r#"{"user_id":"u","exp":18446744073709551615}"#).is_ok());
    // nbf: optional, a number, not in the future beyond the leeway.
    assert!(check(r#"{"user_id":"u","exp":2000000000,"nbf":2000000060}"#).is_ok());
    assert!(check(r#"{"user_id":"u","exp":2000000000,"nbf":1.5}"#).is_ok());
    assert!(check(r#"{"user_id":"u","exp":2000000000,"nbf":-5}"#).is_ok());
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":2000000000,"nbf":2000000061}"#),
        JwtErrorKind::NotYetValid
    );
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":2000000000,"nbf":"0"}"#),
        JwtErrorKind::InvalidClaims
    );
    // No audience is expected, so any `aud` is someone else's.
    assert_eq!(
        kind_of(r#"{"user_id":"u","exp":2000000000,"aud":"intercom"}"#),
        JwtErrorKind::InvalidClaims
    );
    // user_id and email.
    assert_eq!(
        kind_of(r#"{"user_id":"","exp":2000000000}"#),
        JwtErrorKind::InvalidClaims
    );
    assert_eq!(
        kind_of(r#"{"user_id":7,"exp":2000000000}"#),
        JwtErrorKind::InvalidClaims
    );
    assert_eq!(
        kind_of(r#"{"user_id":"u","email":7,"exp":2000000000}"#),
        JwtErrorKind::InvalidClaims
    );
    // A payload that is not a JSON object, validly signed.
    for payload in [
        "[]",
        "\"u\"",
        "",
        "{",
        r#"{"user_id":"u","exp":2000000000}x"#,
    ] {
        assert_eq!(kind_of(payload), JwtErrorKind::Malformed, "{payload}");
    }
}

#[test]
fn leeway_is_bounded() {
    let s = secret();
    let old = token(&s, HS256, r#"{"user_id":"u","exp":1000}"#);
    let lenient = MessengerJwtVerifier::new(s).leeway(Duration::MAX);
    assert_eq!(lenient.leeway, MAX_LEEWAY.as_secs());
    assert_eq!(
        lenient.verify_at(&old, NOW).unwrap_err().kind(),
        JwtErrorKind::Expired
    );
    assert!(lenient.verify_at(&old, 1000 + MAX_LEEWAY.as_secs()).is_ok());
}

#[test]
fn odd_input_never_panics() {
    let verifier = MessengerJwtVerifier::new(secret()).leeway(Duration::MAX);
    for token in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJhbGciOjF9.e30.",
        "\u{0}.\u{ff}.\u{1F600}",
    ] {
        let err = verifier.verify(token).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                JwtErrorKind::Malformed
                    | JwtErrorKind::UnsupportedAlgorithm
                    | JwtErrorKind::InvalidSignature
            ),
            "{token:?}: {err:?}"
        );
    }
}
