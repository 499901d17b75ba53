//! Processing: retries, dead notifications, leases that lapse, shutdowns,
//! crashed workers, retention.

use std::{
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::Notify;
use tower_intercom::inbox::{
    handler_fn, DeadQuery, Inbox, InboxStore, NewNotification, ReceivedNotification,
};

use super::super::*;

pub async fn failures_are_retried_with_backoff_then_dead_then_requeued<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    let body = envelope("notif_fail", "contact.created", 1);
    assert_eq!(deliver(&service, body.clone()).await.status, StatusCode::OK);

    let failing = Arc::new(AtomicBool::new(true));
    let attempts = Arc::new(Mutex::new(Vec::<u32>::new()));
    let (fail, log) = (failing.clone(), attempts.clone());
    let worker = spawn(
        inbox
            .worker(handler_fn(move |n: ReceivedNotification| {
                log.lock().unwrap().push(n.attempt());
                let fail = fail.load(Ordering::SeqCst);
                async move {
                    if fail {
                        Err(std::io::Error::other("the CRM is down"))
                    } else {
                        Ok(())
                    }
                }
            }))
            .max_attempts(3)
            .backoff(Duration::from_millis(40), Duration::from_millis(80))
            .poll_interval(Duration::from_millis(20)),
    );

    wait_for(&inbox, "dead", |c| c.dead == 1).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 1));
    assert_eq!(*attempts.lock().unwrap(), [1, 2, 3]);

    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert!(page.next.is_none());
    let dead = &page.notifications[0];
    assert_eq!(dead.notification.id(), "notif_fail");
    assert_eq!(dead.notification.topic(), "contact.created");
    assert_eq!(dead.notification.bytes(), body.as_bytes());
    assert_eq!(dead.notification.attempt(), 3);
    assert_eq!(dead.last_error(), "the CRM is down");

    failing.store(false, Ordering::SeqCst);
    assert!(!inbox.requeue("notif_unknown").await.unwrap());
    assert!(inbox.requeue("notif_fail").await.unwrap());
    assert!(!inbox.requeue("notif_fail").await.unwrap()); // no longer dead
    wait_for(&inbox, "done", |c| c.done == 1).await;
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    // Attempts restart after a requeue.
    assert_eq!(*attempts.lock().unwrap(), [1, 2, 3, 1]);
    worker.stop().await;
}

pub async fn dead_notifications_are_listed_in_pages_and_requeued_together<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    for i in 0..5 {
        accept(&service, envelope(&format!("notif_{i}"), "ping", 1)).await;
    }
    let worker = spawn(
        inbox
            .worker(handler_fn(|_n: ReceivedNotification| async {
                Err::<(), _>("always fails")
            }))
            .max_attempts(1),
    );
    wait_for(&inbox, "all dead", |c| c.dead == 5).await;
    worker.stop().await;

    let mut ids = Vec::new();
    let mut query = DeadQuery::first(2);
    loop {
        let page = inbox.dead(query).await.unwrap();
        assert!(page.notifications.len() <= 2);
        ids.extend(
            page.notifications
                .iter()
                .map(|d| d.notification.id().to_owned()),
        );
        match page.next {
            Some(next) => query = DeadQuery::after(2, next),
            None => break,
        }
    }
    // In the order they were received.
    assert_eq!(ids, ["notif_0", "notif_1", "notif_2", "notif_3", "notif_4"]);
    assert!(inbox
        .dead(DeadQuery::after(2, "not a cursor"))
        .await
        .is_err());
    assert_eq!(inbox.requeue_all().await.unwrap(), 5);
    assert_eq!(inbox.counts().await.unwrap(), counts(5, 0, 0, 0));
}

