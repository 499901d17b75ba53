//! Waking an idle worker: what it listens to while it sleeps until the
//! next poll or the next retry it knows of.

use std::{
    future::{poll_fn, Future},
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::{
    sync::{futures::Notified, Notify},
    time::Sleep,
};

use crate::inbox::{Inbox, InboxStore};

/// Everything that wakes an idle worker before its sleep ends: each is a
/// [`Notify`] woken with `notify_waiters` when there may be something to
/// claim. Another source (a store's own notifications, as with Postgres's
/// LISTEN/NOTIFY) is one more entry in [`of`](Self::of).
pub(super) struct WakeSources {
    sources: Vec<Arc<Notify>>,
}

impl WakeSources {
    /// The wake sources of `inbox`'s workers.
    pub(super) fn of<St: InboxStore>(inbox: &Inbox<St>) -> Self {
        let mut sources = vec![
            // This process: notifications its receiver stored, dead
            // notifications requeued, retries its workers recorded.
            inbox.wake.clone(),
        ];
        // The store's own: other processes' inserts (Postgres's LISTEN).
        sources.extend(inbox.store.wakeups());
        Self { sources }
    }

    /// Starts listening to every source: called before a claim, so that a
    /// wake-up between the claim's read and the wait after it is not
    /// missed.
    pub(super) fn listen(&self) -> WakeUp<'_> {
        let listeners = self
            .sources
            .iter()
            .map(|source| {
                let mut listener = Box::pin(source.notified());
                listener.as_mut().enable();
                listener
            })
            .collect();
        WakeUp { listeners }
    }
}

/// Listening to every wake source, since [`WakeSources::listen`].
#[derive(Default)]
pub(super) struct WakeUp<'a> {
    listeners: Vec<Pin<Box<Notified<'a>>>>,
}

impl WakeUp<'_> {
    /// Until any source wakes the worker.
    async fn any(&mut self) {
        poll_fn(|cx| {
            for listener in &mut self.listeners {
                if listener.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }
}

/// A worker with nothing to claim now: it sleeps until the next poll or
/// the next retry it knows of, unless a wake source wakes it first.
pub(super) struct Idle<'a> {
    wake_up: WakeUp<'a>,
    sleep: Pin<Box<Sleep>>,
}

impl<'a> Idle<'a> {
    /// Idle for `sleep_for`, listening with `wake_up` (which listens since
    /// before the claim that found nothing more).
    pub(super) fn new(wake_up: WakeUp<'a>, sleep_for: Duration) -> Self {
        Self {
            wake_up,
            sleep: Box::pin(tokio::time::sleep(sleep_for)),
        }
    }

    /// Sleep or wait for a wake-up: until any wake source wakes the
    /// worker, or the sleep ends.
    pub(super) async fn until_woken(&mut self) {
        tokio::select! {
            biased;
            () = self.wake_up.any() => {}
            () = self.sleep.as_mut() => {}
        }
    }
}
