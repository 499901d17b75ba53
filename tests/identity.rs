//! Identity Verification and Messenger JWTs against vectors made by another
//! implementation (Python's `hmac` and PyJWT, see
//! `tests/fixtures/identity/make_vectors.py`), and the `user_hash` JWT
//! forgery, which the crate must make impossible.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use tower_intercom::identity::{
    user_hash, IdentitySecret, JwtErrorKind, MessengerJwt, MessengerJwtVerifier, MessengerSettings,
    UserHashErrorKind,
};

#[derive(Deserialize)]
struct Vectors {
    user_hash: Vec<UserHashVector>,
    jwt: JwtVectors,
    forgery: Vec<ForgeryVector>,
}

/// An identifier whose user_hash PyJWT takes as a JWT signature.
#[derive(Deserialize)]
struct ForgeryVector {
    name: String,
    identifier: String,
    user_hash: String,
    token: String,
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
            user_hash(&secret, &vector.identifier).unwrap(),
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

/// The attack `user_hash` used to allow, end to end: a user who picks their
/// own identifier registers `header.payload` (a JWT signing input naming
/// "admin"), reads its `user_hash` from the Messenger settings, turns the
/// hex into base64url and appends it. With the same secret behind both,
/// that is a valid Messenger JWT for any `user_id`.
#[test]
fn user_hash_can_no_longer_sign_a_messenger_jwt() {
    let secret: IdentitySecret = "forgery-test-identity-secret".parse().unwrap();
    let verifier = MessengerJwtVerifier::new(secret.clone());

    // Only [A-Za-z0-9_.-]: an identifier many sign-up forms accept.
    let header = base64_url(br#"{"alg":"HS256"}"#);
    let payload = base64_url(br#"{"user_id":"admin","exp":4102444800}"#);
    let identifier = format!("{header}.{payload}");
    assert!(identifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));

    // The crate refuses to hash it, directly or through the settings.
    let err = user_hash(&secret, &identifier).unwrap_err();
    assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);
    assert!(!err.to_string().contains(&identifier));
    let err = MessengerSettings::with_user_hash("app", &secret, identifier.as_str()).unwrap_err();
    assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);

    // What the refusal prevents: the hash the crate used to hand out,
    // computed here, is a signature the verifier accepts for "admin".
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(b"forgery-test-identity-secret").unwrap();
    mac.update(identifier.as_bytes());
    let old_user_hash = hex::encode(mac.finalize().into_bytes());
    let forged = format!(
        "{identifier}.{}",
        base64_url(&hex::decode(&old_user_hash).unwrap())
    );
    assert_eq!(verifier.verify(&forged).unwrap().user_id(), "admin");

    // The settings made with a JWT carry no user_hash at all.
    let settings =
        MessengerSettings::with_jwt("app", &secret, &MessengerJwt::new("user-42")).unwrap();
    assert_eq!(settings.user_hash(), None);
    let json = serde_json::to_value(&settings).unwrap();
    assert!(json.get("user_hash").is_none());
}

/// Identifiers whose hash PyJWT takes as a signature (padded, whitespace,
/// byte-order marks, UTF-16 and UTF-32 headers): each is refused. The
/// crate's own verifier is stricter: it takes only the plain headers and
/// the one with whitespace.
#[test]
fn every_identifier_pyjwt_would_take_as_a_header_is_refused() {
    let vectors = vectors();
    let secret: IdentitySecret = vectors.jwt.secret.parse().unwrap();
    let verifier = MessengerJwtVerifier::new(secret.clone());
    assert!(vectors.forgery.len() >= 8);
    for vector in &vectors.forgery {
        let err = user_hash(&secret, &vector.identifier).unwrap_err();
        assert_eq!(
            err.kind(),
            UserHashErrorKind::JwtSigningInput,
            "{}",
            vector.name
        );
        // The vector is what the old user_hash returned.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(vectors.jwt.secret.as_bytes()).unwrap();
        mac.update(vector.identifier.as_bytes());
        assert_eq!(hex::encode(mac.finalize().into_bytes()), vector.user_hash);
        match vector.name.as_str() {
            // JSON allows whitespace before the object: the crate's
            // verifier takes that header too.
            "minimal" | "crate_header" | "whitespace" => assert_eq!(
                verifier.verify(&vector.token).unwrap().user_id(),
                "admin",
                "{}",
                vector.name
            ),
            _ => assert_eq!(
                verifier.verify(&vector.token).unwrap_err().kind(),
                JwtErrorKind::Malformed,
                "{}",
                vector.name
            ),
        }
    }
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

/// A model of the rule `user_hash` documents, written apart from the
/// crate's code: is the text before the first dot, read leniently, the
/// opening of a JSON object?
fn has_jwt_header_shape(identifier: &str) -> bool {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let Some((first, _)) = identifier.split_once('.') else {
        return false;
    };
    // Six bits per base64 or base64url character, others dropped.
    let bits: Vec<bool> = first
        .bytes()
        .filter_map(|c| match c {
            b'+' => Some(62),
            b'/' => Some(63),
            _ => ALPHABET.iter().position(|&a| a == c),
        })
        .flat_map(|value| (0..6).rev().map(move |i| (value >> i) & 1 == 1))
        .collect();
    let bytes: Vec<u8> = bits
        .chunks_exact(8)
        .map(|byte| byte.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit)))
        .filter(|&b| b != 0)
        .collect();
    let mut text = bytes.as_slice();
    loop {
        if let Some(rest) = text.strip_prefix(b"/*") {
            let Some(end) = rest.windows(2).position(|w| w == b"*/") else {
                return false;
            };
            text = &rest[end + 2..];
        } else if let Some(rest) = text.strip_prefix(b"//").or_else(|| text.strip_prefix(b"#")) {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                return false;
            };
            text = &rest[end + 1..];
        } else if let [first, rest @ ..] = text {
            if b" \t\r\n\xEF\xBB\xBF\xFE\xFF".contains(first) {
                text = rest;
            } else {
                return *first == b'{';
            }
        } else {
            return false;
        }
    }
}

