//! The app's client secret, which Intercom uses to sign webhooks.
//!
//! [`WebhookSecret`] is the only way to hand a secret to this crate. It
//! refuses secrets that would make signatures forgeable or silently wrong,
//! never prints a byte of the secret, and wipes its key material from memory
//! when the last copy is dropped.

use std::{env, error::Error, ffi::OsString, fmt, str::FromStr, sync::Arc};

use hmac::{Hmac, KeyInit};
use sha1::Sha1;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The client secret of an Intercom app: the key of webhook signatures.
///
/// Intercom signs every webhook with the client secret shown on the app's
/// *Basic information* page in the Developer Hub. Build one with
/// [`WebhookSecret::from_env`] (the usual way: secrets belong in the
/// environment or a secret manager, never in source), [`WebhookSecret::new`]
/// or [`str::parse`].
///
/// - An empty or blank secret is refused: an HMAC keyed with nothing can be
///   forged by anyone.
/// - `Debug` prints `WebhookSecret(REDACTED)`; there is no `Display`.
/// - The HMAC key state is prepared once, when the secret is built, so
///   verifying a request never re-derives it. Every copy of the key material
///   is zeroized when it is dropped.
/// - Cloning is cheap (a reference count); clones share the key material.
///
/// # Example
///
/// ```
/// use tower_intercom::WebhookSecret;
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// assert_eq!(format!("{secret:?}"), "WebhookSecret(REDACTED)");
///
/// assert!(WebhookSecret::new("").is_err());
/// assert!(WebhookSecret::new("  \n").is_err());
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecret {
    keys: Arc<Keys>,
}

/// HMAC states keyed with the secret, ready to be cloned per message.
///
/// `hmac` is built with its `zeroize` feature, so these states (and every
/// clone made while verifying a request) are wiped on drop.
struct Keys {
    sha1: Hmac<Sha1>,
    sha256: Hmac<Sha256>,
}

impl WebhookSecret {
    /// Builds a secret from its bytes.
    ///
    /// # Errors
    ///
    /// [`SecretErrorKind::Empty`] for no bytes, [`SecretErrorKind::Blank`]
    /// when every byte is a space, tab, carriage return or line feed.
    ///
    /// The bytes are used as given; text sources should prefer
    /// [`from_env`](Self::from_env) or [`str::parse`], which also refuse
    /// surrounding whitespace (a trailing newline from a file or a copy and
    /// paste is the classic cause of every signature failing).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret = Zeroizing::new(secret.into());
        check_not_blank(&secret)?;
        Ok(Self::from_checked(&secret))
    }

    /// Reads the secret from the environment variable `name`.
    ///
    /// # Errors
    ///
    /// The error names the variable and says what is wrong with it (not
    /// set, not unicode, empty, blank, surrounding whitespace); it never
    /// contains the value.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::{SecretErrorKind, WebhookSecret};
    ///
    /// let err = WebhookSecret::from_env("TOWER_INTERCOM_DOC_UNSET").unwrap_err();
    /// assert_eq!(err.kind(), SecretErrorKind::NotSet);
    /// assert_eq!(err.to_string(), "environment variable `TOWER_INTERCOM_DOC_UNSET` is not set");
    /// ```
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        let value = read_env(name)?;
        Ok(Self::from_checked(value.as_bytes()))
    }

    /// Keys both HMAC states. `secret` must have passed the checks.
    fn from_checked(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length; longer than a block are hashed.
        let sha1 = <Hmac<Sha1> as KeyInit>::new_from_slice(secret)
            .expect("HMAC accepts keys of any length");
        let sha256 = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("HMAC accepts keys of any length");
        Self {
            keys: Arc::new(Keys { sha1, sha256 }),
        }
    }

    /// A fresh HMAC-SHA1 state keyed with this secret.
    pub(crate) fn hmac_sha1(&self) -> Hmac<Sha1> {
        self.keys.sha1.clone()
    }

    /// A fresh HMAC-SHA256 state keyed with this secret.
    pub(crate) fn hmac_sha256(&self) -> Hmac<Sha256> {
        self.keys.sha256.clone()
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    /// Parses a secret from text, refusing empty, blank and
    /// whitespace-padded input.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_text(s)?;
        Ok(Self::from_checked(s.as_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(REDACTED)")
    }
}

/// The whitespace that creeps into secrets through files, environment
/// variables and copy and paste.
fn is_stray_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// Refuses empty and whitespace-only secrets.
pub(crate) fn check_not_blank(secret: &[u8]) -> Result<(), SecretError> {
    if secret.is_empty() {
        return Err(SecretError::new(SecretErrorKind::Empty));
    }
    if secret.iter().copied().all(is_stray_whitespace) {
        return Err(SecretError::new(SecretErrorKind::Blank));
    }
    Ok(())
}

/// The checks for a secret given as text: not blank, no surrounding
/// whitespace.
pub(crate) fn check_text(secret: &str) -> Result<(), SecretError> {
    let bytes = secret.as_bytes();
    check_not_blank(bytes)?;
    let padded = bytes.first().copied().is_some_and(is_stray_whitespace)
        || bytes.last().copied().is_some_and(is_stray_whitespace);
    if padded {
        return Err(SecretError::new(SecretErrorKind::SurroundingWhitespace));
    }
    Ok(())
}

/// Reads a secret from the environment with the text checks applied.
///
/// The value is returned in a buffer that is wiped when dropped; errors name
/// the variable, never the value.
pub(crate) fn read_env(name: &str) -> Result<Zeroizing<String>, SecretError> {
    let with_var = |err: SecretError| err.for_var(name);
    let value = match env::var_os(name) {
        None => return Err(with_var(SecretError::new(SecretErrorKind::NotSet))),
        Some(value) => value,
    };
    let value = match value.into_string() {
        Ok(value) => Zeroizing::new(value),
        Err(not_unicode) => {
            // Wipe the bytes we were handed before reporting.
            drop(Zeroizing::new(OsString::into_encoded_bytes(not_unicode)));
            return Err(with_var(SecretError::new(SecretErrorKind::NotUnicode)));
        }
    };
    check_text(&value).map_err(with_var)?;
    Ok(value)
}

/// Why a secret was refused.
///
/// The message says what is wrong and, for secrets read from the
/// environment, which variable it came from. It never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    kind: SecretErrorKind,
    var: Option<String>,
}

