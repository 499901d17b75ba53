//! Wake-ups: a connection of its own (outside the pool) that `LISTEN`s on
//! the inbox's channel, and wakes the idle workers of this process when
//! another process stored notifications. Reconnects by itself; workers
//! poll meanwhile. When it cannot listen again, a `warn` says so once
//! (not at every try), and an `info` when it listens again.

use std::{
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use tokio::sync::{oneshot, Notify};
use tokio_postgres::{AsyncMessage, Config};

use super::{errors::store_error, tls::Rustls};

/// The first wait before connecting again; it doubles up to
/// [`MAX_BACKOFF`], and starts over once listening.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the listening task needs.
pub(super) struct Listener {
    pub(super) config: Config,
    pub(super) tls: Rustls,
    pub(super) channel: String,
    /// Notifications with this payload were stored by this store, whose
    /// writer already woke the workers.
    pub(super) origin: Arc<str>,
    pub(super) wake: Arc<Notify>,
    /// How long connecting and `LISTEN` may take.
    pub(super) timeout: Duration,
}

/// Why a connection ended.
struct Ended {
    /// It was listening: the connection was lost, rather than not made.
    listened: bool,
    reason: String,
}

enum Event {
    Stop,
    Listened(Result<(), tokio_postgres::Error>),
    Notified(bool),
    Other,
    Lost(Option<tokio_postgres::Error>),
}

impl Listener {
    /// Listens until `stop` completes or its sender is dropped (the store
    /// is gone).
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        // A dead peer is noticed within about a minute even while no
        // notification comes.
        self.config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .application_name("tower-intercom inbox (listen)");
        let mut backoff = FIRST_BACKOFF;
        // Whether a `warn` said that wake-ups fall back to polling, and no
        // `info` since that they are back.
        let mut warned = false;
        loop {
            match self.session(&mut stop, &mut backoff, &mut warned).await {
                None => return,
                // Lost while listening: connecting again at once may well
                // work, and nothing was missed (the workers are woken once
                // listening again).
                Some(Ended {
                    listened: true,
                    reason,
                }) => tracing::debug!(
                    target: "tower_intercom::inbox",
                    "the inbox's LISTEN connection to Postgres was lost ({reason}); \
                     connecting again"
                ),
                Some(Ended { reason, .. }) if !warned => {
                    warned = true;
                    tracing::warn!(
                        target: "tower_intercom::inbox",
                        "the inbox cannot LISTEN on Postgres ({reason}): wake-ups fall back \
                         to polling, and workers find notifications stored by other \
                         processes at their next poll, until it listens again (it keeps \
                         trying)"
                    );
                }
                Some(Ended { reason, .. }) => tracing::debug!(
                    target: "tower_intercom::inbox",
                    "the inbox still cannot LISTEN on Postgres ({reason})"
                ),
            }
            let mut pause = pin!(tokio::time::sleep(backoff));
            let stopped = poll_fn(|cx| {
                if Pin::new(&mut stop).poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                pause.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if stopped {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: `None` when stopped, else why it ended. Once
    /// listening, says so at `info` when `warned` (and clears it).
    async fn session(
        &self,
        stop: &mut oneshot::Receiver<()>,
        backoff: &mut Duration,
        warned: &mut bool,
    ) -> Option<Ended> {
        let mut listened = false;
        let ended = |listened, reason| Some(Ended { listened, reason });
        let connecting = tokio::time::timeout(self.timeout, self.config.connect(self.tls.clone()));
        let (client, mut connection) = match connecting.await {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => return ended(listened, self.reason(&error)),
            Err(_) => return ended(listened, "connecting timed out".to_owned()),
        };
        let sql = format!("LISTEN \"{}\"", self.channel);
        let mut listening = pin!(client.batch_execute(&sql));
        loop {
            let event = poll_fn(|cx| {
                if Pin::new(&mut *stop).poll(cx).is_ready() {
                    return Poll::Ready(Event::Stop);
                }
                if !listened {
                    if let Poll::Ready(result) = listening.as_mut().poll(cx) {
                        return Poll::Ready(Event::Listened(result));
                    }
                }
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(AsyncMessage::Notification(notification)))) => {
                        Poll::Ready(Event::Notified(notification.payload() != &*self.origin))
                    }
                    Poll::Ready(Some(Ok(_))) => Poll::Ready(Event::Other),
                    Poll::Ready(Some(Err(error))) => Poll::Ready(Event::Lost(Some(error))),
                    Poll::Ready(None) => Poll::Ready(Event::Lost(None)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match event {
                Event::Stop => return None,
                Event::Listened(Ok(())) => {
                    listened = true;
                    *backoff = FIRST_BACKOFF;
                    if std::mem::take(warned) {
                        tracing::info!(
                            target: "tower_intercom::inbox",
                            "the inbox listens on Postgres again: notifications stored by \
                             other processes wake the workers at once"
                        );
                    }
                    // Whatever was stored while nobody listened.
                    self.wake.notify_waiters();
                }
                Event::Listened(Err(error)) => return ended(listened, self.reason(&error)),
                Event::Notified(from_elsewhere) => {
                    if from_elsewhere {
                        self.wake.notify_waiters();
                    }
                }
                Event::Other => {}
                Event::Lost(error) => {
                    let reason = error.map_or_else(
                        || "the server closed it".to_owned(),
                        |error| self.reason(&error),
                    );
                    return ended(listened, reason);
                }
            }
        }
    }

    /// What went wrong, in the words of the store's errors (the server's
    /// message, the I/O error and its causes; never the URL).
    fn reason(&self, error: &tokio_postgres::Error) -> String {
        let error = store_error(error, self.timeout);
        std::error::Error::source(&error).map_or_else(|| error.to_string(), ToString::to_string)
    }
}
