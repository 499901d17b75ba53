//! Leaked tokens and secrets in a repository: every blob reachable from
//! every ref, the index and the working tree, each blob read once, through
//! `git` itself.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs,
    io::{self, BufRead, BufReader, Read, Write},
    path::Path,
    process::{Child, ChildStdout, Stdio},
    thread,
};

use super::{
    error::AuditError,
    git::{failed, fields, shown, Git, Repo},
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

/// One object printed by `git cat-file --batch`.
enum Object<'a> {
    Blob {
        oid: &'a str,
        /// The text after the object id on its input line: rev-list's path.
        rest: &'a str,
        body: &'a mut dyn Read,
    },
    Missing,
    Other,
}

/// Where `git cat-file` reads the object ids from.
enum Input {
    /// Another process's output.
    Pipe(Stdio),
    /// These lines, written by a thread so that neither side waits for the
    /// other.
    Lines(Vec<u8>),
}

/// Runs `git cat-file --batch` on the object ids (one a line, with a path
/// after them or not) that `input` gives, and hands each object to `each`.
fn cat_objects(
    git: &Git,
    input: Input,
    mut each: impl FnMut(Object<'_>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let args = [
        "cat-file",
        "--batch=%(objectname) %(objecttype) %(objectsize) %(rest)",
    ];
    let (stdin, lines) = match input {
        Input::Pipe(stdin) => (stdin, None),
        Input::Lines(lines) => (Stdio::piped(), Some(lines)),
    };
    let mut cat = git
        .command(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| AuditError::io(shown(&args), err))?;
    let writer = match (lines, cat.stdin.take()) {
        (Some(lines), Some(mut pipe)) => Some(thread::spawn(move || pipe.write_all(&lines))),
        _ => None,
    };
    let stdout: ChildStdout = cat.stdout.take().expect("stdout is piped");
    let read = read_objects(BufReader::with_capacity(1 << 16, stdout), &mut each);
    if read.is_err() {
        // Nobody reads its output any more.
        let _ = cat.kill();
    }
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    read?;
    finish(cat, &shown(&args))
}

fn read_objects(
    mut reader: BufReader<ChildStdout>,
    each: &mut impl FnMut(Object<'_>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let mut header = Vec::new();
    let read_err = |err| AuditError::io("reading git cat-file's output", err);
    loop {
        header.clear();
        if reader.read_until(b'\n', &mut header).map_err(read_err)? == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&header);
        let line = line.trim_end_matches('\n');
        let mut parts = line.splitn(4, ' ');
        let oid = parts.next().unwrap_or_default();
        let kind = parts.next().unwrap_or_default();
        let size = parts.next().and_then(|size| size.parse::<u64>().ok());
        let rest = parts.next().unwrap_or_default();
        let Some(size) = size else {
            // `<oid> missing` (or `ambiguous`): nothing follows.
            each(Object::Missing)?;
            continue;
        };
        let mut body = (&mut reader).take(size);
        match kind {
            "blob" => each(Object::Blob {
                oid,
                rest,
                body: &mut body,
            })?,
            _ => each(Object::Other)?,
        }
        // Whatever the callback left unread, then the newline after it.
        io::copy(&mut body, &mut io::sink()).map_err(read_err)?;
        let mut newline = [0u8; 1];
        reader.read_exact(&mut newline).map_err(read_err)?;
    }
    Ok(())
}

/// Waits for a child `git` and turns a failure into an error with its
/// message.
fn finish(mut child: Child, shown: &str) -> Result<(), AuditError> {
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_end(&mut stderr);
    }
    let status = child
        .wait()
        .map_err(|err| AuditError::io(shown.to_owned(), err))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(shown, &stderr))
    }
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

/// For each wanted blob, the first commit (oldest first, parents before
/// children) whose change adds it, and its path there: (order, commit,
/// path). One pass of `git log` over every ref, stopped once all are found.
fn first_commits(
    git: &Git,
    wanted: &HashSet<&str>,
) -> Result<HashMap<String, (usize, String, String)>, AuditError> {
    let args = [
        "log",
        "--all",
        "--reverse",
        "--topo-order",
        "-m",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "-z",
        "--format=commit %H",
    ];
    let mut log = git
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| AuditError::io(shown(&args), err))?;
    let stdout = log.stdout.take().expect("stdout is piped");
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut found = HashMap::new();
    let mut commit = String::new();
    let mut order = 0usize;
    // The blob of the raw entry whose path comes next, if it is wanted.
    let mut pending: Option<Option<String>> = None;
    let mut field = Vec::new();
    loop {
        field.clear();
        let read = reader
            .read_until(0, &mut field)
            .map_err(|err| AuditError::io("reading git log's output", err))?;
        if read == 0 {
            break;
        }
        if field.last() == Some(&0) {
            field.pop();
        }
        let text = String::from_utf8_lossy(&field);
        let text = text.trim_start_matches('\n');
        if let Some(blob) = pending.take() {
            // The path of the entry before.
            if let Some(blob) = blob {
                found.insert(blob, (order, commit.clone(), text.to_owned()));
                if found.len() == wanted.len() {
                    break;
                }
            }
        } else if let Some(id) = text.strip_prefix("commit ") {
            id.clone_into(&mut commit);
            order += 1;
        } else if let Some(raw) = text.strip_prefix(':') {
            // `<old mode> <new mode> <old id> <new id> <status>`
            let parts: Vec<&str> = raw.split(' ').collect();
            let added = match parts.as_slice() {
                [_, _, _, new, status] if !status.starts_with('D') => Some(*new),
                _ => None,
            };
            pending = Some(
                added
                    .filter(|new| wanted.contains(new) && !found.contains_key(*new))
                    .map(str::to_owned),
            );
        }
    }
    if found.len() == wanted.len() {
        // Everything is known: the rest of the walk is not needed.
        let _ = log.kill();
        let _ = log.wait();
        Ok(found)
    } else {
        drop(reader);
        finish(log, &shown(&args)).map(|()| found)
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

fn complete_check(repo: &Repo, counts: &Counts) -> Check {
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

fn tokens_check(repo: &Repo, findings: &[Finding], counts: &Counts, more: usize) -> Check {
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

fn secrets_check(values: &[(SecretKind, &[u8])], findings: &[Finding]) -> Check {
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
