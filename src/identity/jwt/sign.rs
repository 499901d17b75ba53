//! [`MessengerJwt`]: the claims of one signed-in user, signed into a token.

use std::{
    fmt::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::Mac;
use serde_json::{Map, Value};

use super::{JwtError, HEADER, MAX_EXP};
use crate::identity::IdentitySecret;

/// Claims with a meaning of their own, set by their own methods.
const RESERVED_CLAIMS: [&str; 3] = ["user_id", "email", "exp"];

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
    /// [`JwtErrorKind::InvalidClaims`](super::JwtErrorKind::InvalidClaims)
    /// when the `user_id` is empty or blank, the email is empty, an
    /// [`attribute`](Self::attribute) uses the name `user_id`, `email` or
    /// `exp`, or the expiry is before 1970 or after the year 9999.
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
