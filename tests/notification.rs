//! Parsing Intercom's notifications: realistic payloads for several topics,
//! typed items, deletion topics, unknown topics and fields, and topic
//! permissions.

use std::{fs, path::PathBuf};

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;
use tower_intercom::notification::{DeletedItem, Notification, Permission, Topic};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notifications")
}

fn fixture(topic: &str) -> Vec<u8> {
    let path = fixtures_dir().join(format!("{topic}.json"));
    fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn every_fixture_parses_and_its_topic_matches_its_name() {
    let mut count = 0;
    for entry in fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let bytes = fs::read(&path).unwrap();
        let notification: Notification = Notification::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(notification.topic, name.as_str());
        assert!(notification.topic.is_known(), "{name}");
        assert!(notification.id.starts_with("notif_"), "{name}");
        assert_eq!(notification.kind.as_deref(), Some("notification_event"));
        assert_eq!(notification.app_id.as_deref(), Some("a86dr8yl"));
        assert!(notification.created_at.is_some_and(|t| t > 1_700_000_000));
        assert!(notification.data.item.get("type").is_some(), "{name}");
        count += 1;
    }
    assert!(count >= 5, "only {count} fixtures found");
}

#[test]
fn ping_envelope_fields() {
    let n: Notification = Notification::from_slice(&fixture("ping")).unwrap();
    assert_eq!(n.topic, Topic::PING);
    assert_eq!(n.id, "notif_8c0d4b3e-2a4f-4e1b-9d7c-5f6a7b8c9d0e");
    assert_eq!(n.created_at, Some(1718096399));
    assert_eq!(n.first_sent_at, Some(1718096400));
    assert_eq!(n.delivery_attempts, Some(1));
    assert_eq!(n.delivery_status.as_deref(), Some("pending"));
    assert_eq!(n.delivered_at, Some(0));
    assert_eq!(n.self_url, None);
    assert_eq!(n.links, Some(serde_json::json!({})));
    assert_eq!(n.data.kind.as_deref(), Some("notification_event_data"));
    assert_eq!(n.data.item["message"], "something something interzen");
}

/// What an app might model of a conversation: only the fields it uses.
#[derive(Debug, Deserialize)]
struct Conversation {
    id: String,
    state: String,
    source: Source,
    conversation_parts: Parts,
}

#[derive(Debug, Deserialize)]
struct Source {
    author: Author,
}

#[derive(Debug, Deserialize)]
struct Parts {
    conversation_parts: Vec<Part>,
    total_count: usize,
}

#[derive(Debug, Deserialize)]
struct Part {
    id: String,
    part_type: String,
    body: Option<String>,
    author: Author,
    #[serde(default)]
    attachments: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Author {
    #[serde(rename = "type")]
    kind: String,
    email: Option<String>,
}

#[test]
fn a_conversation_with_parts_parses_into_the_apps_own_type() {
    let n =
        Notification::<Conversation>::from_slice(&fixture("conversation.user.replied")).unwrap();
    assert_eq!(n.topic, Topic::CONVERSATION_USER_REPLIED);
    let conversation = n.data.item;
    assert_eq!(conversation.id, "215468012345678");
    assert_eq!(conversation.state, "open");
    assert_eq!(conversation.source.author.kind, "user");
    let parts = &conversation.conversation_parts;
    assert_eq!(parts.total_count, 2);
    assert_eq!(parts.conversation_parts.len(), 2);
    let last = parts.conversation_parts.last().unwrap();
    assert_eq!(last.id, "23456789999");
    assert_eq!(last.part_type, "comment");
    assert_eq!(last.author.email.as_deref(), Some("alice@example.com"));
    assert!(last.body.as_deref().unwrap().contains("May 3rd"));
    assert_eq!(last.attachments.len(), 1);
    assert_eq!(parts.conversation_parts[0].author.kind, "admin");
}

#[test]
fn contact_company_and_ticket_items() {
    #[derive(Deserialize)]
    struct Contact {
        id: String,
        role: String,
        external_id: Option<String>,
        email: Option<String>,
    }
    let n = Notification::<Contact>::from_slice(&fixture("contact.user.created")).unwrap();
    assert_eq!(n.topic, Topic::CONTACT_USER_CREATED);
    assert_eq!(n.data.item.id, "6650c1f2a1b2c3d4e5f60718");
    assert_eq!(n.data.item.role, "user");
    assert_eq!(n.data.item.external_id.as_deref(), Some("user-42"));
    assert_eq!(n.data.item.email.as_deref(), Some("alice@example.com"));

    // The reference's own example leaves out data.type, links,
    // delivery_status, delivered_at and self.
    let n: Notification = Notification::from_slice(&fixture("company.created")).unwrap();
    assert_eq!(n.topic, Topic::COMPANY_CREATED);
    assert_eq!(n.data.kind, None);
    assert_eq!(n.links, None);
    assert_eq!(n.delivery_status, None);
    assert_eq!(n.delivered_at, None);
    assert_eq!(n.self_url, None);
    assert_eq!(n.data.item["name"], "Example Company Inc.");

    let n: Notification = Notification::from_slice(&fixture("ticket.created")).unwrap();
    assert_eq!(n.topic, Topic::TICKET_CREATED);
    assert_eq!(n.data.item["ticket_state"]["category"], "submitted");
}

#[test]
fn deletion_topics_carry_only_identifying_fields_and_parse() {
    let bytes = fixture("contact.deleted");
    let n = Notification::<DeletedItem>::from_slice(&bytes).unwrap();
    assert_eq!(n.topic, Topic::CONTACT_DELETED);
    assert!(n.topic.is_deleted());
    assert_eq!(n.delivery_attempts, Some(2));
    assert_eq!(n.data.item.kind.as_deref(), Some("contact"));
    assert_eq!(n.data.item.id, "6650c1f2a1b2c3d4e5f60718");
    assert_eq!(n.data.item.deleted, Some(true));

    // The same bytes read untyped, then typed from the topic.
    let untyped: Notification = Notification::from_slice(&bytes).unwrap();
    let item: DeletedItem = untyped.item_as().unwrap();
    assert_eq!(item, n.data.item);

    // A full model of a contact would not fit a deleted contact: that is
    // what DeletedItem is for.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Contact {
        id: String,
        role: String,
    }
    assert!(untyped.item_as::<Contact>().is_err());
}

