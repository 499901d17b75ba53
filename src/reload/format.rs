//! What a secret file holds, for each secret type, and how it is parsed.

use crate::{
    access_token::AccessToken,
    secret::{SecretError, SecretErrorKind, WebhookSecret},
    signature::SignatureScheme,
    webhook::secrets::WebhookSecrets,
};

use super::{ReloadErrorKind, MAX_SECRETS};

/// A secret type a [`SecretFile`](super::SecretFile) can read:
/// [`WebhookSecrets`], [`IdentitySecret`](crate::identity::IdentitySecret)
/// (feature `identity`) and [`AccessToken`](crate::AccessToken).
///
/// Each is parsed with the type's own parser (`str::parse`), so a file is
/// refused for exactly what the environment variable would be: empty,
/// blank, surrounding whitespace, and for a token a character that cannot
/// go in a header. One line ending at the end of the file (`\n` or `\r\n`,
/// as `echo` and editors write) is not part of the secret; any other
/// surrounding whitespace is refused. The formats are described in the
/// [module documentation](super#file-formats).
pub trait Reloadable: sealed::Parse {}

/// Why file content was refused, and on which line (1-based) if the file
/// has several.
pub(crate) type Refused = (ReloadErrorKind, Option<usize>);

pub(crate) mod sealed {
    // Public in a private module: the bound of `Reloadable`, which only this
    // crate implements.
    #[allow(unreachable_pub)]
    pub trait Parse: Sized + Send + Sync + 'static {
        /// The `secret` label of the metrics and logs.
        const LABEL: &'static str;

        /// The value in `content`, the file's bytes.
        fn parse(content: &[u8]) -> Result<Self, super::Refused>;

        /// Work done once when a value is loaded, so that requests do not
        /// pay for it.
        fn prepare(&self) {}
    }
}

/// The file's text, without one final line ending.
fn single_line(content: &[u8]) -> Result<&str, Refused> {
    let text = std::str::from_utf8(content)
        .map_err(|_| (ReloadErrorKind::Invalid(SecretErrorKind::NotUnicode), None))?;
    Ok(text
        .strip_suffix('\n')
        .map_or(text, |text| text.strip_suffix('\r').unwrap_or(text)))
}

/// A secret of type `T` from a one-secret file.
fn parse_single<T: std::str::FromStr<Err = SecretError>>(content: &[u8]) -> Result<T, Refused> {
    single_line(content)?
        .parse()
        .map_err(|err: SecretError| (ReloadErrorKind::Invalid(err.kind()), None))
}

impl sealed::Parse for WebhookSecrets {
    const LABEL: &'static str = "webhook";

    /// One secret per line, the current one first. Blank lines are
    /// skipped; a line with surrounding whitespace refuses the file.
    fn parse(content: &[u8]) -> Result<Self, Refused> {
        let text = std::str::from_utf8(content)
            .map_err(|_| (ReloadErrorKind::Invalid(SecretErrorKind::NotUnicode), None))?;
        let mut secrets = Vec::new();
        // `lines` also drops the `\r` of `\r\n`.
        for (index, line) in text.lines().enumerate() {
            if line.bytes().all(|byte| byte.is_ascii_whitespace()) {
                continue;
            }
            if secrets.len() == MAX_SECRETS {
                return Err((ReloadErrorKind::TooManySecrets, Some(index + 1)));
            }
            let secret = line
                .parse::<WebhookSecret>()
                .map_err(|err| (ReloadErrorKind::Invalid(err.kind()), Some(index + 1)))?;
            secrets.push(secret);
        }
        WebhookSecrets::try_from_iter(secrets).map_err(|_| {
            let kind = if text.is_empty() {
                SecretErrorKind::Empty
            } else {
                SecretErrorKind::Blank
            };
            (ReloadErrorKind::Invalid(kind), None)
        })
    }

