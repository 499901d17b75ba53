//! [`SecretFile`]: the value in use, read synchronously, and the builder
//! that loads it and starts its watcher.

use std::{
    fmt,
    marker::PhantomData,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::Notify;

use super::{
    format::Reloadable, in_use::Shared, watch::Watcher, Check, ReloadError, ReloadErrorKind,
    DEFAULT_CHECK_TIMEOUT, DEFAULT_INTERVAL, MAX_INTERVAL, MIN_INTERVAL,
};
use crate::webhook::{secrets::WebhookSecrets, WebhookSecretSource};

/// A secret read from a file and reloaded when the file changes, without a
/// restart: a [`WebhookSecrets`](crate::WebhookSecrets) set, an
/// [`IdentitySecret`](crate::identity::IdentitySecret) or an
/// [`AccessToken`](crate::AccessToken).
///
/// [`current`](Self::current) is the value in use: a clone of an `Arc`,
/// cheap and synchronous, never waiting for the watcher. Take it once per
/// request and finish the request on it; the next request gets the new
/// value once it has been swapped in.
///
/// A watcher task re-reads the file every [interval](SecretFileBuilder::interval)
/// and swaps the value when the content changed, parses, is stable across
/// two reads and passes the [check](SecretFileBuilder::check); otherwise
/// the value in use stays (see the [module documentation](super)). The
/// watcher stops once every clone of the `SecretFile` is dropped.
///
/// Cloning is cheap; clones share the value and the watcher. `Debug` shows
/// the path and times, never the secret.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use tower_intercom::{reload::SecretFile, AccessToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("access-token");
/// # std::fs::write(&path, "dG9rOmZpcnN0\n")?;
/// # std::env::set_var("INTERCOM_ACCESS_TOKEN_FILE", &path);
/// let path = std::env::var_os("INTERCOM_ACCESS_TOKEN_FILE").ok_or("not set")?;
/// let token = SecretFile::<AccessToken>::builder(path)
///     .interval(Duration::from_secs(10))
///     .open()
///     .await?;
///
/// // For each request:
/// let header = token.current().authorization_header();
/// assert!(header.is_sensitive());
/// println!("{token:?}"); // the path and times, no token
/// # Ok(())
/// # }
/// ```
pub struct SecretFile<T> {
    shared: Arc<Shared<T>>,
    /// Wakes the watcher; apart from `shared`, which the watcher must not
    /// keep alive while it waits.
    wake: Arc<Notify>,
}

impl<T: Reloadable> SecretFile<T> {
    /// Reads the secret in `path` and watches it with the defaults: every
    /// [`DEFAULT_INTERVAL`](super::DEFAULT_INTERVAL), no check.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or its content is refused (see
    /// [`SecretFileBuilder::open`]).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, ReloadError> {
        Self::builder(path).open().await
    }

    /// A builder, to set the interval or a check.
    pub fn builder(path: impl Into<PathBuf>) -> SecretFileBuilder<T> {
        SecretFileBuilder {
            path: path.into(),
            interval: DEFAULT_INTERVAL,
            check: None,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            _value: PhantomData,
        }
    }
}

impl<T> SecretFile<T> {
    /// The value in use: the last one that was read, parsed and checked.
    ///
    /// A clone of an `Arc`: it never blocks, and the value stays valid for
    /// as long as it is held, even once a newer one is in use.
    pub fn current(&self) -> Arc<T> {
        self.shared.load().value.clone()
    }

    /// The modification time of the file the value in use was read from
    /// (through symlinks: for a Kubernetes secret, the file in the
    /// timestamped directory), if the platform tells it.
    ///
    /// For an access token, its age: Intercom's API tells no token's age,
    /// and the file was written when the token was issued or rotated.
    pub fn modified(&self) -> Option<SystemTime> {
        self.shared.load().modified
    }

