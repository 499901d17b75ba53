//! The notification envelope (feature `serde`).

#[cfg(feature = "idempotency")]
use std::borrow::Cow;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::Topic;

/// A webhook notification as Intercom sends it, with its item typed as `T`.
///
/// Fields Intercom may leave out are `Option`s; unknown fields are ignored,
/// so new fields in Intercom's payloads do not break parsing. Timestamps
/// are Unix seconds (integers in Intercom's payloads; a float or a numeric
/// string is accepted too). `T` is the type of `data.item`:
/// `serde_json::Value` by default, a struct of yours for the topics you
/// handle, or [`DeletedItem`] for `*.deleted` topics, whose items carry only
/// identifying fields.
///
/// Dedupe on [`id`](Self::id): a retried delivery has the same id but a
/// higher `delivery_attempts`, hence a different body and signature.
///
/// # Example
///
/// ```
/// use tower_intercom::notification::{DeletedItem, Notification, Topic};
///
/// let body = br#"{"type":"notification_event","app_id":"a86dr8yl",
///   "data":{"type":"notification_event_data","item":{"type":"contact","id":"6650c1f2a1b2c3d4e5f60718","deleted":true}},
///   "links":{},"id":"notif_5f6a7b8c-1d2e-4f30-8a9b-0c1d2e3f4a5b","topic":"contact.deleted",
///   "delivery_status":"pending","delivery_attempts":1,"delivered_at":0,
///   "first_sent_at":1718097300,"created_at":1718097299,"self":null}"#;
///
/// let notification = Notification::<DeletedItem>::from_slice(body)?;
/// assert!(notification.topic.is_deleted());
/// assert_eq!(notification.data.item.id, "6650c1f2a1b2c3d4e5f60718");
/// assert_eq!(notification.self_url, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notification<T = serde_json::Value> {
    /// `type`: `"notification_event"`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `id`: the notification's id (`notif_…`), the same on every delivery
    /// attempt. Dedupe on it.
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    /// `topic`: what happened.
    pub topic: Topic,
    /// `app_id`: the workspace the event happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// `created_at`: when the notification was created, in Unix seconds.
    #[serde(
        default,
        deserialize_with = "lenient::timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    /// `first_sent_at`: when delivery was first attempted, in Unix seconds.
    #[serde(
        default,
        deserialize_with = "lenient::timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_sent_at: Option<i64>,
    /// `delivery_attempts`: how many times delivery has been attempted,
    /// this one included.
    #[serde(
        default,
        deserialize_with = "lenient::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_attempts: Option<u32>,
    /// `delivery_status`: Intercom's delivery state when it sent this
    /// (`"pending"` in practice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<String>,
    /// `delivered_at`: in Unix seconds; Intercom sends `0` while the
    /// delivery is still pending.
    #[serde(
        default,
        deserialize_with = "lenient::timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivered_at: Option<i64>,
    /// `data`: the object the notification is about.
    pub data: NotificationData<T>,
    /// `links`: hypermedia links (usually an empty object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<serde_json::Value>,
    /// `self`: a URL for the notification (usually `null`).
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_url: Option<String>,
}

impl<T> Notification<T> {
    /// A notification as Intercom would first deliver it: `type`
    /// `notification_event`, the given `id`, `topic` and `data.item`,
    /// `delivery_attempts` 1, `delivery_status` `pending`, empty `links`;
    /// everything else unset. For your handlers' tests: set other fields
    /// afterwards (they are public), serialize it with `serde_json`, and sign
    /// the bytes with [`sign`](crate::sign).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::{notification::{Notification, Topic}, sign, WebhookSecret};
    ///
    /// let mut notification = Notification::new(
    ///     "notif_test_1",
    ///     Topic::CONVERSATION_USER_CREATED,
    ///     serde_json::json!({"type": "conversation", "id": "123"}),
    /// );
    /// notification.created_at = Some(1_700_000_000);
    ///
    /// let body = serde_json::to_vec(&notification)?;
    /// let secret: WebhookSecret = "test-secret".parse()?;
    /// let header = sign(&secret, &body); // X-Hub-Signature of the test request
    /// # let _ = header;
    /// assert_eq!(Notification::<serde_json::Value>::from_slice(&body)?, notification);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(id: impl Into<String>, topic: Topic, item: T) -> Self {
        Self {
            kind: Some("notification_event".to_owned()),
            id: id.into(),
            topic,
            app_id: None,
            created_at: None,
            first_sent_at: None,
            delivery_attempts: Some(1),
            delivery_status: Some("pending".to_owned()),
            delivered_at: None,
            data: NotificationData::new(item),
            links: Some(serde_json::Value::Object(serde_json::Map::new())),
            self_url: None,
        }
    }
}

