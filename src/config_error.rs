//! Mistakes in how a layer, store or worker is configured, apart from the
//! secrets themselves ([`SecretError`](crate::SecretError)) and from what
//! happens to requests ([`Rejection`](crate::rejection::Rejection)).

use std::{error::Error, fmt};

/// A configuration the crate refuses, found when a layer or service is
/// built, never while serving.
///
/// # Example
///
/// ```
/// use tower_intercom::{ConfigErrorKind, VerifyIntercomWebhookLayer, WebhookSecret};
///
/// // Secrets from a list that may turn out empty (say, read from a file):
/// let secrets: Vec<WebhookSecret> = Vec::new();
/// let err = VerifyIntercomWebhookLayer::try_with_secrets(secrets).unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::NoSecrets);
/// assert_eq!(err.to_string(), "no webhook secret given: at least one is required");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    /// The environment variable the setting was read from.
    var: Option<String>,
}

/// What was wrong with a configuration; see [`ConfigError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A list of webhook secrets had none in it.
    NoSecrets,
    /// A replay window longer than the deduplication's memory of ids: a
    /// delivery replayed after its id was forgotten, but still inside the
    /// window, would be processed again.
    ReplayWindowTooLong,
    /// A replay window the deduplication's capacity cannot hold at the
    /// delivery rate (capacity < window × rate): once full it forgets ids,
    /// the least recently used first, and a delivery replayed inside the
    /// window after its id was forgotten would be processed again.
    ReplayWindowExceedsCapacity,
    /// An Intercom API base that is neither `us`, `eu`, `au` nor an
    /// `http(s)://` URL with a host and without a user, password or query.
    InvalidApiUrl,
    /// A plain `http://` API base to a host that is not loopback: the
    /// access token would cross the network unencrypted.
    InsecureApiUrl,
    /// An `Intercom-Version` that is not 1 to 32 letters, digits, dots,
    /// dashes or underscores.
    InvalidIntercomVersion,
    /// The TLS client could not be set up.
    Tls,
    /// An access token's issued-at time that is not an RFC 3339 time
    /// (`2025-01-31T09:00:00Z`), or is more than a day in the future.
    InvalidIssuedAt,
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind) -> Self {
        Self { kind, var: None }
    }

    /// The same error, for a setting read from the environment variable
    /// `name`.
    #[cfg(feature = "client")]
    pub(crate) fn in_var(mut self, name: &str) -> Self {
        self.var = Some(name.to_owned());
        self
    }

    /// What was wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The environment variable the setting was read from, when it was
    /// (`ApiBase::from_env`, `TokenAge::from_env` with the `client`
    /// feature). The message names it too, never its value.
    pub fn var(&self) -> Option<&str> {
        self.var.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(var) = &self.var {
            write!(f, "environment variable `{var}`: ")?;
        }
        f.write_str(match self.kind {
            ConfigErrorKind::NoSecrets => "no webhook secret given: at least one is required",
            ConfigErrorKind::ReplayWindowTooLong => {
                "the replay window is longer than the deduplication remembers ids: \
                 shorten the window or remember ids longer"
            }
            ConfigErrorKind::ReplayWindowExceedsCapacity => {
                "the deduplication holds fewer ids than arrive during the replay window at \
                 the delivery rate (it needs capacity >= window x rate): raise its capacity, \
                 shorten the window, or state the real rate"
            }
            ConfigErrorKind::InvalidApiUrl => {
                "the Intercom API base is not `us`, `eu`, `au` or an https:// URL \
                 with a host (and no user, password or query)"
            }
            ConfigErrorKind::InsecureApiUrl => {
                "the Intercom API base is a plain http:// URL to a host that is not \
                 loopback: the access token would cross the network unencrypted; use https://"
            }
            ConfigErrorKind::InvalidIntercomVersion => {
                "an Intercom-Version is 1 to 32 letters, digits, dots, dashes or underscores"
            }
            ConfigErrorKind::Tls => "the TLS client could not be set up",
            ConfigErrorKind::InvalidIssuedAt => {
                "the access token's issued-at time is not an RFC 3339 time with its offset \
                 (such as 2025-01-31T09:00:00Z), or is more than a day in the future"
            }
        })
    }
}

impl Error for ConfigError {}
