//! Tell Intercom's Messenger who the signed-in user is, in a way the
//! browser cannot forge.
//!
//! A Messenger booted with only a `user_id` or an `email` lets anyone who
//! knows (or guesses) another user's identifier read that user's
//! conversations. Intercom offers two ways for your server to vouch for the
//! user, both keyed with a secret from the Messenger's security settings
//! that never leaves the server:
//!
//! - **Messenger Security (JWT)**, the recommended one: an HS256 JWT with
//!   the `user_id`, optionally the `email` and other attributes, and an
//!   expiry, passed to the Messenger as `intercom_user_jwt`. Build it with
//!   [`MessengerJwt`]; check one with [`MessengerJwtVerifier`].
//! - **Identity Verification** (legacy, deprecated by Intercom in favour of
//!   JWTs): a `user_hash`, the hex HMAC-SHA256 of the user's identifier,
//!   from [`user_hash`]. It refuses identifiers that could be read as the
//!   start of a JWT, whose hash would be a JWT signature under the same
//!   secret (see [`user_hash`]).
//!
//! [`MessengerSettings`] puts together what a page needs to boot the
//! Messenger for a signed-in user and serializes to JSON: `app_id`,
//! `user_id` and one proof, the JWT ([`MessengerSettings::with_jwt`]) or
//! the `user_hash` ([`MessengerSettings::with_user_hash`]), never both.
//!
//! # One secret per platform
//!
//! Web, iOS and Android each have their own secret in Intercom's settings.
//! Nothing here assumes a single one: build one [`IdentitySecret`] per
//! platform your server signs for (for instance from
//! `INTERCOM_IDENTITY_SECRET_WEB`, `…_IOS`, `…_ANDROID`) and pass the right
//! one to each call.
//!
//! # Example
//!
//! ```
//! use tower_intercom::identity::{user_hash, IdentitySecret, MessengerJwt, MessengerJwtVerifier};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # std::env::set_var("INTERCOM_IDENTITY_SECRET", "doc-example-identity-secret");
//! let secret = IdentitySecret::from_env("INTERCOM_IDENTITY_SECRET")?;
//!
//! // Only for a user the server has signed in:
//! let jwt = MessengerJwt::new("user-42")
//!     .email("ada@example.com")
//!     .sign(&secret)?;
//! let hash = user_hash(&secret, "user-42")?;
//! assert_eq!(hash.len(), 64);
//!
//! let claims = MessengerJwtVerifier::new(secret).verify(&jwt)?;
//! assert_eq!(claims.user_id(), "user-42");
//! # Ok(())
//! # }
//! ```
//!
//! # The JWT implementation
//!
//! The crate signs and checks the tokens itself, with the same RustCrypto
//! `hmac`/`sha2` it uses for webhooks, `base64` and `serde_json`, rather
//! than through a general JWT library. Messenger JWTs need one algorithm,
//! HS256, and a JWT library brings every other one with it: the one this
//! crate used before (`jsonwebtoken` with its pure-Rust backend) pulled in
//! the `rsa` crate (RUSTSEC-2023-0071), P-256, P-384 and Ed25519, and kept
//! copies of the key in HMAC states that it did not wipe. What is
//! implemented here is small enough to read in one go:
//!
//! - Signing writes the header `{"typ":"JWT","alg":"HS256"}` and the claims
//!   in a fixed order (`user_id`, `email`, `exp`, then the attributes),
//!   byte for byte what PyJWT writes for the same claims
//!   (`tests/fixtures/identity/`).
//! - Verifying accepts exactly three segments of unpadded, canonical
//!   base64url; a header that is a JSON object with `alg` `HS256` and no
//!   `crit`; a signature of exactly 32 bytes compared in constant time;
//!   and only then reads the claims (see [`MessengerJwtVerifier`]).

mod hash;
mod jwt;
mod settings;

use std::sync::Arc;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

use crate::secret::{secret_traits, SecretBytes, SecretError, SecretKind};

pub use self::{
    hash::{user_hash, UserHashError, UserHashErrorKind},
    jwt::{JwtError, JwtErrorKind, MessengerClaims, MessengerJwt, MessengerJwtVerifier},
    settings::MessengerSettings,
};

