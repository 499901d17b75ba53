//! Run with `cargo run --example audit -- [PATH] [--topics FILE] [--format text|json]`
//!
//! Intercom's security checklist on the git repository at PATH (default:
//! the current directory): leaked access tokens and secrets anywhere in its
//! history, index or working tree, `.env` files kept out of git, the
//! secrets of the environment well-formed and distinct, and the least
//! permissions for the topics in FILE (one a line; `#` starts a comment).
//!
//! ```text
//! $ cargo run --example audit -- . --topics topics.txt
//! tower-intercom security audit of /home/me/service
//!
//! passed   git.history_complete            every object reachable from a ref is here (212 commits)
//! FAILED   git.access_tokens               1 Intercom access token(s) in 1290 blobs of 212 commits, the index and 0 working-tree files
//!                                          - access token 3f2a9c1d added in commit 5e0f82349ab1, config/dev.yml line 4; in 7 blobs or files in all
//!                                          fix: rotate each token now (…), then remove it from history: echo '…' > ../intercom-tokens.txt && git filter-repo --replace-text ../intercom-tokens.txt
//! …
//! 1 failed, 7 passed, 6 skipped, 1 to check by hand
//! ```
//!
//! The secrets come from `INTERCOM_ACCESS_TOKEN`, `INTERCOM_WEBHOOK_SECRET`,
//! `INTERCOM_WEBHOOK_SECRET_PREVIOUS` and `INTERCOM_IDENTITY_SECRET`; unset
//! ones are skipped. Nothing printed holds a secret: findings give the first
//! 8 hex digits of its SHA-256.
//!
//! With `INTERCOM_ACCESS_TOKEN` set (and the `client` feature, which the
//! examples have), the audit calls Intercom's `GET /me` once, at
//! `INTERCOM_API_URL` (`us` by default, `eu`, `au` or a URL), to check that
//! the token belongs to an admin and that Identity Verification is
//! enforced; `INTERCOM_ACCESS_TOKEN_ISSUED_AT` (RFC 3339) gives the token's
//! age, which fails the audit at 90 days.
//!
//! `--format json` prints the report as the JSON document documented in
//! `tower_intercom::audit` (schema version 1), for CI annotations.
//!
//! Exit status: 0 when no check failed, 1 when one did, 2 when the audit
//! could not run (bad arguments, not a git repository, no `git`).

use std::{fs, path::PathBuf, process::ExitCode};

use tower_intercom::audit::Audit;

const USAGE: &str = "usage: cargo run --example audit -- [PATH] [--topics FILE] [--topic TOPIC]... [--format text|json]

  PATH            the git repository to audit (default: the current directory)
  --topics FILE   the webhook topics the service subscribes to, one a line (# comments)
  --topic TOPIC   a topic (repeatable; commas also separate topics)
  --format F      text (default) or json

The secrets are read from INTERCOM_ACCESS_TOKEN, INTERCOM_WEBHOOK_SECRET,
INTERCOM_WEBHOOK_SECRET_PREVIOUS and INTERCOM_IDENTITY_SECRET; with a token,
GET /me is called at INTERCOM_API_URL (us, eu, au or a URL) and the token's
age is checked when INTERCOM_ACCESS_TOKEN_ISSUED_AT (RFC 3339) is set.
Exit status: 0 all checks passed, 1 a check failed, 2 the audit could not run.";

#[derive(Debug, PartialEq)]
enum Format {
    Text,
    Json,
}

#[derive(Debug)]
struct Options {
    path: PathBuf,
    topics: Vec<String>,
    format: Format,
}

/// The topics of a file's text: one a line (commas also separate), `#`
/// starting a comment.
fn topics_in(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut path = None;
    let mut topics = Vec::new();
    let mut format = Format::Text;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--topics" => {
                let file = value("--topics")?;
                let text = fs::read_to_string(&file)
                    .map_err(|err| format!("cannot read the topics file {file}: {err}"))?;
                topics.extend(topics_in(&text));
            }
            "--topic" => topics.extend(topics_in(&value("--topic")?)),
            "--format" => {
                format = match value("--format")?.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    other => return Err(format!("unknown format {other:?}: text or json")),
                }
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if path.is_some() => return Err(format!("one PATH only (got {arg:?} too)")),
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    Ok(Some(Options {
        path: path.unwrap_or_else(|| PathBuf::from(".")),
        topics,
        format,
    }))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("error: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = Audit::repository(&options.path)
        .secrets_from_env()
        .topics(options.topics.iter().map(String::as_str))
        .run();
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: the audit could not run: {err}");
            return ExitCode::from(2);
        }
    };
    match options.format {
        Format::Text => println!("{report}"),
        Format::Json => println!("{:#}", report.to_json()),
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
