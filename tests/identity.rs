//! Identity Verification and Messenger JWTs against vectors made by another
//! implementation (Python's `hmac` and PyJWT, see
//! `tests/fixtures/identity/make_vectors.py`), and a settings endpoint
//! served over a real socket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};
use tower_intercom::identity::{
    user_hash, IdentitySecret, JwtErrorKind, MessengerJwt, MessengerJwtVerifier,
};

#[derive(Deserialize)]
struct Vectors {
    user_hash: Vec<UserHashVector>,
    jwt: JwtVectors,
}

#[derive(Deserialize)]
struct UserHashVector {
    name: String,
    secret: String,
    identifier: String,
    user_hash: String,
}

#[derive(Deserialize)]
struct JwtVectors {
    secret: String,
    other_secret: String,
    tokens: Vec<JwtVector>,
}

#[derive(Deserialize)]
struct JwtVector {
    name: String,
    token: String,
    expect: String,
    claims: Option<Map<String, Value>>,
    same_as_builder: bool,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/identity/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("read the identity vectors");
    serde_json::from_str(&text).expect("parse the identity vectors")
}

fn jwt_vector<'a>(vectors: &'a Vectors, name: &str) -> &'a JwtVector {
    vectors
        .jwt
        .tokens
        .iter()
        .find(|vector| vector.name == name)
        .unwrap_or_else(|| panic!("no JWT vector named {name}"))
}

fn kind_named(name: &str) -> JwtErrorKind {
    match name {
        "InvalidSignature" => JwtErrorKind::InvalidSignature,
        "Expired" => JwtErrorKind::Expired,
        "NotYetValid" => JwtErrorKind::NotYetValid,
        "UnsupportedAlgorithm" => JwtErrorKind::UnsupportedAlgorithm,
        "Malformed" => JwtErrorKind::Malformed,
        "InvalidClaims" => JwtErrorKind::InvalidClaims,
        other => panic!("unknown expected outcome {other}"),
    }
}

#[test]
fn user_hash_matches_python_hmac() {
    let vectors = vectors();
    assert!(vectors.user_hash.len() >= 5);
    for vector in &vectors.user_hash {
        let secret: IdentitySecret = vector.secret.parse().unwrap();
        assert_eq!(
            user_hash(&secret, &vector.identifier),
            vector.user_hash,
            "{}",
            vector.name
        );
    }
}

#[test]
fn user_hash_follows_the_identifier_exactly() {
    let vectors = vectors();
    let by_name = |name: &str| {
        vectors
            .user_hash
            .iter()
            .find(|vector| vector.name == name)
            .unwrap()
    };
    // Case and platform both change the hash: the caller must pass the
    // identifier as the Messenger gets it, with that platform's secret.
    assert_ne!(
        by_name("email_only").user_hash,
        by_name("email_case_matters").user_hash
    );
    assert_ne!(
        by_name("user_id").user_hash,
        by_name("ios_secret").user_hash
    );
}

#[test]
fn pyjwt_tokens_verify_or_fail_as_expected() {
    let vectors = vectors();
    let secret: IdentitySecret = vectors.jwt.secret.parse().unwrap();
    let verifier = MessengerJwtVerifier::new(secret);
    for vector in &vectors.jwt.tokens {
        let result = verifier.verify(&vector.token);
        if vector.expect == "ok" {
            let claims = result.unwrap_or_else(|err| panic!("{}: {err}", vector.name));
            let mut expected = vector.claims.clone().unwrap();
            assert_eq!(
                Some(claims.user_id()),
                expected.remove("user_id").as_ref().and_then(Value::as_str),
                "{}",
                vector.name
            );
            assert_eq!(
                claims.email(),
                expected.remove("email").as_ref().and_then(Value::as_str),
                "{}",
                vector.name
            );
            let exp = expected.remove("exp").and_then(|exp| exp.as_u64()).unwrap();
            assert_eq!(
                claims.expires_at(),
                UNIX_EPOCH + Duration::from_secs(exp),
                "{}",
                vector.name
            );
            assert_eq!(claims.attributes(), &expected, "{}", vector.name);
        } else {
            let err = match result {
                Ok(claims) => panic!("{}: accepted, with {claims:?}", vector.name),
                Err(err) => err,
            };
            assert_eq!(err.kind(), kind_named(&vector.expect), "{}", vector.name);
            // Errors never echo the token.
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&vector.token), "{}", vector.name);
        }
    }
}

