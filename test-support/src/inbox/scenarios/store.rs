//! The store's contract at the store level (`InboxStore`'s documentation),
//! without workers.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tower_intercom::inbox::{
    ClaimRequest, DeadQuery, Failure, InboxStore, Inserted, NewNotification,
};

use super::super::*;

/// The lease fence: of two holders of one notification (the second after
/// the first's lease lapsed), only the current one can complete, fail or
/// release it. A lease lapses at its holder's deadline, whatever lease the
/// next claimer asks for.
pub async fn completion_is_fenced_by_the_lease_token<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let store = inbox.store();
    let inserted = store
        .insert(NewNotification::new(
            "notif_1",
            "ping",
            Bytes::from_static(b"{}"),
        ))
        .await
        .unwrap();
    assert_eq!(inserted, Inserted::Stored);
    let lease = Duration::from_millis(100);
    let first = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    assert_eq!(first.leases.len(), 1);
    let again = store.claim(ClaimRequest::new(10, lease, 5)).await.unwrap();
    assert!(again.leases.is_empty());
    // The next thing due is the lease's end.
    let due = again
        .next_due
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(due <= lease, "{due:?}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = store
        .claim(ClaimRequest::new(10, lease * 50, 5))
        .await
        .unwrap();
    assert_eq!(second.leases.len(), 1);
    assert_eq!(second.leases[0].notification.attempt(), 2);
    let (stale, current) = (&first.leases[0].token, &second.leases[0].token);
    assert!(!store.complete("notif_1", stale).await.unwrap());
    assert!(!store
        .fail("notif_1", stale, Failure::dead("late"))
        .await
        .unwrap());
    assert!(!store.release("notif_1", stale).await.unwrap());
    assert!(!store.complete("notif_other", current).await.unwrap());
    assert!(store.complete("notif_1", current).await.unwrap());
    assert!(!store.complete("notif_1", current).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 0, 1, 0));
}

/// The store's contract step by step: attempts, release, retry times,
/// dead after a lapsed last attempt, requeue.
pub async fn attempts_release_retries_and_lapses_follow_the_store_contract<H: InboxHarness>() {
    let (_harness, inbox) = start::<H>().await;
    let store = inbox.store();
    let long = Duration::from_secs(30);
    for id in ["a", "b", "c"] {
        store
            .insert(NewNotification::new(id, "t", Bytes::from(id)))
            .await
            .unwrap();
    }
    // Oldest first, at most `max`; "c" waits, due now.
    let claimed = store.claim(ClaimRequest::new(2, long, 3)).await.unwrap();
    let ids: Vec<&str> = claimed.leases.iter().map(|l| l.notification.id()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(claimed.next_due.unwrap() <= SystemTime::now() + Duration::from_millis(5));
    assert_eq!(inbox.counts().await.unwrap(), counts(1, 2, 0, 0));
    let (a, b) = (&claimed.leases[0], &claimed.leases[1]);
    assert_eq!(a.notification.bytes(), "a");
    assert_eq!(a.notification.topic(), "t");

    // Release: pending at once, the attempt not used; behind "c", due
    // since before (a millisecond before: the stores keep times to the
    // millisecond).
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(store.release("a", &a.token).await.unwrap());
    assert!(!store.release("a", &a.token).await.unwrap());
    // Fail with a retry 300 ms from now.
    let retry_at = SystemTime::now() + Duration::from_millis(300);
    assert!(store
        .fail("b", &b.token, Failure::retry("boom", retry_at))
        .await
        .unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(3, 0, 0, 0));
    // Oldest due first, one claim at a time: "c", then "a"; "b" waits.
    let first = store.claim(ClaimRequest::new(1, long, 3)).await.unwrap();
    let second = store.claim(ClaimRequest::new(10, long, 3)).await.unwrap();
    let got: Vec<(&str, u32)> = first
        .leases
        .iter()
        .chain(&second.leases)
        .map(|l| (l.notification.id(), l.notification.attempt()))
        .collect();
    assert_eq!(got, [("c", 1), ("a", 1)]);
    // Due when the retry is: not before it (give or take the milliseconds
    // the stores round to), and late only by the round trips, however slow
    // the machine.
    let next_due = second.next_due.unwrap();
    assert!(
        next_due + Duration::from_millis(20) >= retry_at,
        "due {:?} before the retry",
        retry_at.duration_since(next_due).unwrap_or_default()
    );
    assert!(
        next_due <= retry_at + Duration::from_millis(500),
        "due {:?} after the retry",
        next_due.duration_since(retry_at).unwrap_or_default()
    );
    let until = next_due
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until + Duration::from_millis(20)).await;
    let claimed_b = store
        .claim(ClaimRequest::new(10, Duration::from_millis(50), 2))
        .await
        .unwrap();
    assert_eq!(claimed_b.leases.len(), 1);
    assert_eq!(claimed_b.leases[0].notification.id(), "b");
    assert_eq!(claimed_b.leases[0].notification.attempt(), 2);

    // Its lease lapses at its second attempt of two: dead.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let none = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    assert!(none.leases.is_empty());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 2, 0, 1));
    let dead = inbox.dead(DeadQuery::first(10)).await.unwrap();
    assert_eq!(dead.notifications.len(), 1);
    assert_eq!(dead.notifications[0].notification.id(), "b");
    assert_eq!(dead.notifications[0].notification.attempt(), 2);
    assert!(dead.notifications[0].last_error().contains("lease lapsed"));
    // The lapsed holder can do nothing any more.
    assert!(!store
        .complete("b", &claimed_b.leases[0].token)
        .await
        .unwrap());

    // Requeue: attempts start again.
    assert!(store.requeue("b").await.unwrap());
    let claimed = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    assert_eq!(claimed.leases.len(), 1);
    assert_eq!(claimed.leases[0].notification.attempt(), 1);
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 3, 0, 0));

    // Nothing pending and no lease ending soon: next due is a lease end.
    let none = store.claim(ClaimRequest::new(10, long, 2)).await.unwrap();
    let until = none
        .next_due
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(until > Duration::from_secs(25), "{until:?}");
    assert!(store.complete("b", &claimed.leases[0].token).await.unwrap());
    assert_eq!(inbox.counts().await.unwrap(), counts(0, 2, 1, 0));
}
