//! What the client returns instead of an answer: Intercom refused the
//! token or the request, the rate limit held, the request or a redirect
//! named another host, the HTTP client failed, or `GET /me` answered
//! something else than an admin.

use std::{error::Error as StdError, fmt, time::Duration};

use http::StatusCode;
use serde::Deserialize;

use crate::{access_token::AccessToken, box_error::BoxError};

/// The error of an [`IntercomClient`](super::IntercomClient) request; see
/// [`kind`](Self::kind).
///
/// It carries what Intercom said about a refusal (the status, its error
/// codes and messages, the `request_id` its support asks for) and nothing
/// else of the answer's body; never the access token, in `Debug` or
/// `Display`, even if an answer were to echo it.
///
/// # Example
///
/// ```
/// use tower_intercom::client::{Error, ErrorKind};
///
/// fn log(err: &Error) {
///     match err.kind() {
///         ErrorKind::Unauthorized => {
///             // Invalid, revoked or suspended: rotate the token.
///             eprintln!("Intercom refused the token: {err}");
///         }
///         ErrorKind::RateLimited => eprintln!("try again later: {err}"),
///         _ => eprintln!("{err}"),
///     }
/// }
/// # let _ = log;
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    status: Option<StatusCode>,
    request_id: Option<String>,
    details: Vec<ApiErrorDetail>,
    /// What else the message says (an off-host name, a wait).
    context: Context,
    source: Option<BoxError>,
}

enum Context {
    None,
    OffHost {
        host: String,
        redirect: bool,
    },
    RateLimited {
        retries: u32,
        reset_in: Option<Duration>,
    },
    /// The `type` `GET /me` answered, when it was not `admin`.
    NotAdmin {
        kind: Option<String>,
    },
    /// What could not be used in an answer.
    Unexpected {
        what: &'static str,
    },
}

/// What went wrong; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Intercom refused the access token: a 401, or an error code that
    /// names the token (`unauthorized`, `token_revoked`,
    /// `token_unauthorized`, `token_not_found`, `token_suspended`, any
    /// `token_…`). The token is invalid, revoked (regenerated in the
    /// Developer Hub, or the app uninstalled) or suspended: every request
    /// with it will fail until it is replaced.
    Unauthorized,
    /// Intercom refused this request with 403 and no token code: the token
    /// works, but lacks a permission (a scope the app was not granted) or
    /// the workspace's plan does not include the feature.
    Forbidden,
    /// Intercom's rate limit refused the request (429) after the client's
    /// retries, or asked for a longer wait than the client may hold it.
    RateLimited,
    /// The request's URI, or a redirect in its answer, names another
    /// origin than the API base: the token was not sent there (for a URI)
    /// or the redirect was not followed (for an answer).
    OffHost,
    /// The HTTP client failed (connection, TLS, timeout, body): see
    /// [`source`](std::error::Error::source).
    Transport,
    /// `GET /me` answered for something else than an admin (its `type` is
    /// not `"admin"`): the token is not an access token of an app in
    /// Intercom's Developer Hub, or the API base is not Intercom's API.
    NotAdmin,
    /// An answer the client could not use: `GET /me` answered another
    /// status than 2xx and no refusal (a 404 from a wrong API base path, a
    /// 5xx), or a body that is not the documented JSON.
    UnexpectedAnswer,
}

/// One entry of Intercom's `error.list`: a code such as `token_revoked` and
/// its human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErrorDetail {
    code: String,
    message: String,
}

impl ApiErrorDetail {
    /// Intercom's error code, `""` when the answer gave none.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Intercom's message, `""` when the answer gave none.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The codes of `error.list` that mean the token itself was refused.
const TOKEN_CODES: [&str; 5] = [
    "unauthorized",
    "token_revoked",
    "token_unauthorized",
    "token_not_found",
    "token_suspended",
];

/// At most this many entries, code and message characters are kept from
/// an error answer.
const MAX_DETAILS: usize = 8;
const MAX_CODE_LEN: usize = 64;
const MAX_MESSAGE_LEN: usize = 256;

/// At most this many sources of a transport error are shown.
const MAX_SOURCES: usize = 8;

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The status Intercom answered with, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The `request_id` of Intercom's error answer: quote it to Intercom's
    /// support.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// The entries of Intercom's `error.list` (at most 8), first first.
    pub fn details(&self) -> &[ApiErrorDetail] {
        &self.inner.details
    }