/// A worker stalled past its lease (its whole runtime blocked, as in a
/// long GC-like pause): another worker takes the notification once the
/// lease has lapsed, and the stalled worker's late success is fenced off.
pub async fn a_stalled_worker_loses_its_lease_and_its_late_completion_is_fenced<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    accept(&stack(&inbox), envelope("notif_slow", "ping", 1)).await;

    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let stalled = {
        let (inbox, started, finished) = (inbox.clone(), started.clone(), finished.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let done = finished.clone();
                let handler = handler_fn(move |n: ReceivedNotification| {
                    assert_eq!(n.attempt(), 1);
                    started.store(true, Ordering::SeqCst);
                    // Blocks this runtime's only thread: not even the
                    // worker's own lease timer can fire.
                    std::thread::sleep(Duration::from_millis(3000));
                    done.store(true, Ordering::SeqCst);
                    async { Ok::<_, std::io::Error>(()) }
                });
                let worker = spawn(
                    inbox
                        .worker(handler)
                        .lease(Duration::from_millis(300))
                        .concurrency(1),
                );
                until("the handler's end", || finished.load(Ordering::SeqCst)).await;
                // Let it record its outcome, then stop.
                tokio::time::sleep(Duration::from_millis(300)).await;
                worker.stop().await;
            });
        })
    };
    until("the stalled worker's handler", || {
        started.load(Ordering::SeqCst)
    })
    .await;
    let taken_at = Instant::now();

    let (second, handler) = last_attempt();
    let worker = spawn(
        inbox
            .worker(handler)
            .lease(Duration::from_millis(300))
            .poll_interval(Duration::from_millis(20)),
    );
    wait_for(&inbox, "done by the second worker", |c| c.done == 1).await;
    let elapsed = taken_at.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(second.load(Ordering::SeqCst), 2);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the stalled worker was still stalled"
    );
    // Later than the second worker's completion, earlier than the stalled
    // one's.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let done_by = SystemTime::now();

    stalled.join().unwrap();
    assert!(finished.load(Ordering::SeqCst));
    // The stalled worker's success changed nothing: done once, by the
    // second worker, whose completion time stands (had the late one been
    // recorded, pruning what was done before `done_by` would find nothing).
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    assert_eq!(inbox.store().prune_done(done_by).await.unwrap(), 1);
    worker.stop().await;
}

