//! `MessengerJwtVerifier::verify` against any token: arbitrary bytes, and
//! tokens signed here (with the verifier's secret or another one) from
//! fuzzed headers and claims, then optionally mutated, so the fuzzer gets
//! past the signature to the claim checks.
//!
//! Checked on every input: no panic; an `Ok` token is three segments whose
//! signature is the HMAC-SHA256, computed here with `hmac`/`sha2`, of the
//! first two under the verifier's secret, whose header says `HS256` and
//! whose claims are those returned; `Expired`, `NotYetValid` and
//! `InvalidClaims` only for a validly signed token; errors never echo the
//! token. For unmutated tokens built here, the verdict is predicted.
#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sha2::Sha256;
use tower_intercom::identity::{IdentitySecret, JwtErrorKind, MessengerJwtVerifier};

const SECRET: &[u8] = b"fuzz-identity-secret";
const OTHER: &[u8] = b"another-identity-secret";
/// Far enough from now that no leeway or slow run can change a verdict.
const MARGIN: u64 = 10 * 24 * 60 * 60;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any bytes as the token (lossily made UTF-8).
    Raw(Vec<u8>),
    /// Any text as the token.
    Text(String),
    /// A token built and signed here.
    Built {
        header: Header,
        payload: Payload,
        other_key: bool,
        mutation: Mutation,
    },
}

#[derive(Arbitrary, Debug)]
enum Header {
    /// `{"typ":"JWT","alg":"HS256"}`, as the crate signs.
    Standard,
    /// An object with this `alg` and extra members (`crit` among them, or not).
    Object {
        alg: Option<Json>,
        crit: Option<Json>,
        extra: Vec<(String, Json)>,
    },
    /// Any JSON value.
    Json(Json),
    /// Any bytes.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Claims {
        user_id: Option<Json>,
        email: Option<Json>,
        exp: Option<Time>,
        nbf: Option<Time>,
        aud: Option<Json>,
        extra: Vec<(String, Json)>,
    },
    Json(Json),
    Raw(Vec<u8>),
}

/// A time claim: relative to now (well clear of any leeway), or any JSON.
#[derive(Arbitrary, Debug)]
enum Time {
    Future(u32),
    Past(u32),
    Json(Json),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    None,
    /// XOR one byte of the token (then lossily made UTF-8).
    Xor {
        at: u16,
        with: u8,
    },
    Insert {
        at: u16,
        text: String,
    },
    Truncate {
        at: u16,
    },
    /// Replace one whole segment with any text.
    Segment {
        index: u8,
        text: String,
    },
}