    /// The first of Intercom's error codes, such as `token_revoked`.
    pub fn code(&self) -> Option<&str> {
        self.inner
            .details
            .iter()
            .map(ApiErrorDetail::code)
            .find(|code| !code.is_empty())
    }

    fn new(kind: ErrorKind, context: Context) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                status: None,
                request_id: None,
                details: Vec::new(),
                context,
                source: None,
            }),
        }
    }

    /// The HTTP client's own error.
    pub(crate) fn transport(source: impl Into<BoxError>) -> Self {
        let mut err = Self::new(ErrorKind::Transport, Context::None);
        err.inner.source = Some(source.into());
        err
    }

    /// A request whose URI names `host` (not the base's origin).
    pub(crate) fn off_host_request(uri: &http::Uri) -> Self {
        let host = uri.host().unwrap_or_default().to_owned();
        Self::new(
            ErrorKind::OffHost,
            Context::OffHost {
                host,
                redirect: false,
            },
        )
    }

    /// An answer redirecting off the base's origin.
    pub(crate) fn off_host_redirect(
        status: StatusCode,
        location: Option<&http::HeaderValue>,
    ) -> Self {
        let host = location
            .and_then(|location| location.to_str().ok())
            .and_then(|location| location.parse::<http::Uri>().ok())
            .and_then(|uri| uri.host().map(str::to_owned))
            .unwrap_or_default();
        let mut err = Self::new(
            ErrorKind::OffHost,
            Context::OffHost {
                host,
                redirect: true,
            },
        );
        err.inner.status = Some(status);
        err
    }

    /// `GET /me` answered 2xx for a `type` other than `admin` (`None`: the
    /// answer had none).
    pub(crate) fn not_admin(kind: Option<&str>, token: &AccessToken) -> Self {
        let kind = kind.map(|kind| clean(kind, MAX_CODE_LEN, token.expose_secret()));
        let mut err = Self::new(ErrorKind::NotAdmin, Context::NotAdmin { kind });
        err.inner.status = Some(StatusCode::OK);
        err
    }

    /// An answer with `status` the client cannot use, for the reason
    /// `what`; an `error.list` in `body` is kept as for a refusal.
    pub(crate) fn unexpected(
        status: StatusCode,
        what: &'static str,
        body: &[u8],
        token: &AccessToken,
    ) -> Self {
        let list = ErrorList::parse(body, token.expose_secret());
        let mut err = Self::new(ErrorKind::UnexpectedAnswer, Context::Unexpected { what });
        err.inner.status = Some(status);
        err.inner.request_id = list.request_id;
        err.inner.details = list.details;
        err
    }

    /// A refusal by Intercom: 401, 403, or a 429 the client gives up on,
    /// with what its `error.list` body says. `token` is the one the request
    /// was sent with: should a message echo it, it is cut out.
    pub(crate) fn refused(
        status: StatusCode,
        body: &[u8],
        token: &AccessToken,
        rate_limited: Option<(u32, Option<Duration>)>,
    ) -> Self {
        let list = ErrorList::parse(body, token.expose_secret());
        let kind = if list.details.iter().any(|d| is_token_code(&d.code))
            || status == StatusCode::UNAUTHORIZED
        {
            ErrorKind::Unauthorized
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            ErrorKind::RateLimited
        } else {
            ErrorKind::Forbidden
        };
        let context = match (kind, rate_limited) {
            (ErrorKind::RateLimited, Some((retries, reset_in))) => {
                Context::RateLimited { retries, reset_in }
            }
            _ => Context::None,
        };
        let mut err = Self::new(kind, context);
        err.inner.status = Some(status);
        err.inner.request_id = list.request_id;
        err.inner.details = list.details;
        err
    }

    /// The label of the auth failure metric: the first code when it is
    /// one the crate knows, `other` for another, else what the status
    /// means.
    pub(crate) fn code_label(&self) -> &'static str {
        const KNOWN: [&str; 7] = [
            "unauthorized",
            "token_revoked",
            "token_unauthorized",
            "token_not_found",
            "token_suspended",
            "forbidden",
            "api_plan_restricted",
        ];
        match self.code() {
            Some(code) => KNOWN
                .into_iter()
                .find(|known| *known == code)
                .unwrap_or("other"),
            None if self.inner.status == Some(StatusCode::UNAUTHORIZED) => "unauthorized",
            None => "forbidden",
        }
    }
}

