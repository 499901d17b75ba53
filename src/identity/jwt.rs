//! Messenger Security JWTs: issuing them, and checking them.

use std::{
    error::Error,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use std::fmt::Write as _;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::Mac;
use serde_json::{Map, Value};

use super::IdentitySecret;

/// The header of every token the crate signs, byte for byte.
const HEADER: &str = r#"{"typ":"JWT","alg":"HS256"}"#;

/// Claims with a meaning of their own, set by their own methods.
const RESERVED_CLAIMS: [&str; 3] = ["user_id", "email", "exp"];

/// The last `exp` accepted when signing: 9999-12-31T23:59:59Z, which keeps
/// the number exact for JavaScript and every JSON parser.
const MAX_EXP: u64 = 253_402_300_799;

/// The most clock skew a verifier tolerates.
const MAX_LEEWAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A Messenger Security JWT for one signed-in user, ready to be signed.
///
/// The token is an HS256 JWT with the claims Intercom reads:
///
/// | claim | from | |
/// |---|---|---|
/// | `user_id` | [`MessengerJwt::new`] | required |
/// | `email` | [`email`](Self::email) | optional |
/// | `exp` | [`expires_in`](Self::expires_in) / [`expires_at`](Self::expires_at) | always set; [one hour](Self::DEFAULT_LIFETIME) from signing unless changed |
/// | anything else | [`attribute`](Self::attribute) | optional user attributes (`name`, custom attributes…) |
///
/// Sign it with the [`IdentitySecret`] of the platform it is for and give
/// the Messenger the result as `intercom_user_jwt`. Issue tokens only for
/// the user your server has signed in, never for an identifier taken from
/// the request. Intercom recommends an expiry that matches your session
/// length; a new token must then be handed to the Messenger before the old
/// one expires.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_intercom::identity::{IdentitySecret, MessengerJwt, MessengerJwtVerifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
///
/// let token = MessengerJwt::new("user-42")
///     .email("ada@example.com")
///     .attribute("name", "Ada Lovelace")
///     .attribute("plan", "pro")
///     .expires_in(Duration::from_secs(15 * 60))
///     .sign(&secret)?;
///
/// let claims = MessengerJwtVerifier::new(secret).verify(&token)?;
/// assert_eq!(claims.user_id(), "user-42");
/// assert_eq!(claims.email(), Some("ada@example.com"));
/// assert_eq!(claims.attribute("plan"), Some(&"pro".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct MessengerJwt {
    user_id: String,
    email: Option<String>,
    attributes: Map<String, Value>,
    expiry: Expiry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    In(Duration),
    At(SystemTime),
}

impl MessengerJwt {
    /// How long a token is valid when no expiry is set: one hour.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60 * 60);

