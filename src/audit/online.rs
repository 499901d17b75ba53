//! The checks that ask Intercom (`GET /me`): whether the token belongs to an
//! admin, whether Identity Verification is enforced, how old the token is.
//!
//! With the `client` feature, one `GET /me` answers the first two (on a
//! thread of its own with a current-thread runtime, so that the audit stays
//! a blocking call that works inside an async test too, bounded by
//! [`TIMEOUT`]); the token's age comes from its issued-at time, which no
//! API gives. Without the feature each is skipped with the reason; they
//! take their place in the list either way, so that the table and the
//! JSON keep their shape.

use super::report::Check;

/// Check ids.
pub(crate) const CHECKS: [&str; 3] = [
    "intercom.token_admin",
    "intercom.identity_verification",
    "intercom.token_age",
];

const NO_TOKEN: &str = "no access token given (INTERCOM_ACCESS_TOKEN)";

/// The online checks of a build without an API client.
#[cfg(not(feature = "client"))]
pub(crate) fn run(token: Option<&[u8]>) -> Vec<Check> {
    let reason = if token.is_some() {
        "needs Intercom's API (GET /me), which this build of tower-intercom cannot call: it has no API client (the `client` feature)"
    } else {
        NO_TOKEN
    };
    CHECKS
        .iter()
        .map(|&id| Check::skipped(id, reason))
        .collect()
}

#[cfg(feature = "client")]
pub(crate) use self::client::{run, Settings};

#[cfg(feature = "client")]
mod client {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http_body_util::Full;

    use super::{Check, CHECKS, NO_TOKEN};
    use crate::{
        access_token::AccessToken,
        client::{ApiBase, Error, ErrorKind, IntercomClientLayer, Me, TokenAge},
    };

    /// How long the audit waits for `GET /me`, rate-limit waits included.
    pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

    const DAY: u64 = 24 * 3600;

    /// Where the token was generated, in one line.
    const GENERATE: &str = "Developer Hub → your app → Configure → Authentication";

