//! The retry policy: how many attempts a notification gets, and how long
//! it waits after each failed one.

use std::time::Duration;

use super::{DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, DEFAULT_MAX_ATTEMPTS, MAX_LEASE};

/// What becomes of a notification whose attempt failed: retried after an
/// exponential backoff with full jitter, or dead once its attempts are
/// used up or the handler's error is permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RetryPolicy {
    /// Attempts before the notification is dead (at least 1).
    max_attempts: u32,
    /// The ceiling of the first backoff (at most [`MAX_LEASE`]).
    backoff_base: Duration,
    /// The largest ceiling of a backoff (from `backoff_base` to
    /// [`MAX_LEASE`]).
    backoff_cap: Duration,
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterFailure {
    /// Dead at once: the handler said no retry can help (a
    /// [`Permanent`](crate::inbox::Permanent) error).
    DeadPermanent,
    /// Dead: this was the last attempt.
    DeadAttemptsUsedUp,
    /// Pending again once this backoff has passed.
    RetryAfter(Duration),
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
        }
    }
}

impl RetryPolicy {
    /// With `max_attempts` attempts, taken as at least 1.
    pub(super) fn with_max_attempts(self, max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..self
        }
    }

    /// With backoffs from `base` up to `cap`: both taken as at most
    /// [`MAX_LEASE`], and `cap` as at least `base`.
    pub(super) fn with_backoff(self, base: Duration, cap: Duration) -> Self {
        let backoff_base = base.min(MAX_LEASE);
        Self {
            backoff_base,
            backoff_cap: cap.clamp(backoff_base, MAX_LEASE),
            ..self
        }
    }

    /// Attempts before the notification is dead.
    pub(super) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// What the failure of attempt `attempt` (the first is 1) leads to;
    /// `permanent` when the handler's error is (or wraps) a `Permanent`.
    pub(super) fn after_failure(&self, attempt: u32, permanent: bool) -> AfterFailure {
        if permanent {
            AfterFailure::DeadPermanent
        } else if attempt >= self.max_attempts {
            AfterFailure::DeadAttemptsUsedUp
        } else {
            AfterFailure::RetryAfter(self.backoff(attempt))
        }
    }

    /// Exponential backoff with full jitter: uniform in
    /// `[0, min(cap, base × 2^(attempt − 1))]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(63);
        let ceiling = self
            .backoff_base
            .checked_mul(1u32 << exponent.min(31))
            .unwrap_or(self.backoff_cap)
            .min(self.backoff_cap);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=ceiling_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy whose backoffs go from `base` to `cap`, taken as they are
    /// (not bounded by [`MAX_LEASE`]), to reach the arithmetic's limits.
    fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
        RetryPolicy {
            max_attempts: u32::MAX,
            backoff_base: base,
            backoff_cap: cap,
        }
        .backoff(attempt)
    }

    #[test]
    fn backoff_is_bounded_by_the_exponential_and_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for attempt in [0, 1, 2, 3, 4, 10, 40, 64, u32::MAX] {
            for _ in 0..200 {
                let ceiling =
                    (base * 2u32.saturating_pow(attempt.saturating_sub(1).min(31))).min(cap);
                assert!(backoff(base, cap, attempt) <= ceiling, "attempt {attempt}");
            }
        }
        let huge = Duration::from_secs(u64::MAX / 2);
        assert!(backoff(huge, Duration::MAX, 50) <= Duration::MAX);
    }

    #[test]
    fn backoff_is_jittered() {
        let delays: std::collections::HashSet<Duration> = (0..100)
            .map(|_| backoff(Duration::from_secs(1), Duration::from_secs(60), 5))
            .collect();
        assert!(delays.len() > 10);
    }

    #[test]
    fn a_failure_is_retried_until_the_last_attempt_unless_permanent() {
        let policy = RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::from_millis(100), Duration::from_millis(150));
        for attempt in [1, 2] {
            match policy.after_failure(attempt, false) {
                AfterFailure::RetryAfter(delay) => {
                    assert!(
                        delay
                            <= Duration::from_millis(100 * u64::from(attempt))
                                .min(Duration::from_millis(150))
                    );
                }
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        assert_eq!(
            policy.after_failure(3, false),
            AfterFailure::DeadAttemptsUsedUp
        );
        assert_eq!(
            policy.after_failure(4, false),
            AfterFailure::DeadAttemptsUsedUp
        );
        assert_eq!(policy.after_failure(1, true), AfterFailure::DeadPermanent);
    }

    #[test]
    fn settings_outside_the_bounds_are_taken_as_the_nearest() {
        let policy = RetryPolicy::default()
            .with_max_attempts(0)
            .with_backoff(Duration::MAX, Duration::ZERO);
        assert_eq!(policy.max_attempts(), 1);
        assert_eq!(policy.backoff_base, MAX_LEASE);
        assert_eq!(policy.backoff_cap, MAX_LEASE);
        let policy = RetryPolicy::default().with_backoff(Duration::from_secs(5), Duration::ZERO);
        assert_eq!(policy.backoff_cap, Duration::from_secs(5));
    }
}
