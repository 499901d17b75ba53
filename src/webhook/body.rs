//! The request body handed to the inner service, and the response body of
//! the middleware.

use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The buffered, verified request body the inner service receives.
///
/// It holds the exact bytes that were signed (one `Bytes`, sharing the
/// allocation of the incoming frame when the body arrived in one frame) and
/// nothing else: HTTP trailers are not covered by the signature, so the
/// layer drops them (Intercom sends none). It implements [`Body`], so it
/// works wherever a body is expected (axum, hyper, tonic), and
/// [`bytes`](Self::bytes) gives the bytes without polling.
///
/// Holding a `WebhookBody` proves nothing by itself: the proof that a
/// request passed the layer is the [`VerifiedWebhook`](crate::VerifiedWebhook)
/// request extension.
#[derive(Default)]
pub struct WebhookBody {
    data: Bytes,
    data_taken: bool,
}

impl WebhookBody {
    pub(crate) fn new(data: Bytes) -> Self {
        Self {
            data,
            data_taken: false,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The body's bytes (empty once they have been polled as a frame).
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// The body's bytes (empty once they have been polled as a frame).
    pub fn into_bytes(self) -> Bytes {
        self.data
    }
}

impl From<Bytes> for WebhookBody {
    fn from(data: Bytes) -> Self {
        Self::new(data)
    }
}

impl From<Vec<u8>> for WebhookBody {
    fn from(data: Vec<u8>) -> Self {
        Self::new(data.into())
    }
}

impl From<String> for WebhookBody {
    fn from(data: String) -> Self {
        Self::new(data.into())
    }
}

impl From<&'static str> for WebhookBody {
    fn from(data: &'static str) -> Self {
        Self::new(Bytes::from_static(data.as_bytes()))
    }
}

impl fmt::Debug for WebhookBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookBody")
            .field("len", &self.data.len())
            .finish()
    }
}

impl Body for WebhookBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.data_taken || this.data.is_empty() {
            return Poll::Ready(None);
        }
        this.data_taken = true;
        Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.data)))))
    }

    fn is_end_stream(&self) -> bool {
        self.data_taken || self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

crate::body::define_response_body! {
    /// The response body of [`VerifyIntercomWebhook`](crate::webhook::VerifyIntercomWebhook):
    /// the inner service's body, or the body of a rejection the layer wrote
    /// itself.
    ResponseBody
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn webhook_body_yields_its_data_once_and_no_trailers() {
        let body = WebhookBody::new(Bytes::from_static(b"abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), None);
        assert_eq!(collected.to_bytes(), "abc");
    }

    #[tokio::test]
    async fn empty_bodies_end_at_once() {
        let body = WebhookBody::empty();
        assert!(body.is_end_stream());
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
        let rejection = ResponseBody::<WebhookBody>::rejection(Bytes::new());
        assert!(rejection.is_end_stream());
        let default = ResponseBody::<WebhookBody>::default();
        assert!(default.is_end_stream());
        assert_eq!(default.size_hint().exact(), Some(0));
        assert!(default.collect().await.unwrap().to_bytes().is_empty());
    }
}
