//! Messenger Security JWTs: issuing them ([`MessengerJwt`]), and checking
//! them ([`MessengerJwtVerifier`], which returns [`MessengerClaims`]).

mod claims;
mod error;
mod sign;
#[cfg(test)]
mod tests;
mod verify;

pub use self::{
    claims::MessengerClaims,
    error::{JwtError, JwtErrorKind},
    sign::MessengerJwt,
    verify::MessengerJwtVerifier,
};

/// The header of every token the crate signs, byte for byte.
const HEADER: &str = r#"{"typ":"JWT","alg":"HS256"}"#;

/// The last `exp` accepted when signing: 9999-12-31T23:59:59Z, which keeps
/// the number exact for JavaScript and every JSON parser.
const MAX_EXP: u64 = 253_402_300_799;