impl<T: DeserializeOwned> Notification<T> {
    /// Parses a notification from the JSON bytes of a webhook body.
    ///
    /// # Errors
    ///
    /// When the bytes are not JSON, or not an envelope whose `data.item`
    /// fits `T`. The error has the [line](serde_json::Error::line) and
    /// [column](serde_json::Error::column) of the problem.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl Notification<serde_json::Value> {
    /// Reads the untyped `data.item` as `U`, for handlers that pick the
    /// item's type from the topic.
    ///
    /// # Errors
    ///
    /// When the item does not fit `U`.
    ///
    /// # Example
    ///
    /// ```
    /// use serde::Deserialize;
    /// use tower_intercom::notification::{Notification, Topic};
    ///
    /// #[derive(Deserialize)]
    /// struct Ping {
    ///     message: String,
    /// }
    ///
    /// let body = br#"{"type":"notification_event","id":"notif_1","topic":"ping",
    ///   "data":{"item":{"type":"ping","message":"Hello"}}}"#;
    /// let notification: Notification = Notification::from_slice(body)?;
    /// if notification.topic == Topic::PING {
    ///     let ping: Ping = notification.item_as()?;
    ///     assert_eq!(ping.message, "Hello");
    /// }
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn item_as<U: DeserializeOwned>(&self) -> Result<U, serde_json::Error> {
        U::deserialize(&self.data.item)
    }
}

/// The `data` object of a [`Notification`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NotificationData<T = serde_json::Value> {
    /// `type`: `"notification_event_data"` (not always present).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `item`: the object the notification is about; its shape depends on
    /// the topic.
    pub item: T,
}

impl<T> NotificationData<T> {
    /// The `data` of a notification about `item`, with `type`
    /// `notification_event_data`.
    pub fn new(item: T) -> Self {
        Self {
            kind: Some("notification_event_data".to_owned()),
            item,
        }
    }
}

/// The item of a deletion (`*.deleted`) topic: only the deleted object's
/// identifying fields.
///
/// Also fits other items when only their type and id matter. The `id` is
/// read from a string or a number (some objects have numeric ids).
///
/// # Example
///
/// ```
/// use tower_intercom::notification::DeletedItem;
///
/// let item: DeletedItem = serde_json::from_str(r#"{"type":"content_import_source","id":33,"deleted":true}"#)?;
/// assert_eq!(item.kind.as_deref(), Some("content_import_source"));
/// assert_eq!(item.id, "33");
/// assert_eq!(item.deleted, Some(true));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeletedItem {
    /// `type`: the deleted object's type, e.g. `"contact"`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `id`: the deleted object's id.
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    /// `deleted`: `true` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// Deserializers that accept the variations seen in real payloads instead
/// of refusing the whole notification: an unparseable envelope means a
/// 400, a retry, and a lost event.
#[cfg(feature = "idempotency")]
#[derive(Deserialize)]
struct IdAndTopic<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    topic: Option<TopicText<'a>>,
}

/// The `topic` when it is a string; anything else is ignored.
#[cfg(feature = "idempotency")]
#[derive(Deserialize)]
#[serde(untagged)]
enum TopicText<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

/// The notification's `id` (a non-empty string at the top of a JSON
/// object) and `topic` (empty unless a string), read without building the
/// rest: what the idempotency layer keys on. `None` for anything else
/// (not JSON, not an object, no string id, a repeated field).
#[cfg(feature = "idempotency")]
pub(crate) fn id_and_topic(body: &[u8]) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    // Serde's derived structs also accept arrays (`["notif_1"]`): only an
    // object is a notification.
    let first = body
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\r' | b'\n'));
    if first != Some(&b'{') {
        return None;
    }
    let envelope = serde_json::from_slice::<IdAndTopic<'_>>(body).ok()?;
    let id = envelope.id.filter(|id| !id.is_empty())?;
    let topic = match envelope.topic {
        Some(TopicText::Text(topic)) => topic,
        _ => Cow::Borrowed(""),
    };
    Some((id, topic))
}

pub(crate) mod lenient {
    use std::fmt;

    use serde::{
        de::{Error, Visitor},
        Deserializer,
    };

    /// An id given as a string or a number.
    pub(super) fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        struct Id;

