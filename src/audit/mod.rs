//! Intercom's security checklist as code: one call in a test of your own
//! repository, or one command, that fails when a token leaked into git, a
//! `.env` file can be committed, or a secret is malformed.
//!
//! Add this test to your repository (with `tower-intercom` as a
//! dev-dependency with the `audit` feature), and every CI run audits it:
//!
//! ```no_run
//! #[test]
//! fn intercom_security_audit() {
//!     let report = tower_intercom::audit::Audit::repository(env!("CARGO_MANIFEST_DIR"))
//!         .run()
//!         .expect("the audit runs");
//!     report.assert_passed();
//! }
//! ```
//!
//! [`Report::assert_passed`] panics with the same table the command
//! prints. From a terminal, or a CI job that wants JSON:
//!
//! ```text
//! cargo run --example audit -- [PATH] [--topics FILE] [--format text|json]
//! ```
//!
//! The example reads the secrets from `INTERCOM_ACCESS_TOKEN`,
//! `INTERCOM_WEBHOOK_SECRET`, `INTERCOM_WEBHOOK_SECRET_PREVIOUS` and
//! `INTERCOM_IDENTITY_SECRET`; the library takes them from the builder
//! ([`Audit::access_token`], …, or [`Audit::secrets_from_env`]). It exits
//! with 0 when no check failed, 1 when one did, 2 when the audit could not
//! run (bad arguments, not a repository, no `git`).
//!
//! The audit runs `git` (it must be on `PATH`) and needs no network, except
//! for the online checks: with the `client` feature and an access token
//! given, one `GET /me` to Intercom's API.
//!
//! # The checks
//!
//! | id | what it checks |
//! |---|---|
//! | `git.history_complete` | the whole history is there: not a shallow clone, no object missing |
//! | `git.access_tokens` | no Intercom access token in the repository: every blob reachable from any ref, the index, the working tree |
//! | `git.secret_values` | none of the given secret values (webhook secrets, identity secret) in the repository either |
//! | `env_files.ignored` | `.env`, `.env.local` and `.env.*.local` ignored by the repository's `.gitignore` files, in every directory |
//! | `env_files.not_tracked` | none of those files tracked |
//! | `secrets.access_token` | the given token accepted by [`AccessToken::new`](crate::AccessToken::new) |
//! | `secrets.webhook_secret`, `secrets.webhook_secret_previous` | the given client secrets accepted by [`WebhookSecret`](crate::WebhookSecret) (as text, as `from_env` reads them) |
//! | `secrets.identity_secret` | the given identity secret accepted by [`IdentitySecret`](crate::identity::IdentitySecret) |
//! | `secrets.distinct` | the webhook secrets, the identity secret and the token all different |
//! | `permissions.least_privilege` | the permissions the given topics need ([`Permission::required_for`](crate::notification::Permission::required_for)), to compare by hand: Intercom offers no API to list a token's permissions (Developer Hub > your app > Configure > Authentication) |
//! | `intercom.token_admin` | with the `client` feature and a token given: `GET /me` (once, at `Audit::api_base` or `INTERCOM_API_URL`, 30 s at most) answers an admin; fails with Intercom's code (`token_revoked`, `unauthorized`, …), when the token is not an admin's, or when the API cannot be reached |
//! | `intercom.identity_verification` | Identity Verification enforced on the token's app, as `GET /me` says; fails when it is off or not said, skipped when `GET /me` failed |
//! | `intercom.token_age` | the token under 90 days old, from `Audit::token_issued_at` or `INTERCOM_ACCESS_TOKEN_ISSUED_AT` (no Intercom API gives a token's age: skipped when it is not given) |
//!
//! Without the `client` feature (or without a token) the three online
//! checks are skipped, with the reason.
//!
//! A check is `passed`, `failed` (with a one-line remediation), `skipped`
//! (with the reason: a value not given, a feature not built in) or
//! `manual` (a person must compare what the details list). Only `failed`
//! fails the run.
//!
//! # How the repository is scanned
//!
//! Through `git` itself: `git rev-list --all --objects` lists every object
//! reachable from every ref (branches, tags, remote-tracking branches,
//! notes, `refs/stash` and the index and untracked commits of a stash),
//! and its blobs go straight into one `git cat-file --batch`, so each
//! distinct blob is read once, however many commits hold it. Staged blobs
//! that no ref reaches are read from the index (`git ls-files --stage`),
//! and the working tree's files that git would commit and the index does
//! not hold as they are (untracked and not ignored, or changed since they
//! were staged) from disk. Memory stays bounded: each blob is read in 1 MiB
//! chunks.
//!
//! For each secret found, the report gives its fingerprint (the first 8
//! hex digits of its SHA-256, never the secret), the earliest commit that
//! added a file holding it (one `git log --all --raw` pass, oldest first,
//! only when something was found), that file's path and the line, and how
//! many blobs and files hold it in all.
//!
//! What is and is not found:
//!
//! - **Binary files** are scanned like text (a token in a compiled file or
//!   an archive stored uncompressed is found); the finding says the file is
//!   binary. Compressed content (a `.zip`, a `.gz`) is not looked into.
//! - **Objects no ref reaches** are not scanned: a dropped stash, a
//!   deleted branch, an amended commit, what only a reflog holds. They are
//!   neither pushed nor cloned, and `git gc` deletes them in time; a token
//!   that reached one is still on this machine's disk, and was exposed to
//!   whoever could read it (rotate it if in doubt).
//! - **A token split across lines** (or across strings joined in code) is
//!   not found: no piece of it has the token's shape.
//! - **A shallow clone** fails `git.history_complete`: the commits beyond
//!   its depth are not there to scan. The other checks run on what is.
//!
//! # What counts as an access token
//!
//! Intercom access tokens are base64 of `tok:` followed by a UUID written
//! with underscores and `:1:0`, 60 characters beginning `dG9rO`. A common
//! scanner only matches them next to a word like "intercom"; here no
//! keyword is needed, and the rule is exact enough not to flag ordinary
//! base64:
//!
//! 1. the text `dG9rO` starts a base64 run: the character before it is not
//!    a letter, a digit or `+` (a `/` may come before it, as in a URL
//!    path);
//! 2. the run (letters, digits, `+`, `/`, then at most two `=`) is at most
//!    128 characters long and decodes as base64, padded or not;
//! 3. what it decodes to is exactly `tok:`, 32 hex digits (alone, or in
//!    groups of 8, 4, 4, 4 and 12 separated by `_` or `-`), then at most
//!    three `:`-separated numbers of up to 6 digits.
//!
//! So `dG9r` inside a longer run, at any offset, is not a token, nor is
//! base64 of `tok:` followed by anything else (the crate's own examples use
//! such values). A token of another shape is found only by value: give it
//! with [`Audit::access_token`]. Given values (of at least 8 bytes; shorter
//! ones would be found by coincidence) are searched for byte for byte.
//!
//! # The JSON document (schema version 1)
//!
//! [`Report::to_json`] and `--format json` write one object:
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "repository": "/path/to/repo",
//!   "passed": false,
//!   "summary": { "passed": 6, "failed": 1, "skipped": 6, "manual": 0 },
//!   "checks": [
//!     {
//!       "id": "git.access_tokens",
//!       "status": "failed",
//!       "message": "1 Intercom access token(s) in 812 blobs of 140 commits, the index and 0 working-tree files",
//!       "remediation": "rotate each token now (…), then remove it from history: …",
//!       "findings": [
//!         {
//!           "kind": "access_token",
//!           "fingerprint": "3f2a9c1d",
//!           "location": "commit",
//!           "commit": "5e0f8234…",
//!           "path": "config/settings.py",
//!           "line": 12,
//!           "binary": false,
//!           "occurrences": 3
//!         }
//!       ],
//!       "details": []
//!     }
//!   ]
//! }
//! ```
//!
//! - `status`: `passed`, `failed`, `skipped` or `manual`; `remediation` is
//!   `null` unless it failed.
//! - `findings[].kind`: `access_token`, `webhook_secret`,
//!   `webhook_secret_previous` or `identity_secret`; `location`: `commit`
//!   (then `commit` is the full id), `index`, `working_tree`, or `ref` (a
//!   blob a tag or note points at directly); `commit` is `null` unless
//!   `location` is `commit`. `path` is relative to the top of the
//!   repository and `line` is 1-based: what a CI annotation needs
//!   (`::error file=PATH,line=LINE::MESSAGE` on GitHub).
//! - `details`: further lines as text (files at fault, permissions needed).
//!
//! Within a version, fields keep their meaning and are not removed; new
//! fields, checks and values of `kind` may be added. A change that breaks
//! this raises `schema_version` ([`JSON_SCHEMA_VERSION`]).

