//! The durable inbox with the Redis store, against a real `redis-server`
//! started on a free loopback port for each test (in a temporary
//! directory, for its append-only file), with real HTTP servers, threads
//! and processes, no mocks. The behaviour every store shares is in
//! `tower_intercom_test_support::inbox::scenarios`, run here through the
//! Redis harness; this file has what is Redis's own: batching, key
//! prefixes, its keys edited or lost by hand, persistence, connections.
//!
//! `redis-server` must be on `PATH` (`./scripts/test.sh` installs it):
//! without it these tests fail, they never skip.
#![cfg(feature = "inbox-redis")]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::StatusCode;
use redis::AsyncCommands;
use tower_intercom::{
    inbox::{
        handler_fn, ClaimRequest, DeadQuery, InboxStore, Inserted, NewNotification, Persistence,
        ReceivedNotification, RedisInbox, RedisOptions, RedisStore,
    },
    StoreErrorKind,
};
use tower_intercom_test_support::{
    examples::free_port,
    inbox::{
        accept_all, counts, deliver, envelope, ok_handler,
        redis::{connect_inbox, connect_store, inbox, key, raw, xlen, RedisHarness},
        spawn, stack, wait_for,
    },
    inbox_suite,
    logs::Logs,
    proxy::SilencingProxy,
    redis_server::{RedisServer as Server, AOF_ALWAYS, VOLATILE},
};

inbox_suite!(RedisHarness);

/// The consumer group deleted by hand: rebuilt from the stream, and the
/// leases taken before still hold.
#[tokio::test]
async fn a_consumer_group_deleted_by_hand_is_rebuilt_and_leases_still_hold() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    let long = Duration::from_secs(30);
    store
        .insert(NewNotification::new("b", "t", Bytes::from("b")))
        .await
        .unwrap();
    let claimed = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    assert_eq!(claimed.leases.len(), 1);
    let mut redis = raw(&server).await;
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(key("stream"))
        .arg("workers")
        .query_async(&mut redis)
        .await
        .unwrap();
    store
        .insert(NewNotification::new("d", "t", Bytes::new()))
        .await
        .unwrap();
    let claimed_d = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    let ids: Vec<&str> = claimed_d
        .leases
        .iter()
        .map(|l| l.notification.id())
        .collect();
    assert_eq!(ids, ["d"]);
    assert!(store.complete("b", &claimed.leases[0].token).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 1, 1, 0));
}

/// Inserts that arrive together go to Redis together (one script call per
/// batch): each notification is still deduplicated on its own, also
/// against a copy in the same batch, and gets its own sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_sent_together_are_deduplicated_and_numbered_one_by_one() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let inserts: Vec<_> = (0..300)
        .map(|i| {
            let store = inbox.store().clone();
            let id = format!("notif_batch_{}", i % 100);
            tokio::spawn(async move {
                let inserted = store
                    .insert(NewNotification::new(
                        id.clone(),
                        "ping",
                        Bytes::from(format!("{{\"id\":\"{id}\"}}")),
                    ))
                    .await
                    .unwrap();
                (id, inserted)
            })
        })
        .collect();
    let mut stored = HashSet::new();
    let mut duplicates = 0;
    for insert in inserts {
        match insert.await.unwrap() {
            (id, Inserted::Stored) => assert!(stored.insert(id), "stored twice"),
            (_, Inserted::Duplicate) => duplicates += 1,
        }
    }
    assert_eq!((stored.len(), duplicates), (100, 200));
    let mut redis = raw(&server).await;
    assert_eq!(xlen(&mut redis, key("stream")).await, 100);
    let messages: Vec<Vec<u8>> = redis.hvals(key("messages")).await.unwrap();
    let numbers: HashSet<u64> = messages
        .iter()
        .map(|message| {
            let end = message.iter().position(|&b| b == b':').unwrap();
            std::str::from_utf8(&message[..end])
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (1..=100).collect::<HashSet<u64>>());
    assert_eq!(inbox.counts().await.unwrap(), counts(100, 0, 0, 0));
}

