//! The security audit on real git repositories built here, in temporary
//! directories, with the host's git configuration left out. Token-shaped
//! values are made at run time: this repository audits itself, and a
//! literal would be found.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower_intercom::audit::{Audit, AuditErrorKind, Location, Report, SecretKind, Status};
use tower_intercom_test_support::examples;

/// A token of the shape Intercom issues (base64 of `tok:` + a random UUID
/// written with underscores + `:1:0`).
fn token() -> String {
    let hex = hex::encode(rand::random::<[u8; 16]>());
    let uuid = format!(
        "{}_{}_{}_{}_{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    base64::engine::general_purpose::STANDARD.encode(format!("tok:{uuid}:1:0"))
}

/// The fingerprint the report gives for `secret`.
fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))[..8].to_owned()
}

/// Sets what `git` needs so that nothing of the host's configuration counts.
fn isolate(command: &mut Command) -> &mut Command {
    command
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Audit Test")
        .env("GIT_AUTHOR_EMAIL", "audit@example.com")
        .env("GIT_COMMITTER_NAME", "Audit Test")
        .env("GIT_COMMITTER_EMAIL", "audit@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
}

/// A git repository in a temporary directory.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// `git init` with a `.gitignore` that keeps the `.env` files out.
    fn new() -> Self {
        let repo = Self::bare_init();
        repo.write(".gitignore", ".env\n.env.local\n.env.*.local\n");
        repo
    }

    /// `git init`, nothing else.
    fn bare_init() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args)
    }

    fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Commits everything; returns the commit's id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    fn audit(&self) -> Report {
        Audit::repository(self.path()).run().unwrap()
    }
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = isolate(Command::new("git").arg("-C").arg(dir).args(args))
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn status(report: &Report, id: &str) -> Status {
    report
        .check(id)
        .unwrap_or_else(|| panic!("no {id}"))
        .status()
}

/// Everything a person or a CI job could see of a report.
fn shown(report: &Report) -> String {
    format!("{report}\n{report:?}\n{}", report.to_json())
}

#[test]
fn a_token_committed_then_deleted_is_found_with_the_commit_that_added_it() {
    let repo = Repo::new();
    repo.write("README", "hello\n");
    repo.commit("first");
    let token = token();
    repo.write(
        "config/settings.yml",
        format!("name: demo\nregion: us\ntoken: {token}\n"),
    );
    let added = repo.commit("add settings");
    repo.write("config/settings.yml", "name: demo\nregion: us\nagain: 1\n");
    repo.commit("change settings");
    repo.git(&["rm", "-q", "config/settings.yml"]);
    repo.commit("remove settings");

    let report = repo.audit();
    assert!(!report.passed());
    let check = report.check("git.access_tokens").unwrap();
    assert_eq!(check.status(), Status::Failed);
    let [finding] = check.findings() else {
        panic!("{report}")
    };
    assert_eq!(finding.kind(), SecretKind::AccessToken);
    assert_eq!(finding.location(), &Location::Commit(added.clone()));
    assert_eq!(finding.path(), "config/settings.yml");
    assert_eq!(finding.line(), 3);
    assert_eq!(finding.fingerprint().to_string(), fingerprint(&token));
    assert!(!finding.is_binary());
    assert_eq!(finding.occurrences(), 1);
    let remediation = check.remediation().unwrap();
    assert!(
        remediation.starts_with("rotate each token now"),
        "{remediation}"
    );
    assert!(
        remediation.contains("git filter-repo --replace-text"),
        "{remediation}"
    );
    // The token itself is nowhere in what the report shows.
    let text = shown(&report);
    assert!(!text.contains(&token), "{text}");
    assert!(!text.contains(&token[..20]), "{text}");
    assert!(text.contains(&added[..12]), "{text}");
}

#[test]
fn a_token_kept_in_many_versions_of_a_file_is_one_finding_at_its_first_commit() {
    let repo = Repo::new();
    let token = token();
    repo.write("app.env.sample", format!("TOKEN={token}\nN=0\n"));
    let added = repo.commit("add");
    for n in 1..5 {
        repo.write("app.env.sample", format!("TOKEN={token}\nN={n}\n"));
        repo.commit("bump");
    }
    let report = repo.audit();
    let [finding] = report.check("git.access_tokens").unwrap().findings() else {
        panic!("{report}")
    };
    assert_eq!(finding.commit(), Some(added.as_str()));
    assert_eq!(finding.occurrences(), 5);
    assert_eq!(finding.line(), 1);
}

#[test]
fn a_token_on_another_branch_is_found() {
    let repo = Repo::new();
    repo.commit("first");
    repo.git(&["checkout", "-q", "-b", "experiment"]);
    let token = token();
    repo.write("src/client.py", format!("import x\n\nTOKEN = '{token}'\n"));
    let added = repo.commit("try the API");
    repo.git(&["checkout", "-q", "main"]);
    assert!(!repo.path().join("src/client.py").exists());

    let report = repo.audit();
    let [finding] = report.check("git.access_tokens").unwrap().findings() else {
        panic!("{report}")
    };
    assert_eq!(finding.commit(), Some(added.as_str()));
    assert_eq!((finding.path(), finding.line()), ("src/client.py", 3));

    // And from a tag only, the branch deleted.
    repo.git(&["tag", "v0-experiment", "experiment"]);
    repo.git(&["branch", "-q", "-D", "experiment"]);
    assert_eq!(status(&repo.audit(), "git.access_tokens"), Status::Failed);
}