#[test]
fn builder_output_is_byte_for_byte_pyjwt() {
    let vectors = vectors();
    let secret: IdentitySecret = vectors.jwt.secret.parse().unwrap();
    let mut checked = 0;
    for vector in vectors.jwt.tokens.iter().filter(|v| v.same_as_builder) {
        let mut claims = vector.claims.clone().unwrap();
        let user_id = claims.remove("user_id").unwrap();
        let mut jwt = MessengerJwt::new(user_id.as_str().unwrap());
        if let Some(email) = claims.remove("email") {
            jwt = jwt.email(email.as_str().unwrap());
        }
        let exp = claims.remove("exp").unwrap().as_u64().unwrap();
        jwt = jwt.expires_at(UNIX_EPOCH + Duration::from_secs(exp));
        for (name, value) in claims {
            jwt = jwt.attribute(name, value);
        }
        assert_eq!(jwt.sign(&secret).unwrap(), vector.token, "{}", vector.name);
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn wrong_secret_tampering_and_expiry_are_each_refused() {
    let vectors = vectors();
    let secret: IdentitySecret = vectors.jwt.secret.parse().unwrap();
    let verifier = MessengerJwtVerifier::new(secret.clone());
    let kind = |name: &str| {
        verifier
            .verify(&jwt_vector(&vectors, name).token)
            .unwrap_err()
            .kind()
    };
    assert_eq!(kind("wrong_secret"), JwtErrorKind::InvalidSignature);
    assert_eq!(kind("tampered"), JwtErrorKind::InvalidSignature);
    assert_eq!(kind("expired"), JwtErrorKind::Expired);
    assert_eq!(kind("alg_none"), JwtErrorKind::UnsupportedAlgorithm);
    assert_eq!(kind("alg_none_signed"), JwtErrorKind::UnsupportedAlgorithm);
    assert_eq!(kind("hs512"), JwtErrorKind::UnsupportedAlgorithm);

    // The same with tokens from the crate's own builder.
    let other: IdentitySecret = vectors.jwt.other_secret.parse().unwrap();
    let by_other = MessengerJwt::new("user-42").sign(&other).unwrap();
    assert_eq!(
        verifier.verify(&by_other).unwrap_err().kind(),
        JwtErrorKind::InvalidSignature
    );

    let token = MessengerJwt::new("user-42").sign(&secret).unwrap();
    let (header_and_payload, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = header_and_payload.split_once('.').unwrap();
    // A payload naming another user, with the original signature.
    let forged_payload = base64_url(br#"{"user_id":"user-43","exp":4102444800}"#);
    let tampered = format!("{header}.{forged_payload}.{signature}");
    assert_eq!(
        verifier.verify(&tampered).unwrap_err().kind(),
        JwtErrorKind::InvalidSignature
    );

    let expired = MessengerJwt::new("user-42")
        .expires_at(SystemTime::now() - Duration::from_secs(10 * 60))
        .sign(&secret)
        .unwrap();
    assert_eq!(
        verifier.verify(&expired).unwrap_err().kind(),
        JwtErrorKind::Expired
    );
    // Expired and signed with another secret: the signature is what fails.
    let expired_elsewhere = MessengerJwt::new("user-42")
        .expires_at(SystemTime::now() - Duration::from_secs(10 * 60))
        .sign(&other)
        .unwrap();
    assert_eq!(
        verifier.verify(&expired_elsewhere).unwrap_err().kind(),
        JwtErrorKind::InvalidSignature
    );
}

/// Unpadded base64url, written out here so the test does not lean on the
/// crate's own dependencies.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn base64_url_helper_is_right() {
    assert_eq!(base64_url(b""), "");
    assert_eq!(base64_url(b"f"), "Zg");
    assert_eq!(base64_url(b"fo"), "Zm8");
    assert_eq!(base64_url(b"foo"), "Zm9v");
    assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
}

mod properties {
    use proptest::prelude::*;
    use tower_intercom::identity::{IdentitySecret, MessengerJwt, MessengerJwtVerifier};

    fn secret() -> IdentitySecret {
        "property-test-identity-secret".parse().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Changing any one character of a valid token makes it fail.
        #[test]
        fn any_changed_character_is_refused(
            user_id in "[a-zA-Z0-9_-]{1,40}",
            position in any::<prop::sample::Index>(),
            replacement in prop::char::range('!', '~'),
        ) {
            let token = MessengerJwt::new(user_id.as_str()).sign(&secret()).unwrap();
            let verifier = MessengerJwtVerifier::new(secret());
            let claims = verifier.verify(&token).unwrap();
            prop_assert_eq!(claims.user_id(), user_id.as_str());

            let index = position.index(token.len());
            let original = token.as_bytes()[index] as char;
            prop_assume!(original != replacement);
            let mut changed = token.clone();
            changed.replace_range(index..=index, &replacement.to_string());
            prop_assert!(verifier.verify(&changed).is_err(), "{} accepted", changed);
        }

        /// Arbitrary text is refused without panicking.
        #[test]
        fn arbitrary_text_is_refused(token in "\\PC{0,200}", dots in "[.a-zA-Z0-9_-]{0,120}") {
            let verifier = MessengerJwtVerifier::new(secret());
            prop_assert!(verifier.verify(&token).is_err());
            prop_assert!(verifier.verify(&dots).is_err());
        }
    }
}