/// The script calls Redis has run so far (`EVALSHA`, from `INFO
/// commandstats`).
async fn script_calls(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

/// Completions that arrive together share one script call, and each is
/// still fenced on its own: a stale token, an unknown id and a second
/// completion of the same lease are refused, the others are done.
#[tokio::test]
async fn completions_sent_together_share_a_call_and_are_fenced_one_by_one() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    for i in 0..100 {
        let id = format!("notif_done_{i}");
        let body = Bytes::from(format!("{{\"id\":\"{id}\"}}"));
        store
            .insert(NewNotification::new(id, "ping", body))
            .await
            .unwrap();
    }
    let claimed = store
        .claim(ClaimRequest::new(100, Duration::from_secs(60), 5))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 100);
    let stale_token = || tower_intercom::inbox::LeaseToken::new(7);
    let mut completions: Vec<(String, _)> = claimed
        .leases
        .iter()
        .map(|lease| (lease.notification.id().to_owned(), lease.token.clone()))
        .collect();
    let first = completions[0].clone();
    completions.push(first); // the same lease twice
    completions.push(("notif_done_1".to_owned(), stale_token())); // someone else's token
    completions.push(("notif_unknown".to_owned(), claimed.leases[2].token.clone()));

    // Redis learns the script first (EVALSHA, NOSCRIPT, then EVAL).
    assert!(!store
        .complete("notif_unknown", &stale_token())
        .await
        .unwrap());
    let mut redis = raw(&server).await;
    let before = script_calls(&mut redis).await;
    // One poll queues them all before the write task runs (this runtime
    // has one thread): they go in one call.
    let answers = futures_util::future::join_all(
        completions
            .iter()
            .map(|(id, token)| store.complete(id, token)),
    )
    .await;
    let calls = script_calls(&mut redis).await - before;
    let answers: Vec<bool> = answers.into_iter().map(Result::unwrap).collect();
    assert!(answers[..100].iter().all(|done| *done));
    assert_eq!(answers[100..], [false, false, false]);
    assert_eq!(
        calls,
        1,
        "{} completions took {calls} script calls",
        answers.len()
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 100, 0));
    let leases: usize = redis.hlen(key("leases")).await.unwrap();
    let messages: usize = redis.hlen(key("messages")).await.unwrap();
    let bodies: usize = redis.hlen(key("bodies")).await.unwrap();
    assert_eq!(
        (
            leases,
            messages,
            bodies,
            xlen(&mut redis, key("stream")).await
        ),
        (0, 0, 0, 0)
    );
}

/// A stream restored by hand, with entry ids whose sequence part is past
/// what a Lua number holds exactly: claims trim only what they read, so
/// every notification waiting is still claimed, one by one, in order.
#[tokio::test]
async fn entries_with_large_sequence_numbers_are_all_claimed() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    for id in ["notif_a", "notif_b", "notif_c", "notif_d"] {
        let body = Bytes::from(format!("{{\"id\":\"{id}\"}}"));
        store
            .insert(NewNotification::new(id, "ping", body))
            .await
            .unwrap();
    }
    let mut redis = raw(&server).await;
    let _: () = redis.del(key("stream")).await.unwrap();
    for (entry, id) in [
        ("5-9007199254740994", "notif_a"),
        ("5-9007199254740995", "notif_b"),
        ("5-9007199254740996", "notif_c"),
        ("5-18446744073709551615", "notif_d"),
    ] {
        let _: String = redis::cmd("XADD")
            .arg(key("stream"))
            .arg(entry)
            .arg("id")
            .arg(id)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let mut claimed = Vec::new();
    for _ in 0..4 {
        let claim = store
            .claim(ClaimRequest::new(1, Duration::from_secs(60), 5))
            .await
            .unwrap();
        assert_eq!(claim.leases.len(), 1, "after {claimed:?}");
        claimed.push(claim.leases[0].notification.id().to_owned());
    }
    assert_eq!(claimed, ["notif_a", "notif_b", "notif_c", "notif_d"]);
    assert_eq!(xlen(&mut redis, key("stream")).await, 0);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 4, 0, 0));
}

