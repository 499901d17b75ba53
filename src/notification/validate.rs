//! What a verified body must look like to be a notification, and what is
//! wrong with one that does not.
//!
//! The inbox's receiver refuses a body the worker could not use (not JSON,
//! not an object, no string `id`, no string `topic`, no `data.item`, a
//! `type` other than `notification_event`) before it commits anything; the
//! axum extractor explains why a body did not parse as a
//! [`Notification`](super::Notification). Each answer is a fixed message
//! naming the field; none repeats any of the body's text, and JSON syntax
//! errors carry serde_json's line and column.

use std::{borrow::Cow, fmt};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[cfg(feature = "axum")]
use super::{envelope::lenient, Notification};

/// Why a body is not a notification: a message that says what is wrong
/// (never any of the body's text), and where, for JSON syntax errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    message: Cow<'static, str>,
    position: Option<(usize, usize)>,
}

impl Invalid {
    fn new(message: &'static str) -> Self {
        Self {
            message: Cow::Borrowed(message),
            position: None,
        }
    }

    fn not_json(error: &serde_json::Error) -> Self {
        // Syntax and end-of-input errors name what was expected, never the
        // text found.
        Self {
            message: Cow::Owned(format!("the body is not JSON: {error}")),
            position: Some((error.line(), error.column())),
        }
    }