/// A stash is a ref (`refs/stash`): found. A dropped stash is reachable from
/// no ref: not scanned, by design (it is neither pushed nor cloned).
#[test]
fn a_token_in_a_stash_is_found_and_in_a_dropped_stash_is_not() {
    let repo = Repo::new();
    repo.write("settings.toml", "a = 1\n");
    repo.commit("first");
    let token = token();
    repo.write("settings.toml", format!("a = 1\ntoken = \"{token}\"\n"));
    repo.git(&["stash", "-q"]);
    assert!(!std::fs::read_to_string(repo.path().join("settings.toml"))
        .unwrap()
        .contains(&token));

    let report = repo.audit();
    let check = report.check("git.access_tokens").unwrap();
    assert_eq!(check.status(), Status::Failed, "{report}");
    let stash = repo.git(&["rev-parse", "refs/stash"]);
    let stash_index = repo.git(&["rev-parse", "refs/stash^2"]);
    let commit = check.findings()[0].commit().unwrap();
    assert!(
        stash.trim() == commit || stash_index.trim() == commit,
        "{report}"
    );

    repo.git(&["stash", "drop", "-q"]);
    // The object is still on disk, unreachable.
    let object = repo.git(&["fsck", "--unreachable", "--no-reflogs"]);
    assert!(object.contains("unreachable"), "{object}");
    let report = repo.audit();
    assert_eq!(
        status(&report, "git.access_tokens"),
        Status::Passed,
        "{report}"
    );
}

#[test]
fn a_token_in_a_binary_file_is_found() {
    let repo = Repo::new();
    let token = token();
    let mut binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    binary.extend_from_slice(b"\0\x01\x02");
    binary.extend_from_slice(token.as_bytes());
    binary.extend_from_slice(&[0, 0xff, 0xfe]);
    repo.write("assets/app.bin", &binary);
    let added = repo.commit("binary");

    let report = repo.audit();
    let [finding] = report.check("git.access_tokens").unwrap().findings() else {
        panic!("{report}")
    };
    assert!(finding.is_binary());
    assert_eq!(finding.commit(), Some(added.as_str()));
    assert_eq!(finding.path(), "assets/app.bin");
    assert!(report.to_string().contains("(binary file)"));
}

/// Stated behaviour: no piece of a split token has the token's shape, so it
/// is not found.
#[test]
fn a_token_split_across_lines_is_not_found() {
    let repo = Repo::new();
    let token = token();
    let (head, tail) = token.split_at(30);
    repo.write(
        "split.py",
        format!("TOKEN = (\n    '{head}'\n    '{tail}'\n)\n"),
    );
    repo.write("split.txt", format!("{head}\n{tail}\n"));
    repo.commit("split");
    let report = repo.audit();
    assert_eq!(
        status(&report, "git.access_tokens"),
        Status::Passed,
        "{report}"
    );
}

#[test]
fn base64_that_is_not_a_token_is_not_found() {
    let repo = Repo::new();
    let b64 = &base64::engine::general_purpose::STANDARD;
    let noise: Vec<u8> = (0..20_000).map(|_| rand::random::<u8>()).collect();
    let mut text = String::new();
    // A long blob of base64 with `dG9r`, `dG9rO` and the letters of a real
    // token inside it, at every offset.
    let mut blob = b64.encode(&noise);
    let token = token();
    for (i, at) in [101, 2002, 3003, 4004, 5005, 6006].into_iter().enumerate() {
        let piece = match i % 3 {
            0 => "dG9r",
            1 => "dG9rO",
            _ => token.trim_end_matches('='),
        };
        blob.insert_str(at, piece);
    }
    text.push_str(&blob);
    text.push('\n');
    // A token's text inside base64 of something longer, at each alignment.
    let decoded = b64.decode(&token).unwrap();
    for before in 0..3 {
        let mut data = noise[..before].to_vec();
        data.extend_from_slice(&decoded);
        data.extend_from_slice(&noise[..100]);
        text.push_str(&b64.encode(&data));
        text.push('\n');
    }
    // Base64 of `tok:` and something that is not a token (the crate's own
    // examples use such values), and of text that happens to hold `tok:`.
    for value in [
        "tok:example_token",
        "tok:fake_intercom_token",
        "\t\t\tok: true;",
    ] {
        text.push_str(&format!("value = \"{}\"\n", b64.encode(value)));
    }
    repo.write("data/blob.txt", &text);
    repo.commit("noise");
    let report = repo.audit();
    assert_eq!(
        status(&report, "git.access_tokens"),
        Status::Passed,
        "{report}"
    );
    // `git log -p | grep dG9r` would have flagged it.
    assert!(repo.git(&["log", "-p"]).contains("dG9r"));
}