/// A handler that returns just after the shutdown began handing
/// notifications back (blocking code, which the abort cannot reach, then
/// done) has its success recorded: the notification is done, not handed
/// back to be processed again.
pub async fn a_handler_that_finishes_while_being_handed_back_is_done<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    accept(&stack(&inbox), envelope("notif_late", "ping", 1)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let started = Arc::new(Notify::new());
    let (counted, starting) = (runs.clone(), started.clone());
    let worker = spawn(
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                counted.fetch_add(1, Ordering::SeqCst);
                starting.notify_one();
                async {
                    // Past the 100 ms grace period, within the lease's 1 s
                    // margin.
                    std::thread::sleep(Duration::from_millis(500));
                    Ok::<_, std::io::Error>(())
                }
            }))
            .lease(Duration::from_secs(10))
            .grace_period(Duration::from_millis(100)),
    );
    notified("the handler", &started).await;
    worker.stop().await;
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A worker shut down while its handler is in blocking code (which the
/// worker cannot stop between two `.await`s) does not hand the
/// notification back for another worker to run beside it: it leaves it to
/// its lease, and it is taken again, once, when that lapses.
pub async fn a_handler_that_does_not_stop_at_shutdown_is_not_run_twice_at_once<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    accept(&stack(&inbox), envelope("notif_blocking", "ping", 1)).await;

    let running = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(Notify::new());
    let handler = || {
        let (running, most, attempts) = (running.clone(), most.clone(), attempts.clone());
        let started = started.clone();
        handler_fn(move |n: ReceivedNotification| {
            let (running, most, attempts) = (running.clone(), most.clone(), attempts.clone());
            let started = started.clone();
            async move {
                attempts.lock().unwrap().push(n.attempt());
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                started.notify_one();
                if n.attempt() == 1 {
                    // Blocking: an abort cannot stop it.
                    std::thread::sleep(Duration::from_millis(1200));
                }
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
    };
    let lease = Duration::from_secs(3);
    let first = spawn(
        inbox
            .worker(handler())
            .lease(lease)
            .grace_period(Duration::from_millis(100)),
    );
    notified("the first handler", &started).await;
    let taken_at = Instant::now();
    let second = spawn(
        inbox
            .worker(handler())
            .lease(lease)
            .poll_interval(Duration::from_millis(20)),
    );
    // The first worker gives up on its handler after the grace period and
    // the lease's margin (300 ms), while the handler still blocks.
    first.stop().await;
    wait_for(&inbox, "done by the second worker", |c| c.done == 1).await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "run twice at once");
    assert_eq!(*attempts.lock().unwrap(), [1, 2]);
    // Taken again only once its lease had lapsed.
    assert!(taken_at.elapsed() >= lease - Duration::from_millis(100));
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    second.stop().await;
}

/// A child process, killed when dropped: a failed test leaves no worker
/// behind.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHILD_ADDRESS: &str = "TOWER_INTERCOM_INBOX_CHILD_ADDRESS";
const CHILD_MARKER: &str = "TOWER_INTERCOM_INBOX_CHILD_MARKER";

/// The worker process of
/// [`a_killed_worker_process_leaves_the_notification_to_another`]: with
/// its environment set, takes a notification, writes its id to the marker
/// file and hangs until killed; without, returns at once.
pub async fn child_worker_process<H: InboxHarness>() {
    let Some(address) = std::env::var_os(CHILD_ADDRESS) else {
        return;
    };
    let inbox = Inbox::new(H::store_at(address.to_str().unwrap()).await);
    let marker = std::path::PathBuf::from(std::env::var_os(CHILD_MARKER).unwrap());
    let partial = marker.with_extension("partial");
    inbox
        .worker(handler_fn(move |n: ReceivedNotification| {
            // Written whole, then renamed: the test process, which waits
            // for the marker to exist, never reads it empty.
            std::fs::write(&partial, n.id()).unwrap();
            std::fs::rename(&partial, &marker).unwrap();
            // Hang until killed.
            std::future::pending::<Result<(), std::io::Error>>()
        }))
        .lease(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(20))
        .run(std::future::pending())
        .await;
}

/// A worker process killed (`SIGKILL`: no shutdown, no hand-back) while it
/// runs a notification: another worker takes it once the lease lapses.
/// `child_test` is the name of the test that runs
/// [`child_worker_process`] in this binary.
pub async fn a_killed_worker_process_leaves_the_notification_to_another<H: InboxHarness>(
    child_test: &str,
) {
    let (harness, inbox) = start::<H>().await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    accept(&stack(&inbox), envelope("notif_crash", "ping", 1)).await;

    let mut child = KilledOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ADDRESS, harness.address())
            .env(CHILD_MARKER, &marker)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the child never started"
        );
        assert!(child.0.try_wait().unwrap().is_none(), "the child exited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "notif_crash");
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 1, 0, 0));
    child.0.kill().unwrap(); // SIGKILL: no shutdown, no hand-back
    child.0.wait().unwrap();
    let killed_at = Instant::now();

    let (attempt, handler) = last_attempt();
    let worker = spawn(
        inbox
            .worker(handler)
            .poll_interval(Duration::from_millis(20)),
    );
    wait_for(&inbox, "done after the lease lapsed", |c| c.done == 1).await;
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    assert_eq!(attempt.load(Ordering::SeqCst), 2);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    worker.stop().await;
}

