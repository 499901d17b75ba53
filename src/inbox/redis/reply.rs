//! Reading the scripts' replies and the stored messages.

use std::time::SystemTime;

use bytes::Bytes;
use redis::Value;

use super::{time, StoreError};

/// A stored message, `seq:received_at:topic_len:topic`, and its body from
/// `{P}:bodies`; a message stored before the bodies had their own hash
/// (no body there) carries its body after the topic.
pub(super) fn decode(
    message: Vec<u8>,
    body: Value,
) -> Result<(u64, SystemTime, String, Bytes), StoreError> {
    let mut rest = &message[..];
    let mut number = || -> Result<u64, StoreError> {
        let colon = rest.iter().position(|&b| b == b':').ok_or_else(malformed)?;
        let digits = std::str::from_utf8(&rest[..colon]).map_err(|_| malformed())?;
        let n = digits.parse::<u64>().map_err(|_| malformed())?;
        rest = &rest[colon + 1..];
        Ok(n)
    };
    let seq = number()?;
    let received_at = number()?;
    let topic_len = usize::try_from(number()?).map_err(|_| malformed())?;
    if rest.len() < topic_len {
        return Err(malformed());
    }
    let topic = String::from_utf8(rest[..topic_len].to_vec()).map_err(|_| malformed())?;
    let body = match body {
        Value::Nil => {
            let offset = message.len() - rest.len() + topic_len;
            Bytes::from(message).slice(offset..)
        }
        body => Bytes::from(bytes(body)?),
    };
    Ok((seq, time(received_at), topic, body))
}

pub(super) fn malformed() -> StoreError {
    StoreError::unavailable("Redis returned an unexpected reply to an inbox script")
}

pub(super) fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(malformed),
        _ => Err(malformed()),
    }
}

pub(super) fn bytes(value: Value) -> Result<Vec<u8>, StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        _ => Err(malformed()),
    }
}

pub(super) fn text(value: Value) -> Result<String, StoreError> {
    String::from_utf8(bytes(value)?).map_err(|_| malformed())
}

pub(super) fn list(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(malformed()),
    }
}

pub(super) fn array<const N: usize>(value: Value) -> Result<[Value; N], StoreError> {
    <[Value; N]>::try_from(list(value)?).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::redis::millis;

    #[test]
    fn messages_round_trip() {
        let topic = "conversation:user.created";
        let body = b"{\"id\":\"a:b\"}\0\xff";
        let mut message = format!("42:1700000000123:{}:", topic.len()).into_bytes();
        message.extend_from_slice(topic.as_bytes());
        let meta = message.clone();
        message.extend_from_slice(body);
        // A body that went from its hash (the notification was done by
        // another worker since the claim) reads as empty, which the claim
        // tells from a stored empty body by the missing hash field.
        let (.., gone) = decode(meta.clone(), Value::Nil).unwrap();
        assert!(gone.is_empty());
        // The body in its own hash, or (stored by an earlier version)
        // after the topic.
        for (message, body_value) in [
            (meta, Value::BulkString(body.to_vec())),
            (message, Value::Nil),
        ] {
            let (seq, received_at, decoded_topic, decoded_body) =
                decode(message, body_value).unwrap();
            assert_eq!(seq, 42);
            assert_eq!(millis(received_at), 1_700_000_000_123);
            assert_eq!(decoded_topic, topic);
            assert_eq!(&decoded_body[..], body);
        }
        for bad in [&b""[..], b"1:2", b"1:2:9:short", b"x:2:0:", b"1:2:1:\xff"] {
            assert!(decode(bad.to_vec(), Value::Nil).is_err(), "{bad:?}");
        }
    }
}
