//! Shared by the fuzz targets: the test suite's scripted request body, its
//! recording inner service and its model of the layer, from the
//! `tower-intercom-test-support` crate, so the fuzzer checks exactly what
//! the property tests check.
#![forbid(unsafe_code)]

pub use tower_intercom_test_support::{model, recorder, scripted};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tower_intercom::SignatureScheme;

pub use tower_intercom_test_support::{
    model::{Case, Value},
    scripted::Step,
};

/// A header name: one the layer reads, or any bytes.
#[derive(Arbitrary, Debug)]
pub enum Name {
    HubSignature,
    BodySignature,
    ContentLength,
    Raw(Vec<u8>),
}

impl Name {
    /// `None` when the bytes are no header name.
    pub fn header_name(&self) -> Option<HeaderName> {
        match self {
            Self::HubSignature => Some(HeaderName::from_static("x-hub-signature")),
            Self::BodySignature => Some(HeaderName::from_static("x-body-signature")),
            Self::ContentLength => Some(http::header::CONTENT_LENGTH),
            Self::Raw(bytes) => HeaderName::from_bytes(bytes).ok(),
        }
    }
}

/// A header value: a real signature of the body, a number, or any bytes.
#[derive(Arbitrary, Debug)]
pub enum FuzzValue {
    Signed {
        key: u8,
        body_scheme: bool,
        upper: bool,
    },
    Number(u64),
    Raw(Vec<u8>),
}

impl FuzzValue {
    pub fn value(&self) -> Value {
        match self {
            Self::Signed {
                key,
                body_scheme,
                upper,
            } => Value::Signed {
                key: usize::from(*key % 4),
                scheme: scheme(*body_scheme),
                upper: *upper,
            },
            Self::Number(n) => Value::Raw(n.to_string().into_bytes()),
            Self::Raw(bytes) => Value::Raw(bytes.clone()),
        }
    }
}

pub fn scheme(body_scheme: bool) -> SignatureScheme {
    if body_scheme {
        SignatureScheme::BodySignature
    } else {
        SignatureScheme::HubSignature
    }
}

/// One step of a request body.
#[derive(Arbitrary, Debug)]
pub enum FuzzStep {
    Data(Vec<u8>),
    /// A large frame without a large input.
    Fill {
        byte: u8,
        len: u16,
    },
    Error,
    Pending,
    Trailers(Vec<(Name, Vec<u8>)>),
}

impl FuzzStep {
    pub fn step(&self) -> Step {
        match self {
            Self::Data(data) => Step::Data(Bytes::copy_from_slice(data)),
            Self::Fill { byte, len } => Step::Data(Bytes::from(vec![*byte; usize::from(*len)])),
            Self::Error => Step::Error("fuzzed body error"),
            Self::Pending => Step::Pending,
            Self::Trailers(fields) => {
                let mut map = HeaderMap::new();
                for (name, value) in fields {
                    if let (Some(name), Ok(value)) =
                        (name.header_name(), HeaderValue::from_bytes(value))
                    {
                        map.append(name, value);
                    }
                }
                Step::Trailers(map)
            }
        }
    }
}
