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

use serde::de::IgnoredAny;

use self::fields::{Data, Fields, Scalar};
#[cfg(feature = "axum")]
use super::{envelope::lenient, Notification};

mod fields;
#[cfg(all(test, feature = "axum"))]
mod notification_tests;
#[cfg(all(test, feature = "inbox"))]
mod tests;

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
