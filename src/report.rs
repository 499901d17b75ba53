//! Rejections reported so that an operator sees the first one at once and
//! an attacker cannot flood the logs.
//!
//! Every rejection is logged at `debug` under the fixed target
//! `tower_intercom::rejection` (as axum logs its rejections under
//! `axum::rejection`). At `warn`, each reason is reported the first time it
//! happens, then at most once per interval, with how many were left out
//! since the last report.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::rejection::{Rejection, RejectionKind};

/// The log target of every per-request rejection event.
pub(crate) const TARGET: &str = "tower_intercom::rejection";

/// How often, at most, a reason is reported at `warn` by default: once a
/// minute.
pub(crate) const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// The reasons with their own summary, and the slot of each.
const REASONS: usize = 12;

fn slot(kind: RejectionKind) -> usize {
    match kind {
        RejectionKind::MissingSignature => 0,
        RejectionKind::MultipleSignatures => 1,
        RejectionKind::MalformedSignature => 2,
        RejectionKind::InvalidSignature => 3,
        RejectionKind::PayloadTooLarge => 4,
        RejectionKind::BodyUnreadable => 5,
        RejectionKind::HeadNotAllowed => 6,
        RejectionKind::InProgress => 7,
        RejectionKind::StoreUnavailable => 8,
        RejectionKind::NotVerified => 9,
        RejectionKind::Expired => 10,
        RejectionKind::MethodNotAllowed => 11,
    }
}

/// The rate limiter of `warn` reports, per reason, shared by every clone of
/// a layer.
#[derive(Debug)]
pub(crate) struct Reports {
    interval: Duration,
    start: Instant,
    slots: [Slot; REASONS],
}

#[derive(Debug, Default)]
struct Slot {
    /// When this reason was last reported at `warn`, in nanoseconds since
    /// `start`, plus one; 0 = never.
    last_warn: AtomicU64,
    /// Rejections for this reason not reported at `warn` since then.
    suppressed: AtomicU64,
}

impl Reports {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            start: Instant::now(),
            slots: Default::default(),
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Logs one rejection: always at `debug`, at `warn` when its reason is
    /// due (first time, or a whole interval since its last report).
    pub(crate) fn report(&self, rejection: &Rejection) {
        let kind = rejection.kind();
        let status = rejection.status().as_u16();
        tracing::debug!(
            target: TARGET,
            reason = %kind,
            status,
            "rejected Intercom webhook: {rejection}"
        );
        let slot = &self.slots[slot(kind)];
        let now = u64::try_from(self.start.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = slot.last_warn.load(Ordering::Relaxed);
        let interval = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if !due
            || slot
                .last_warn
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            // Not due, or another request is reporting this reason now.
            slot.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = slot.suppressed.swap(0, Ordering::AcqRel);
        let every = self.interval.as_secs_f64();
        if last == 0 {
            tracing::warn!(
                reason = %kind,
                status,
                "rejected Intercom webhook: {rejection}{hint}; \
                 further rejections for this reason are logged at debug under \
                 `{TARGET}` and summarised here at most every {every}s",
                hint = hint(kind),
            );
        } else {
            tracing::warn!(
                reason = %kind,
                status,
                suppressed,
                "rejected Intercom webhook: {rejection}{hint}; {suppressed} more since the last report",
                hint = hint(kind),
            );
        }
    }
}

/// What an operator should check for the reasons that usually mean a
/// misconfiguration rather than an attack.
fn hint(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::InvalidSignature => {
            " (if these are Intercom's deliveries, the configured secret is not the app's client secret)"
        }
        RejectionKind::MissingSignature => {
            " (Intercom signs every notification; is something else posting to this URL?)"
        }
        _ => "",
    }
}
