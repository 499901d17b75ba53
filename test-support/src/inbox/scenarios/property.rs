//! Arbitrary bodies: the receiver stores exactly the notifications, and
//! never panics.

use http::StatusCode;
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

use super::super::*;

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\PC{0,200}".prop_map(String::into_bytes),
        (any::<String>(), any::<String>()).prop_map(|(id, topic)| serde_json::json!({
            "id": id,
            "topic": topic,
            "data": {"item": {}}
        })
        .to_string()
        .into_bytes()),
        // Envelopes with each field present or not, of the right type
        // or not, sometimes twice.
        (
            "(\"type\":(\"notification_event\"|\"x\"|null|7),)?",
            "(\"id\":(\"[a-z]{0,3}\"|7|null),){0,2}",
            "(\"topic\":(\"[a-z]{0,3}\"|\\[\\]),){0,2}",
            "(\"data\":(\\{\\}|\\{\"item\":1\\}|\\{\"item\":1,\"item\":2\\}|1),)?",
        )
            .prop_map(|(kind, id, topic, data)| {
                format!("{{{kind}{id}{topic}{data}\"x\":0}}").into_bytes()
            }),
        (any::<i64>(), "[a-z{}\\[\\]\":,0-9 ]{0,64}")
            .prop_map(|(n, s)| format!("{{\"id\":{n},\"x\":\"{s}\"}}").into_bytes()),
        "[{}\\[\\]\":,a-z0-9\\\\ ]{0,128}".prop_map(|s| format!("{{\"id\":\"{s}\"}}").into_bytes()),
    ]
}

/// The id the receiver must find: a JSON object (UTF-8) with a non-empty
/// string `id`, a non-empty string `topic`, a `data` object with an
/// `item`, and no `type` but `notification_event`; none of these twice.
fn expected_id(body: &[u8]) -> Option<String> {
    use serde::{de::IgnoredAny, Deserialize, Deserializer};
    use serde_json::Value;

    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Value::deserialize(d).map(Some)
    }
    fn item<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        IgnoredAny::deserialize(d).map(|_| true)
    }
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "type", default, deserialize_with = "present")]
        kind: Option<Value>,
        #[serde(default, deserialize_with = "present")]
        id: Option<Value>,
        #[serde(default, deserialize_with = "present")]
        topic: Option<Value>,
        #[serde(default)]
        data: Option<Data>,
    }
    #[derive(Deserialize)]
    struct Data {
        #[serde(default, deserialize_with = "item")]
        item: bool,
    }
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    if !text
        .trim_start_matches([' ', '\t', '\r', '\n'])
        .starts_with('{')
    {
        return None;
    }
    let envelope = serde_json::from_str::<Envelope>(text).ok()?;
    match &envelope.kind {
        None => {}
        Some(Value::String(kind)) if kind == "notification_event" => {}
        Some(_) => return None,
    }
    let non_empty = |field: Option<Value>| match field {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    };
    let topic = non_empty(envelope.topic);
    let id = non_empty(envelope.id);
    (topic.is_some() && envelope.data?.item).then_some(id?)
}

fn total(counts: tower_intercom::inbox::Counts) -> u64 {
    counts.pending + counts.in_progress + counts.done + counts.dead
}

/// 256 cases of up to 8 arbitrary signed bodies each, all into one inbox
/// (a backend per case would spend the test's time starting them): each
/// body the receiver must take is answered 200 and then known (its
/// redelivery is a duplicate), each other body 400, and nothing else is
/// stored.
pub fn the_receiver_never_panics<H: InboxHarness>() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (harness, inbox) = runtime.block_on(start::<H>());
    let service = stack(&inbox);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let bodies = proptest::collection::vec(body(), 1..8);
    let outcome = runner.run(&bodies, |bodies| {
        runtime.block_on(async {
            let before = total(inbox.counts().await.unwrap());
            let mut valid = std::collections::HashSet::new();
            for body in bodies {
                let answer = deliver(&service, body.clone()).await;
                match expected_id(&body) {
                    Some(id) => {
                        prop_assert_eq!(answer.status, StatusCode::OK);
                        let again = deliver(&service, body).await;
                        prop_assert!(again.duplicate, "{} was not stored", id);
                        valid.insert(id);
                    }
                    None => prop_assert_eq!(answer.status, StatusCode::BAD_REQUEST),
                }
            }
            // Nothing else was stored.
            let after = total(inbox.counts().await.unwrap());
            prop_assert!(after <= before + valid.len() as u64);
            Ok(())
        })
    });
    drop(harness);
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
