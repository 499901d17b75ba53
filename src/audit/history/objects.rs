//! What `git` prints about the objects: each blob's content through
//! `git cat-file --batch`, and the first commit that added a blob through
//! one pass of `git log`.

use std::{
    collections::{HashMap, HashSet},
    io::{self, BufRead, BufReader, Read, Write},
    process::{Child, ChildStdout, Stdio},
    thread,
};

use crate::audit::{
    error::AuditError,
    git::{failed, shown, Git},
};

/// One object printed by `git cat-file --batch`.
pub(super) enum Object<'a> {
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
pub(super) enum Input {
    /// Another process's output.
    Pipe(Stdio),
    /// These lines, written by a thread so that neither side waits for the
    /// other.
    Lines(Vec<u8>),
}

/// Runs `git cat-file --batch` on the object ids (one a line, with a path
/// after them or not) that `input` gives, and hands each object to `each`.
pub(super) fn cat_objects(
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
pub(super) fn finish(mut child: Child, shown: &str) -> Result<(), AuditError> {
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

/// For each wanted blob, the first commit (oldest first, parents before
/// children) whose change adds it, and its path there: (order, commit,
/// path). One pass of `git log` over every ref, stopped once all are found.
pub(super) fn first_commits(
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
