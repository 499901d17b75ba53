//! The body-collecting HMAC engine of the verifying layer.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use super::{layer::Config, VerifiedWebhook, WebhookBody};
use crate::{
    rejection::RejectionKind,
    signature::{Digest, Mac},
};

/// One pass over the body: each frame is fed to the HMAC of the current
/// secret as it arrives and kept, up to the limit.
pub(crate) struct Collector {
    config: Arc<Config>,
    expected: Digest,
    /// Taken when the body is complete.
    mac: Option<Mac>,
    /// The first data frame, kept as is: a one-frame body is never copied.
    first: Option<Bytes>,
    /// Every frame, once there is more than one.
    joined: BytesMut,
    /// Bytes to reserve when a second frame arrives.
    capacity: usize,
    len: usize,
}

impl Collector {
    pub(crate) fn new(config: Arc<Config>, expected: Digest, capacity: usize) -> Self {
        let mac = config.current().mac(config.scheme);
        Self {
            config,
            expected,
            mac: Some(mac),
            first: None,
            joined: BytesMut::new(),
            capacity,
            len: 0,
        }
    }

    /// The layer's configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
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
                self.joined.reserve(self.capacity.max(self.len));
                self.joined.extend_from_slice(&first);
            }
            self.joined.extend_from_slice(&data);
        }
        Ok(())
    }

    /// The body and which secret signed it, or [`RejectionKind::InvalidSignature`].
    pub(crate) fn finish(&mut self) -> Result<(WebhookBody, VerifiedWebhook), RejectionKind> {
        let data = match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.joined).freeze(),
        };
        let current = self.mac.take().map(Mac::finalize);
        let matched = if current.is_some_and(|digest| self.expected.matches(&digest)) {
            Some(0)
        } else {
            // Previous secrets, during a rotation: the body is complete now.
            self.config
                .previous()
                .iter()
                .position(|secret| {
                    let mut mac = secret.mac(self.config.scheme);
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
