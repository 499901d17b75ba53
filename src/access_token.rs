//! The bearer token of Intercom's REST API.
//!
//! [`AccessToken`] gives the token of `INTERCOM_ACCESS_TOKEN` the same care
//! as the webhook secret: it is refused when empty or unusable, never
//! printed, wiped from memory when dropped, and turned into an
//! `Authorization` header marked sensitive.

use std::sync::Arc;

use http::HeaderValue;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::{secret_traits, SecretBytes, SecretError, SecretErrorKind, SecretKind};

const BEARER: &[u8] = b"Bearer ";

/// An Intercom REST API access token: the bearer token of
/// `Authorization: Bearer <token>`.
///
/// Intercom access tokens **do not expire**. Anyone who has one can use the
/// API with all of its app's permissions until it is revoked or regenerated
/// in the Developer Hub, so it belongs in the environment or a secret
/// manager, never in source, and never in a log.
///
/// - Built with [`AccessToken::from_env`] (the usual way),
///   [`AccessToken::new`] or [`str::parse`]. An empty or blank token, one
///   with surrounding whitespace (a trailing newline), and one with a
///   character that cannot go in an HTTP header (such as an inner space, as
///   in a pasted `Bearer …`) are refused.
/// - `Debug` prints `AccessToken(REDACTED)`; there is no `Display`.
/// - [`authorization_header`](Self::authorization_header) gives the header
///   value with [`HeaderValue::set_sensitive`] set, so HTTP/2 clients keep
///   it out of header compression tables and `Debug` of the header map
///   shows `Sensitive`.
/// - The token text is wiped from memory when the last clone is dropped.
///   The token keeps no other copy: each
///   [`authorization_header`](Self::authorization_header) call builds a
///   new `HeaderValue`, which (like the copies an HTTP client makes while
///   sending it) is not wiped, because `HeaderValue` cannot be.
/// - Cloning is cheap (a reference count).
///
/// # Example
///
/// ```
/// use http::{header::AUTHORIZATION, Request};
/// use tower_intercom::AccessToken;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # std::env::set_var("INTERCOM_ACCESS_TOKEN", "dG9rOmV4YW1wbGVfdG9rZW4=");
/// let token = AccessToken::from_env("INTERCOM_ACCESS_TOKEN")?;
///
/// let request = Request::get("https://api.intercom.io/me")
///     .header(AUTHORIZATION, token.authorization_header())
///     .header("accept", "application/json")
///     .body(())?;
///
/// let header = &request.headers()[AUTHORIZATION];
/// assert!(header.is_sensitive());
/// assert_eq!(format!("{header:?}"), "Sensitive");
/// assert_eq!(format!("{token:?}"), "AccessToken(REDACTED)");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AccessToken {
    token: Arc<SecretBytes>,
}

impl AccessToken {
    /// Builds a token from its text.
    ///
    /// # Errors
    ///
    /// [`SecretErrorKind::Empty`], [`SecretErrorKind::Blank`],
    /// [`SecretErrorKind::SurroundingWhitespace`], or
    /// [`SecretErrorKind::InvalidCharacter`] for anything but visible ASCII
    /// (the token goes in an HTTP header). The error never contains the
    /// token.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::{AccessToken, SecretErrorKind};
    ///
    /// assert!(AccessToken::new("dG9rOmV4YW1wbGU=").is_ok());
    /// let pasted = AccessToken::new("Bearer dG9rOmV4YW1wbGU=").unwrap_err();
    /// assert_eq!(pasted.kind(), SecretErrorKind::InvalidCharacter);
    /// assert!(!pasted.to_string().contains("dG9r"));
    /// ```
    pub fn new(token: impl Into<String>) -> Result<Self, SecretError> {
        let token = Zeroizing::new(token.into());
        SecretBytes::from_text::<Self>(&token).map(Self::from_key)
    }

