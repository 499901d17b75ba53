//! The durable inbox with the Postgres store, against a real PostgreSQL
//! server started for this test binary on a free loopback port (a
//! database of its own per test; a server of its own for the tests that
//! kill it or need TLS), with real processes, no mocks. The behaviour
//! every store shares is in `tower_intercom_test_support::inbox::scenarios`,
//! run here through the Postgres harness; this file has what is Postgres's
//! own: group commit, ids, topics and errors as `bytea` and `text` hold
//! them, stores racing on one database, `LISTEN` wake-ups, the schema and
//! its migrations, connections, rights, durability, plans, TLS, the
//! server killed, its statement timeout.
//!
//! The server binaries must be on `PATH` or in `/usr/lib/postgresql/*/bin`
//! (`./scripts/test.sh` installs them): without them these tests fail,
//! they never skip.
#![cfg(feature = "inbox-postgres")]

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::StatusCode;
use tower_intercom::{
    inbox::{
        handler_fn, ClaimRequest, Counts, DeadQuery, Failure, Inbox, InboxStore, Inserted,
        NewNotification, PostgresDurability, PostgresInbox, PostgresStore, ReceivedNotification,
        DEFAULT_POSTGRES_TIMEOUT,
    },
    StoreErrorKind,
};
use tower_intercom_test_support::{
    inbox::{
        counts, deliver, envelope,
        postgres::{connect_store, database, database_name, raw, rows, PostgresHarness},
        shutdown, stack, wait_for,
    },
    inbox_suite,
    logs::Logs,
    postgres_server::{PostgresServer as Server, PASSWORD, SUPERUSER},
    proxy::SilencingProxy,
};

inbox_suite!(PostgresHarness);

// ---------------------------------------------------------------- helpers

/// A store with room for a loaded test machine (10 s per operation), for
/// the tests that are not about time.
async fn store(url: &str) -> PostgresStore {
    connect_store(url, |options| options.timeout(Duration::from_secs(10)))
        .await
        .unwrap()
}

/// An inbox over [`store`], with as long a deadline.
async fn inbox(url: &str) -> PostgresInbox {
    Inbox::new(store(url).await).deadline(Duration::from_secs(10))
}

/// Polls the counts until `check` holds, through the errors of a server
/// that is coming back; panics after 30 s.
async fn wait_through_errors<St: InboxStore>(
    inbox: &Inbox<St>,
    what: &str,
    check: impl Fn(Counts) -> bool,
) -> Counts {
    let start = Instant::now();
    loop {
        if let Ok(counts) = inbox.counts().await {
            if check(counts) {
                return counts;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {:?}",
            inbox.counts().await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn new(id: &str) -> NewNotification {
    NewNotification::new(id, "ping", Bytes::from(envelope(id, "ping", 1)))
}

/// Waits until `id` is among the ids the handler recorded in `processed`;
/// panics with `what` 5 s after `sent` (a woken worker takes it at once,
/// the tests' workers poll once a minute).
async fn processed_within_5s(processed: &Mutex<Vec<String>>, id: &str, sent: Instant, what: &str) {
    while !processed.lock().unwrap().iter().any(|done| done == id) {
        assert!(sent.elapsed() < Duration::from_secs(5), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- receive

/// Ids and topics are `bytea`, the exact UTF-8 bytes: a topic with NUL in
/// it (which `text` refuses) and an id with quotes are stored, and handed
/// to the handler, exactly.
#[tokio::test]
async fn topics_with_nul_and_ids_with_quotes_are_stored_exactly() {
    let url = database();
    let inbox = inbox(&url).await;
    let service = stack(&inbox);
    let topic = "ping\u{0}x";
    let ids = ["quote\"back\\slash'", "nul\u{0}inside"];
    for id in ids {
        let body = serde_json::json!({"id": id, "topic": topic, "data": {"item": {}}});
        let answer = deliver(&service, body.to_string()).await;
        assert_eq!((answer.status, answer.duplicate), (StatusCode::OK, false));
    }
    let expected: Vec<(String, String)> = ids
        .iter()
        .map(|id| ((*id).to_owned(), topic.to_owned()))
        .collect();
    let stored: Vec<(String, String)> = rows(&url)
        .await
        .into_iter()
        .map(|row| (row.id, row.topic))
        .collect();
    assert_eq!(stored, expected);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record
                .lock()
                .unwrap()
                .push((n.id().to_owned(), n.topic().to_owned()));
            async { Ok::<_, std::io::Error>(()) }
        }))
        .spawn(signal);
    wait_for(&inbox, "all done", |c| c.done == ids.len() as u64).await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(seen, expected);
}

/// Reception times are kept to the millisecond; one that no `timestamptz`
/// holds is taken as the nearest it does, without failing the inserts
/// written with it.
#[tokio::test]
async fn reception_times_are_kept_and_extreme_ones_fail_nothing() {
    let url = database();
    let store = store(&url).await;
    let now = SystemTime::now();
    let far = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(i64::MAX as u64 / 2))
        .unwrap_or(now + Duration::from_secs(1 << 40));
    let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
    let inserts = [("t_now", now), ("t_far", far), ("t_before", before_epoch)]
        .map(|(id, at)| store.insert(new(id).received_at(at)));
    for insert in inserts {
        assert_eq!(insert.await.unwrap(), Inserted::Stored);
    }
    let claimed = store
        .claim(ClaimRequest::new(10, Duration::from_secs(30), 3))
        .await
        .unwrap();
    let at = |id: &str| {
        claimed
            .leases
            .iter()
            .find(|lease| lease.notification.id() == id)
            .unwrap()
            .notification
            .received_at()
    };
    let millis = |time: SystemTime| {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(millis(at("t_now")), millis(now));
    assert_eq!(
        at("t_far"),
        SystemTime::UNIX_EPOCH + Duration::from_millis(253_402_300_799_999)
    );
    assert_eq!(at("t_before"), SystemTime::UNIX_EPOCH);
}

/// Many deliveries at once are written in few statements (group commit),
/// each answered on its own: one of each id stored, its twin a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_are_committed_in_groups_and_deduplicated_one_by_one() {
    let url = database();
    let store = store(&url).await;
    let n = 300;
    let inserts: Vec<_> = (0..2 * n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(new(&format!("notif_{}", i % n))).await })
        })
        .collect();
    let mut stored = 0;
    let mut duplicates = 0;
    for insert in inserts {
        match insert.await.unwrap().unwrap() {
            Inserted::Stored => stored += 1,
            Inserted::Duplicate => duplicates += 1,
        }
    }
    assert_eq!((stored, duplicates), (n, n));
    assert_eq!(rows(&url).await.len(), n);
    let batches = store.batches();
    eprintln!("{} inserts in {batches:?}", 2 * n);
    assert_eq!(batches.inserts, 2 * n as u64);
    assert!(
        batches.statements < batches.inserts / 4 && batches.largest > 8,
        "{batches:?}"
    );
}