mod error;
mod git;
mod history;
mod ignored;
mod online;
mod permissions;
mod report;
mod scan;
mod secrets;

use std::{
    fmt,
    path::{Path, PathBuf},
};

use zeroize::Zeroizing;

use crate::notification::Topic;

pub use self::{
    error::{AuditError, AuditErrorKind},
    report::{
        Check, Finding, Fingerprint, Location, Report, SecretKind, Status, JSON_SCHEMA_VERSION,
    },
};

/// A security audit of one repository, with the secrets and topics to
/// check: build it, then [`run`](Self::run) it.
///
/// ```no_run
/// use tower_intercom::audit::Audit;
///
/// # fn main() -> Result<(), tower_intercom::audit::AuditError> {
/// let report = Audit::repository(".")
///     .secrets_from_env()
///     .topics(["conversation.user.replied", "ticket.created"])
///     .run()?;
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
///
/// `Debug` shows which secrets were given, never their values; the values
/// are wiped from memory when the audit is dropped.
#[must_use]
pub struct Audit {
    path: PathBuf,
    given: Vec<(SecretKind, secrets::Given)>,
    topics: Vec<Topic>,
    #[cfg(feature = "client")]
    online: online::Settings,
}

impl Audit {
    /// An audit of the git repository that holds `path` (its top directory
    /// or any directory inside it).
    pub fn repository(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            given: Vec::new(),
            topics: Vec::new(),
            #[cfg(feature = "client")]
            online: online::Settings::default(),
        }
    }

    fn give(mut self, kind: SecretKind, value: Vec<u8>) -> Self {
        self.given.retain(|(k, _)| *k != kind);
        self.given.push((kind, Zeroizing::new(value)));
        self.given.sort_by_key(|(k, _)| *k);
        self
    }

    /// The access token (`INTERCOM_ACCESS_TOKEN`): checked to be
    /// well-formed, and searched for by value as well as by shape.
    pub fn access_token(self, token: impl Into<Vec<u8>>) -> Self {
        self.give(SecretKind::AccessToken, token.into())
    }

    /// The webhook client secret (`INTERCOM_WEBHOOK_SECRET`): checked, and
    /// searched for in the repository.
    pub fn webhook_secret(self, secret: impl Into<Vec<u8>>) -> Self {
        self.give(SecretKind::WebhookSecret, secret.into())
    }

    /// The previous client secret during a rotation
    /// (`INTERCOM_WEBHOOK_SECRET_PREVIOUS`): checked, and searched for.
    pub fn previous_webhook_secret(self, secret: impl Into<Vec<u8>>) -> Self {
        self.give(SecretKind::PreviousWebhookSecret, secret.into())
    }

    /// The Identity Verification secret (`INTERCOM_IDENTITY_SECRET`):
    /// checked, and searched for.
    pub fn identity_secret(self, secret: impl Into<Vec<u8>>) -> Self {
        self.give(SecretKind::IdentitySecret, secret.into())
    }

    /// Where the online checks call Intercom's API (`GET /me`): a region's
    /// host (the default is the US one) or a URL, such as a proxy's.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn api_base(mut self, base: crate::client::ApiBase) -> Self {
        self.online.api_base = Some(Ok(base));
        self
    }

    /// When the access token was generated, for `intercom.token_age` (no
    /// Intercom API says it): the check fails at 90 days.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn token_issued_at(mut self, issued_at: std::time::SystemTime) -> Self {
        self.online.issued_at = Some(Ok(issued_at));
        self
    }

    /// Each of `INTERCOM_ACCESS_TOKEN`, `INTERCOM_WEBHOOK_SECRET`,
    /// `INTERCOM_WEBHOOK_SECRET_PREVIOUS` and `INTERCOM_IDENTITY_SECRET`
    /// that is set, as if given to the method of the same name. Unset ones
    /// are skipped by the checks, with the reason.
    ///
    /// With the `client` feature, also `INTERCOM_API_URL`
    /// (as `api_base`, read by `client::ApiBase::from_env`) and
    /// `INTERCOM_ACCESS_TOKEN_ISSUED_AT` (RFC 3339, as `token_issued_at`)
    /// when they are set; a
    /// value that does not parse fails the online check that needs it.
    pub fn secrets_from_env(self) -> Self {
        let audit = self.online_from_env();
        let kinds = [
            SecretKind::AccessToken,
            SecretKind::WebhookSecret,
            SecretKind::PreviousWebhookSecret,
            SecretKind::IdentitySecret,
        ];
        kinds.into_iter().fold(audit, |audit, kind| {
            match std::env::var_os(kind.variable()) {
                Some(value) => audit.give(kind, value.into_encoded_bytes()),
                None => audit,
            }
        })
    }

    /// `INTERCOM_API_URL` and `INTERCOM_ACCESS_TOKEN_ISSUED_AT`, when set.
    #[cfg(feature = "client")]
    fn online_from_env(mut self) -> Self {
        use crate::client::{ApiBase, TokenAge, API_URL_VAR, ISSUED_AT_VAR};
        if std::env::var_os(API_URL_VAR).is_some() {
            self.online.api_base =
                Some(ApiBase::from_env(API_URL_VAR).map_err(|err| err.to_string()));
        }
        match TokenAge::from_env(ISSUED_AT_VAR) {
            Ok(age) => {
                if let Some(at) = age.issued_at() {
                    self.online.issued_at = Some(Ok(at));
                }
            }
            Err(err) => self.online.issued_at = Some(Err(err.to_string())),
        }
        self
    }

    #[cfg(not(feature = "client"))]
    fn online_from_env(self) -> Self {
        self
    }

    /// The webhook topics the service subscribes to, for the least
    /// privilege check. Unknown topics fail it.
    pub fn topics<I>(mut self, topics: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Topic>,
    {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Runs every check.
    ///
    /// # Errors
    ///
    /// When the audit cannot run: `git` missing, the path in no
    /// repository, a `git` command failing ([`AuditErrorKind`]). A check
    /// that fails is not an error: it is in the report.
    pub fn run(&self) -> Result<Report, AuditError> {
        let repo = git::Repo::discover(&self.path)?;
        let values: Vec<(SecretKind, &[u8])> = self
            .given
            .iter()
            .map(|(kind, value)| (*kind, value.as_slice()))
            .collect();
        let history = history::run(&repo, &values)?;
        let [ignored, not_tracked] = ignored::run(&repo)?;
        let mut checks = vec![
            history.complete,
            history.tokens,
            history.secrets,
            ignored,
            not_tracked,
        ];
        checks.extend(secrets::run(&self.given));
        checks.push(permissions::run(&self.topics));
        let token = self
            .given
            .iter()
            .find(|(kind, _)| *kind == SecretKind::AccessToken)
            .map(|(_, value)| value.as_slice());
        #[cfg(feature = "client")]
        checks.extend(online::run(token, &self.online));
        #[cfg(not(feature = "client"))]
        checks.extend(online::run(token));
        Ok(Report {
            repository: repo.dir,
            checks,
        })
    }
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given: Vec<&str> = self.given.iter().map(|(kind, _)| kind.as_str()).collect();
        let mut f = f.debug_struct("Audit");
        f.field("path", &self.path)
            .field("secrets_given", &given)
            .field("topics", &self.topics);
        #[cfg(feature = "client")]
        f.field("online", &self.online);
        f.finish()
    }
}
