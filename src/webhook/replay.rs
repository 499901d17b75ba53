//! An opt-in maximum age for signed notifications.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::config_error::{ConfigError, ConfigErrorKind};

/// Something that remembers notification ids for a while, so that a
/// redelivery is recognised: the idempotency layer (its `done_ttl`, and its
/// store's capacity) or an inbox (its retention of done ids).
///
/// A [`ReplayWindow`] is built from one, and may not outlast its memory:
/// neither in time, nor in number of ids at the delivery rate.
pub trait DedupeMemory {
    /// How long an id is remembered after it was processed.
    fn dedupe_memory(&self) -> Duration;

    /// How many ids it holds at most, however recent: once full, a bounded
    /// memory forgets ids (the least recently used first) before their
    /// time. `None`, the default, when only time bounds it.
    fn dedupe_capacity(&self) -> Option<u64> {
        None
    }
}

/// A peak rate of notifications (distinct ids), against which a
/// [`ReplayWindow`] checks a bounded dedupe memory: the memory must hold
/// every id that arrives during one window.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_intercom::webhook::DeliveryRate;
///
/// let rate = DeliveryRate::per_minute(120);
/// // A 6-hour window at 2 notifications a second: 43,200 ids.
/// assert_eq!(rate.count_in(Duration::from_secs(6 * 3600)), 43_200);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryRate {
    count: u64,
    per: Duration,
}

/// The delivery rate [`ReplayWindow::new`] assumes: 10 notifications a
/// second (36,000 an hour). State yours with
/// [`ReplayWindow::with_delivery_rate`].
pub const DEFAULT_DELIVERY_RATE: DeliveryRate = DeliveryRate::per_second(10);

impl DeliveryRate {
    /// `count` notifications a second.
    pub const fn per_second(count: u64) -> Self {
        Self {
            count,
            per: Duration::from_secs(1),
        }
    }

