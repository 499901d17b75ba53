//! The answer to a notification already handled, shared by the idempotency
//! layer and the inbox's receiver: 200, empty, `x-intercom-duplicate: true`.
//!
//! A 200 is what stops Intercom's retries; the header only tells duplicates
//! apart from first deliveries.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response};

/// The header on the 200 answered to a notification already handled:
/// `x-intercom-duplicate: true`.
///
/// Intercom ignores it; it tells duplicates apart in your access logs and
/// tests. The idempotency layer sets it on a notification already
/// processed, the inbox's receiver on one the inbox already holds; neither
/// sets it on any other response.
// Public as `idempotency::DUPLICATE_HEADER`; with the inbox alone, only the
// receiver uses it.
#[cfg_attr(not(feature = "idempotency"), allow(unreachable_pub))]
pub const DUPLICATE_HEADER: HeaderName = HeaderName::from_static("x-intercom-duplicate");

/// 200, empty, with [`DUPLICATE_HEADER`]: Intercom stops retrying.
pub(crate) fn response() -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    response
        .headers_mut()
        .insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn duplicates_are_200_with_the_header() {
        let duplicate = response();
        assert_eq!(duplicate.status(), StatusCode::OK);
        assert_eq!(duplicate.headers()[DUPLICATE_HEADER], "true");
        assert!(duplicate.body().is_empty());
    }
}
