//! Pruning: running workers forget the done notifications older than the
//! inbox's retention, regularly.

use std::{pin::Pin, time::Duration};

use tokio::{task::JoinHandle, time::Sleep};

use crate::inbox::{Inbox, InboxStore};

/// When the next pruning is due, and the one running.
pub(super) struct Pruning<St> {
    inbox: Inbox<St>,
    /// A quarter of the retention, from 1 s to 1 min.
    every: Duration,
    next: Pin<Box<Sleep>>,
    running: Option<JoinHandle<()>>,
}

impl<St: InboxStore> Pruning<St> {
    /// Pruning `inbox`, the first due at once.
    pub(super) fn new(inbox: &Inbox<St>) -> Self {
        Self {
            inbox: inbox.clone(),
            every: (inbox.config.retention / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            next: Box::pin(tokio::time::sleep(Duration::ZERO)),
            running: None,
        }
    }

    /// Until the next pruning is due: `every` after the
    /// last one started, and once that one has finished (one at a time).
    pub(super) async fn due(&mut self) {
        self.next.as_mut().await;
        if let Some(running) = &mut self.running {
            let _ = running.await;
            self.running = None;
        }
    }

    /// Prune: forgets the done notifications older than the retention, in
    /// a task of its own; the next is due `every` from now.
    pub(super) fn start(&mut self) {
        let inbox = self.inbox.clone();
        self.running = Some(tokio::spawn(async move {
            if let Err(error) = inbox.prune().await {
                tracing::debug!(
                    target: "tower_intercom::inbox",
                    "pruning done notifications failed: {error}"
                );
            }
        }));
        self.next
            .as_mut()
            .reset(tokio::time::Instant::now() + self.every);
    }

    /// Stops the pruning in progress, if any: the worker stops.
    pub(super) fn stop(self) {
        if let Some(running) = self.running {
            running.abort();
        }
    }
}
