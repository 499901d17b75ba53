//! The checks that ask Intercom (`GET /me`): whether the token belongs to an
//! admin, whether Identity Verification is enforced, how old the token is.
//!
//! This version has no API client to make the call, so each is reported as
//! skipped with the reason; they take their place in the list already, so
//! that the table and the JSON keep their shape when they run.

use super::report::Check;

/// Check ids.
pub(crate) const CHECKS: [&str; 3] = [
    "intercom.token_admin",
    "intercom.identity_verification",
    "intercom.token_age",
];

pub(crate) fn run(token_given: bool) -> Vec<Check> {
    let reason = if token_given {
        "needs Intercom's API (GET /me), which this build of tower-intercom cannot call: it has no API client (the `client` feature)"
    } else {
        "no access token given (INTERCOM_ACCESS_TOKEN)"
    };
    CHECKS
        .iter()
        .map(|&id| Check::skipped(id, reason))
        .collect()
}
