//! How old the access token is: Intercom's tokens never expire, so they
//! are rotated on a schedule, and nothing in the API says when one was
//! made.

use std::{
    env, fmt,
    future::Future,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use super::measure;
use crate::config_error::{ConfigError, ConfigErrorKind};

/// The environment variable the examples read the token's issued-at time
/// from: an RFC 3339 time such as `2025-01-31T09:00:00Z` (see
/// [`TokenAge::from_env`]).
pub const ISSUED_AT_VAR: &str = "INTERCOM_ACCESS_TOKEN_ISSUED_AT";

/// An issued-at time further than this in the future is refused as a
/// mistake; closer, it is clock skew and the age is 0.
const MAX_FUTURE: Duration = Duration::from_secs(24 * 3600);

/// The shortest period [`TokenAge::record_every`] takes.
const MIN_RECORD_PERIOD: Duration = Duration::from_secs(1);

/// How old the access token in use is, from when it was issued: the
/// `intercom.client.token.age` gauge (feature `metrics`) and the quarterly
/// rotation Intercom's security guidance asks for.
///
/// No API tells a token's age, so the time comes from you: the time it was
/// generated in the Developer Hub ([`from_env`](Self::from_env) reads
/// `INTERCOM_ACCESS_TOKEN_ISSUED_AT`, RFC 3339), or the modification time
/// of the file it is read from: [`of_file`](Self::of_file) follows a
/// reloaded `reload::SecretFile<AccessToken>` (feature `reload`), and
/// [`set_issued_at`](Self::set_issued_at) takes a [`SystemTime`] from
/// anything else. Clones share the time, so the clone that records the
/// gauge sees what was set.
///
/// The age is computed when it is asked for, so the gauge is as current as
/// its last [`record`](Self::record): call it where metrics are read (the
/// axum example does in its `/metrics` handler) or spawn
/// [`record_every`](Self::record_every). While the time is unknown nothing
/// is recorded, and the gauge is absent rather than 0.
///
/// `deploy/prometheus/alerts.yml` raises `IntercomAccessTokenRotationDue`
/// past [`ROTATE_AFTER`](Self::ROTATE_AFTER) (90 days).
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// use tower_intercom::client::TokenAge;
///
/// let age = TokenAge::from_rfc3339("2025-01-31T09:00:00+01:00")?;
/// assert!(age.rotation_due()); // long past 90 days
///
/// // A token file rewritten an hour ago: its modification time.
/// age.set_issued_at(SystemTime::now() - Duration::from_secs(3600));
/// let hours = age.age().unwrap().as_secs() / 3600;
/// assert_eq!(hours, 1);
/// assert!(!age.rotation_due());
/// age.record(); // the gauge, in seconds
/// # Ok::<(), tower_intercom::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct TokenAge {
    issued_at: Arc<RwLock<IssuedAt>>,
}

/// Where a [`TokenAge`] takes the issued-at time from.
#[derive(Clone, Default)]
enum IssuedAt {
    #[default]
    Unknown,
    At(SystemTime),
    /// The modification time of the file the token in use was read from,
    /// as of each read.
    #[cfg(feature = "reload")]
    File(crate::reload::SecretFile<crate::access_token::AccessToken>),
}

impl TokenAge {
    /// The age past which a token is due for rotation: 90 days, a quarter.
    pub const ROTATE_AFTER: Duration = Duration::from_secs(90 * 24 * 3600);

    /// An age not known yet (until [`set_issued_at`](Self::set_issued_at)).
    pub fn unknown() -> Self {
        Self::default()
    }