#[test]
fn given_secret_values_are_found_in_history() {
    let repo = Repo::new();
    let webhook = format!("whsec-{}", hex::encode(rand::random::<[u8; 12]>()));
    let identity = format!("idsec-{}", hex::encode(rand::random::<[u8; 12]>()));
    repo.write(
        "deploy/values.yaml",
        format!("replicas: 2\nclientSecret: {webhook}\n"),
    );
    let added = repo.commit("deploy values");
    repo.write("deploy/values.yaml", "replicas: 2\n");
    repo.commit("secret out of values");

    let report = Audit::repository(repo.path())
        .webhook_secret(webhook.as_str())
        .identity_secret(identity.as_str())
        .run()
        .unwrap();
    let check = report.check("git.secret_values").unwrap();
    assert_eq!(check.status(), Status::Failed, "{report}");
    let [finding] = check.findings() else {
        panic!("{report}")
    };
    assert_eq!(finding.kind(), SecretKind::WebhookSecret);
    assert_eq!(finding.commit(), Some(added.as_str()));
    assert_eq!((finding.path(), finding.line()), ("deploy/values.yaml", 2));
    assert_eq!(finding.fingerprint().to_string(), fingerprint(&webhook));
    assert!(check
        .remediation()
        .unwrap()
        .contains("INTERCOM_WEBHOOK_SECRET"));
    // The identity secret is not there; neither value is shown.
    let text = shown(&report);
    assert!(
        !text.contains(&webhook) && !text.contains(&identity),
        "{text}"
    );
    // Not given: skipped, with the reason.
    let report = repo.audit();
    let check = report.check("git.secret_values").unwrap();
    assert_eq!(check.status(), Status::Skipped);
    assert!(check
        .message()
        .contains("no webhook or identity secret given"));
}

#[test]
fn a_tracked_env_file_fails() {
    let repo = Repo::new();
    repo.write("service/.env", "DEBUG=1\n");
    repo.git(&["add", "-f", "service/.env"]);
    repo.commit("env");
    let report = repo.audit();
    let check = report.check("env_files.not_tracked").unwrap();
    assert_eq!(check.status(), Status::Failed, "{report}");
    assert_eq!(check.details(), ["service/.env is tracked"]);
    assert!(check
        .remediation()
        .unwrap()
        .contains("git rm --cached -- service/.env"));
    assert_eq!(status(&report, "env_files.ignored"), Status::Passed);
}

#[test]
fn a_gitignore_without_the_entries_fails() {
    let repo = Repo::bare_init();
    repo.write("main.rs", "fn main() {}\n");
    repo.commit("first");
    let report = repo.audit();
    let check = report.check("env_files.ignored").unwrap();
    assert_eq!(check.status(), Status::Failed, "{report}");
    assert!(check
        .details()
        .contains(&".env would be committed".to_owned()));

    // `.env` alone is not enough.
    repo.write(".gitignore", ".env\n");
    repo.commit("ignore .env");
    let report = repo.audit();
    let check = report.check("env_files.ignored").unwrap();
    assert_eq!(check.status(), Status::Failed);
    assert_eq!(
        check.details()[0],
        ".env.local would be committed",
        "{report}"
    );
    assert!(!check
        .details()
        .iter()
        .any(|d| d == ".env would be committed"));

    // An ignore that lives only in .git/info/exclude does not travel with
    // the repository.
    std::fs::write(
        repo.path().join(".git/info/exclude"),
        ".env.local\n.env.*.local\n",
    )
    .unwrap();
    assert_eq!(status(&repo.audit(), "env_files.ignored"), Status::Failed);

    repo.write(".gitignore", ".env\n.env.local\n.env.*.local\n");
    repo.commit("ignore them all");
    assert_eq!(status(&repo.audit(), "env_files.ignored"), Status::Passed);
}

#[test]
fn nested_gitignores_count() {
    let repo = Repo::bare_init();
    // Anchored to the top: `services/api/.env` could be committed.
    repo.write(".gitignore", "/.env\n/.env.local\n/.env.*.local\n");
    repo.write("services/api/main.py", "print()\n");
    repo.write("services/web/index.js", "1\n");
    repo.commit("first");
    let report = repo.audit();
    let check = report.check("env_files.ignored").unwrap();
    assert_eq!(check.status(), Status::Failed, "{report}");
    assert!(check
        .details()
        .contains(&"services/api/.env would be committed".to_owned()));

    // A .gitignore in `services/` covers both directories below it.
    repo.write("services/.gitignore", ".env\n.env.local\n.env.*.local\n");
    repo.commit("ignore in services");
    assert_eq!(status(&repo.audit(), "env_files.ignored"), Status::Passed);

    // A nested negation brings one back.
    repo.write("services/web/.gitignore", "!.env\n");
    repo.commit("un-ignore");
    let report = repo.audit();
    let check = report.check("env_files.ignored").unwrap();
    assert_eq!(check.status(), Status::Failed);
    assert_eq!(check.details(), ["services/web/.env would be committed"]);
}

