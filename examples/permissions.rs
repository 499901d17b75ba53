//! Run with `cargo run --example permissions -- TOPIC...`
//!
//! Prints the app permissions Intercom requires before it sends the given
//! webhook topics, and the minimum list to request for all of them:
//!
//! ```text
//! $ cargo run --example permissions -- conversation.user.replied ticket.created contact.user.created
//! conversation.user.replied  Read conversations
//! ticket.created             Read tickets
//! contact.user.created       Read and list users and companies (or: Read and write users, Read one user and one company)
//!
//! Minimum permissions for these topics:
//!   - Read and list users and companies
//!   - Read conversations
//!   - Read tickets
//! ```
//!
//! Topics may also be separated by commas. `--list` prints every topic
//! this crate knows. The data comes from `Topic::required_permission`,
//! `Topic::accepted_permissions` and `Permission::required_for`.
//!
//! A topic the crate does not know is an error (exit status 1), with the
//! nearest known topics suggested:
//!
//! ```text
//! $ cargo run --example permissions -- contact.created
//! contact.created  unknown to tower-intercom
//!
//! 1 unknown topic(s) not counted: check Intercom's webhook topic reference.
//! error: unknown topic contact.created; did you mean contact.lead.created, contact.user.created, contact.lead.tag.created?
//! ```

use std::{env, fmt::Write as _, process::ExitCode};

use tower_intercom::notification::{Permission, Topic};

const USAGE: &str = "usage: cargo run --example permissions -- TOPIC... | --list

  TOPIC   a webhook topic, e.g. conversation.user.replied (commas also separate topics)
  --list  every topic this crate knows, with its permission";

/// The report for `topics`: one line per topic, then the minimum list.
fn report(topics: &[Topic]) -> String {
    let width = topics.iter().map(|t| t.as_str().len()).max().unwrap_or(0);
    let mut out = String::new();
    for topic in topics {
        let _ = writeln!(out, "{:width$}  {}", topic.as_str(), describe(topic));
    }
    let unknown = topics.iter().filter(|t| !t.is_known()).count();
    let needed = Permission::required_for(topics);
    out.push('\n');
    if unknown == topics.len() {
        // Nothing known to count.
    } else if needed.is_empty() {
        out.push_str("These topics need no permission.\n");
    } else {
        out.push_str("Minimum permissions for these topics:\n");
        for permission in &needed {
            let _ = writeln!(out, "  - {permission}");
        }
    }
    if unknown > 0 {
        if unknown < topics.len() {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{unknown} unknown topic(s) not counted: check Intercom's webhook topic reference."
        );
    }
    out
}

/// The known topics nearest to the unknown `topic`, nearest first, at most
/// three: those that hold every dot-separated word of `topic` in the same
/// order (`contact.created` → `contact.user.created`), then those a few
/// edits away (`conversation.user.replyed` → `conversation.user.replied`).
fn suggestions(topic: &str) -> Vec<&'static str> {
    let words: Vec<&str> = topic.split('.').collect();
    let holds_every_word = |known: &str| {
        let mut known_words = known.split('.');
        words.iter().all(|word| known_words.any(|k| k == *word))
    };
    let max_edits = (topic.len() / 4).max(2);
    let mut near: Vec<(usize, usize, &'static str)> = Topic::known()
        .iter()
        .map(Topic::as_str)
        .filter_map(|known| {
            let edits = strsim::levenshtein(topic, known);
            if holds_every_word(known) {
                Some((0, edits, known))
            } else if edits <= max_edits {
                Some((1, edits, known))
            } else {
                None
            }
        })
        .collect();
    near.sort_unstable();
    near.into_iter()
        .take(3)
        .map(|(_, _, known)| known)
        .collect()
}

/// The error line for an unknown topic, with suggestions when there are any.
fn unknown_topic(topic: &Topic) -> String {
    let near = suggestions(topic.as_str());
    if near.is_empty() {
        format!("error: unknown topic {topic}; `--list` prints every known topic")
    } else {
        format!(
            "error: unknown topic {topic}; did you mean {}?",
            near.join(", ")
        )
    }
}

/// What one topic needs.
fn describe(topic: &Topic) -> String {
    if !topic.is_known() {
        return "unknown to tower-intercom".to_owned();
    }
    match topic.accepted_permissions() {
        [] => "no permission needed (always subscribed)".to_owned(),
        [only] => only.to_string(),
        [first, others @ ..] => {
            let others: Vec<&str> = others.iter().map(|p| p.name()).collect();
            format!("{first} (or: {})", others.join(", "))
        }
    }
}

/// The topics named by the arguments: separated by spaces or commas.
fn topics_from_args(args: impl IntoIterator<Item = String>) -> Vec<Topic> {
    args.into_iter()
        .flat_map(|arg| {
            arg.split(',')
                .map(str::trim)
                .filter(|topic| !topic.is_empty())
                .map(Topic::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|arg| arg == "--list") {
        print!("{}", report(Topic::known()));
        return ExitCode::SUCCESS;
    }
    if let Some(flag) = args.iter().find(|arg| arg.starts_with('-')) {
        eprintln!("error: unknown option {flag}\n\n{USAGE}");
        return ExitCode::from(2);
    }
    let topics = topics_from_args(args);
    if topics.is_empty() {
        eprintln!("error: name at least one topic\n\n{USAGE}");
        return ExitCode::from(2);
    }
    print!("{}", report(&topics));
    let unknown: Vec<&Topic> = topics.iter().filter(|t| !t.is_known()).collect();
    for topic in &unknown {
        eprintln!("{}", unknown_topic(topic));
    }
    if unknown.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
