//! A backend down, stalled or slow, and what the inbox answers, records
//! and reports meanwhile.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::StatusCode;
use tower_intercom::{
    inbox::{
        handler_fn, DeadQuery, Inbox, InboxStore, NewNotification, OverloadStatus,
        ReceivedNotification,
    },
    StoreErrorKind,
};

use super::{super::*, process::done_after_failures};
use crate::{inbox::faulty::Faulty, logs::Logs};

/// The backend down: the receiver answers 503 at once and nothing is
/// stored; back: Intercom's retry is accepted (the store reconnects by
/// itself), and what was acknowledged before is still there.
pub async fn storage_unavailable_is_503_and_stores_nothing_until_it_is_back<H: InboxHarness>() {
    let mut harness = H::start().await;
    let settings = Settings {
        store: StoreSettings {
            timeout: Some(Duration::from_millis(300)),
            ..StoreSettings::default()
        },
        ..Settings::default()
    };
    let inbox = open(&harness, settings).await;
    let service = stack(&inbox);
    assert_eq!(
        deliver(&service, envelope("notif_a", "ping", 1))
            .await
            .status,
        StatusCode::OK
    );
    harness.take_down();
    for attempt in 1..=2 {
        let start = Instant::now();
        let answer = deliver(&service, envelope("notif_b", "ping", attempt)).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(answer.error(), "the inbox is unavailable; retry later");
    }
    match inbox.counts().await {
        Err(error) if H::READS_FAIL_WHEN_DOWN => assert!(
            matches!(
                error.kind(),
                StoreErrorKind::Unavailable | StoreErrorKind::TimedOut
            ),
            "{error}"
        ),
        counted => {
            assert!(!H::READS_FAIL_WHEN_DOWN, "read while down: {counted:?}");
            assert_eq!(counted.unwrap(), counts(1, 0, 0, 0));
        }
    }

    harness.bring_back();
    // What the 503s were answered to was not stored; what was acknowledged
    // before is there.
    let start = Instant::now();
    let back = loop {
        if let Ok(counts) = inbox.counts().await {
            break counts;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(back, counts(1, 0, 0, 0));
    let mut attempt = 2;
    loop {
        attempt += 1;
        let answer = deliver(&service, envelope("notif_b", "ping", attempt)).await;
        if answer.status == StatusCode::OK {
            assert!(!answer.duplicate);
            break;
        }
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(start.elapsed() < Duration::from_secs(10), "never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(2, 0, 0, 0));
}

/// The backend stalled: the receiver answers 503 at its deadline. The
/// insert it gave up on is either dropped (the retry is then stored) or
/// written when the backend answers again (the retry is then a
/// duplicate): one entry either way.
pub async fn a_commit_slower_than_the_deadline_is_503<H: InboxHarness>() {
    let mut harness = H::start().await;
    let settings = Settings {
        store: StoreSettings {
            timeout: Some(Duration::from_secs(5)),
            ..StoreSettings::default()
        },
        deadline: Some(Duration::from_millis(200)),
        ..Settings::default()
    };
    let inbox = open(&harness, settings).await;
    let service = stack(&inbox);
    harness.stall();
    let start = Instant::now();
    let answer = deliver(&service, envelope("notif_1", "ping", 1)).await;
    let took = start.elapsed();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(3),
        "{took:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    harness.resume();
    if H::GIVEN_UP_INSERTS_ARE_DROPPED {
        // The store gets the backend back now, and drops the insert nobody
        // waits for.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 0, 0));
    }
    let start = Instant::now();
    let retry = loop {
        let answer = deliver(&service, envelope("notif_1", "ping", 2)).await;
        if answer.status == StatusCode::OK {
            break answer;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        retry.duplicate,
        !H::GIVEN_UP_INSERTS_ARE_DROPPED,
        "the given-up insert was {} written",
        if H::GIVEN_UP_INSERTS_ARE_DROPPED {
            ""
        } else {
            "not"
        }
    );
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 0, 0, 0));
}

/// With the backend stalled, inserts beyond those allowed to wait are
/// refused at once (429, or 503 when configured): nothing waits in memory
/// without bound.
pub async fn overload_is_answered_at_once_without_queueing<H: InboxHarness>() {
    let patient = |overload_status| Settings {
        store: StoreSettings {
            timeout: Some(Duration::from_secs(5)),
            waiting_inserts: Some(2),
        },
        deadline: Some(Duration::from_secs(5)),
        overload_status,
        ..Settings::default()
    };
    let mut harness = H::start().await;
    let inbox = open(&harness, patient(None)).await;
    let service = stack(&inbox);
    harness.stall();
    let waiting = wait_in_turn(&service, 2).await;
    for i in 2..200 {
        let start = Instant::now();
        let answer = deliver(&service, envelope(&format!("notif_{i}"), "ping", 1)).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        // At once: a request that waited for the store would take its 5 s
        // (the bound leaves room for a loaded machine).
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(answer.error(), "the inbox is overloaded; retry later");
    }
    harness.resume();
    for handle in waiting {
        assert_eq!(handle.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(inbox.counts().await.unwrap(), counts(2, 0, 0, 0));

    // 503 instead of 429, when configured.
    let mut harness = H::start().await;
    let inbox = open(&harness, patient(Some(OverloadStatus::ServiceUnavailable))).await;
    let service = stack(&inbox);
    harness.stall();
    let waiting = wait_in_turn(&service, 2).await;
    let answer = deliver(&service, envelope("notif_x", "ping", 1)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    harness.resume();
    for handle in waiting {
        assert_eq!(handle.await.unwrap().status, StatusCode::OK);
    }
}

/// Sends `n` deliveries one after the other, 100 ms apart (time for the
/// store to take each), without waiting for their answers.
async fn wait_in_turn(service: &Stack, n: usize) -> Vec<tokio::task::JoinHandle<Answer>> {
    let mut waiting = Vec::new();
    for i in 0..n {
        let delivery = deliver(service, envelope(&format!("notif_{i}"), "ping", 1));
        waiting.push(tokio::spawn(delivery));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    waiting
}

/// An inbox over `harness`'s store behind `faults`, holding one
/// notification, `id`.
async fn faulty<H: InboxHarness>(
    harness: &H,
    faults: impl FnOnce(Faulty<H::Store>) -> Faulty<H::Store>,
    id: &str,
) -> Inbox<Faulty<H::Store>> {
    let store = faults(Faulty::new(harness.store(&StoreSettings::patient()).await));
    let inbox = Inbox::new(store);
    inbox
        .store()
        .insert(NewNotification::new(id, "ping", Bytes::from_static(b"{}")))
        .await
        .unwrap();
    inbox
}

/// A handler that overran its lease is stopped before its slot goes to
/// another notification, even while outcomes wait to be written: the same
/// notification never runs twice at once, in one worker or across two.
pub async fn a_notification_never_runs_twice_at_once_when_outcomes_are_slow<H: InboxHarness>() {
    let harness = H::start().await;
    let inbox = faulty(
        &harness,
        |store| store.complete_delay(Duration::from_secs(3)),
        "notif_quick",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    inbox
        .store()
        .insert(NewNotification::new(
            "notif_slow",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    /// Counts the runs of the slow notification going on.
    struct Running(Arc<AtomicU32>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let handler = {
        let (running, most) = (running.clone(), most.clone());
        handler_fn(move |notification: ReceivedNotification| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                if notification.id() == "notif_slow" {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _running = Running(running);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok::<_, std::io::Error>(())
            }
        })
    };
    let first = inbox
        .worker(handler.clone())
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .spawn(std::future::pending());
    until("the slow handler", || running.load(Ordering::SeqCst) > 0).await;
    let second = inbox
        .worker(handler)
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .spawn(std::future::pending());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.abort();
    second.abort();
    assert_eq!(most.load(Ordering::SeqCst), 1, "ran twice at once");
}

/// A claim that takes long to come back (its commit waited for a slow
/// disk) leaves the handler less time: the worker stops it a margin before
/// the lease ends, counted from the claim, and records the overrun itself,
/// before the lease lapses.
pub async fn a_slow_claim_does_not_push_the_handler_past_its_lease<H: InboxHarness>() {
    let harness = H::start().await;
    // More than the worker's margin (a tenth of the lease).
    let delay = Duration::from_millis(300);
    let inbox = faulty(&harness, |store| store.claim_delay(delay), "notif_stuck").await;
    let worker = spawn(
        inbox
            .worker(handler_fn(|_: ReceivedNotification| async {
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }))
            .lease(Duration::from_secs(1))
            .max_attempts(1),
    );
    wait_for(&inbox, "dead", |c| c.dead == 1).await;
    worker.stop().await;
    let page = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(
        page.notifications[0].last_error(),
        "the handler did not finish within its lease (1s)"
    );
}

/// A store that does not answer a claim (a stalled disk) cannot hold a
/// worker's shutdown: the worker waits for the claim within its grace
/// period, then stops; what the claim leased is taken again, by another
/// worker, once its lease has lapsed.
pub async fn a_claim_that_never_answers_does_not_hold_the_shutdown<H: InboxHarness>() {
    let harness = H::start().await;
    // Committed at once, answered after an hour.
    let hour = Duration::from_secs(3600);
    let stalled = faulty(&harness, |store| store.claim_delay(hour), "notif_stalled").await;
    let inbox = open(&harness, Settings::patient()).await;
    let worker = spawn(
        stalled
            .worker(ok_handler())
            .lease(Duration::from_secs(1))
            .grace_period(Duration::from_millis(200)),
    );
    wait_for(&inbox, "leased by the stalled claim", |c| {
        c.in_progress == 1
    })
    .await;
    let stopping = Instant::now();
    // The shutdown does not wait for a claim that never answers.
    worker.stop_within(Duration::from_secs(10)).await;
    assert!(stopping.elapsed() >= Duration::from_millis(150));

    // Nothing lost: another worker takes it once the lease has lapsed.
    let worker = spawn(
        inbox
            .worker(ok_handler())
            .poll_interval(Duration::from_millis(20)),
    );
    wait_for(&inbox, "done by another worker", |c| c.done == 1).await;
    worker.stop().await;
}

/// A retry whose recording needed a second try (the first was written,
/// its answer lost) is still waited for, not found at the next poll
/// (here 5 s): the second try answers "not recorded", since the first
/// ended the lease.
pub async fn a_retry_recorded_on_a_second_try_is_taken_when_due<H: InboxHarness>() {
    let harness = H::start().await;
    let inbox = faulty(&harness, Faulty::lose_first_failure_answer, "notif_flaky").await;
    let (took, runs) = done_after_failures(&inbox, 1).await;
    assert_eq!(runs, 2);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A notification processed but not marked done, because the store
/// refused the completion and its retries, is reported at `warn`: it will
/// be processed again when its lease lapses, and the operator must hear of
/// it.
pub async fn a_completion_the_store_refuses_is_warned_about<H: InboxHarness>() {
    let harness = H::start().await;
    let inbox = faulty(&harness, Faulty::refuse_completions, "notif_unrecorded").await;
    // This test's runtime runs on this thread: the worker's logs are
    // captured.
    let (logs, capturing) = Logs::start();
    let runs = Arc::new(AtomicU32::new(0));
    let worker = spawn({
        let runs = runs.clone();
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                runs.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, std::io::Error>(()) }
            }))
            .lease(Duration::from_secs(30))
    });
    let start = Instant::now();
    while !logs.text().contains("WARN") && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    drop(capturing);
    let logs = logs.text();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let warning = logs
        .lines()
        .find(|line| line.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(
        warning.contains("cannot record") && warning.contains("the disk went away"),
        "{warning}"
    );
    // Not done: still leased, taken again when the lease lapses.
    let counts = inbox.counts().await.unwrap();
    assert_eq!((counts.done, counts.in_progress), (0, 1), "{counts:?}");
}

/// A failed attempt is reported at `warn` (at most once per 10 s), with
/// the notification's id and the handler's error: otherwise retries go
/// unseen until the notification is dead, an hour later. So is a request
/// signed with the app's secret but refused for not being a notification.
pub async fn failed_attempts_and_refused_requests_are_warned_about<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    // This test's runtime runs on this thread: its logs are captured.
    let (logs, capturing) = Logs::start();
    let service = stack(&inbox);
    let answer = deliver(&service, r#"{"topic":"ping"}"#).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = deliver(&service, envelope("notif_flaky", "ping", 1)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let failed = Arc::new(AtomicBool::new(false));
    let worker = spawn({
        let failed = failed.clone();
        inbox
            .worker(handler_fn(move |_: ReceivedNotification| {
                let first = !failed.swap(true, Ordering::SeqCst);
                async move {
                    if first {
                        return Err(std::io::Error::other("the CRM said no"));
                    }
                    Ok(())
                }
            }))
            .backoff(Duration::from_millis(10), Duration::from_millis(10))
            .poll_interval(Duration::from_millis(20))
    });
    wait_for(&inbox, "done after a retry", |c| c.done == 1).await;
    worker.stop().await;
    drop(capturing);
    let logs = logs.text();
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains("WARN")).collect();
    assert!(
        warnings.iter().any(|line| line.contains("notif_flaky")
            && line.contains("attempt 1 of 12")
            && line.contains("the CRM said no")),
        "{logs}"
    );
    assert!(
        warnings.iter().any(|line| line.contains("refused with 400")
            && line.contains("the notification has no `id`")),
        "{logs}"
    );
    assert_eq!(warnings.len(), 2, "{logs}");
}