fn is_token_code(code: &str) -> bool {
    TOKEN_CODES.contains(&code) || code.starts_with("token_")
}

/// Intercom's error body, `{"type":"error.list","request_id":…,"errors":[…]}`,
/// cut to size and cleaned of anything but printable text.
struct ErrorList {
    request_id: Option<String>,
    details: Vec<ApiErrorDetail>,
}

impl ErrorList {
    fn parse(body: &[u8], token: &str) -> Self {
        #[derive(Deserialize)]
        struct Body {
            request_id: Option<String>,
            #[serde(default)]
            errors: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            code: Option<String>,
            message: Option<String>,
        }
        let Ok(body) = serde_json::from_slice::<Body>(body) else {
            return Self {
                request_id: None,
                details: Vec::new(),
            };
        };
        let clean =
            |text: Option<String>, max: usize| clean(text.as_deref().unwrap_or(""), max, token);
        Self {
            request_id: body
                .request_id
                .map(|id| clean(Some(id), MAX_CODE_LEN))
                .filter(|id| !id.is_empty()),
            details: body
                .errors
                .into_iter()
                .take(MAX_DETAILS)
                .map(|entry| ApiErrorDetail {
                    code: clean(entry.code, MAX_CODE_LEN),
                    message: clean(entry.message, MAX_MESSAGE_LEN),
                })
                .collect(),
        }
    }
}