    /// The message, for the `error` of the receiver's JSON error body.
    #[cfg(feature = "inbox")]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The line and column (from 1) of a JSON syntax error.
    pub(crate) fn position(&self) -> Option<(usize, usize)> {
        self.position
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The `id` and `topic` of a body the inbox can store, or why it cannot:
/// a JSON object with a non-empty string `id`, a non-empty string `topic`,
/// a `data` object with an `item`, and a `type`, when there is one, of
/// `notification_event`. Other fields are not looked at: the worker gets
/// the exact bytes.
#[cfg(feature = "inbox")]
pub(crate) fn inbox_envelope(body: &[u8]) -> Result<(Cow<'_, str>, Cow<'_, str>), Invalid> {
    let fields = read(body)?;
    if let Some(name) = fields.duplicate {
        return Err(duplicate(name));
    }
    match &fields.kind {
        None => {}
        Some(Scalar::Str(kind)) if kind == "notification_event" => {}
        Some(_) => {
            return Err(Invalid::new(
                "the body's `type` is not \"notification_event\": it is not a webhook notification",
            ))
        }
    }
    let id = match fields.id {
        None => return Err(Invalid::new(NO_ID)),
        Some(Scalar::Str(id)) if id.is_empty() => {
            return Err(Invalid::new("the notification's `id` is empty"))
        }
        Some(Scalar::Str(id)) => id,
        Some(_) => return Err(Invalid::new("the notification's `id` is not a string")),
    };
    let topic = match fields.topic {
        None => return Err(Invalid::new(NO_TOPIC)),
        Some(Scalar::Str(topic)) if topic.is_empty() => {
            return Err(Invalid::new("the notification's `topic` is empty"))
        }
        Some(Scalar::Str(topic)) => topic,
        Some(_) => return Err(Invalid::new(TOPIC_NOT_STRING)),
    };
    data(fields.data.as_ref(), false)?;
    Ok((id, topic))
}

/// `body` parsed as a [`Notification<T>`], or what is wrong
/// with it, and serde_json's error when it is one.
#[cfg(feature = "axum")]
pub(crate) fn notification<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<Notification<T>, (Invalid, Option<serde_json::Error>)> {
    // Serde's derived structs also take arrays: only an object is a
    // notification (`envelope_problem` says what it is instead).
    let first = body
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\r' | b'\n'));
    let error = if first == Some(&b'{') {
        match Notification::from_slice(body) {
            Ok(notification) => return Ok(notification),
            Err(error) => Some(error),
        }
    } else {
        None
    };
    let invalid = envelope_problem(body)
        .or_else(|| error.as_ref().map(item_mismatch))
        .unwrap_or_else(|| Invalid::new("the body is not a notification"));
    Err((invalid, error))
}

/// Why `body`, which did not parse as a [`Notification`], is not one: the
/// first field that does not have the shape the envelope needs. `None`
/// when the envelope is fine: then `data.item` is what did not fit.
#[cfg(feature = "axum")]
fn envelope_problem(body: &[u8]) -> Option<Invalid> {
    let fields = match read(body) {
        Ok(fields) => fields,
        Err(invalid) => return Some(invalid),
    };
    if let Some(name) = fields.duplicate {
        return Some(duplicate(name));
    }
    let string =
        |field: &Option<Scalar<'_>>| matches!(field, None | Some(Scalar::Null | Scalar::Str(_)));
    if !string(&fields.kind) {
        return Some(Invalid::new("the notification's `type` is not a string"));
    }
    match fields.id {
        None => return Some(Invalid::new(NO_ID)),
        Some(Scalar::Str(_)) => {}
        Some(Scalar::Number(n)) if !n.is_f64() => {}
        Some(_) => {
            return Some(Invalid::new(
                "the notification's `id` is not a string or an integer",
            ))
        }
    }
    match fields.topic {
        None => return Some(Invalid::new(NO_TOPIC)),
        Some(Scalar::Str(_)) => {}
        Some(_) => return Some(Invalid::new(TOPIC_NOT_STRING)),
    }
    for (field, message) in [
        (
            &fields.optional.app_id,
            "the notification's `app_id` is not a string",
        ),
        (
            &fields.optional.delivery_status,
            "the notification's `delivery_status` is not a string",
        ),
        (
            &fields.optional.self_url,
            "the notification's `self` is not a string",
        ),
    ] {
        if !string(field) {
            return Some(Invalid::new(message));
        }
    }
    for (field, message) in [
        (
            &fields.optional.created_at,
            "the notification's `created_at` is not a Unix timestamp",
        ),
        (
            &fields.optional.first_sent_at,
            "the notification's `first_sent_at` is not a Unix timestamp",
        ),
        (
            &fields.optional.delivered_at,
            "the notification's `delivered_at` is not a Unix timestamp",
        ),
    ] {
        if field
            .as_ref()
            .is_some_and(|value| !value.fits(|v| lenient::timestamp(v)))
        {
            return Some(Invalid::new(message));
        }
    }
    if fields
        .optional
        .delivery_attempts
        .as_ref()
        .is_some_and(|value| !value.fits(|v| lenient::count(v)))
    {
        return Some(Invalid::new(
            "the notification's `delivery_attempts` is not a count",
        ));
    }
    data(fields.data.as_ref(), true).err()
}

/// The message when `data.item` does not fit the handler's type.
#[cfg(feature = "axum")]
fn item_mismatch(error: &serde_json::Error) -> Invalid {
    Invalid {
        message: Cow::Borrowed(
            "the notification's `data.item` does not have the shape this handler reads",
        ),
        position: Some((error.line(), error.column())),
    }
}

const NO_ID: &str = "the notification has no `id`";
const NO_TOPIC: &str = "the notification has no `topic`";
const TOPIC_NOT_STRING: &str = "the notification's `topic` is not a string";

fn duplicate(name: &'static str) -> Invalid {
    Invalid {
        message: Cow::Owned(format!("the notification has more than one `{name}`")),
        position: None,
    }
}

/// `data` must be an object with an `item`; with `typed`, its `type` must
/// be a string when present too.
fn data(data: Option<&Data<'_>>, typed: bool) -> Result<(), Invalid> {
    match data {
        None => Err(Invalid::new("the notification has no `data`")),
        Some(Data::Other) => Err(Invalid::new("the notification's `data` is not an object")),
        Some(Data::Object {
            duplicate: Some(name),
            ..
        }) => Err(duplicate(name)),
        Some(Data::Object { kind, .. })
            if typed && !matches!(kind, None | Some(Scalar::Null | Scalar::Str(_))) =>
        {
            Err(Invalid::new(
                "the notification's `data.type` is not a string",
            ))
        }
        Some(Data::Object { item: false, .. }) => {
            Err(Invalid::new("the notification has no `data.item`"))
        }
        Some(Data::Object { .. }) => Ok(()),
    }
}

/// The body's top-level fields, as far as the envelope needs them; or why
/// it is not a JSON object.
fn read(body: &[u8]) -> Result<Fields<'_>, Invalid> {
    if body.is_empty() {
        return Err(Invalid::new(
            "the body is empty: a notification is a JSON object",
        ));
    }
    // JSON is UTF-8; serde_json checks only the strings it reads, not the
    // ones it skips.
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            let (line, column) = position(&body[..error.valid_up_to()]);
            return Err(Invalid {
                message: Cow::Owned(format!(
                    "the body is not JSON: invalid UTF-8 at line {line} column {column}"
                )),
                position: Some((line, column)),
            });
        }
    };
    let first = text
        .trim_start_matches([' ', '\t', '\r', '\n'])
        .chars()
        .next();
    if first != Some('{') {
        // Serde's derived structs also take arrays: only an object is a
        // notification.
        if let Err(error) = serde_json::from_str::<IgnoredAny>(text) {
            return Err(Invalid::not_json(&error));
        }
        return Err(Invalid::new(match first {
            Some('[') => "the body is a JSON array, not an object: a notification is a JSON object",
            Some('"') => {
                "the body is a JSON string, not an object: a notification is a JSON object"
            }
            Some('t' | 'f') => {
                "the body is a JSON boolean, not an object: a notification is a JSON object"
            }
            Some('n') => "the body is JSON null, not an object: a notification is a JSON object",
            _ => "the body is a JSON number, not an object: a notification is a JSON object",
        }));
    }
    // The visitors below accept every JSON value, so an error is the
    // syntax's.
    serde_json::from_str::<Fields<'_>>(text).map_err(|error| Invalid::not_json(&error))
}

