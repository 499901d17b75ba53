//! The in-memory store: one process, bounded, entries expire.

use std::{fmt, time::Duration};

use moka::{
    ops::compute::{CompResult, Op},
    policy::{EvictionPolicy, Expiry},
    sync::Cache,
};

use super::store::{Claim, ClaimOutcome, IdempotencyStore, StoreFuture};

/// How many ids a [`MemoryStore::new`] holds: 50 000.
///
/// An entry takes about 600 bytes with Intercom's ids (measured as the
/// process's resident memory), so a full store takes about 30 MB. Past the
/// capacity the least recently used ids are forgotten first, and a late
/// duplicate of a forgotten id is processed again: 50 000 covers Intercom's
/// 2-hour redelivery window at about 7 notifications a second. A
/// [`ReplayWindow`](crate::webhook::ReplayWindow) must fit in it too
/// (capacity ≥ window × delivery rate): 50 000 holds 5,000 s at 10
/// notifications a second.
pub const DEFAULT_CAPACITY: u64 = 50_000;

/// An [`IdempotencyStore`] in this process's memory, the default.
///
/// Bounded (least recently used ids are evicted first) and each entry
/// expires after the TTL the layer gives it. Clones share the same entries.
///
/// It deduplicates deliveries that reach *this* process only, and forgets
/// everything on restart. When the receiver runs on several machines (or
/// several processes), use `RedisStore` (feature `redis`) so they share
/// what was handled.
///
/// # Example
///
/// ```
/// use tower_intercom::idempotency::{IdempotencyLayer, MemoryStore};
///
/// let layer = IdempotencyLayer::new(MemoryStore::with_capacity(10_000));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Processing { token: u64 },
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    ttl: Duration,
}

/// Each entry lives for the TTL it was written with; an update (claimed →
/// done) restarts it with the new TTL.
struct EntryTtl;

impl Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl MemoryStore {
    /// A store holding up to [`DEFAULT_CAPACITY`] ids.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A store holding up to `capacity` ids.
    pub fn with_capacity(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            // Not TinyLFU: a new claim must always be admitted.
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(EntryTtl)
            .build();
        Self { cache }
    }

    fn claim_now(&self, claim: &Claim, ttl: Duration) -> ClaimOutcome {
        let result =
            self.cache
                .entry_by_ref(claim.id())
                .and_compute_with(|existing| match existing {
                    Some(_) => Op::Nop,
                    None => Op::Put(Entry {
                        state: State::Processing {
                            token: claim.token(),
                        },
                        ttl,
                    }),
                });
        match result {
            CompResult::Inserted(_) => ClaimOutcome::Claimed,
            CompResult::Unchanged(entry) if entry.value().state == State::Done => {
                ClaimOutcome::Done
            }
            _ => ClaimOutcome::InProgress,
        }
    }

    fn release_now(&self, claim: &Claim) {
        let ours = State::Processing {
            token: claim.token(),
        };
        self.cache
            .entry_by_ref(claim.id())
            .and_compute_with(|existing| match existing {
                Some(entry) if entry.value().state == ours => Op::Remove,
                _ => Op::Nop,
            });
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.cache.policy().max_capacity())
            .finish()
    }
}

impl IdempotencyStore for MemoryStore {
    fn claim(&self, claim: &Claim, ttl: Duration) -> StoreFuture<ClaimOutcome> {
        let outcome = self.claim_now(claim, ttl);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn complete(&self, claim: &Claim, ttl: Duration) -> StoreFuture<()> {
        let done = Entry {
            state: State::Done,
            ttl,
        };
        self.cache.insert(claim.id().to_owned(), done);
        Box::pin(std::future::ready(Ok(())))
    }

    fn release(&self, claim: &Claim) -> StoreFuture<()> {
        self.release_now(claim);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The capacity it was built with: past it, the least recently used
    /// ids are forgotten.
    fn capacity(&self) -> Option<u64> {
        self.cache.policy().max_capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    async fn claim(store: &MemoryStore, claim: &Claim) -> ClaimOutcome {
        store.claim(claim, TTL).await.unwrap()
    }

    #[tokio::test]
    async fn claim_then_done() {
        let store = MemoryStore::new();
        let first = Claim::new("notif_1");
        assert_eq!(claim(&store, &first).await, ClaimOutcome::Claimed);
        assert_eq!(
            claim(&store, &Claim::new("notif_1")).await,
            ClaimOutcome::InProgress
        );
        store.complete(&first, TTL).await.unwrap();
        assert_eq!(
            claim(&store, &Claim::new("notif_1")).await,
            ClaimOutcome::Done
        );
        assert_eq!(
            claim(&store, &Claim::new("notif_2")).await,
            ClaimOutcome::Claimed
        );
    }

    #[tokio::test]
    async fn release_only_removes_its_own_claim() {
        let store = MemoryStore::new();
        let first = Claim::new("notif_1");
        assert_eq!(claim(&store, &first).await, ClaimOutcome::Claimed);
        // Another delivery's release (its claim expired and ours took over)
        // leaves our claim alone.
        store.release(&Claim::new("notif_1")).await.unwrap();
        assert_eq!(
            claim(&store, &Claim::new("notif_1")).await,
            ClaimOutcome::InProgress
        );
        store.release(&first).await.unwrap();
        assert_eq!(
            claim(&store, &Claim::new("notif_1")).await,
            ClaimOutcome::Claimed
        );
    }

    #[tokio::test]
    async fn release_keeps_done() {
        let store = MemoryStore::new();
        let first = Claim::new("notif_1");
        claim(&store, &first).await;
        store.complete(&first, TTL).await.unwrap();
        store.release(&first).await.unwrap();
        assert_eq!(
            claim(&store, &Claim::new("notif_1")).await,
            ClaimOutcome::Done
        );
    }

    #[test]
    fn concurrent_claims_have_one_winner() {
        let store = MemoryStore::new();
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = &store;
                    scope.spawn(move || {
                        store.claim_now(&Claim::new("notif_race"), TTL) == ClaimOutcome::Claimed
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| usize::from(handle.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
    }
}
