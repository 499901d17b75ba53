//! A request body that plays a script of frames, errors and pending polls.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// One step of a [`ScriptedBody`].
#[derive(Debug, Clone)]
pub enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    Error(&'static str),
    /// Returns `Pending` once (and wakes itself), as a slow network would.
    Pending,
}

/// A request body that plays a script of frames and counts every poll.
pub struct ScriptedBody {
    steps: VecDeque<Step>,
    polls: Arc<AtomicUsize>,
    size_hint: SizeHint,
}

impl ScriptedBody {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            steps: steps.into_iter().collect(),
            polls: Arc::default(),
            size_hint: SizeHint::default(),
        }
    }

    /// `data` cut into frames of `frame` bytes.
    pub fn chunked(data: &[u8], frame: usize) -> Self {
        Self::new(
            data.chunks(frame.max(1))
                .map(|chunk| Step::Data(Bytes::copy_from_slice(chunk))),
        )
    }

    pub fn with_size_hint(mut self, hint: SizeHint) -> Self {
        self.size_hint = hint;
        self
    }

    /// A counter of `poll_frame` calls, readable after the body is gone.
    pub fn polls(&self) -> Arc<AtomicUsize> {
        self.polls.clone()
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match self.steps.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Data(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Step::Trailers(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Some(Step::Error(message)) => Poll::Ready(Some(Err(std::io::Error::other(message)))),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}
