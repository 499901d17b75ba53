//! The three `git.*` checks, from what the scan found.

use super::{Counts, COMPLETE, MIN_SEARCHED_LEN, SECRETS, TOKENS};
use crate::audit::{
    git::Repo,
    report::{Check, Finding, SecretKind},
};

pub(super) fn complete_check(repo: &Repo, counts: &Counts) -> Check {
    if repo.shallow {
        return Check::failed(
            COMPLETE,
            format!(
                "shallow clone: only {} commit(s) of the history are here, so tokens in older ones cannot be found",
                counts.commits
            ),
            "fetch the whole history before the audit: `git fetch --unshallow` (GitHub Actions: `actions/checkout` with `fetch-depth: 0`)",
        );
    }
    if counts.missing > 0 {
        return Check::failed(
            COMPLETE,
            format!(
                "{} object(s) reachable from refs are missing (a partial clone?), so they could not be scanned",
                counts.missing
            ),
            "audit a full clone: `git clone --no-filter`, or `git fetch --refetch` without a filter",
        );
    }
    if counts.commits == 0 {
        return Check::passed(COMPLETE, "no commits yet");
    }
    Check::passed(
        COMPLETE,
        format!(
            "every object reachable from a ref is here ({} commits)",
            counts.commits
        ),
    )
}

/// The `git filter-repo` expression that removes every token of the shapes
/// this audit finds, without naming any.
pub(crate) const TOKEN_EXPRESSION: &str =
    r"regex:(?<![A-Za-z0-9+])dG9rO[A-Za-z0-9+/]{20,123}={0,2}==>***REMOVED***";

pub(super) fn tokens_check(
    repo: &Repo,
    findings: &[Finding],
    counts: &Counts,
    more: usize,
) -> Check {
    let found: Vec<Finding> = findings
        .iter()
        .filter(|f| f.kind == SecretKind::AccessToken)
        .cloned()
        .collect();
    let scope = if repo.has_working_tree {
        format!(
            "{} blobs of {} commits, the index and {} working-tree files",
            counts.blobs, counts.commits, counts.files
        )
    } else {
        format!(
            "{} blobs of {} commits (a bare repository)",
            counts.blobs, counts.commits
        )
    };
    if found.is_empty() && more == 0 {
        return Check::passed(TOKENS, format!("no Intercom access token in {scope}"));
    }
    let mut check = Check::failed(
        TOKENS,
        format!(
            "{} Intercom access token(s) in {scope}",
            found.len() + more
        ),
        format!(
            "rotate each token now (Developer Hub > your app > Configure > Authentication), then remove it from history: echo '{TOKEN_EXPRESSION}' > ../intercom-tokens.txt && git filter-repo --replace-text ../intercom-tokens.txt"
        ),
    );
    check.findings = found;
    if more > 0 {
        check.details = vec![format!("{more} more secrets not listed")];
    }
    check
}

pub(super) fn secrets_check(values: &[(SecretKind, &[u8])], findings: &[Finding]) -> Check {
    let given: Vec<SecretKind> = values
        .iter()
        .map(|&(kind, _)| kind)
        .filter(|&kind| kind != SecretKind::AccessToken)
        .collect();
    if given.is_empty() {
        return Check::skipped(
            SECRETS,
            "no webhook or identity secret given (INTERCOM_WEBHOOK_SECRET, INTERCOM_WEBHOOK_SECRET_PREVIOUS, INTERCOM_IDENTITY_SECRET)",
        );
    }
    let too_short: Vec<String> = values
        .iter()
        .filter(|&&(kind, value)| kind != SecretKind::AccessToken && value.len() < MIN_SEARCHED_LEN)
        .map(|&(kind, _)| {
            format!(
                "{} not searched for: shorter than {MIN_SEARCHED_LEN} bytes, it would be found by coincidence",
                kind.variable()
            )
        })
        .collect();
    if too_short.len() == given.len() {
        return Check::skipped(
            SECRETS,
            format!(
                "every secret given is shorter than {MIN_SEARCHED_LEN} bytes: not searched for"
            ),
        );
    }
    let found: Vec<Finding> = findings
        .iter()
        .filter(|f| f.kind != SecretKind::AccessToken)
        .cloned()
        .collect();
    let names: Vec<&str> = given.iter().map(|kind| kind.variable()).collect();
    if found.is_empty() {
        return Check::passed(
            SECRETS,
            format!(
                "none of the given secrets is in the repository ({})",
                names.join(", ")
            ),
        )
        .with_details(too_short);
    }
    let variables: Vec<&str> = {
        let mut kinds: Vec<SecretKind> = found.iter().map(|f| f.kind).collect();
        kinds.dedup();
        kinds.into_iter().map(SecretKind::variable).collect()
    };
    let printf: Vec<String> = variables.iter().map(|v| format!("\"${v}\"")).collect();
    let mut check = Check::failed(
        SECRETS,
        format!("{} given secret(s) in the repository", found.len()),
        format!(
            "rotate it now (the client secret: Developer Hub > your app > Basic information; the identity secret: Messenger > Security), then remove it from history: printf '%s\\n' {} > ../intercom-secrets.txt && git filter-repo --replace-text ../intercom-secrets.txt",
            printf.join(" ")
        ),
    );
    check.findings = found;
    check.details = too_short;
    check
}
