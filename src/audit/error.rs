//! Why an audit could not run.

use std::{error::Error, fmt, io, path::PathBuf};

/// Why [`Audit::run`](super::Audit::run) could not audit the repository.
///
/// A failed check is not an error: it is in the [`Report`](super::Report).
/// This is for what stops the audit itself: no `git`, a path that is not a
/// repository, a `git` command that fails. The message says which, with
/// `git`'s own words; it never holds a secret.
#[derive(Debug)]
pub struct AuditError {
    kind: AuditErrorKind,
    message: String,
    source: Option<io::Error>,
}

/// What stopped an audit; see [`AuditError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditErrorKind {
    /// `git` could not be started (not installed, or not on `PATH`).
    GitNotFound,
    /// The path does not exist, or is in no git repository.
    NotARepository,
    /// A `git` command failed or printed what the audit cannot read.
    Git,
    /// Reading a file of the working tree, or talking to `git`, failed.
    Io,
}

impl AuditError {
    /// What stopped the audit.
    pub fn kind(&self) -> AuditErrorKind {
        self.kind
    }

    pub(crate) fn new(kind: AuditErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn not_a_repository(path: &std::path::Path, why: &str) -> Self {
        Self::new(
            AuditErrorKind::NotARepository,
            format!("{} is not in a git repository: {why}", path.display()),
        )
    }

    pub(crate) fn io(what: impl fmt::Display, err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound && what.to_string().starts_with("git ") {
            return Self {
                kind: AuditErrorKind::GitNotFound,
                message: "could not run git: it is not installed or not on PATH".to_owned(),
                source: Some(err),
            };
        }
        Self {
            kind: AuditErrorKind::Io,
            message: format!("{what}: {err}"),
            source: Some(err),
        }
    }

    pub(crate) fn working_tree(path: PathBuf, err: io::Error) -> Self {
        Self::io(format_args!("reading {}", path.display()), err)
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for AuditError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_ref()
            .map(|err| err as &(dyn Error + 'static))
    }
}