/// Large notifications among small ones (batches are bounded in bytes as
/// well as in count): all stored, each answered for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_notifications_sent_together_are_all_stored() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let inserts: Vec<_> = (0..60)
        .map(|i| {
            let store = inbox.store().clone();
            // Every tenth is 1.5 MiB, more than one batch carries.
            let size = if i % 10 == 0 { 1536 * 1024 } else { 2048 };
            let body = Bytes::from(vec![b'x'; size]);
            tokio::spawn(async move {
                let id = format!("notif_size_{i}");
                (
                    size,
                    store.insert(NewNotification::new(id, "ping", body)).await,
                )
            })
        })
        .collect();
    for insert in inserts {
        let (size, inserted) = insert.await.unwrap();
        assert!(
            matches!(inserted, Ok(Inserted::Stored)),
            "{size} bytes: {inserted:?}"
        );
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(60, 0, 0, 0));
    let mut redis = raw(&server).await;
    let large: Vec<u8> = redis.hget(key("bodies"), "notif_size_10").await.unwrap();
    assert_eq!(large, vec![b'x'; 1536 * 1024]);
}

/// The task that sends inserts runs in the store's runtime, not in the
/// runtime of whoever inserted first: a runtime that is kept but no longer
/// driven (a `block_on` done with) holds nothing up.
#[test]
fn inserts_do_not_depend_on_the_runtime_that_made_the_first_one() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start_with(VOLATILE);
    let inbox = main.block_on(inbox(&server));
    let insert = |id: &str| {
        inbox
            .store()
            .insert(NewNotification::new(id, "ping", Bytes::from_static(b"{}")))
    };
    let side = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = side.block_on(insert("notif_first"));
    assert!(matches!(first, Ok(Inserted::Stored)), "{first:?}");
    // `side` stays alive, idle.
    let second = main.block_on(insert("notif_second"));
    assert!(matches!(second, Ok(Inserted::Stored)), "{second:?}");
    drop(side);
    let third = main.block_on(insert("notif_third"));
    assert!(matches!(third, Ok(Inserted::Stored)), "{third:?}");
    assert_eq!(main.block_on(inbox.counts()).unwrap(), counts(3, 0, 0, 0));
}

/// An insert polled outside any runtime (a Tokio timer panics there, as
/// for every store call) leaves the store working for the inserts after
/// it.
#[test]
fn an_insert_polled_outside_a_runtime_does_not_break_the_store() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start_with(VOLATILE);
    let inbox = main.block_on(inbox(&server));
    let _ = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut insert = inbox.store().insert(NewNotification::new(
                    "notif_outside",
                    "ping",
                    Bytes::from_static(b"{}"),
                ));
                let waker = std::task::Waker::noop();
                let _ = insert
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(waker));
            })
            .join()
    });
    for i in 0..3 {
        let later = main.block_on(inbox.store().insert(NewNotification::new(
            format!("notif_later_{i}"),
            "ping",
            Bytes::from_static(b"{}"),
        )));
        assert!(matches!(later, Ok(Inserted::Stored)), "{later:?}");
    }
}

#[tokio::test]
async fn inboxes_with_other_prefixes_share_nothing() {
    let server = Server::start_with(VOLATILE);
    let a = inbox(&server).await;
    let b = connect_inbox(&server.url(), |options| {
        options.key_prefix("staging:intercom")
    })
    .await;
    assert_eq!(b.store().prefix(), "staging:intercom");
    let body = envelope("notif_1", "ping", 1);
    assert_eq!(
        deliver(&stack(&a), body.clone()).await.status,
        StatusCode::OK
    );
    let answer = deliver(&stack(&b), body).await;
    assert_eq!((answer.status, answer.duplicate), (StatusCode::OK, false));
    let mut redis = raw(&server).await;
    let entries = xlen(&mut redis, "{staging:intercom}:stream").await;
    assert_eq!(entries, 1);
    assert_eq!(a.counts().await.unwrap(), counts(1, 0, 0, 0));
    assert_eq!(b.counts().await.unwrap(), counts(1, 0, 0, 0));
}

/// Any key prefix is a setting like another: empty ones and ones with
/// braces (which the keys' hash tag is made of) work, apart from each
/// other. They panicked before.
#[tokio::test]
async fn any_key_prefix_works_and_keeps_inboxes_apart() {
    let server = Server::start_with(VOLATILE);
    let mut inboxes = Vec::new();
    for prefix in ["", "}", "a}b", "{x}", "a}:stream"] {
        let inbox = connect_inbox(&server.url(), |options| options.key_prefix(prefix)).await;
        assert_eq!(inbox.store().prefix(), prefix);
        let body = envelope("notif_same", "ping", 1);
        let status = deliver(&stack(&inbox), body).await.status;
        assert_eq!(status, StatusCode::OK, "{prefix:?}");
        inboxes.push(inbox);
    }
    // One notification each: the same id in another inbox is no duplicate.
    for inbox in &inboxes {
        assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
    }
    // And on a store made on a connection of its own.
    let store = RedisStore::options()
        .key_prefix("b}{")
        .connect(&server.url())
        .await
        .unwrap();
    assert_eq!(store.prefix(), "b}{");
}

