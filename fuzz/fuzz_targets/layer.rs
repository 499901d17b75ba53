//! The whole layer: any method, `HEAD` policy, scheme, secrets, headers,
//! frame splits, frame sizes, body errors, pending polls, trailers and
//! limit. The real layer runs on each input without an async runtime and
//! must do exactly what the model says (status, reason, inner service
//! called or not, with which bytes, how far the body was read), never hang
//! and never put anything but its fixed message in a refusal.
#![no_main]

use arbitrary::Arbitrary;
use http::Method;
use libfuzzer_sys::fuzz_target;
use tower_intercom::webhook::HeadPolicy;
use tower_intercom_fuzz::{model::valid_key, scheme, Case, FuzzStep, FuzzValue, Name};

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    head: u8,
    body_scheme: bool,
    keys: Vec<Vec<u8>>,
    headers: Vec<(Name, FuzzValue)>,
    steps: Vec<FuzzStep>,
    limit: u16,
}

fuzz_target!(|input: Input| {
    let mut keys: Vec<Vec<u8>> = input
        .keys
        .into_iter()
        .filter(|key| valid_key(key))
        .take(3)
        .collect();
    if keys.is_empty() {
        keys.push(b"fuzz-default-secret".to_vec());
    }
    let case = Case {
        method: match input.method % 5 {
            0 => Method::HEAD,
            1 => Method::GET,
            2 => Method::PUT,
            _ => Method::POST,
        },
        head: match input.head % 3 {
            0 => HeadPolicy::Respond,
            1 => HeadPolicy::Forward,
            _ => HeadPolicy::Reject,
        },
        scheme: scheme(input.body_scheme),
        keys,
        headers: input
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.header_name()?, value.value())))
            .collect(),
        steps: input.steps.iter().map(FuzzStep::step).collect(),
        limit: usize::from(input.limit),
    };
    case.check();
});