        impl Visitor<'_> for Id {
            type Value = String;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (string or integer)")
            }

            fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }

            fn visit_string<E: Error>(self, v: String) -> Result<String, E> {
                Ok(v)
            }

            fn visit_i64<E: Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }

            fn visit_u64<E: Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
        }

        deserializer.deserialize_any(Id)
    }

    /// A whole number given as an integer, an integral float or a numeric
    /// string; `null` is `None`.
    struct Integer(&'static str);

    impl<'de> Visitor<'de> for Integer {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format_args!("{} out of range", self.0)))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
            // Whole seconds: a fractional part is dropped.
            let whole = v.trunc();
            if whole.is_finite() && whole >= i64::MIN as f64 && whole < i64::MAX as f64 {
                Ok(Some(whole as i64))
            } else {
                Err(E::custom(format_args!("{} out of range", self.0)))
            }
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if let Ok(n) = v.parse::<i64>() {
                return Ok(Some(n));
            }
            match v.parse::<f64>() {
                Ok(n) => self.visit_f64(n),
                Err(_) => Err(E::custom(format_args!("expected {}", self.0))),
            }
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// Unix seconds.
    pub(crate) fn timestamp<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        deserializer.deserialize_any(Integer("a Unix timestamp in seconds"))
    }

    /// A count such as `delivery_attempts`.
    pub(crate) fn count<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        match deserializer.deserialize_any(Integer("a count"))? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| D::Error::custom("count out of range")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Notification, serde_json::Error> {
        Notification::from_slice(json.as_bytes())
    }

    #[test]
    fn timestamps_accept_integers_floats_strings_and_null() {
        let n = parse(
            r#"{"id":"notif_1","topic":"ping","data":{"item":{}},
                "created_at":1718097000,"first_sent_at":1718097001.75,
                "delivered_at":null,"delivery_attempts":"2"}"#,
        )
        .unwrap();
        assert_eq!(n.created_at, Some(1718097000));
        assert_eq!(n.first_sent_at, Some(1718097001));
        assert_eq!(n.delivered_at, None);
        assert_eq!(n.delivery_attempts, Some(2));
        let n =
            parse(r#"{"id":"n","topic":"ping","data":{"item":1},"created_at":" 17 "}"#).unwrap();
        assert_eq!(n.created_at, Some(17));
    }

    #[test]
    fn out_of_range_numbers_are_errors_not_panics() {
        for bad in [
            r#""created_at":1e300"#,
            r#""created_at":-1e300"#,
            r#""created_at":18446744073709551615"#,
            r#""created_at":"soon""#,
            r#""created_at":true"#,
            r#""delivery_attempts":-1"#,
            r#""delivery_attempts":4294967296"#,
        ] {
            let json = format!(r#"{{"id":"n","topic":"ping","data":{{"item":{{}}}},{bad}}}"#);
            let err = parse(&json).unwrap_err();
            assert!(err.line() > 0, "{bad}: {err}");
        }
    }

    #[test]
    fn numeric_ids_become_strings() {
        let n = parse(r#"{"id":42,"topic":"ping","data":{"item":{}}}"#).unwrap();
        assert_eq!(n.id, "42");
    }

    #[test]
    fn serializing_leaves_out_what_was_absent() {
        let n =
            parse(r#"{"id":"notif_1","topic":"ping","data":{"item":{"type":"ping"}}}"#).unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(
            json,
            r#"{"id":"notif_1","topic":"ping","data":{"item":{"type":"ping"}}}"#
        );
    }

    #[cfg(feature = "idempotency")]
    #[test]
    fn ids_and_topics_are_read_from_the_top_level() {
        let (id, topic) =
            id_and_topic(br#"{"id":"notif_1","topic":"ping","data":{"id":"x","topic":"y"}}"#)
                .unwrap();
        assert_eq!((&*id, &*topic), ("notif_1", "ping"));
        let (id, topic) =
            id_and_topic(br#"{"topic":{"a":[1]},"id":"notif_\u00e9\"q\u0000"}"#).unwrap();
        assert_eq!((&*id, &*topic), ("notif_\u{e9}\"q\0", ""));
        let (_, topic) = id_and_topic(br#"{"id":"n","topic":null}"#).unwrap();
        assert_eq!(&*topic, "");
    }

    #[cfg(feature = "idempotency")]
    #[test]
    fn bodies_without_a_string_id_are_refused() {
        for body in [
            &b""[..],
            b"not json",
            b"[]",
            br#"["notif_1","ping"]"#,
            b"\"notif_1\"",
            b"null",
            br#"{"data":{"id":"notif_1"}}"#,
            br#"{"id":""}"#,
            br#"{"id":null}"#,
            br#"{"id":42}"#,
            br#"{"id":["a"]}"#,
            br#"{"id":"a","id":"b"}"#,
            br#"{"id":"notif_1""#,
            br#"{"id":"notif_1"} trailing"#,
            br#"{"id":"\ud800"}"#,
            b"{\"id\":\"\xff\xfe\"}",
        ] {
            assert!(
                id_and_topic(body).is_none(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
