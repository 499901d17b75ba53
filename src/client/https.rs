//! A ready-made HTTPS client to put the layer on.

use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

use super::{IntercomClient, IntercomClientLayer, TokenSource};
use crate::config_error::{ConfigError, ConfigErrorKind};

/// hyper-util's pooled HTTP client over rustls, sending bodies of type `B`:
/// what [`https_client`] builds.
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// hyper-util's pooled client (HTTP/1.1 and HTTP/2 by ALPN) over rustls
/// with the `ring` provider and Mozilla's roots (webpki-roots), so it
/// builds with a C compiler alone and trusts the same authorities on every
/// machine. It speaks plain `http://` too, which the client layer allows
/// for loopback API bases only.
///
/// Needs a Tokio runtime when requests are sent.
///
/// # Errors
///
/// [`ConfigErrorKind::Tls`] if rustls refuses its own defaults (it does
/// not with the `ring` provider); reported rather than a panic.
pub fn https_client<B>() -> Result<HttpsClient<B>, ConfigError>
where
    B: Body + Send,
    B::Data: Send,
{
    // rustls 0.23.48 deprecates its `ring` provider for lacking
    // post-quantum key exchange; the alternative, aws-lc-rs, needs cmake
    // (and nasm on some targets) to build. ring still offers the classical
    // key exchanges (X25519, P-256, P-384).
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let connector = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|_| ConfigError::new(ConfigErrorKind::Tls))?
        .https_or_http()
        .enable_all_versions()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

impl<B> IntercomClient<HttpsClient<B>>
where
    B: Body + Send,
    B::Data: Send,
{
    /// A client of Intercom's US host over [`https_client`], with the
    /// token of `token` and the default settings; for other settings, put
    /// an [`IntercomClientLayer`] on [`https_client`] (or use
    /// [`IntercomClientLayer::https`]).
    ///
    /// # Errors
    ///
    /// As [`https_client`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use http::Request;
    /// use http_body_util::Full;
    /// use tower::ServiceExt;
    /// use tower_intercom::{
    ///     client::{HttpsClient, IntercomClient},
    ///     AccessToken,
    /// };
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let token = AccessToken::from_env("INTERCOM_ACCESS_TOKEN")?;
    /// // The client sends bodies of type `Full<Bytes>`.
    /// let client: IntercomClient<HttpsClient<Full<Bytes>>> = IntercomClient::https(token)?;
    /// let me = client.oneshot(Request::get("/me").body(Full::default())?).await?;
    /// println!("{}", me.status());
    /// # Ok(())
    /// # }
    /// ```
    pub fn https(token: impl TokenSource) -> Result<Self, ConfigError> {
        IntercomClientLayer::new(token).https()
    }
}

impl IntercomClientLayer {
    /// This layer over a new [`https_client`].
    ///
    /// # Errors
    ///
    /// As [`https_client`].
    pub fn https<B>(self) -> Result<IntercomClient<HttpsClient<B>>, ConfigError>
    where
        B: Body + Send,
        B::Data: Send,
    {
        Ok(tower_layer::Layer::layer(&self, https_client()?))
    }
}
