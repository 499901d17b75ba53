//! [`MessengerJwtVerifier`]: a token's shape, header, signature, then
//! claims, in that order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::Mac;
use serde_json::{Map, Value};

use super::{JwtError, JwtErrorKind, MessengerClaims};
use crate::identity::IdentitySecret;

/// The most clock skew a verifier tolerates.
pub(super) const MAX_LEEWAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Checks Messenger Security JWTs: for tests, and for services that
/// receive such tokens back.
///
/// A token passes only when all of these hold:
///
/// - it is exactly three segments of unpadded base64url (no `=`, no other
///   byte, no stray trailing bits), and its header is a JSON object with no
///   `crit` parameter;
/// - its header says `alg: HS256` (`none` and every other algorithm are
///   refused, whatever the signature);
/// - its signature is the HS256 of its header and payload under the
///   verifier's secret (32 bytes, compared in constant time), checked
///   before anything in the payload is read;
/// - it has an `exp` claim, not in the past (give or take the
///   [leeway](Self::leeway)), and no `nbf` claim in the future;
/// - it has a non-empty string `user_id`, and `email`, when present, is a
///   string; it has no `aud` claim (the verifier expects no audience).
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_intercom::identity::{IdentitySecret, JwtErrorKind, MessengerJwt, MessengerJwtVerifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let verifier = MessengerJwtVerifier::new(secret.clone());
///
/// let token = MessengerJwt::new("user-42").sign(&secret)?;
/// assert_eq!(verifier.verify(&token)?.user_id(), "user-42");
///
/// let other: IdentitySecret = "another-secret".parse()?;
/// let forged = MessengerJwt::new("user-42").sign(&other)?;
/// assert_eq!(verifier.verify(&forged).unwrap_err().kind(), JwtErrorKind::InvalidSignature);
///
/// let old = MessengerJwt::new("user-42")
///     .expires_at(SystemTime::now() - Duration::from_secs(3600))
///     .sign(&secret)?;
/// assert_eq!(verifier.verify(&old).unwrap_err().kind(), JwtErrorKind::Expired);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MessengerJwtVerifier {
    secret: IdentitySecret,
    /// Whole seconds, at most [`MAX_LEEWAY`].
    pub(super) leeway: u64,
}

impl MessengerJwtVerifier {
    /// The clock skew tolerated on `exp` and `nbf` unless changed: 60
    /// seconds.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: IdentitySecret) -> Self {
        Self {
            secret,
            leeway: Self::DEFAULT_LEEWAY.as_secs(),
        }
    }

    /// Sets the clock skew tolerated on `exp` and `nbf`, in whole seconds
    /// (default [60 seconds](Self::DEFAULT_LEEWAY), at most one day).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_intercom::identity::{IdentitySecret, MessengerJwt, MessengerJwtVerifier};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret: IdentitySecret = "web-identity-secret".parse()?;
    /// let just_expired = MessengerJwt::new("user-42")
    ///     .expires_at(SystemTime::now() - Duration::from_secs(30))
    ///     .sign(&secret)?;
    ///
    /// let lenient = MessengerJwtVerifier::new(secret.clone());
    /// assert!(lenient.verify(&just_expired).is_ok());
    /// let strict = MessengerJwtVerifier::new(secret).leeway(Duration::ZERO);
    /// assert!(strict.verify(&just_expired).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY).as_secs();
        self
    }

    /// Checks `token` and returns its claims.
    ///
    /// The checks run in this order, and the first that fails is the
    /// error: the token's shape (three segments of unpadded base64url) and
    /// header ([`Malformed`](JwtErrorKind::Malformed),
    /// [`UnsupportedAlgorithm`](JwtErrorKind::UnsupportedAlgorithm)), the
    /// signature ([`InvalidSignature`](JwtErrorKind::InvalidSignature)),
    /// and only then the payload and its claims, which are not looked at
    /// before the signature is known to be good.
    ///
    /// # Errors
    ///
    /// A [`JwtError`] whose [`kind`](JwtError::kind) tells why; see
    /// [`JwtErrorKind`]. The error never contains the token or its claims.
    pub fn verify(&self, token: &str) -> Result<MessengerClaims, JwtError> {
        self.verify_at(token, now())
    }

    /// [`verify`](Self::verify) at `now` seconds since the Unix epoch.
    pub(super) fn verify_at(&self, token: &str, now: u64) -> Result<MessengerClaims, JwtError> {
        let malformed = || JwtError::new(JwtErrorKind::Malformed);
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(malformed());
        };
        let header = decode_segment(header_b64)?;
        let payload = decode_segment(payload_b64)?;
        let signature = decode_segment(signature_b64)?;
        check_header(&header)?;

        // The signing input: the first two segments and the dot between
        // them, as received.
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        let mut mac = self.secret.hmac();
        mac.update(signing_input.as_bytes());
        // Constant time; a signature of any other length than 32 bytes fails.
        mac.verify_slice(&signature)
            .map_err(|_| JwtError::new(JwtErrorKind::InvalidSignature))?;

        // Signed by the holder of the secret: the payload can be read now.
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| malformed())?;
        self.check_times(&claims, now)?;
        if claims.contains_key("aud") {
            return Err(JwtError::claims("the token is meant for another audience"));
        }
        MessengerClaims::from_map(claims)
    }

    /// `exp` (required, a whole number of seconds, not in the past) and
    /// `nbf` (optional, a number, not in the future), give or take the
    /// leeway.
    fn check_times(&self, claims: &Map<String, Value>, now: u64) -> Result<(), JwtError> {
        let exp = match claims.get("exp") {
            None => return Err(JwtError::claims("`exp` is missing")),
            Some(exp) => exp
                .as_u64()
                .ok_or_else(|| JwtError::claims("`exp` is not a whole number of seconds"))?,
        };
        if exp.saturating_add(self.leeway) < now {
            return Err(JwtError::new(JwtErrorKind::Expired));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf
                .as_f64()
                .ok_or_else(|| JwtError::claims("`nbf` is not a number"))?;
            // Both sides are below 2^53 for any clock this century, so the
            // conversion is exact.
            #[allow(clippy::cast_precision_loss)]
            let latest = now.saturating_add(self.leeway) as f64;
            if nbf > latest {
                return Err(JwtError::new(JwtErrorKind::NotYetValid));
            }
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch (0 for a clock set before 1970).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// One segment: unpadded base64url, canonical. Padding, any other byte and
/// non-zero trailing bits make the token malformed.
fn decode_segment(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::new(JwtErrorKind::Malformed))
}

/// The header must be a JSON object whose `alg` is the string `HS256`, with
/// no `crit` parameter (no extension is understood, so any critical one
/// must make the token fail, RFC 7515 section 4.1.11).
fn check_header(header: &[u8]) -> Result<(), JwtError> {
    let malformed = || JwtError::new(JwtErrorKind::Malformed);
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(header) else {
        return Err(malformed());
    };
    match header.get("alg") {
        None => return Err(malformed()),
        Some(Value::String(alg)) if alg == "HS256" => {}
        Some(_) => return Err(JwtError::new(JwtErrorKind::UnsupportedAlgorithm)),
    }
    if header.contains_key("crit") {
        return Err(malformed());
    }
    Ok(())
}
