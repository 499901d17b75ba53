//! Property tests of the signature and of the middleware's verdicts.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use proptest::prelude::*;
use tower::{Layer, ServiceExt};
use tower_intercom::{
    sign, signature::SignatureError, verify, webhook::HeadPolicy, SignatureScheme,
    VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_intercom_test_support::{
    logs::Logs,
    model::{Call, Case, Value},
    Recorder, ScriptedBody, Step,
};

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

/// The layer's secrets in the model cases: long and distinctive, so finding
/// one in a log line cannot be a coincidence.
const KEYS: [&str; 3] = [
    "prop-current-secret-5b1f09c2",
    "prop-previous-secret-e84d7a31",
    "prop-older-secret-0c6f2b98",
];

/// A signature header value before the case's body is known.
#[derive(Debug, Clone)]
enum Sig {
    /// Signed with key `key` (3 is a key the layer does not have).
    Signed {
        key: usize,
        upper: bool,
        other_scheme: bool,
    },
    /// Anything, including bytes no header may hold.
    Raw(Vec<u8>),
    /// Near misses of the format.
    Text(String),
}

fn sig() -> impl Strategy<Value = Sig> {
    prop_oneof![
        8 => (0usize..4, prop::bool::weighted(0.2), prop::bool::weighted(0.1)).prop_map(
            |(key, upper, other_scheme)| Sig::Signed { key, upper, other_scheme }
        ),
        1 => prop::collection::vec(any::<u8>(), 0..70).prop_map(Sig::Raw),
        1 => "(sha1=|sha256=|SHA1=| sha1=)?[0-9a-fA-FgG ]{38,66}".prop_map(Sig::Text),
    ]
}

fn content_length() -> impl Strategy<Value = Option<String>> {
    // `None`, or a relation to the real body length resolved later.
    prop_oneof![
        4 => Just(None),
        2 => Just(Some("exact".to_owned())),
        1 => (1u32..50).prop_map(|n| Some(format!("-{n}"))),
        1 => (1u32..500).prop_map(|n| Some(format!("+{n}"))),
        1 => "[0-9a-z+ -]{0,25}".prop_map(|junk| Some(format!("raw:{junk}"))),
    ]
}

/// Where to put a step among the data frames.
type At = prop::sample::Index;

#[allow(clippy::too_many_arguments)]
fn build_case(
    method: Method,
    head: HeadPolicy,
    body_scheme: bool,
    keys: usize,
    sigs: Vec<(Sig, bool)>,
    length: Option<String>,
    body: Vec<u8>,
    cuts: Vec<At>,
    pendings: Vec<At>,
    error: Option<At>,
    trailers: Option<(At, String)>,
    limit: usize,
) -> Case {
    let scheme = if body_scheme {
        SignatureScheme::BodySignature
    } else {
        SignatureScheme::HubSignature
    };
    let other = if body_scheme {
        SignatureScheme::HubSignature
    } else {
        SignatureScheme::BodySignature
    };
    let mut headers = Vec::new();
    for (sig, right_name) in sigs {
        let name = if right_name { scheme } else { other }.header_name();
        let value = match sig {
            Sig::Signed {
                key,
                upper,
                other_scheme,
            } => Value::Signed {
                key,
                scheme: if other_scheme { other } else { scheme },
                upper,
            },
            Sig::Raw(bytes) => Value::Raw(bytes),
            Sig::Text(text) => Value::Raw(text.into_bytes()),
        };
        headers.push((name, value));
    }
    if let Some(length) = length {
        let value = if length == "exact" {
            body.len().to_string()
        } else if let Some(junk) = length.strip_prefix("raw:") {
            junk.to_owned()
        } else {
            let delta: i64 = length.parse().unwrap();
            (body.len() as i64 + delta).max(0).to_string()
        };
        headers.push((http::header::CONTENT_LENGTH, Value::Raw(value.into_bytes())));
    }

    let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut steps = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([body.len()]) {
        steps.push(Step::Data(Bytes::copy_from_slice(&body[start..cut])));
        start = cut;
    }
    for at in pendings {
        steps.insert(at.index(steps.len() + 1), Step::Pending);
    }
    if let Some((at, value)) = trailers {
        let mut map = HeaderMap::new();
        map.insert("x-trailer", HeaderValue::try_from(value).unwrap());
        steps.insert(at.index(steps.len() + 1), Step::Trailers(map));
    }
    if let Some(at) = error {
        steps.insert(at.index(steps.len() + 1), Step::Error("connection reset"));
    }

    Case {
        method,
        head,
        scheme,
        keys: KEYS[..keys].iter().map(|k| k.as_bytes().to_vec()).collect(),
        headers,
        steps,
        limit,
    }
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        8 => Just(Method::POST),
        1 => Just(Method::HEAD),
        1 => Just(Method::PUT),
    ];
    let head = prop_oneof![
        Just(HeadPolicy::Respond),
        Just(HeadPolicy::Forward),
        Just(HeadPolicy::Reject),
    ];
    let sigs = prop_oneof![
        1 => Just(Vec::new()),
        8 => prop::collection::vec((sig(), prop::bool::weighted(0.95)), 1..=1),
        1 => prop::collection::vec((sig(), prop::bool::weighted(0.9)), 2..=4),
    ];
    let body = (
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(any::<At>(), 0..8),
        prop::collection::vec(any::<At>(), 0..3),
        prop::option::weighted(0.15, any::<At>()),
        prop::option::weighted(0.2, (any::<At>(), "[a-z0-9]{0,12}")),
    );
    (
        (method, head, prop::bool::weighted(0.25), 1usize..=3),
        sigs,
        content_length(),
        body,
        0usize..400,
    )
        .prop_map(
            |(
                (method, head, body_scheme, keys),
                sigs,
                length,
                (body, cuts, pendings, error, trailers),
                limit,
            )| {
                build_case(
                    method,
                    head,
                    body_scheme,
                    keys,
                    sigs,
                    length,
                    body,
                    cuts,
                    pendings,
                    error,
                    trailers,
                    limit,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The inner service runs if and only if the signature is valid, the
    /// body within the limit and readable; it then gets the exact bytes, and
    /// the body is never read past the frame that decided. A split of the
    /// same body into other frames gets the same verdict, and nothing logged
    /// holds a secret or a signature.
    #[test]
    fn inner_runs_iff_signed_within_limit_and_readable(case in case()) {
        let (outcome, logs) = Logs::capture(|| case.check());

        let expected = case.expected();
        let called = matches!(expected.call, Some(Call::Verified { .. }));
        let signed_within_limit_and_readable = case.method != Method::HEAD
            && expected.rejection.is_none();
        prop_assert_eq!(called, signed_within_limit_and_readable);
        prop_assert_eq!(outcome.seen.len(), usize::from(expected.call.is_some()));

        if outcome.rejection.is_some() {
            prop_assert!(logs.contains("rejected Intercom webhook"), "{}", logs);
        }
        for key in KEYS {
            prop_assert!(!logs.contains(key), "a secret was logged:\n{}", logs);
        }
        for value in case.header_map().values() {
            if value.len() >= 40 {
                let shown = String::from_utf8_lossy(value.as_bytes());
                prop_assert!(!logs.contains(&*shown), "a header was logged:\n{}", logs);
            }
        }

        // The same body as one frame (and the trailers in one frame) gets
        // the same answer, unless the script had an error in it.
        if !case.steps.iter().any(|step| matches!(step, Step::Error(_))) {
            let mut trailers: Option<HeaderMap> = None;
            for step in &case.steps {
                if let Step::Trailers(more) = step {
                    trailers.get_or_insert_with(HeaderMap::new).extend(more.clone());
                }
            }
            let mut whole = case.clone();
            whole.steps = vec![Step::Data(Bytes::from(case.body()))];
            whole.steps.extend(trailers.map(Step::Trailers));
            let again = whole.check();
            prop_assert_eq!(again.status, outcome.status);
            prop_assert_eq!(again.seen.len(), outcome.seen.len());
            prop_assert_eq!(
                again.seen.first().and_then(|seen| seen.verified),
                outcome.seen.first().and_then(|seen| seen.verified)
            );
        }
    }
}

#[test]
fn the_model_accepts_a_signed_ping_and_refuses_a_forged_one() {
    // The model itself must not be vacuous.
    let case = Case::signed_post(KEYS[0].as_bytes(), tower_intercom_test_support::PING, 4096);
    assert_eq!(case.check().status, StatusCode::OK);
    assert_eq!(
        case.expected().call,
        Some(Call::Verified { secret_index: 0 })
    );

    let mut forged = case.clone();
    forged.headers[0].1 = Value::Signed {
        key: 7,
        scheme: SignatureScheme::HubSignature,
        upper: false,
    };
    assert_eq!(forged.check().status, StatusCode::UNAUTHORIZED);

    let mut small = case.clone();
    small.limit = tower_intercom_test_support::PING.len() - 1;
    assert_eq!(small.check().status, StatusCode::PAYLOAD_TOO_LARGE);

    let mut twice = case;
    twice.headers.push(twice.headers[0].clone());
    twice.headers[1].0 = HeaderName::from_static("x-hub-signature");
    assert_eq!(twice.check().status, StatusCode::UNAUTHORIZED);
}