/// What was wrong with a secret; see [`SecretError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretErrorKind {
    /// The secret has no bytes.
    Empty,
    /// The secret is only spaces, tabs, carriage returns or line feeds.
    Blank,
    /// The secret text starts or ends with whitespace (often a trailing
    /// newline), which would make every signature check fail.
    SurroundingWhitespace,
    /// The environment variable is not set.
    NotSet,
    /// The environment variable's value is not valid unicode.
    NotUnicode,
    /// A list of secrets had none in it.
    NoSecrets,
    /// The secret has a character that cannot be sent in an HTTP header
    /// (anything but visible ASCII), as an access token must be.
    InvalidCharacter,
}

impl SecretError {
    pub(crate) fn new(kind: SecretErrorKind) -> Self {
        Self { kind, var: None }
    }

    pub(crate) fn for_var(mut self, name: &str) -> Self {
        self.var = Some(name.to_owned());
        self
    }

    /// What was wrong.
    pub fn kind(&self) -> SecretErrorKind {
        self.kind
    }

    /// The environment variable the secret was read from, if it came from
    /// one.
    pub fn var(&self) -> Option<&str> {
        self.var.as_deref()
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = match self.kind {
            SecretErrorKind::Empty => "is empty",
            SecretErrorKind::Blank => "is blank (only whitespace)",
            SecretErrorKind::SurroundingWhitespace => {
                "starts or ends with whitespace (a trailing newline?)"
            }
            SecretErrorKind::NotSet => "is not set",
            SecretErrorKind::NotUnicode => "is not valid unicode",
            SecretErrorKind::NoSecrets => "list is empty: at least one secret is required",
            SecretErrorKind::InvalidCharacter => {
                "contains a character that cannot be sent in an HTTP header (only visible ASCII)"
            }
        };
        match &self.var {
            Some(var) => write!(f, "environment variable `{var}` {problem}"),
            None => write!(f, "secret {problem}"),
        }
    }
}

impl Error for SecretError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_and_blank() {
        assert_eq!(
            WebhookSecret::new(Vec::new()).unwrap_err().kind(),
            SecretErrorKind::Empty
        );
        for blank in [" ", "\t", "\r\n", "  \n\t "] {
            assert_eq!(
                WebhookSecret::new(blank).unwrap_err().kind(),
                SecretErrorKind::Blank,
                "{blank:?}"
            );
            assert_eq!(
                blank.parse::<WebhookSecret>().unwrap_err().kind(),
                SecretErrorKind::Blank
            );
        }
    }

    #[test]
    fn text_refuses_surrounding_whitespace_but_bytes_keep_them() {
        for padded in ["secret\n", " secret", "secret\r\n", "\tsecret"] {
            let err = padded.parse::<WebhookSecret>().unwrap_err();
            assert_eq!(err.kind(), SecretErrorKind::SurroundingWhitespace);
            assert!(!err.to_string().contains("secret\n"));
        }
        // Binary keys may end in any byte.
        assert!(WebhookSecret::new(b"key\n".to_vec()).is_ok());
        assert!("inner space ok".parse::<WebhookSecret>().is_ok());
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let secret = WebhookSecret::new("hunter2-very-secret").unwrap();
        let debug = format!("{secret:?} {:?}", secret.clone());
        assert!(!debug.contains("hunter2"));
        assert_eq!(format!("{secret:?}"), "WebhookSecret(REDACTED)");
    }

    #[test]
    fn from_env_errors_name_the_variable_not_the_value() {
        // Each test uses its own variable: tests run in parallel threads.
        let name = "TOWER_INTERCOM_TEST_SECRET_PADDED";
        env::set_var(name, "leaked-value\n");
        let err = WebhookSecret::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.kind(), SecretErrorKind::SurroundingWhitespace);
        assert_eq!(err.var(), Some(name));
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(name));
        assert!(!shown.contains("leaked-value"));

        let name = "TOWER_INTERCOM_TEST_SECRET_EMPTY";
        env::set_var(name, "");
        let err = WebhookSecret::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.kind(), SecretErrorKind::Empty);
        assert_eq!(
            err.to_string(),
            "environment variable `TOWER_INTERCOM_TEST_SECRET_EMPTY` is empty"
        );

        let name = "TOWER_INTERCOM_TEST_SECRET_OK";
        env::set_var(name, "fine-secret");
        assert!(WebhookSecret::from_env(name).is_ok());
        env::remove_var(name);
    }

    #[cfg(unix)]
    #[test]
    fn from_env_refuses_non_unicode() {
        use std::os::unix::ffi::OsStrExt;
        let name = "TOWER_INTERCOM_TEST_SECRET_NOT_UNICODE";
        env::set_var(name, std::ffi::OsStr::from_bytes(b"ab\xffcd"));
        let err = WebhookSecret::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.kind(), SecretErrorKind::NotUnicode);
        assert_eq!(err.var(), Some(name));
    }
}
