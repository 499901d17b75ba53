//! The inbox's check of a body: what it says is wrong, and what it does
//! not look at.

use super::*;

fn refusal(body: &[u8]) -> (String, Option<(usize, usize)>) {
    let invalid = inbox_envelope(body).unwrap_err();
    (invalid.message().to_owned(), invalid.position())
}

#[test]
fn what_is_wrong_is_said() {
    let full = br#"{"type":"notification_event","id":"notif_1","topic":"ping","data":{"item":{}}}"#;
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
