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
//! - **Identity Verification** (legacy, still working): a `user_hash`, the
//!   hex HMAC-SHA256 of the user's identifier, from [`user_hash`].
//!
//! [`MessengerSettings`] puts together what a page needs to boot the
//! Messenger for a signed-in user (`app_id`, `user_id`, `user_hash`,
//! `intercom_user_jwt`) and serializes to JSON.
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
//! let hash = user_hash(&secret, "user-42");
//! assert_eq!(hash.len(), 64);
//!
//! let claims = MessengerJwtVerifier::new(secret).verify(&jwt)?;
//! assert_eq!(claims.user_id(), "user-42");
//! # Ok(())
//! # }
//! ```
//!
//! # The JWT library
//!
//! Tokens are encoded, signed and checked by the `jsonwebtoken` crate with
//! its pure-Rust (`rust_crypto`) backend. `jsonwebtoken` picks its backend
//! once per process: if another crate in your build also enables its
//! `aws_lc_rs` feature, install one explicitly at startup with
//! `jsonwebtoken::crypto::CryptoProvider::install_default`, as
//! `jsonwebtoken` itself asks for that case.
//!
//! That backend depends on the `rsa` crate, for which `cargo audit` reports
//! RUSTSEC-2023-0071 (a timing side channel in RSA private-key operations).
//! This module only ever signs and verifies HS256, never RSA, so the
//! advisory does not apply to it.

mod jwt;
mod settings;

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::Sha256;

use crate::{
    secret::{secret_traits, SecretBytes, SecretKind},
    SecretError,
};

pub use self::{
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
/// - The HMAC key state is wiped from memory when the last clone is
///   dropped. The JWT library keeps its own copy of the key (built once,
///   with the secret), which it does not wipe.
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
    encoding: EncodingKey,
    decoding: DecodingKey,
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

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.keys.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.keys.decoding
    }
}

impl SecretKind for IdentitySecret {
    const NAME: &'static str = "IdentitySecret";

    /// Keys the HMAC and the JWT keys; the key bytes are wiped once they
    /// are keyed.
    fn from_key(key: SecretBytes) -> Self {
        let secret = key.expose();
        // HMAC accepts keys of any length; longer than a block are hashed.
        let hmac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("HMAC accepts keys of any length");
        Self {
            keys: Arc::new(Keys {
                hmac,
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
            }),
        }
    }
}

secret_traits!(IdentitySecret);

/// The Identity Verification `user_hash` of a user: the lowercase hex
/// HMAC-SHA256 of `identifier`, keyed with `secret`.
///
/// **Which identifier:** the user's `user_id` whenever the user has one,
/// exactly as it is given to the Messenger. Only for a user with no
/// `user_id` (identified by email alone) pass the email, again exactly as
/// the Messenger gets it: Intercom hashes the value it receives, so a
/// different case or surrounding space makes the hash fail.
///
/// Compute it on the server for the user the server has signed in, never
/// for an identifier the browser sent. Use the secret of the platform the
/// hash is for (web, iOS or Android).
///
/// # Example
///
/// ```
/// use tower_intercom::identity::{user_hash, IdentitySecret};
///
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let hash = user_hash(&secret, "user-42");
/// assert_eq!(hash.len(), 64);
/// assert!(hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
///
/// // The same identifier under another platform's secret gives another hash.
/// let ios: IdentitySecret = "ios-identity-secret".parse()?;
/// assert_ne!(user_hash(&ios, "user-42"), hash);
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
pub fn user_hash(secret: &IdentitySecret, identifier: &str) -> String {
    let mut mac = secret.keys.hmac.clone();
    mac.update(identifier.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::env;

    use super::*;
    use crate::SecretErrorKind;

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
        let hash = user_hash(&secret, "user-1");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash.to_ascii_lowercase());
        assert_ne!(hash, user_hash(&other, "user-1"));
        assert_ne!(hash, user_hash(&secret, "user-2"));
        assert_eq!(hash, user_hash(&secret.clone(), "user-1"));
    }
}
