//! The receiver's own responses: small JSON objects.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// `{"error":"<message>"}` with `content-type: application/json`.
///
/// The messages are fixed ASCII without quotes or backslashes, so they need
/// no escaping. Never 410, which would disable the Intercom subscription.
pub(super) fn error(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    debug_assert!(!message.contains(['"', '\\']));
    debug_assert_ne!(status, StatusCode::GONE);
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "{{\"error\":\"{message}\"}}"
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An empty response.
pub(super) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
