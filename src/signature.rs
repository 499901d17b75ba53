//! Intercom's two webhook signatures: signing, parsing and verifying.
//!
//! - `X-Hub-Signature: sha1=<40 hex>`: HMAC-SHA1 of the raw body keyed with
//!   the app's client secret. Every webhook notification carries it.
//! - `X-Body-Signature: <64 hex>`: HMAC-SHA256 of the raw body with the same
//!   secret, sent with Canvas Kit requests and app installation health
//!   checks. It is a different scheme, not an alias.
//!
//! Both sign the *exact bytes* received: JSON that was parsed and
//! re-serialised does not verify. Digests are compared in constant time
//! after decoding, never as strings.

use std::{error::Error, fmt};

use http::{HeaderName, HeaderValue};

use crate::{
    mac::{Digest, Hash},
    secret::WebhookSecret,
};

/// The header of [`SignatureScheme::HubSignature`]: `x-hub-signature`.
pub const X_HUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature");

/// The header of [`SignatureScheme::BodySignature`]: `x-body-signature`.
pub const X_BODY_SIGNATURE: HeaderName = HeaderName::from_static("x-body-signature");

/// Which of Intercom's signatures to check.
///
/// # Example
///
/// ```
/// use tower_intercom::{SignatureScheme, WebhookSecret};
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let body = br#"{"canvas":{}}"#;
/// let scheme = SignatureScheme::BodySignature;
///
/// let header = scheme.sign(&secret, body);
/// assert_eq!(header.len(), 64);
/// assert!(scheme.verify(&secret, body, &header).is_ok());
/// assert_eq!(scheme.header_name(), "x-body-signature");
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// `X-Hub-Signature: sha1=<40 hex digits>`, HMAC-SHA1: webhook
    /// notifications. The default.
    #[default]
    HubSignature,
    /// `X-Body-Signature: <64 hex digits>`, HMAC-SHA256: Canvas Kit requests
    /// and app installation health checks.
    BodySignature,
}

impl SignatureScheme {
    /// The request header that carries this signature.
    pub fn header_name(self) -> HeaderName {
        self.spec().header
    }

    /// The header value Intercom would send for `body`: `sha1=` and 40
    /// lowercase hex digits, or 64 lowercase hex digits.
    pub fn sign(self, secret: &WebhookSecret, body: &[u8]) -> HeaderValue {
        let mut mac = secret.mac(self.hash());
        mac.update(body);
        self.header_value(&mac.finalize())
    }

