//! The app's client secret, which Intercom uses to sign webhooks.
//!
//! [`WebhookSecret`] is the only way to hand a secret to this crate. It
//! refuses secrets that would make signatures forgeable or silently wrong,
//! never prints a byte of the secret, and wipes its key material from memory
//! when the last copy is dropped.

use std::{env, error::Error, ffi::OsString, fmt, sync::Arc, sync::OnceLock};

use zeroize::Zeroizing;

use crate::mac::{Hash, Mac};

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
/// - The HMAC key state of a signature scheme is prepared once, the first
///   time the secret is used with that scheme (a layer prepares its own
///   scheme when it is built), so verifying a request never re-derives it.
///   The key bytes and every key state are wiped from memory when the last
///   clone is dropped.
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
    inner: Arc<WebhookKeys>,
}

/// The key, and the HMAC states keyed with it, one per hash once used.
struct WebhookKeys {
    key: SecretBytes,
    macs: [OnceLock<Mac>; Hash::COUNT],
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
        SecretBytes::from_bytes::<Self>(secret.into()).map(Self::from_key)
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
        SecretBytes::from_env::<Self>(name).map(Self::from_key)
    }

    /// An HMAC state for `hash` keyed with this secret, ready to be fed a
    /// message. The keyed state is prepared on first use and cloned after.
    pub(crate) fn mac(&self, hash: Hash) -> Mac {
        self.inner.macs[hash.index()]
            .get_or_init(|| Mac::new(hash, self.inner.key.expose()))
            .clone()
    }
}

impl SecretKind for WebhookSecret {
    const NAME: &'static str = "WebhookSecret";

    fn from_key(key: SecretBytes) -> Self {
        Self {
            inner: Arc::new(WebhookKeys {
                key,
                macs: Default::default(),
            }),
        }
    }
}

/// What every secret type shares: how it is checked, read and shown.
///
/// [`WebhookSecret`], [`IdentitySecret`](crate::identity::IdentitySecret)
/// and [`AccessToken`](crate::AccessToken) are built through
/// [`SecretBytes`] and get `FromStr` and a redacted `Debug` from
/// `secret_traits!`, so their checks, errors and hygiene cannot drift apart.
pub(crate) trait SecretKind: Sized {
    /// The type's name, as `Debug` prints it: `NAME(REDACTED)`.
    const NAME: &'static str;

    /// Checks beyond "not empty, not blank" (and, for text, "no surrounding
    /// whitespace"). None by default.
    fn check(_key: &[u8]) -> Result<(), SecretErrorKind> {
        Ok(())
    }

    /// Builds the secret from key bytes that passed every check.
    fn from_key(key: SecretBytes) -> Self;
}

/// `FromStr` (the text checks) and a `Debug` that prints `NAME(REDACTED)`.
macro_rules! secret_traits {
    ($ty:ty) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::secret::SecretError;

            /// Parses a secret from text, refusing empty, blank and
            /// whitespace-padded input.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::secret::SecretBytes::from_text::<Self>(s)
                    .map(<Self as $crate::secret::SecretKind>::from_key)
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(<Self as $crate::secret::SecretKind>::NAME)?;
                f.write_str("(REDACTED)")
            }
        }
    };
}
pub(crate) use secret_traits;

secret_traits!(WebhookSecret);

/// A secret's bytes, checked, wiped from memory when dropped and never
/// printed.
pub(crate) struct SecretBytes(Zeroizing<Box<[u8]>>);

impl SecretBytes {
    /// Bytes as given: refused when empty or blank, or by `K::check`.
    pub(crate) fn from_bytes<K: SecretKind>(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(bytes.into_boxed_slice());
        check_not_blank(&bytes)?;
        K::check(&bytes).map_err(SecretError::new)?;
        Ok(Self(bytes))
    }

    /// Text: also refused with surrounding whitespace.
    pub(crate) fn from_text<K: SecretKind>(text: &str) -> Result<Self, SecretError> {
        check_text(text)?;
        K::check(text.as_bytes()).map_err(SecretError::new)?;
        Ok(Self(Zeroizing::new(text.as_bytes().into())))
    }

    /// The text of environment variable `name`; errors name the variable,
    /// never the value.
    pub(crate) fn from_env<K: SecretKind>(name: &str) -> Result<Self, SecretError> {
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
        Self::from_text::<K>(&value).map_err(with_var)
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// The whitespace that creeps into secrets through files, environment
/// variables and copy and paste.
fn is_stray_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// Refuses empty and whitespace-only secrets.
fn check_not_blank(secret: &[u8]) -> Result<(), SecretError> {
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
fn check_text(secret: &str) -> Result<(), SecretError> {
    let bytes = secret.as_bytes();
    check_not_blank(bytes)?;
    let padded = bytes.first().copied().is_some_and(is_stray_whitespace)
        || bytes.last().copied().is_some_and(is_stray_whitespace);
    if padded {
        return Err(SecretError::new(SecretErrorKind::SurroundingWhitespace));
    }
    Ok(())
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
    /// The secret has a character that cannot be sent in an HTTP header
    /// (anything but visible ASCII), as an access token must be.
    InvalidCharacter,
}

impl SecretError {
    pub(crate) fn new(kind: SecretErrorKind) -> Self {
        Self { kind, var: None }
    }

    fn for_var(mut self, name: &str) -> Self {
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
    use std::env;

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