    /// When the value in use was loaded: at [`open`](Self::open), or when
    /// the watcher last swapped a new value in.
    pub fn loaded_at(&self) -> SystemTime {
        self.shared.load().loaded_at
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How often the file is read, after clamping.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// Asks the watcher to read the file now rather than at the next tick,
    /// and returns at once; the new value, if any, is in use once the
    /// watcher has read it twice and checked it, as on a tick.
    ///
    /// For when something says the value in use is stale: Intercom refused
    /// the access token (the API client's `token_rejected`), or an
    /// operator signals the process after writing the file. Calls while a
    /// read is under way ask for one more read after it, not one each.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

impl<T> Clone for SecretFile<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for SecretFile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded = self.shared.load();
        f.debug_struct("SecretFile")
            .field("path", &self.shared.path)
            .field("interval", &self.shared.interval)
            .field("value", &loaded.value)
            .field("modified", &loaded.modified)
            .field("loaded_at", &loaded.loaded_at)
            .finish()
    }
}

impl WebhookSecretSource for SecretFile<WebhookSecrets> {
    fn secrets(&self) -> Arc<WebhookSecrets> {
        self.current()
    }
}

/// Builds a [`SecretFile`]: the interval, an optional check, then
/// [`open`](Self::open).
#[must_use]
pub struct SecretFileBuilder<T> {
    path: PathBuf,
    interval: Duration,
    check: Option<Box<dyn Check<T>>>,
    check_timeout: Duration,
    _value: PhantomData<fn() -> T>,
}

impl<T: Reloadable> SecretFileBuilder<T> {
    /// How often the file is read (default
    /// [`DEFAULT_INTERVAL`](super::DEFAULT_INTERVAL), 10 s), clamped to
    /// [`MIN_INTERVAL`](super::MIN_INTERVAL)..=[`MAX_INTERVAL`](super::MAX_INTERVAL).
    ///
    /// A change is in use within about one interval (two when the file was
    /// caught mid-write). Each read opens the file, reads at most a few
    /// KiB and hashes them: even a short interval costs little.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        self
    }

    /// A check every new value must pass before it is used, the first one
    /// included (see [`Check`]).
    pub fn check(mut self, check: impl Check<T>) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// How long the check may take (default
    /// [`DEFAULT_CHECK_TIMEOUT`](super::DEFAULT_CHECK_TIMEOUT), 30 s),
    /// clamped to [`MIN_INTERVAL`](super::MIN_INTERVAL)..=[`MAX_INTERVAL`](super::MAX_INTERVAL).
    /// A check that takes longer fails.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout.clamp(MIN_INTERVAL, MAX_INTERVAL);
        self
    }

    /// Reads the file, parses and checks its value, and starts the watcher
    /// on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ReloadErrorKind::NoRuntime`] outside a Tokio runtime; otherwise
    /// what was wrong with the file or its value: a service should not
    /// start without its secret.
    pub async fn open(self) -> Result<SecretFile<T>, ReloadError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(ReloadError::new(ReloadErrorKind::NoRuntime, &self.path));
        };
        let mut watcher = Watcher::new(
            self.path.clone(),
            self.interval,
            self.check,
            self.check_timeout,
        );
        let (value, content) = watcher.load().await?;
        let shared = Arc::new(Shared::new(
            self.path,
            self.interval,
            value,
            content.modified,
        ));
        watcher.started(&shared, content.digest);
        crate::measure::describe();
        tracing::info!(
            path = %shared.path.display(),
            secret = T::LABEL,
            interval = ?shared.interval,
            "loaded the secret file; watching it for changes"
        );
        let wake = Arc::new(Notify::new());
        runtime.spawn(watcher.run(wake.clone()));
        Ok(SecretFile { shared, wake })
    }
}

impl<T> fmt::Debug for SecretFileBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFileBuilder")
            .field("path", &self.path)
            .field("interval", &self.interval)
            .field("check", &self.check.is_some())
            .field("check_timeout", &self.check_timeout)
            .finish()
    }
}
