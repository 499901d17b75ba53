//! Why a secret file could not be loaded.

use std::{
    error::Error,
    fmt, io,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{CheckError, MAX_FILE_SIZE, MAX_SECRETS};
use crate::secret::SecretErrorKind;

/// Why a secret file could not be loaded: when it is opened (then the
/// [`SecretFile`](super::SecretFile) is not built), or on a reload (then
/// the value in use stays, and this error is logged once at `warn`).
///
/// It names the file and, for a set of webhook secrets, the line; it never
/// contains the file's content.
///
/// # Example
///
/// ```
/// use tower_intercom::{reload::{ReloadErrorKind, SecretFile}, AccessToken, SecretErrorKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("access-token");
/// std::fs::write(&path, "Bearer dG9rOmFiYw==\n")?;
///
/// let err = SecretFile::<AccessToken>::open(&path).await.unwrap_err();
/// assert_eq!(err.kind(), ReloadErrorKind::Invalid(SecretErrorKind::InvalidCharacter));
/// assert!(!err.to_string().contains("dG9r"));
/// # Ok(())
/// # }
/// ```
pub struct ReloadError {
    kind: ReloadErrorKind,
    path: PathBuf,
    line: Option<usize>,
    timeout: Option<Duration>,
    source: Option<CheckError>,
}

/// What went wrong; see [`ReloadError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReloadErrorKind {
    /// The file could not be opened or read (missing, no permission, a
    /// directory); [`source`](Error::source) is the I/O error.
    Unreadable,
    /// The file is larger than [`MAX_FILE_SIZE`](super::MAX_FILE_SIZE).
    TooLarge,
    /// The secret's own parser refused the content: empty, blank,
    /// surrounding whitespace, not UTF-8, a character a token cannot hold.
    Invalid(SecretErrorKind),
    /// A set of webhook secrets with more than
    /// [`MAX_SECRETS`](super::MAX_SECRETS) secrets.
    TooManySecrets,
    /// The [`Check`](super::Check) refused the value;
    /// [`source`](Error::source) is its error.
    CheckFailed,
    /// The [`Check`](super::Check) did not finish within its timeout.
    CheckTimedOut,
    /// [`SecretFileBuilder::open`](super::SecretFileBuilder::open) was
    /// called outside a Tokio runtime, which the watcher runs on.
    NoRuntime,
}

impl ReloadError {
    pub(crate) fn new(kind: ReloadErrorKind, path: &Path) -> Self {
        Self {
            kind,
            path: path.to_owned(),
            line: None,
            timeout: None,
            source: None,
        }
    }

    pub(crate) fn unreadable(path: &Path, err: io::Error) -> Self {
        Self::new(ReloadErrorKind::Unreadable, path).with_source(err.into())
    }

    pub(crate) fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub(crate) fn with_source(mut self, source: CheckError) -> Self {
        self.source = Some(source);
        self
    }

    pub(crate) fn timed_out(path: &Path, timeout: Duration) -> Self {
        let mut err = Self::new(ReloadErrorKind::CheckTimedOut, path);
        err.timeout = Some(timeout);
        err
    }

    /// What went wrong.
    pub fn kind(&self) -> ReloadErrorKind {
        self.kind
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line (from 1) of a set of webhook secrets that was refused.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The `error.type` label of `intercom.secret.reload.failures`.
    pub(crate) fn error_type(&self) -> &'static str {
        match self.kind {
            ReloadErrorKind::Unreadable | ReloadErrorKind::NoRuntime => "unreadable",
            ReloadErrorKind::TooLarge => "too_large",
            ReloadErrorKind::Invalid(_) | ReloadErrorKind::TooManySecrets => "invalid",
            ReloadErrorKind::CheckFailed | ReloadErrorKind::CheckTimedOut => "check",
        }
    }
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        write!(f, "secret file `{path}`")?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        match self.kind {
            ReloadErrorKind::Unreadable => f.write_str(" cannot be read")?,
            ReloadErrorKind::TooLarge => write!(
                f,
                " is larger than {MAX_FILE_SIZE} bytes: it is not a secret file"
            )?,
            ReloadErrorKind::Invalid(kind) => f.write_str(match kind {
                SecretErrorKind::Empty => " is empty",
                SecretErrorKind::Blank => " is blank (only whitespace)",
                SecretErrorKind::SurroundingWhitespace => {
                    " starts or ends with whitespace (beyond one final line ending)"
                }
                SecretErrorKind::NotUnicode => " is not valid UTF-8",
                SecretErrorKind::InvalidCharacter => {
                    " contains a character that cannot be sent in an HTTP header (only visible ASCII)"
                }
                _ => " is not a valid secret",
            })?,
            ReloadErrorKind::TooManySecrets => {
                write!(f, ": more than {MAX_SECRETS} webhook secrets")?
            }
            ReloadErrorKind::CheckFailed => f.write_str(": the new value failed its check")?,
            ReloadErrorKind::CheckTimedOut => {
                f.write_str(": the check of the new value did not finish")?;
                if let Some(timeout) = self.timeout {
                    write!(f, " within {timeout:?}")?;
                }
            }
            ReloadErrorKind::NoRuntime => {
                f.write_str(": no Tokio runtime to watch it on (open it inside one)")?
            }
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadError")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("line", &self.line)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for ReloadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn Error + 'static))
    }
}