pub async fn shutdown_hands_back_what_is_in_flight_without_using_an_attempt<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    accept(&service, envelope("notif_quick", "ping", 1)).await;
    accept(&service, envelope("notif_hang", "ping", 1)).await;

    let worker = spawn(
        inbox
            .worker(handler_fn(|n: ReceivedNotification| async move {
                if n.id() == "notif_hang" {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok::<_, std::io::Error>(())
            }))
            .grace_period(Duration::from_millis(400)),
    );
    wait_for(&inbox, "both taken", |c| c.in_progress == 2).await;
    let stopping = Instant::now();
    worker.stop().await;
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The quick one finished within the grace period, the other was
    // handed back, pending.
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 1, 0));

    // The next worker gets it at once, as a first attempt: the one the
    // shutdown interrupted was not used.
    let (attempt, handler) = last_attempt();
    let worker = spawn(inbox.worker(handler));
    wait_for(&inbox, "done", |c| c.done == 2).await;
    assert_eq!(attempt.load(Ordering::SeqCst), 1);
    worker.stop().await;
}

pub async fn a_handler_that_panics_or_overruns_its_lease_fails_the_attempt<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let service = stack(&inbox);
    accept(&service, envelope("notif_panic", "ping", 1)).await;
    accept(&service, envelope("notif_slow", "ping", 1)).await;
    let worker = spawn(
        inbox
            .worker(handler_fn(|n: ReceivedNotification| async move {
                if n.id() == "notif_panic" {
                    panic!("handler bug");
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, std::io::Error>(())
            }))
            // The worker stops the handler a tenth of the lease before it
            // ends (100 ms here) to record why; a shorter lease leaves too
            // little margin on a loaded machine, and the lapsed lease is
            // recorded instead.
            .lease(Duration::from_secs(1))
            .max_attempts(1),
    );
    wait_for(&inbox, "both dead", |c| c.dead == 2).await;
    worker.stop().await;
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    let mut errors: Vec<&str> = page.notifications.iter().map(|d| d.last_error()).collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "the handler did not finish within its lease (1s)",
            "the handler panicked"
        ]
    );
}

/// Runs a worker (50 ms backoff, 5 s poll) whose handler fails `failing`
/// times before it succeeds, until the inbox's one notification is done:
/// how long that took, and how many times the handler ran.
pub(super) async fn done_after_failures<St: InboxStore>(
    inbox: &Inbox<St>,
    failing: u32,
) -> (Duration, u32) {
    let runs = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let counted = runs.clone();
    let worker = spawn(
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                let failed = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if failed < failing {
                        return Err(std::io::Error::other("not yet"));
                    }
                    Ok(())
                }
            }))
            .backoff(Duration::from_millis(50), Duration::from_millis(50))
            .poll_interval(Duration::from_secs(5)),
    );
    wait_for(inbox, "done after the retries", |c| c.done == 1).await;
    let took = started.elapsed();
    worker.stop().await;
    (took, runs.load(Ordering::SeqCst))
}

/// A retry is taken when it is due, not at the next poll (here 5 s): the
/// failure is recorded after the worker's last claim looked for work, and
/// that claim knew of no retry to wait for.
pub async fn a_retry_is_taken_when_due_not_at_the_next_poll<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    accept(&stack(&inbox), envelope("notif_flaky", "ping", 1)).await;
    let (took, runs) = done_after_failures(&inbox, 2).await;
    assert_eq!(runs, 3);
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// `requeue_all` requeues each notification dead when it started, once,
/// and ends, even while a worker fails what it requeues as fast as it
/// can: going back to the first page until none was left, it requeued
/// the same notifications again and again.
pub async fn requeue_all_ends_while_workers_keep_failing_what_it_requeues<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..600 {
        let inbox = inbox.clone();
        inserts.spawn(async move {
            inbox
                .store()
                .insert(NewNotification::new(
                    format!("notif_{i:03}"),
                    "ping",
                    Bytes::from_static(b"{}"),
                ))
                .await
                .unwrap()
        });
    }
    while inserts.join_next().await.is_some() {}
    let worker = spawn(
        inbox
            .worker(handler_fn(|_: ReceivedNotification| async {
                Err::<(), _>(std::io::Error::other("always fails"))
            }))
            .max_attempts(1)
            .concurrency(64)
            .poll_interval(Duration::from_millis(1)),
    );
    wait_for(&inbox, "all dead", |c| c.dead == 600).await;

    let requeued = tokio::time::timeout(Duration::from_secs(30), inbox.requeue_all())
        .await
        .expect("requeue_all kept requeueing what the worker failed again")
        .unwrap();
    assert_eq!(requeued, 600);
    worker.stop().await;
}

