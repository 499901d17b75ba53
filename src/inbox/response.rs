//! The receiver's own responses: the crate's JSON error bodies, and empty
//! 200s.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// `{"error":"<message>"}` with `content-type: application/json`, from the
/// crate's one JSON error builder. Never 410, which would disable the
/// Intercom subscription.
pub(super) fn error(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    debug_assert_ne!(status, StatusCode::GONE);
    crate::rejection::json_error(status, message, None).map(Full::new)
}

/// An empty response.
pub(super) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
