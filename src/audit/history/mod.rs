//! Leaked tokens and secrets in a repository: every blob reachable from
//! every ref, the index and the working tree, each blob read once, through
//! `git` itself.
//!
//! This module scans and records where each secret was seen;
//! [`objects`] reads the objects and the commits that added them from
//! `git`, and [`checks`] turns what was found into the three `git.*`
//! checks.

mod checks;
mod objects;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs, io,
    path::Path,
    process::Stdio,
};

use self::{
    checks::{complete_check, secrets_check, tokens_check},
    objects::{cat_objects, finish, first_commits, Input, Object},
};
use super::{
    error::AuditError,
    git::{fields, shown, Git, Repo},
    report::{Check, Finding, Fingerprint, Location, SecretKind},
    scan::{Scanned, Scanner},
};

/// Check ids.
pub(crate) const COMPLETE: &str = "git.history_complete";
pub(crate) const TOKENS: &str = "git.access_tokens";
pub(crate) const SECRETS: &str = "git.secret_values";

/// Given values shorter than this are not searched for: they would be
/// found by coincidence. Intercom's secrets are far longer.
pub(crate) const MIN_SEARCHED_LEN: usize = 8;

/// At most this many blobs of one secret are kept to find the commit that
/// added it first; every one is counted.
const MAX_BLOBS_PER_SECRET: usize = 1000;

/// At most this many distinct secrets are reported.
const MAX_SECRETS: usize = 1000;

/// What the three `git.*` checks found.
#[derive(Debug)]
pub(crate) struct HistoryChecks {
    pub(crate) complete: Check,
    pub(crate) tokens: Check,
    pub(crate) secrets: Check,
}

/// Where one secret was seen.
#[derive(Debug, Default)]
struct Seen {
    occurrences: usize,
    /// Blobs reachable from refs: (object id, the path rev-list gave, line,
    /// binary).
    history: Vec<(String, String, u64, bool)>,
    index: Option<(String, u64, bool)>,
    working_tree: Option<(String, u64, bool)>,
}

/// Every secret seen, by kind and fingerprint.
#[derive(Debug, Default)]
struct Sightings {
    by_secret: BTreeMap<(SecretKind, Fingerprint), Seen>,
    /// Distinct secrets past `MAX_SECRETS`, not reported one by one.
    more: usize,
}

enum Place<'a> {
    History { oid: &'a str, path: &'a str },
    Index { path: &'a str },
    WorkingTree { path: &'a str },
}

impl Sightings {
    fn record(&mut self, place: Place<'_>, scanned: &Scanned) {
        // The first line of each secret in this blob or file.
        let mut firsts: Vec<(SecretKind, Fingerprint, u64)> = Vec::new();
        for hit in &scanned.hits {
            if !firsts
                .iter()
                .any(|&(k, f, _)| k == hit.kind && f == hit.fingerprint)
            {
                firsts.push((hit.kind, hit.fingerprint, hit.line));
            }
        }
        for (kind, fingerprint, line) in firsts {
            let full = self.by_secret.len() >= MAX_SECRETS;
            let seen = match self.by_secret.get_mut(&(kind, fingerprint)) {
                Some(seen) => seen,
                None if full => {
                    self.more += 1;
                    continue;
                }
                None => self.by_secret.entry((kind, fingerprint)).or_default(),
            };
            seen.occurrences += 1;
            match place {
                Place::History { oid, path } => {
                    if seen.history.len() < MAX_BLOBS_PER_SECRET {
                        seen.history
                            .push((oid.to_owned(), path.to_owned(), line, scanned.binary));
                    }
                }
                Place::Index { path } => {
                    seen.index
                        .get_or_insert_with(|| (path.to_owned(), line, scanned.binary));
                }
                Place::WorkingTree { path } => {
                    seen.working_tree
                        .get_or_insert_with(|| (path.to_owned(), line, scanned.binary));
                }
            }
        }
    }
}

/// What reading the objects counted.
#[derive(Debug, Default)]
struct Counts {
    commits: usize,
    blobs: usize,
    missing: usize,
    files: usize,
}

/// Scans the repository for token-shaped text and for `values`.
pub(crate) fn run(
    repo: &Repo,
    values: &[(SecretKind, &[u8])],
) -> Result<HistoryChecks, AuditError> {
    let searched: Vec<(SecretKind, &[u8])> = values
        .iter()
        .copied()
        .filter(|(_, value)| value.len() >= MIN_SEARCHED_LEN)
        .collect();
    let scanner = Scanner::new(&searched);
    let git = repo.git();
    let mut sightings = Sightings::default();
    let mut counts = Counts::default();
    let mut buf = Vec::new();

    // Every object reachable from a ref (trees left out), straight into
    // `git cat-file`, which prints each one once.
    let mut reachable = HashSet::new();
    let rev_list_args = [
        "rev-list",
        "--all",
        "--objects",
        "--filter=object:type=blob",
        "--filter-provided-objects",
        "--missing=print",
    ];
    let mut rev_list = git
        .command(rev_list_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| AuditError::io(shown(&rev_list_args), err))?;
    let listed = rev_list.stdout.take().expect("stdout is piped");
    cat_objects(&git, Input::Pipe(Stdio::from(listed)), |object| {
        match object {
            Object::Blob { oid, rest, body } => {
                reachable.insert(oid.to_owned());
                counts.blobs += 1;
                let scanned = scanner
                    .scan(body, &mut buf)
                    .map_err(|err| AuditError::io("reading git cat-file's output", err))?;
                if !scanned.hits.is_empty() {
                    sightings.record(Place::History { oid, path: rest }, &scanned);
                }
            }
            Object::Missing => counts.missing += 1,
            Object::Other => {}
        }
        Ok(())
    })?;
    finish(rev_list, &shown(&rev_list_args))?;
    let commits = git.output(&["rev-list", "--all", "--count"])?;
    counts.commits = String::from_utf8_lossy(&commits)
        .trim()
        .parse()
        .unwrap_or(0);

    if repo.has_working_tree {
        scan_index(&git, &scanner, &reachable, &mut sightings, &mut buf)?;
        scan_working_tree(repo, &scanner, &mut sightings, &mut counts, &mut buf)?;
    }

    let wanted: HashSet<&str> = sightings
        .by_secret
        .values()
        .flat_map(|seen| seen.history.iter().map(|(oid, ..)| oid.as_str()))
        .collect();
    let added = if wanted.is_empty() {
        HashMap::new()
    } else {
        first_commits(&git, &wanted)?
    };
    let findings = findings(&sightings, &added);

    Ok(HistoryChecks {
        complete: complete_check(repo, &counts),
        tokens: tokens_check(repo, &findings, &counts, sightings.more),
        secrets: secrets_check(values, &findings),
    })
}

/// Blobs staged in the index that no ref reaches yet.
fn scan_index(
    git: &Git,
    scanner: &Scanner,
    reachable: &HashSet<String>,
    sightings: &mut Sightings,
    buf: &mut Vec<u8>,
) -> Result<(), AuditError> {
    let listing = git.output(&["ls-files", "--stage", "-z"])?;
    // `<mode> <oid> <stage>\t<path>`; gitlinks (submodules) are commits of
    // another repository.
    let mut staged: HashMap<String, String> = HashMap::new();
    for entry in fields(&listing) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (Some(mode), Some(oid)) = (meta.next(), meta.next()) else {
            continue;
        };
        if mode != "160000" && !reachable.contains(oid) {
            staged
                .entry(oid.to_owned())
                .or_insert_with(|| path.to_owned());
        }
    }
    if staged.is_empty() {
        return Ok(());
    }
    let mut input: Vec<u8> = Vec::new();
    for oid in staged.keys() {
        input.extend_from_slice(oid.as_bytes());
        input.push(b'\n');
    }
    cat_objects(git, Input::Lines(input), |object| {
        if let Object::Blob { oid, body, .. } = object {
            let scanned = scanner
                .scan(body, buf)
                .map_err(|err| AuditError::io("reading git cat-file's output", err))?;
            if !scanned.hits.is_empty() {
                let path = staged.get(oid).map(String::as_str).unwrap_or_default();
                sightings.record(Place::Index { path }, &scanned);
            }
        }
        Ok(())
    })
}

