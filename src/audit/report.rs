//! What an audit found: checks with their status, findings, the table a
//! person reads and the JSON a CI job reads.

use std::{fmt, path::PathBuf};

use serde_json::{json, Value};

/// The version of the JSON document [`Report::to_json`] writes. It changes
/// only when a field changes meaning or goes away; new fields and new check
/// ids may appear without a change.
pub const JSON_SCHEMA_VERSION: u64 = 1;

/// The result of [`Audit::run`](super::Audit::run): every check, in a fixed
/// order.
///
/// `Display` prints the table (the same text as the example's
/// `--format text`); [`to_json`](Self::to_json) gives the documented JSON
/// (the module docs hold its schema). Nothing in a report holds a secret:
/// findings name a [`Fingerprint`], never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub(crate) repository: PathBuf,
    pub(crate) checks: Vec<Check>,
}

impl Report {
    /// The top-level directory of the audited repository (its git directory
    /// for a bare repository).
    pub fn repository(&self) -> &std::path::Path {
        &self.repository
    }

    /// Every check, in the order of the table.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The check with this id (such as `"git.access_tokens"`), if the report
    /// has it.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.id == id)
    }

    /// True when no check failed (skipped and manual ones do not count).
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.status != Status::Failed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|check| check.status == Status::Failed)
    }

    /// Panics with the report's table when a check failed: the assertion of
    /// a test that audits its own repository.
    ///
    /// # Panics
    ///
    /// When [`passed`](Self::passed) is false. The message is the table,
    /// with each failure's remediation.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!("the security audit failed\n\n{self}");
        }
    }

    /// The report as the JSON document of schema version
    /// [`JSON_SCHEMA_VERSION`] (see the module docs).
    pub fn to_json(&self) -> Value {
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        json!({
            "schema_version": JSON_SCHEMA_VERSION,
            "repository": self.repository.to_string_lossy(),
            "passed": self.passed(),
            "summary": {
                "passed": count(Status::Passed),
                "failed": count(Status::Failed),
                "skipped": count(Status::Skipped),
                "manual": count(Status::Manual),
            },
            "checks": self.checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tower-intercom security audit of {}",
            self.repository.display()
        )?;
        writeln!(f)?;
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for check in &self.checks {
            writeln!(
                f,
                "{:<7}  {:<width$}  {}",
                check.status.label(),
                check.id,
                check.message
            )?;
            let indent = 7 + 2 + width + 2;
            for finding in &check.findings {
                writeln!(f, "{:indent$}- {finding}", "")?;
            }
            for detail in &check.details {
                writeln!(f, "{:indent$}- {detail}", "")?;
            }
            if let Some(remediation) = &check.remediation {
                writeln!(f, "{:indent$}fix: {remediation}", "")?;
            }
        }
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        writeln!(f)?;
        write!(
            f,
            "{} failed, {} passed, {} skipped, {} to check by hand",
            count(Status::Failed),
            count(Status::Passed),
            count(Status::Skipped),
            count(Status::Manual)
        )
    }
}

/// One check of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub(crate) id: &'static str,
    pub(crate) status: Status,
    pub(crate) message: String,
    pub(crate) remediation: Option<String>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) details: Vec<String>,
}

impl Check {
    pub(crate) fn new(id: &'static str, status: Status, message: impl Into<String>) -> Self {
        Self {
            id,
            status,
            message: message.into(),
            remediation: None,
            findings: Vec::new(),
            details: Vec::new(),
        }
    }

    pub(crate) fn passed(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(id, Status::Passed, message)
    }

    pub(crate) fn skipped(id: &'static str, reason: impl Into<String>) -> Self {
        Self::new(id, Status::Skipped, reason)
    }

    pub(crate) fn failed(
        id: &'static str,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        let mut check = Self::new(id, Status::Failed, message);
        check.remediation = Some(remediation.into());
        check
    }

    pub(crate) fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// The stable id, such as `git.access_tokens` (the list is in the
    /// module docs).
    pub fn id(&self) -> &str {
        self.id
    }

    /// Passed, failed, skipped or to check by hand.
    pub fn status(&self) -> Status {
        self.status
    }

    /// One line: what passed, what failed, or why the check was skipped.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a failure: what to do, in one line.
    pub fn remediation(&self) -> Option<&str> {
        self.remediation.as_deref()
    }

    /// The secrets found (the `git.*` checks).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Further lines: the files at fault, the permissions to compare, …
    pub fn details(&self) -> &[String] {
        &self.details
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status.as_str(),
            "message": self.message,
            "remediation": self.remediation,
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "details": self.details,
        })
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Checked, and fine.
    Passed,
    /// Checked, and something must be fixed: the run fails.
    Failed,
    /// Not checked, with the reason in the message (a value not given, a
    /// feature not built in).
    Skipped,
    /// Only a person can check it; the details say what to compare. Does
    /// not fail the run.
    Manual,
}

