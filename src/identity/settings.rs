//! What a page needs to boot the Messenger for a signed-in user.

use std::fmt;

use serde::Serialize;

use super::{user_hash, IdentitySecret, JwtError, MessengerJwt};

/// The Messenger settings of a signed-in user: `app_id`, `user_id`,
/// `user_hash` and `intercom_user_jwt`, ready to be sent to the browser as
/// JSON and used as `window.intercomSettings`.
///
/// It carries both proofs of identity: the JWT for Messenger Security and
/// the `user_hash` for workspaces still on Identity Verification (or
/// migrating from it). Both are computed from the token's `user_id` with
/// the same secret.
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
/// let settings = MessengerSettings::new(
///     "abc123de",
///     &secret,
///     &MessengerJwt::new(user_id).email("ada@example.com"),
/// )?;
///
/// let json = serde_json::to_value(&settings)?;
/// assert_eq!(json["app_id"], "abc123de");
/// assert_eq!(json["user_id"], "user-42");
/// assert_eq!(json["user_hash"], tower_intercom::identity::user_hash(&secret, "user-42"));
/// assert_eq!(json["intercom_user_jwt"], settings.intercom_user_jwt());
/// assert!(!format!("{settings:?}").contains(settings.intercom_user_jwt()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct MessengerSettings {
    app_id: String,
    user_id: String,
    user_hash: String,
    intercom_user_jwt: String,
}

impl MessengerSettings {
    /// Signs `jwt` with `secret` and computes the `user_hash` of its
    /// `user_id` with the same secret.
    ///
    /// # Errors
    ///
    /// The errors of [`MessengerJwt::sign`].
    pub fn new(
        app_id: impl Into<String>,
        secret: &IdentitySecret,
        jwt: &MessengerJwt,
    ) -> Result<Self, JwtError> {
        let intercom_user_jwt = jwt.sign(secret)?;
        Ok(Self {
            app_id: app_id.into(),
            user_id: jwt.user_id().to_owned(),
            user_hash: user_hash(secret, jwt.user_id()),
            intercom_user_jwt,
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

    /// The Identity Verification hash of [`user_id`](Self::user_id).
    pub fn user_hash(&self) -> &str {
        &self.user_hash
    }

    /// The Messenger Security JWT.
    pub fn intercom_user_jwt(&self) -> &str {
        &self.intercom_user_jwt
    }
}

impl fmt::Debug for MessengerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessengerSettings")
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("user_hash", &"REDACTED")
            .field("intercom_user_jwt", &"REDACTED")
            .finish()
    }
}
