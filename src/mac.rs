//! The HMACs behind the signature schemes: keyed states and digests, below
//! both the secret (which keeps a keyed state per hash, prepared once) and
//! the schemes (which say which hash each uses, see
//! [`SignatureScheme`](crate::signature::SignatureScheme)).

use hmac::{Hmac, KeyInit, Mac as _};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The hash of an HMAC: `X-Hub-Signature` uses SHA-1, `X-Body-Signature`
/// SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    /// How many hashes there are: the size of per-hash tables.
    pub(crate) const COUNT: usize = 2;

    /// This hash's position in per-hash tables, below [`Self::COUNT`].
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Sha1 => 0,
            Self::Sha256 => 1,
        }
    }
}

/// The longest digest of any scheme, in bytes.
const MAX_DIGEST_LEN: usize = 32;

/// A digest: decoded from a signature header, or computed. Whatever the
/// scheme, one type, compared in constant time.
#[derive(Clone, Copy)]
pub(crate) struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: usize,
}

impl Digest {
    /// `len` zero bytes (at most [`MAX_DIGEST_LEN`]), to decode into.
    pub(crate) fn zeroed(len: usize) -> Self {
        Self {
            bytes: [0; MAX_DIGEST_LEN],
            len: len.min(MAX_DIGEST_LEN),
        }
    }

    fn from_slice(digest: &[u8]) -> Self {
        let mut this = Self::zeroed(digest.len());
        let len = this.len;
        this.as_mut_slice().copy_from_slice(&digest[..len]);
        this
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }

    /// Constant-time comparison (digests of different lengths never match).
    pub(crate) fn matches(&self, other: &Digest) -> bool {
        bool::from(self.as_slice().ct_eq(other.as_slice()))
    }
}

/// An HMAC keyed with a secret, for one [`Hash`].
///
/// `hmac` is built with its `zeroize` feature: each state, and each clone
/// made to verify a request, is wiped when dropped.
#[derive(Clone)]
pub(crate) enum Mac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

impl Mac {
    /// Keys an HMAC with `hash` and `key` (any length: HMAC hashes keys
    /// longer than a block).
    pub(crate) fn new(hash: Hash, key: &[u8]) -> Self {
        match hash {
            Hash::Sha1 => Self::Sha1(keyed(key)),
            Hash::Sha256 => Self::Sha256(keyed(key)),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(mac) => mac.update(data),
            Self::Sha256(mac) => mac.update(data),
        }
    }

    pub(crate) fn finalize(self) -> Digest {
        match self {
            Self::Sha1(mac) => Digest::from_slice(&mac.finalize().into_bytes()),
            Self::Sha256(mac) => Digest::from_slice(&mac.finalize().into_bytes()),
        }
    }
}

fn keyed<M: KeyInit>(key: &[u8]) -> M {
    M::new_from_slice(key).expect("HMAC accepts keys of any length")
}