    /// The age of the token a [`SecretFile`](crate::reload::SecretFile)
    /// holds (feature `reload`): the modification time of the file the
    /// token in use was read from, so the age starts again each time the
    /// watcher swaps a rotated token in, with no call to
    /// [`set_issued_at`](Self::set_issued_at).
    ///
    /// ```
    /// use tower_intercom::{client::TokenAge, reload::SecretFile, AccessToken};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("access-token");
    /// # std::fs::write(&path, "dG9rOmZpcnN0\n")?;
    /// let token = SecretFile::<AccessToken>::open(&path).await?;
    /// let age = TokenAge::of_file(&token);
    /// assert_eq!(age.issued_at(), token.modified());
    /// assert!(!age.rotation_due());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With each new token checked by `GET /me` before it is used
    /// ([`IntercomClientLayer::check_token`](super::IntercomClientLayer::check_token)),
    /// and the client that sends it:
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::Layer;
    /// use tower_intercom::{
    ///     client::{https_client, ApiBase, IntercomClientLayer, TokenAge, API_URL_VAR},
    ///     reload::SecretFile,
    ///     AccessToken,
    /// };
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let base = ApiBase::from_env(API_URL_VAR)?;
    /// let http = https_client::<Full<Bytes>>()?;
    /// let check = {
    ///     let (http, base) = (http.clone(), base.clone());
    ///     move |candidate: &AccessToken| {
    ///         let layer = IntercomClientLayer::new(candidate.clone()).api_base(base.clone());
    ///         let me = layer.check_token(http.clone(), candidate);
    ///         async move { me.await.map(|_admin| ()) }
    ///     }
    /// };
    /// let token = SecretFile::<AccessToken>::builder("/var/run/secrets/intercom/access-token")
    ///     .check(check)
    ///     .open()
    ///     .await?;
    /// let age = TokenAge::of_file(&token);
    /// let intercom = IntercomClientLayer::new(token).api_base(base).layer(http);
    /// # let _ = (age, intercom);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "reload")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
    pub fn of_file(file: &crate::reload::SecretFile<crate::access_token::AccessToken>) -> Self {
        Self {
            issued_at: Arc::new(RwLock::new(IssuedAt::File(file.clone()))),
        }
    }

    /// The age of a token issued at `issued_at`.
    pub fn since(issued_at: SystemTime) -> Self {
        let age = Self::default();
        age.set_issued_at(issued_at);
        age
    }

