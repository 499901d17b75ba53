//! The SQLite inbox's write-ahead log under sustained writes: a real file
//! written by many tasks at once. In its own test binary because it keeps
//! both cores and the disk busy for seconds: beside it, the lease timings
//! of `inbox_sqlite`'s tests would measure this load, not the store.
#![cfg(feature = "inbox-sqlite")]

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use tower_intercom::inbox::{InboxStore, Inserted, NewNotification, SqliteStore};

/// Under writes that never pause, SQLite never starts its write-ahead log
/// over by itself (every checkpoint ends with new commits behind it): the
/// log grew by every write, about 3.5 times the bodies stored, until the
/// load stopped. The store makes it start over, so the log stays a small
/// part of what was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_starts_over_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sqlite3");
    // The default checkpoint interval, as users run it.
    let store = SqliteStore::open(&path).unwrap();
    let store = Arc::new(store);
    let (n, writers) = (20_000_u64, 64);
    let body = Bytes::from(vec![b'x'; 2048]);
    let written = n * body.len() as u64;

    let done = Arc::new(AtomicBool::new(false));
    let wal = path.with_extension("sqlite3-wal");
    let largest_wal = {
        let (done, wal) = (done.clone(), wal.clone());
        tokio::spawn(async move {
            let mut largest = 0;
            while !done.load(Ordering::Relaxed) {
                largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            largest
        })
    };
    let next = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (store, next, body) = (store.clone(), next.clone(), body.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if u64::from(i) >= n {
                        break;
                    }
                    let notification =
                        NewNotification::new(format!("notif_{i}"), "ping", body.clone());
                    assert_eq!(store.insert(notification).await.unwrap(), Inserted::Stored);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let largest = largest_wal.await.unwrap();
    let stats = store.stats();
    eprintln!(
        "{n} inserts of 2 KiB ({written} bytes) in {} commits; the log reached {largest} bytes",
        stats.commits
    );
    assert_eq!(store.counts().await.unwrap().pending, n);
    assert!(
        largest < written / 2,
        "the write-ahead log reached {largest} bytes for {written} bytes of bodies"
    );
}
