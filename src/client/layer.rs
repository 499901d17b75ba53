use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use super::{
    measure, rate_limit::RateLimiter, ApiBase, IntercomClient, IntercomVersion, TokenSource,
};
use crate::access_token::AccessToken;

/// How long a request may be held for Intercom's rate limit by default:
/// 15 s, a 10-second window and its rounding with room to spare.
pub const DEFAULT_MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15);

/// The longest wait [`IntercomClientLayer::max_rate_limit_wait`] accepts:
/// one hour.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// How many times a request refused with 429 is sent again by default.
pub const DEFAULT_RATE_LIMIT_RETRIES: u32 = 3;

/// The most retries either setting accepts.
pub const MAX_RETRIES: u32 = 10;

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) base: ApiBase,
    pub(crate) version: IntercomVersion,
    pub(crate) max_wait: Duration,
    pub(crate) rate_limit_retries: u32,
    pub(crate) error_retries: u32,
    /// The client checks a token that is not in use yet
    /// ([`IntercomClientLayer::check_token`]): a refusal is the check's
    /// answer, not counted as a refusal of the token in use.
    pub(crate) candidate: bool,
}

/// What the requests of the services a layer made share: one reference
/// count per request.
pub(crate) struct Shared {
    pub(crate) token: Arc<dyn TokenSource>,
    pub(crate) config: Config,
    pub(crate) limiter: RateLimiter,
}

impl Config {
    /// Whether a request may be sent more than once, so that a copy of it
    /// must be kept.
    pub(crate) fn retries(&self) -> bool {
        self.rate_limit_retries > 0 || self.error_retries > 0
    }
}

/// Layer that applies [`IntercomClient`]: Intercom's REST API with the
/// access token of a [`TokenSource`], only ever sent to the API base.
///
/// Every service this layer makes, and every clone of them, shares one
/// rate-limit budget: build one layer per app (per token) and clone what
/// it makes. See the [module documentation](super) for what the client
/// does and an example.
#[must_use]
#[derive(Clone)]
pub struct IntercomClientLayer {
    token: Arc<dyn TokenSource>,
    config: Config,
    limiter: RateLimiter,
}

impl IntercomClientLayer {
    /// A client of the US host (`https://api.intercom.io`) sending the
    /// token of `token` (an [`AccessToken`](crate::AccessToken), or a
    /// source that reloads it), with [`DEFAULT_INTERCOM_VERSION`], a wait
    /// of at most [`DEFAULT_MAX_RATE_LIMIT_WAIT`],
    /// [`DEFAULT_RATE_LIMIT_RETRIES`] retries of a 429 and none of other
    /// failures.
    ///
    /// [`DEFAULT_INTERCOM_VERSION`]: super::DEFAULT_INTERCOM_VERSION
    pub fn new(token: impl TokenSource) -> Self {
        measure::register();
        Self {
            token: Arc::new(token),
            config: Config {
                base: ApiBase::default(),
                version: IntercomVersion::default(),
                max_wait: DEFAULT_MAX_RATE_LIMIT_WAIT,
                rate_limit_retries: DEFAULT_RATE_LIMIT_RETRIES,
                error_retries: 0,
                candidate: false,
            },
            limiter: RateLimiter::default(),
        }
    }

    /// Where relative request URIs go, and the only origin the token is
    /// sent to: a region's host, or a URL for a proxy or a local fake API
    /// (see [`ApiBase`]).
    ///
    /// ```
    /// use tower_intercom::{client::{ApiBase, IntercomClientLayer, Region}, AccessToken};
    ///
    /// let token: AccessToken = "dG9rOmV4YW1wbGU=".parse()?;
    /// let layer = IntercomClientLayer::new(token).api_base(ApiBase::region(Region::Eu));
    /// # let _ = layer;
    /// # Ok::<(), tower_intercom::SecretError>(())
    /// ```
    pub fn api_base(mut self, base: ApiBase) -> Self {
        self.config.base = base;
        self
    }

    /// The `Intercom-Version` sent with requests that do not set one.
    pub fn intercom_version(mut self, version: IntercomVersion) -> Self {
        self.config.version = version;
        self
    }

    /// The longest a request is held for the rate limit, capped at
    /// [`MAX_RATE_LIMIT_WAIT`].
    ///
    /// Pacing holds a request until the window's `X-RateLimit-Reset`, but
    /// never longer than this. A 429 whose `Reset` is further away is not
    /// retried: the request fails with
    /// [`ErrorKind::RateLimited`](super::ErrorKind::RateLimited) at once.
    /// Zero turns the waiting off (requests are never held, a 429 is
    /// retried only when its window has already ended).
    pub fn max_rate_limit_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait = wait.min(MAX_RATE_LIMIT_WAIT);
        self
    }

    /// How many times a request refused with 429 is sent again, after the
    /// window's reset (at most [`MAX_RETRIES`]; 0 for never).
    ///
    /// Intercom does not act on a request it refuses with 429, so sending
    /// it again is safe whatever its method.
    pub fn rate_limit_retries(mut self, retries: u32) -> Self {
        self.config.rate_limit_retries = retries.min(MAX_RETRIES);
        self
    }

    /// Opts in to sending idempotent requests (`GET`, `HEAD`, `OPTIONS`,
    /// `TRACE`, `PUT`, `DELETE`) again when the HTTP client fails or
    /// Intercom answers 5xx, up to `retries` times (at most
    /// [`MAX_RETRIES`]; 0, the default, for never), after 100 ms, 200 ms,
    /// 400 ms … (at most 5 s).
    ///
    /// Other requests (`POST`, `PATCH`: a reply, a new conversation) are
    /// never sent again after such a failure: Intercom may have acted on
    /// them.
    pub fn retry_idempotent_errors(mut self, retries: u32) -> Self {
        self.config.error_retries = retries.min(MAX_RETRIES);
        self
    }

    /// The same settings and the same rate-limit budget, with the token of
    /// another source: to check a new token with the API before it is put
    /// in use, for instance.
    pub fn with_token_source(mut self, token: impl TokenSource) -> Self {
        self.token = Arc::new(token);
        self
    }

    /// This layer sending `candidate`, a token not in use yet: see
    /// [`check_token`](Self::check_token).
    pub(crate) fn for_candidate(&self, candidate: &AccessToken) -> Self {
        let mut layer = self.clone().with_token_source(candidate.clone());
        layer.config.candidate = true;
        layer
    }
}

impl<S> Layer<S> for IntercomClientLayer {
    type Service = IntercomClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IntercomClient {
            inner,
            shared: Arc::new(Shared {
                token: self.token.clone(),
                config: self.config.clone(),
                limiter: self.limiter.clone(),
            }),
            pacer: Default::default(),
            permit: None,
        }
    }
}

impl fmt::Debug for IntercomClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntercomClientLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