#[tokio::test]
async fn a_claim_that_fails_after_leasing_hands_its_leases_back() {
    // A user who may run the inbox's scripts (and `HMGET` from them) but
    // not `HMGET` the bodies' hash: the claim script leases, then
    // reading the bodies fails.
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let mut redis = raw(&server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("claimer")
        .arg("on")
        .arg(">claimer-password")
        .arg("+@all")
        .arg("-hmget")
        .arg("~*")
        .arg("(+hmget ~{tower-intercom:inbox}:[^b]*)")
        .query_async(&mut redis)
        .await
        .unwrap();
    let url = format!(
        "redis://claimer:claimer-password@127.0.0.1:{}/",
        server.port()
    );
    let claimer = connect_inbox(&url, |options| options).await;
    inbox
        .store()
        .insert(NewNotification::new("x", "t", Bytes::from("x body")))
        .await
        .unwrap();

    let lease = Duration::from_secs(30);
    let failed = claimer
        .store()
        .claim(ClaimRequest::new(10, lease, 1))
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("NoPerm"), "{failed}");
    // The script ran: the lease was taken before the reading failed.
    let counted: Option<String> = redis.hget(key("attempts"), "x").await.unwrap();
    assert!(counted.is_some());
    // Handed back at once, its attempt with it: not in progress until
    // the lease's end, not dead of a lapse no handler caused.
    wait_for(&inbox, "the lease handed back", |c| c == counts(1, 0, 0, 0)).await;
    let attempts: Option<String> = redis.hget(key("attempts"), "x").await.unwrap();
    assert_eq!(attempts.as_deref(), Some("0"));
    let claimed = inbox
        .store()
        .claim(ClaimRequest::new(10, lease, 1))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 1);
    assert_eq!(claimed.leases[0].notification.attempt(), 1);
    assert_eq!(claimed.leases[0].notification.bytes(), "x body");
}

#[tokio::test]
async fn a_notification_whose_body_is_missing_is_dead_not_handed_out_empty() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let store = inbox.store();
    for id in ["kept", "lost"] {
        store
            .insert(NewNotification::new(id, "t", Bytes::from(id)))
            .await
            .unwrap();
    }
    // Deleted by hand (or evicted under an allkeys- policy).
    let mut redis = raw(&server).await;
    let _: () = redis.hdel(key("bodies"), "lost").await.unwrap();

    let claimed = store
        .claim(ClaimRequest::new(10, Duration::from_secs(30), 5))
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.leases.iter().map(|l| l.notification.id()).collect();
    assert_eq!(ids, ["kept"]);
    wait_for(&inbox, "the missing one dead", |c| c.dead == 1).await;
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(page.notifications.len(), 1);
    let dead = &page.notifications[0];
    assert_eq!(dead.notification.id(), "lost");
    assert!(
        dead.last_error().contains("body is missing"),
        "{}",
        dead.last_error()
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 1, 0, 1));
}