    /// Reads the token from the environment variable `name`.
    ///
    /// # Errors
    ///
    /// The error names the variable and says what is wrong with it (not
    /// set, not unicode, empty, blank, surrounding whitespace, a character
    /// that cannot go in a header); it never contains the value.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::{AccessToken, SecretErrorKind};
    ///
    /// let err = AccessToken::from_env("TOWER_INTERCOM_DOC_NO_TOKEN").unwrap_err();
    /// assert_eq!(err.kind(), SecretErrorKind::NotSet);
    /// assert_eq!(err.var(), Some("TOWER_INTERCOM_DOC_NO_TOKEN"));
    /// ```
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        SecretBytes::from_env::<Self>(name).map(Self::from_key)
    }

    /// The `Authorization` header value, `Bearer <token>`, marked
    /// [sensitive](HeaderValue::set_sensitive).
    ///
    /// Each call builds a new value: the token keeps no copy of it. The
    /// value cannot be wiped from memory (nor can the copies an HTTP client
    /// makes); drop it once the request is sent.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::AccessToken;
    ///
    /// let token: AccessToken = "dG9rOmV4YW1wbGU=".parse()?;
    /// let header = token.authorization_header();
    /// assert!(header.is_sensitive());
    /// assert_eq!(header, "Bearer dG9rOmV4YW1wbGU=");
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
    pub fn authorization_header(&self) -> HeaderValue {
        // The prefix and token in a buffer that is wiped when dropped.
        let token = self.token.expose();
        let mut value = Zeroizing::new(Vec::with_capacity(BEARER.len() + token.len()));
        value.extend_from_slice(BEARER);
        value.extend_from_slice(token);
        let mut header = HeaderValue::from_bytes(&value)
            .expect("the token was checked to be visible ASCII when it was built");
        header.set_sensitive(true);
        header
    }

    /// The token itself, for a client that wants it as text.
    ///
    /// Prefer [`authorization_header`](Self::authorization_header). Whatever
    /// receives this text must keep it out of logs and error messages.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::AccessToken;
    ///
    /// let token: AccessToken = "dG9rOmV4YW1wbGU=".parse()?;
    /// assert_eq!(token.expose_secret(), "dG9rOmV4YW1wbGU=");
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
    pub fn expose_secret(&self) -> &str {
        // Checked to be visible ASCII when built.
        std::str::from_utf8(self.token.expose()).unwrap_or_default()
    }

    /// A fingerprint of the token, safe to print: the first 8 hex digits
    /// of the SHA-256 of its text, as
    /// `printf %s "$INTERCOM_ACCESS_TOKEN" | sha256sum | cut -c1-8` prints.
    ///
    /// It tells which token is in use (in a log, a runbook's check, a
    /// finding of a secret scan) without showing it: 32 bits of a hash say
    /// nothing that helps to guess a token of Intercom's length.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::AccessToken;
    ///
    /// let token: AccessToken = "dG9rOmV4YW1wbGU=".parse()?;
    /// assert_eq!(token.fingerprint(), "ba16ba07");
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.token.expose())[..4])
    }
}

impl SecretKind for AccessToken {
    const NAME: &'static str = "AccessToken";

    /// Visible ASCII only: a space would split `Bearer <token>`, and control
    /// characters or non-ASCII bytes are not header-safe.
    fn check(token: &[u8]) -> Result<(), SecretErrorKind> {
        if token.iter().all(u8::is_ascii_graphic) {
            Ok(())
        } else {
            Err(SecretErrorKind::InvalidCharacter)
        }
    }

    fn from_key(token: SecretBytes) -> Self {
        Self {
            token: Arc::new(token),
        }
    }
}

secret_traits!(AccessToken);

#[cfg(test)]
mod tests {
    use std::env;

    use http::{header::AUTHORIZATION, HeaderMap};

    use super::*;

    const TOKEN: &str = "dG9rOmhvdXNlX3Rva2VuXzEyMzQ1Njc4OTA=";

    #[test]
    fn builds_a_sensitive_bearer_header() {
        let token = AccessToken::new(TOKEN).unwrap();
        let header = token.authorization_header();
        assert_eq!(header.to_str().unwrap(), format!("Bearer {TOKEN}"));
        assert!(header.is_sensitive());

        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, header);
        assert!(!format!("{headers:?}").contains(TOKEN));
    }

    #[test]
    fn refuses_tokens_that_cannot_be_sent() {
        let cases = [
            ("", SecretErrorKind::Empty),
            (" \n", SecretErrorKind::Blank),
            ("tok-en\n", SecretErrorKind::SurroundingWhitespace),
            ("Bearer tok-en", SecretErrorKind::InvalidCharacter),
            ("tok\u{7f}en", SecretErrorKind::InvalidCharacter),
            ("tok\u{e9}en", SecretErrorKind::InvalidCharacter),
            ("tok\0en", SecretErrorKind::InvalidCharacter),
        ];
        for (token, kind) in cases {
            assert_eq!(
                AccessToken::new(token).unwrap_err().kind(),
                kind,
                "{token:?}"
            );
            assert_eq!(token.parse::<AccessToken>().unwrap_err().kind(), kind);
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_token() {
        let token = AccessToken::new(TOKEN).unwrap();
        assert_eq!(format!("{token:?}"), "AccessToken(REDACTED)");
        assert_eq!(format!("{:?}", token.clone()), "AccessToken(REDACTED)");

        let err = AccessToken::new("Bearer super-secret-token").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("super-secret-token"), "{shown}");
    }

    #[test]
    fn the_fingerprint_is_sha256sums_first_8_hex_digits() {
        // `printf %s "$TOKEN" | sha256sum | cut -c1-8`
        let token = AccessToken::new(TOKEN).unwrap();
        assert_eq!(token.fingerprint(), "759c7036");
        assert!(!TOKEN.contains(&token.fingerprint()));
    }

    #[test]
    fn from_env_names_the_variable_not_the_value() {
        let name = "TOWER_INTERCOM_TEST_ACCESS_TOKEN_BAD";
        env::set_var(name, "Bearer leaked-token-value");
        let err = AccessToken::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.kind(), SecretErrorKind::InvalidCharacter);
        assert_eq!(err.var(), Some(name));
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(name));
        assert!(!shown.contains("leaked-token-value"));

        let name = "TOWER_INTERCOM_TEST_ACCESS_TOKEN_OK";
        env::set_var(name, TOKEN);
        let token = AccessToken::from_env(name).unwrap();
        env::remove_var(name);
        assert_eq!(token.expose_secret(), TOKEN);

        let err = AccessToken::from_env("TOWER_INTERCOM_TEST_ACCESS_TOKEN_UNSET").unwrap_err();
        assert_eq!(err.kind(), SecretErrorKind::NotSet);
    }
}
