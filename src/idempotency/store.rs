//! Where the layer records which notifications are being processed or done.

use std::{
    collections::hash_map::RandomState,
    future::Future,
    hash::BuildHasher,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use crate::store_error::StoreError;

/// The future returned by [`IdempotencyStore`]'s methods.
///
/// It is `'static`: a store clones what it needs (a connection handle, the
/// key) into the future, so the layer can run it after the request is gone,
/// for instance to release a claim when the client disconnects.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A store of notification ids for [`IdempotencyLayer`](super::IdempotencyLayer).
///
/// Each id goes through *claimed* (a delivery is being processed; expires
/// after the processing TTL, so a crashed receiver does not block Intercom's
/// retry) and *done* (processed; expires after the done TTL). The layer
/// calls [`claim`](Self::claim) before the inner service, then
/// [`complete`](Self::complete) when it answered 2xx, or
/// [`release`](Self::release) when it failed.
///
/// Implemented by [`MemoryStore`](super::MemoryStore) and, with the `redis`
/// feature, `RedisStore`; and by `Arc<S>` and `Box<S>` of any store, so an
/// `Arc<dyn IdempotencyStore>` can pick one at run time.
///
/// # Implementing a store
///
/// `claim` must be atomic: of two concurrent claims of one id, exactly one
/// gets [`ClaimOutcome::Claimed`]. `release` must remove the entry only
/// while it is still this [`Claim`] (same [`token`](Claim::token)): the
/// claim may have expired and been taken by another delivery meanwhile.
/// Errors and timeouts are reported as [`StoreError`]; the layer's
/// [`FailurePolicy`](super::FailurePolicy) decides what then happens.
///
/// # Evolution
///
/// The trait can grow without breaking your store: a method added later
/// comes with a default implementation built on these three, and the
/// forwarding impls for `Arc<S>` and `Box<S>` forward it.
/// [`ClaimOutcome`] and [`StoreErrorKind`](crate::StoreErrorKind) are `#[non_exhaustive]`: match
/// them with a wildcard arm.
///
/// # Example
///
/// Choosing the store at run time:
///
/// ```
/// use std::sync::Arc;
/// use tower_intercom::idempotency::{IdempotencyLayer, IdempotencyStore, MemoryStore};
///
/// let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
/// let layer = IdempotencyLayer::new(store);
/// # let _ = layer;
/// ```
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `claim.id()` for `ttl` unless it is already claimed or done.
    fn claim(&self, claim: &Claim, ttl: Duration) -> StoreFuture<ClaimOutcome>;

    /// Marks `claim.id()` as done for `ttl`, whoever holds the claim.
    fn complete(&self, claim: &Claim, ttl: Duration) -> StoreFuture<()>;

    /// Removes `claim.id()` if it is still claimed by `claim` (same token);
    /// does nothing otherwise.
    fn release(&self, claim: &Claim) -> StoreFuture<()>;

    /// How many ids the store holds at most: once full, a bounded store
    /// forgets ids (the least recently used first) before their TTL ends.
    /// `None`, the default, for a store that keeps each id for its whole
    /// TTL. [`MemoryStore`](super::MemoryStore) returns its capacity; a
    /// [`ReplayWindow`](crate::webhook::ReplayWindow) built from the layer
    /// is checked against it.
    fn capacity(&self) -> Option<u64> {
        None
    }
}

impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Arc<S> {
    fn claim(&self, claim: &Claim, ttl: Duration) -> StoreFuture<ClaimOutcome> {
        (**self).claim(claim, ttl)
    }

    fn complete(&self, claim: &Claim, ttl: Duration) -> StoreFuture<()> {
        (**self).complete(claim, ttl)
    }

    fn release(&self, claim: &Claim) -> StoreFuture<()> {
        (**self).release(claim)
    }
    fn capacity(&self) -> Option<u64> {
        (**self).capacity()
    }
}

impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Box<S> {
    fn claim(&self, claim: &Claim, ttl: Duration) -> StoreFuture<ClaimOutcome> {
        (**self).claim(claim, ttl)
    }

    fn complete(&self, claim: &Claim, ttl: Duration) -> StoreFuture<()> {
        (**self).complete(claim, ttl)
    }

    fn release(&self, claim: &Claim) -> StoreFuture<()> {
        (**self).release(claim)
    }
    fn capacity(&self) -> Option<u64> {
        (**self).capacity()
    }
}

/// One delivery's claim on a notification id: the id, and a token that
/// tells this delivery's claim from any other.
///
/// # Example
///
/// ```
/// use tower_intercom::idempotency::Claim;
///
/// let first = Claim::new("notif_1");
/// let second = Claim::new("notif_1");
/// assert_eq!(first.id(), second.id());
/// assert_ne!(first.token(), second.token());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    id: Box<str>,
    token: u64,
}

impl Claim {
    /// A claim on `id` with a fresh token, unique within this process and
    /// random across processes.
    pub fn new(id: impl Into<Box<str>>) -> Self {
        Self {
            id: id.into(),
            token: next_token(),
        }
    }

    /// The notification id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token of this claim.
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// A per-process random start, then a counter: tokens never repeat within
/// a process, and two processes sharing a store collide with negligible
/// probability. Not a secret: the store is trusted.
fn next_token() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    start.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClaimOutcome {
    /// The id was free and is now claimed by this delivery: process it.
    Claimed,
    /// Another delivery of the id is being processed: the layer answers 409
    /// and Intercom retries later.
    InProgress,
    /// The id was processed already: the layer answers 200 without calling
    /// the inner service.
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<u64> =
            (0..1000).map(|_| Claim::new("notif").token()).collect();
        assert_eq!(tokens.len(), 1000);
    }
}
