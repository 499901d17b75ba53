//! Where the client takes the access token of each request from.

use std::sync::Arc;

use super::Error;
use crate::access_token::AccessToken;
#[cfg(feature = "reload")]
use crate::reload::SecretFile;

/// Gives the access token to send: a fixed [`AccessToken`], or a source
/// that can change it while the client runs (a file reloaded after a
/// rotation).
///
/// The client calls [`token`](Self::token) once per request, in
/// [`Service::call`](tower_service::Service::call), and keeps what it got
/// for that request, its rate-limit retries included: a request in flight
/// finishes on the token it started with, whatever the source gives
/// afterwards. So `token` must be cheap and must not block: read a value
/// the source keeps current (an `ArcSwap`, a `RwLock` read), never a file
/// or the network. [`AccessToken`] clones are a reference count.
///
/// When Intercom refuses a token (401, or a `token_*` error code), the
/// client calls [`token_rejected`](Self::token_rejected) with the token
/// that request used, before it returns the error. A source that reloads
/// can take that as a hint to look for a new token; the default does
/// nothing.
///
/// # Example
///
/// A fixed token is a source; a source of your own implements `token`:
///
/// ```
/// use std::sync::{Arc, RwLock};
///
/// use tower_intercom::{client::TokenSource, AccessToken};
///
/// #[derive(Clone)]
/// struct Swappable(Arc<RwLock<AccessToken>>);
///
/// impl TokenSource for Swappable {
///     fn token(&self) -> AccessToken {
///         match self.0.read() {
///             Ok(token) => token.clone(),
///             Err(poisoned) => poisoned.into_inner().clone(),
///         }
///     }
/// }
///
/// let first: AccessToken = "dG9rOmZpcnN0".parse()?;
/// let source = Swappable(Arc::new(RwLock::new(first.clone())));
/// assert_eq!(source.token().expose_secret(), "dG9rOmZpcnN0");
/// assert_eq!(first.token().expose_secret(), "dG9rOmZpcnN0");
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// The token for a request about to be sent.
    fn token(&self) -> AccessToken;

    /// Intercom refused `token` (the one a request was sent with): `error`
    /// says how ([`ErrorKind::Unauthorized`](super::ErrorKind::Unauthorized)
    /// with Intercom's codes). Called once per refused answer; the default
    /// does nothing.
    fn token_rejected(&self, token: &AccessToken, error: &Error) {
        let _ = (token, error);
    }
}

impl TokenSource for AccessToken {
    fn token(&self) -> AccessToken {
        self.clone()
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn token(&self) -> AccessToken {
        (**self).token()
    }

    fn token_rejected(&self, token: &AccessToken, error: &Error) {
        (**self).token_rejected(token, error);
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    fn token(&self) -> AccessToken {
        (**self).token()
    }

    fn token_rejected(&self, token: &AccessToken, error: &Error) {
        (**self).token_rejected(token, error);
    }
}

/// The API client's token from a file: each request takes the token in use
/// once, and a token Intercom refuses makes the watcher read the file at
/// once ([`wake`](SecretFile::wake)), so that a token already rewritten
/// there replaces it without waiting for the interval.
#[cfg(feature = "reload")]
impl TokenSource for SecretFile<AccessToken> {
    fn token(&self) -> AccessToken {
        AccessToken::clone(&self.current())
    }

    fn token_rejected(&self, _token: &AccessToken, _error: &Error) {
        self.wake();
    }
}