/// The secret of Identity Verification and Messenger Security: the key of
/// `user_hash` and of Messenger JWTs.
///
/// Copy it from the Messenger's security settings in Intercom; web, iOS and
/// Android each have their own (see the [module docs](self)). It must stay
/// on your server: anyone who has it can sign in to the Messenger as any of
/// your users.
///
/// - An empty or blank secret is refused: an HMAC keyed with nothing can be
///   forged by anyone. Text sources (environment, [`str::parse`]) also
///   refuse surrounding whitespace.
/// - `Debug` prints `IdentitySecret(REDACTED)`; there is no `Display`.
/// - The key lives in one HMAC-SHA256 state, wiped from memory when the
///   last clone is dropped; every copy made to compute a `user_hash` or a
///   JWT signature is wiped when it is dropped too (see `SECURITY.md`, "What
///   is wiped from memory").
/// - Cloning is cheap (a reference count).
///
/// # Example
///
/// ```
/// use tower_intercom::{identity::IdentitySecret, SecretErrorKind};
///
/// let web: IdentitySecret = "web-identity-secret".parse()?;
/// assert_eq!(format!("{web:?}"), "IdentitySecret(REDACTED)");
///
/// let err = IdentitySecret::from_env("TOWER_INTERCOM_DOC_NO_IDENTITY").unwrap_err();
/// assert_eq!(err.kind(), SecretErrorKind::NotSet);
/// assert!(IdentitySecret::new("   ").is_err());
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Clone)]
pub struct IdentitySecret {
    keys: Arc<Keys>,
}

struct Keys {
    /// `hmac` is built with its `zeroize` feature: wiped on drop.
    hmac: Hmac<Sha256>,
}

impl IdentitySecret {
    /// Builds a secret from its bytes.
    ///
    /// # Errors
    ///
    /// [`SecretErrorKind::Empty`](crate::SecretErrorKind::Empty) for no
    /// bytes, [`SecretErrorKind::Blank`](crate::SecretErrorKind::Blank) when
    /// every byte is whitespace. The bytes are used as given; text sources
    /// should prefer [`from_env`](Self::from_env) or [`str::parse`], which
    /// also refuse surrounding whitespace.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::identity::IdentitySecret;
    ///
    /// let ios = IdentitySecret::new(b"ios-identity-secret".to_vec())?;
    /// # let _ = ios;
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
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
    /// use tower_intercom::identity::IdentitySecret;
    ///
    /// std::env::set_var("TOWER_INTERCOM_DOC_IDENTITY_PADDED", "secret\n");
    /// let err = IdentitySecret::from_env("TOWER_INTERCOM_DOC_IDENTITY_PADDED").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "environment variable `TOWER_INTERCOM_DOC_IDENTITY_PADDED` starts or ends with whitespace (a trailing newline?)"
    /// );
    /// ```
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        SecretBytes::from_env::<Self>(name).map(Self::from_key)
    }

    /// A fresh HMAC-SHA256 state keyed with this secret (wiped on drop).
    pub(crate) fn hmac(&self) -> Hmac<Sha256> {
        self.keys.hmac.clone()
    }
}

impl SecretKind for IdentitySecret {
    const NAME: &'static str = "IdentitySecret";

    /// Keys the HMAC state; the key bytes are wiped once it is keyed.
    fn from_key(key: SecretBytes) -> Self {
        // HMAC accepts keys of any length; longer than a block are hashed.
        let hmac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
            .expect("HMAC accepts keys of any length");
        Self {
            keys: Arc::new(Keys { hmac }),
        }
    }
}

secret_traits!(IdentitySecret);

#[cfg(test)]
mod tests {
    use std::env;

    use super::*;
    use crate::secret::SecretErrorKind;

    #[test]
    fn refuses_empty_blank_and_padded_secrets() {
        assert_eq!(
            IdentitySecret::new(Vec::new()).unwrap_err().kind(),
            SecretErrorKind::Empty
        );
        assert_eq!(
            IdentitySecret::new(" \t\n").unwrap_err().kind(),
            SecretErrorKind::Blank
        );
        assert_eq!(
            "secret\n".parse::<IdentitySecret>().unwrap_err().kind(),
            SecretErrorKind::SurroundingWhitespace
        );
        assert!(IdentitySecret::new(b"key\n".to_vec()).is_ok());
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let secret: IdentitySecret = "hunter2-identity".parse().unwrap();
        assert_eq!(format!("{secret:?}"), "IdentitySecret(REDACTED)");

        let name = "TOWER_INTERCOM_TEST_IDENTITY_PADDED";
        env::set_var(name, " leaked-identity-value");
        let err = IdentitySecret::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.var(), Some(name));
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(name));
        assert!(!shown.contains("leaked-identity-value"));
    }

    #[test]
    fn user_hash_is_keyed_and_lowercase_hex() {
        let secret: IdentitySecret = "s".parse().unwrap();
        let other: IdentitySecret = "t".parse().unwrap();
        let hash = user_hash(&secret, "user-1").unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash.to_ascii_lowercase());
        assert_ne!(hash, user_hash(&other, "user-1").unwrap());
        assert_ne!(hash, user_hash(&secret, "user-2").unwrap());
        assert_eq!(hash, user_hash(&secret.clone(), "user-1").unwrap());
    }
}
