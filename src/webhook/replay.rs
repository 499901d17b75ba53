//! An opt-in maximum age for signed notifications.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{ConfigError, ConfigErrorKind};

/// Something that remembers notification ids for a while, so that a
/// redelivery is recognised: the idempotency layer (its `done_ttl`) or an
/// inbox (its retention of done ids).
///
/// A [`ReplayWindow`] is built from one, and may not be longer than its
/// memory.
pub trait DedupeMemory {
    /// How long an id is remembered after it was processed.
    fn dedupe_memory(&self) -> Duration;
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
/// may not be longer than the deduplication's memory.
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
///     idempotency::IdempotencyLayer, webhook::ReplayWindow, ConfigErrorKind,
///     VerifyIntercomWebhookLayer, WebhookSecret,
/// };
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let dedupe = IdempotencyLayer::in_memory(); // remembers ids for 24 hours
///
/// let window = ReplayWindow::new(Duration::from_secs(6 * 3600), &dedupe)?;
/// let layer = VerifyIntercomWebhookLayer::new(secret).replay_window(window);
/// # let _ = layer;
///
/// // Longer than the dedupe memory: refused when configured.
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
    /// Refuses notifications older than `max_age`, alongside `dedupe`.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::ReplayWindowTooLong`] when `max_age` is longer
    /// than `dedupe` remembers ids.
    pub fn new(max_age: Duration, dedupe: &impl DedupeMemory) -> Result<Self, ConfigError> {
        if max_age > dedupe.dedupe_memory() {
            return Err(ConfigError::new(ConfigErrorKind::ReplayWindowTooLong));
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
