//! Rejections reported so that an operator sees the first one at once and
//! an attacker cannot flood the logs.
//!
//! Every rejection is logged at `debug` under the fixed target
//! `tower_intercom::rejection` (as axum logs its rejections under
//! `axum::rejection`). At `warn`, each reason is reported the first time it
//! happens, then at most once per interval, with how many were left out
//! since the last report.

use std::time::Duration;

use crate::{
    rejection::{Rejection, RejectionKind},
    warn_limit::{Due, WarnLimit},
};

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

/// The rate limiter of `warn` reports, one [`WarnLimit`] per reason,
/// shared by every clone of a layer.
#[derive(Debug)]
pub(crate) struct Reports {
    interval: Duration,
    limits: [WarnLimit; REASONS],
}

impl Reports {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            limits: std::array::from_fn(|_| WarnLimit::new(interval)),
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
        let Some(Due { first, suppressed }) = self.limits[slot(kind)].due() else {
            return;
        };
        let every = self.interval.as_secs_f64();
        if first {
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