/// The line and column (from 1, in bytes) just after `before`.
fn position(before: &[u8]) -> (usize, usize) {
    let line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    let column = 1 + before
        .iter()
        .rev()
        .take_while(|&&byte| byte != b'\n')
        .count();
    (line, column)
}

#[cfg(feature = "axum")]
#[derive(Default)]
struct Optional<'a> {
    app_id: Option<Scalar<'a>>,
    created_at: Option<Scalar<'a>>,
    first_sent_at: Option<Scalar<'a>>,
    delivery_attempts: Option<Scalar<'a>>,
    delivery_status: Option<Scalar<'a>>,
    delivered_at: Option<Scalar<'a>>,
    self_url: Option<Scalar<'a>>,
}

/// The envelope's fields (`None`: absent), read without building the rest.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<Scalar<'a>>,
    id: Option<Scalar<'a>>,
    topic: Option<Scalar<'a>>,
    data: Option<Data<'a>>,
    /// The fields a [`Notification`](super::Notification) has types for
    /// but the inbox does not need.
    #[cfg(feature = "axum")]
    optional: Optional<'a>,
    /// The first field that appeared twice.
    duplicate: Option<&'static str>,
}

impl<'a> Fields<'a> {
    /// The slot of a top-level field the envelope reads, and its name.
    fn slot(&mut self, key: &str) -> Option<(&'static str, &mut Option<Scalar<'a>>)> {
        Some(match key {
            "type" => ("type", &mut self.kind),
            "id" => ("id", &mut self.id),
            "topic" => ("topic", &mut self.topic),
            #[cfg(feature = "axum")]
            "app_id" => ("app_id", &mut self.optional.app_id),
            #[cfg(feature = "axum")]
            "created_at" => ("created_at", &mut self.optional.created_at),
            #[cfg(feature = "axum")]
            "first_sent_at" => ("first_sent_at", &mut self.optional.first_sent_at),
            #[cfg(feature = "axum")]
            "delivery_attempts" => ("delivery_attempts", &mut self.optional.delivery_attempts),
            #[cfg(feature = "axum")]
            "delivery_status" => ("delivery_status", &mut self.optional.delivery_status),
            #[cfg(feature = "axum")]
            "delivered_at" => ("delivered_at", &mut self.optional.delivered_at),
            #[cfg(feature = "axum")]
            "self" => ("self", &mut self.optional.self_url),
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(Key(key)) = map.next_key()? {
                    let mut repeated = None;
                    if key == "data" {
                        if fields.data.is_some() {
                            repeated = Some("data");
                        } else {
                            fields.data = Some(map.next_value()?);
                            continue;
                        }
                    } else if let Some((name, slot)) = fields.slot(&key) {
                        if slot.is_some() {
                            repeated = Some(name);
                        } else {
                            *slot = Some(map.next_value()?);
                            continue;
                        }
                    }
                    // Skipped without recursion, however deeply nested.
                    map.next_value::<IgnoredAny>()?;
                    if fields.duplicate.is_none() {
                        fields.duplicate = repeated;
                    }
                }
                Ok(fields)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// The `data` field: an object (whether it has an `item`, and its `type`),
/// or something else.
enum Data<'a> {
    Object {
        kind: Option<Scalar<'a>>,
        item: bool,
        duplicate: Option<&'static str>,
    },
    Other,
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;

        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data<'de>, A::Error> {
                let (mut kind, mut item, mut duplicate) = (None, false, None);
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        "type" if kind.is_none() => {
                            kind = Some(map.next_value()?);
                            continue;
                        }
                        "item" if !item => item = true,
                        "type" => duplicate = duplicate.or(Some("data.type")),
                        "item" => duplicate = duplicate.or(Some("data.item")),
                        _ => {}
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(Data::Object {
                    kind,
                    item,
                    duplicate,
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Data::Other)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
        }

        deserializer.deserialize_any(DataVisitor)
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(Key)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A field's value: a scalar as read, or only the kind of a container
/// (skipped without building it).
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Null,
    Bool,
    Number(Number),
    Str(Cow<'a, str>),
    Container,
}

/// A number's value, kept only where it is looked at.
#[cfg(feature = "axum")]
type Number = serde_json::Number;
#[cfg(not(feature = "axum"))]
type Number = ();

fn number(n: serde_json::Number) -> Number {
    #[cfg(feature = "axum")]
    return n;
    #[cfg(not(feature = "axum"))]
    drop(n)
}

#[cfg(feature = "axum")]
impl Scalar<'_> {
    /// Whether the envelope's own deserializer for the field (one of
    /// `lenient`'s) takes this value.
    fn fits<T>(
        &self,
        read: impl FnOnce(&serde_json::Value) -> Result<T, serde_json::Error>,
    ) -> bool {
        let value = match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool => serde_json::Value::Bool(true),
            Self::Number(n) => serde_json::Value::Number(n.clone()),
            Self::Str(text) => serde_json::Value::String(text.clone().into_owned()),
            Self::Container => serde_json::Value::Array(Vec::new()),
        };
        read(&value).is_ok()
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(number(v.into())))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(number(v.into())))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                // `None` only for NaN and the infinities, which JSON has not.
                Ok(serde_json::Number::from_f64(v)
                    .map_or(Scalar::Container, |n| Scalar::Number(number(n))))
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Container)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Container)
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(all(test, feature = "inbox"))]
mod tests {
    use super::*;

