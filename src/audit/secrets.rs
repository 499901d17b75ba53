//! The secrets as the crate reads them: each one well-formed by the
//! crate's own parser, and no two of them the same value.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    report::{Check, SecretKind},
    scan::is_token_shape,
};
use crate::{
    access_token::AccessToken,
    identity::IdentitySecret,
    secret::{SecretError, WebhookSecret},
};

/// Check ids, one per secret, in the order of [`SecretKind`].
pub(crate) const WELL_FORMED: [(SecretKind, &str); 4] = [
    (SecretKind::AccessToken, "secrets.access_token"),
    (SecretKind::WebhookSecret, "secrets.webhook_secret"),
    (
        SecretKind::PreviousWebhookSecret,
        "secrets.webhook_secret_previous",
    ),
    (SecretKind::IdentitySecret, "secrets.identity_secret"),
];
pub(crate) const DISTINCT: &str = "secrets.distinct";

/// A secret value handed to the audit (wiped when dropped).
pub(crate) type Given = Zeroizing<Vec<u8>>;

/// One `secrets.*` check per secret, then `secrets.distinct`.
pub(crate) fn run(given: &[(SecretKind, Given)]) -> Vec<Check> {
    let mut checks: Vec<Check> = WELL_FORMED
        .iter()
        .map(|&(kind, id)| match given.iter().find(|(k, _)| *k == kind) {
            None => Check::skipped(id, format!("not given ({})", kind.variable())),
            Some((_, value)) => well_formed(kind, id, value),
        })
        .collect();
    checks.push(distinct(given));
    checks
}

fn well_formed(kind: SecretKind, id: &'static str, value: &[u8]) -> Check {
    let variable = kind.variable();
    let Ok(text) = std::str::from_utf8(value) else {
        return Check::failed(
            id,
            format!("{variable} is not valid UTF-8"),
            format!("set {variable} to the value copied from the Developer Hub"),
        );
    };
    let parsed: Result<(), SecretError> = match kind {
        SecretKind::AccessToken => AccessToken::new(text).map(drop),
        SecretKind::WebhookSecret | SecretKind::PreviousWebhookSecret => {
            text.parse::<WebhookSecret>().map(drop)
        }
        SecretKind::IdentitySecret => text.parse::<IdentitySecret>().map(drop),
    };
    let parser = match kind {
        SecretKind::AccessToken => "AccessToken::new",
        SecretKind::WebhookSecret | SecretKind::PreviousWebhookSecret => "WebhookSecret",
        SecretKind::IdentitySecret => "IdentitySecret",
    };
    match parsed {
        Err(err) => Check::failed(
            id,
            format!("{variable} is refused: {err}"),
            format!(
                "set {variable} to the exact value from the Developer Hub, with nothing around it"
            ),
        ),
        Ok(()) => {
            let check = Check::passed(
                id,
                format!("{variable} is well-formed ({parser} accepts it)"),
            );
            let decoded = Zeroizing::new(
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)
                    .unwrap_or_default(),
            );
            if kind == SecretKind::AccessToken && !is_token_shape(&decoded) {
                check.with_details(vec![
                    "it is not base64 of `tok:…` like the Intercom access tokens seen: check that it is the access token (Configure > Authentication) and not another value".to_owned(),
                ])
            } else {
                check
            }
        }
    }
}

/// The webhook secrets, the identity secret and the token must be
/// different values: each is a key of its own, and one leaked must not
/// give away another.
fn distinct(given: &[(SecretKind, Given)]) -> Check {
    if given.len() < 2 {
        return Check::skipped(DISTINCT, "fewer than two secrets given: nothing to compare");
    }
    let mut same = Vec::new();
    for (i, (a, value_a)) in given.iter().enumerate() {
        for (b, value_b) in &given[i + 1..] {
            // Two webhook secrets alike are a rotation not started, not a
            // mix-up of keys.
            let both_webhook = matches!(
                (a, b),
                (SecretKind::WebhookSecret, SecretKind::PreviousWebhookSecret)
                    | (SecretKind::PreviousWebhookSecret, SecretKind::WebhookSecret)
            );
            if !both_webhook && bool::from(value_a.as_slice().ct_eq(value_b.as_slice())) {
                same.push(format!("{} equals {}", a.variable(), b.variable()));
            }
        }
    }
    let names: Vec<&str> = given.iter().map(|(kind, _)| kind.variable()).collect();
    if same.is_empty() {
        return Check::passed(DISTINCT, format!("all different: {}", names.join(", ")));
    }
    Check::failed(
        DISTINCT,
        same.join("; "),
        "give each its own value: the client secret (Basic information), the identity secret (Messenger > Security) and the access token (Configure > Authentication) are different keys",
    )
}
