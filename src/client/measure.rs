//! Records the client's metrics (see the public `metrics` module for the
//! names); without the `metrics` feature every function is empty.
#![allow(unused_variables)]

#[cfg(feature = "metrics")]
use crate::metrics::{
    CLIENT_AUTH_FAILURES, CLIENT_RATE_LIMIT_HELD_DURATION, CLIENT_RATE_LIMIT_REMAINING,
    CLIENT_REQUESTS, CLIENT_RETRIES, CLIENT_TOKEN_AGE,
};

use std::time::Duration;

use http::StatusCode;

/// The `error.type` values the auth failure counter starts at 0 with: a
/// series that appears at 1 shows no `increase()` in Prometheus, so the
/// alert on the first failure needs them to exist before it.
#[cfg(feature = "metrics")]
const TOKEN_FAILURE_LABELS: [&str; 5] = [
    "unauthorized",
    "token_revoked",
    "token_unauthorized",
    "token_not_found",
    "token_suspended",
];

/// An answer with `status` (`None`: the request got no answer).
#[inline]
pub(crate) fn answered(status: Option<StatusCode>) {
    #[cfg(feature = "metrics")]
    {
        let class = match status.map(|status| status.as_u16() / 100) {
            Some(1) => "1xx",
            Some(2) => "2xx",
            Some(3) => "3xx",
            Some(4) => "4xx",
            Some(5) => "5xx",
            _ => "error",
        };
        metrics::counter!(CLIENT_REQUESTS, "status.class" => class).increment(1);
    }
}

/// A 401 or 403, labelled with Intercom's code.
#[inline]
pub(crate) fn auth_failure(code: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CLIENT_AUTH_FAILURES, "error.type" => code).increment(1);
}

/// The window's remaining budget after an answer.
#[inline]
pub(crate) fn remaining(remaining: u32) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(CLIENT_RATE_LIMIT_REMAINING).set(f64::from(remaining));
}

/// A request held by pacing for `held`.
#[inline]
pub(crate) fn held(held: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(CLIENT_RATE_LIMIT_HELD_DURATION).record(held.as_secs_f64());
}

/// A request sent again: `rate_limited` or `error`.
#[inline]
pub(crate) fn retry(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CLIENT_RETRIES, "reason" => reason).increment(1);
}

/// The access token in use is `age` old.
#[inline]
pub(crate) fn token_age(age: Duration) {
    #[cfg(feature = "metrics")]
    {
        describe();
        metrics::gauge!(CLIENT_TOKEN_AGE).set(age.as_secs_f64());
    }
}

/// Describes the client's metrics (once per process) and starts the auth
/// failure series of the token codes at 0 (in the recorder in use when a
/// layer is built).
pub(crate) fn register() {
    #[cfg(feature = "metrics")]
    {
        describe();
        for code in TOKEN_FAILURE_LABELS {
            metrics::counter!(CLIENT_AUTH_FAILURES, "error.type" => code).increment(0);
        }
    }
}

/// Describes the client's metrics, once per process.
#[cfg(feature = "metrics")]
fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_counter!(
            CLIENT_REQUESTS,
            "Answers the Intercom REST API client received, by status class"
        );
        describe_counter!(
            CLIENT_AUTH_FAILURES,
            "401 and 403 answers of the Intercom REST API, by Intercom's error code"
        );
        describe_gauge!(
            CLIENT_RATE_LIMIT_REMAINING,
            "The Intercom rate-limit window's remaining budget, as the last answer left it"
        );
        describe_histogram!(
            CLIENT_RATE_LIMIT_HELD_DURATION,
            Unit::Seconds,
            "Time a request was held by the client's pacing before it was sent"
        );
        describe_counter!(CLIENT_RETRIES, "Requests sent to Intercom again, by reason");
        describe_gauge!(
            CLIENT_TOKEN_AGE,
            Unit::Seconds,
            "How old the Intercom access token in use is, \
             from its issued-at time or its file's modification time"
        );
    });
}
