//! `warn` reports limited to one per interval, for every rate-limited
//! warning of the crate: the verifying layer's rejections (one limit per
//! reason) and the inbox's failures. An operator sees the first at once; a
//! flood of forged requests, or a store failing for minutes, cannot flood
//! the logs, and each report says how many were left out since the last.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// When a `warn` is due: the first time, then at most once per interval.
///
/// Lock-free: concurrent callers never wait, and exactly one of them gets
/// the report when it falls due; the others are counted as left out.
#[derive(Debug)]
pub(crate) struct WarnLimit {
    interval: Duration,
    start: Instant,
    /// When a report was last due, in nanoseconds since `start`, plus
    /// one; 0 = never.
    last_warn: AtomicU64,
    /// Reports left out since then.
    suppressed: AtomicU64,
}

/// A report that is due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// Whether it is the first report.
    pub(crate) first: bool,
    /// How many were left out since the previous report.
    pub(crate) suppressed: u64,
}

impl WarnLimit {
    /// At most one report per `interval`. `Duration::MAX` lets the first
    /// through only, zero every one.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            start: Instant::now(),
            last_warn: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some` when a report is due (the first, or a whole interval since the
    /// last), with how many were left out meanwhile; `None` otherwise, and
    /// this one is counted as left out.
    pub(crate) fn due(&self) -> Option<Due> {
        let now = u64::try_from(self.start.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.last_warn.load(Ordering::Relaxed);
        let interval = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if !due
            || self
                .last_warn
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            // Not due, or another caller is reporting now.
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Due {
            first: last == 0,
            suppressed: self.suppressed.swap(0, Ordering::AcqRel),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_due_then_one_per_interval_with_the_count_left_out() {
        let interval = Duration::from_millis(50);
        let limit = WarnLimit::new(interval);
        assert_eq!(
            limit.due(),
            Some(Due {
                first: true,
                suppressed: 0
            })
        );
        assert_eq!(limit.due(), None);
        assert_eq!(limit.due(), None);
        std::thread::sleep(interval + Duration::from_millis(10));
        assert_eq!(
            limit.due(),
            Some(Due {
                first: false,
                suppressed: 2
            })
        );
        assert_eq!(limit.due(), None);
    }

    #[test]
    fn zero_lets_every_report_through_and_max_the_first_only() {
        let every = WarnLimit::new(Duration::ZERO);
        assert!((0..5).all(|_| every.due().is_some()));
        let once = WarnLimit::new(Duration::MAX);
        assert!(once.due().is_some_and(|due| due.first));
        assert!((0..5).all(|_| once.due().is_none()));
    }

    #[test]
    fn concurrent_callers_get_one_report_and_every_other_is_counted() {
        let limit = WarnLimit::new(Duration::MAX);
        let reported = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..1000).filter(|_| limit.due().is_some()).count()))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(reported, 1);
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 8 * 1000 - 1);
    }
}