    /// A token for the user with this `user_id`, expiring
    /// [one hour](Self::DEFAULT_LIFETIME) after it is signed.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            email: None,
            attributes: Map::new(),
            expiry: Expiry::In(Self::DEFAULT_LIFETIME),
        }
    }

    /// Adds the user's `email` claim.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Adds a user attribute claim, such as `name`, `phone` or a custom
    /// attribute. Setting the same name again replaces the value.
    ///
    /// `user_id`, `email` and `exp` have their own methods: giving one of
    /// them here makes [`sign`](Self::sign) fail.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Makes the token expire `lifetime` after it is signed.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_intercom::identity::{IdentitySecret, MessengerJwt, MessengerJwtVerifier};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret: IdentitySecret = "web-identity-secret".parse()?;
    /// let token = MessengerJwt::new("user-42")
    ///     .expires_in(Duration::from_secs(8 * 60 * 60))
    ///     .sign(&secret)?;
    /// let claims = MessengerJwtVerifier::new(secret).verify(&token)?;
    /// assert!(claims.expires_at() > SystemTime::now() + Duration::from_secs(7 * 60 * 60));
    /// # Ok(())
    /// # }
    /// ```
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expiry = Expiry::In(lifetime);
        self
    }

    /// Makes the token expire at `time` (whole seconds; a fraction is
    /// dropped). A time in the past gives a token that is already expired.
    pub fn expires_at(mut self, time: SystemTime) -> Self {
        self.expiry = Expiry::At(time);
        self
    }

    /// The `user_id` the token is for.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Signs the token with `secret` (HS256) and returns it in its compact
    /// form, `header.payload.signature`.
    ///
    /// # Errors
    ///
    /// [`JwtErrorKind::InvalidClaims`] when the `user_id` is empty or blank,
    /// the email is empty, an [`attribute`](Self::attribute) uses the name
    /// `user_id`, `email` or `exp`, or the expiry is before 1970 or after
    /// the year 9999.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::identity::{IdentitySecret, JwtErrorKind, MessengerJwt};
    ///
    /// let secret: IdentitySecret = "web-identity-secret".parse()?;
    /// let token = MessengerJwt::new("user-42").sign(&secret).unwrap();
    /// assert_eq!(token.split('.').count(), 3);
    ///
    /// let err = MessengerJwt::new("").sign(&secret).unwrap_err();
    /// assert_eq!(err.kind(), JwtErrorKind::InvalidClaims);
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
    pub fn sign(&self, secret: &IdentitySecret) -> Result<String, JwtError> {
        if self.user_id.trim().is_empty() {
            return Err(JwtError::claims("`user_id` is empty"));
        }
        if self
            .email
            .as_deref()
            .is_some_and(|email| email.trim().is_empty())
        {
            return Err(JwtError::claims("`email` is empty"));
        }
        if RESERVED_CLAIMS
            .iter()
            .any(|name| self.attributes.contains_key(*name))
        {
            return Err(JwtError::claims(
                "`user_id`, `email` and `exp` cannot be set as attributes",
            ));
        }
        let payload = self.payload(self.exp()?);
        let mut token = URL_SAFE_NO_PAD.encode(HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let mut mac = secret.hmac();
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        Ok(token)
    }

    /// The claims as they are signed, in compact JSON: `user_id`, `email`,
    /// `exp`, then the attributes in the order of their map.
    fn payload(&self, exp: u64) -> String {
        let mut payload = String::from("{");
        push_member(&mut payload, "user_id", &Value::from(self.user_id.as_str()));
        if let Some(email) = &self.email {
            payload.push(',');
            push_member(&mut payload, "email", &Value::from(email.as_str()));
        }
        payload.push(',');
        push_member(&mut payload, "exp", &Value::from(exp));
        for (name, value) in &self.attributes {
            payload.push(',');
            push_member(&mut payload, name, value);
        }
        payload.push('}');
        payload
    }

    /// The `exp` claim: seconds since the Unix epoch.
    fn exp(&self) -> Result<u64, JwtError> {
        let out_of_range = || JwtError::claims("the expiry is before 1970 or after the year 9999");
        let at = match self.expiry {
            Expiry::At(at) => at,
            Expiry::In(lifetime) => SystemTime::now()
                .checked_add(lifetime)
                .ok_or_else(out_of_range)?,
        };
        let exp = at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| out_of_range())?
            .as_secs();
        if exp > MAX_EXP {
            return Err(out_of_range());
        }
        Ok(exp)
    }
}

/// Appends `"name":value` in compact JSON.
///
/// `Value`'s `Display` is serde_json's compact serializer, writing into a
/// `String`; it cannot fail (object keys are strings, numbers are finite),
/// so signing has no serialization error to report.
fn push_member(out: &mut String, name: &str, value: &Value) {
    let _ = write!(out, "{}:{value}", Value::from(name));
}

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
    leeway: u64,
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
    fn verify_at(&self, token: &str, now: u64) -> Result<MessengerClaims, JwtError> {
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

/// The claims of a verified Messenger JWT.
///
/// # Example
///
/// ```
/// use tower_intercom::identity::{IdentitySecret, MessengerJwt, MessengerJwtVerifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let token = MessengerJwt::new("user-42").attribute("seats", 12).sign(&secret)?;
///
/// let claims = MessengerJwtVerifier::new(secret).verify(&token)?;
/// assert_eq!(claims.user_id(), "user-42");
/// assert_eq!(claims.email(), None);
/// assert_eq!(claims.attribute("seats"), Some(&12.into()));
/// assert_eq!(claims.attributes().len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MessengerClaims {
    user_id: String,
    email: Option<String>,
    exp: u64,
    attributes: Map<String, Value>,
}

