//! Pacing by Intercom's rate-limit headers.
//!
//! Every answer carries `X-RateLimit-Limit` (requests per window),
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (the Unix second the
//! window ends). [`RateLimiter`] keeps the newest window seen, shared by
//! all clones of a client, and admits a request only while the window's
//! remaining budget exceeds the requests already in flight (each holds a
//! [`Permit`] until its answer is read): a burst cannot overshoot. When the
//! budget is spent, requests wait for the window's end (a timer), or, when
//! the end is not known yet (the first requests of a window whose answers
//! have not come back), for the next answer. Windows are told apart by
//! their `Reset`: answers of an older window are ignored, and within one
//! window the smallest `Remaining` counts (answers come back out of order).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use http::HeaderMap;
use tokio::{
    sync::{futures::OwnedNotified, Notify},
    time::Sleep,
};

use super::measure;

/// How long a 429 waits at least, when its `Reset` is missing or already
/// past by this machine's clock (the clocks disagree): long enough for
/// Intercom's window to turn, short next to its 10-second windows.
const MIN_429_WAIT: Duration = Duration::from_millis(500);

/// Intercom's rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateLimitHeaders {
    pub(crate) limit: Option<u32>,
    pub(crate) remaining: Option<u32>,
    /// Unix seconds.
    pub(crate) reset: Option<u64>,
}

