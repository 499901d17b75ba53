//! TLS to the server with rustls (the `ring` provider, as the `client`
//! feature), for `sslmode=require`: the certificate is verified against the
//! webpki roots and the roots given to the options, host name included.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, ServerName},
    ClientConfig, RootCertStore,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::{
    tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream},
    Socket,
};

use super::StoreError;

/// Makes a TLS connector for each connection.
#[derive(Clone)]
pub(super) struct Rustls {
    config: Arc<ClientConfig>,
}

impl Rustls {
    /// Verifies servers against the webpki roots and the certificates in
    /// `extra_roots_pem` (PEM, any number).
    pub(super) fn new(extra_roots_pem: &[u8]) -> Result<Self, StoreError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if !extra_roots_pem.is_empty() {
            let mut added = 0;
            for certificate in CertificateDer::pem_slice_iter(extra_roots_pem) {
                let certificate = certificate.map_err(|error| {
                    StoreError::unavailable(format!(
                        "the Postgres root certificates are not valid PEM: {error}"
                    ))
                })?;
                roots.add(certificate).map_err(|error| {
                    StoreError::unavailable(format!(
                        "a Postgres root certificate is not usable: {error}"
                    ))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(StoreError::unavailable(
                    "the Postgres root certificates hold no PEM certificate",
                ));
            }
        }
        // As the `client` feature: rustls 0.23.48 deprecates its `ring`
        // provider for lacking post-quantum key exchange; aws-lc-rs needs
        // cmake to build. ring offers X25519, P-256 and P-384.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| StoreError::unavailable(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

impl MakeTlsConnect<Socket> for Rustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
        })
    }
}

/// The TLS handshake of one connection.
pub(super) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(stream))
        })
    }
}

/// A connection over TLS.
pub(super) struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl TlsStream for RustlsStream {
    /// None: SCRAM without channel binding (`tls-server-end-point` would
    /// need the hash algorithm of the certificate's signature).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
