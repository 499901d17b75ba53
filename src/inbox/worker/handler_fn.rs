//! Handlers from async functions.

use std::{
    fmt,
    future::Future,
    task::{Context, Poll},
};

use tower_service::Service;

use crate::inbox::ReceivedNotification;

/// A handler from an async function: `handler_fn(|notification| async
/// move { …; Ok::<_, MyError>(()) })`.
///
/// # Example
///
/// ```
/// use tower_intercom::inbox::{handler_fn, ReceivedNotification};
///
/// let handler = handler_fn(|notification: ReceivedNotification| async move {
///     println!("{} {}", notification.topic(), notification.id());
///     Ok::<_, std::io::Error>(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F>(f: F) -> HandlerFn<F> {
    HandlerFn { f }
}

/// A handler made from an async function by [`handler_fn`].
#[derive(Clone, Copy)]
pub struct HandlerFn<F> {
    f: F,
}

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerFn").finish_non_exhaustive()
    }
}

impl<F, Fut, E> Service<ReceivedNotification> for HandlerFn<F>
where
    F: FnMut(ReceivedNotification) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Response = ();
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, notification: ReceivedNotification) -> Self::Future {
        (self.f)(notification)
    }
}