/// `text` without the token, control characters turned to spaces, cut to
/// `max` characters.
pub(crate) fn clean(text: &str, max: usize, token: &str) -> String {
    let text = if !token.is_empty() && text.contains(token) {
        text.replace(token, "[REDACTED]")
    } else {
        text.to_owned()
    };
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        match (inner.kind, &inner.context) {
            (
                ErrorKind::OffHost,
                Context::OffHost {
                    host,
                    redirect: true,
                },
            ) => write!(
                f,
                "the answer redirects to another host than the Intercom API base ({host:?}): \
                 not followed with the access token"
            )?,
            (ErrorKind::OffHost, Context::OffHost { host, .. }) => write!(
                f,
                "the request names another host than the Intercom API base ({host:?}): \
                 the access token was not sent"
            )?,
            (ErrorKind::OffHost, _) => {
                f.write_str("the request names another host than the Intercom API base")?
            }
            (ErrorKind::Unauthorized, _) => f.write_str("Intercom refused the access token")?,
            (ErrorKind::Forbidden, _) => f.write_str("Intercom refused the request")?,
            (ErrorKind::RateLimited, context) => {
                f.write_str("Intercom's rate limit refused the request")?;
                match context {
                    Context::RateLimited {
                        reset_in: Some(wait),
                        ..
                    } => write!(
                        f,
                        " (its window resets in {} s, longer than the client may wait)",
                        wait.as_secs()
                    )?,
                    Context::RateLimited { retries, .. } => write!(f, " after {retries} retries")?,
                    _ => {}
                }
            }
            (ErrorKind::Transport, _) => f.write_str("the HTTP client failed")?,
            (ErrorKind::NotAdmin, Context::NotAdmin { kind: Some(kind) }) => write!(
                f,
                "the access token does not belong to an admin: GET /me answered type {kind:?}"
            )?,
            (ErrorKind::NotAdmin, _) => f.write_str(
                "the access token does not belong to an admin: GET /me answered no type",
            )?,
            (ErrorKind::UnexpectedAnswer, Context::Unexpected { what }) => {
                write!(f, "Intercom's answer could not be used ({what})")?
            }
            (ErrorKind::UnexpectedAnswer, _) => {
                f.write_str("Intercom's answer could not be used")?
            }
        }
        if let Some(status) = inner.status {
            write!(f, ": {status}")?;
        }
        for detail in &inner.details {
            write!(f, ", {}", detail.code)?;
            if !detail.message.is_empty() {
                write!(f, " ({})", detail.message)?;
            }
        }
        if let Some(id) = &inner.request_id {
            write!(f, ", request_id {id}")?;
        }
        if inner.kind == ErrorKind::Transport {
            // hyper-util says where it failed ("client error (Connect)"),
            // its sources why ("Connection refused").
            let mut shown = String::new();
            let mut source = self.source();
            for _ in 0..MAX_SOURCES {
                let Some(err) = source else { break };
                let text = err.to_string();
                if !shown.contains(&text) {
                    write!(f, ": {text}")?;
                }
                shown = text;
                source = err.source();
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let mut f = f.debug_struct("Error");
        f.field("kind", &inner.kind);
        if let Some(status) = inner.status {
            f.field("status", &status);
        }
        if !inner.details.is_empty() {
            f.field("details", &inner.details);
        }
        if let Some(id) = &inner.request_id {
            f.field("request_id", id);
        }
        match &inner.context {
            Context::OffHost { host, redirect } => {
                f.field("host", host).field("redirect", redirect);
            }
            Context::NotAdmin { kind } => {
                f.field("type", kind);
            }
            Context::Unexpected { what } => {
                f.field("what", what);
            }
            Context::None | Context::RateLimited { .. } => {}
        }
        if let Some(source) = &inner.source {
            f.field("source", source);
        }
        f.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "dG9rOnNlY3JldF90b2tlbl92YWx1ZQ==";

    fn token() -> AccessToken {
        TOKEN.parse().unwrap()
    }

    #[test]
    fn revoked_and_suspended_tokens_are_unauthorized_even_on_403() {
        for (status, code) in [
            (401, "unauthorized"),
            (401, "token_revoked"),
            (403, "token_suspended"),
            (401, "token_not_found"),
            (401, "token_unauthorized"),
            (403, "token_blocked_somehow"),
        ] {
            let body = format!(
                r#"{{"type":"error.list","request_id":"req-1","errors":[{{"code":"{code}","message":"no"}}]}}"#
            );
            let status = StatusCode::from_u16(status).unwrap();
            let err = Error::refused(status, body.as_bytes(), &token(), None);
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{code}");
            assert_eq!(err.code(), Some(code));
            assert_eq!(err.request_id(), Some("req-1"));
            assert_eq!(err.status(), Some(status));
        }
        let forbidden = Error::refused(
            StatusCode::FORBIDDEN,
            br#"{"type":"error.list","errors":[{"code":"api_plan_restricted","message":"Active subscription needed."}]}"#,
            &token(),
            None,
        );
        assert_eq!(forbidden.kind(), ErrorKind::Forbidden);
        assert_eq!(forbidden.code_label(), "api_plan_restricted");
        let bare = Error::refused(StatusCode::UNAUTHORIZED, b"<html>", &token(), None);
        assert_eq!(bare.kind(), ErrorKind::Unauthorized);
        assert_eq!(bare.code(), None);
        assert_eq!(bare.code_label(), "unauthorized");
    }

    #[test]
    fn shows_code_message_and_request_id_never_the_token_or_other_body() {
        let body = format!(
            r#"{{"type":"error.list","request_id":"0001","secret_field":"leak-me","errors":[{{"code":"token_revoked","message":"Token {TOKEN} revoked\u0007"}}]}}"#
        );
        let err = Error::refused(StatusCode::UNAUTHORIZED, body.as_bytes(), &token(), None);
        let shown = format!("{err} | {err:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(!shown.contains("leak-me"), "{shown}");
        assert!(!shown.contains('\u{7}'), "{shown}");
        assert_eq!(
            err.to_string(),
            "Intercom refused the access token: 401 Unauthorized, token_revoked \
             (Token [REDACTED] revoked ), request_id 0001"
        );
    }

    #[test]
    fn keeps_a_bounded_part_of_huge_error_lists() {
        let entry = format!(
            r#"{{"code":"{}","message":"{}"}}"#,
            "c".repeat(500),
            "m".repeat(5000)
        );
        let body = format!(r#"{{"errors":[{}]}}"#, vec![entry; 100].join(","));
        let err = Error::refused(StatusCode::FORBIDDEN, body.as_bytes(), &token(), None);
        assert_eq!(err.details().len(), MAX_DETAILS);
        assert_eq!(err.details()[0].code().len(), MAX_CODE_LEN);
        assert_eq!(err.details()[0].message().len(), MAX_MESSAGE_LEN);
        assert_eq!(err.code_label(), "other");
    }
}
