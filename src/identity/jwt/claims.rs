//! [`MessengerClaims`]: what a verified token says.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::{JwtError, MAX_EXP};

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
    /// The claims of a token whose signature and times were checked.
    pub(super) fn from_map(mut claims: Map<String, Value>) -> Result<Self, JwtError> {
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