impl Json {
    fn value(&self, depth: u32) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::UInt(n) => Value::from(*n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.clone()),
            Json::Array(_) | Json::Object(_) if depth > 8 => Value::Null,
            Json::Array(items) => Value::Array(items.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

impl Time {
    fn value(&self, now: u64) -> Value {
        match self {
            Time::Future(s) => Value::from(now + MARGIN + u64::from(*s)),
            Time::Past(s) => Value::from(now.saturating_sub(MARGIN + u64::from(*s))),
            Time::Json(json) => json.value(0),
        }
    }
}

fn hmac(key: &[u8], input: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

/// The verdict the documentation predicts for an unmutated built token, when
/// the inputs make it unambiguous; `None` when this oracle does not say.
fn predict(
    header: &Header,
    payload: &Payload,
    other_key: bool,
) -> Option<Result<(), JwtErrorKind>> {
    let header_ok = match header {
        Header::Standard => true,
        Header::Object { alg, crit, .. } => {
            let alg = alg.as_ref().map(|a| a.value(0));
            match (alg, crit) {
                (None, _) => return Some(Err(JwtErrorKind::Malformed)),
                (Some(Value::String(alg)), None) if alg == "HS256" => true,
                (Some(Value::String(alg)), Some(_)) if alg == "HS256" => {
                    return Some(Err(JwtErrorKind::Malformed))
                }
                (Some(_), _) => return Some(Err(JwtErrorKind::UnsupportedAlgorithm)),
            }
        }
        _ => return None,
    };
    debug_assert!(header_ok);
    if other_key {
        return Some(Err(JwtErrorKind::InvalidSignature));
    }
    let Payload::Claims {
        user_id,
        email,
        exp,
        nbf,
        aud,
        ..
    } = payload
    else {
        return None;
    };
    let exp = match exp {
        None => return Some(Err(JwtErrorKind::InvalidClaims)),
        Some(Time::Past(_)) => return Some(Err(JwtErrorKind::Expired)),
        Some(Time::Future(_)) => true,
        Some(Time::Json(_)) => return None,
    };
    debug_assert!(exp);
    match nbf {
        None | Some(Time::Past(_)) => {}
        Some(Time::Future(_)) => return Some(Err(JwtErrorKind::NotYetValid)),
        Some(Time::Json(_)) => return None,
    }
    if aud.is_some() {
        return Some(Err(JwtErrorKind::InvalidClaims));
    }
    let user_id_ok =
        matches!(user_id.as_ref().map(|u| u.value(0)), Some(Value::String(u)) if !u.is_empty());
    let email_ok = matches!(
        email.as_ref().map(|e| e.value(0)),
        None | Some(Value::String(_))
    );
    Some(if user_id_ok && email_ok {
        Ok(())
    } else {
        Err(JwtErrorKind::InvalidClaims)
    })
}

fn build(header: &Header, payload: &Payload, other_key: bool, now: u64) -> String {
    let header_bytes = match header {
        Header::Standard => br#"{"typ":"JWT","alg":"HS256"}"#.to_vec(),
        Header::Object { alg, crit, extra } => {
            let mut map = Map::new();
            for (k, v) in extra {
                map.insert(k.clone(), v.value(0));
            }
            map.remove("alg");
            map.remove("crit");
            if let Some(alg) = alg {
                map.insert("alg".into(), alg.value(0));
            }
            if let Some(crit) = crit {
                map.insert("crit".into(), crit.value(0));
            }
            serde_json::to_vec(&Value::Object(map)).unwrap()
        }
        Header::Json(json) => serde_json::to_vec(&json.value(0)).unwrap(),
        Header::Raw(bytes) => bytes.clone(),
    };
    let payload_bytes = match payload {
        Payload::Claims {
            user_id,
            email,
            exp,
            nbf,
            aud,
            extra,
        } => {
            let mut map = Map::new();
            for (k, v) in extra {
                map.insert(k.clone(), v.value(0));
            }
            for name in ["user_id", "email", "exp", "nbf", "aud"] {
                map.remove(name);
            }
            if let Some(v) = user_id {
                map.insert("user_id".into(), v.value(0));
            }
            if let Some(v) = email {
                map.insert("email".into(), v.value(0));
            }
            if let Some(t) = exp {
                map.insert("exp".into(), t.value(now));
            }
            if let Some(t) = nbf {
                map.insert("nbf".into(), t.value(now));
            }
            if let Some(v) = aud {
                map.insert("aud".into(), v.value(0));
            }
            serde_json::to_vec(&Value::Object(map)).unwrap()
        }
        Payload::Json(json) => serde_json::to_vec(&json.value(0)).unwrap(),
        Payload::Raw(bytes) => bytes.clone(),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_bytes),
        URL_SAFE_NO_PAD.encode(payload_bytes)
    );
    let key = if other_key { OTHER } else { SECRET };
    let signature = URL_SAFE_NO_PAD.encode(hmac(key, input.as_bytes()));
    format!("{input}.{signature}")
}

fn mutate(token: String, mutation: &Mutation) -> String {
    let clamp = |at: u16, len: usize| usize::from(at) % (len + 1);
    match mutation {
        Mutation::None => token,
        Mutation::Xor { at, with } => {
            let mut bytes = token.into_bytes();
            if !bytes.is_empty() {
                let i = usize::from(*at) % bytes.len();
                bytes[i] ^= with;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::Insert { at, text } => {
            let mut at = clamp(*at, token.len());
            while !token.is_char_boundary(at) {
                at -= 1;
            }
            let mut token = token;
            token.insert_str(at, text);
            token
        }
        Mutation::Truncate { at } => {
            let mut at = clamp(*at, token.len());
            while !token.is_char_boundary(at) {
                at -= 1;
            }
            token[..at].to_owned()
        }
        Mutation::Segment { index, text } => {
            let mut segments: Vec<&str> = token.split('.').collect();
            let i = usize::from(*index) % segments.len();
            segments[i] = text;
            segments.join(".")
        }
    }
}

/// True when `token` is three segments and the third is exactly the
/// unpadded base64url HMAC-SHA256 of the first two under `SECRET`.
fn validly_signed(token: &str) -> bool {
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() != 3 {
        return false;
    }
    let input = &token[..segments[0].len() + 1 + segments[1].len()];
    URL_SAFE_NO_PAD.encode(hmac(SECRET, input.as_bytes())) == segments[2]
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fuzz_target!(|input: Input| {
    let verifier = MessengerJwtVerifier::new(IdentitySecret::new(SECRET).unwrap());
    let now = now();
    let (token, predicted) = match &input {
        Input::Raw(bytes) => (String::from_utf8_lossy(bytes).into_owned(), None),
        Input::Text(text) => (text.clone(), None),
        Input::Built {
            header,
            payload,
            other_key,
            mutation,
        } => {
            let token = mutate(build(header, payload, *other_key, now), mutation);
            let predicted = match mutation {
                Mutation::None => predict(header, payload, *other_key),
                _ => None,
            };
            (token, predicted)
        }
    };

    let verdict = verifier.verify(&token);
    match &verdict {
        Ok(claims) => {
            assert!(validly_signed(&token), "accepted without a valid signature");
            let header = URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap();
            let header: Value = serde_json::from_slice(&header).unwrap();
            assert_eq!(header["alg"], "HS256");
            assert!(header.get("crit").is_none());
            let payload = URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap();
            let mut payload: Map<String, Value> = serde_json::from_slice(&payload).unwrap();
            assert_eq!(
                payload.remove("user_id"),
                Some(Value::from(claims.user_id()))
            );
            assert!(!claims.user_id().is_empty());
            assert_eq!(payload.remove("email"), claims.email().map(Value::from));
            let exp = payload.remove("exp").and_then(|exp| exp.as_u64()).unwrap();
            assert!(exp.saturating_add(MessengerJwtVerifier::DEFAULT_LEEWAY.as_secs()) >= now);
            assert!(!payload.contains_key("aud"));
            assert_eq!(&payload, claims.attributes());
        }
        Err(err) => {
            if matches!(
                err.kind(),
                JwtErrorKind::Expired | JwtErrorKind::NotYetValid | JwtErrorKind::InvalidClaims
            ) {
                assert!(
                    validly_signed(&token),
                    "claims judged before the signature: {err:?}"
                );
            }
            if token.contains('.') {
                let shown = format!("{err} {err:?}");
                assert!(!shown.contains(&token), "the error echoes the token");
            }
        }
    }
    if let Some(predicted) = predicted {
        assert_eq!(
            verdict.as_ref().map(|_| ()).map_err(|err| err.kind()),
            predicted,
            "{token}"
        );
    }
});
