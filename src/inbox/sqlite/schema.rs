//! The file's schema and its migrations, and how a connection is opened.

use std::{path::Path, time::Duration};

use rusqlite::{Connection, OpenFlags};

use super::{unavailable, StoreError};

pub(super) const SCHEMA_VERSION: i64 = 2;

/// The notifications' states in one table of small rows, their bodies in
/// another: a claim or a completion rewrites only the small rows (many to
/// a page, next to each other), not the pages holding the bodies.
pub(super) const SCHEMA: &str = include_str!("sql/schema.sql");

/// From version 1 (bodies in the main table, and an index on state that
/// plans must not use) to version 2.
pub(super) const MIGRATE_FROM_1: &str = include_str!("sql/migrate_from_1.sql");

pub(super) fn open_connection(
    path: &Path,
    busy_timeout: Duration,
    query_only: bool,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    connection.busy_timeout(busy_timeout).map_err(unavailable)?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::unavailable(format!(
            "the inbox needs a file in WAL mode; SQLite kept journal_mode={mode}"
        )));
    }
    connection
        .execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = 268435456;",
        )
        .map_err(unavailable)?;
    if query_only {
        connection
            .pragma_update(None, "query_only", true)
            .map_err(unavailable)?;
    }
    Ok(connection)
}

pub(super) fn migrate(connection: &Connection) -> Result<(), StoreError> {
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(unavailable)?;
    let migrated = (|| {
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::unavailable(format!(
                "the inbox file has schema version {version}, newer than this version of \
                 tower-intercom knows ({SCHEMA_VERSION})"
            )));
        }
        if version == 1 {
            connection
                .execute_batch(MIGRATE_FROM_1)
                .map_err(unavailable)?;
        }
        connection.execute_batch(SCHEMA).map_err(unavailable)?;
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(unavailable)?;
        connection.execute_batch("COMMIT").map_err(unavailable)
    })();
    if migrated.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    migrated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::SqliteStore;

    /// A file of the first schema (bodies in the main table, an index on
    /// state): opening it moves the bodies out and drops that index.
    #[test]
    fn a_version_1_file_is_migrated() {
        let dir = std::env::temp_dir().join(format!(
            "tower-intercom-migrate-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inbox.sqlite3");
        let connection = open_connection(&path, Duration::ZERO, false).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE intercom_inbox (
                   seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
                   body BLOB, received_at INTEGER NOT NULL,
                   state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
                   available_at INTEGER NOT NULL, lease_until INTEGER, lease_token INTEGER,
                   last_error TEXT, done_at INTEGER
                 ) STRICT;
                 CREATE INDEX intercom_inbox_ready  ON intercom_inbox(available_at, seq) WHERE state = 0;
                 CREATE INDEX intercom_inbox_leased ON intercom_inbox(lease_until) WHERE state = 1;
                 CREATE INDEX intercom_inbox_state  ON intercom_inbox(state);
                 CREATE INDEX intercom_inbox_done   ON intercom_inbox(done_at) WHERE state = 2;
                 CREATE INDEX intercom_inbox_dead   ON intercom_inbox(seq) WHERE state = 3;
                 INSERT INTO intercom_inbox (id, topic, body, received_at, available_at)
                   VALUES ('notif_pending', 'ping', X'7B7D', 1, 1);
                 INSERT INTO intercom_inbox (id, topic, body, received_at, available_at, state, done_at)
                   VALUES ('notif_done', 'ping', NULL, 1, 1, 2, 5);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        drop(connection);

        let store = SqliteStore::open(&path).expect("a version-1 file opens");
        drop(store);
        let connection = Connection::open(&path).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let state_index: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'intercom_inbox_state'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(state_index, 0);
        let moved: Vec<(String, Vec<u8>)> = connection
            .prepare("SELECT id, body FROM intercom_inbox JOIN intercom_inbox_body USING (seq)")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(moved, [("notif_pending".to_owned(), b"{}".to_vec())]);
        let ids: i64 = connection
            .query_row("SELECT count(*) FROM intercom_inbox", [], |row| row.get(0))
            .unwrap();
        assert_eq!(ids, 2, "the done id stays, for deduplication");
        drop(connection);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
