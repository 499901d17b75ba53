//! The notification a worker's handler receives.

use std::{fmt, time::SystemTime};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::Permanent;

/// A stored notification, as handed to your handler: the exact verified
/// bytes, the `id` and `topic`, when it was received, and which attempt
/// this is.
///
/// # Example
///
/// ```
/// use std::time::SystemTime;
/// use bytes::Bytes;
/// use tower_intercom::{inbox::ReceivedNotification, notification::Notification};
///
/// let body = r#"{"type":"notification_event","id":"notif_1","topic":"ping","data":{"item":{"type":"ping"}}}"#;
/// let received = ReceivedNotification::new("notif_1", "ping", Bytes::from(body), SystemTime::now(), 1);
/// assert_eq!(received.id(), "notif_1");
/// assert_eq!(received.attempt(), 1);
/// let notification: Notification = received.json()?;
/// assert_eq!(notification.topic, "ping");
/// # Ok::<_, tower_intercom::inbox::Permanent>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedNotification {
    id: Box<str>,
    topic: Box<str>,
    body: Bytes,
    received_at: SystemTime,
    attempt: u32,
}

impl ReceivedNotification {
    /// A notification as a store returns it. `attempt` counts from 1.
    pub fn new(
        id: impl Into<Box<str>>,
        topic: impl Into<Box<str>>,
        body: Bytes,
        received_at: SystemTime,
        attempt: u32,
    ) -> Self {
        Self {
            id: id.into(),
            topic: topic.into(),
            body,
            received_at,
            attempt,
        }
    }

    /// The notification's `id` (`notif_…`): make your side effects
    /// idempotent by it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The notification's `topic` (`conversation.user.created`, …), or empty
    /// when the body had none.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The exact bytes Intercom signed and the receiver verified.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        self.body
    }

    /// When the receiver got it (and committed it, a moment later).
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// Which attempt this is: 1 for the first, and one more for each failed
    /// attempt or lapsed lease before it. A requeue starts the count over:
    /// the next attempt is 1 again.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The body parsed as JSON, for instance as a
    /// [`Notification`](crate::notification::Notification).
    ///
    /// # Errors
    ///
    /// When the body does not parse as `T`: serde_json's error, marked
    /// [`Permanent`], since the stored bytes never change and no retry would
    /// parse them. Returned from a handler (with `?`), it makes the
    /// notification dead at once, with the error (and its line and column)
    /// as its reason; requeue it once `T` takes it. To retry instead, return
    /// [`Permanent::into_inner`]. [`Permanent::get_ref`] downcasts to the
    /// `serde_json::Error`.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use bytes::Bytes;
    /// use tower_intercom::{inbox::ReceivedNotification, notification::Notification};
    ///
    /// let body = r#"{"type":"notification_event","id":"notif_1","topic":"ping","data":{}}"#;
    /// let received = ReceivedNotification::new("notif_1", "ping", Bytes::from(body), SystemTime::now(), 1);
    /// let error = received.json::<Notification>().unwrap_err();
    /// assert_eq!(error.to_string(), "missing field `item` at line 1 column 68");
    /// let json = error.get_ref().downcast_ref::<serde_json::Error>().unwrap();
    /// assert_eq!((json.line(), json.column()), (1, 68));
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Permanent> {
        serde_json::from_slice(&self.body).map_err(Permanent::new)
    }
}

impl fmt::Debug for ReceivedNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is the customer's data: its length only.
        f.debug_struct("ReceivedNotification")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("body_len", &self.body.len())
            .field("received_at", &self.received_at)
            .field("attempt", &self.attempt)
            .finish()
    }
}
