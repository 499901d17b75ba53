//! `examples/permissions.rs`, run as a user runs it: the report a user
//! reads to pick the app permissions for a webhook subscription.

use tower_intercom::notification::Topic;
use tower_intercom_test_support::examples;

/// What the example prints for `args`, whose topics are all known.
fn permissions(args: &[&str]) -> String {
    let output = examples::command("permissions")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// What the example prints for `args`, some of whose topics are unknown:
/// the report on standard output, the errors on standard error, and a
/// failed exit status.
fn permissions_with_unknown(args: &[&str]) -> (String, String) {
    let output = examples::command("permissions")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_report_lists_each_topic_and_the_deduplicated_minimum() {
    let (report, _) = permissions_with_unknown(&[
        "conversation.user.replied,conversation.admin.closed",
        " ticket.created ",
        "contact.user.created",
        "ping",
        "spaceship.launched",
    ]);
    let lines: Vec<&str> = report.lines().collect();
    // One line per topic, commas and spaces separating the topics.
    let topics: Vec<Topic> = lines
        .iter()
        .take_while(|line| !line.is_empty())
        .map(|line| Topic::from(line.split_whitespace().next().unwrap()))
        .collect();
    assert_eq!(topics.len(), 6);
    assert_eq!(topics[1], Topic::CONVERSATION_ADMIN_CLOSED);
    assert_eq!(topics[2], Topic::TICKET_CREATED);

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
fn an_unknown_topic_fails_and_suggests_the_nearest_known_ones() {
    let (report, errors) = permissions_with_unknown(&["contact.created"]);
    assert!(report.contains("contact.created  unknown to tower-intercom"));
    // All topics unknown: no claim that they need no permission.
    assert!(!report.contains("need no permission"), "{report}");
    assert_eq!(
        errors.trim(),
        "error: unknown topic contact.created; did you mean \
         contact.lead.created, contact.user.created, contact.lead.tag.created?"
    );

    // A misspelling: the topic a few letters away comes first.
    let (_, errors) = permissions_with_unknown(&["ping", "conversation.user.replyed"]);
    assert!(
        errors.starts_with(
            "error: unknown topic conversation.user.replyed; did you mean conversation.user.replied,"
        ),
        "{errors}"
    );

    // Nothing near: a pointer to the list instead.
    let (_, errors) = permissions_with_unknown(&["spaceship.launched"]);
    assert_eq!(
        errors.trim(),
        "error: unknown topic spaceship.launched; `--list` prints every known topic"
    );
}

#[test]
fn ping_alone_needs_nothing() {
    let report = permissions(&["ping"]);
    assert!(report.contains("These topics need no permission."));
    assert!(!report.contains("unknown"));
}

#[test]
fn every_known_topic_has_a_line() {
    let report = permissions(&["--list"]);
    for topic in Topic::known() {
        assert!(
            report.lines().any(|line| line.starts_with(topic.as_str())),
            "{topic}"
        );
    }
    assert!(!report.contains("unknown to tower-intercom"));
}
