//! A handler's failure that no retry can fix.

use std::{error::Error, fmt};

use crate::box_error::BoxError;

/// A handler error that retrying cannot fix: the notification is dead at
/// once, with this error as its reason, instead of being retried with
/// backoff until [`max_attempts`](super::Worker::max_attempts).
///
/// Return it from a handler (or anywhere in the source chain of the error
/// it returns) when the notification itself is the problem: its body does
/// not parse as the type you read it into (the bytes never change, so no
/// retry will parse them; [`ReceivedNotification::json`](super::ReceivedNotification::json)
/// returns its errors as `Permanent` for that reason), or it names
/// something your side will never accept. The dead notification is listed
/// by [`Inbox::dead`](super::Inbox::dead) with this error as its
/// [`last_error`](super::DeadNotification::last_error); once your code is
/// fixed, [`Inbox::requeue`](super::Inbox::requeue) processes it again.
///
/// Any other error is a failed attempt, retried after its backoff: a
/// service that is down, a timeout, a conflict.
///
/// # Example
///
/// ```
/// use tower_intercom::inbox::{handler_fn, Permanent, ReceivedNotification};
///
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
///
/// let handler = handler_fn(|received: ReceivedNotification| async move {
///     // A body that does not parse is dead at once: `json` says Permanent.
///     let notification: tower_intercom::notification::Notification = received.json()?;
///     if notification.app_id.as_deref() != Some("a86dr8yl") {
///         // Never ours: no retry changes that.
///         return Err(Permanent::new("a notification for another workspace").into());
///     }
///     // A failure here (the CRM is down) is retried with backoff.
///     Ok::<_, BoxError>(())
/// });
/// # let _ = handler;
/// ```
pub struct Permanent {
    error: BoxError,
}

impl Permanent {
    /// Marks `error` permanent. Its `Display` is the dead notification's
    /// reason.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            error: error.into(),
        }
    }

    /// The error marked permanent.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The error marked permanent, owned.
    pub fn into_inner(self) -> BoxError {
        self.error
    }

    /// Whether `error`, or an error in its source chain, is a
    /// [`Permanent`]. A chain is followed 64 errors deep at most, so one
    /// that loops back on itself ends.
    pub(super) fn marks(error: &(dyn Error + 'static)) -> bool {
        let mut next = Some(error);
        for _ in 0..64 {
            match next {
                Some(error) if error.is::<Self>() => return true,
                Some(error) => next = error.source(),
                None => return false,
            }
        }
        false
    }
}

impl fmt::Debug for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Permanent").field(&self.error).finish()
    }
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl Error for Permanent {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Permanent);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "while syncing: {}", self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn found_at_the_top_or_in_the_source_chain() {
        let permanent: BoxError = Permanent::new("no such account").into();
        assert!(Permanent::marks(&*permanent));
        assert_eq!(permanent.to_string(), "no such account");
        let wrapped: BoxError = Wrapper(Permanent::new(std::io::Error::other("gone"))).into();
        assert!(Permanent::marks(&*wrapped));
        let transient: BoxError = std::io::Error::other("timed out").into();
        assert!(!Permanent::marks(&*transient));
        let json = serde_json::from_str::<u32>("x").unwrap_err();
        assert!(
            !Permanent::marks(&json),
            "a JSON error of the handler's own"
        );
    }
}