    fn prepare(&self) {
        self.prepare(SignatureScheme::HubSignature);
        self.prepare(SignatureScheme::BodySignature);
    }
}

impl Reloadable for WebhookSecrets {}

impl sealed::Parse for AccessToken {
    const LABEL: &'static str = "access_token";

    fn parse(content: &[u8]) -> Result<Self, Refused> {
        parse_single(content)
    }
}

impl Reloadable for AccessToken {}

#[cfg(feature = "identity")]
impl sealed::Parse for crate::identity::IdentitySecret {
    const LABEL: &'static str = "identity";

    fn parse(content: &[u8]) -> Result<Self, Refused> {
        parse_single(content)
    }
}

#[cfg(feature = "identity")]
impl Reloadable for crate::identity::IdentitySecret {}

#[cfg(test)]
mod tests {
    use super::{sealed::Parse, *};

    fn refused<T: Parse>(content: &str) -> Refused {
        match T::parse(content.as_bytes()) {
            Ok(_) => panic!("{content:?} was accepted"),
            Err(refused) => refused,
        }
    }

    #[test]
    fn one_final_line_ending_is_not_part_of_the_secret() {
        for content in ["dG9rOmFiYw==", "dG9rOmFiYw==\n", "dG9rOmFiYw==\r\n"] {
            let token = AccessToken::parse(content.as_bytes()).unwrap();
            assert_eq!(token.expose_secret(), "dG9rOmFiYw==");
        }
        let invalid = |kind| (ReloadErrorKind::Invalid(kind), None);
        assert_eq!(refused::<AccessToken>(""), invalid(SecretErrorKind::Empty));
        assert_eq!(
            refused::<AccessToken>("\n"),
            invalid(SecretErrorKind::Empty)
        );
        assert_eq!(
            refused::<AccessToken>(" \n"),
            invalid(SecretErrorKind::Blank)
        );
        assert_eq!(
            refused::<AccessToken>("dG9rOmFiYw==\n\n"),
            invalid(SecretErrorKind::SurroundingWhitespace)
        );
        assert_eq!(
            refused::<AccessToken>("Bearer dG9rOmFiYw=="),
            invalid(SecretErrorKind::InvalidCharacter)
        );
        assert_eq!(
            AccessToken::parse(b"dG9r\xff").err(),
            Some(invalid(SecretErrorKind::NotUnicode))
        );
    }

    #[test]
    fn a_set_is_one_secret_per_line_current_first() {
        let set = WebhookSecrets::parse(b"new-secret\r\n\nold-secret\n").unwrap();
        assert_eq!(set.previous().len(), 1);
        let body = b"{}";
        let new: WebhookSecret = "new-secret".parse().unwrap();
        let old: WebhookSecret = "old-secret".parse().unwrap();
        assert_eq!(
            crate::signature::sign(set.current(), body),
            crate::signature::sign(&new, body)
        );
        assert_eq!(
            crate::signature::sign(&set.previous()[0], body),
            crate::signature::sign(&old, body)
        );

        let invalid = |kind, line| (ReloadErrorKind::Invalid(kind), line);
        assert_eq!(
            refused::<WebhookSecrets>(""),
            invalid(SecretErrorKind::Empty, None)
        );
        assert_eq!(
            refused::<WebhookSecrets>("\n \n\t\n"),
            invalid(SecretErrorKind::Blank, None)
        );
        assert_eq!(
            refused::<WebhookSecrets>("new-secret\n old-secret\n"),
            invalid(SecretErrorKind::SurroundingWhitespace, Some(2))
        );
        let many = "secret\n".repeat(MAX_SECRETS + 1);
        assert_eq!(
            refused::<WebhookSecrets>(&many),
            (ReloadErrorKind::TooManySecrets, Some(MAX_SECRETS + 1))
        );
        assert!(WebhookSecrets::parse("secret\n".repeat(MAX_SECRETS).as_bytes()).is_ok());
    }
}
