use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use super::{
    secrets::{Secrets, WebhookSecretSource, WebhookSecrets},
    VerifyIntercomWebhook,
};
use crate::{
    config_error::ConfigError,
    rejection::{JsonRejection, RejectionResponse},
    report::{Reports, DEFAULT_WARN_INTERVAL},
    secret::WebhookSecret,
    signature::SignatureScheme,
};

/// The default limit on a buffered webhook body: 2 MiB, as axum's default
/// body limit.
///
/// Intercom's notifications are far smaller (a conversation with many parts
/// is tens of KiB). A request announcing more is refused with 413 before a
/// byte is read; a body that grows past it while streaming is refused as
/// soon as it does. The memory the layer holds is at most this limit (plus
/// one frame) per request in flight: cap concurrency to cap the total.
pub const DEFAULT_MAX_BODY_SIZE: usize = 2 * 1024 * 1024;

/// The largest [`max_body_size`](VerifyIntercomWebhookLayer::max_body_size):
/// `isize::MAX` bytes, the most one buffer holds. A larger limit is taken
/// as this, so a request announcing more than any buffer holds is refused
/// with 413 before a byte is read, whatever the limit.
pub const LARGEST_MAX_BODY_SIZE: usize = isize::MAX as usize;

/// What the layer does with a `HEAD` request.
///
/// When a webhook URL is saved in the Developer Hub, Intercom sends an
/// unsigned `HEAD` with no body and expects a 2xx; the default answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HeadPolicy {
    /// Answer 200 with an empty body; the inner service is not called.
    #[default]
    Respond,
    /// Pass the request to the inner service, unverified and with an empty
    /// body. It carries no [`VerifiedWebhook`](crate::VerifiedWebhook)
    /// extension.
    Forward,
    /// Refuse with 405 and `Allow: POST`. Intercom cannot validate the URL
    /// then.
    Reject,
}