#[test]
fn a_clean_repository_passes() {
    let repo = Repo::new();
    repo.write(".env.example", "INTERCOM_ACCESS_TOKEN=\n");
    repo.write("src/lib.rs", "pub fn f() {}\n");
    repo.commit("first");
    repo.write("src/lib.rs", "pub fn f() -> u8 { 1 }\n");
    repo.commit("second");
    // An ignored .env holding a token is not in the repository.
    repo.write(".env", format!("INTERCOM_ACCESS_TOKEN={}\n", token()));

    let report = repo.audit();
    assert!(report.passed(), "{report}");
    report.assert_passed();
    for id in [
        "git.history_complete",
        "git.access_tokens",
        "env_files.ignored",
        "env_files.not_tracked",
    ] {
        assert_eq!(status(&report, id), Status::Passed, "{id}: {report}");
    }
    for id in [
        "git.secret_values",
        "secrets.access_token",
        "secrets.distinct",
        "permissions.least_privilege",
        "intercom.token_admin",
        "intercom.identity_verification",
        "intercom.token_age",
    ] {
        assert_eq!(status(&report, id), Status::Skipped, "{id}: {report}");
    }
    let online = report.check("intercom.token_admin").unwrap();
    assert_eq!(
        online.message(),
        "no access token given (INTERCOM_ACCESS_TOKEN)"
    );
}

#[test]
fn assert_passed_panics_with_the_table() {
    let repo = Repo::new();
    repo.write("notes.md", format!("token: {}\n", token()));
    repo.commit("notes");
    let report = repo.audit();
    let panic = std::panic::catch_unwind(|| report.assert_passed()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("the security audit failed"),
        "{message}"
    );
    assert!(message.contains(&report.to_string()), "{message}");
    assert!(message.contains("FAILED   git.access_tokens"), "{message}");
    assert!(message.contains("fix: rotate each token now"), "{message}");
}

#[test]
fn tokens_staged_or_in_the_working_tree_are_found() {
    let repo = Repo::new();
    repo.write("tracked.txt", "a\n");
    repo.commit("first");
    let (staged, untracked, modified) = (token(), token(), token());
    repo.write("staged.txt", format!("{staged}\n"));
    repo.git(&["add", "staged.txt"]);
    repo.write("notes/untracked.txt", format!("x\ny\n{untracked}\n"));
    repo.write("tracked.txt", format!("a\n{modified}\n"));
    let report = repo.audit();
    let findings = report.check("git.access_tokens").unwrap().findings();
    let by = |token: &str| {
        findings
            .iter()
            .find(|f| f.fingerprint().to_string() == fingerprint(token))
            .unwrap_or_else(|| panic!("{report}"))
    };
    assert_eq!(by(&staged).location(), &Location::Index);
    assert_eq!(by(&untracked).location(), &Location::WorkingTree);
    assert_eq!(by(&untracked).path(), "notes/untracked.txt");
    assert_eq!(by(&untracked).line(), 3);
    assert_eq!(by(&modified).location(), &Location::WorkingTree);
    assert_eq!(findings.len(), 3);
}

#[test]
fn the_secrets_are_checked_with_the_crates_parsers() {
    let repo = Repo::new();
    repo.commit("first");
    let token = token();
    let report = Audit::repository(repo.path())
        .access_token(format!("{token}\n"))
        .webhook_secret("shared-secret-value")
        .identity_secret("shared-secret-value")
        .previous_webhook_secret("")
        .run()
        .unwrap();
    let token_check = report.check("secrets.access_token").unwrap();
    assert_eq!(token_check.status(), Status::Failed);
    assert!(token_check.message().contains("whitespace"), "{report}");
    assert_eq!(status(&report, "secrets.webhook_secret"), Status::Passed);
    assert_eq!(status(&report, "secrets.identity_secret"), Status::Passed);
    let previous = report.check("secrets.webhook_secret_previous").unwrap();
    assert_eq!(previous.status(), Status::Failed);
    assert!(previous.message().contains("is empty"), "{report}");
    let distinct = report.check("secrets.distinct").unwrap();
    assert_eq!(distinct.status(), Status::Failed);
    assert_eq!(
        distinct.message(),
        "INTERCOM_WEBHOOK_SECRET equals INTERCOM_IDENTITY_SECRET"
    );
    let text = shown(&report);
    assert!(!text.contains("shared-secret-value") && !text.contains(&token[..20]));
    // With a token given, the online checks say what they lack: an API
    // client, or (with one) a token that can be sent.
    let online = report.check("intercom.token_admin").unwrap();
    assert_eq!(online.status(), Status::Skipped);
    let lack = if cfg!(feature = "client") {
        "the access token is malformed"
    } else {
        "`client` feature"
    };
    assert!(online.message().contains(lack), "{report}");

    let audit = Audit::repository(repo.path())
        .access_token(token.as_str())
        .webhook_secret("webhook-secret-value");
    #[cfg(feature = "client")]
    let fake = online::Fake::start();
    #[cfg(feature = "client")]
    let audit = audit.api_base(fake.base());
    let report = audit.run().unwrap();
    for id in [
        "secrets.access_token",
        "secrets.webhook_secret",
        "secrets.distinct",
    ] {
        assert_eq!(status(&report, id), Status::Passed, "{id}: {report}");
    }
    assert!(report
        .check("secrets.access_token")
        .unwrap()
        .details()
        .is_empty());
}