// ---------------------------------------------------------------- the contract

/// A release ends the lease: the next claim leases it with a new token,
/// and the released one fences nothing any more. With nothing pending and
/// nothing leased, a claim reports nothing due (the worker waits for a
/// wake-up or its poll).
#[tokio::test]
async fn a_released_lease_is_fenced_and_nothing_left_is_nothing_due() {
    let url = database();
    let store = store(&url).await;
    store.insert(new("a")).await.unwrap();
    let lease = Duration::from_secs(30);
    let first = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    let released = &first.leases[0].token;
    assert!(store.release("a", released).await.unwrap());
    let again = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    assert_eq!(again.leases[0].notification.attempt(), 1);
    assert_ne!(&again.leases[0].token, released);
    assert!(!store.complete("a", released).await.unwrap());
    assert!(store.complete("a", &again.leases[0].token).await.unwrap());
    let nothing = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    assert!(nothing.leases.is_empty());
    assert_eq!(nothing.next_due, None);
}

/// Completions sent together are written together and fenced one by one:
/// of each lease completed twice with its token and once with a wrong one,
/// all at once, exactly one is taken, never the wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_sent_together_are_fenced_one_by_one() {
    let url = database();
    let store = store(&url).await;
    let n = 200;
    let inserts: Vec<_> = (0..n)
        .map(|i| store.insert(new(&format!("c{i}"))))
        .collect();
    for insert in inserts {
        insert.await.unwrap();
    }
    let claimed = store
        .claim(ClaimRequest::new(n, Duration::from_secs(30), 3))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), n);
    let mut completing = Vec::new();
    for lease in &claimed.leases {
        let wrong = tower_intercom::inbox::LeaseToken::new(lease.token.value() ^ 1);
        // The right token twice, a wrong one between.
        for (token, right) in [
            (lease.token.clone(), true),
            (wrong, false),
            (lease.token.clone(), true),
        ] {
            let (store, id) = (store.clone(), lease.notification.id().to_owned());
            completing.push(tokio::spawn(async move {
                let completed = store.complete(&id, &token).await.unwrap();
                (id, right, completed)
            }));
        }
    }
    let mut done = HashSet::new();
    for completion in completing {
        let (id, right, completed) = completion.await.unwrap();
        if completed {
            assert!(right, "{id}: completed with a wrong token");
            assert!(done.insert(id.clone()), "{id}: completed twice");
        }
    }
    assert_eq!(done.len(), n);
    assert_eq!(store.counts().await.unwrap(), counts(0, 0, n as u64, 0));
    assert!(
        rows(&url).await.iter().all(|row| row.body.is_none()),
        "bodies left"
    );
}

/// The counts date the longest-waiting due notification (by Postgres's
/// clock, read as an age); a retry waiting out its backoff is not due.
#[tokio::test]
async fn counts_date_the_oldest_due_notification() {
    let url = database();
    let store = store(&url).await;
    assert_eq!(store.counts().await.unwrap().oldest_pending, None);
    let before = SystemTime::now();
    store.insert(new("waiting")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = store.counts().await.unwrap();
    let due = counts.oldest_pending.expect("a due notification");
    assert!(
        due + Duration::from_millis(500) >= before && due <= SystemTime::now(),
        "{due:?}"
    );
    let waited = counts.oldest_pending_age(SystemTime::now());
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let claimed = store
        .claim(ClaimRequest::new(1, Duration::from_secs(30), 3))
        .await
        .unwrap();
    let retry_at = SystemTime::now() + Duration::from_secs(60);
    assert!(store
        .fail(
            "waiting",
            &claimed.leases[0].token,
            Failure::retry("later", retry_at)
        )
        .await
        .unwrap());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts, self::counts(1, 0, 0, 0));
    assert_eq!(counts.oldest_pending, None);
}

/// An error is `text`: one with NUL in it (which `text` refuses) is kept
/// with U+FFFD in its place, the rest as it was.
#[tokio::test]
async fn errors_with_nul_are_kept_with_a_replacement_character() {
    let url = database();
    let inbox = inbox(&url).await;
    let store = inbox.store();
    store.insert(new("d0")).await.unwrap();
    let claimed = store
        .claim(ClaimRequest::new(10, Duration::from_secs(30), 3))
        .await
        .unwrap();
    let failure = Failure::dead("broken d0\u{0}\u{e9}");
    assert!(store
        .fail("d0", &claimed.leases[0].token, failure)
        .await
        .unwrap());
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(
        page.notifications[0].last_error(),
        "broken d0\u{fffd}\u{e9}"
    );
}

/// Done ids are forgotten after the retention, at most 1000 per call; a
/// redelivery after that is stored again.
#[tokio::test]
async fn done_ids_are_pruned_in_bounded_chunks() {
    let url = database();
    let store = PostgresStore::options()
        .timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .unwrap();
    let n = 1500;
    for chunk in 0..(n / 250) {
        let inserts: Vec<_> = (0..250)
            .map(|i| store.insert(new(&format!("p{}", chunk * 250 + i))))
            .collect();
        for insert in inserts {
            insert.await.unwrap();
        }
    }
    let mut done = 0;
    while done < n {
        let claimed = store
            .claim(ClaimRequest::new(256, Duration::from_secs(30), 3))
            .await
            .unwrap();
        for lease in &claimed.leases {
            assert!(store
                .complete(lease.notification.id(), &lease.token)
                .await
                .unwrap());
            done += 1;
        }
    }
    // Not yet past the retention.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.prune_done(an_hour_ago).await.unwrap(), 0);
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(store.prune_done(later).await.unwrap(), 1000);
    assert_eq!(store.prune_done(later).await.unwrap(), 500);
    assert_eq!(store.prune_done(later).await.unwrap(), 0);
    assert_eq!(store.counts().await.unwrap(), counts(0, 0, 0, 0));
    assert_eq!(store.insert(new("p0")).await.unwrap(), Inserted::Stored);
}

