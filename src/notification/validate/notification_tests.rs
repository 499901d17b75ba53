//! Why a body did not parse as a `Notification<T>`: the first field that
//! does not fit, named and placed, never quoted.

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
    let body = b"{\"id\":\"n\",\"topic\":\"ping\",\n\"data\":{\"item\":{\"id\":\"secret-text\"}}}";
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