impl MessengerClaims {
    fn from_map(mut claims: Map<String, Value>) -> Result<Self, JwtError> {
        let user_id = match claims.remove("user_id") {
            Some(Value::String(user_id)) if !user_id.is_empty() => user_id,
            _ => return Err(JwtError::claims("`user_id` is missing or not a string")),
        };
        let email = match claims.remove("email") {
            None => None,
            Some(Value::String(email)) => Some(email),
            Some(_) => return Err(JwtError::claims("`email` is not a string")),
        };
        let exp = claims
            .remove("exp")
            .and_then(|exp| exp.as_u64())
            .ok_or_else(|| JwtError::claims("`exp` is missing or not a whole number"))?;
        Ok(Self {
            user_id,
            email,
            exp,
            attributes: claims,
        })
    }

    /// The `user_id` claim.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The `email` claim, if the token has one.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// When the token expires (its `exp` claim).
    pub fn expires_at(&self) -> SystemTime {
        // `exp` is at most `u64::MAX` seconds, which `SystemTime` may not
        // hold: saturate rather than overflow.
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.exp))
            .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(MAX_EXP))
    }

    /// Every other claim: the user attributes (and any registered claims
    /// such as `iat` or `nbf`).
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }

    /// One attribute by name.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes.get(name)
    }
}

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
    fn new(kind: JwtErrorKind) -> Self {
        Self { kind, detail: None }
    }

    fn claims(detail: &'static str) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> IdentitySecret {
        "unit-test-identity-secret".parse().unwrap()
    }

    #[test]
    fn signs_the_documented_claims_in_order() {
        let token = MessengerJwt::new("u-1")
            .email("a@example.com")
            .attribute("name", "Ada")
            .expires_at(UNIX_EPOCH + Duration::from_secs(4_102_444_800))
            .sign(&secret())
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(header, br#"{"typ":"JWT","alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        assert_eq!(
            payload,
            br#"{"user_id":"u-1","email":"a@example.com","exp":4102444800,"name":"Ada"}"#
        );
    }

    #[test]
    fn default_expiry_is_one_hour() {
        let before = SystemTime::now();
        let token = MessengerJwt::new("u-1").sign(&secret()).unwrap();
        let claims = MessengerJwtVerifier::new(secret()).verify(&token).unwrap();
        let lifetime = claims
            .expires_at()
            .duration_since(before)
            .unwrap_or_default();
        assert!(lifetime <= MessengerJwt::DEFAULT_LIFETIME + Duration::from_secs(1));
        assert!(lifetime >= MessengerJwt::DEFAULT_LIFETIME - Duration::from_secs(2));
    }

    #[test]
    fn refuses_to_sign_bad_claims() {
        let s = secret();
        for jwt in [
            MessengerJwt::new(""),
            MessengerJwt::new("  "),
            MessengerJwt::new("u").email(""),
            MessengerJwt::new("u").attribute("user_id", "someone-else"),
            MessengerJwt::new("u").attribute("exp", 1),
            MessengerJwt::new("u").attribute("email", "x@example.com"),
            MessengerJwt::new("u").expires_at(UNIX_EPOCH - Duration::from_secs(1)),
            MessengerJwt::new("u").expires_in(Duration::MAX),
            MessengerJwt::new("u").expires_at(UNIX_EPOCH + Duration::from_secs(MAX_EXP + 1)),
        ] {
            assert_eq!(
                jwt.sign(&s).unwrap_err().kind(),
                JwtErrorKind::InvalidClaims,
                "{jwt:?}"
            );
        }
    }

    /// A token with exactly this header and payload JSON, signed with `key`.
    fn token(key: &IdentitySecret, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = key.hmac();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    const NOW: u64 = 2_000_000_000;
    const HS256: &str = r#"{"alg":"HS256"}"#;

    fn verify(token: &str) -> Result<MessengerClaims, JwtError> {
        MessengerJwtVerifier::new(secret()).verify_at(token, NOW)
    }

    fn kind(token: &str) -> JwtErrorKind {
        verify(token).unwrap_err().kind()
    }

    #[test]
    fn the_header_is_the_documented_constant() {
        assert_eq!(
            URL_SAFE_NO_PAD.encode(HEADER),
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"
        );
    }

    #[test]
    fn accepts_a_minimal_token_signed_elsewhere() {
        let claims = verify(&token(
            &secret(),
            HS256,
            r#"{"exp":2000000000,"user_id":"u","iat":1}"#,
        ))
        .unwrap();
        assert_eq!(claims.user_id(), "u");
        assert_eq!(claims.attribute("iat"), Some(&1.into()));
    }

    #[test]
    fn refuses_padding_foreign_bytes_and_stray_bits() {
        let good = token(&secret(), HS256, r#"{"user_id":"u","exp":2000000000}"#);
        assert!(verify(&good).is_ok());
        let (input, signature) = good.rsplit_once('.').unwrap();
        let (header, payload) = input.split_once('.').unwrap();
        // 43 characters for 32 bytes: the last one carries 2 unused bits.
        assert_eq!(signature.len(), 43);
        for bad in [
            format!("{good}="),
            format!("{header}=.{payload}.{signature}"),
            format!("{header}.{payload}=.{signature}"),
            format!("{header}.{payload}.{signature}=="),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}\n"),
            format!("+{}.{payload}.{signature}", &header[1..]),
            format!("{header}.{payload}./{}", &signature[1..]),
            format!("{header}.{payload}.{signature}.{signature}"),
            format!("{header}.{payload}"),
            format!("{header}..{payload}.{signature}"),
        ] {
            assert_ne!(bad, good);
            assert!(verify(&bad).is_err(), "{bad}");
        }
        // A signature with non-zero unused bits decodes to the same bytes
        // in lenient decoders: it must be refused all the same.
        let mut bits = signature.as_bytes().to_vec();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.iter().position(|&c| c == bits[42]).unwrap();
        bits[42] = alphabet[index ^ 1];
        let bits = String::from_utf8(bits).unwrap();
        assert_eq!(
            kind(&format!("{header}.{payload}.{bits}")),
            JwtErrorKind::Malformed
        );
    }

    #[test]
    fn the_header_must_be_an_hs256_object_without_crit() {
        let s = secret();
        let payload = r#"{"user_id":"u","exp":2000000000}"#;
        for (header, expected) in [
            (r#"{"alg":"none"}"#, JwtErrorKind::UnsupportedAlgorithm),
            (r#"{"alg":"HS512"}"#, JwtErrorKind::UnsupportedAlgorithm),
            (r#"{"alg":"hs256"}"#, JwtErrorKind::UnsupportedAlgorithm),
            (r#"{"alg":["HS256"]}"#, JwtErrorKind::UnsupportedAlgorithm),
            (r#"{"alg":null}"#, JwtErrorKind::UnsupportedAlgorithm),
            (r#"{"typ":"JWT"}"#, JwtErrorKind::Malformed),
            (r#"["HS256"]"#, JwtErrorKind::Malformed),
            (r#""HS256""#, JwtErrorKind::Malformed),
            ("", JwtErrorKind::Malformed),
            ("{", JwtErrorKind::Malformed),
            ("\u{feff}{\"alg\":\"HS256\"}", JwtErrorKind::Malformed),
            (r#"{"alg":"HS256","crit":["exp"]}"#, JwtErrorKind::Malformed),
            (
                r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
                JwtErrorKind::Malformed,
            ),
        ] {
            assert_eq!(kind(&token(&s, header, payload)), expected, "{header}");
        }
        // Whitespace and other members are fine: it is JSON.
        assert!(verify(&token(
            &s,
            " {\"kid\":\"k\", \"alg\" : \"HS256\"}\n",
            payload
        ))
        .is_ok());
    }

    #[test]
    fn the_signature_is_checked_before_the_claims() {
        let other: IdentitySecret = "another-secret".parse().unwrap();
        for payload in [
            r#"{"user_id":"u","exp":1}"#,
            r#"{"user_id":"u","exp":2000000000,"nbf":3000000000}"#,
            r#"{"user_id":"u"}"#,
            r#"{"exp":2000000000}"#,
            r#"{"user_id":"u","exp":2000000000,"aud":"x"}"#,
            "[]",
            "not json",
        ] {
            assert_eq!(
                kind(&token(&other, HS256, payload)),
                JwtErrorKind::InvalidSignature,
                "{payload}"
            );
        }
        // A signature of the wrong length is a wrong signature.
        let good = token(&secret(), HS256, r#"{"user_id":"u","exp":2000000000}"#);
        let input = good.rsplit_once('.').unwrap().0;
        for signature in [
            "",
            "AA",
            &URL_SAFE_NO_PAD.encode([0u8; 31]),
            &URL_SAFE_NO_PAD.encode([0u8; 64]),
        ] {
            assert_eq!(
                kind(&format!("{input}.{signature}")),
                JwtErrorKind::InvalidSignature
            );
        }
    }

    #[test]
    fn claims_are_checked_once_signed() {
        let s = secret();
        let check =
            |payload: &str| verify(&token(&s, HS256, payload)).map(|c| c.user_id().to_owned());
        let kind_of = |payload: &str| check(payload).unwrap_err().kind();
        assert_eq!(check(r#"{"user_id":"u","exp":2000000000}"#).unwrap(), "u");
        // exp: required, a whole number, not in the past beyond the leeway.
        assert_eq!(kind_of(r#"{"user_id":"u"}"#), JwtErrorKind::InvalidClaims);
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":"2000000000"}"#),
            JwtErrorKind::InvalidClaims
        );
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":2000000000.5}"#),
            JwtErrorKind::InvalidClaims
        );
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":-1}"#),
            JwtErrorKind::InvalidClaims
        );
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":null}"#),
            JwtErrorKind::InvalidClaims
        );
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":1999999939}"#),
            JwtErrorKind::Expired
        );
        assert!(check(r#"{"user_id":"u","exp":1999999940}"#).is_ok());
        assert!(check(r#"{"user_id":"u","exp":18446744073709551615}"#).is_ok());
        // nbf: optional, a number, not in the future beyond the leeway.
        assert!(check(r#"{"user_id":"u","exp":2000000000,"nbf":2000000060}"#).is_ok());
        assert!(check(r#"{"user_id":"u","exp":2000000000,"nbf":1.5}"#).is_ok());
        assert!(check(r#"{"user_id":"u","exp":2000000000,"nbf":-5}"#).is_ok());
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":2000000000,"nbf":2000000061}"#),
            JwtErrorKind::NotYetValid
        );
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":2000000000,"nbf":"0"}"#),
            JwtErrorKind::InvalidClaims
        );
        // No audience is expected, so any `aud` is someone else's.
        assert_eq!(
            kind_of(r#"{"user_id":"u","exp":2000000000,"aud":"intercom"}"#),
            JwtErrorKind::InvalidClaims
        );
        // user_id and email.
        assert_eq!(
            kind_of(r#"{"user_id":"","exp":2000000000}"#),
            JwtErrorKind::InvalidClaims
        );
        assert_eq!(
            kind_of(r#"{"user_id":7,"exp":2000000000}"#),
            JwtErrorKind::InvalidClaims
        );
        assert_eq!(
            kind_of(r#"{"user_id":"u","email":7,"exp":2000000000}"#),
            JwtErrorKind::InvalidClaims
        );
        // A payload that is not a JSON object, validly signed.
        for payload in [
            "[]",
            "\"u\"",
            "",
            "{",
            r#"{"user_id":"u","exp":2000000000}x"#,
        ] {
            assert_eq!(kind_of(payload), JwtErrorKind::Malformed, "{payload}");
        }
    }

    #[test]
    fn leeway_is_bounded() {
        let s = secret();
        let old = token(&s, HS256, r#"{"user_id":"u","exp":1000}"#);
        let lenient = MessengerJwtVerifier::new(s).leeway(Duration::MAX);
        assert_eq!(lenient.leeway, MAX_LEEWAY.as_secs());
        assert_eq!(
            lenient.verify_at(&old, NOW).unwrap_err().kind(),
            JwtErrorKind::Expired
        );
        assert!(lenient.verify_at(&old, 1000 + MAX_LEEWAY.as_secs()).is_ok());
    }

    #[test]
    fn odd_input_never_panics() {
        let verifier = MessengerJwtVerifier::new(secret()).leeway(Duration::MAX);
        for token in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..",
            "eyJhbGciOjF9.e30.",
            "\u{0}.\u{ff}.\u{1F600}",
        ] {
            let err = verifier.verify(token).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    JwtErrorKind::Malformed
                        | JwtErrorKind::UnsupportedAlgorithm
                        | JwtErrorKind::InvalidSignature
                ),
                "{token:?}: {err:?}"
            );
        }
    }
}