/// A claim's future can be made outside the runtime that later runs it,
/// as every other operation's: nothing is started before it is polled.
#[test]
fn a_claim_can_be_made_outside_the_runtime_that_runs_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = database();
    let store = runtime.block_on(store(&url));
    let insert = store.insert(new("outside"));
    assert_eq!(runtime.block_on(insert).unwrap(), Inserted::Stored);
    let claim = store.claim(ClaimRequest::new(10, Duration::from_secs(30), 3));
    let claimed = runtime.block_on(claim).unwrap();
    assert_eq!(claimed.leases.len(), 1);
    assert_eq!(claimed.leases[0].notification.id(), "outside");
}

/// A claim dropped after its answer came but before it was read (a
/// worker stopping at that moment) hands its leases back: pending again,
/// the attempt not counted, not leased by nobody until the lease lapses.
#[tokio::test]
async fn a_claim_dropped_with_its_answer_unread_hands_its_leases_back() {
    let url = database();
    let store = store(&url).await;
    assert_eq!(store.insert(new("unread")).await.unwrap(), Inserted::Stored);
    let mut claim = store.claim(ClaimRequest::new(10, Duration::from_secs(120), 5));
    // Polled once: the claim starts (this test's runtime has one thread,
    // so nothing else runs before the await below).
    std::future::poll_fn(|cx| {
        assert!(claim.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    let state = || async {
        let row = raw(&url)
            .await
            .query_one(
                "SELECT state, attempts FROM tower_intercom.inbox WHERE id = 'unread'",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, i16>(0), row.get::<_, i32>(1))
    };
    let start = Instant::now();
    while state().await != (1, 1) {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Its answer is on its way back: given time to arrive, then dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(claim);
    let start = Instant::now();
    while state().await != (0, 0) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still leased: {:?}",
            state().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pool's connections are the store's, whichever runtime asked for
/// them: a connection made while another runtime used the store (a
/// worker's own) keeps working while that runtime is stalled.
#[tokio::test]
async fn connections_made_from_another_runtime_do_not_stall_with_it() {
    let url = database();
    let store = PostgresStore::options()
        .pool_size(2)
        .timeout(Duration::from_secs(1))
        .listen(false)
        .connect(&url)
        .await
        .unwrap();
    let (used, stall) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(true)),
    );
    let other = {
        let (store, used, stall) = (store.clone(), used.clone(), stall.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // Two at once: the pool makes its second connection here.
            let (a, b) = runtime.block_on(async { tokio::join!(store.counts(), store.counts()) });
            a.unwrap();
            b.unwrap();
            used.store(true, Ordering::SeqCst);
            // Stalled: this runtime polls nothing until released.
            while stall.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let start = Instant::now();
    while !used.load(Ordering::SeqCst) {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both connections in use at once, from this runtime.
    let (a, b) = tokio::join!(store.counts(), store.counts());
    stall.store(false, Ordering::SeqCst);
    other.join().unwrap();
    a.unwrap();
    b.unwrap();
}

/// A claim whose answer comes after its caller stopped waiting (the
/// store's timeout: a congested network, a slow server) hands its leases
/// back: the notification is pending again at once, its attempt not
/// counted, instead of being held by nobody until its lease lapses.
#[tokio::test]
async fn a_claim_answered_after_its_caller_gave_up_hands_its_leases_back() {
    let url = database();
    let direct = store(&url).await;
    let proxy = SilencingProxy::start(([127, 0, 0, 1], Server::shared().port()).into()).await;
    let proxied = PostgresStore::options()
        .pool_size(1)
        .timeout(Duration::from_millis(500))
        .listen(false)
        .connect(&format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{}",
            proxy.addr.port(),
            database_name(&url)
        ))
        .await
        .unwrap();
    let lease = Duration::from_secs(120);
    // Its connection has the claim prepared: only the claim is sent next.
    let nothing = proxied.claim(ClaimRequest::new(10, lease, 5)).await;
    assert!(nothing.unwrap().leases.is_empty());
    assert_eq!(direct.insert(new("late")).await.unwrap(), Inserted::Stored);
    proxy.hold_answers(true);
    let error = proxied
        .claim(ClaimRequest::new(10, lease, 5))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::TimedOut);
    // Postgres did lease it: only the answer was late.
    let leased = raw(&url)
        .await
        .query_one(
            "SELECT state, attempts FROM tower_intercom.inbox WHERE id = 'late'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((leased.get::<_, i16>(0), leased.get::<_, i32>(1)), (1, 1));

    proxy.hold_answers(false);
    let start = Instant::now();
    let claimed = loop {
        let claimed = direct.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
        if !claimed.leases.is_empty() {
            break claimed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still leased by nobody: {:?}",
            rows(&url).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(claimed.leases.len(), 1);
    assert_eq!(claimed.leases[0].notification.attempt(), 1);
    assert!(direct
        .complete("late", &claimed.leases[0].token)
        .await
        .unwrap());
}

/// A claim's commit does not wait for the write-ahead log (a claim lost
/// with the server leaves its notifications pending, and the token fences
/// the worker that had them); inserts and completions still do, on the
/// same connection. Shown with a synchronous standby that never comes:
/// every commit that waits for durability hangs until it is named no more.
#[tokio::test]
async fn only_claims_commit_without_waiting_for_durability() {
    let server = Server::start();
    let url = server.fresh_database();
    let store = PostgresStore::options()
        .pool_size(1)
        .timeout(Duration::from_secs(1))
        .listen(false)
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(store.insert(new("a")).await.unwrap(), Inserted::Stored);

    server.sql(
        "postgres",
        "ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
    );
    server.sql("postgres", "SELECT pg_reload_conf()");
    let start = Instant::now();
    while server.sql("postgres", "SHOW synchronous_standby_names") != "nobody" {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claimed = store
        .claim(ClaimRequest::new(10, Duration::from_secs(120), 5))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 1);
    let token = claimed.leases[0].token.clone();
    let completed = store.complete("a", &token).await;
    assert_eq!(
        completed.unwrap_err().kind(),
        StoreErrorKind::TimedOut,
        "a completion answered before it was durable"
    );
    assert!(
        store.insert(new("b")).await.is_err(),
        "an insert answered before it was durable"
    );

    server.sql("postgres", "ALTER SYSTEM RESET synchronous_standby_names");
    server.sql("postgres", "SELECT pg_reload_conf()");
    // The completion that waited is committed once the wait ends.
    let inbox = Inbox::new(store.clone());
    wait_through_errors(&inbox, "the completion", |c| c.done == 1).await;
    assert!(!store.complete("a", &token).await.unwrap());
}

// ---------------------------------------------------------------- many processes

/// Two receivers (two stores, two pools) on one database, delivering the
/// same ids at once: one row per id, one `Stored` per id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_racing_the_same_id_store_one_row() {
    let url = database();
    let (one, two) = (inbox(&url).await, inbox(&url).await);
    let (a, b) = (stack(&one), stack(&two));
    let n = 100;
    let mut racing = Vec::new();
    for i in 0..n {
        let id = format!("notif_race_{i}");
        for service in [a.clone(), b.clone()] {
            let body = envelope(&id, "ping", 1);
            racing.push(tokio::spawn(async move {
                let answer = deliver(&service, body).await;
                assert_eq!(answer.status, StatusCode::OK);
                answer.duplicate
            }));
        }
    }
    let mut duplicates = 0;
    for race in racing {
        duplicates += usize::from(race.await.unwrap());
    }
    assert_eq!(duplicates, n);
    let stored = rows(&url).await;
    assert_eq!(stored.len(), n);
    let ids: HashSet<_> = stored.into_iter().map(|row| row.id).collect();
    assert_eq!(ids.len(), n);
}

// ---------------------------------------------------------------- wake-ups

/// A notification stored by another store (another process) wakes an idle
/// worker through `LISTEN` well before its poll; after the listening
/// connection is killed, it reconnects and wakes the worker again.
#[tokio::test]
async fn another_stores_insert_wakes_the_worker_through_listen() {
    let url = database();
    let (inbox, other) = (inbox(&url).await, inbox(&url).await);
    let processed = Arc::new(Mutex::new(Vec::new()));
    let record = processed.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record
                .lock()
                .unwrap()
                .push((n.id().to_owned(), Instant::now()));
            async { Ok::<_, std::io::Error>(()) }
        }))
        .poll_interval(Duration::from_secs(60))
        .spawn(signal);
    // Idle: its first claim found nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wake_up = |id: &'static str| {
        let (other, processed) = (other.clone(), processed.clone());
        async move {
            let sent = Instant::now();
            other.store().insert(new(id)).await.unwrap();
            loop {
                if let Some((_, at)) = processed.lock().unwrap().iter().find(|(n, _)| n == id) {
                    return at.duration_since(sent);
                }
                assert!(
                    sent.elapsed() < Duration::from_secs(20),
                    "{id} never woke it"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let took = wake_up("woken_1").await;
    assert!(took < Duration::from_secs(2), "{took:?}");

    let terminated: Vec<bool> = raw(&url)
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'tower-intercom inbox (listen)'
                AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(terminated, [true, true], "one listener per store");
    // The listeners reconnect within their first backoff.
    let start = Instant::now();
    loop {
        let listening: i64 = raw(&url)
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE application_name = 'tower-intercom inbox (listen)'
                    AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if listening == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = wake_up("woken_2").await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// Without `LISTEN` (as behind a pooler in transaction mode), another
/// store's insert is not seen until the worker polls, and is then.
#[tokio::test]
async fn without_listen_workers_find_other_stores_inserts_by_polling() {
    let url = database();
    let quiet = Inbox::new(
        PostgresStore::options()
            .listen(false)
            .connect(&url)
            .await
            .unwrap(),
    );
    let other = inbox(&url).await;
    let done = Arc::new(AtomicUsize::new(0));
    let count = done.clone();
    let (trigger, signal) = shutdown();
    let worker = quiet
        .worker(handler_fn(move |_n: ReceivedNotification| {
            count.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::io::Error>(()) }
        }))
        .poll_interval(Duration::from_millis(1500))
        .spawn(signal);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    other.store().insert(new("polled")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // No wake-up: it waits for its poll (or it would be done by now).
    if sent.elapsed() < Duration::from_millis(1000) {
        assert_eq!(done.load(Ordering::SeqCst), 0);
    }
    wait_for(&quiet, "found by polling", |c| c.done == 1).await;
    assert!(sent.elapsed() < Duration::from_secs(5));
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// Without `LISTEN`, two inboxes over clones of one store (one for the
/// receiver, one for the workers) still wake each other: what the
/// receiver stores wakes the other inbox's idle worker at once. The shared
/// scenario `inboxes_over_clones_of_one_store_wake_each_others_workers`
/// checks it with `LISTEN` (whose notifications from the store itself are
/// not relayed), and for requeues.
#[tokio::test]
async fn without_listen_inboxes_over_clones_of_one_store_wake_each_others_workers() {
    let url = database();
    let store = connect_store(&url, |options| {
        options.listen(false).timeout(Duration::from_secs(10))
    })
    .await
    .unwrap();
    let receiving = Inbox::new(store.clone()).deadline(Duration::from_secs(10));
    let working = Inbox::new(store);
    let processed = Arc::new(Mutex::new(Vec::new()));
    let record = processed.clone();
    let (trigger, signal) = shutdown();
    let worker = working
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.lock().unwrap().push(n.id().to_owned());
            async { Ok::<_, std::io::Error>(()) }
        }))
        .poll_interval(Duration::from_secs(60))
        .spawn(signal);
    // Idle: its first claim found nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    let answer = deliver(&stack(&receiving), envelope("clone_woken", "ping", 1)).await;
    assert_eq!(answer.status, StatusCode::OK);
    processed_within_5s(
        &processed,
        "clone_woken",
        sent,
        "the other inbox's worker was not woken",
    )
    .await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// Whether a store's listening connection has run its `LISTEN` on the
/// database at `url`.
async fn listening(url: &str) -> bool {
    let count: i64 = raw(url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE application_name = 'tower-intercom inbox (listen)'
                AND datname = current_database() AND query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    count > 0
}

/// The lines of `text` at `level` that contain `what`.
fn lines_with(text: &str, level: &str, what: &str) -> usize {
    text.lines()
        .filter(|line| line.contains(level) && line.contains(what))
        .count()
}

/// With the server down, the listening connection cannot be made again: a
/// `warn` says once (not at every try) that wake-ups fall back to polling,
/// with why; an `info` says when it listens again, and another store's
/// insert then wakes the worker at once again.
#[tokio::test]
async fn wake_ups_lost_are_warned_about_once_and_their_return_told() {
    let mut server = Server::start();
    let url = server.fresh_database();
    let (logs, capturing) = Logs::start();
    let inbox = inbox(&url).await;
    let start = Instant::now();
    while !listening(&url).await {
        assert!(start.elapsed() < Duration::from_secs(10), "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let processed = Arc::new(Mutex::new(Vec::new()));
    let record = processed.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.lock().unwrap().push(n.id().to_owned());
            async { Ok::<_, std::io::Error>(()) }
        }))
        .poll_interval(Duration::from_secs(60))
        .spawn(signal);
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.kill();
    // Tries again after 100 ms, 200 ms, 400 ms, 800 ms, 1.6 s: five
    // times in these 4 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = logs.text();
    assert_eq!(
        lines_with(&text, "WARN", "wake-ups fall back to polling"),
        1,
        "{text}"
    );
    assert_eq!(
        lines_with(&text, "WARN", "cannot reach Postgres"),
        1,
        "{text}"
    );
    assert!(
        lines_with(&text, "DEBUG", "still cannot LISTEN") >= 3,
        "{text}"
    );
    assert_eq!(lines_with(&text, "INFO", "listens on Postgres again"), 0);

    server.restart();
    let start = Instant::now();
    while lines_with(&logs.text(), "INFO", "listens on Postgres again") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never listened again: {}",
            logs.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = store(&url).await;
    let sent = Instant::now();
    other.insert(new("after_the_outage")).await.unwrap();
    processed_within_5s(
        &processed,
        "after_the_outage",
        sent,
        "the worker was not woken",
    )
    .await;
    trigger.send(()).unwrap();
    worker.await.unwrap();
    drop(capturing);
    let text = logs.text();
    assert_eq!(
        lines_with(&text, "WARN", "wake-ups fall back to polling"),
        1,
        "{text}"
    );
    assert_eq!(lines_with(&text, "INFO", "listens on Postgres again"), 1);
    assert!(!text.contains(PASSWORD), "{text}");
}

// ---------------------------------------------------------------- schema and deployment

async fn versions(url: &str, schema: &str) -> Vec<i32> {
    raw(url)
        .await
        .query(
            &format!("SELECT version FROM {schema}.inbox_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// An empty database gets the schema at the first connect; a second
/// connect finds it current; stores connecting at once (receivers
/// starting together) migrate once between them; a schema newer than this
/// crate knows is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_created_once_and_versioned() {
    let url = database();
    let first = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(versions(&url, "tower_intercom").await, [1]);
    first.insert(new("kept")).await.unwrap();
    drop(first);
    let again = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(versions(&url, "tower_intercom").await, [1]);
    assert_eq!(again.counts().await.unwrap(), counts(1, 0, 0, 0));

    // Eight at once, on another schema of the same database.
    let connecting: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                PostgresStore::options()
                    .schema("racing")
                    .connect(&url)
                    .await
            })
        })
        .collect();
    for connect in connecting {
        let store = connect.await.unwrap().unwrap();
        assert_eq!(store.schema(), "racing");
    }
    assert_eq!(versions(&url, "racing").await, [1]);
    // The schemas share nothing.
    let racing = PostgresStore::options()
        .schema("racing")
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(racing.counts().await.unwrap(), counts(0, 0, 0, 0));

    raw(&url)
        .await
        .execute(
            "INSERT INTO racing.inbox_migrations (version, description) VALUES (2, 'future')",
            &[],
        )
        .await
        .unwrap();
    let error = PostgresStore::options()
        .schema("racing")
        .connect(&url)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("newer than this version"),
        "{error}"
    );
    for bad in ["Racing", "1x", "a-b", "pg_x", "x\"; DROP TABLE y; --"] {
        let error = PostgresStore::options()
            .schema(bad)
            .connect(&url)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("schema name"), "{bad}: {error}");
    }
}

/// What a user gets wrong is said in words, and no error or `Debug`
/// output shows the password.
#[tokio::test]
async fn bad_urls_missing_databases_and_refused_logins_are_clear_errors() {
    let server = Server::shared();
    let port = server.port();
    let password = PASSWORD;
    let cases = [
        (
            format!("postgres://postgres:{password}@127.0.0.1:{port}/nope_db"),
            "the database does not exist",
        ),
        (
            format!("postgres://postgres:hunter2-wrong@127.0.0.1:{port}/postgres"),
            "Postgres refused the login",
        ),
        (
            "postgres://postgres:hunter3@127.0.0.1:notaport/postgres".to_owned(),
            "the Postgres URL is invalid",
        ),
        (
            format!("postgres://postgres:hunter4@127.0.0.1:{port}/postgres?sslmode=verify-full"),
            "the Postgres URL is invalid",
        ),
        (
            format!("postgres://postgres:hunter5@127.0.0.1:{port}/postgres?bogus=1"),
            "the Postgres URL is invalid",
        ),
        (
            format!(
                "postgres://postgres:hunter6@127.0.0.1:{}/postgres",
                tower_intercom_test_support::examples::free_port()
            ),
            "cannot reach Postgres",
        ),
        (
            "redis://:hunter7@127.0.0.1:6379/".to_owned(),
            "the Postgres URL is invalid",
        ),
    ];
    for (url, expected) in cases {
        let error = PostgresStore::connect(&url).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{url}: {error}");
        let (shown, debug) = (error.to_string(), format!("{error:?}"));
        assert!(shown.contains(expected), "{url}: {shown}");
        for text in [&shown, &debug] {
            assert!(!text.contains("hunter"), "{text}");
            assert!(!text.contains(password), "{text}");
        }
    }
    let store = PostgresStore::connect(&server.url("postgres"))
        .await
        .unwrap();
    for shown in [
        format!("{store:?}"),
        format!("{:?}", Inbox::new(store.clone())),
        format!("{:?}", PostgresStore::options()),
    ] {
        assert!(!shown.contains(password), "{shown}");
        assert!(!shown.contains(&port.to_string()), "{shown}");
    }
}

/// A URL or `key=value` string that does not parse is refused with what is
/// wrong (the option's name when it is one Postgres knows), and never a
/// piece of the password: the parser's own reasons quote the text, which
/// may be the password (an unquoted space or `&` in it, a URL with a space
/// or a quote before it, or another scheme), and are not passed on.
#[tokio::test]
async fn malformed_urls_are_explained_without_any_piece_of_the_password() {
    // (what is given, what the error says, what it must not show)
    let cases: [(&str, &str, &[&str]); 14] = [
        (
            " postgres://inbox:kiwi42@127.0.0.1:5432/app?sslmode=require",
            "unknown option, not named",
            &["kiwi42", "inbox"],
        ),
        (
            "\"postgres://inbox:kiwi42@127.0.0.1:5432/app?sslmode=require\"",
            "unknown option, not named",
            &["kiwi42", "inbox"],
        ),
        (
            "postgresql:/inbox:kiwi42@127.0.0.1/app?sslmode=require",
            "unknown option, not named",
            &["kiwi42", "inbox"],
        ),
        (
            "mysql://inbox:kiwi42@127.0.0.1/app?x=1",
            "unknown option, not named",
            &["kiwi42", "inbox"],
        ),
        (
            "postgres://127.0.0.1/app?user=inbox&password=kiwi42&mango77=1",
            "unknown option, not named",
            &["kiwi42", "mango77"],
        ),
        (
            "host=127.0.0.1 user=inbox password=kiwi42 mango77=1",
            "unknown option, not named",
            &["kiwi42", "mango77"],
        ),
        (
            "host=127.0.0.1 password=kiwi42 mango77 #papaya",
            "an option without `=`",
            &["kiwi42", "mango77", "papaya", "#"],
        ),
        (
            "host=127.0.0.1 password='kiwi42",
            "unterminated quoted",
            &["kiwi42"],
        ),
        (
            "postgres://inbox:kiwi42@127.0.0.1:5432/app?sslmode=bogus",
            "invalid value for option `sslmode`",
            &["kiwi42", "bogus"],
        ),
        (
            "host=127.0.0.1 password=kiwi42 sslmode=verify-full",
            "invalid value for option `sslmode`",
            &["kiwi42", "verify-full"],
        ),
        (
            "postgres://inbox:kiwi42@127.0.0.1:5432/app?sslrootcert=/etc/ca.pem",
            "unknown option `sslrootcert`",
            &["kiwi42", "/etc/ca.pem"],
        ),
        (
            "postgres://inbox:kiwi42@127.0.0.1:notaport/app",
            "invalid value for option `port`",
            &["kiwi42", "notaport"],
        ),
        (
            "postgres://inbox:zq@xv:97@127.0.0.1:5432/app",
            "invalid value for option `port`",
            &["zq", "xv", "97"],
        ),
        (
            "postgres://in%ffbox:kiwi42@127.0.0.1:5432/app",
            "a percent-encoded part is not UTF-8",
            &["kiwi42", "box"],
        ),
    ];
    for (url, expected, secrets) in cases {
        let error = PostgresStore::connect(url).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{url}: {error}");
        let mut shown = vec![error.to_string(), format!("{error:?}")];
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            shown.extend([cause.to_string(), format!("{cause:?}")]);
            source = cause.source();
        }
        assert!(
            shown[0].contains("the Postgres URL is invalid") && shown[0].contains(expected),
            "{url}: {}",
            shown[0]
        );
        for text in &shown {
            for secret in secrets {
                assert!(!text.contains(secret), "{url}: {secret:?} in {text}");
            }
        }
    }
}

/// A new connection's TCP handshake may take as long as the rest of
/// connecting (10 s), not the operation's timeout (1 s by default): a
/// server whose queue of connections to accept is full answers the
/// handshake only at the client's next try, a second or more later.
#[tokio::test]
async fn a_server_slow_to_accept_connections_is_waited_for() {
    let url = database();
    let proxy = SilencingProxy::start_busy(
        ([127, 0, 0, 1], Server::shared().port()).into(),
        Duration::from_millis(1500),
    )
    .await;
    let through_proxy = format!(
        "postgres://{SUPERUSER}:{PASSWORD}@{}/{}",
        proxy.addr,
        database_name(&url)
    );
    let start = Instant::now();
    let store = PostgresStore::connect(&through_proxy)
        .await
        .expect("connected once the server accepted the connection");
    let took = start.elapsed();
    assert!(took > DEFAULT_POSTGRES_TIMEOUT, "{took:?}");
    assert_eq!(
        store.insert(new("accepted")).await.unwrap(),
        Inserted::Stored
    );
    assert_eq!(rows(&url).await.len(), 1);
}

/// A role that may not create the schema gets a clear error on an empty
/// database; once another role created it and granted the rights the
/// documentation lists, the same role uses the inbox.
#[tokio::test]
async fn a_role_without_rights_is_told_and_one_with_data_rights_works() {
    let server = Server::shared();
    let url = database();
    let database = database_name(&url).to_owned();
    let role = format!("limited_{database}");
    server.sql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'limited-pw-123'"),
    );
    let limited = format!(
        "postgres://{role}:limited-pw-123@127.0.0.1:{}/{database}",
        server.port()
    );
    let error = PostgresStore::connect(&limited).await.unwrap_err();
    let shown = error.to_string();
    assert!(shown.contains("lacks a right"), "{shown}");
    assert!(!shown.contains("limited-pw-123"), "{shown}");

    let owner = PostgresStore::connect(&url).await.unwrap();
    owner.insert(new("by_owner")).await.unwrap();
    server.sql(
        &database,
        &format!(
            "GRANT USAGE ON SCHEMA tower_intercom TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tower_intercom TO {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA tower_intercom TO {role};"
        ),
    );
    let store = PostgresStore::connect(&limited).await.unwrap();
    assert_eq!(
        store.insert(new("by_limited")).await.unwrap(),
        Inserted::Stored
    );
    let claimed = store
        .claim(ClaimRequest::new(10, Duration::from_secs(30), 3))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 2);
    for lease in &claimed.leases {
        assert!(store
            .complete(lease.notification.id(), &lease.token)
            .await
            .unwrap());
    }
    assert_eq!(
        store
            .prune_done(SystemTime::now() + Duration::from_secs(1))
            .await
            .unwrap(),
        2
    );
}