    /// `count` notifications a minute.
    pub const fn per_minute(count: u64) -> Self {
        Self {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `count` notifications an hour.
    pub const fn per_hour(count: u64) -> Self {
        Self {
            count,
            per: Duration::from_secs(3600),
        }
    }

    /// How many notifications arrive in `window` at this rate, rounded up
    /// (`u64::MAX` when that is more). A rate of 0 gives 0.
    pub fn count_in(self, window: Duration) -> u64 {
        let per = self.per.as_nanos();
        window
            .as_nanos()
            .checked_mul(u128::from(self.count))
            .map_or(u64::MAX, |total| {
                u64::try_from(total.div_ceil(per)).unwrap_or(u64::MAX)
            })
    }
}

impl Default for DeliveryRate {
    fn default() -> Self {
        DEFAULT_DELIVERY_RATE
    }
}

/// The reading of the current time, replaceable in tests.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Refuses notifications older than a maximum age (opt-in; see
/// [`VerifyIntercomWebhookLayer::replay_window`](crate::VerifyIntercomWebhookLayer::replay_window)).
///
/// Intercom's signature covers only the body, so a captured delivery
/// verifies forever. With a window, a verified notification whose signed
/// `first_sent_at` (or, without it, `created_at`) is older than the window
/// is refused ([`RejectionKind::Expired`](crate::rejection::RejectionKind::Expired),
/// 401), and so is one with neither timestamp. Inside the window, a replay
/// is absorbed by its id, by the deduplication the window was built from:
/// together they give end-to-end replay protection. That is why the window
/// may not outlast the deduplication's memory of ids:
///
/// - in time: the window may not be longer than the memory
///   ([`ConfigErrorKind::ReplayWindowTooLong`]);
/// - in number, for a memory with a capacity (the idempotency layer's
///   `MemoryStore`): once full it forgets the least recently used ids,
///   however recent, and a replay of a forgotten id inside the window
///   would be processed again. Every id that arrives during one window
///   must fit: **capacity ≥ window × delivery rate**
///   ([`ConfigErrorKind::ReplayWindowExceedsCapacity`] otherwise). The
///   rate is the peak rate of notifications (distinct ids) you expect,
///   stated with [`with_delivery_rate`](Self::with_delivery_rate);
///   [`new`](Self::new) assumes [`DEFAULT_DELIVERY_RATE`], 10 a second.
///   So the default `MemoryStore` (50,000 ids) holds a window of 5,000 s
///   at 10 a second, or of 6 hours at 2 a second (43,200 ids); a 6-hour
///   window at 10 a second needs 216,000 ids (about 130 MB at some 600
///   bytes an id). The inbox (SQLite or Redis) and the idempotency
///   layer's `RedisStore` have no capacity: only time bounds them.
///
/// **Notifications only.** The window applies to
/// [`SignatureScheme::HubSignature`](crate::SignatureScheme::HubSignature)
/// requests. Canvas Kit requests and installation health checks
/// ([`SignatureScheme::BodySignature`](crate::SignatureScheme::BodySignature))
/// carry no `first_sent_at` or `created_at`, so a layer with
/// `.scheme(SignatureScheme::BodySignature)` ignores its window: the
/// notification route's layer can be reused for the health check as it is.
///
/// **Off by default, and keep it generous:** Intercom retries failed
/// deliveries after about a minute, throttles a subscription for up to two
/// hours after 429s, and queues notifications during its own outages. A
/// window shorter than those delays refuses real deliveries, which are then
/// lost. A few hours, inside a 24-hour dedupe memory, is the intended use.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_intercom::{
///     idempotency::IdempotencyLayer,
///     webhook::{DeliveryRate, ReplayWindow},
///     ConfigErrorKind, VerifyIntercomWebhookLayer, WebhookSecret,
/// };
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// // Remembers ids for 24 hours, 50,000 at most.
/// let dedupe = IdempotencyLayer::in_memory();
///
/// // At up to 2 notifications a second, 6 hours bring 43,200 ids: they fit.
/// let six_hours = Duration::from_secs(6 * 3600);
/// let window =
///     ReplayWindow::with_delivery_rate(six_hours, DeliveryRate::per_second(2), &dedupe)?;
/// let layer = VerifyIntercomWebhookLayer::new(secret).replay_window(window);
/// # let _ = layer;
///
/// // At the default 10 a second they would be 216,000: refused.
/// let err = ReplayWindow::new(six_hours, &dedupe).unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::ReplayWindowExceedsCapacity);
///
/// // Longer than the dedupe memory: refused.
/// let err = ReplayWindow::new(Duration::from_secs(48 * 3600), &dedupe).unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::ReplayWindowTooLong);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ReplayWindow {
    max_age: Duration,
    clock: Clock,
}

impl ReplayWindow {
    /// Refuses notifications older than `max_age`, alongside `dedupe`,
    /// for up to [`DEFAULT_DELIVERY_RATE`] (10 notifications a second);
    /// see [`with_delivery_rate`](Self::with_delivery_rate).
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::ReplayWindowTooLong`] when `max_age` is longer
    /// than `dedupe` remembers ids;
    /// [`ConfigErrorKind::ReplayWindowExceedsCapacity`] when `dedupe` has
    /// a capacity smaller than the ids of one window at that rate.
    pub fn new(max_age: Duration, dedupe: &impl DedupeMemory) -> Result<Self, ConfigError> {
        Self::with_delivery_rate(max_age, DEFAULT_DELIVERY_RATE, dedupe)
    }

    /// Refuses notifications older than `max_age`, alongside `dedupe`,
    /// which receives up to `rate` notifications: a bounded `dedupe` must
    /// hold `rate.count_in(max_age)` ids.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::ReplayWindowTooLong`] when `max_age` is longer
    /// than `dedupe` remembers ids;
    /// [`ConfigErrorKind::ReplayWindowExceedsCapacity`] when `dedupe` has
    /// a capacity smaller than `rate.count_in(max_age)`.
    pub fn with_delivery_rate(
        max_age: Duration,
        rate: DeliveryRate,
        dedupe: &impl DedupeMemory,
    ) -> Result<Self, ConfigError> {
        if max_age > dedupe.dedupe_memory() {
            return Err(ConfigError::new(ConfigErrorKind::ReplayWindowTooLong));
        }
        if let Some(capacity) = dedupe.dedupe_capacity() {
            if rate.count_in(max_age) > capacity {
                return Err(ConfigError::new(
                    ConfigErrorKind::ReplayWindowExceedsCapacity,
                ));
            }
        }
        Ok(Self {
            max_age,
            clock: Arc::new(SystemTime::now),
        })
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The maximum age.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Whether a notification sent at `sent` (Unix seconds) is too old, or
    /// undated.
    pub(crate) fn is_expired(&self, sent: Option<i64>) -> bool {
        let Some(sent) = sent else {
            return true;
        };
        let now = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        now.saturating_sub(sent) > max_age
    }

    /// The signed time a notification was first sent: `first_sent_at`, or
    /// `created_at`. `None` when the body has neither (or is not JSON).
    pub(crate) fn sent_at(body: &[u8]) -> Option<i64> {
        #[derive(serde::Deserialize)]
        struct Times {
            #[serde(
                default,
                deserialize_with = "crate::notification::envelope::lenient::timestamp"
            )]
            first_sent_at: Option<i64>,
            #[serde(
                default,
                deserialize_with = "crate::notification::envelope::lenient::timestamp"
            )]
            created_at: Option<i64>,
        }
        let times: Times = serde_json::from_slice(body).ok()?;
        times.first_sent_at.or(times.created_at)
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Remembers(Duration);

    impl DedupeMemory for Remembers {
        fn dedupe_memory(&self) -> Duration {
            self.0
        }
    }

    struct Holds(u64);

    impl DedupeMemory for Holds {
        fn dedupe_memory(&self) -> Duration {
            Duration::MAX
        }

        fn dedupe_capacity(&self) -> Option<u64> {
            Some(self.0)
        }
    }

    #[test]
    fn rates_count_the_ids_of_a_window_rounded_up() {
        let hour = Duration::from_secs(3600);
        assert_eq!(DeliveryRate::per_second(10).count_in(hour), 36_000);
        assert_eq!(DeliveryRate::per_minute(1).count_in(hour), 60);
        assert_eq!(
            DeliveryRate::per_hour(1).count_in(Duration::from_secs(1)),
            1
        );
        assert_eq!(DeliveryRate::per_hour(7).count_in(Duration::ZERO), 0);
        assert_eq!(DeliveryRate::per_second(0).count_in(Duration::MAX), 0);
        assert_eq!(
            DeliveryRate::per_second(u64::MAX).count_in(Duration::MAX),
            u64::MAX
        );
        assert_eq!(DeliveryRate::per_hour(u64::MAX).count_in(hour), u64::MAX);
        assert_eq!(DeliveryRate::default(), DEFAULT_DELIVERY_RATE);
    }

    #[test]
    fn a_bounded_memory_must_hold_one_window_of_ids() {
        let minute = Duration::from_secs(60);
        let ten_a_second = DeliveryRate::per_second(10);
        assert!(ReplayWindow::with_delivery_rate(minute, ten_a_second, &Holds(600)).is_ok());
        let err = ReplayWindow::with_delivery_rate(minute, ten_a_second, &Holds(599)).unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::ReplayWindowExceedsCapacity);
        // new assumes the default rate.
        assert!(ReplayWindow::new(minute, &Holds(600)).is_ok());
        assert!(ReplayWindow::new(minute, &Holds(599)).is_err());
        // Extreme values refuse, never panic.
        for capacity in [0, 1, u64::MAX] {
            let _ = ReplayWindow::with_delivery_rate(
                Duration::MAX,
                DeliveryRate::per_second(u64::MAX),
                &Holds(capacity),
            );
        }
        // Without a capacity, only time counts.
        assert!(ReplayWindow::with_delivery_rate(
            Duration::MAX,
            DeliveryRate::per_second(u64::MAX),
            &Remembers(Duration::MAX)
        )
        .is_ok());
    }

    #[test]
    fn ages_are_measured_from_first_sent_at_then_created_at() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_010_000);
        let window = ReplayWindow::new(Duration::from_secs(3600), &Remembers(Duration::MAX))
            .unwrap()
            .with_clock(move || now);
        let sent = |body: &str| ReplayWindow::sent_at(body.as_bytes());
        assert_eq!(sent(r#"{"first_sent_at":5,"created_at":4}"#), Some(5));
        assert_eq!(sent(r#"{"created_at":4}"#), Some(4));
        assert_eq!(sent(r#"{"created_at":"4"}"#), Some(4));
        assert_eq!(sent(r#"{"id":"x"}"#), None);
        assert_eq!(sent("not json"), None);
        assert!(!window.is_expired(Some(1_700_010_000 - 3600)));
        assert!(window.is_expired(Some(1_700_010_000 - 3601)));
        assert!(!window.is_expired(Some(1_800_000_000)), "future times pass");
        assert!(window.is_expired(None), "undated is refused");
        assert!(window.is_expired(Some(i64::MIN)));
    }
}
