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