/// `synchronous_commit` is forced on for the store's sessions (a role's
/// `off` is overridden); without its session settings, the role's `off`
/// applies, is reported and warned about.
#[tokio::test]
async fn durability_is_reported_and_warned_about() {
    let server = Server::shared();
    let url = database();
    let database = database_name(&url).to_owned();
    let (logs, capturing) = Logs::start();
    let store = PostgresStore::connect(&url).await.unwrap();
    drop(capturing);
    assert_eq!(store.durability().await, PostgresDurability::Durable);
    assert!(!logs.text().contains("WARN"), "{}", logs.text());

    let role = format!("lazy_{database}");
    server.sql(
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'lazy-pw' SUPERUSER;
             ALTER ROLE {role} SET synchronous_commit = off;"
        ),
    );
    let lazy = format!(
        "postgres://{role}:lazy-pw@127.0.0.1:{}/{database}",
        server.port()
    );
    let (logs, capturing) = Logs::start();
    let overridden = PostgresStore::connect(&lazy).await.unwrap();
    drop(capturing);
    assert_eq!(overridden.durability().await, PostgresDurability::Durable);
    assert!(!logs.text().contains("WARN"), "{}", logs.text());

    let (logs, capturing) = Logs::start();
    let plain = PostgresStore::options()
        .session_settings(false)
        .connect(&lazy)
        .await
        .unwrap();
    drop(capturing);
    assert_eq!(
        plain.durability().await,
        PostgresDurability::AsynchronousCommit
    );
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("synchronous_commit = off"),
        "{text}"
    );
    assert!(!text.contains("lazy-pw"), "{text}");
}