    /// Checks `header` against the signature of `body`.
    ///
    /// Hex digits are accepted in either case. Never panics.
    ///
    /// # Errors
    ///
    /// [`SignatureError::Malformed`] when the header is not in this
    /// scheme's format, [`SignatureError::Mismatch`] when it is well formed
    /// but signs something else (or with another secret).
    pub fn verify(
        self,
        secret: &WebhookSecret,
        body: &[u8],
        header: &HeaderValue,
    ) -> Result<(), SignatureError> {
        let expected = self.parse(header.as_bytes())?;
        let mut mac = secret.mac(self.hash());
        mac.update(body);
        if expected.matches(&mac.finalize()) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// What sets the schemes apart: the one place to change to add one
    /// (with, for a new hash, its arm in [`Mac`](crate::mac::Mac)).
    fn spec(self) -> Spec {
        match self {
            Self::HubSignature => Spec {
                header: X_HUB_SIGNATURE,
                prefix: b"sha1=",
                digest_len: 20,
                hash: Hash::Sha1,
            },
            Self::BodySignature => Spec {
                header: X_BODY_SIGNATURE,
                prefix: b"",
                digest_len: 32,
                hash: Hash::Sha256,
            },
        }
    }

    /// The hash of this scheme's HMAC: what a secret's keyed state is
    /// prepared for.
    pub(crate) fn hash(self) -> Hash {
        self.spec().hash
    }

    /// Parses a header value in this scheme's format. Never panics: anything
    /// but the exact format, including non-ASCII bytes, is malformed.
    pub(crate) fn parse(self, value: &[u8]) -> Result<Digest, SignatureError> {
        let spec = self.spec();
        let hex = value
            .strip_prefix(spec.prefix)
            .ok_or(SignatureError::Malformed)?;
        let mut digest = Digest::zeroed(spec.digest_len);
        hex::decode_to_slice(hex, digest.as_mut_slice()).map_err(|_| SignatureError::Malformed)?;
        Ok(digest)
    }

    /// The header value for a computed digest: the prefix and lowercase hex.
    fn header_value(self, digest: &Digest) -> HeaderValue {
        let mut value = self.spec().prefix.to_vec();
        value.extend_from_slice(hex::encode(digest.as_slice()).as_bytes());
        HeaderValue::from_bytes(&value).expect("a prefix and hex digits are a valid header value")
    }
}

/// The facts of one [`SignatureScheme`].
struct Spec {
    header: HeaderName,
    /// What comes before the hex digits.
    prefix: &'static [u8],
    /// The digest's length in bytes (twice as many hex digits).
    digest_len: usize,
    /// The hash of its HMAC.
    hash: Hash,
}

/// The `X-Hub-Signature` value for `body`: `sha1=` and 40 lowercase hex
/// digits.
///
/// For users' own tests and tools; [`SignatureScheme::sign`] signs for the
/// other scheme.
///
/// # Example
///
/// ```
/// use tower_intercom::{sign, WebhookSecret};
///
/// let secret: WebhookSecret = "s3cr3t-client-secret".parse()?;
/// let header = sign(&secret, b"");
/// assert_eq!(header, "sha1=f3349bccc1357dc65c416b3dac263d44a7e177ae");
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
pub fn sign(secret: &WebhookSecret, body: &[u8]) -> HeaderValue {
    SignatureScheme::HubSignature.sign(secret, body)
}

/// Checks an `X-Hub-Signature` header value against `body`, in constant
/// time on the decoded digest.
///
/// # Errors
///
/// [`SignatureError::Malformed`] unless the header is `sha1=` followed by
/// 40 hex digits (either case); [`SignatureError::Mismatch`] when the digest
/// differs.
///
/// # Example
///
/// ```
/// use http::HeaderValue;
/// use tower_intercom::{sign, verify, signature::SignatureError, WebhookSecret};
///
/// let secret: WebhookSecret = "my-client-secret".parse()?;
/// let body = br#"{"type":"notification_event","topic":"ping"}"#;
///
/// assert_eq!(verify(&secret, body, &sign(&secret, body)), Ok(()));
/// assert_eq!(
///     verify(&secret, b"{}", &sign(&secret, body)),
///     Err(SignatureError::Mismatch)
/// );
/// assert_eq!(
///     verify(&secret, body, &HeaderValue::from_static("sha256=abc")),
///     Err(SignatureError::Malformed)
/// );
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
pub fn verify(
    secret: &WebhookSecret,
    body: &[u8],
    header: &HeaderValue,
) -> Result<(), SignatureError> {
    SignatureScheme::HubSignature.verify(secret, body, header)
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not in the scheme's format: for `X-Hub-Signature`,
    /// `sha1=` followed by 40 hex digits; for `X-Body-Signature`, 64 hex
    /// digits.
    Malformed,
    /// The header is well formed but is not the signature of this body with
    /// this secret.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed signature header",
            Self::Mismatch => "signature does not match the body",
        })
    }
}

impl Error for SignatureError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::new("s3cr3t-client-secret").unwrap()
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let body = b"{}";
        let good = sign(&secret(), body);
        let good = good.to_str().unwrap();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"sha1=".to_vec(),
            good.as_bytes()[5..].to_vec(),                 // no prefix
            format!("sha256={}", &good[5..]).into_bytes(), // other algorithm
            format!("SHA1={}", &good[5..]).into_bytes(),   // prefix is lowercase
            format!("{good}0").into_bytes(),               // 41 digits
            good.as_bytes()[..good.len() - 1].to_vec(),    // 39 digits
            format!("{}zz", &good[..good.len() - 2]).into_bytes(), // not hex
            format!("{} ", good).into_bytes(),             // trailing space
            format!("sha1={}", "é".repeat(20)).into_bytes(), // non-ASCII
            [b"sha1=".as_slice(), &[0xff; 40]].concat(),   // non-UTF-8
        ];
        for case in cases {
            assert_eq!(
                SignatureScheme::HubSignature.parse(&case).err(),
                Some(SignatureError::Malformed),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
            if let Ok(value) = HeaderValue::from_bytes(&case) {
                assert_eq!(
                    verify(&secret(), body, &value),
                    Err(SignatureError::Malformed)
                );
            }
        }
    }

    #[test]
    fn hex_is_accepted_in_either_case() {
        let body = b"{\"topic\":\"ping\"}";
        let lower = sign(&secret(), body);
        let upper = format!("sha1={}", lower.to_str().unwrap()[5..].to_ascii_uppercase());
        let upper = HeaderValue::try_from(upper).unwrap();
        assert_eq!(verify(&secret(), body, &upper), Ok(()));
    }

    #[test]
    fn body_signature_is_not_an_alias_of_hub_signature() {
        let body = b"{}";
        let hub = sign(&secret(), body);
        let canvas = SignatureScheme::BodySignature.sign(&secret(), body);
        assert_eq!(
            SignatureScheme::BodySignature.verify(&secret(), body, &hub),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&secret(), body, &canvas),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            SignatureScheme::BodySignature.verify(&secret(), body, &canvas),
            Ok(())
        );
    }
}
