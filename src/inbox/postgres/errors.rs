//! Postgres's errors as the inbox's [`StoreError`]s: what went wrong in
//! words, with the server's own message, never the URL or its password.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::SqlState;

use super::StoreError;

/// A statement's, or a connection's, error. `timeout` is the store's (a
/// statement Postgres cancelled at its `statement_timeout` timed out).
pub(super) fn store_error(error: &tokio_postgres::Error, timeout: Duration) -> StoreError {
    let Some(db) = error.as_db_error() else {
        if error.is_closed() {
            return StoreError::unavailable("the connection to Postgres was closed");
        }
        // I/O and TLS errors ("error connecting to server: Connection
        // refused"), with their causes: tokio-postgres's text names no host
        // and no password.
        return StoreError::unavailable(format!("cannot reach Postgres: {}", with_causes(error)));
    };
    let code = db.code();
    if *code == SqlState::QUERY_CANCELED {
        return StoreError::timed_out(timeout);
    }
    let what = if *code == SqlState::INVALID_CATALOG_NAME {
        "the database does not exist"
    } else if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        "Postgres refused the login (a server that wants TLS needs sslmode=require in the URL)"
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        "the role lacks a right the inbox needs"
    } else if *code == SqlState::TOO_MANY_CONNECTIONS {
        "Postgres has no connection to spare"
    } else if code.code().starts_with("57P") || code.code().starts_with("08") {
        // admin_shutdown, crash_shutdown, cannot_connect_now (starting
        // up or recovering), and connection exceptions.
        "Postgres is shutting down, starting or unreachable"
    } else {
        "Postgres answered with an error"
    };
    StoreError::unavailable(format!(
        "{what}: {} (SQLSTATE {})",
        db.message(),
        code.code()
    ))
}

/// `error`'s text, followed by each of its causes that it does not show.
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        let shown = error.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = error.source();
    }
    text
}

/// The options a connection string may name: libpq's, and
/// tokio-postgres's own `keepalives_retries`. An error names an option
/// only when it is one of these: the parser takes any other text for an
/// option's name, a piece of the password included (`password=a b=c`,
/// `?password=a&b=c`, a URL with a space or a quote before it).
const OPTION_NAMES: &[&str] = &[
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "dbname",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "host",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "krbsrvname",
    "load_balance_hosts",
    "options",
    "passfile",
    "password",
    "port",
    "replication",
    "require_auth",
    "requirepeer",
    "requiressl",
    "service",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslmode",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "target_session_attrs",
    "tcp_user_timeout",
    "user",
];

/// A URL (or `key=value` string) that tokio-postgres could not parse. Its
/// parser's reasons can quote the text (an unknown option's name, the
/// character found where `=` was expected), which may be a piece of the
/// password: the error says what is wrong in words of its own, naming
/// only the options in [`OPTION_NAMES`], and no other text of the URL.
pub(super) fn url_error(error: &tokio_postgres::Error) -> StoreError {
    let reason = std::error::Error::source(error).and_then(|cause| {
        if cause.is::<std::str::Utf8Error>() {
            return Some("a percent-encoded part is not UTF-8".to_owned());
        }
        let text = cause.to_string();
        let named = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix('`'))
                .filter(|name| OPTION_NAMES.contains(name))
        };
        if text.starts_with("unknown option `") {
            return Some(named("unknown option `").map_or_else(
                || {
                    "an unknown option, not named here as it may be part of the password (is \
                     the URL quoted, or after a space? is a value with a space or `&` neither \
                     quoted nor percent-encoded?)"
                        .to_owned()
                },
                |name| format!("unknown option `{name}`"),
            ));
        }
        if let Some(name) = named("invalid value for option `") {
            return Some(format!("invalid value for option `{name}`"));
        }
        if text.starts_with("unexpected character at byte") {
            return Some("an option without `=` (is a value with a space not quoted?)".to_owned());
        }
        [
            "unexpected EOF",
            "unterminated parameter",
            "unterminated quoted connection parameter value",
        ]
        .contains(&text.as_str())
        .then_some(text)
    });
    StoreError::unavailable(match reason {
        Some(reason) => format!("the Postgres URL is invalid: {reason}"),
        None => "the Postgres URL is invalid".to_owned(),
    })
}

/// Why no pooled connection could be had.
pub(super) fn pool_error(error: PoolError, timeout: Duration) -> StoreError {
    match error {
        PoolError::Timeout(TimeoutType::Wait) => StoreError::timed_out(timeout),
        // Connecting (or checking a connection) took the whole timeout: a
        // server that does not answer.
        PoolError::Timeout(_) => StoreError::timed_out(timeout),
        PoolError::Backend(error) => store_error(&error, timeout),
        PoolError::Closed => StoreError::unavailable("the Postgres pool is closed"),
        PoolError::NoRuntimeSpecified => {
            StoreError::unavailable("the Postgres pool has no runtime for its timeouts")
        }
        PoolError::PostCreateHook(error) => StoreError::unavailable(error.to_string()),
    }
}