/// `appendfsync always`: every notification answered 200 survives
/// redis-server being killed (SIGKILL) and restarted on the same files,
/// and is then processed; so do the done ids and their deduplication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_notifications_survive_redis_being_killed() {
    let mut server = Server::start_with(AOF_ALWAYS);
    let patient = Duration::from_secs(10);
    let inbox = connect_inbox(&server.url(), |options| options.timeout(patient))
        .await
        .deadline(patient);
    assert_eq!(inbox.store().persistence().await, Persistence::Durable);
    let service = stack(&inbox);
    let n = 400;
    let start = Instant::now();
    accept_all(&service, n).await;
    eprintln!(
        "{n} concurrent deliveries with appendfsync always in {:?}",
        start.elapsed()
    );
    // Some processed before the crash.
    let store = inbox.store();
    let claimed = store
        .claim(ClaimRequest::new(50, Duration::from_secs(30), 3))
        .await
        .unwrap();
    assert_eq!(claimed.leases.len(), 50);
    for lease in &claimed.leases {
        assert!(store
            .complete(lease.notification.id(), &lease.token)
            .await
            .unwrap());
    }
    server.kill();
    server.restart();

    // The same inbox reconnects by itself.
    let start = Instant::now();
    let after = loop {
        match inbox.counts().await {
            Ok(counts) => break counts,
            Err(_) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never reconnected"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(after, counts(n - 50, 0, 50, 0));
    let done_id = claimed.leases[0].notification.id().to_owned();
    assert!(
        deliver(&service, envelope(&done_id, "ping", 2))
            .await
            .duplicate
    );

    let seen = Arc::new(Mutex::new(HashSet::new()));
    let record = seen.clone();
    let worker = spawn(
        inbox
            .worker(handler_fn(move |n: ReceivedNotification| {
                assert!(record.lock().unwrap().insert(n.id().to_owned()));
                async { Ok::<_, std::io::Error>(()) }
            }))
            .concurrency(16),
    );
    wait_for(&inbox, "all done", |c| c.done == n).await;
    worker.stop().await;
    let done: HashSet<String> = claimed
        .leases
        .iter()
        .map(|l| l.notification.id().to_owned())
        .collect();
    let seen = seen.lock().unwrap();
    for i in 0..n {
        let id = format!("notif_{i}");
        assert!(seen.contains(&id) != done.contains(&id), "{id}");
    }
}

async fn connect_logged(server: &Server) -> (RedisInbox, String) {
    let (logs, capturing) = Logs::start();
    let inbox = inbox(server).await;
    drop(capturing);
    (inbox, logs.text())
}

#[tokio::test]
async fn redis_without_an_append_only_file_is_reported_and_warned_about() {
    let server = Server::start_with(VOLATILE);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::NotDurable);
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("appendonly no"), "{logs}");
    assert!(!logs.contains(&server.url()), "{logs}");
}

#[tokio::test]
async fn redis_with_appendfsync_always_is_durable_and_not_warned_about() {
    let server = Server::start_with(AOF_ALWAYS);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::Durable);
    assert!(inbox.store().persistence().await.is_durable());
    assert!(!logs.contains("WARN"), "{logs}");
}

/// `no-appendfsync-on-rewrite yes`: while Redis rewrites its append-only
/// file or saves a snapshot (which it starts on its own), it does not
/// fsync, whatever `appendfsync` says.
#[tokio::test]
async fn redis_that_skips_fsync_during_rewrites_is_not_durable_and_warned_about() {
    for appendfsync in ["always", "everysec"] {
        let server = Server::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--no-appendfsync-on-rewrite",
            "yes",
        ]);
        let (inbox, logs) = connect_logged(&server).await;
        let persistence = inbox.store().persistence().await;
        assert_ne!(persistence, Persistence::Durable, "{appendfsync}");
        assert!(!persistence.is_durable(), "{appendfsync}");
        assert_eq!(
            persistence,
            Persistence::LosesWritesDuringRewrites,
            "{appendfsync}"
        );
        assert!(logs.contains("WARN"), "{appendfsync}: {logs}");
        assert!(
            logs.contains("no-appendfsync-on-rewrite yes"),
            "{appendfsync}: {logs}"
        );
    }

    // An ACL user without CONFIG cannot tell: unknown, never durable.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--no-appendfsync-on-rewrite",
        "yes",
        "--user",
        "inbox",
        "on",
        ">inbox-password",
        "~*",
        "&*",
        "+@all",
        "-config",
    ]);
    let url = format!("redis://inbox:inbox-password@127.0.0.1:{}/", server.port());
    let (logs, capturing) = Logs::start();
    let inbox = connect_inbox(&url, |options| options).await;
    drop(capturing);
    let logs = logs.text();
    assert_eq!(inbox.store().persistence().await, Persistence::Unknown);
    assert!(logs.contains("no-appendfsync-on-rewrite no"), "{logs}");
}

