//! What the layer must answer to any request, written independently of its
//! code, and a runner that drives the real layer to compare.
//!
//! A [`Case`] is one request (method, headers, a script of body frames,
//! errors, pending polls and trailers) and one layer configuration.
//! [`Case::expected`] says, from the HTTP rules and the documented rejection
//! table alone, what the client must see, whether the inner service runs and
//! how many times the body may be polled. [`Case::check`] runs the real layer
//! on it, without an async runtime, and panics on any difference, on a hang,
//! and on a response that carries anything but the fixed rejection text.
//!
//! The property tests (`tests/properties.rs`) and the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, through the fuzz crate) share it.

use std::{
    future::Future,
    pin::pin,
    sync::atomic::Ordering,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower_intercom::{
    rejection::Rejection, rejection::RejectionKind, webhook::HeadPolicy, SignatureScheme,
    VerifyIntercomWebhookLayer, WebhookSecret,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    recorder::{Recorder, Seen},
    scripted::{ScriptedBody, Step},
};

/// The key a [`Value::Signed`] uses when its index names no key of the
/// layer: a signature made with the wrong secret.
pub const FOREIGN_KEY: &[u8] = b"a key the layer was not given";

/// A header value of a [`Case`].
#[derive(Debug, Clone)]
pub enum Value {
    /// The signature of the case's whole body in `scheme`'s format, made
    /// with `keys[key]`, or with [`FOREIGN_KEY`] when `key` is out of range.
    /// `upper` writes the hex digits in uppercase.
    Signed {
        key: usize,
        scheme: SignatureScheme,
        upper: bool,
    },
    /// These bytes; the header is left out when they are not a valid
    /// header value (no HTTP stack could deliver it).
    Raw(Vec<u8>),
}

/// One request and one layer configuration.
#[derive(Debug, Clone)]
pub struct Case {
    pub method: Method,
    pub head: HeadPolicy,
    pub scheme: SignatureScheme,
    /// The layer's secrets, current first. Each must be a valid secret
    /// (non-empty, not blank); see [`Case::valid_keys`].
    pub keys: Vec<Vec<u8>>,
    /// Appended in order, so a name may repeat.
    pub headers: Vec<(HeaderName, Value)>,
    pub steps: Vec<Step>,
    pub limit: usize,
}

/// What the inner service must receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The verified request, signed with `keys[secret_index]`.
    Verified { secret_index: usize },
    /// A `HEAD` forwarded unverified under [`HeadPolicy::Forward`].
    Unverified,
}

/// The model's answer for a [`Case`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub status: StatusCode,
    /// The reason in the response's extensions, for a refusal.
    pub rejection: Option<RejectionKind>,
    /// Whether and how the inner service is called.
    pub call: Option<Call>,
    /// How many times the body is polled: 0 when refused from the headers;
    /// reading stops at the frame that decides.
    pub polls: usize,
    /// The trailers the inner service receives with a verified body: never
    /// any, since the signature does not cover them.
    pub trailers: Option<HeaderMap>,
}

/// What the real layer did with a [`Case`].
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub rejection: Option<Rejection>,
    pub seen: Vec<Seen>,
    pub polls: usize,
}

/// Whether `key` can be a secret: not empty, not only whitespace.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && !key
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// The hex digits of a header value in `scheme`'s format, or `None` when
/// the value is not in that format: `sha1=` and exactly 40 hex digits, or
/// exactly 64 hex digits.
pub fn well_formed(scheme: SignatureScheme, value: &[u8]) -> Option<&[u8]> {
    let (hex, digits) = match scheme {
        SignatureScheme::HubSignature => (value.strip_prefix(b"sha1=")?, 40),
        _ => (value, 64),
    };
    (hex.len() == digits && hex.iter().all(u8::is_ascii_hexdigit)).then_some(hex)
}

/// Whether `value` is the signature of `body` with `key` in `scheme`'s
/// format (hex digits in either case).
pub fn signs(scheme: SignatureScheme, key: &[u8], body: &[u8], value: &[u8]) -> bool {
    let Some(hex) = well_formed(scheme, value) else {
        return false;
    };
    let secret = WebhookSecret::new(key).expect("a valid key");
    let expected = scheme.sign(&secret, body);
    let expected = well_formed(scheme, expected.as_bytes()).expect("sign() is well formed");
    hex.eq_ignore_ascii_case(expected)
}

/// The value [`Value::Signed`] stands for.
pub fn signature(scheme: SignatureScheme, key: &[u8], body: &[u8], upper: bool) -> HeaderValue {
    let value = scheme.sign(&WebhookSecret::new(key).expect("a valid key"), body);
    if !upper {
        return value;
    }
    let mut bytes = value.as_bytes().to_vec();
    let start = if scheme == SignatureScheme::HubSignature {
        5
    } else {
        0
    };
    bytes[start..].make_ascii_uppercase();
    HeaderValue::from_bytes(&bytes).expect("hex digits are a valid header value")
}

