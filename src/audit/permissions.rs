//! Least privilege: the permissions a service's webhook topics need, to
//! compare by hand with what its app holds.

use super::report::{Check, Status};
use crate::notification::{Permission, Topic};

/// Check id.
pub(crate) const LEAST_PRIVILEGE: &str = "permissions.least_privilege";

/// Where to compare, since no API says.
pub(crate) const WHERE_TO_COMPARE: &str =
    "Intercom offers no API to list a token's permissions: compare by hand in the Developer Hub > your app > Configure > Authentication, and remove any permission not listed here";

pub(crate) fn run(topics: &[Topic]) -> Check {
    if topics.is_empty() {
        return Check::skipped(
            LEAST_PRIVILEGE,
            "no topics given (the topics the service subscribes to: --topics FILE)",
        );
    }
    let unknown: Vec<&str> = topics
        .iter()
        .filter(|topic| !topic.is_known())
        .map(Topic::as_str)
        .collect();
    if !unknown.is_empty() {
        return Check::failed(
            LEAST_PRIVILEGE,
            format!("unknown topic(s): {}", unknown.join(", ")),
            "fix the topic names (`Topic::known()` lists every topic tower-intercom knows), or check them against Intercom's webhook topic reference",
        );
    }
    let needed = Permission::required_for(topics);
    let mut details: Vec<String> = if needed.is_empty() {
        vec!["these topics need no permission".to_owned()]
    } else {
        needed.iter().map(|p| format!("needed: {p}")).collect()
    };
    details.push(WHERE_TO_COMPARE.to_owned());
    Check::new(
        LEAST_PRIVILEGE,
        Status::Manual,
        format!(
            "{} topic(s) need {} permission(s); compare with the app's by hand",
            topics.len(),
            needed.len()
        ),
    )
    .with_details(details)
}