#[tokio::test]
async fn other_persistence_settings_are_reported_and_warned_about() {
    // everysec: up to a second on a power loss.
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(
        inbox.store().persistence().await,
        Persistence::LosesUpToOneSecond
    );
    assert!(logs.contains("appendfsync everysec"), "{logs}");

    // appendfsync no: left to the OS.
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    assert_eq!(inbox_persistence(&server).await, Persistence::NotDurable);

    // CONFIG renamed away (as on managed Redis): INFO tells the AOF is off…
    let server = Server::start_with(&["--appendonly", "no", "--rename-command", "CONFIG", ""]);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::NotDurable);
    assert!(logs.contains("WARN"), "{logs}");
    // … or that it is on, but not its fsync policy.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    let (inbox, logs) = connect_logged(&server).await;
    assert_eq!(inbox.store().persistence().await, Persistence::Unknown);
    assert!(
        logs.contains("could not read Redis's persistence settings"),
        "{logs}"
    );

    // An eviction policy that could drop the inbox's keys.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let (_, logs) = connect_logged(&server).await;
    assert!(logs.contains("maxmemory-policy allkeys-lru"), "{logs}");

    // A volatile-* policy evicts only keys with a TTL, and none of the
    // inbox's has one: nothing to warn about.
    let server = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "volatile-lru",
    ]);
    let (_, logs) = connect_logged(&server).await;
    assert!(!logs.contains("WARN"), "{logs}");
}

async fn inbox_persistence(server: &Server) -> Persistence {
    inbox(server).await.store().persistence().await
}

#[tokio::test]
async fn neither_errors_nor_debug_output_show_the_url_or_password() {
    let server = Server::start_with(&["--requirepass", "hunter2-secret"]);
    let url = format!("redis://:hunter2-secret@127.0.0.1:{}/", server.port());
    let inbox = connect_inbox(&url, |options| options).await;
    inbox
        .store()
        .insert(NewNotification::new("n", "t", Bytes::new()))
        .await
        .unwrap();
    for shown in [
        format!("{inbox:?}"),
        format!("{:?}", inbox.store()),
        format!("{:?}", RedisOptions::default()),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&server.port().to_string()), "{shown}");
    }
    let wrong = format!("redis://:wrong-hunter3@127.0.0.1:{}/", server.port());
    let error = connect_store(&wrong, |options| options).await.unwrap_err();
    for shown in [format!("{error}"), format!("{error:?}")] {
        assert!(!shown.contains("hunter3"), "{shown}");
    }
    let closed = format!("redis://:hunter4@127.0.0.1:{}/", free_port());
    let error = connect_store(&closed, |options| options).await.unwrap_err();
    for shown in [format!("{error}"), format!("{error:?}")] {
        assert!(!shown.contains("hunter4"), "{shown}");
    }
}

/// An insert that fails half-way (here the stream's key holds a string)
/// leaves nothing that the redelivery would take for stored: once the key
/// is fixed, the redelivery is stored and processed. (Before, the message
/// was written before the stream entry: the redelivery was answered 200 as
/// a duplicate, and the notification never processed.)
#[tokio::test]
async fn an_insert_that_fails_half_way_does_not_strand_the_notification() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let service = stack(&inbox);
    let mut redis = raw(&server).await;
    let _: () = redis.set(key("stream"), "not a stream").await.unwrap();
    let status = deliver(&service, envelope("notif_stranded", "ping", 1))
        .await
        .status;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let _: () = redis.del(key("stream")).await.unwrap();
    let status = deliver(&service, envelope("notif_stranded", "ping", 2))
        .await
        .status;
    assert_eq!(status, StatusCode::OK);
    let worker = spawn(
        inbox
            .worker(ok_handler())
            .poll_interval(Duration::from_millis(20)),
    );
    wait_for(&inbox, "processed after the redelivery", |c| c.done == 1).await;
    worker.stop().await;
}