    /// Where the online checks call Intercom and when the token was issued;
    /// a value read from the environment that did not parse is kept as its
    /// error, reported by the check that needs it.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Settings {
        pub(crate) api_base: Option<Result<ApiBase, String>>,
        pub(crate) issued_at: Option<Result<SystemTime, String>>,
    }

    /// The three checks, `GET /me` called at most once.
    pub(crate) fn run(token: Option<&[u8]>, settings: &Settings) -> Vec<Check> {
        let [admin_id, iv_id, age_id] = CHECKS;
        let age = age(age_id, token.is_some(), settings);
        let Some(token) = token else {
            return vec![
                Check::skipped(admin_id, NO_TOKEN),
                Check::skipped(iv_id, NO_TOKEN),
                age,
            ];
        };
        let Some(token) = std::str::from_utf8(token)
            .ok()
            .and_then(|text| AccessToken::new(text).ok())
        else {
            let reason = "the access token is malformed (see secrets.access_token): not sent";
            return vec![
                Check::skipped(admin_id, reason),
                Check::skipped(iv_id, reason),
                age,
            ];
        };
        let base = match &settings.api_base {
            None => ApiBase::default(),
            Some(Ok(base)) => base.clone(),
            Some(Err(err)) => {
                return vec![
                    Check::failed(
                        admin_id,
                        format!("GET /me not sent: {err}"),
                        "set INTERCOM_API_URL to us, eu, au or the https:// URL of the API",
                    ),
                    Check::skipped(iv_id, "GET /me not sent (see intercom.token_admin)"),
                    age,
                ]
            }
        };
        let fingerprint = token.fingerprint();
        match me(token, &base) {
            Ok(me) => vec![
                Check::passed(
                    admin_id,
                    format!(
                        "the token (fingerprint {fingerprint}) belongs to admin {} ({}) of app {}, \
                         region {}",
                        me.id(),
                        me.email(),
                        me.app().id_code(),
                        me.app().region()
                    ),
                ),
                identity_verification(iv_id, &me),
                age,
            ],
            Err(failure) => vec![
                refused(admin_id, &failure, &fingerprint, &base),
                Check::skipped(iv_id, "GET /me failed (see intercom.token_admin)"),
                age,
            ],
        }
    }

    /// Why `GET /me` gave no answer to use.
    enum Failure {
        Api(Error),
        Timeout,
        Setup(String),
    }

    /// `GET /me` on a thread of its own, with a current-thread runtime.
    fn me(token: AccessToken, base: &ApiBase) -> Result<Me, Failure> {
        let layer = IntercomClientLayer::new(token).api_base(base.clone());
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| Failure::Setup(format!("no Tokio runtime: {err}")))?;
                    runtime.block_on(async move {
                        let client = layer
                            .https::<Full<Bytes>>()
                            .map_err(|err| Failure::Setup(err.to_string()))?;
                        match tokio::time::timeout(TIMEOUT, client.me()).await {
                            Ok(Ok(me)) => Ok(me),
                            Ok(Err(err)) => Err(Failure::Api(err)),
                            Err(_) => Err(Failure::Timeout),
                        }
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(Failure::Setup("the API client panicked".to_owned())))
        })
    }

    fn refused(id: &'static str, failure: &Failure, fingerprint: &str, base: &ApiBase) -> Check {
        let unreachable = "check the network and INTERCOM_API_URL, then audit again";
        let err = match failure {
            Failure::Timeout => {
                return Check::failed(
                    id,
                    format!("the Intercom API at {base} did not answer GET /me within {TIMEOUT:?}"),
                    unreachable,
                )
            }
            Failure::Setup(err) => {
                return Check::failed(id, format!("GET /me not sent: {err}"), unreachable)
            }
            Failure::Api(err) => err,
        };
        match err.kind() {
            ErrorKind::Unauthorized => Check::failed(
                id,
                format!(
                    "Intercom refused the token (fingerprint {fingerprint}): {} ({err})",
                    err.code().unwrap_or("unauthorized")
                ),
                format!(
                    "rotate it: {GENERATE}, generate a new token, put it in \
                     INTERCOM_ACCESS_TOKEN (and check that {base} is the workspace's region)"
                ),
            ),
            ErrorKind::NotAdmin => Check::failed(
                id,
                format!("the token (fingerprint {fingerprint}) is not an admin's: {err}"),
                format!("use your app's access token ({GENERATE}), which acts as an admin"),
            ),
            ErrorKind::Transport => Check::failed(
                id,
                format!("cannot reach the Intercom API at {base}: {err}"),
                unreachable,
            ),
            _ => Check::failed(
                id,
                format!("GET /me at {base} failed: {err}"),
                format!("check INTERCOM_API_URL and the token ({GENERATE}), then audit again"),
            ),
        }
    }

    fn identity_verification(id: &'static str, me: &Me) -> Check {
        let app = me.app().id_code();
        let remediation = "turn on Identity Verification: Settings → Channels → Messenger → \
                           Security (Messenger Security), with the identity secret on your server";
        match me.app().identity_verification() {
            Some(true) => Check::passed(id, format!("enforced on app {app}")),
            Some(false) => Check::failed(
                id,
                format!(
                    "not enforced on app {app}: anyone can impersonate your users in the Messenger"
                ),
                remediation,
            ),
            None => Check::failed(
                id,
                format!("GET /me does not say whether it is enforced on app {app}"),
                remediation,
            ),
        }
    }

    fn age(id: &'static str, token_given: bool, settings: &Settings) -> Check {
        if !token_given {
            return Check::skipped(id, NO_TOKEN);
        }
        let issued_at = match &settings.issued_at {
            Some(Ok(at)) => *at,
            Some(Err(err)) => {
                return Check::failed(
                    id,
                    err.clone(),
                    "set INTERCOM_ACCESS_TOKEN_ISSUED_AT to when the token was generated, \
                     RFC 3339 (2025-01-31T09:00:00Z)",
                )
            }
            None => {
                return Check::skipped(
                    id,
                    "the token's issued-at time is not known (no Intercom API gives it): \
                     set INTERCOM_ACCESS_TOKEN_ISSUED_AT",
                )
            }
        };
        let age = TokenAge::since(issued_at).age().unwrap_or_default();
        let days = age.as_secs() / DAY;
        let limit = TokenAge::ROTATE_AFTER.as_secs() / DAY;
        if age >= TokenAge::ROTATE_AFTER {
            Check::failed(
                id,
                format!("the token is {days} days old (rotate every {limit} days)"),
                format!(
                    "rotate it: {GENERATE}, generate a new token, deploy it, revoke this one \
                     and set INTERCOM_ACCESS_TOKEN_ISSUED_AT to the new one's time"
                ),
            )
        } else {
            Check::passed(
                id,
                format!(
                    "the token is {days} days old (rotate within {} days)",
                    limit.saturating_sub(days)
                ),
            )
        }
    }
}