/// Files of the working tree git would commit that the index does not
/// hold as they are: untracked files that are not ignored, and tracked
/// files changed since they were staged.
fn scan_working_tree(
    repo: &Repo,
    scanner: &Scanner,
    sightings: &mut Sightings,
    counts: &mut Counts,
    buf: &mut Vec<u8>,
) -> Result<(), AuditError> {
    let git = repo.git();
    let untracked = git.output(&["ls-files", "-z", "--others", "--exclude-standard"])?;
    let modified = git.output(&["ls-files", "-z", "--modified"])?;
    let mut done = HashSet::new();
    for path in fields(&untracked).chain(fields(&modified)) {
        if !done.insert(path) {
            continue;
        }
        let shown_path = String::from_utf8_lossy(path);
        let full = repo.dir.join(path_from_git(path));
        match scan_file(&full, scanner, buf) {
            Ok(Some(scanned)) => {
                counts.files += 1;
                if !scanned.hits.is_empty() {
                    sightings.record(Place::WorkingTree { path: &shown_path }, &scanned);
                }
            }
            Ok(None) => {}
            Err(err) => return Err(AuditError::working_tree(full, err)),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn path_from_git(path: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(path))
}

#[cfg(not(unix))]
fn path_from_git(path: &[u8]) -> std::path::PathBuf {
    std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned())
}

/// A regular file's scan; `None` for what is not one (a symbolic link, a
/// directory, a file deleted since git listed it).
fn scan_file(path: &Path, scanner: &Scanner, buf: &mut Vec<u8>) -> io::Result<Option<Scanned>> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !metadata.is_file() {
        return Ok(None);
    }
    match fs::File::open(path) {
        Ok(file) => scanner.scan(file, buf).map(Some),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// One finding per secret: where it was first added.
fn findings(
    sightings: &Sightings,
    added: &HashMap<String, (usize, String, String)>,
) -> Vec<Finding> {
    sightings
        .by_secret
        .iter()
        .map(|(&(kind, fingerprint), seen)| {
            let first_commit = seen
                .history
                .iter()
                .filter_map(|(oid, _, line, binary)| {
                    added
                        .get(oid)
                        .map(|(order, commit, path)| (*order, commit, path, *line, *binary))
                })
                .min_by_key(|&(order, ..)| order);
            let (location, path, line, binary) =
                if let Some((_, commit, path, line, binary)) = first_commit {
                    (Location::Commit(commit.clone()), path.clone(), line, binary)
                } else if let Some((_, path, line, binary)) = seen.history.first() {
                    (Location::Ref, path.clone(), *line, *binary)
                } else if let Some((path, line, binary)) = &seen.index {
                    (Location::Index, path.clone(), *line, *binary)
                } else if let Some((path, line, binary)) = &seen.working_tree {
                    (Location::WorkingTree, path.clone(), *line, *binary)
                } else {
                    (Location::Ref, String::new(), 0, false)
                };
            Finding {
                kind,
                fingerprint,
                location,
                path,
                line,
                binary,
                occurrences: seen.occurrences,
            }
        })
        .collect()
}