impl Status {
    /// `"passed"`, `"failed"`, `"skipped"` or `"manual"`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Manual => "manual",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "FAILED",
            Self::Skipped => "skipped",
            Self::Manual => "manual",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which secret a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SecretKind {
    /// An Intercom access token: found by its shape, or the given
    /// `INTERCOM_ACCESS_TOKEN` found by value.
    AccessToken,
    /// The given webhook client secret (`INTERCOM_WEBHOOK_SECRET`).
    WebhookSecret,
    /// The given previous webhook client secret
    /// (`INTERCOM_WEBHOOK_SECRET_PREVIOUS`).
    PreviousWebhookSecret,
    /// The given Identity Verification secret (`INTERCOM_IDENTITY_SECRET`).
    IdentitySecret,
}

impl SecretKind {
    /// `"access_token"`, `"webhook_secret"`, `"webhook_secret_previous"` or
    /// `"identity_secret"`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::WebhookSecret => "webhook_secret",
            Self::PreviousWebhookSecret => "webhook_secret_previous",
            Self::IdentitySecret => "identity_secret",
        }
    }

    /// The environment variable the example reads it from.
    pub fn variable(self) -> &'static str {
        match self {
            Self::AccessToken => "INTERCOM_ACCESS_TOKEN",
            Self::WebhookSecret => "INTERCOM_WEBHOOK_SECRET",
            Self::PreviousWebhookSecret => "INTERCOM_WEBHOOK_SECRET_PREVIOUS",
            Self::IdentitySecret => "INTERCOM_IDENTITY_SECRET",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::AccessToken => "access token",
            Self::WebhookSecret => "webhook secret",
            Self::PreviousWebhookSecret => "previous webhook secret",
            Self::IdentitySecret => "identity secret",
        }
    }
}

/// The first 8 hex digits of the SHA-256 of a secret: enough to tell which
/// secret a finding is (`printf %s "$INTERCOM_ACCESS_TOKEN" | sha256sum |
/// cut -c1-8`), nothing to recover it from. A token's fingerprint is taken
/// over its padded base64 text, as Intercom shows it, however it was
/// written where it was found.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub(crate) [u8; 4]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Where a secret was first found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Location {
    /// In a commit reachable from a ref: the earliest commit that added a
    /// file holding it (full hex id).
    Commit(String),
    /// In a blob reachable from a ref but added by no commit (a tag or note
    /// pointing straight at it).
    Ref,
    /// Staged in the index, not committed.
    Index,
    /// In a file of the working tree that git does not ignore (untracked, or
    /// changed since it was staged).
    WorkingTree,
}

impl Location {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Commit(_) => "commit",
            Self::Ref => "ref",
            Self::Index => "index",
            Self::WorkingTree => "working_tree",
        }
    }
}

/// A secret found in the repository: which one (by fingerprint), where it
/// was first added, and how many files and blobs hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub(crate) kind: SecretKind,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) location: Location,
    pub(crate) path: String,
    pub(crate) line: u64,
    pub(crate) binary: bool,
    pub(crate) occurrences: usize,
}

impl Finding {
    /// Which secret.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// Its fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Where it was first added.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The commit that added it, for a finding in history.
    pub fn commit(&self) -> Option<&str> {
        match &self.location {
            Location::Commit(commit) => Some(commit),
            _ => None,
        }
    }

    /// The file's path from the top of the repository (as git spells it;
    /// bytes that are not UTF-8 are replaced).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The 1-based line of the first occurrence in that file (lines are
    /// counted by `\n` bytes, binary files included).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Whether the file is binary (a NUL byte in its first 8000 bytes, git's
    /// rule). Binary files are scanned like text.
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// How many distinct blobs and files hold it (every version of every
    /// file that contains it, the index and working tree included).
    pub fn occurrences(&self) -> usize {
        self.occurrences
    }

    fn to_json(&self) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "fingerprint": self.fingerprint.to_string(),
            "location": self.location.as_str(),
            "commit": self.commit(),
            "path": self.path,
            "line": self.line,
            "binary": self.binary,
            "occurrences": self.occurrences,
        })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.kind.describe(), self.fingerprint)?;
        match &self.location {
            Location::Commit(commit) => {
                write!(f, "added in commit {}", commit.get(..12).unwrap_or(commit))?
            }
            Location::Ref => f.write_str("in a blob a ref points at")?,
            Location::Index => f.write_str("staged in the index")?,
            Location::WorkingTree => f.write_str("in the working tree")?,
        }
        write!(f, ", {} line {}", self.path, self.line)?;
        if self.binary {
            f.write_str(" (binary file)")?;
        }
        if self.occurrences > 1 {
            write!(f, "; in {} blobs or files in all", self.occurrences)?;
        }
        Ok(())
    }
}