impl Case {
    /// A `POST` with one frame of `body`, signed with the only key.
    pub fn signed_post(key: &[u8], body: &[u8], limit: usize) -> Self {
        Self {
            method: Method::POST,
            head: HeadPolicy::default(),
            scheme: SignatureScheme::HubSignature,
            keys: vec![key.to_vec()],
            headers: vec![(
                HeaderName::from_static("x-hub-signature"),
                Value::Signed {
                    key: 0,
                    scheme: SignatureScheme::HubSignature,
                    upper: false,
                },
            )],
            steps: vec![Step::Data(Bytes::copy_from_slice(body))],
            limit,
        }
    }

    /// Whether the layer can be built: at least one key, all valid.
    pub fn valid_keys(&self) -> bool {
        !self.keys.is_empty() && self.keys.iter().all(|key| valid_key(key))
    }

    /// The whole body: every data frame of the script, in order.
    pub fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for step in &self.steps {
            if let Step::Data(data) = step {
                body.extend_from_slice(data);
            }
        }
        body
    }

    fn key(&self, index: usize) -> &[u8] {
        self.keys.get(index).map_or(FOREIGN_KEY, Vec::as_slice)
    }

    /// The request headers, as a client would send them.
    pub fn header_map(&self) -> HeaderMap {
        let body = self.body();
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let value = match value {
                Value::Signed { key, scheme, upper } => {
                    signature(*scheme, self.key(*key), &body, *upper)
                }
                Value::Raw(bytes) => match HeaderValue::from_bytes(bytes) {
                    Ok(value) => value,
                    Err(_) => continue,
                },
            };
            map.append(name.clone(), value);
        }
        map
    }

    /// The request.
    pub fn request(&self) -> Request<ScriptedBody> {
        let mut request = Request::new(ScriptedBody::new(self.steps.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = http::Uri::from_static("/webhooks/intercom");
        *request.headers_mut() = self.header_map();
        request
    }

    /// What the layer must do, from the rules alone.
    pub fn expected(&self) -> Expected {
        let refuse = |kind: RejectionKind, status: StatusCode, polls: usize| Expected {
            status,
            rejection: Some(kind),
            call: None,
            polls,
            trailers: None,
        };
        let unauthorized = |kind| refuse(kind, StatusCode::UNAUTHORIZED, 0);

        if self.method == Method::HEAD {
            return match self.head {
                HeadPolicy::Reject => refuse(
                    RejectionKind::HeadNotAllowed,
                    StatusCode::METHOD_NOT_ALLOWED,
                    0,
                ),
                HeadPolicy::Forward => Expected {
                    status: StatusCode::OK,
                    rejection: None,
                    call: Some(Call::Unverified),
                    polls: 0,
                    trailers: None,
                },
                _ => Expected {
                    status: StatusCode::OK,
                    rejection: None,
                    call: None,
                    polls: 0,
                    trailers: None,
                },
            };
        }
        if self.method != Method::POST {
            return refuse(
                RejectionKind::MethodNotAllowed,
                StatusCode::METHOD_NOT_ALLOWED,
                0,
            );
        }

        // Exactly one signature header, in the scheme's format.
        let headers = self.header_map();
        let values: Vec<_> = headers.get_all(self.scheme.header_name()).iter().collect();
        let value = match values.as_slice() {
            [] => return unauthorized(RejectionKind::MissingSignature),
            [value] => value.as_bytes(),
            _ => return unauthorized(RejectionKind::MultipleSignatures),
        };
        if well_formed(self.scheme, value).is_none() {
            return unauthorized(RejectionKind::MalformedSignature);
        }

        // A length announced above the limit is refused unread. A
        // Content-Length that is not a number announces nothing.
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
            .and_then(|value| value.parse::<u64>().ok());
        if announced.is_some_and(|len| len > self.limit as u64) {
            return refuse(
                RejectionKind::PayloadTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                0,
            );
        }

        // The body, frame by frame: the limit and errors decide at the frame
        // where they happen.
        let mut polls = 0;
        let mut len = 0usize;
        for step in &self.steps {
            polls += 1;
            match step {
                Step::Data(data) => {
                    len += data.len();
                    if len > self.limit {
                        return refuse(
                            RejectionKind::PayloadTooLarge,
                            StatusCode::PAYLOAD_TOO_LARGE,
                            polls,
                        );
                    }
                }
                Step::Error(_) => {
                    return refuse(
                        RejectionKind::BodyUnreadable,
                        StatusCode::BAD_REQUEST,
                        polls,
                    )
                }
                // Trailers are not signed: read, then dropped.
                Step::Trailers(_) | Step::Pending => {}
            }
        }
        polls += 1; // the poll that says the body is over

        let body = self.body();
        let matched = self
            .keys
            .iter()
            .position(|key| signs(self.scheme, key, &body, value));
        match matched {
            Some(secret_index) => Expected {
                status: StatusCode::OK,
                rejection: None,
                call: Some(Call::Verified { secret_index }),
                polls,
                trailers: None,
            },
            None => refuse(
                RejectionKind::InvalidSignature,
                StatusCode::UNAUTHORIZED,
                polls,
            ),
        }
    }

    /// The layer this case configures.
    pub fn layer(&self) -> VerifyIntercomWebhookLayer {
        let secrets = self
            .keys
            .iter()
            .map(|key| WebhookSecret::new(key.as_slice()).expect("a valid key"));
        VerifyIntercomWebhookLayer::try_with_secrets(secrets)
            .expect("at least one key")
            .max_body_size(self.limit)
            .head(self.head)
            .scheme(self.scheme)
    }

    /// Runs the real layer, with a [`Recorder`] inside, to completion.
    ///
    /// # Panics
    ///
    /// When the layer is not done after one poll per script step (plus a
    /// few): it would hang forever on this request.
    pub fn run(&self) -> Outcome {
        let request = self.request();
        let polls = request.body().polls();
        let recorder = Recorder::default();
        let mut service = self.layer().layer(recorder.clone());
        let budget = self.steps.len() + 4;
        let ready = drive(
            std::future::poll_fn(|cx| {
                Service::<Request<ScriptedBody>>::poll_ready(&mut service, cx)
            }),
            1,
        );
        ready.expect("the recorder is always ready");
        let response = drive(service.call(request), budget).expect("the recorder never fails");
        let (parts, body) = response.into_parts();
        let body = drive(body.collect(), 2)
            .expect("response bodies do not fail")
            .to_bytes();
        let seen = recorder.seen.lock().unwrap().clone();
        Outcome {
            status: parts.status,
            headers: parts.headers,
            body,
            rejection: parts.extensions.get::<Rejection>().copied(),
            seen,
            polls: polls.load(Ordering::SeqCst),
        }
    }

    /// Runs the layer and panics unless it did exactly what
    /// [`expected`](Self::expected) says.
    pub fn check(&self) -> Outcome {
        let expected = self.expected();
        let outcome = self.run();
        let context = || format!("\ncase: {self:?}\nexpected: {expected:?}\noutcome: {outcome:?}");

        assert_eq!(outcome.status, expected.status, "status{}", context());
        assert_ne!(outcome.status, StatusCode::GONE, "never 410{}", context());
        assert_eq!(
            outcome.rejection.map(|r| r.kind()),
            expected.rejection,
            "rejection{}",
            context()
        );
        assert_eq!(outcome.polls, expected.polls, "body polls{}", context());

        // The inner service ran once, with the request unchanged, exactly
        // when it should.
        match expected.call {
            None => assert!(outcome.seen.is_empty(), "inner called{}", context()),
            Some(call) => {
                assert_eq!(outcome.seen.len(), 1, "inner calls{}", context());
                let seen = &outcome.seen[0];
                assert_eq!(seen.method, self.method, "{}", context());
                assert_eq!(seen.headers, self.header_map(), "{}", context());
                match call {
                    Call::Verified { secret_index } => {
                        let verified = seen.verified.expect("a VerifiedWebhook extension");
                        assert_eq!(verified.secret_index(), secret_index, "{}", context());
                        assert_eq!(verified.scheme(), self.scheme, "{}", context());
                        assert_eq!(&seen.body[..], &self.body()[..], "body{}", context());
                        assert_eq!(seen.trailers, expected.trailers, "trailers{}", context());
                        assert!(seen.body.len() <= self.limit, "{}", context());
                    }
                    Call::Unverified => {
                        assert!(seen.verified.is_none(), "{}", context());
                        assert!(seen.body.is_empty(), "{}", context());
                    }
                }
                assert_eq!(outcome.body, "handled", "{}", context());
            }
        }

        // A refusal carries its fixed message and nothing else: no secret,
        // no signature, no request byte.
        if let Some(rejection) = outcome.rejection {
            let json = format!("{{\"error\":\"{}\"}}", rejection.message());
            assert_eq!(outcome.body, json.as_bytes(), "{}", context());
            assert_eq!(outcome.headers[header::CONTENT_TYPE], "application/json");
            let allow = usize::from(matches!(
                rejection.kind(),
                RejectionKind::HeadNotAllowed | RejectionKind::MethodNotAllowed
            ));
            assert_eq!(outcome.headers.len(), 1 + allow, "{}", context());
        } else if expected.call.is_none() {
            // The layer's own answer to HEAD: empty.
            assert!(outcome.body.is_empty() && outcome.headers.is_empty());
        }
        outcome
    }
}

/// Polls `future` with a waker that does nothing, at most `budget` times.
/// Every `Pending` in these tests comes from a [`Step::Pending`], which is
/// ready on the next poll, so a future still pending after its budget hangs.
fn drive<F: Future>(future: F, budget: usize) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..budget {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("still pending after {budget} polls: the layer would hang");
}
