//! When the SQLite inbox copies its write-ahead log into the database file,
//! and when a dropped store lets go of the file: real files in temporary
//! directories, checked from another connection as another process would.
#![cfg(feature = "inbox-sqlite")]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use tower_intercom::inbox::{InboxStore, Inserted, NewNotification, SqliteStore};

/// A store in `dir` with the given checkpoint interval, and its file.
fn open(dir: &tempfile::TempDir, checkpoint_interval: Duration) -> (PathBuf, SqliteStore) {
    let path = dir.path().join("inbox.sqlite3");
    let store = SqliteStore::options()
        .checkpoint_interval(checkpoint_interval)
        .open(&path)
        .unwrap();
    (path, store)
}

async fn insert(store: &impl InboxStore, id: &str) {
    let notification = NewNotification::new(id, "ping", Bytes::from(vec![b'x'; 2048]));
    assert_eq!(store.insert(notification).await.unwrap(), Inserted::Stored);
}

/// Whether a connection other than the probe still has the file open:
/// leaving WAL mode needs the file to itself.
fn still_open(path: &Path) -> bool {
    let probe = rusqlite::Connection::open(path).unwrap();
    probe.busy_timeout(Duration::ZERO).unwrap();
    let mode: rusqlite::Result<String> =
        probe.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0));
    !matches!(mode.as_deref(), Ok("delete"))
}

/// A dropped store closes the file once its writer has written what was
/// queued, however long its checkpoint interval: another process can then
/// take the file to itself (a backup copying only `inbox.sqlite3`, a
/// `VACUUM`), and the log is gone.
#[tokio::test]
async fn a_dropped_store_lets_go_of_its_file_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = open(&dir, Duration::from_secs(5));
    // The checkpoint thread copies the first, then rests 5 s; the second
    // wakes it for after the rest.
    insert(&store, "notif_1").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    insert(&store, "notif_2").await;
    drop(store);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !path.with_extension("sqlite3-wal").exists(),
        "1 s after the store was dropped, its log is still there"
    );
    assert!(
        !still_open(&path),
        "1 s after the store was dropped, a connection still has the file open"
    );
    // Nothing was lost on the way.
    let count: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM intercom_inbox", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 2);
}

/// A checkpoint held back by a reader's older snapshot (a backup, a
/// report) is tried again once the reader is done, without waiting for the
/// next commit: the store may stay idle for hours.
#[tokio::test]
async fn a_checkpoint_held_back_by_a_reader_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = open(&dir, Duration::from_millis(50));
    insert(&store, "notif_0").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM intercom_inbox", [], |row| row.get(0))
        .unwrap();
    for i in 1..=200 {
        insert(&store, &format!("notif_{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held_back = std::fs::metadata(&path).unwrap().len();
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);

    // No commit from here on.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let size = std::fs::metadata(&path).unwrap().len();
        if size >= held_back + 200 * 2048 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is {size} bytes, {held_back} while the reader held it back: \
             the 200 notifications committed meanwhile are still only in the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
}
