//! Intercom's webhook notifications: the envelope, its topic, and the
//! permissions topics require.
//!
//! Every webhook Intercom sends is a [`Notification`]: an envelope with an
//! `id` (dedupe on it: retries carry the same id but a new signature), a
//! [`Topic`], timestamps and `data.item`, the object the notification is
//! about. The item's shape depends on the topic, so [`Notification`] is
//! generic over it: `serde_json::Value` by default, or your own type.
//!
//! [`Topic`] and [`Permission`] need no feature; [`Notification`],
//! [`NotificationData`] and [`DeletedItem`] need the `serde` feature (on by
//! default).
//!
//! Parse the *verified* body: behind
//! [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer) the
//! inner service gets the exact signed bytes
//! ([`WebhookBody::bytes`](crate::WebhookBody::bytes)); with axum, the
//! `axum` feature's `VerifiedNotification` extractor does both steps.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use serde::Deserialize;
//! use tower_intercom::notification::{Notification, Topic};
//!
//! /// The part of a conversation this app uses.
//! #[derive(Deserialize)]
//! struct Conversation {
//!     id: String,
//!     state: Option<String>,
//! }
//!
//! let body = br#"{
//!   "type": "notification_event",
//!   "id": "notif_0c1e0d2a-5b4f-4a9e-9f53-3d5c0f1e2a7b",
//!   "topic": "conversation.admin.closed",
//!   "app_id": "a86dr8yl",
//!   "created_at": 1718097000,
//!   "delivery_attempts": 1,
//!   "first_sent_at": 1718097001,
//!   "data": {
//!     "type": "notification_event_data",
//!     "item": { "type": "conversation", "id": "4711", "state": "closed", "open": false }
//!   }
//! }"#;
//!
//! let notification = Notification::<Conversation>::from_slice(body)?;
//! assert_eq!(notification.topic, Topic::CONVERSATION_ADMIN_CLOSED);
//! assert_eq!(notification.created_at, Some(1718097000));
//! assert_eq!(notification.data.item.id, "4711");
//! assert_eq!(notification.data.item.state.as_deref(), Some("closed"));
//!
//! // Any topic, any item: `Notification` defaults to `serde_json::Value`.
//! let untyped = Notification::<serde_json::Value>::from_slice(body)?;
//! assert_eq!(untyped.data.item["open"], false);
//! # }
//! # Ok::<(), serde_json::Error>(())
//! ```

mod permission;
mod topic;

pub use self::{permission::Permission, topic::Topic};

#[cfg(feature = "serde")]
pub(crate) mod envelope;
#[cfg(any(feature = "inbox", feature = "axum"))]
pub(crate) mod validate;

#[cfg(feature = "serde")]
pub use self::envelope::{DeletedItem, Notification, NotificationData};
