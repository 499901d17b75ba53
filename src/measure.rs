//! Records the crate's metrics (see the public `metrics` module for the
//! names); without the `metrics` feature every function is empty.
// Without `metrics` every function is empty; with it, the idempotency and
// inbox ones are unused unless those features are on too.
#![allow(unused_variables, dead_code)]

#[cfg(feature = "metrics")]
use crate::metrics::*;

use crate::{rejection::RejectionKind, signature::SignatureScheme};

/// The `signature.scheme` label.
fn scheme_label(scheme: SignatureScheme) -> &'static str {
    match scheme {
        SignatureScheme::HubSignature => "hub",
        SignatureScheme::BodySignature => "body",
    }
}

/// The `secret.index` label, without allocating.
fn index_label(index: usize) -> &'static str {
    const LABELS: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "7"];
    LABELS.get(index).copied().unwrap_or("8+")
}

/// The `error.type` label of a rejection of the verifying layer.
pub(crate) fn error_type(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::MissingSignature => "missing",
        RejectionKind::MultipleSignatures | RejectionKind::MalformedSignature => "malformed",
        RejectionKind::InvalidSignature => "invalid",
        RejectionKind::PayloadTooLarge => "too_large",
        RejectionKind::BodyUnreadable => "unreadable",
        RejectionKind::HeadNotAllowed => "head",
        RejectionKind::MethodNotAllowed => "method",
        RejectionKind::Expired => "expired",
        RejectionKind::InProgress => "in_progress",
        RejectionKind::StoreUnavailable => "store_unavailable",
        RejectionKind::NotVerified => "not_verified",
    }
}

/// A request whose signature matched `secret_index`, with its body size.
#[inline]
pub(crate) fn webhook_verified(scheme: SignatureScheme, secret_index: usize, body_len: usize) {
    #[cfg(feature = "metrics")]
    {
        let scheme = scheme_label(scheme);
        metrics::counter!(
            WEBHOOK_VERIFIED,
            "signature.scheme" => scheme,
            "secret.index" => index_label(secret_index)
        )
        .increment(1);
        metrics::histogram!(WEBHOOK_BODY_SIZE, "signature.scheme" => scheme)
            .record(body_len as f64);
    }
}

/// A request the verifying layer refused.
#[inline]
pub(crate) fn webhook_rejected(kind: RejectionKind) {
    #[cfg(feature = "metrics")]
    metrics::counter!(WEBHOOK_REJECTED, "error.type" => error_type(kind)).increment(1);
}

/// What the idempotency layer found for a notification.
#[inline]
pub(crate) fn idempotency_outcome(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(IDEMPOTENCY_OUTCOME, "outcome" => outcome).increment(1);
}

/// What the inbox receiver answered.
#[inline]
pub(crate) fn inbox_receive(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(INBOX_RECEIVE, "outcome" => outcome).increment(1);
}

/// The time a new notification took to be committed (not a duplicate's
/// answer: nothing was committed for it).
#[inline]
pub(crate) fn inbox_commit_duration(elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(INBOX_COMMIT_DURATION).record(elapsed.as_secs_f64());
}

/// A processing attempt that ended as `outcome` (`done`, `retried`,
/// `dead`) after `elapsed`.
#[inline]
pub(crate) fn inbox_processed(outcome: &'static str, elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(INBOX_PROCESSED, "outcome" => outcome).increment(1);
        metrics::histogram!(INBOX_PROCESSING_DURATION, "outcome" => outcome)
            .record(elapsed.as_secs_f64());
    }
}

/// The inbox's counts, and how long its longest-waiting due notification
/// has waited, as last counted.
#[inline]
pub(crate) fn inbox_counts(
    pending: u64,
    in_progress: u64,
    dead: u64,
    oldest_pending_age: std::time::Duration,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!(INBOX_PENDING).set(pending as f64);
        metrics::gauge!(INBOX_IN_PROGRESS).set(in_progress as f64);
        metrics::gauge!(INBOX_DEAD).set(dead as f64);
        metrics::gauge!(INBOX_OLDEST_PENDING_AGE).set(oldest_pending_age.as_secs_f64());
    }
}

/// A worker starts attempt `attempt` of a notification received at
/// `received_at`: the first attempt's delay since the receipt is recorded
/// (a retry's is mostly the backoff the worker chose).
#[inline]
pub(crate) fn inbox_attempt_started(received_at: std::time::SystemTime, attempt: u32) {
    #[cfg(feature = "metrics")]
    if attempt <= 1 {
        // Receivers and workers on other machines: a clock behind the
        // receiver's counts as no delay.
        let delay = std::time::SystemTime::now()
            .duration_since(received_at)
            .unwrap_or_default();
        metrics::histogram!(INBOX_PROCESSING_DELAY).record(delay.as_secs_f64());
    }
}

/// A new value of secret file `secret` (`webhook`, `identity`,
/// `access_token`) was swapped in.
#[inline]
pub(crate) fn secret_reloaded(secret: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SECRET_RELOADS, "secret" => secret).increment(1);
}

/// A change of secret file `secret` was refused for `error_type`.
#[inline]
pub(crate) fn secret_reload_failed(secret: &'static str, error_type: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SECRET_RELOAD_FAILURES, "secret" => secret, "error.type" => error_type)
        .increment(1);
}

/// Describes every metric once (units and help texts), for exporters
/// that show them. Called when a layer is built; cheap after the first call.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
            describe_counter!(
                WEBHOOK_VERIFIED,
                "Intercom webhooks whose signature matched, by scheme and secret index"
            );
            describe_counter!(
                WEBHOOK_REJECTED,
                "Requests refused by the verifying layer, by error.type"
            );
            describe_histogram!(
                WEBHOOK_BODY_SIZE,
                Unit::Bytes,
                "Size of verified webhook bodies"
            );
            describe_counter!(
                IDEMPOTENCY_OUTCOME,
                "Idempotency layer outcomes: claimed, duplicate, in_progress, store_error"
            );
            describe_counter!(INBOX_RECEIVE, "Inbox receiver answers by outcome");
            describe_histogram!(
                INBOX_COMMIT_DURATION,
                Unit::Seconds,
                "Time from a verified notification to its durable commit; new notifications \
                 only, not duplicates"
            );
            describe_counter!(
                INBOX_PROCESSED,
                "Inbox processing attempts by outcome: done, retried, dead"
            );
            describe_histogram!(
                INBOX_PROCESSING_DURATION,
                Unit::Seconds,
                "Time the processing of a notification took"
            );
            describe_histogram!(
                INBOX_PROCESSING_DELAY,
                Unit::Seconds,
                "Time from the receipt of a notification to the start of its first processing \
                 attempt"
            );
            describe_gauge!(INBOX_PENDING, "Notifications waiting in the inbox");
            describe_gauge!(INBOX_IN_PROGRESS, "Notifications leased to a worker");
            describe_gauge!(INBOX_DEAD, "Dead notifications in the inbox");
            describe_gauge!(
                INBOX_OLDEST_PENDING_AGE,
                Unit::Seconds,
                "How long the longest-waiting due notification has waited since it became due; \
                 0 when none is due"
            );
            describe_counter!(
                SECRET_RELOADS,
                "New values of a secret file swapped in, by secret"
            );
            describe_counter!(
                SECRET_RELOAD_FAILURES,
                "Refused changes of a secret file (the value in use stays), by secret and error.type"
            );
        });
    }
}
