//! The connection both Redis stores (idempotency and inbox) open.

use std::time::Duration;

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client};

use crate::StoreError;

/// Connects to the Redis at `url`, within `timeout`, for a store whose
/// every operation has its own timeout: the connection has no response
/// timeout of its own, which would cut short a longer one set on the store
/// later (and fail as `Unavailable` instead of `TimedOut`).
///
/// Then checks that Redis takes commands from it. A Redis that requires a
/// password the URL lacks accepts the connection and refuses every command
/// (`NOAUTH`): that fails here, instead of every operation failing later.
/// Other refusals of the check (an ACL user without `PING`) do not: the
/// store's own commands may still be allowed. The error never contains
/// the URL or its password.
pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let client = Client::open(url).map_err(StoreError::unavailable)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(None)
        .set_number_of_retries(3)
        .set_max_delay(timeout);
    let connection = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(StoreError::unavailable)?;
    let mut pinging = connection.clone();
    match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<()>(&mut pinging)).await {
        Ok(Err(error)) if error.code() == Some("NOAUTH") => Err(StoreError::unavailable(error)),
        Ok(_) => Ok(connection),
        Err(_) => Err(StoreError::timed_out(timeout)),
    }
}
