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
    let unknown: Vec<&Topic> = topics.iter().filter(|t| !t.is_known()).collect();
    let needed = Permission::required_for(topics);
    out.push('\n');
    if needed.is_empty() {
        out.push_str("These topics need no permission.\n");
    } else {
        out.push_str("Minimum permissions for these topics:\n");
        for permission in &needed {
            let _ = writeln!(out, "  - {permission}");
        }
    }
    if !unknown.is_empty() {
        let _ = writeln!(
            out,
            "\n{} unknown topic(s) not counted: check Intercom's webhook topic reference.",
            unknown.len()
        );
    }
    out
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
    ExitCode::SUCCESS
}