pub async fn done_ids_are_forgotten_after_the_retention<H: InboxHarness>() {
    let harness = H::start().await;
    let settings = Settings {
        // Long enough for the worker's shutdown and the first prune on a
        // loaded machine.
        retention: Some(Duration::from_secs(1)),
        ..Settings::patient()
    };
    let inbox = open(&harness, settings).await;
    let service = stack(&inbox);
    accept(&service, envelope("notif_1", "ping", 1)).await;
    let worker = spawn(inbox.worker(ok_handler()));
    wait_for(&inbox, "done", |c| c.done == 1).await;
    worker.stop().await;
    // Within the retention: a duplicate.
    assert_eq!(inbox.prune().await.unwrap(), 0);
    let answer = deliver(&service, envelope("notif_1", "ping", 2)).await;
    assert_eq!((answer.status, answer.duplicate), (StatusCode::OK, true));
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
    // After it: forgotten, and a redelivery is stored again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(inbox.prune().await.unwrap(), 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
    let answer = deliver(&service, envelope("notif_1", "ping", 3)).await;
    assert_eq!((answer.status, answer.duplicate), (StatusCode::OK, false));
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
    harness.inspect(Inspect::End).await;
}

/// Two inboxes over clones of one store (one for the receiver, one for the
/// workers, as a service may be written) wake each other: what the
/// receiver of one stores, and a dead notification requeued through it,
/// wake the other's idle worker at once, not at its next poll a minute
/// later.
pub async fn inboxes_over_clones_of_one_store_wake_each_others_workers<H: InboxHarness>() {
    let harness = H::start().await;
    let (receiving, working) = open_over_clones(&harness, Settings::patient()).await;
    let service = stack(&receiving);
    let processed = Arc::new(Mutex::new(Vec::<String>::new()));
    let failing = Arc::new(AtomicBool::new(true));
    let (record, fail) = (processed.clone(), failing.clone());
    let worker = spawn(
        working
            .worker(handler_fn(move |n: ReceivedNotification| {
                record.lock().unwrap().push(n.id().to_owned());
                let failed = n.id() == "clone_dead" && fail.load(Ordering::SeqCst);
                async move {
                    if failed {
                        Err(std::io::Error::other("the CRM is down"))
                    } else {
                        Ok(())
                    }
                }
            }))
            .max_attempts(1)
            .poll_interval(Duration::from_secs(60)),
    );
    let taken_within = |id: &'static str, what: &'static str| {
        let processed = processed.clone();
        async move {
            let since = Instant::now();
            while !processed.lock().unwrap().iter().any(|p| p == id) {
                assert!(
                    since.elapsed() < Duration::from_secs(5),
                    "{what}: the other inbox's idle worker was not woken"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Idle: its first claim found nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    accept(&service, envelope("clone_woken", "ping", 1)).await;
    taken_within("clone_woken", "a notification stored").await;

    accept(&service, envelope("clone_dead", "ping", 1)).await;
    wait_for(&working, "dead", |c| c.dead == 1).await;
    failing.store(false, Ordering::SeqCst);
    processed.lock().unwrap().retain(|id| id != "clone_dead");
    assert!(receiving.requeue("clone_dead").await.unwrap());
    taken_within("clone_dead", "a dead notification requeued").await;
    wait_for(&working, "done", |c| c.done == 2).await;
    assert_eq!(working.counts().await.unwrap(), counts(0, 0, 2, 0));
    worker.stop().await;
}
