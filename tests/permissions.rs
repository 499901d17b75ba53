//! `examples/permissions.rs`: the report a user reads to pick the app
//! permissions for a webhook subscription.

#[allow(dead_code)]
#[path = "../examples/permissions.rs"]
mod example;

use example::{report, topics_from_args};
use tower_intercom::notification::Topic;

#[test]
fn the_report_lists_each_topic_and_the_deduplicated_minimum() {
    let topics = topics_from_args(
        [
            "conversation.user.replied,conversation.admin.closed",
            " ticket.created ",
            "contact.user.created",
            "ping",
            "spaceship.launched",
        ]
        .map(String::from),
    );
    assert_eq!(topics.len(), 6);
    assert_eq!(topics[1], Topic::CONVERSATION_ADMIN_CLOSED);
    assert_eq!(topics[2], Topic::TICKET_CREATED);

    let report = report(&topics);
    let lines: Vec<&str> = report.lines().collect();
    assert!(lines[0].starts_with("conversation.user.replied"));
    assert!(lines[0].ends_with("Read conversations"));
    assert!(lines[2].ends_with("Read tickets"));
    assert!(lines[3].contains(
        "Read one user and one company (or: Read and list users and companies, Read and write users)"
    ));
    assert!(lines[4].contains("no permission needed"));
    assert!(lines[5].contains("unknown"));

    let minimum = report
        .split("Minimum permissions for these topics:\n")
        .nth(1)
        .unwrap();
    let minimum: Vec<&str> = minimum
        .lines()
        .take_while(|line| line.starts_with("  - "))
        .collect();
    assert_eq!(
        minimum,
        [
            "  - Read one user and one company",
            "  - Read conversations",
            "  - Read tickets"
        ]
    );
    assert!(report.contains("1 unknown topic(s) not counted"));
}

#[test]
fn ping_alone_needs_nothing() {
    let report = report(&[Topic::PING]);
    assert!(report.contains("These topics need no permission."));
    assert!(!report.contains("unknown"));
}

#[test]
fn every_known_topic_has_a_line() {
    let report = report(Topic::known());
    for topic in Topic::known() {
        assert!(
            report.lines().any(|line| line.starts_with(topic.as_str())),
            "{topic}"
        );
    }
    assert!(!report.contains("unknown to tower-intercom"));
}