/// Without `sslmode=require`, connections to a server on another machine
/// cross the network in the clear: connect warns, and stays quiet for a
/// server on this machine. (`hostaddr` sends the connection to loopback
/// while the host named is another machine's.)
#[tokio::test]
async fn plaintext_to_another_machine_is_warned_about() {
    let server = Server::shared();
    let url = database();
    let database = database_name(&url).to_owned();
    let (logs, capturing) = Logs::start();
    let _local = PostgresStore::connect(&url).await.unwrap();
    drop(capturing);
    assert!(!logs.text().contains("not encrypted"), "{}", logs.text());

    let remote = format!(
        "postgres://{}@db.example:{}/{database}?hostaddr=127.0.0.1",
        url.trim_start_matches("postgres://")
            .split('@')
            .next()
            .unwrap(),
        server.port()
    );
    let (logs, capturing) = Logs::start();
    let _remote = PostgresStore::connect(&remote).await.unwrap();
    drop(capturing);
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("not encrypted") && text.contains("sslmode=require"),
        "{text}"
    );
}

/// Rows a plan node read from the inbox's tables or indexes: the rows it
/// returned in all its loops, and those it read and dropped.
fn rows_read(node: &serde_json::Value, found: &mut Vec<(String, f64)>) {
    let object = |key: &str| node.get(key).and_then(serde_json::Value::as_f64);
    let on = node
        .get("Relation Name")
        .or_else(|| node.get("Index Name"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if on.starts_with("inbox") {
        let read = object("Actual Rows").unwrap_or(0.0) * object("Actual Loops").unwrap_or(1.0)
            + object("Rows Removed by Filter").unwrap_or(0.0)
            + object("Rows Removed by Index Recheck").unwrap_or(0.0);
        let kind = node["Node Type"].as_str().unwrap_or_default();
        found.push((format!("{kind} on {on}"), read));
    }
    for child in node
        .get("Plans")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        rows_read(child, found);
    }
}

/// Every statement finds its rows through an index and reads only about
/// as many as it uses (at most a claim's 256, and one more to find when the
/// next is due, a prune's 1000),
/// never a whole table or a whole state, in the plans Postgres makes for
/// given values and in the generic plans it switches to for prepared
/// statements: each statement is run (`EXPLAIN ANALYZE`, rolled back) on
/// 60,000 rows, at least 6,000 in each state, all pending ones due, all
/// leases lapsed, all done ones past the retention, after `ANALYZE`.
/// Counting is the exception: each count reads its state's partial index.
/// (A statement may sort what it read, as a claim's or a completion's
/// locking order: never more rows than the bound.)
#[tokio::test]
async fn every_statement_reads_through_an_index() {
    let url = database();
    let store = PostgresStore::connect(&url).await.unwrap();
    drop(store);
    let mut client = raw(&url).await;
    client
        .batch_execute(
            "INSERT INTO tower_intercom.inbox
                    (id, topic, received_at, state, attempts, available_at, lease_until,
                     lease_token, done_at)
             SELECT convert_to('n' || i, 'UTF8'), 'ping', now(), s, 1,
                    now() - interval '1 hour' + i * interval '1 ms',
                    CASE WHEN s = 1 THEN now() - interval '1 hour' + i * interval '1 ms' END,
                    CASE WHEN s = 1 THEN i END,
                    CASE WHEN s = 2 THEN now() - interval '2 days' + i * interval '1 ms' END
               FROM generate_series(1, 60000) AS i,
                    LATERAL (SELECT CASE WHEN i % 10 < 6 THEN 2 WHEN i % 10 < 8 THEN 0
                                         WHEN i % 10 < 9 THEN 1 ELSE 3 END AS s) AS state;
             INSERT INTO tower_intercom.inbox_body (seq, body)
             SELECT seq, '{}' FROM tower_intercom.inbox WHERE state <> 2;
             ANALYZE tower_intercom.inbox;
             ANALYZE tower_intercom.inbox_body;",
        )
        .await
        .unwrap();
    let statement = |file: &str| {
        let path = format!(
            "{}/src/inbox/postgres/sql/{file}.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path)
            .unwrap()
            .replace("{schema}", "\"tower_intercom\"")
    };
    // Each statement, values for its parameters, and the most rows it may
    // read from one table or index.
    let cases = [
        (
            "insert",
            "(ARRAY['x'::bytea], ARRAY['t'::bytea], ARRAY[now()], ARRAY['{}'::bytea], 'c', 'p')",
            2.0,
        ),
        ("claim", "(30000, 7, 256, 3)", 257.0),
        ("hand_back", "(ARRAY[9::bigint, 19], 9)", 2.0),
        (
            "complete",
            "(ARRAY['n41'::bytea, 'n51'], ARRAY[41::bigint, 51])",
            2.0,
        ),
        ("fail", "('n41', 41, 1000, 'e')", 1.0),
        ("release", "('n41', 41)", 1.0),
        ("requeue", "('n49')", 1.0),
        ("dead_page", "(0, 100)", 101.0),
        ("prune", "(86400000, 1000)", 1000.0),
        ("counts", "", f64::INFINITY),
    ];
    for plan_cache_mode in ["force_custom_plan", "force_generic_plan"] {
        for (name, values, most) in cases {
            let transaction = client.transaction().await.unwrap();
            transaction
                .batch_execute(&format!(
                    "SET LOCAL plan_cache_mode = {plan_cache_mode}; PREPARE p AS {}",
                    statement(name)
                ))
                .await
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            let explained: serde_json::Value = transaction
                .query_one(
                    &format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE p{values}"),
                    &[],
                )
                .await
                .unwrap_or_else(|error| panic!("{name}: {error}"))
                .get(0);
            transaction.rollback().await.unwrap();
            client.batch_execute("DEALLOCATE ALL").await.unwrap();
            let plan = &explained[0]["Plan"];
            let shown = serde_json::to_string_pretty(plan).unwrap();
            let mut read = Vec::new();
            rows_read(plan, &mut read);
            assert!(!read.is_empty(), "{name}: {shown}");
            for (node, rows) in &read {
                assert!(
                    !node.starts_with("Seq Scan"),
                    "{name} ({plan_cache_mode}) reads a whole table: {read:?}\n{shown}"
                );
                assert!(
                    *rows <= most,
                    "{name} ({plan_cache_mode}): {node} read {rows} rows, more than {most}: \
                     {read:?}\n{shown}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- TLS

/// A server that accepts TLS only: `sslmode=require` with its CA connects
/// and works; without the CA the certificate is refused; without TLS the
/// server refuses, and the error says what to add.
#[tokio::test]
async fn tls_connects_to_a_verified_server_only() {
    let server = Server::start_tls_only();
    let ca = server.ca_certificate().unwrap().to_vec();
    let url = |host: &str, mode: &str| {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?sslmode={mode}",
            PASSWORD,
            server.port()
        )
    };
    let store = PostgresStore::options()
        .root_certificates(&ca)
        .connect(&url("localhost", "require"))
        .await
        .unwrap();
    assert_eq!(
        store.insert(new("over_tls")).await.unwrap(),
        Inserted::Stored
    );
    // Its sessions are encrypted (the server refuses others anyway).
    let encrypted = server.sql(
        "postgres",
        "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
          WHERE application_name LIKE 'tower-intercom inbox%'",
    );
    assert_eq!(encrypted, "t");
    let by_ip = PostgresStore::options()
        .root_certificates(&ca)
        .connect(&url("127.0.0.1", "require"))
        .await
        .unwrap();
    assert_eq!(by_ip.counts().await.unwrap(), counts(1, 0, 0, 0));

    let unknown = PostgresStore::connect(&url("localhost", "require"))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("cannot reach Postgres")
            && unknown.to_string().to_lowercase().contains("certificate"),
        "{unknown}"
    );
    let plain = PostgresStore::connect(&url("localhost", "disable"))
        .await
        .unwrap_err();
    assert!(plain.to_string().contains("sslmode=require"), "{plain}");
    let not_pem = PostgresStore::options()
        .root_certificates("not a certificate")
        .connect(&url("localhost", "require"))
        .await
        .unwrap_err();
    assert!(
        not_pem.to_string().contains("root certificates"),
        "{not_pem}"
    );
}

// ---------------------------------------------------------------- failures

/// With the postmaster killed (`SIGKILL`) while notifications arrive and
/// workers run, every answer is 200 or a retryable 503 (quickly); when it
/// is back, the same receiver and workers carry on without a restart, and
/// every notification answered 200 is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postmaster_killed_under_load_loses_nothing_acknowledged() {
    let mut server = Server::start();
    let url = server.url("postgres");
    let inbox = Inbox::new(
        PostgresStore::options()
            .timeout(Duration::from_millis(500))
            .connect(&url)
            .await
            .unwrap(),
    )
    .deadline(Duration::from_secs(1));
    let service = stack(&inbox);
    let processed = Arc::new(Mutex::new(HashSet::new()));
    let record = processed.clone();
    let (trigger, signal) = shutdown();
    let worker = inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            record.lock().unwrap().insert(n.id().to_owned());
            async { Ok::<_, std::io::Error>(()) }
        }))
        .concurrency(8)
        // Outcomes that could not be recorded while Postgres was down are
        // taken again when their lease lapses.
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(100))
        .spawn(signal);

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (service, stop) = (service.clone(), stop.clone());
            let (acknowledged, refused) = (acknowledged.clone(), refused.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("notif_{sender}_{i}");
                    i += 1;
                    let start = Instant::now();
                    let answer = deliver(&service, envelope(&id, "ping", 1)).await;
                    match answer.status {
                        StatusCode::OK => acknowledged.lock().unwrap().push(id),
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert!(start.elapsed() < Duration::from_secs(3));
                            refused.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("{id}: {other}"),
                    }
                }
            })
        })
        .collect();
    let acknowledged_count = || acknowledged.lock().unwrap().len();
    while acknowledged_count() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::block_in_place(|| server.kill());
    let before_restart = acknowledged_count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(refused.load(Ordering::SeqCst) > 0, "nothing was refused");
    tokio::task::block_in_place(|| server.restart());
    // Back: the same receiver stores again.
    let start = Instant::now();
    while acknowledged_count() < before_restart + 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the receiver never recovered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    let start = Instant::now();
    loop {
        let missing = acknowledged
            .iter()
            .filter(|id| !processed.lock().unwrap().contains(*id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{missing} of {} acknowledged notifications never processed",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{} acknowledged, {} refused while Postgres was down",
        acknowledged.len(),
        refused.load(Ordering::SeqCst)
    );
    // And recorded: the workers write outcomes again too.
    let stored = wait_through_errors(&inbox, "every outcome recorded", |c| {
        c.pending == 0 && c.in_progress == 0
    })
    .await;
    assert!(stored.done >= acknowledged.len() as u64, "{stored:?}");
    assert_eq!(stored.dead, 0, "{stored:?}");
    trigger.send(()).unwrap();
    worker.await.unwrap();
}

/// A statement that waits longer than the store's timeout is given up
/// (Postgres cancels it too): the receiver answers 503 within the
/// timeout, and a store error says it timed out.
#[tokio::test]
async fn a_statement_slower_than_the_timeout_fails_as_timed_out() {
    let url = database();
    let inbox = Inbox::new(
        PostgresStore::options()
            .timeout(Duration::from_millis(300))
            .connect(&url)
            .await
            .unwrap(),
    );
    let service = stack(&inbox);
    let mut locker = raw(&url).await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE tower_intercom.inbox IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let start = Instant::now();
    let answer = deliver(&service, envelope("slow", "ping", 1)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    let error = inbox.counts().await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::TimedOut, "{error}");
    lock.rollback().await.unwrap();
    // Nothing was stored; Intercom's retry is.
    let answer = deliver(&service, envelope("slow", "ping", 2)).await;
    assert_eq!((answer.status, answer.duplicate), (StatusCode::OK, false));
}