#[test]
fn the_model_of_the_rule_is_right() {
    assert!(has_jwt_header_shape("eyJhbGciOiJIUzI1NiJ9.e30"));
    assert!(has_jwt_header_shape("ezra@example.com"));
    assert!(has_jwt_header_shape("77u_IHs.x"));
    assert!(!has_jwt_header_shape("eyJhbGciOiJIUzI1NiJ9"));
    assert!(!has_jwt_header_shape("ada.lovelace@example.com"));
    assert!(!has_jwt_header_shape("e.x"));
}

mod properties {
    use proptest::prelude::*;
    use tower_intercom::identity::{
        user_hash, IdentitySecret, MessengerJwt, MessengerJwtVerifier, UserHashErrorKind,
    };

    use super::{base64_url, has_jwt_header_shape};

    /// Hashed, or refused for the documented reason and only then.
    fn check_user_hash(identifier: &str) -> Result<(), TestCaseError> {
        match user_hash(&secret(), identifier) {
            Ok(hash) => {
                prop_assert_eq!(hash.len(), 64);
                prop_assert!(!has_jwt_header_shape(identifier), "{:?} hashed", identifier);
            }
            Err(err) => {
                prop_assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);
                prop_assert!(has_jwt_header_shape(identifier), "{:?} refused", identifier);
                prop_assert!(identifier.contains('.'));
            }
        }
        Ok(())
    }

    /// Bytes a header could start with: whitespace, byte-order marks, NULs.
    fn header_prefix() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![
                &b" "[..],
                b"\t",
                b"\r\n",
                b"\xEF\xBB\xBF",
                b"\xFE\xFF",
                b"\x00",
                b"/* c */",
                b"# c\n",
            ]),
            0..3,
        )
        .prop_map(|parts| parts.concat())
    }

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

        /// Any identifier is hashed or refused, never both ways wrong, and
        /// never with a panic; without a dot it is always hashed.
        #[test]
        fn any_identifier_is_hashed_or_refused_by_the_rule(identifier in "\\PC{0,80}") {
            check_user_hash(&identifier)?;
            let no_dot = identifier.replace('.', "");
            prop_assert!(user_hash(&secret(), &no_dot).is_ok());
        }

        /// The same over base64url text with dots (and a little padding
        /// and standard-alphabet noise), where refusals are common.
        #[test]
        fn base64_text_with_dots_is_hashed_or_refused_by_the_rule(
            identifier in "[A-Za-z0-9_.=+/@-]{0,60}",
            start in "e[w-z0-9_-][A-Za-z0-9_-]{0,10}\\.[a-z.]{0,10}",
        ) {
            check_user_hash(&identifier)?;
            check_user_hash(&start)?;
            prop_assert!(user_hash(&secret(), &start).is_err());
        }

        /// Every identifier made of a JSON-object opening (after any
        /// whitespace, byte-order marks or comments), in base64url, then a
        /// dot and anything, is refused.
        #[test]
        fn json_object_openings_are_always_refused(
            prefix in header_prefix(),
            rest in prop::collection::vec(any::<u8>(), 0..24),
            noise in "[@!~ ]{0,2}",
            tail in "\\PC{0,30}",
        ) {
            let mut header = prefix;
            header.push(b'{');
            header.extend(rest);
            let encoded = base64_url(&header);
            // Characters outside the alphabet, inside the first segment.
            let split = encoded.len().min(1);
            let identifier = format!("{}{noise}{}.{tail}", &encoded[..split], &encoded[split..]);
            prop_assert!(has_jwt_header_shape(&identifier));
            let err = user_hash(&secret(), &identifier).unwrap_err();
            prop_assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);
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
