//! The durable inbox with the SQLite store: real files in temporary
//! directories, real threads and processes, no mocks. The behaviour every
//! store shares is in `tower_intercom_test_support::inbox::scenarios`, run
//! here through the SQLite harness; this file has what is SQLite's own.
#![cfg(feature = "inbox-sqlite")]

use std::time::Instant;

use tower_intercom::inbox::Inbox;
use tower_intercom_test_support::{
    inbox::{
        accept_all,
        sqlite::{open_store, SqliteHarness},
        stack, InboxHarness,
    },
    inbox_suite,
};

inbox_suite!(SqliteHarness);

/// Many deliveries at once go through a few commits (group commit); every
/// one is answered 200 and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_are_committed_in_groups() {
    let harness = SqliteHarness::start().await;
    let inbox = Inbox::new(open_store(harness.path(), |options| options).unwrap());
    let service = stack(&inbox);
    let n = 2000;
    let start = Instant::now();
    accept_all(&service, n).await;
    let took = start.elapsed();
    let stats = inbox.store().stats();
    eprintln!(
        "{n} concurrent deliveries in {took:?}: {} commits, {:.1} writes per commit on average, {} at most",
        stats.commits,
        stats.writes as f64 / stats.commits as f64,
        stats.largest
    );
    assert_eq!(inbox.counts().await.unwrap().pending, n);
    assert!(stats.largest > 1, "{stats:?}");
    assert!(stats.commits < n, "{stats:?}");
}
