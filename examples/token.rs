//! Run with `cargo run --example token -- check`
//!
//! The rotation runbook's "verify the new token" step: calls Intercom's
//! `GET /me` with the token in `INTERCOM_ACCESS_TOKEN` and says what it
//! belongs to, without ever printing the token (a fingerprint at most, the
//! first 8 hex digits of its SHA-256):
//!
//! ```text
//! $ INTERCOM_ACCESS_TOKEN=… INTERCOM_ACCESS_TOKEN_ISSUED_AT=2025-01-31T09:00:00Z \
//!     cargo run --example token -- check
//! Intercom API:          https://api.intercom.io
//! Access token:          fingerprint 3f2a9c1d (the token itself is never printed)
//! Admin:                 type admin, id 991267464, admin@example.com
//! App:                   abc123 (MyApp), region US
//! Identity Verification: enforced
//! Token age:             12 days (rotate within 78 days)
//! OK: the token works for an admin of app abc123.
//! ```
//!
//! Any problem is an error line on stderr and exit status 1: the token is
//! missing, malformed, invalid, revoked or suspended (with Intercom's code
//! and `request_id`), it does not belong to an admin, Identity Verification
//! is not enforced on the app (anyone could impersonate your users in the
//! Messenger), the token is more than 90 days old, or the API cannot be
//! reached. A wrong command line is exit status 2.
//!
//! - `INTERCOM_API_URL`: `us` (the default), `eu`, `au`, or a URL (a proxy,
//!   a local fake API; plain `http://` for loopback hosts only).
//! - `INTERCOM_ACCESS_TOKEN_ISSUED_AT`: when the token was generated, RFC
//!   3339 (`2025-01-31T09:00:00Z`): its age is checked when it is set.

use std::{env, ffi::OsString, process::ExitCode, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use tower_intercom::{
    client::{
        ApiBase, ErrorKind, HttpsClient, IntercomClient, IntercomClientLayer, Me, TokenAge,
        API_URL_VAR, ISSUED_AT_VAR,
    },
    AccessToken,
};

const USAGE: &str = "usage: cargo run --example token -- check

  check   call GET /me with INTERCOM_ACCESS_TOKEN and check that it belongs
          to an admin, that Identity Verification is enforced on the app and,
          when INTERCOM_ACCESS_TOKEN_ISSUED_AT is set, that it is under 90
          days old; exit status 1 on any problem

  INTERCOM_API_URL   us (default), eu, au, or a URL (http:// for loopback only)";

const TOKEN_VAR: &str = "INTERCOM_ACCESS_TOKEN";

/// How long the check waits for Intercom.
const TIMEOUT: Duration = Duration::from_secs(30);

const DAY: u64 = 24 * 3600;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let args: Vec<Option<&str>> = args.iter().map(|arg| arg.to_str()).collect();
    match args.as_slice() {
        [Some("check")] => {}
        [Some("-h" | "--help" | "help")] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let problems = check().await;
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    eprintln!("FAILED: {} problem(s)", problems.len());
    ExitCode::FAILURE
}

/// The check: what it found on stdout, the problems returned.
async fn check() -> Vec<String> {
    let token = AccessToken::from_env(TOKEN_VAR).map_err(|err| err.to_string());
    let base = ApiBase::from_env(API_URL_VAR).map_err(|err| err.to_string());
    let age = TokenAge::from_env(ISSUED_AT_VAR).map_err(|err| err.to_string());
    let (token, base, age) = match (token, base, age) {
        (Ok(token), Ok(base), Ok(age)) => (token, base, age),
        (token, base, age) => {
            return [token.err(), base.err(), age.err()]
                .into_iter()
                .flatten()
                .collect()
        }
    };
    println!("Intercom API:          {base}");
    println!(
        "Access token:          fingerprint {} (the token itself is never printed)",
        token.fingerprint()
    );

    let client: IntercomClient<HttpsClient<Full<Bytes>>> = match IntercomClientLayer::new(token)
        .api_base(base.clone())
        .https()
    {
        Ok(client) => client,
        Err(err) => return vec![err.to_string()],
    };
    let me = match tokio::time::timeout(TIMEOUT, client.me()).await {
        Ok(Ok(me)) => me,
        Ok(Err(err)) => return vec![refused(&err, &base)],
        Err(_) => return vec![format!("no answer from {base} within {TIMEOUT:?}")],
    };
    let mut problems = describe(&me);
    problems.extend(check_age(&age));
    if problems.is_empty() {
        println!(
            "OK: the token works for an admin of app {}.",
            me.app().id_code()
        );
    }
    problems
}

/// What a failed `GET /me` means, and what to do.
fn refused(err: &tower_intercom::client::Error, base: &ApiBase) -> String {
    match err.kind() {
        ErrorKind::Unauthorized => format!(
            "{err}: the token is invalid, revoked or suspended (or belongs to a workspace \
             of another region than {base}); generate a new one in the Developer Hub"
        ),
        ErrorKind::Transport => format!("cannot reach the Intercom API at {base}: {err}"),
        _ => err.to_string(),
    }
}

/// Prints what `GET /me` says; the problems it shows.
fn describe(me: &Me) -> Vec<String> {
    let app = me.app();
    println!(
        "Admin:                 type {}, id {}, {}",
        me.kind(),
        me.id(),
        me.email()
    );
    println!(
        "App:                   {} ({}), region {}",
        app.id_code(),
        app.name(),
        app.region()
    );
    let (state, problem) = match app.identity_verification() {
        Some(true) => ("enforced", None),
        Some(false) => (
            "OFF",
            Some(format!(
                "Identity Verification is not enforced on app {}: anyone can impersonate \
                 your users in the Messenger; enforce it in Intercom's Messenger security \
                 settings",
                app.id_code()
            )),
        ),
        None => (
            "unknown",
            Some("GET /me does not say whether Identity Verification is enforced".to_owned()),
        ),
    };
    println!("Identity Verification: {state}");
    problem.into_iter().collect()
}

/// Prints the token's age when it is known; a problem past 90 days.
fn check_age(age: &TokenAge) -> Option<String> {
    let Some(days) = age.age().map(|age| age.as_secs() / DAY) else {
        println!("Token age:             unknown (set {ISSUED_AT_VAR} to when it was generated)");
        return None;
    };
    let limit = TokenAge::ROTATE_AFTER.as_secs() / DAY;
    if age.rotation_due() {
        println!("Token age:             {days} days (rotation due)");
        return Some(format!(
            "the token is {days} days old: rotate it (every {limit} days)"
        ));
    }
    println!(
        "Token age:             {days} days (rotate within {} days)",
        limit.saturating_sub(days)
    );
    None
}