#[test]
fn least_privilege_lists_the_permissions_to_compare_by_hand() {
    let repo = Repo::new();
    repo.commit("first");
    let report = Audit::repository(repo.path())
        .topics(["conversation.user.replied", "ticket.created", "ping"])
        .run()
        .unwrap();
    let check = report.check("permissions.least_privilege").unwrap();
    assert_eq!(check.status(), Status::Manual);
    assert!(report.passed(), "manual does not fail the run");
    assert_eq!(
        &check.details()[..2],
        ["needed: Read conversations", "needed: Read tickets"]
    );
    assert!(check.details()[2].starts_with("Intercom offers no API to list a token's permissions"));
    assert!(check.details()[2].contains("Developer Hub > your app > Configure > Authentication"));

    let report = Audit::repository(repo.path())
        .topics(["conversation.user.replied", "contact.created"])
        .run()
        .unwrap();
    let check = report.check("permissions.least_privilege").unwrap();
    assert_eq!(check.status(), Status::Failed);
    assert_eq!(check.message(), "unknown topic(s): contact.created");
}

#[test]
fn a_path_that_is_not_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Audit::repository(dir.path()).run().unwrap_err();
    assert_eq!(err.kind(), AuditErrorKind::NotARepository);
    let message = err.to_string();
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("not a git repository"), "{message}");

    let missing = dir.path().join("nowhere");
    let err = Audit::repository(&missing).run().unwrap_err();
    assert_eq!(err.kind(), AuditErrorKind::NotARepository);
    assert!(err.to_string().ends_with("no such directory"), "{err}");
}

#[test]
fn a_repository_with_no_commits_is_audited() {
    let repo = Repo::bare_init();
    let report = repo.audit();
    let check = report.check("git.history_complete").unwrap();
    assert_eq!(check.status(), Status::Passed);
    assert_eq!(check.message(), "no commits yet");
    assert_eq!(status(&report, "git.access_tokens"), Status::Passed);
    // What is staged in it is scanned.
    let token = token();
    repo.write("first.txt", &token);
    repo.git(&["add", "first.txt"]);
    let report = repo.audit();
    let [finding] = report.check("git.access_tokens").unwrap().findings() else {
        panic!("{report}")
    };
    assert_eq!(finding.location(), &Location::Index);
}

#[test]
fn a_shallow_clone_fails_the_history_check_and_still_scans_what_it_has() {
    let origin = Repo::new();
    let old = token();
    origin.write("old.txt", format!("{old}\n"));
    origin.commit("old");
    origin.git(&["rm", "-q", "old.txt"]);
    origin.commit("removed");
    let recent = token();
    origin.write("new.txt", format!("{recent}\n"));
    origin.commit("new");

    let clones = tempfile::tempdir().unwrap();
    let url = format!("file://{}", origin.path().display());
    git_in(
        clones.path(),
        &["clone", "-q", "--depth", "1", &url, "shallow"],
    );
    let report = Audit::repository(clones.path().join("shallow"))
        .run()
        .unwrap();
    let check = report.check("git.history_complete").unwrap();
    assert_eq!(check.status(), Status::Failed, "{report}");
    assert!(check.message().starts_with("shallow clone"), "{report}");
    assert!(check
        .remediation()
        .unwrap()
        .contains("git fetch --unshallow"));
    // The old token is beyond the depth; the recent one is found.
    let findings = report.check("git.access_tokens").unwrap().findings();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0].fingerprint().to_string(), fingerprint(&recent));
}

#[test]
fn a_worktree_and_a_bare_clone_are_audited() {
    let repo = Repo::new();
    repo.commit("first");
    repo.git(&["branch", "side"]);
    let token = token();
    repo.write("side.txt", &token);
    let added = repo.commit("token");
    let worktrees = tempfile::tempdir().unwrap();
    let worktree = worktrees.path().join("side");
    repo.git(&["worktree", "add", "-q", worktree.to_str().unwrap(), "side"]);
    let report = Audit::repository(&worktree).run().unwrap();
    assert_eq!(
        report.repository(),
        std::fs::canonicalize(&worktree).unwrap()
    );
    let findings = report.check("git.access_tokens").unwrap().findings();
    assert_eq!(findings[0].commit(), Some(added.as_str()), "{report}");
    assert_eq!(status(&report, "env_files.ignored"), Status::Passed);

    let bare = worktrees.path().join("bare.git");
    git_in(
        worktrees.path(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.path().to_str().unwrap(),
            "bare.git",
        ],
    );
    let report = Audit::repository(&bare).run().unwrap();
    assert_eq!(
        report.check("git.access_tokens").unwrap().findings().len(),
        1
    );
    assert_eq!(status(&report, "env_files.ignored"), Status::Skipped);
}

