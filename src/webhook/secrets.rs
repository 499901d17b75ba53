//! The set of client secrets a verifying layer accepts, and where the layer
//! takes it from for each request.

use std::{fmt, sync::Arc};

use crate::{
    config_error::{ConfigError, ConfigErrorKind},
    secret::WebhookSecret,
    signature::SignatureScheme,
};

/// The client secrets a [`VerifyIntercomWebhookLayer`] accepts: the
/// current one, and during a rotation the previous ones, newest first.
///
/// A request signed with any of them passes; its
/// [`VerifiedWebhook::secret_index`](crate::VerifiedWebhook::secret_index)
/// is the position of the secret that matched (0 for the current one).
/// `Debug` shows how many secrets there are, never a secret.
///
/// [`VerifyIntercomWebhookLayer`]: crate::VerifyIntercomWebhookLayer
///
/// # Example
///
/// ```
/// use tower_intercom::{WebhookSecret, WebhookSecrets};
///
/// let current: WebhookSecret = "new-client-secret".parse()?;
/// let previous: WebhookSecret = "old-client-secret".parse()?;
/// let secrets = WebhookSecrets::new(current, [previous]);
/// assert_eq!(secrets.previous().len(), 1);
/// assert_eq!(
///     format!("{secrets:?}"),
///     "WebhookSecrets { current: WebhookSecret(REDACTED), previous: 1 }"
/// );
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecrets {
    /// Never empty; the first is the current secret.
    secrets: Vec<WebhookSecret>,
}

impl WebhookSecrets {
    /// The current secret and the previous ones still accepted, newest
    /// first.
    pub fn new(current: WebhookSecret, previous: impl IntoIterator<Item = WebhookSecret>) -> Self {
        let mut secrets = vec![current];
        secrets.extend(previous);
        Self { secrets }
    }

    /// A set from a list whose length is only known at run time, the first
    /// being the current secret.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::NoSecrets`] for an empty list.
    pub fn try_from_iter(
        secrets: impl IntoIterator<Item = WebhookSecret>,
    ) -> Result<Self, ConfigError> {
        let mut secrets = secrets.into_iter();
        let current = secrets
            .next()
            .ok_or(ConfigError::new(ConfigErrorKind::NoSecrets))?;
        Ok(Self::new(current, secrets))
    }

    /// The secret Intercom signs with now: tried first, while the body is
    /// read.
    pub fn current(&self) -> &WebhookSecret {
        &self.secrets[0]
    }

    /// The secrets still accepted during a rotation, newest first.
    pub fn previous(&self) -> &[WebhookSecret] {
        &self.secrets[1..]
    }

    /// Prepares each secret's key state for `scheme`, so that no request
    /// pays for it.
    pub(crate) fn prepare(&self, scheme: SignatureScheme) {
        for secret in &self.secrets {
            drop(secret.mac(scheme.hash()));
        }
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("current", self.current())
            .field("previous", &self.previous().len())
            .finish()
    }
}

/// Where a [`VerifyIntercomWebhookLayer`](crate::VerifyIntercomWebhookLayer)
/// built with [`from_source`](crate::VerifyIntercomWebhookLayer::from_source)
/// takes its secrets from: asked once per request, so the secrets can
/// change while the layer serves.
///
/// [`secrets`](Self::secrets) is called as each request comes in, and the
/// request is verified against that set to the end, whatever changes
/// meanwhile. It must be cheap and must not block: hand out a clone of an
/// `Arc` that another task replaces. The feature `reload`'s
/// `reload::SecretFile<WebhookSecrets>` is such a source, reading the set
/// from a file and reloading it when the file changes.
///
/// # Example
///
/// ```
/// use std::sync::{Arc, RwLock};
///
/// use tower_intercom::{webhook::WebhookSecretSource, VerifyIntercomWebhookLayer, WebhookSecrets};
///
/// /// Secrets that an admin endpoint of the application replaces.
/// struct Replaceable(RwLock<Arc<WebhookSecrets>>);
///
/// impl WebhookSecretSource for Replaceable {
///     fn secrets(&self) -> Arc<WebhookSecrets> {
///         // A poisoned lock still holds a valid set.
///         self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
///     }
/// }
///
/// let secrets = WebhookSecrets::new("client-secret".parse()?, []);
/// let source = Arc::new(Replaceable(RwLock::new(Arc::new(secrets))));
/// let layer = VerifyIntercomWebhookLayer::from_source(source);
/// # let _ = layer;
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
pub trait WebhookSecretSource: Send + Sync + 'static {
    /// The secrets to verify the request that just came in with.
    fn secrets(&self) -> Arc<WebhookSecrets>;
}

impl<S: WebhookSecretSource + ?Sized> WebhookSecretSource for Arc<S> {
    fn secrets(&self) -> Arc<WebhookSecrets> {
        (**self).secrets()
    }
}

/// Where a layer's secrets come from: fixed when it was built, or asked of
/// a source for each request.
#[derive(Clone)]
pub(crate) enum Secrets {
    Fixed(WebhookSecrets),
    Source(Arc<dyn WebhookSecretSource>),
}

impl Secrets {
    /// Prepares the key states of the secrets known now for `scheme`.
    pub(crate) fn prepare(&self, scheme: SignatureScheme) {
        match self {
            Self::Fixed(secrets) => secrets.prepare(scheme),
            Self::Source(source) => source.secrets().prepare(scheme),
        }
    }
}

/// How many fixed secrets, or that they come from a source.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(secrets) => write!(f, "{}", 1 + secrets.previous().len()),
            Self::Source(_) => f.write_str("WebhookSecretSource"),
        }
    }
}