    fn refusal(body: &[u8]) -> (String, Option<(usize, usize)>) {
        let invalid = inbox_envelope(body).unwrap_err();
        (invalid.message().to_owned(), invalid.position())
    }

    #[test]
    fn what_is_wrong_is_said() {
        let full =
            br#"{"type":"notification_event","id":"notif_1","topic":"ping","data":{"item":{}}}"#;
        let (id, topic) = inbox_envelope(full).unwrap();
        assert_eq!((&*id, &*topic), ("notif_1", "ping"));
        for (body, message) in [
            (
                &b""[..],
                "the body is empty: a notification is a JSON object",
            ),
            (
                b"[1,2,3]",
                "the body is a JSON array, not an object: a notification is a JSON object",
            ),
            (
                b"\"notif_1\"",
                "the body is a JSON string, not an object: a notification is a JSON object",
            ),
            (
                b" 42",
                "the body is a JSON number, not an object: a notification is a JSON object",
            ),
            (
                b"null",
                "the body is JSON null, not an object: a notification is a JSON object",
            ),
            (br#"{"topic":"ping"}"#, "the notification has no `id`"),
            (br#"{"id":42}"#, "the notification's `id` is not a string"),
            (br#"{"id":""}"#, "the notification's `id` is empty"),
            (
                br#"{"id":"notif_minimal_1"}"#,
                "the notification has no `topic`",
            ),
            (
                br#"{"id":"n","topic":7}"#,
                "the notification's `topic` is not a string",
            ),
            (
                br#"{"id":"n","topic":""}"#,
                "the notification's `topic` is empty",
            ),
            (
                br#"{"id":"n","topic":"ping"}"#,
                "the notification has no `data`",
            ),
            (
                br#"{"id":"n","topic":"ping","data":[]}"#,
                "the notification's `data` is not an object",
            ),
            (
                br#"{"id":"n","topic":"ping","data":{"type":"x"}}"#,
                "the notification has no `data.item`",
            ),
            (
                br#"{"type":"canvas","id":"n","topic":"ping","data":{"item":1}}"#,
                "the body's `type` is not \"notification_event\": it is not a webhook notification",
            ),
            (
                br#"{"id":"a","id":"b","topic":"ping","data":{"item":1}}"#,
                "the notification has more than one `id`",
            ),
            (
                br#"{"id":"a","topic":"ping","data":{"item":1,"item":2}}"#,
                "the notification has more than one `data.item`",
            ),
        ] {
            assert_eq!(
                refusal(body),
                (message.to_owned(), None),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn json_errors_have_serdes_line_and_column() {
        assert_eq!(
            refusal(b"{\"id\":\"notif_1\",\n\"topic\":\"pi"),
            (
                "the body is not JSON: EOF while parsing a string at line 2 column 11".to_owned(),
                Some((2, 11))
            )
        );
        assert_eq!(
            refusal(b"{\"id\":\"notif_1\",\n \"topic\": \xff\xfe}"),
            (
                "the body is not JSON: invalid UTF-8 at line 2 column 11".to_owned(),
                Some((2, 11))
            )
        );
        assert_eq!(
            refusal(b"[1,2"),
            (
                "the body is not JSON: EOF while parsing a list at line 1 column 4".to_owned(),
                Some((1, 4))
            )
        );
        let (message, position) = refusal(b"   ");
        assert!(
            message.starts_with("the body is not JSON: EOF"),
            "{message}"
        );
        assert_eq!(position, Some((1, 3)));
    }

    #[test]
    fn messages_never_repeat_the_body() {
        let secretish = "customer-secret-text";
        for body in [
            format!(r#"{{"id":"n","topic":"ping","data":{{"item":1}},"{secretish}":}}"#),
            format!(r#"{{"id":["{secretish}"],"topic":"ping","data":{{"item":1}}}}"#),
            format!(r#"{{"type":"{secretish}","id":"n","topic":"ping","data":{{"item":1}}}}"#),
            format!(r#"{{"id":"n","topic":{{"{secretish}":1}}}}"#),
            format!(r#"["{secretish}"]"#),
        ] {
            let (message, _) = refusal(body.as_bytes());
            assert!(!message.contains(secretish), "{message}");
        }
    }

    #[test]
    fn what_the_inbox_does_not_need_is_not_looked_at() {
        // Intercom's reference example without `data.type`, `links`, …;
        // odd values in fields the worker's handler may not read.
        let body = br#"{"id":"n","topic":"company.created","data":{"item":null},
            "created_at":"soon","app_id":5,"self":{"a":[[[]]]},"x":[[[[[[[[[[[]]]]]]]]]]]}"#;
        assert!(inbox_envelope(body).is_ok());
        let deep = format!(
            r#"{{"id":"deep","topic":"ping","data":{{"item":{}{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(inbox_envelope(deep.as_bytes()).is_ok());
    }
}

#[cfg(all(test, feature = "axum"))]
mod notification_tests {
    use super::*;

    fn problem(body: &[u8]) -> String {
        match notification::<serde_json::Value>(body) {
            Ok(_) => panic!("parsed: {}", String::from_utf8_lossy(body)),
            Err((invalid, _)) => invalid.to_string(),
        }
    }

    #[test]
    fn the_first_field_that_does_not_fit_is_named() {
        for (body, message) in [
            (
                &br#"["notif_1","ping",null,null,null,null,null,null,null,{"item":1}]"#[..],
                "the body is a JSON array, not an object: a notification is a JSON object",
            ),
            (
                br#"{"id":"notif_1","data":{"item":{}}}"#,
                "the notification has no `topic`",
            ),
            (
                br#"{"id":true,"topic":"ping","data":{"item":{}}}"#,
                "the notification's `id` is not a string or an integer",
            ),
            (
                br#"{"id":1.5,"topic":"ping","data":{"item":{}}}"#,
                "the notification's `id` is not a string or an integer",
            ),
            (
                br#"{"type":7,"id":"n","topic":"ping","data":{"item":{}}}"#,
                "the notification's `type` is not a string",
            ),
            (
                br#"{"id":"n","topic":"ping","data":{"item":{}},"created_at":"soon"}"#,
                "the notification's `created_at` is not a Unix timestamp",
            ),
            (
                br#"{"id":"n","topic":"ping","data":{"item":{}},"delivery_attempts":-1}"#,
                "the notification's `delivery_attempts` is not a count",
            ),
            (
                br#"{"id":"n","topic":"ping","data":{"item":{}},"self":{}}"#,
                "the notification's `self` is not a string",
            ),
            (
                br#"{"id":"n","topic":"ping","data":{"type":[],"item":{}}}"#,
                "the notification's `data.type` is not a string",
            ),
            (
                br#"{"id":"n","topic":"ping","data":{"item":{}},"app_id":"a","app_id":"b"}"#,
                "the notification has more than one `app_id`",
            ),
        ] {
            assert_eq!(problem(body), message, "{}", String::from_utf8_lossy(body));
        }
        // What the envelope accepts, the check accepts too.
        for body in [
            &br#"{"id":7,"topic":"ping","data":{"item":null}}"#[..],
            br#"{"type":null,"id":"n","topic":"ping","data":{"item":{}},"created_at":"17.5",
                "delivered_at":null,"first_sent_at":1e3,"delivery_attempts":"2","self":null}"#,
        ] {
            assert!(notification::<serde_json::Value>(body).is_ok());
            assert!(envelope_problem(body).is_none());
        }
    }

    #[test]
    fn an_item_that_does_not_fit_is_placed_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Conversation {
            id: String,
        }
        let body =
            b"{\"id\":\"n\",\"topic\":\"ping\",\n\"data\":{\"item\":{\"id\":\"secret-text\"}}}";
        let (invalid, json) = notification::<u32>(body).unwrap_err();
        assert_eq!(
            invalid.to_string(),
            "the notification's `data.item` does not have the shape this handler reads"
        );
        // Where serde_json stopped, which its own error names.
        let json = json.unwrap();
        assert_eq!(invalid.position(), Some((json.line(), json.column())));
        assert_eq!(json.line(), 2);
        assert!(json.to_string().contains("invalid type: map"));
        let (invalid, _) =
            notification::<Conversation>(br#"{"id":"n","topic":"ping","data":{"item":{"id":42}}}"#)
                .unwrap_err();
        assert!(!invalid.to_string().contains("42"));
    }
}