    /// The age of a token issued at the RFC 3339 time `text`, such as
    /// `2025-01-31T09:00:00Z` or `2025-01-31T10:00:00+01:00` (surrounding
    /// whitespace is ignored).
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidIssuedAt`] for text that is not such a
    /// time (a date alone, a time without its offset), or a time more than
    /// a day in the future.
    pub fn from_rfc3339(text: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::new(ConfigErrorKind::InvalidIssuedAt);
        let timestamp: jiff::Timestamp = text.trim().parse().map_err(|_| invalid())?;
        let issued_at = SystemTime::try_from(timestamp).map_err(|_| invalid())?;
        let latest = SystemTime::now()
            .checked_add(MAX_FUTURE)
            .ok_or_else(invalid)?;
        if issued_at > latest {
            return Err(invalid());
        }
        Ok(Self::since(issued_at))
    }

    /// The age of a token issued at the RFC 3339 time in the environment
    /// variable `name` (usually [`ISSUED_AT_VAR`]), see
    /// [`from_rfc3339`](Self::from_rfc3339); [`unknown`](Self::unknown)
    /// when it is unset or empty.
    ///
    /// # Errors
    ///
    /// As [`from_rfc3339`](Self::from_rfc3339), and
    /// [`ConfigErrorKind::InvalidIssuedAt`] for a value that is not
    /// unicode; the error names the variable ([`ConfigError::var`]).
    pub fn from_env(name: &str) -> Result<Self, ConfigError> {
        match env::var(name) {
            Ok(value) if value.trim().is_empty() => Ok(Self::unknown()),
            Ok(value) => Self::from_rfc3339(&value).map_err(|err| err.in_var(name)),
            Err(env::VarError::NotPresent) => Ok(Self::unknown()),
            Err(env::VarError::NotUnicode(_)) => {
                Err(ConfigError::new(ConfigErrorKind::InvalidIssuedAt).in_var(name))
            }
        }
    }

    /// From now on, the token in use was issued at `issued_at`: a new token
    /// was swapped in, and this is its file's modification time (or the
    /// time it was generated). Every clone sees it.
    pub fn set_issued_at(&self, issued_at: SystemTime) {
        *self
            .issued_at
            .write()
            .unwrap_or_else(PoisonError::into_inner) = IssuedAt::At(issued_at);
    }

    /// When the token in use was issued, if known.
    pub fn issued_at(&self) -> Option<SystemTime> {
        match &*self
            .issued_at
            .read()
            .unwrap_or_else(PoisonError::into_inner)
        {
            IssuedAt::Unknown => None,
            IssuedAt::At(at) => Some(*at),
            #[cfg(feature = "reload")]
            IssuedAt::File(file) => file.modified(),
        }
    }

    /// How old the token in use is now, if known; zero for an issued-at
    /// time in the future (clocks out of step).
    pub fn age(&self) -> Option<Duration> {
        let issued_at = self.issued_at()?;
        Some(
            SystemTime::now()
                .duration_since(issued_at)
                .unwrap_or_default(),
        )
    }

    /// Whether the token is older than [`ROTATE_AFTER`](Self::ROTATE_AFTER)
    /// (`false` while its age is unknown).
    pub fn rotation_due(&self) -> bool {
        self.age().is_some_and(|age| age > Self::ROTATE_AFTER)
    }

    /// Sets the `intercom.client.token.age` gauge to the age now, in
    /// seconds (feature `metrics`; nothing while the age is unknown).
    pub fn record(&self) {
        if let Some(age) = self.age() {
            measure::token_age(age);
        }
    }

    /// Records the gauge now and then every `period` (at least a second),
    /// forever: spawn it (`tokio::spawn(age.clone().record_every(…))`) when
    /// nothing calls [`record`](Self::record) as metrics are read. Needs
    /// Tokio's timer.
    pub fn record_every(self, period: Duration) -> impl Future<Output = ()> + Send + 'static {
        let period = period.max(MIN_RECORD_PERIOD);
        async move {
            loop {
                self.record();
                tokio::time::sleep(period).await;
            }
        }
    }
}

impl fmt::Debug for TokenAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issued_at = self
            .issued_at()
            .and_then(|at| jiff::Timestamp::try_from(at).ok());
        match issued_at {
            Some(at) => write!(f, "TokenAge(issued at {at})"),
            None => f.write_str("TokenAge(unknown)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn reads_rfc3339_times_with_their_offset() {
        let utc = TokenAge::from_rfc3339("2025-01-31T09:00:00Z").unwrap();
        let paris = TokenAge::from_rfc3339(" 2025-01-31T10:00:00+01:00\n").unwrap();
        assert_eq!(utc.issued_at(), paris.issued_at());
        let unix = utc
            .issued_at()
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(unix.as_secs(), 1_738_314_000);
        assert_eq!(
            format!("{utc:?}"),
            "TokenAge(issued at 2025-01-31T09:00:00Z)"
        );
        assert!(utc.rotation_due());
        assert_eq!(format!("{:?}", TokenAge::unknown()), "TokenAge(unknown)");
    }

    #[test]
    fn refuses_what_is_not_a_time_in_the_past() {
        let tomorrow_and_more = jiff::Timestamp::try_from(SystemTime::now() + 2 * DAY)
            .unwrap()
            .to_string();
        for bad in [
            "",
            "2025-01-31",
            "2025-01-31T09:00:00",
            "31/01/2025 09:00",
            "2025-13-01T00:00:00Z",
            "yesterday",
            &tomorrow_and_more,
        ] {
            assert_eq!(
                TokenAge::from_rfc3339(bad).unwrap_err().kind(),
                ConfigErrorKind::InvalidIssuedAt,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_env_errors_name_the_variable() {
        let name = "TOWER_INTERCOM_TEST_ISSUED_AT_BAD";
        env::set_var(name, "last week");
        let err = TokenAge::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.kind(), ConfigErrorKind::InvalidIssuedAt);
        assert_eq!(err.var(), Some(name));
        assert!(
            err.to_string().starts_with(&format!(
                "environment variable `{name}`: the access token's"
            )),
            "{err}"
        );
        assert_eq!(TokenAge::from_env(name).unwrap().age(), None, "unset");
    }

    #[test]
    fn the_age_follows_the_clock_and_the_last_time_set() {
        let age = TokenAge::unknown();
        assert_eq!(age.age(), None);
        assert!(!age.rotation_due());
        let clone = age.clone();
        clone.set_issued_at(SystemTime::now() - 91 * DAY);
        assert!(age.age().unwrap() >= 91 * DAY);
        assert!(age.rotation_due());
        // Skewed clocks: issued a minute from now is age 0.
        age.set_issued_at(SystemTime::now() + Duration::from_secs(60));
        assert_eq!(clone.age(), Some(Duration::ZERO));
        assert!(!clone.rotation_due());
    }
}
