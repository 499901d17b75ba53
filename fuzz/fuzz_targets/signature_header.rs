//! The layer's header handling: any list of header names and values (the
//! signature headers, `Content-Length`, anything else, repeated or not)
//! before a small signed body. The verdict must be the model's: 401 for a
//! missing, repeated, malformed or wrong signature, 413 for an announced
//! length above the limit, the inner service only for a valid one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_intercom_fuzz::{scheme, Case, FuzzValue, Name};

const KEYS: [&[u8]; 2] = [b"fuzz-current-secret", b"fuzz-previous-secret"];
const BODY: &[u8] = br#"{"type":"notification_event","topic":"ping","id":"notif_1"}"#;

#[derive(Arbitrary, Debug)]
struct Input {
    body_scheme: bool,
    headers: Vec<(Name, FuzzValue)>,
}

fuzz_target!(|input: Input| {
    let mut case = Case::signed_post(KEYS[0], BODY, 1024);
    case.keys = KEYS.iter().map(|key| key.to_vec()).collect();
    case.scheme = scheme(input.body_scheme);
    case.headers = input
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.header_name()?, value.value())))
        .collect();
    case.check();
});