impl HeadPolicy {
    /// The `Allow` header of a 405: the methods the layer lets through or
    /// answers itself.
    pub(crate) fn allow(self) -> http::HeaderValue {
        match self {
            Self::Respond | Self::Forward => http::HeaderValue::from_static("POST, HEAD"),
            Self::Reject => http::HeaderValue::from_static("POST"),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    /// Fixed, or asked of a source for each request.
    pub(crate) secrets: Secrets,
    pub(crate) max_body_size: usize,
    pub(crate) head: HeadPolicy,
    pub(crate) scheme: SignatureScheme,
    /// Shared by every clone of the layer and its services.
    pub(crate) reports: Arc<Reports>,
    /// Applied to `X-Hub-Signature` requests only: see [`Config::replay`].
    #[cfg(feature = "serde")]
    replay: Option<super::ReplayWindow>,
}

impl Config {
    /// The replay window verified requests are held to: none under
    /// [`SignatureScheme::BodySignature`], whose requests (Canvas Kit,
    /// installation health checks) carry no `first_sent_at` or
    /// `created_at`, so every one would be refused as undated.
    #[cfg(feature = "serde")]
    pub(crate) fn replay(&self) -> Option<&super::ReplayWindow> {
        match self.scheme {
            SignatureScheme::HubSignature => self.replay.as_ref(),
            SignatureScheme::BodySignature => None,
        }
    }

    /// Prepares each secret's key state for the scheme, so that the first
    /// request does not pay for it.
    fn prepare(&self) {
        self.secrets.prepare(self.scheme);
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("Config");
        f.field("secrets", &self.secrets)
            .field("max_body_size", &self.max_body_size)
            .field("head", &self.head)
            .field("scheme", &self.scheme)
            .field("warn_interval", &self.reports.interval());
        #[cfg(feature = "serde")]
        f.field("replay_window", &self.replay);
        f.finish()
    }
}

/// Layer that applies [`VerifyIntercomWebhook`]: only requests signed by
/// Intercom reach the inner service.
///
/// See the [crate documentation](crate) for the behaviour and an example.
#[must_use]
#[derive(Clone)]
pub struct VerifyIntercomWebhookLayer<R = JsonRejection> {
    pub(crate) config: Arc<Config>,
    pub(crate) on_rejection: R,
}

impl VerifyIntercomWebhookLayer {
    /// Verifies requests against one secret, with the defaults: the
    /// `X-Hub-Signature` scheme, [`DEFAULT_MAX_BODY_SIZE`],
    /// [`HeadPolicy::Respond`] and [`JsonRejection`].
    pub fn new(secret: WebhookSecret) -> Self {
        Self::with_secrets(secret, [])
    }

    /// Verifies requests against the current secret and previous ones, for
    /// rotation without downtime.
    ///
    /// A request signed with any of them passes, and its
    /// [`VerifiedWebhook::secret_index`] says which (0 for `current`, 1 for
    /// the first previous one, …), so you can see when an old secret is no
    /// longer used and retire it.
    ///
    /// [`VerifiedWebhook::secret_index`]: crate::VerifiedWebhook::secret_index
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::{VerifyIntercomWebhookLayer, WebhookSecret};
    ///
    /// let current: WebhookSecret = "new-client-secret".parse()?;
    /// let previous: WebhookSecret = "old-client-secret".parse()?;
    /// let layer = VerifyIntercomWebhookLayer::with_secrets(current, [previous]);
    /// # let _ = layer;
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
    pub fn with_secrets(
        current: WebhookSecret,
        previous: impl IntoIterator<Item = WebhookSecret>,
    ) -> Self {
        Self::with_secret_set(Secrets::Fixed(WebhookSecrets::new(current, previous)))
    }

    /// Verifies each request against the secrets `source` gives as the
    /// request comes in, so they can change while the layer serves: a
    /// rotation without a restart.
    ///
    /// The request is verified against that set to the end, whatever the
    /// source gives meanwhile. The feature `reload`'s
    /// `reload::SecretFile<WebhookSecrets>` is a source that follows a file
    /// (see the `reload` module); [`WebhookSecretSource`] shows another.
    /// A layer with fixed secrets ([`new`](Self::new),
    /// [`with_secrets`](Self::with_secrets)) does not pay for this.
    ///
    /// [`WebhookSecretSource`]: super::WebhookSecretSource
    pub fn from_source(source: impl WebhookSecretSource) -> Self {
        Self::with_secret_set(Secrets::Source(Arc::new(source)))
    }

    fn with_secret_set(secrets: Secrets) -> Self {
        Self::from_config(Config {
            secrets,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            head: HeadPolicy::default(),
            scheme: SignatureScheme::default(),
            reports: Arc::new(Reports::new(DEFAULT_WARN_INTERVAL)),
            #[cfg(feature = "serde")]
            replay: None,
        })
    }

    /// Verifies requests against a list of secrets whose length is only
    /// known at run time, the first being the current one (see
    /// [`with_secrets`](Self::with_secrets)).
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::NoSecrets`](crate::ConfigErrorKind::NoSecrets)
    /// for an empty list.
    pub fn try_with_secrets(
        secrets: impl IntoIterator<Item = WebhookSecret>,
    ) -> Result<Self, ConfigError> {
        let secrets = WebhookSecrets::try_from_iter(secrets)?;
        Ok(Self::with_secret_set(Secrets::Fixed(secrets)))
    }

    fn from_config(config: Config) -> Self {
        config.prepare();
        crate::measure::describe();
        Self {
            config: Arc::new(config),
            on_rejection: JsonRejection,
        }
    }
}

impl<R> VerifyIntercomWebhookLayer<R> {
    /// Sets the largest body the layer buffers, in bytes (default
    /// [`DEFAULT_MAX_BODY_SIZE`]; at most [`LARGEST_MAX_BODY_SIZE`], which
    /// a larger limit is taken as). Larger requests are refused with 413;
    /// a limit of 0 refuses every body that is not empty.
    pub fn max_body_size(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.config).max_body_size = limit.min(LARGEST_MAX_BODY_SIZE);
        self
    }

    /// Sets what happens to `HEAD` requests (default
    /// [`HeadPolicy::Respond`]).
    pub fn head(mut self, policy: HeadPolicy) -> Self {
        Arc::make_mut(&mut self.config).head = policy;
        self
    }

    /// Sets the signature to check (default
    /// [`SignatureScheme::HubSignature`]). Use
    /// [`SignatureScheme::BodySignature`] for Canvas Kit requests and app
    /// installation health checks; a [`replay_window`](Self::replay_window)
    /// does not apply to them, so the notification route's layer can be
    /// reused for them as it is.
    pub fn scheme(mut self, scheme: SignatureScheme) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.scheme = scheme;
        config.prepare();
        self
    }

    /// Sets how often, at most, each reason of rejection is reported at
    /// `warn` (default 60 seconds).
    ///
    /// The first rejection of each reason is logged at `warn` at once (a
    /// wrong client secret turns every delivery into a 401: the operator
    /// must see it), later ones at most once per interval with how many
    /// were left out since; every rejection is logged at `debug` under the
    /// target `tower_intercom::rejection`. So forged requests, however
    /// many, cannot flood the logs. Any duration is accepted:
    /// `Duration::MAX` reports each reason at `warn` once only, and zero
    /// reports every rejection at `warn` (no protection against a flood).
    pub fn warn_interval(mut self, interval: Duration) -> Self {
        Arc::make_mut(&mut self.config).reports = Arc::new(Reports::new(interval));
        self
    }

    /// Refuses verified notifications older than `window` (opt-in; off by
    /// default): see [`ReplayWindow`](super::ReplayWindow) for why, and why
    /// it must be generous.
    ///
    /// It applies to notifications, [`SignatureScheme::HubSignature`]
    /// requests, only. Under [`SignatureScheme::BodySignature`] (Canvas Kit
    /// requests, installation health checks: bodies without
    /// `first_sent_at` or `created_at`) the layer ignores it, whether the
    /// scheme was set before or after the window; otherwise it would refuse
    /// every one of them as undated.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn replay_window(mut self, window: super::ReplayWindow) -> Self {
        Arc::make_mut(&mut self.config).replay = Some(window);
        self
    }

    /// Sets the response sent for refused requests (default
    /// [`JsonRejection`]). See [`RejectionResponse`].
    pub fn on_rejection<R2: RejectionResponse>(
        self,
        on_rejection: R2,
    ) -> VerifyIntercomWebhookLayer<R2> {
        VerifyIntercomWebhookLayer {
            config: self.config,
            on_rejection,
        }
    }
}

impl<R> fmt::Debug for VerifyIntercomWebhookLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyIntercomWebhookLayer")
            .field("config", &self.config)
            .field("on_rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R: Clone> Layer<S> for VerifyIntercomWebhookLayer<R> {
    type Service = VerifyIntercomWebhook<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyIntercomWebhook {
            inner,
            config: self.config.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}
