//! What a page needs to boot the Messenger for a signed-in user.

use std::fmt;

use serde::Serialize;

use super::{user_hash, IdentitySecret, JwtError, MessengerJwt, UserHashError};

/// The Messenger settings of a signed-in user, ready to be sent to the
/// browser as JSON and used as `window.intercomSettings`: `app_id`,
/// `user_id`, and one proof of identity, either `intercom_user_jwt` or
/// `user_hash`, never both.
///
/// Choose by what the workspace uses (Settings > Workspace > Security >
/// Messenger in Intercom):
///
/// - [`with_jwt`](Self::with_jwt), **Messenger Security**: an HS256 JWT
///   that expires and signs the user's attributes (email, name, custom
///   attributes) along with the `user_id`. Intercom recommends it and has
///   deprecated the `user_hash`.
/// - [`with_user_hash`](Self::with_user_hash), **Identity Verification**
///   (legacy): the `user_hash` of the `user_id`, which never expires and
///   signs nothing else.
///
/// Why not both: the two are made with the same secret, and sending both
/// gives the browser a `user_hash` it does not need. [`user_hash`] refuses
/// identifiers that could turn a hash into a JWT signature; keeping the
/// `user_hash` out of JWT settings altogether leaves a workspace on
/// Messenger Security with no `user_hash` to misuse. The field that is not
/// set is left out of the JSON.
///
/// Serve it only to the user it was made for, over HTTPS, on a response
/// that is not cached (`Cache-Control: no-store`). `Debug` leaves out the
/// hash and the token.
///
/// # Example
///
/// An endpoint that answers the signed-in user's settings: the caller has
/// established who the user is (here `user_id`); an anonymous request must
/// get none of this.
///
/// ```
/// use tower_intercom::identity::{IdentitySecret, MessengerJwt, MessengerSettings};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let user_id = "user-42"; // from your session, never from the request
///
/// let settings = MessengerSettings::with_jwt(
///     "abc123de",
///     &secret,
///     &MessengerJwt::new(user_id).email("ada@example.com"),
/// )?;
///
/// let json = serde_json::to_value(&settings)?;
/// assert_eq!(json["app_id"], "abc123de");
/// assert_eq!(json["user_id"], "user-42");
/// assert_eq!(json["intercom_user_jwt"], settings.intercom_user_jwt().unwrap());
/// assert!(json.get("user_hash").is_none());
/// assert!(!format!("{settings:?}").contains(settings.intercom_user_jwt().unwrap()));
///
/// // A workspace still on Identity Verification:
/// let legacy = MessengerSettings::with_user_hash("abc123de", &secret, user_id)?;
/// let json = serde_json::to_value(&legacy)?;
/// assert_eq!(json["user_hash"], tower_intercom::identity::user_hash(&secret, "user-42")?);
/// assert!(json.get("intercom_user_jwt").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct MessengerSettings {
    app_id: String,
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intercom_user_jwt: Option<String>,
}

impl MessengerSettings {
    /// Settings for Messenger Security: signs `jwt` with `secret`. The
    /// `user_id` is the token's; there is no `user_hash`.
    ///
    /// # Errors
    ///
    /// The errors of [`MessengerJwt::sign`].
    pub fn with_jwt(
        app_id: impl Into<String>,
        secret: &IdentitySecret,
        jwt: &MessengerJwt,
    ) -> Result<Self, JwtError> {
        let intercom_user_jwt = jwt.sign(secret)?;
        Ok(Self {
            app_id: app_id.into(),
            user_id: jwt.user_id().to_owned(),
            user_hash: None,
            intercom_user_jwt: Some(intercom_user_jwt),
        })
    }

    /// Settings for Identity Verification (legacy): the [`user_hash`] of
    /// `user_id` under `secret`; there is no JWT.
    ///
    /// # Errors
    ///
    /// The errors of [`user_hash`]: a `user_id` that could be read as the
    /// start of a JWT is refused.
    pub fn with_user_hash(
        app_id: impl Into<String>,
        secret: &IdentitySecret,
        user_id: impl Into<String>,
    ) -> Result<Self, UserHashError> {
        let user_id = user_id.into();
        let user_hash = user_hash(secret, &user_id)?;
        Ok(Self {
            app_id: app_id.into(),
            user_id,
            user_hash: Some(user_hash),
            intercom_user_jwt: None,
        })
    }

    /// The Intercom app (workspace) id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The signed-in user's `user_id`.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The Identity Verification hash of [`user_id`](Self::user_id), for
    /// settings made [`with_user_hash`](Self::with_user_hash).
    pub fn user_hash(&self) -> Option<&str> {
        self.user_hash.as_deref()
    }

    /// The Messenger Security JWT, for settings made
    /// [`with_jwt`](Self::with_jwt).
    pub fn intercom_user_jwt(&self) -> Option<&str> {
        self.intercom_user_jwt.as_deref()
    }
}

impl fmt::Debug for MessengerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| "REDACTED");
        f.debug_struct("MessengerSettings")
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("user_hash", &redacted(&self.user_hash))
            .field("intercom_user_jwt", &redacted(&self.intercom_user_jwt))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserHashErrorKind;

    #[test]
    fn carries_one_proof_and_serializes_only_it() {
        let secret: IdentitySecret = "settings-test-secret".parse().unwrap();
        let jwt = MessengerSettings::with_jwt("app", &secret, &MessengerJwt::new("u-1")).unwrap();
        assert_eq!(jwt.user_hash(), None);
        let json = serde_json::to_value(&jwt).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&"intercom_user_jwt"));

        let hash = MessengerSettings::with_user_hash("app", &secret, "u-1").unwrap();
        assert_eq!(hash.intercom_user_jwt(), None);
        assert_eq!(
            hash.user_hash(),
            Some(user_hash(&secret, "u-1").unwrap().as_str())
        );
        let json = serde_json::to_value(&hash).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 3);
        assert!(json.get("intercom_user_jwt").is_none());

        let debug = format!("{jwt:?} {hash:?}");
        assert!(!debug.contains(hash.user_hash().unwrap()));
        assert!(!debug.contains(jwt.intercom_user_jwt().unwrap()));
        assert!(debug.contains("REDACTED"));
    }

    #[test]
    fn refuses_a_user_id_whose_hash_would_sign_a_jwt() {
        let secret: IdentitySecret = "settings-test-secret".parse().unwrap();
        let err = MessengerSettings::with_user_hash("app", &secret, "eyJhbGciOiJIUzI1NiJ9.e30")
            .unwrap_err();
        assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);
    }
}
