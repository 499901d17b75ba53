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

/// 400 for a verified body that is not a notification the inbox can
/// store: `{"error":"<what is wrong>"}`, with `"line"` and `"column"` when
/// it is not JSON. Never any of the body's text.
pub(super) fn invalid(invalid: &crate::notification::validate::Invalid) -> Response<Full<Bytes>> {
    crate::rejection::json_error(
        StatusCode::BAD_REQUEST,
        invalid.message(),
        invalid.position(),
    )
    .map(Full::new)
}

/// An empty response.
pub(super) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
