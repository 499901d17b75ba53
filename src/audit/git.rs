//! Running `git` itself: every read of the repository goes through it.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::error::{AuditError, AuditErrorKind};

/// Variables that would point `git` at another repository, index or object
/// store than the audited one (a test run from a git hook has them set).
const LOCATION_VARIABLES: [&str; 7] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
];

/// The audited repository, as `git` sees it.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    /// Where `git` commands run: the top of the working tree, or the git
    /// directory of a bare repository.
    pub(crate) dir: PathBuf,
    /// False for a bare repository.
    pub(crate) has_working_tree: bool,
    /// A shallow clone: commits beyond its depth are missing.
    pub(crate) shallow: bool,
}

impl Repo {
    /// The repository holding `path`.
    pub(crate) fn discover(path: &Path) -> Result<Self, AuditError> {
        if !path.is_dir() {
            let why = if path.exists() {
                "it is not a directory"
            } else {
                "no such directory"
            };
            return Err(AuditError::not_a_repository(path, why));
        }
        let probe = Git {
            dir: path.to_path_buf(),
        };
        let out = probe
            .output(&[
                "rev-parse",
                "--absolute-git-dir",
                "--is-bare-repository",
                "--is-shallow-repository",
            ])
            .map_err(|err| match err.kind() {
                AuditErrorKind::Git => AuditError::not_a_repository(path, &err.to_string()),
                _ => err,
            })?;
        let text = String::from_utf8_lossy(&out);
        let mut lines = text.lines();
        let git_dir = PathBuf::from(lines.next().unwrap_or_default());
        let bare = lines.next() == Some("true");
        let shallow = lines.next() == Some("true");
        let top = if bare {
            None
        } else {
            probe
                .output(&["rev-parse", "--show-toplevel"])
                .ok()
                .map(|out| {
                    String::from_utf8_lossy(&out)
                        .trim_end_matches('\n')
                        .to_owned()
                })
                .filter(|top| !top.is_empty())
                .map(PathBuf::from)
        };
        Ok(Self {
            has_working_tree: top.is_some(),
            dir: top.unwrap_or(git_dir),
            shallow,
        })
    }

    pub(crate) fn git(&self) -> Git {
        Git {
            dir: self.dir.clone(),
        }
    }
}

/// `git -C <dir>`, with the environment's repository overrides removed.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
}

impl Git {
    /// A `git` command on the repository: no standard input, paths printed
    /// as they are, no lazy fetch of missing objects (the audit never
    /// touches the network), messages in English.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "core.quotePath=false"])
            .args(args)
            .env("GIT_NO_LAZY_FETCH", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        for variable in LOCATION_VARIABLES {
            command.env_remove(variable);
        }
        command
    }

    /// Runs `git ARGS` to the end and returns what it printed; an error
    /// with `git`'s message when it fails.
    pub(crate) fn output(&self, args: &[&str]) -> Result<Vec<u8>, AuditError> {
        let shown = shown(args);
        let output = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|err| AuditError::io(&shown, err))?;
        if !output.status.success() {
            return Err(failed(&shown, &output.stderr));
        }
        Ok(output.stdout)
    }
}

/// `git ARGS`, for messages.
pub(crate) fn shown(args: &[&str]) -> String {
    format!("git {}", args.join(" "))
}

/// The error for a `git` command that failed, with the first lines of what
/// it said.
pub(crate) fn failed(shown: &str, stderr: &[u8]) -> AuditError {
    let said = String::from_utf8_lossy(stderr);
    let said: Vec<&str> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .collect();
    let said = if said.is_empty() {
        "no message".to_owned()
    } else {
        said.join("; ")
    };
    AuditError::new(AuditErrorKind::Git, format!("`{shown}` failed: {said}"))
}

/// Splits `-z` output into its NUL-terminated fields.
pub(crate) fn fields(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    out.split(|&b| b == 0).filter(|field| !field.is_empty())
}
