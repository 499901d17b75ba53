//! The error of every store: the idempotency layer's and the inbox's.

use std::{error::Error as StdError, fmt, time::Duration};

use crate::box_error::BoxError;

/// A store failed, did not answer in time, or is full: the one error of
/// every store of the crate (the idempotency layer's and the inbox's), and
/// of yours when you implement one.
///
/// Its `Display` names the failure and its [`source`](StdError::source) is
/// the store's own error; neither contains a connection URL or password.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_intercom::{StoreError, StoreErrorKind};
///
/// let error = StoreError::timed_out(Duration::from_secs(2));
/// assert_eq!(error.kind(), StoreErrorKind::TimedOut);
/// assert_eq!(error.to_string(), "the store did not answer within 2s");
/// ```
pub struct StoreError {
    kind: StoreErrorKind,
    timeout: Option<Duration>,
    source: Option<BoxError>,
}

/// The kind of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store answered with an error or could not be reached. The
    /// inbox receiver answers 503; the idempotency layer follows its
    /// failure policy.
    Unavailable,
    /// The store did not answer in time. As `Unavailable`.
    TimedOut,
    /// The store's queue of pending writes is full. The inbox receiver
    /// answers 429 (see its `overload_status`).
    Overloaded,
}

impl StoreError {
    /// The store answered with an error or could not be reached.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            timeout: None,
            source: Some(source.into()),
        }
    }

    /// The store did not answer within `timeout`.
    pub fn timed_out(timeout: Duration) -> Self {
        Self {
            kind: StoreErrorKind::TimedOut,
            timeout: Some(timeout),
            source: None,
        }
    }

    /// The store cannot take more work now.
    pub fn overloaded() -> Self {
        Self {
            kind: StoreErrorKind::Overloaded,
            timeout: None,
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("timeout", &self.timeout)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.timeout, &self.source) {
            (StoreErrorKind::TimedOut, Some(timeout), _) => {
                write!(f, "the store did not answer within {timeout:?}")
            }
            (StoreErrorKind::Overloaded, _, _) => f.write_str("the store is overloaded"),
            (_, _, Some(source)) => write!(f, "the store is unavailable: {source}"),
            _ => f.write_str("the store is unavailable"),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_tell_their_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = StoreError::unavailable(io);
        assert_eq!(error.kind(), StoreErrorKind::Unavailable);
        assert_eq!(error.to_string(), "the store is unavailable: refused");
        assert!(error.source().is_some());
        assert_eq!(StoreError::overloaded().kind(), StoreErrorKind::Overloaded);
    }
}
