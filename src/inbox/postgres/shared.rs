//! What the store's clones, operations and tasks share: the pool, the
//! statements, and how a statement is run and its rows read.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use deadpool_postgres::{Object, Pool};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::{types::ToSql, Row};

use super::{
    errors::{pool_error, store_error},
    schema::Statements,
    writer::{Completion, Insert, Stats},
    ReceivedNotification, StoreError,
};
use crate::inbox::store_helpers::{truncate, MAX_ERROR_LEN};

/// What the store's clones, its operations and its tasks share.
pub(super) struct Shared {
    pub(super) pool: Pool,
    pub(super) sql: Statements,
    pub(super) schema: String,
    pub(super) timeout: Duration,
    pub(super) max_batch: usize,
    pub(super) channel_capacity: usize,
    pub(super) writes: mpsc::Sender<Insert>,
    pub(super) completions: mpsc::Sender<Completion>,
    /// Woken when notifications were stored, by this store (any of its
    /// clones) or, through `LISTEN`, by another: the idle workers of every
    /// inbox over the store's clones wait on it.
    pub(super) wake: Arc<Notify>,
    /// The database's encoding is not UTF-8: error messages are stored
    /// with their other characters escaped.
    pub(super) ascii_errors: bool,
    pub(super) stats: Arc<Stats>,
    /// The runtime the store was connected in: its connections' tasks and
    /// its claims run there, whichever runtime calls the store (a runtime
    /// that stalls or ends takes no connection of the pool with it).
    pub(super) runtime: tokio::runtime::Handle,
    /// Dropped with the store: the listening task then ends. `None`
    /// without `LISTEN`.
    pub(super) stop_listening: Option<oneshot::Sender<()>>,
}

impl Shared {
    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        pooled(&self.pool, self.timeout, &self.runtime).await
    }

    pub(super) fn error(&self, error: &tokio_postgres::Error) -> StoreError {
        store_error(error, self.timeout)
    }

    pub(super) async fn query(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.error(&e))?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| self.error(&e))
    }

    pub(super) async fn execute(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.error(&e))?;
        client
            .execute(&statement, params)
            .await
            .map_err(|e| self.error(&e))
    }

    /// Runs a fenced (or requeueing) update of one row by id.
    pub(super) async fn update_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(self.execute(&client, sql, params).await? == 1)
    }

    pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        &self,
        row: &'a Row,
        index: usize,
    ) -> Result<T, StoreError> {
        row.try_get(index).map_err(|e| self.error(&e))
    }

    /// A notification from the columns `id, topic, received_at, attempts`
    /// at `at` and its body.
    pub(super) fn notification(
        &self,
        row: &Row,
        at: [usize; 4],
        body: Option<Vec<u8>>,
    ) -> Result<ReceivedNotification, StoreError> {
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes)
                .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
        };
        let attempts: i32 = self.get(row, at[3])?;
        Ok(ReceivedNotification::new(
            text(self.get(row, at[0])?),
            text(self.get(row, at[1])?),
            Bytes::from(body.unwrap_or_default()),
            self.get::<SystemTime>(row, at[2])?,
            u32::try_from(attempts).unwrap_or(0),
        ))
    }
}

/// A pooled connection. Got in a task of its own on `runtime`, the
/// store's: when the operation gives up (its timeout) while a new
/// connection is being made (TCP, TLS, SCRAM: slow on a loaded machine),
/// the connection is still made, and goes to the pool for the next
/// operations, instead of being dropped half-made and started over by
/// each; and the task that drives a new connection runs on the store's
/// runtime, not on the caller's.
pub(super) async fn pooled(
    pool: &Pool,
    timeout: Duration,
    runtime: &tokio::runtime::Handle,
) -> Result<Object, StoreError> {
    let pool = pool.clone();
    runtime
        .spawn(async move { pool.get().await })
        .await
        .map_err(|_| StoreError::unavailable("getting a Postgres connection failed"))?
        .map_err(|error| pool_error(error, timeout))
}

/// The error as a `text` value can hold it: at most [`MAX_ERROR_LEN`]
/// bytes, NUL (which `text` refuses) replaced, and, in a database whose
/// encoding is not UTF-8, every non-ASCII character escaped.
pub(super) fn storable_error(error: &str, ascii: bool) -> String {
    let error = truncate(error, MAX_ERROR_LEN).replace('\0', "\u{fffd}");
    if ascii {
        error.escape_default().to_string()
    } else {
        error
    }
}