// ---------------------------------------------------------------------------
// The example, as a user runs it.

fn run_example(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = examples::command("audit");
    isolate(&mut command).current_dir(dir).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn the_example_prints_the_table_and_exits_1_on_a_failure() {
    let repo = Repo::new();
    let token = token();
    repo.write("config.json", format!("{{\n  \"token\": \"{token}\"\n}}\n"));
    let added = repo.commit("config");
    let output = run_example(repo.path(), &[], &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("FAILED   git.access_tokens"), "{text}");
    assert!(
        text.contains(&format!(
            "access token {} added in commit {}, config.json line 2",
            fingerprint(&token),
            &added[..12]
        )),
        "{text}"
    );
    assert!(text.contains("fix: rotate each token now"), "{text}");
    assert!(!text.contains(&token), "{text}");

    // Removed from history and rotated: the same repository passes.
    let clean = Repo::new();
    clean.commit("first");
    let output = run_example(clean.path(), &["--format", "text"], &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("passed   git.access_tokens"), "{text}");
    assert!(
        text.ends_with("0 failed, 4 passed, 10 skipped, 0 to check by hand\n"),
        "{text}"
    );
}

#[test]
fn the_example_prints_json_of_schema_version_1() {
    let repo = Repo::new();
    let token = token();
    repo.write("a/b.txt", format!("x\n{token}\n"));
    let added = repo.commit("leak");
    let output = run_example(repo.path(), &["--format", "json"], &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["passed"], false);
    assert_eq!(json["summary"]["failed"], 1);
    let checks = json["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "git.history_complete",
            "git.access_tokens",
            "git.secret_values",
            "env_files.ignored",
            "env_files.not_tracked",
            "secrets.access_token",
            "secrets.webhook_secret",
            "secrets.webhook_secret_previous",
            "secrets.identity_secret",
            "secrets.distinct",
            "permissions.least_privilege",
            "intercom.token_admin",
            "intercom.identity_verification",
            "intercom.token_age",
        ]
    );
    let tokens = &checks[1];
    assert_eq!(tokens["status"], "failed");
    assert!(tokens["remediation"]
        .as_str()
        .unwrap()
        .starts_with("rotate"));
    let finding = &tokens["findings"][0];
    assert_eq!(finding["kind"], "access_token");
    assert_eq!(finding["fingerprint"], fingerprint(&token));
    assert_eq!(finding["location"], "commit");
    assert_eq!(finding["commit"], added);
    assert_eq!(finding["path"], "a/b.txt");
    assert_eq!(finding["line"], 2);
    assert_eq!(finding["binary"], false);
    assert_eq!(finding["occurrences"], 1);
    assert_eq!(checks[0]["remediation"], Value::Null);
    assert_eq!(checks[2]["status"], "skipped");
}

