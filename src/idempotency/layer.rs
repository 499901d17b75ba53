use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use super::{Idempotency, IdempotencyStore, MemoryStore};
use crate::rejection::{JsonRejection, RejectionResponse};

/// How long a claim lasts by default: 30 seconds.
///
/// A claim stops duplicates while the first delivery is processed. It must
/// outlast your handler (Intercom gives up on a response after 5 seconds),
/// and expire before Intercom's retry (about a minute later): if the
/// receiver crashes mid-handler, nothing releases the claim, and the retry
/// must find it gone.
pub const DEFAULT_PROCESSING_TTL: Duration = Duration::from_secs(30);

/// How long a processed id is remembered by default: 24 hours.
///
/// Intercom retries a failed delivery after about a minute and drops
/// notifications delayed more than 2 hours, so a day covers every
/// redelivery with a wide margin.
pub const DEFAULT_DONE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest TTL the layer gives a store: 365 days. Longer TTLs are
/// clamped to it when the layer is configured.
///
/// Intercom never redelivers a notification that late, and every store can
/// hold it (Redis refuses a `PX` beyond its own range, which used to turn a
/// `Duration::MAX` into a store error on Redis only).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The shortest TTL the layer gives a store: 1 millisecond (Redis's `PX`
/// unit). Shorter TTLs, zero included, are raised to it.
pub const MIN_TTL: Duration = Duration::from_millis(1);

/// A TTL every store can hold, the same for all of them.
fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.clamp(MIN_TTL, MAX_TTL)
}

/// What the layer does when the store fails (unreachable, error, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Process the request anyway, without deduplication: a notification
    /// may be processed twice while the store is down, none is lost. A
    /// `warn` event is logged for each such request. The default.
    #[default]
    FailOpen,
    /// Answer 503 without calling the inner service; Intercom retries the
    /// delivery later (once, after about a minute). No notification is
    /// processed twice, but one that fails its retry too is lost.
    FailClosed,
}

pub(crate) struct Config<St: ?Sized> {
    pub(crate) processing_ttl: Duration,
    pub(crate) done_ttl: Duration,
    pub(crate) on_store_error: FailurePolicy,
    pub(crate) store: Arc<St>,
}

impl<St: ?Sized> Clone for Config<St> {
    fn clone(&self) -> Self {
        Self {
            processing_ttl: self.processing_ttl,
            done_ttl: self.done_ttl,
            on_store_error: self.on_store_error,
            store: self.store.clone(),
        }
    }
}

impl<St: ?Sized> fmt::Debug for Config<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("processing_ttl", &self.processing_ttl)
            .field("done_ttl", &self.done_ttl)
            .field("on_store_error", &self.on_store_error)
            .field("store", &std::any::type_name::<St>())
            .finish()
    }
}

/// Layer that applies [`Idempotency`]: each Intercom notification is
/// processed once, however many times it is delivered.
///
/// Place it *inside* [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer).
/// See the [module documentation](super) for the behaviour and an example.
#[must_use]
pub struct IdempotencyLayer<St = MemoryStore, R = JsonRejection> {
    config: Config<St>,
    on_rejection: R,
}

impl<St, R: Clone> Clone for IdempotencyLayer<St, R> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl IdempotencyLayer {
    /// A layer with a fresh [`MemoryStore`] and the default settings.
    pub fn in_memory() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl Default for IdempotencyLayer {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// A layer that records notifications in `store`, with
    /// [`DEFAULT_PROCESSING_TTL`], [`DEFAULT_DONE_TTL`] and
    /// [`FailurePolicy::FailOpen`].
    pub fn new(store: St) -> Self {
        Self {
            config: Config {
                processing_ttl: DEFAULT_PROCESSING_TTL,
                done_ttl: DEFAULT_DONE_TTL,
                on_store_error: FailurePolicy::default(),
                store: Arc::new(store),
            },
            on_rejection: JsonRejection,
        }
    }
}

impl<St, R> IdempotencyLayer<St, R> {
    /// Sets how long a claim lasts (default [`DEFAULT_PROCESSING_TTL`]),
    /// clamped to [`MIN_TTL`]..=[`MAX_TTL`] so that every store behaves
    /// the same.
    pub fn processing_ttl(mut self, ttl: Duration) -> Self {
        self.config.processing_ttl = clamp_ttl(ttl);
        self
    }

    /// Sets how long a processed id is remembered (default
    /// [`DEFAULT_DONE_TTL`]), clamped to [`MIN_TTL`]..=[`MAX_TTL`] so that
    /// every store behaves the same.
    pub fn done_ttl(mut self, ttl: Duration) -> Self {
        self.config.done_ttl = clamp_ttl(ttl);
        self
    }

    /// Sets what happens when the store fails (default
    /// [`FailurePolicy::FailOpen`]).
    pub fn on_store_error(mut self, policy: FailurePolicy) -> Self {
        self.config.on_store_error = policy;
        self
    }

    /// Sets the response sent for the layer's refusals (409 while another
    /// delivery is processed, 503 when the store fails closed, 500 when the
    /// layer is misplaced), as
    /// [`VerifyIntercomWebhookLayer::on_rejection`](crate::VerifyIntercomWebhookLayer::on_rejection)
    /// does for the verifying layer; the same [`RejectionResponse`] can
    /// serve both. Default [`JsonRejection`].
    pub fn on_rejection<R2: RejectionResponse>(self, on_rejection: R2) -> IdempotencyLayer<St, R2> {
        IdempotencyLayer {
            config: self.config,
            on_rejection,
        }
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.config.store
    }
}

/// The layer remembers a processed id for its [`done_ttl`](IdempotencyLayer::done_ttl),
/// and at most as many ids as its store's [`capacity`](IdempotencyStore::capacity).
impl<St: IdempotencyStore, R> crate::webhook::DedupeMemory for IdempotencyLayer<St, R> {
    fn dedupe_memory(&self) -> Duration {
        self.config.done_ttl
    }

    fn dedupe_capacity(&self) -> Option<u64> {
        self.config.store.capacity()
    }
}

impl<St, R> fmt::Debug for IdempotencyLayer<St, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("config", &self.config)
            .field("on_rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, St, R: Clone> Layer<S> for IdempotencyLayer<St, R> {
    type Service = Idempotency<S, St, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency {
            inner,
            config: Arc::new(self.config.clone()),
            on_rejection: self.on_rejection.clone(),
        }
    }
}
