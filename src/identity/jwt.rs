//! Messenger Security JWTs: issuing them, and checking them.

use std::{
    error::Error,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{errors::ErrorKind, Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::IdentitySecret;

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

/// The claims as they are signed: `user_id`, `email`, `exp`, then the
/// attributes.
#[derive(Serialize)]
struct SignedClaims<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    exp: u64,
    #[serde(flatten)]
    attributes: &'a Map<String, Value>,
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
        let claims = SignedClaims {
            user_id: &self.user_id,
            email: self.email.as_deref(),
            exp: self.exp()?,
            attributes: &self.attributes,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            secret.encoding_key(),
        )
        .map_err(|_| JwtError::new(JwtErrorKind::Signing))
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

/// Checks Messenger Security JWTs: for tests, and for services that
/// receive such tokens back.
///
/// A token passes only when all of these hold:
///
/// - its header says `alg: HS256` (`none` and every other algorithm are
///   refused, whatever the signature);
/// - its signature is the HS256 of its header and payload under the
///   verifier's secret;
/// - it has an `exp` claim, not in the past (give or take the
///   [leeway](Self::leeway)), and no `nbf` claim in the future;
/// - it has a non-empty string `user_id`, and `email`, when present, is a
///   string.
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
    validation: Validation,
}

impl MessengerJwtVerifier {
    /// The clock skew tolerated on `exp` and `nbf` unless changed: 60
    /// seconds.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: IdentitySecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = Self::DEFAULT_LEEWAY.as_secs();
        Self { secret, validation }
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
        self.validation.leeway = leeway.min(MAX_LEEWAY).as_secs();
        self
    }

    /// Checks `token` and returns its claims.
    ///
    /// # Errors
    ///
    /// A [`JwtError`] whose [`kind`](JwtError::kind) tells why; see
    /// [`JwtErrorKind`]. The error never contains the token or its claims.
    pub fn verify(&self, token: &str) -> Result<MessengerClaims, JwtError> {
        check_algorithm(token)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(
            token,
            self.secret.decoding_key(),
            &self.validation,
        )
        .map_err(|err| JwtError::from_jsonwebtoken(err.kind()))?;
        MessengerClaims::from_map(data.claims)
    }
}

/// Refuses a token whose header names another algorithm than HS256 (`none`
/// included), with an error that says so rather than "malformed".
fn check_algorithm(token: &str) -> Result<(), JwtError> {
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: Value,
    }
    let malformed = || JwtError::new(JwtErrorKind::Malformed);
    let header = token.split('.').next().ok_or_else(malformed)?;
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let header: AlgOnly = serde_json::from_slice(&header).map_err(|_| malformed())?;
    if header.alg != "HS256" {
        return Err(JwtError::new(JwtErrorKind::UnsupportedAlgorithm));
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
    /// Not a JWT: not three dot-separated base64url parts of JSON.
    Malformed,
    /// A claim is missing or wrong: no `user_id`, no `exp`, a claim of the
    /// wrong type, an `aud` claim; or, when signing, an empty `user_id`, a
    /// reserved attribute name or an expiry out of range.
    InvalidClaims,
    /// The JWT library could not sign the token.
    Signing,
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

    fn from_jsonwebtoken(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidSignature => Self::new(JwtErrorKind::InvalidSignature),
            ErrorKind::ExpiredSignature => Self::new(JwtErrorKind::Expired),
            ErrorKind::ImmatureSignature => Self::new(JwtErrorKind::NotYetValid),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm => Self::new(JwtErrorKind::UnsupportedAlgorithm),
            ErrorKind::MissingRequiredClaim(_) => Self::claims("`exp` is missing"),
            ErrorKind::InvalidClaimFormat(_) => Self::claims("`exp` or `nbf` is not a number"),
            ErrorKind::InvalidAudience => Self::claims("the token is meant for another audience"),
            ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                Self::new(JwtErrorKind::InvalidClaims)
            }
            _ => Self::new(JwtErrorKind::Malformed),
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
            JwtErrorKind::Signing => "the token could not be signed",
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
