//! [`JwtError`]: why a token could not be signed or was refused.

use std::{error::Error, fmt};

/// Why a Messenger JWT could not be signed or was refused.
///
/// The message never contains the token, its claims or the secret.
///
/// # Example
///
/// ```
/// use tower_intercom::identity::{IdentitySecret, JwtErrorKind, MessengerJwtVerifier};
///
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let err = MessengerJwtVerifier::new(secret).verify("not.a.jwt").unwrap_err();
/// assert_eq!(err.kind(), JwtErrorKind::Malformed);
/// assert_eq!(err.to_string(), "the token is not a well-formed JWT");
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError {
    kind: JwtErrorKind,
    detail: Option<&'static str>,
}

/// What was wrong with a Messenger JWT; see [`JwtError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtErrorKind {
    /// The signature does not match: the token was signed with another
    /// secret, or its header or payload was changed after signing. The two
    /// cannot be told apart (either way the HMAC differs), and either way
    /// the token must not be trusted.
    InvalidSignature,
    /// The token's `exp` is in the past (beyond the leeway). Only reported
    /// for a token whose signature is valid.
    Expired,
    /// The token's `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// The header names another algorithm than HS256, `none` included.
    UnsupportedAlgorithm,
    /// Not a JWT this verifier can check: not three dot-separated segments
    /// of unpadded base64url, a header that is not a JSON object, has no
    /// `alg` or has a `crit` parameter, or (for a token whose signature is
    /// valid) a payload that is not a JSON object.
    Malformed,
    /// A claim is missing or wrong: no `user_id`, no `exp`, a claim of the
    /// wrong type, an `aud` claim; or, when signing, an empty `user_id`, a
    /// reserved attribute name or an expiry out of range.
    InvalidClaims,
}

impl JwtError {
    pub(super) fn new(kind: JwtErrorKind) -> Self {
        Self { kind, detail: None }
    }

    /// [`JwtErrorKind::InvalidClaims`], saying which claim and how.
    pub(super) fn claims(detail: &'static str) -> Self {
        Self {
            kind: JwtErrorKind::InvalidClaims,
            detail: Some(detail),
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> JwtErrorKind {
        self.kind
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = match self.kind {
            JwtErrorKind::InvalidSignature => {
                "the token's signature does not match (signed with another secret, or altered)"
            }
            JwtErrorKind::Expired => "the token has expired",
            JwtErrorKind::NotYetValid => "the token is not valid yet",
            JwtErrorKind::UnsupportedAlgorithm => {
                "the token is not signed with HS256 (`none` and other algorithms are refused)"
            }
            JwtErrorKind::Malformed => "the token is not a well-formed JWT",
            JwtErrorKind::InvalidClaims => "the token's claims are invalid",
        };
        f.write_str(problem)?;
        if let Some(detail) = self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl Error for JwtError {}