/// A message without its stream entry (deleted by hand, or left by an
/// older insert that failed half-way) cannot be claimed; an idle worker
/// must not claim again and again because of it. (Before, every claim
/// answered that work was due now: the worker ran hundreds of claims a
/// second.)
#[tokio::test]
async fn a_message_without_its_entry_does_not_make_workers_spin() {
    let server = Server::start_with(VOLATILE);
    let inbox = inbox(&server).await;
    let mut redis = raw(&server).await;
    let _: () = redis
        .hset(key("messages"), "notif_orphan", "1:0:4:ping")
        .await
        .unwrap();
    let scripts = |info: String| -> u64 {
        info.lines()
            .filter(|line| line.starts_with("cmdstat_eval"))
            .filter_map(|line| {
                let calls = line.split("calls=").nth(1)?;
                calls.split(',').next()?.parse::<u64>().ok()
            })
            .sum()
    };
    let worker = spawn(inbox.worker(ok_handler()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await
        .unwrap();
    worker.stop().await;
    // One claim per poll (1 s), and the pruning now and then.
    let calls = scripts(after) - scripts(before);
    assert!(calls <= 10, "{calls} script calls in 1.5 s");
}

/// A connection that goes silent (Redis's machine gone without closing
/// it, a NAT that forgot it) is replaced after a few timeouts, and the
/// store answers again. (Before, every operation timed out until the
/// kernel gave up on the connection, about 15 minutes later.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_silent_is_replaced() {
    let server = Server::start_with(VOLATILE);
    let proxy = SilencingProxy::start(([127, 0, 0, 1], server.port()).into()).await;
    let proxied = format!("redis://{}/", proxy.addr);
    let store = connect_store(&proxied, |options| {
        options.timeout(Duration::from_millis(200))
    })
    .await
    .unwrap();
    store
        .insert(NewNotification::new(
            "notif_before",
            "ping",
            Bytes::from("{}"),
        ))
        .await
        .unwrap();
    proxy.silence_existing();
    let started = Instant::now();
    let mut timeouts = 0;
    let answered = loop {
        match store.counts().await {
            Ok(counts) => break counts,
            Err(error) => {
                assert_eq!(error.kind(), StoreErrorKind::TimedOut, "{error}");
                timeouts += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still timing out after {timeouts} tries"
        );
    };
    assert!(timeouts >= 1);
    assert_eq!(answered, counts(1, 0, 0, 0));
    // Inserts too: their write task uses the new connection.
    assert_eq!(
        store
            .insert(NewNotification::new(
                "notif_after",
                "ping",
                Bytes::from("{}")
            ))
            .await
            .unwrap(),
        Inserted::Stored
    );
}

/// A Redis that requires a password the URL lacks accepts the connection
/// and refuses every command: connecting fails, with Redis's reason,
/// instead of succeeding and answering every delivery 503.
#[tokio::test]
async fn connecting_without_the_password_redis_requires_fails() {
    let server = Server::start_with(&["--requirepass", "hunter5-secret"]);
    let url = format!("redis://127.0.0.1:{}/", server.port());
    let error = connect_store(&url, |options| options).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    assert!(error.to_string().contains("NOAUTH"), "{error}");
    let error = RedisStore::connect(&url).await.unwrap_err();
    assert!(error.to_string().contains("NOAUTH"), "{error}");

    // A user who may not `PING` (least privilege) still connects: the
    // check fails only for want of a password.
    let url = format!("redis://:hunter5-secret@127.0.0.1:{}/", server.port());
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "worker",
            "on",
            ">worker-password",
            "+@all",
            "-ping",
            "~*",
        ])
        .query_async(&mut redis)
        .await
        .unwrap();
    let url = format!(
        "redis://worker:worker-password@127.0.0.1:{}/",
        server.port()
    );
    let inbox = connect_inbox(&url, |options| options).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
}

/// `RedisStore::timeout` set after connecting governs each operation: a
/// longer one waits out a Redis that pauses longer than the default
/// timeout, and a shorter one fails with `TimedOut` at its own time.
#[tokio::test]
async fn the_timeout_of_the_options_is_the_one_used() {
    let server = Server::start_with(VOLATILE);
    let patient = RedisStore::options()
        .timeout(Duration::from_secs(10))
        .connect(&server.url())
        .await
        .unwrap();
    let hasty = RedisStore::options()
        .timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let mut redis = raw(&server).await;
    // Longer than the default timeout (1 s).
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut redis)
        .await
        .unwrap();
    let paused = Instant::now();
    let (waited, hurried) = tokio::join!(patient.counts(), async {
        let started = Instant::now();
        (hasty.counts().await, started.elapsed())
    });
    let error = hurried.0.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::TimedOut, "{error}");
    assert!(hurried.1 < Duration::from_millis(2000), "{:?}", hurried.1);
    assert_eq!(waited.unwrap(), counts(0, 0, 0, 0));
    assert!(paused.elapsed() >= Duration::from_millis(2000));
}
