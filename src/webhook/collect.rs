//! The body-collecting HMAC engine of the verifying layer.

use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::{
    layer::Config,
    secrets::{Secrets, WebhookSecrets},
    VerifiedWebhook, WebhookBody,
};
use crate::{
    mac::{Digest, Mac},
    rejection::RejectionKind,
    secret::WebhookSecret,
};

/// How far ahead of the bytes received the buffer of a body in several
/// frames may grow: a notification of up to 64 KiB (most are far smaller)
/// is copied into one allocation.
const GROWTH_STEP: usize = 64 * 1024;

/// One pass over the body: each frame is fed to the HMAC of the current
/// secret as it arrives and kept, up to the limit.
///
/// The buffer follows the bytes that arrived: it holds them plus at most
/// [`GROWTH_STEP`], never more than the announced length (while the body
/// keeps to it) nor the limit, whatever `Content-Length` says. An
/// announced length is a claim that costs the client nothing; reserving
/// it would let slow clients hold the limit's worth of memory each for a
/// few bytes sent.
pub(crate) struct Collector {
    config: Arc<Config>,
    /// The secrets a source gave when the request came in, kept to the
    /// end; `None` for the layer's fixed secrets.
    loaded: Option<Arc<WebhookSecrets>>,
    expected: Digest,
    /// Taken when the body is complete.
    mac: Option<Mac>,
    /// The first data frame, kept as is: a one-frame body is never copied.
    first: Option<Bytes>,
    /// Every frame, once there is more than one. A `Vec` rather than a
    /// `BytesMut`: it grows exactly as asked (`reserve_exact`), so the
    /// limit bounds the memory, not only the bytes kept.
    joined: Vec<u8>,
    /// The body's announced length, at most the limit (0 when unknown).
    announced: usize,
    len: usize,
}

impl Collector {
    /// A collector for a body that announced `announced` bytes (0 when it
    /// announced nothing), at most the limit.
    pub(crate) fn new(config: Arc<Config>, expected: Digest, announced: usize) -> Self {
        let (mac, loaded) = match &config.secrets {
            Secrets::Fixed(secrets) => (secrets.current().mac(config.scheme.hash()), None),
            Secrets::Source(source) => {
                let secrets = source.secrets();
                (secrets.current().mac(config.scheme.hash()), Some(secrets))
            }
        };
        Self {
            config,
            loaded,
            expected,
            mac: Some(mac),
            first: None,
            joined: Vec::new(),
            announced,
            len: 0,
        }
    }

    /// The layer's configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The previous secrets of the set this request is verified against.
    fn previous(&self) -> &[WebhookSecret] {
        match (&self.loaded, &self.config.secrets) {
            (Some(loaded), _) => loaded.previous(),
            (None, Secrets::Fixed(fixed)) => fixed.previous(),
            // Not built so by `new`: no previous secret to try.
            (None, Secrets::Source(_)) => &[],
        }
    }

    /// Feeds one frame: data to the HMAC and the buffer, up to the limit;
    /// anything else (trailers) is dropped.
    pub(crate) fn push<D: Buf>(&mut self, frame: http_body::Frame<D>) -> Result<(), RejectionKind> {
        // Trailers are not covered by the signature: they are dropped, so
        // nothing unsigned reaches the inner service with the body.
        let Ok(mut data) = frame.into_data() else {
            return Ok(());
        };
        let n = data.remaining();
        if n == 0 {
            return Ok(());
        }
        self.len = self
            .len
            .checked_add(n)
            .filter(|&len| len <= self.config.max_body_size)
            .ok_or(RejectionKind::PayloadTooLarge)?;
        // Zero-copy for `Bytes` frames; one copy for other `Buf`s.
        let data = data.copy_to_bytes(n);
        if let Some(mac) = &mut self.mac {
            mac.update(&data);
        }
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(data);
        } else {
            if let Some(first) = self.first.take() {
                self.append(&first);
            }
            self.append(&data);
        }
        Ok(())
    }

    /// Appends `data` to the buffer, growing it to what has arrived plus
    /// at most [`GROWTH_STEP`], and never past the announced length (while
    /// the body keeps to it) or the limit. `self.len` counts `data`
    /// already, and is at most the limit.
    fn append(&mut self, data: &[u8]) {
        let needed = self.joined.len() + data.len();
        if needed > self.joined.capacity() {
            let ceiling = if self.len <= self.announced {
                self.announced
            } else {
                self.config.max_body_size
            };
            let target = needed.saturating_add(GROWTH_STEP).min(ceiling).max(needed);
            self.joined.reserve_exact(target - self.joined.len());
        }
        self.joined.extend_from_slice(data);
    }

    /// The body and which secret signed it, or [`RejectionKind::InvalidSignature`].
    pub(crate) fn finish(&mut self) -> Result<(WebhookBody, VerifiedWebhook), RejectionKind> {
        let data = match self.first.take() {
            Some(first) => first,
            None => Bytes::from(std::mem::take(&mut self.joined)),
        };
        let current = self.mac.take().map(Mac::finalize);
        let matched = if current.is_some_and(|digest| self.expected.matches(&digest)) {
            Some(0)
        } else {
            // Previous secrets, during a rotation: the body is complete now.
            self.previous()
                .iter()
                .position(|secret| {
                    let mut mac = secret.mac(self.config.scheme.hash());
                    mac.update(&data);
                    self.expected.matches(&mac.finalize())
                })
                .map(|index| index + 1)
        };
        #[cfg(feature = "serde")]
        if let (Some(_), Some(window)) = (matched, self.config.replay()) {
            if window.is_expired(super::ReplayWindow::sent_at(&data)) {
                return Err(RejectionKind::Expired);
            }
        }
        match matched {
            Some(secret_index) => Ok((
                WebhookBody::new(data),
                VerifiedWebhook::new(secret_index, self.config.scheme),
            )),
            None => Err(RejectionKind::InvalidSignature),
        }
    }
}
