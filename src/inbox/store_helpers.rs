//! What every store needs beside the [`InboxStore`](super::InboxStore)
//! contract: times as milliseconds, capped durations and bounded error
//! messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::MAX_LEASE;

/// The longest error message a store keeps per notification.
pub(super) const MAX_ERROR_LEN: usize = 2048;

/// Milliseconds since the Unix epoch (0 before it).
pub(super) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// A duration in milliseconds, at most [`MAX_LEASE`] (ten years), so that a
/// store's `now + lease` stays an exact integer.
pub(super) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.min(MAX_LEASE).as_millis()).unwrap_or(i64::MAX)
}

/// The time `millis` milliseconds after the Unix epoch.
pub(super) fn time(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