#[test]
fn unknown_topics_and_unknown_fields_still_parse() {
    let body = br#"{"type":"notification_event","id":"notif_x","topic":"spaceship.launched",
        "brand_new_field":{"nested":[1,2,3]},"created_at":1718099999,
        "data":{"type":"notification_event_data","item":{"type":"spaceship","id":"1"},"extra":true}}"#;
    let n: Notification = Notification::from_slice(body).unwrap();
    assert_eq!(n.topic, "spaceship.launched");
    assert!(!n.topic.is_known());
    assert_eq!(n.topic.required_permission(), None);
    assert_eq!(n.data.item["type"], "spaceship");
}

#[test]
fn only_id_topic_and_data_item_are_required() {
    let minimal: Notification =
        Notification::from_slice(br#"{"id":"notif_1","topic":"ping","data":{"item":null}}"#)
            .unwrap();
    assert_eq!(minimal.kind, None);
    assert_eq!(minimal.app_id, None);
    assert_eq!(minimal.created_at, None);
    assert_eq!(minimal.first_sent_at, None);
    assert_eq!(minimal.delivery_attempts, None);

    for (body, missing) in [
        (r#"{"topic":"ping","data":{"item":{}}}"#, "id"),
        (r#"{"id":"notif_1","data":{"item":{}}}"#, "topic"),
        (r#"{"id":"notif_1","topic":"ping"}"#, "data"),
        (r#"{"id":"notif_1","topic":"ping","data":{}}"#, "item"),
    ] {
        let err = Notification::<Value>::from_slice(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
        assert_eq!(err.line(), 1);
    }
}

#[test]
fn json_errors_point_at_line_and_column() {
    let body = b"{\n  \"id\": \"notif_1\",\n  \"topic\": 7\n}";
    let err = Notification::<Value>::from_slice(body).unwrap_err();
    assert_eq!(err.line(), 3);
    assert!(err.column() > 0);
}

#[test]
fn notifications_round_trip_through_serde() {
    for topic in ["ping", "conversation.user.replied", "contact.deleted"] {
        let n: Notification = Notification::from_slice(&fixture(topic)).unwrap();
        let again: Notification =
            serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(again, n, "{topic}");
    }
}

#[test]
fn topics_know_their_permissions() {
    assert_eq!(
        Topic::CONVERSATION_USER_CREATED.required_permission(),
        Some(Permission::ReadConversations)
    );
    assert_eq!(
        Topic::TICKET_STATE_UPDATED.required_permission(),
        Some(Permission::ReadTickets)
    );
    assert_eq!(
        Topic::CONTACT_LEAD_CREATED.required_permission(),
        Some(Permission::ReadOneUserAndOneCompany)
    );
    assert_eq!(
        Topic::ADMIN_LOGGED_IN.required_permission(),
        Some(Permission::ReadAdmins)
    );
    assert_eq!(Topic::PING.required_permission(), None);
    assert_eq!(
        Permission::ReadAndListUsersAndCompanies.to_string(),
        "Read and list users and companies"
    );

    let subscription: Vec<Topic> = [
        "conversation.user.created",
        "conversation.user.replied",
        "conversation.admin.replied",
        "conversation.admin.closed",
        "contact.user.created",
        "contact.lead.created",
        "company.created",
        "ticket.created",
        "ping",
        "not.a.real.topic",
    ]
    .into_iter()
    .map(Topic::from)
    .collect();
    assert_eq!(
        Permission::required_for(&subscription),
        [
            Permission::ReadOneUserAndOneCompany,
            Permission::ReadConversations,
            Permission::ReadTickets,
        ]
    );
    assert!(Permission::required_for(Vec::<Topic>::new()).is_empty());
}

#[test]
fn topics_compare_with_text_and_work_as_set_keys() {
    let set: std::collections::HashSet<Topic> = [Topic::PING, Topic::from("custom.topic")]
        .into_iter()
        .collect();
    assert!(set.contains("ping"));
    assert!(set.contains("custom.topic"));
    assert_eq!(Topic::from("ping".to_owned()), Topic::PING);
    assert_eq!(format!("{}", Topic::TICKET_CLOSED), "ticket.closed");
    assert_eq!(format!("{:?}", Topic::PING), "Topic(\"ping\")");
    assert_eq!(String::from(Topic::PING), "ping");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes: an error or a notification, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Notification::<Value>::from_slice(&bytes);
        let _ = Notification::<DeletedItem>::from_slice(&bytes);
    }

    /// Any value in any envelope field: an error or a notification, never a
    /// panic.
    #[test]
    fn odd_field_values_never_panic(
        field in prop::sample::select(vec!["id", "topic", "created_at", "first_sent_at",
            "delivered_at", "delivery_attempts", "app_id", "self", "links", "type"]),
        value in prop_oneof![
            Just("null".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
            ".{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("true".to_owned()),
        ],
    ) {
        let mut envelope = serde_json::json!({"id":"notif_1","topic":"ping","data":{"item":{}}});
        envelope[field] = serde_json::from_str(&value).unwrap();
        let _ = Notification::<Value>::from_slice(envelope.to_string().as_bytes());
    }
}
