//! `.env` files kept out of git: ignored by the repository's own
//! `.gitignore` files, in every directory, and none of them tracked.

use std::collections::BTreeSet;

use super::{
    error::AuditError,
    git::{fields, Repo},
    report::Check,
};

/// Check ids.
pub(crate) const IGNORED: &str = "env_files.ignored";
pub(crate) const NOT_TRACKED: &str = "env_files.not_tracked";

/// The names asked about in each directory: `.env`, `.env.local`, and
/// three of the `.env.*.local` family.
const NAMES: [&str; 5] = [
    ".env",
    ".env.local",
    ".env.development.local",
    ".env.test.local",
    ".env.production.local",
];

/// At most this many places are listed in a failed check.
const LISTED: usize = 10;

/// Whether a file name is one that must not be committed: `.env`,
/// `.env.local` or `.env.<anything>.local`.
pub(crate) fn must_not_be_committed(name: &str) -> bool {
    name == ".env"
        || name == ".env.local"
        || name
            .strip_prefix(".env.")
            .and_then(|rest| rest.strip_suffix(".local"))
            .is_some_and(|middle| !middle.is_empty())
}

/// Both `env_files.*` checks.
pub(crate) fn run(repo: &Repo) -> Result<[Check; 2], AuditError> {
    if !repo.has_working_tree {
        let why = "a bare repository has no working tree";
        return Ok([
            Check::skipped(IGNORED, why),
            Check::skipped(NOT_TRACKED, why),
        ]);
    }
    let git = repo.git();
    let tracked = git.output(&["ls-files", "-z"])?;
    let tracked: Vec<String> = fields(&tracked)
        .map(|path| String::from_utf8_lossy(path).into_owned())
        .collect();
    Ok([ignored(repo, &tracked)?, not_tracked(&tracked)])
}

/// Asks `git check-ignore` about each name in the top directory and in
/// every directory that holds a tracked file. A name counts as ignored
/// when the pattern that decides is in one of the repository's
/// `.gitignore` files and is not a negation (`!.env`): patterns in
/// `.git/info/exclude` or a global excludes file do not travel with the
/// repository.
fn ignored(repo: &Repo, tracked: &[String]) -> Result<Check, AuditError> {
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    dirs.insert("");
    for path in tracked {
        let mut dir = path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if !dirs.insert(parent) {
                break;
            }
            dir = parent;
        }
    }
    let mut input = Vec::new();
    for dir in &dirs {
        for name in NAMES {
            if !dir.is_empty() {
                input.extend_from_slice(dir.as_bytes());
                input.push(b'/');
            }
            input.extend_from_slice(name.as_bytes());
            input.push(0);
        }
    }
    let out = run_check_ignore(repo, input)?;
    // `<source> NUL <line> NUL <pattern> NUL <path> NUL` for every path.
    let parts: Vec<String> = out
        .split(|&b| b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    let mut not_ignored = Vec::new();
    for entry in parts.chunks(4) {
        let [source, _, pattern, path] = entry else {
            continue;
        };
        let from_gitignore = source == ".gitignore" || source.ends_with("/.gitignore");
        if !(from_gitignore && !pattern.is_empty() && !pattern.starts_with('!')) {
            not_ignored.push(path.clone());
        }
    }
    if not_ignored.is_empty() {
        return Ok(Check::passed(
            IGNORED,
            format!(
                ".env, .env.local and .env.*.local are ignored by .gitignore in all {} directories",
                dirs.len()
            ),
        ));
    }
    let count = not_ignored.len();
    let mut details: Vec<String> = not_ignored
        .into_iter()
        .take(LISTED)
        .map(|path| format!("{path} would be committed"))
        .collect();
    if count > LISTED {
        details.push(format!("and {} more", count - LISTED));
    }
    Ok(Check::failed(
        IGNORED,
        format!("{count} .env file name(s) are not ignored by a .gitignore of the repository"),
        "add the lines `.env`, `.env.local` and `.env.*.local` (no leading slash) to the top-level .gitignore, and remove any `!.env…` line that re-includes them",
    )
    .with_details(details))
}

fn run_check_ignore(repo: &Repo, input: Vec<u8>) -> Result<Vec<u8>, AuditError> {
    use std::{io::Write, process::Stdio, thread};

    let args = [
        "check-ignore",
        "--no-index",
        "--stdin",
        "-z",
        "--verbose",
        "--non-matching",
    ];
    let shown = super::git::shown(&args);
    let mut child = repo
        .git()
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| AuditError::io(&shown, err))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = thread::spawn(move || stdin.write_all(&input));
    let output = child
        .wait_with_output()
        .map_err(|err| AuditError::io(&shown, err))?;
    let _ = writer.join();
    // 1 means "nothing is ignored", not an error.
    match output.status.code() {
        Some(0 | 1) => Ok(output.stdout),
        _ => Err(super::git::failed(&shown, &output.stderr)),
    }
}

fn not_tracked(tracked: &[String]) -> Check {
    let found: Vec<&String> = tracked
        .iter()
        .filter(|path| must_not_be_committed(path.rsplit('/').next().unwrap_or(path)))
        .collect();
    if found.is_empty() {
        return Check::passed(
            NOT_TRACKED,
            "no .env, .env.local or .env.*.local file is tracked",
        );
    }
    let paths: Vec<&str> = found.iter().map(|p| p.as_str()).collect();
    let mut details: Vec<String> = paths
        .iter()
        .take(LISTED)
        .map(|path| format!("{path} is tracked"))
        .collect();
    if paths.len() > LISTED {
        details.push(format!("and {} more", paths.len() - LISTED));
    }
    Check::failed(
        NOT_TRACKED,
        format!("{} .env file(s) are tracked by git", paths.len()),
        format!(
            "stop tracking them, keeping the files: `git rm --cached -- {}`, commit, and rotate every secret they held (they stay in history)",
            paths.iter().take(LISTED).copied().collect::<Vec<_>>().join(" ")
        ),
    )
    .with_details(details)
}

#[cfg(test)]
mod tests {
    use super::must_not_be_committed;

    #[test]
    fn the_names_that_must_not_be_committed() {
        for name in [
            ".env",
            ".env.local",
            ".env.production.local",
            ".env.a.b.local",
        ] {
            assert!(must_not_be_committed(name), "{name}");
        }
        for name in [
            ".env.example",
            ".env..local",
            "env",
            ".envrc",
            ".env.production",
            "x.env",
        ] {
            assert!(!must_not_be_committed(name), "{name}");
        }
    }
}