impl RateLimitHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
            let value = headers.get(name)?.to_str().ok()?.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Digits only: the one failure left is overflow.
            Some(value.parse().unwrap_or(u64::MAX))
        }
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            limit: number(headers, "x-ratelimit-limit").map(small),
            remaining: number(headers, "x-ratelimit-remaining").map(small),
            reset: number(headers, "x-ratelimit-reset"),
        }
    }

    /// How long until `reset`, by this machine's clock; zero when past,
    /// `None` without the header.
    pub(crate) fn reset_in(&self) -> Option<Duration> {
        let reset = UNIX_EPOCH.checked_add(Duration::from_secs(self.reset?))?;
        Some(
            reset
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// The budget shared by every clone of a client.
#[derive(Clone, Default)]
pub(crate) struct RateLimiter {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken when an answer arrives (or a request ends without one) while
    /// someone waits for one.
    answers: Arc<Notify>,
}

#[derive(Default)]
struct State {
    in_flight: u32,
    window: Option<Window>,
    answer_waiters: bool,
}

struct Window {
    limit: Option<u32>,
    /// The smallest `Remaining` of the window's answers (or the limit,
    /// after a refill).
    remaining: u32,
    /// The window's `X-RateLimit-Reset`.
    reset: u64,
    /// When the budget is refilled: the reset by this machine's clock,
    /// capped at the longest wait. `None` once refilled, until an answer
    /// of the next window says when that one ends.
    ends: Option<Instant>,
}

/// What [`RateLimiter::try_acquire`] decided.
enum Admission {
    Go(Permit),
    Until(Instant),
    UntilAnswer(OwnedNotified),
}

impl RateLimiter {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves counts, not broken
        // invariants: carry on with them.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a request, or says what to wait for; `now` is read only
    /// when the budget is spent.
    fn try_acquire(&self, now: impl FnOnce() -> Instant) -> Admission {
        let mut state = self.lock();
        let in_flight = state.in_flight;
        if let Some(window) = &mut state.window {
            if window.remaining <= in_flight {
                let now = now();
                match window.ends {
                    Some(ends) if now < ends => return Admission::Until(ends),
                    Some(_) => match window.limit {
                        // The window is over: a new one begins with the full
                        // budget, less what is still in flight.
                        Some(limit) => {
                            window.remaining = limit;
                            window.ends = None;
                        }
                        None => state.window = None,
                    },
                    None => {}
                }
            }
        }
        if let Some(window) = &state.window {
            if window.remaining <= in_flight {
                state.answer_waiters = true;
                return Admission::UntilAnswer(self.shared.answers.clone().notified_owned());
            }
        }
        state.in_flight = in_flight.saturating_add(1);
        Admission::Go(Permit {
            limiter: Some(self.clone()),
        })
    }

    /// Takes in the headers of an answer. A 429 (`rate_limited`) empties
    /// the window whatever its `Remaining` says, for at least
    /// [`MIN_429_WAIT`]. Returns the window's remaining budget.
    fn observe(
        state: &mut State,
        headers: RateLimitHeaders,
        rate_limited: bool,
        max_wait: Duration,
    ) -> Option<u32> {
        let now = Instant::now();
        let ends = |headers: &RateLimitHeaders| {
            let wait = headers.reset_in().unwrap_or(Duration::ZERO).min(max_wait);
            let wait = if rate_limited {
                wait.max(MIN_429_WAIT.min(max_wait))
            } else {
                wait
            };
            now.checked_add(wait).unwrap_or(now)
        };
        let newest = state.window.as_ref().map(|window| window.reset);
        let remaining = if rate_limited {
            Some(0)
        } else {
            headers.remaining
        };
        match (headers.reset, remaining) {
            (Some(reset), _) if newest.is_some_and(|newest| reset < newest) => {}
            (Some(reset), Some(remaining)) if newest == Some(reset) => {
                if let Some(window) = &mut state.window {
                    if rate_limited || window.ends.is_some() {
                        window.remaining = window.remaining.min(remaining);
                        if rate_limited {
                            window.ends = Some(window.ends.unwrap_or(now).max(ends(&headers)));
                        }
                    }
                    window.limit = headers.limit.or(window.limit);
                }
            }
            (Some(reset), Some(remaining)) => {
                let limit = headers
                    .limit
                    .or(state.window.as_ref().and_then(|w| w.limit));
                state.window = Some(Window {
                    limit,
                    remaining,
                    reset,
                    ends: Some(ends(&headers)),
                });
            }
            // A 429 without `Reset`: wait the minimum.
            (None, Some(_)) if rate_limited => {
                let limit = state.window.as_ref().and_then(|w| w.limit);
                state.window = Some(Window {
                    limit,
                    remaining: 0,
                    reset: newest.unwrap_or(0),
                    ends: Some(ends(&headers)),
                });
            }
            _ => {}
        }
        state.window.as_ref().map(|window| window.remaining)
    }
}

/// A request admitted by the [`RateLimiter`]: counted in flight until its
/// answer is read ([`answered`](Self::answered)) or it is dropped.
pub(crate) struct Permit {
    limiter: Option<RateLimiter>,
}

impl Permit {
    /// The answer's headers go into the shared window and the request
    /// leaves the in-flight count. Returns the window's remaining budget.
    pub(crate) fn answered(
        mut self,
        headers: RateLimitHeaders,
        rate_limited: bool,
        max_wait: Duration,
    ) -> Option<u32> {
        let limiter = self.limiter.take()?;
        let (remaining, wake) = {
            let mut state = limiter.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            let remaining = RateLimiter::observe(&mut state, headers, rate_limited, max_wait);
            (remaining, std::mem::take(&mut state.answer_waiters))
        };
        if wake {
            limiter.shared.answers.notify_waiters();
        }
        remaining
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            let wake = {
                let mut state = limiter.lock();
                state.in_flight = state.in_flight.saturating_sub(1);
                std::mem::take(&mut state.answer_waiters)
            };
            if wake {
                limiter.shared.answers.notify_waiters();
            }
        }
    }
}

/// Waits for a [`Permit`]: the timer or the answer a held request waits
/// for. One per service (for `poll_ready`) and one per response future
/// (for retries); reused from one wait to the next.
#[derive(Default)]
pub(crate) struct Pacer {
    sleep: Option<Pin<Box<Sleep>>>,
    answer: Option<Pin<Box<OwnedNotified>>>,
    held_since: Option<Instant>,
}

impl Pacer {
    /// Ready with a permit once `limiter` admits a request; pending (with
    /// a timer or a wake-up registered) while it holds them.
    pub(crate) fn poll_acquire(
        &mut self,
        limiter: &RateLimiter,
        cx: &mut Context<'_>,
    ) -> Poll<Permit> {
        loop {
            match limiter.try_acquire(Instant::now) {
                Admission::Go(permit) => {
                    self.answer = None;
                    if let Some(since) = self.held_since.take() {
                        measure::held(since.elapsed());
                    }
                    return Poll::Ready(permit);
                }
                Admission::Until(deadline) => {
                    self.held_since.get_or_insert_with(Instant::now);
                    self.answer = None;
                    let deadline = tokio::time::Instant::from_std(deadline);
                    let sleep = match &mut self.sleep {
                        Some(sleep) => {
                            sleep.as_mut().reset(deadline);
                            sleep
                        }
                        None => self
                            .sleep
                            .insert(Box::pin(tokio::time::sleep_until(deadline))),
                    };
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Admission::UntilAnswer(notified) => {
                    self.held_since.get_or_insert_with(Instant::now);
                    let answer = self.answer.insert(Box::pin(notified));
                    if answer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(15);

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn headers(limit: u32, remaining: u32, reset: u64) -> RateLimitHeaders {
        RateLimitHeaders {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
        }
    }

    fn go(limiter: &RateLimiter) -> Permit {
        match limiter.try_acquire(Instant::now) {
            Admission::Go(permit) => permit,
            _ => panic!("held"),
        }
    }

    fn held(limiter: &RateLimiter) -> bool {
        !matches!(limiter.try_acquire(Instant::now), Admission::Go(_))
    }

    #[test]
    fn parses_the_headers_and_ignores_what_is_not_a_number() {
        let mut map = HeaderMap::new();
        map.insert("x-ratelimit-limit", "83".parse().unwrap());
        map.insert("X-RateLimit-Remaining", " 7 ".parse().unwrap());
        map.insert(
            "x-ratelimit-reset",
            "99999999999999999999999".parse().unwrap(),
        );
        let parsed = RateLimitHeaders::parse(&map);
        assert_eq!(parsed, headers(83, 7, u64::MAX));
        assert_eq!(parsed.reset_in(), None, "no time that far");
        map.insert("x-ratelimit-remaining", "-1".parse().unwrap());
        map.insert("x-ratelimit-limit", "1e3".parse().unwrap());
        let parsed = RateLimitHeaders::parse(&map);
        assert_eq!((parsed.limit, parsed.remaining), (None, None));
    }

    #[test]
    fn unknown_limits_admit_and_a_spent_window_holds_counting_requests_in_flight() {
        let limiter = RateLimiter::default();
        let first = go(&limiter);
        let second = go(&limiter);
        // The first answer: 3 left in a window ending in 10 s.
        first.answered(headers(5, 3, unix_now() + 10), false, WAIT);
        // One more is in flight, so two more may go, not three.
        let third = go(&limiter);
        let fourth = go(&limiter);
        assert!(held(&limiter));
        // An answer out of order (a higher Remaining) does not raise the
        // budget: 3 left, and two in flight now.
        second.answered(headers(5, 4, unix_now() + 10), false, WAIT);
        let fifth = go(&limiter);
        assert!(held(&limiter));
        // A request that ended without an answer gives its place back.
        drop(third);
        let sixth = go(&limiter);
        assert!(held(&limiter));
        drop((fourth, fifth, sixth));
    }

    #[test]
    fn a_window_past_its_reset_refills_and_then_waits_for_an_answer() {
        let limiter = RateLimiter::default();
        let first = go(&limiter);
        // Reset already past: the budget refills at the next request.
        first.answered(headers(2, 0, unix_now().saturating_sub(1)), false, WAIT);
        let a = go(&limiter);
        let b = go(&limiter);
        match limiter.try_acquire(Instant::now) {
            Admission::UntilAnswer(_) => {}
            _ => panic!("the refilled budget is in flight: wait for an answer"),
        }
        // The new window's first answer says 0 left until its reset.
        a.answered(headers(2, 0, unix_now() + 5), false, WAIT);
        assert!(matches!(
            limiter.try_acquire(Instant::now),
            Admission::Until(_)
        ));
        drop(b);
    }

    #[test]
    fn waits_are_capped_and_a_429_empties_the_window() {
        let limiter = RateLimiter::default();
        let permit = go(&limiter);
        permit.answered(headers(10, 9, unix_now() + 3600), false, WAIT);
        let permit = go(&limiter);
        permit.answered(headers(10, 9, unix_now() + 3600), true, WAIT);
        match limiter.try_acquire(Instant::now) {
            Admission::Until(deadline) => {
                assert!(deadline <= Instant::now() + WAIT);
            }
            _ => panic!("a 429 empties the window"),
        }
    }

    #[test]
    fn a_429_without_headers_holds_for_the_minimum() {
        let limiter = RateLimiter::default();
        let permit = go(&limiter);
        permit.answered(RateLimitHeaders::default(), true, WAIT);
        match limiter.try_acquire(Instant::now) {
            Admission::Until(deadline) => {
                assert!(deadline > Instant::now() + MIN_429_WAIT / 2);
            }
            _ => panic!("held after a 429"),
        }
    }
}
