//! The watcher: re-reads a secret file on an interval and swaps its value
//! in when the content changed, is stable, parses and passes the check.

use std::{
    path::PathBuf,
    sync::{Arc, Weak},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    format::Reloadable,
    in_use::Shared,
    read::{read, Content, Digest},
    Check, ReloadError, ReloadErrorKind,
};

/// The longest pause between the two reads that must agree before a
/// changed file is taken (at most half the interval).
const MAX_SETTLE: Duration = Duration::from_millis(250);

/// A failure already reported, so that each is logged and counted once.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// The file could not be read, or was too large.
    Read(ReloadErrorKind),
    /// This content was refused, by the parser or the check.
    Content(Digest),
}

/// The task that keeps a [`SecretFile`](super::SecretFile) up to date.
pub(crate) struct Watcher<T> {
    path: PathBuf,
    interval: Duration,
    check: Option<Box<dyn Check<T>>>,
    check_timeout: Duration,
    /// Gone once every handle is dropped: the watcher then stops.
    shared: Weak<Shared<T>>,
    /// The content of the value in use.
    in_use: Digest,
    reported: Option<Failure>,
}

impl<T: Reloadable> Watcher<T> {
    pub(crate) fn new(
        path: PathBuf,
        interval: Duration,
        check: Option<Box<dyn Check<T>>>,
        check_timeout: Duration,
    ) -> Self {
        Self {
            path,
            interval,
            check,
            check_timeout,
            shared: Weak::new(),
            in_use: Digest::default(),
            reported: None,
        }
    }

    /// Reads the file, parses and checks its value.
    pub(crate) async fn load(&self) -> Result<(T, Content), ReloadError> {
        let content = read(&self.path).await?;
        let value = self.accept(&content).await?;
        Ok((value, content))
    }

    /// The value loaded first is in use in `shared`.
    pub(crate) fn started(&mut self, shared: &Arc<Shared<T>>, in_use: Digest) {
        self.shared = Arc::downgrade(shared);
        self.in_use = in_use;
    }

    /// Reads the file every interval, and when woken, until every handle
    /// is dropped.
    pub(crate) async fn run(mut self, wake: Arc<Notify>) {
        let mut next = Instant::now() + self.interval;
        loop {
            let woken = tokio::time::timeout_at(next, wake.notified()).await.is_ok();
            let Some(shared) = self.shared.upgrade() else {
                tracing::debug!(
                    path = %self.path.display(),
                    "the secret file is no longer used; its watcher stops"
                );
                return;
            };
            self.tick(&shared).await;
            drop(shared);
            // Every interval; a read on waking leaves the schedule as it
            // is, and one that ran past the next tick delays it.
            if !woken {
                next += self.interval;
            }
            let now = Instant::now();
            if next <= now {
                next = now + self.interval;
            }
        }
    }

    /// One look at the file.
    async fn tick(&mut self, shared: &Shared<T>) {
        let first = match read(&self.path).await {
            Ok(content) => content,
            Err(err) => return self.failed(Failure::Read(err.kind()), &err),
        };
        if first.digest == self.in_use {
            // Back to (or still at) the value in use: a failure after this
            // is news again.
            self.reported = None;
            return;
        }
        // Changed. A writer may be caught mid-write (an in-place write
        // truncates, then writes): take the content only once two reads a
        // moment apart agree.
        tokio::time::sleep((self.interval / 2).min(MAX_SETTLE)).await;
        let content = match read(&self.path).await {
            Ok(content) => content,
            Err(err) => return self.failed(Failure::Read(err.kind()), &err),
        };
        if content.digest != first.digest {
            tracing::debug!(
                path = %self.path.display(),
                "the secret file is being written; reading it again on the next tick"
            );
            return;
        }
        match self.accept(&content).await {
            Ok(value) => {
                shared.store(value, content.modified);
                self.in_use = content.digest;
                self.reported = None;
                tracing::info!(
                    path = %self.path.display(),
                    secret = T::LABEL,
                    "reloaded the secret file: the new value is in use"
                );
                crate::measure::secret_reloaded(T::LABEL);
            }
            Err(err) => self.failed(Failure::Content(content.digest), &err),
        }
    }

    /// The value in `content`, if it parses and passes the check.
    async fn accept(&self, content: &Content) -> Result<T, ReloadError> {
        let value = T::parse(&content.bytes)
            .map_err(|(kind, line)| ReloadError::new(kind, &self.path).at_line(line))?;
        if let Some(check) = &self.check {
            match tokio::time::timeout(self.check_timeout, check.check(&value)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    return Err(
                        ReloadError::new(ReloadErrorKind::CheckFailed, &self.path).with_source(err)
                    )
                }
                Err(_elapsed) => {
                    return Err(ReloadError::timed_out(&self.path, self.check_timeout))
                }
            }
        }
        value.prepare();
        Ok(value)
    }

    /// Reports a failure at `warn` and counts it, once per distinct
    /// failure; the value in use stays.
    fn failed(&mut self, failure: Failure, err: &ReloadError) {
        if self.reported.as_ref() == Some(&failure) {
            tracing::debug!(
                path = %self.path.display(),
                secret = T::LABEL,
                error = %err,
                "the secret file is still refused; the previous value stays in use"
            );
            return;
        }
        self.reported = Some(failure);
        tracing::warn!(
            path = %self.path.display(),
            secret = T::LABEL,
            error = %err,
            "cannot reload the secret file: the previous value stays in use \
             (reported once until the file changes)"
        );
        crate::measure::secret_reload_failed(T::LABEL, err.error_type());
    }
}