#[test]
fn the_example_refuses_bad_arguments_and_paths_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["--format", "xml"][..], "unknown format"),
        (&["--bogus"][..], "unknown option --bogus"),
        (&["--topics"][..], "--topics needs a value"),
        (
            &["--topics", "/nonexistent/topics.txt"][..],
            "cannot read the topics file",
        ),
        (&["a", "b"][..], "one PATH only"),
        (&["."][..], "is not in a git repository"),
    ] {
        let output = run_example(dir.path(), args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let output = run_example(dir.path(), &["--help"], &[]);
    assert_eq!(output.status.code(), Some(0));

    // No git on PATH.
    let output = run_example(dir.path(), &[], &[("PATH", "/nonexistent")]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("could not run git: it is not installed or not on PATH"),
        "{stderr}"
    );
}

/// The example has the API client (the examples are built with every
/// feature), so the library needs it too for the same online checks.
#[cfg(feature = "client")]
#[test]
fn the_example_and_the_library_give_the_same_report() {
    let repo = Repo::new();
    let token = token();
    let fake = online::Fake::start();
    fake.fake.set_token(&token, online::TokenState::Valid);
    let url = fake.fake.base_url();
    let webhook = format!("whsec-{}", hex::encode(rand::random::<[u8; 12]>()));
    repo.write("one.txt", format!("{token}\n"));
    repo.write("two.txt", format!("secret={webhook}\n"));
    repo.write("sub/.env", "X=1\n");
    repo.git(&["add", "-f", "sub/.env"]);
    repo.commit("leaks");
    repo.write("untracked.txt", format!("again {token}\n"));
    let topics = repo.path().join("topics.txt");
    std::fs::write(
        &topics,
        "# the service's subscription\nconversation.user.replied\nticket.created, contact.user.created\n\n",
    )
    .unwrap();
    let identity = "identity-secret-value";

    let output = run_example(
        repo.path(),
        &["--format", "json", "--topics", topics.to_str().unwrap()],
        &[
            ("INTERCOM_ACCESS_TOKEN", &token),
            ("INTERCOM_WEBHOOK_SECRET", &webhook),
            ("INTERCOM_IDENTITY_SECRET", identity),
            ("INTERCOM_API_URL", &url),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let from_example: Value = serde_json::from_slice(&output.stdout).unwrap();

    let report = Audit::repository(repo.path())
        .api_base(fake.base())
        .access_token(token.as_str())
        .webhook_secret(webhook.as_str())
        .identity_secret(identity)
        .topics([
            "conversation.user.replied",
            "ticket.created",
            "contact.user.created",
        ])
        .run()
        .unwrap();
    assert_eq!(from_example, report.to_json());
    let failed: Vec<&str> = report.failures().map(|c| c.id()).collect();
    assert_eq!(
        failed,
        [
            "git.access_tokens",
            "git.secret_values",
            "env_files.not_tracked"
        ],
        "{report}"
    );
    assert_eq!(
        report.check("git.access_tokens").unwrap().findings()[0].occurrences(),
        2
    );
}

// ---------------------------------------------------------------------------
// The online checks, against a fake Intercom API on a loopback port.

#[cfg(feature = "client")]
mod online {
    use std::time::{Duration, SystemTime};

    use tower_intercom::client::ApiBase;
    pub(crate) use tower_intercom_test_support::fake_intercom::TokenState;
    use tower_intercom_test_support::fake_intercom::{FakeIntercom, Me};

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// A fake Intercom API served by a runtime of its own, so that the
    /// audit's blocking `run()` can call it from a plain test.
    pub(crate) struct Fake {
        pub(crate) fake: FakeIntercom,
        _runtime: tokio::runtime::Runtime,
    }

    impl Fake {
        pub(crate) fn start() -> Self {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let fake = runtime.block_on(FakeIntercom::start());
            Self {
                fake,
                _runtime: runtime,
            }
        }

        pub(crate) fn base(&self) -> ApiBase {
            self.fake.base_url().parse().unwrap()
        }
    }

    /// A committed repository with nothing wrong in it.
    fn clean_repo() -> Repo {
        let repo = Repo::new();
        repo.write("src/lib.rs", "pub fn f() {}\n");
        repo.commit("first");
        repo
    }

    /// A fresh token-shaped value the fake answers as told.
    fn fake_with_token(state: TokenState) -> (Fake, String) {
        let fake = Fake::start();
        let token = token();
        fake.fake.set_token(&token, state);
        (fake, token)
    }

    fn audit(repo: &Repo, fake: &Fake, token: &str) -> Audit {
        Audit::repository(repo.path())
            .access_token(token)
            .api_base(fake.base())
    }

    /// Neither the token nor a long piece of it shows anywhere.
    fn assert_hidden(report: &Report, token: &str) {
        let text = shown(report);
        assert!(
            !text.contains(token) && !text.contains(&token[..20]),
            "{text}"
        );
        assert!(!report.to_json().to_string().contains(&token[..20]));
    }

    #[test]
    fn an_admins_young_token_on_an_app_with_identity_verification_passes() {
        let repo = clean_repo();
        let (fake, token) = fake_with_token(TokenState::Valid);
        let report = audit(&repo, &fake, &token)
            .token_issued_at(SystemTime::now() - DAY * 10)
            .run()
            .unwrap();
        for id in [
            "intercom.token_admin",
            "intercom.identity_verification",
            "intercom.token_age",
        ] {
            assert_eq!(status(&report, id), Status::Passed, "{id}: {report}");
        }
        let admin = report.check("intercom.token_admin").unwrap().message();
        assert!(admin.contains("admin 991267464"), "{report}");
        assert!(admin.contains(&fingerprint(&token)), "{report}");
        assert!(report
            .check("intercom.token_age")
            .unwrap()
            .message()
            .contains("10 days old"));
        assert!(report.passed(), "{report}");
        assert_hidden(&report, &token);
        // One GET /me, with the token.
        let received = fake.fake.received();
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(
            received[0].authorization(),
            Some(format!("Bearer {token}").as_str())
        );
    }

    #[test]
    fn a_revoked_token_fails_with_intercoms_code_and_skips_identity_verification() {
        let repo = clean_repo();
        let (fake, token) = fake_with_token(TokenState::revoked());
        let report = audit(&repo, &fake, &token).run().unwrap();
        let admin = report.check("intercom.token_admin").unwrap();
        assert_eq!(admin.status(), Status::Failed, "{report}");
        assert!(admin.message().contains("token_revoked"), "{report}");
        assert!(admin.message().contains(&fingerprint(&token)), "{report}");
        let fix = admin.remediation().unwrap();
        assert!(fix.starts_with("rotate it: Developer Hub"), "{report}");
        assert!(!fix.contains('\n'));
        assert_eq!(
            status(&report, "intercom.identity_verification"),
            Status::Skipped
        );
        let age = report.check("intercom.token_age").unwrap();
        assert_eq!(age.status(), Status::Skipped, "{report}");
        assert!(age.message().contains("INTERCOM_ACCESS_TOKEN_ISSUED_AT"));
        assert!(!report.passed());
        assert_hidden(&report, &token);
    }

    #[test]
    fn identity_verification_off_fails() {
        let repo = clean_repo();
        let (fake, token) = fake_with_token(TokenState::Valid);
        fake.fake.set_me(Me {
            identity_verification: false,
            ..Me::default()
        });
        let report = audit(&repo, &fake, &token).run().unwrap();
        assert_eq!(status(&report, "intercom.token_admin"), Status::Passed);
        let iv = report.check("intercom.identity_verification").unwrap();
        assert_eq!(iv.status(), Status::Failed, "{report}");
        assert!(iv
            .message()
            .contains("not enforced on app this_is_an_id_code"));
        assert!(iv
            .remediation()
            .unwrap()
            .starts_with("turn on Identity Verification"));
        assert_hidden(&report, &token);
    }

    #[test]
    fn a_token_issued_100_days_ago_fails_its_age() {
        let repo = clean_repo();
        let (fake, token) = fake_with_token(TokenState::Valid);
        let report = audit(&repo, &fake, &token)
            .token_issued_at(SystemTime::now() - DAY * 100)
            .run()
            .unwrap();
        let age = report.check("intercom.token_age").unwrap();
        assert_eq!(age.status(), Status::Failed, "{report}");
        assert!(age.message().contains("100 days old"), "{report}");
        assert!(age.remediation().unwrap().starts_with("rotate it"));
        assert_eq!(status(&report, "intercom.token_admin"), Status::Passed);
        assert_hidden(&report, &token);
    }

    #[test]
    fn an_unreachable_api_fails_the_admin_check_and_says_so() {
        let repo = clean_repo();
        let token = token();
        // A loopback port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base: ApiBase = format!("http://127.0.0.1:{port}").parse().unwrap();
        let report = Audit::repository(repo.path())
            .access_token(token.as_str())
            .api_base(base)
            .run()
            .unwrap();
        let admin = report.check("intercom.token_admin").unwrap();
        assert_eq!(admin.status(), Status::Failed, "{report}");
        assert!(admin.message().contains("cannot reach"), "{report}");
        assert_eq!(
            status(&report, "intercom.identity_verification"),
            Status::Skipped
        );
        assert_hidden(&report, &token);
    }

    /// The audit's blocking call works inside an async test too.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_audit_runs_inside_an_async_runtime() {
        let repo = clean_repo();
        let fake = FakeIntercom::start().await;
        let token = token();
        fake.set_token(&token, TokenState::Valid);
        let base: ApiBase = fake.base_url().parse().unwrap();
        let report = Audit::repository(repo.path())
            .access_token(token.as_str())
            .api_base(base)
            .run()
            .unwrap();
        assert_eq!(status(&report, "intercom.token_admin"), Status::Passed);
    }

    #[test]
    fn the_example_reads_the_api_url_and_the_issued_at_time() {
        let repo = clean_repo();
        let (fake, token) = fake_with_token(TokenState::Valid);
        let issued = jiff::Timestamp::try_from(SystemTime::now() - DAY * 100)
            .unwrap()
            .to_string();
        let url = fake.fake.base_url();
        let env = [
            ("INTERCOM_ACCESS_TOKEN", token.as_str()),
            ("INTERCOM_API_URL", url.as_str()),
            ("INTERCOM_ACCESS_TOKEN_ISSUED_AT", issued.as_str()),
        ];
        let output = run_example(repo.path(), &["--format", "json"], &env);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        let by_id = |id: &str| {
            json["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|check| check["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(by_id("intercom.token_admin")["status"], "passed", "{json}");
        assert_eq!(
            by_id("intercom.identity_verification")["status"],
            "passed",
            "{json}"
        );
        assert_eq!(by_id("intercom.token_age")["status"], "failed", "{json}");
        let text = run_example(repo.path(), &[], &env);
        assert_eq!(text.status.code(), Some(1), "{text:?}");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("FAILED   intercom.token_age"), "{text}");
        for output in [&output.stdout[..], &output.stderr[..], text.as_bytes()] {
            let output = String::from_utf8_lossy(output);
            assert!(!output.contains(&token[..20]), "{output}");
        }
    }
}

// ---------------------------------------------------------------------------
// This repository.

/// The crate audits itself. In a source package (no git history, a
/// `.cargo_vcs_info.json` instead) there is nothing to audit.
#[test]
fn this_repository_passes_the_audit() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if root.join(".cargo_vcs_info.json").exists() {
        eprintln!("a packaged source, not a git repository: nothing to audit");
        return;
    }
    let report = Audit::repository(&root).run().unwrap();
    // A shallow clone (some CI checkouts) cannot show the whole history,
    // which the audit rightly reports; every other check must pass.
    let shallow = std::process::Command::new("git")
        .args(["rev-parse", "--is-shallow-repository"])
        .current_dir(&root)
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"true"));
    if shallow {
        let failed: Vec<&str> = report
            .checks()
            .iter()
            .filter(|check| check.status() == Status::Failed)
            .map(|check| check.id())
            .collect();
        assert_eq!(failed, ["git.history_complete"], "{report}");
    } else {
        report.assert_passed();
    }
    assert_eq!(status(&report, "git.access_tokens"), Status::Passed);
    assert_eq!(status(&report, "env_files.ignored"), Status::Passed);
}
