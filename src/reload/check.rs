//! The check a new value must pass before it replaces the one in use.

use std::{future::Future, pin::Pin};

/// The error a [`Check`] fails with. Its `Display` is logged: it must not
/// contain the secret.
pub type CheckError = Box<dyn std::error::Error + Send + Sync>;

/// The future a [`Check`] returns.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), CheckError>> + Send + 'static>>;

/// A check a new value must pass before a [`SecretFile`](super::SecretFile)
/// uses it: for an access token, a `GET /me` that must answer an admin.
///
/// Implemented for every closure `Fn(&T) -> impl Future<Output =
/// Result<(), E>>` whose future owns what it uses (clone the value into
/// it: every secret type is a cheap reference-counted clone). The check
/// runs on the value parsed from the file, at start-up and on each change,
/// with a timeout ([`SecretFileBuilder::check_timeout`]); while it runs,
/// and if it fails or times out, the value in use stays.
///
/// A check that fails for a reason other than the value (the API cannot be
/// reached) keeps the old value too, and is tried again on the next tick;
/// a check that would rather let a value in when it cannot tell should
/// answer `Ok` for those errors.
///
/// [`SecretFileBuilder::check_timeout`]: super::SecretFileBuilder::check_timeout
///
/// # Example
///
/// ```
/// use tower_intercom::{
///     reload::{Check, CheckError},
///     AccessToken,
/// };
///
/// fn looks_like_an_intercom_token() -> impl Check<AccessToken> {
///     |token: &AccessToken| {
///         let token = token.clone();
///         async move {
///             // An HTTP client would send `GET /me` with the token here.
///             if token.expose_secret().starts_with("dG9r") {
///                 Ok::<(), CheckError>(())
///             } else {
///                 Err("not an Intercom access token (they begin with `dG9r`)".into())
///             }
///         }
///     }
/// }
/// # let _ = looks_like_an_intercom_token();
/// ```
pub trait Check<T>: Send + Sync + 'static {
    /// Whether `value` may replace the value in use.
    fn check(&self, value: &T) -> CheckFuture;
}

impl<T, F, Fut, E> Check<T> for F
where
    F: Fn(&T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<CheckError>,
{
    fn check(&self, value: &T) -> CheckFuture {
        let future = self(value);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}
