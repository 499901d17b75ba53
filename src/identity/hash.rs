//! Identity Verification `user_hash`, and the identifiers it must refuse.

use std::{error::Error, fmt};

use hmac::Mac;

use super::IdentitySecret;

/// The Identity Verification `user_hash` of a user: the lowercase hex
/// HMAC-SHA256 of `identifier`, keyed with `secret`.
///
/// Intercom has deprecated Identity Verification in favour of Messenger
/// Security JWTs ([`MessengerJwt`](super::MessengerJwt)): a JWT expires and
/// signs the user's attributes too, while a `user_hash` is valid for as long
/// as the secret is. Use this for workspaces that still need it.
///
/// **Which identifier:** the user's `user_id` whenever the user has one,
/// exactly as it is given to the Messenger. Only for a user with no
/// `user_id` (identified by email alone) pass the email, again exactly as
/// the Messenger gets it: Intercom hashes the value it receives, so a
/// different case or surrounding space makes the hash fail.
///
/// Compute it on the server for the user the server has signed in, never
/// for an identifier the browser sent. Use the secret of the platform the
/// hash is for (web, iOS or Android).
///
/// # Identifiers that are refused
///
/// The same secret signs Messenger JWTs, and an HS256 JWT signature is the
/// HMAC-SHA256 of the text `header.payload` under that secret: the
/// `user_hash` of an identifier that is such a text, turned from hex into
/// base64url, would be a valid signature for a token naming any user. So an
/// identifier that any JWT library could read as the start of a token is
/// refused. It is refused when both of these hold:
///
/// 1. it contains a `.`;
/// 2. the text before the first `.`, read as leniently as JWT libraries
///    read a header, could begin a JSON object:
///    - every byte that is not a base64 or base64url character
///      (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_`, `+`, `/`) is dropped, `=`
///      included, and the rest is decoded, six bits per character;
///    - in the bytes obtained, NUL bytes are dropped (JSON in UTF-16 or
///      UTF-32), then whitespace, byte-order-mark bytes (`EF BB BF`,
///      `FE FF`, `FF FE`) and comments (`/*…*/`, and `//…` or `#…` to the
///      end of a line) are skipped;
///    - the identifier is refused when the first byte left is `{`.
///
/// Every JWT library splits a token at its first `.` to find the header,
/// and a header is a JSON object, which begins with `{`; the lenient
/// reading covers libraries that accept padding, skip characters outside
/// the alphabet, or detect UTF-16 and byte-order marks (PyJWT does the
/// latter two). Everything else hashes as before: any identifier without
/// a `.` (user ids, numbers, UUIDs), and emails and dotted ids unless the
/// text before their first dot reads as above. The rule errs on the side of
/// refusing: mostly, emails whose local part begins with `e` and then one
/// of `w`–`z`, `0`–`9`, `-`, `_`, `+` (`ezra@…`, `example@…`) are refused
/// too. Give such users a `user_id`, or use a JWT.
///
/// # Errors
///
/// [`UserHashErrorKind::JwtSigningInput`] for an identifier refused as
/// above. The error does not contain the identifier.
///
/// # Example
///
/// ```
/// use tower_intercom::identity::{user_hash, IdentitySecret, UserHashErrorKind};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let hash = user_hash(&secret, "user-42")?;
/// assert_eq!(hash.len(), 64);
/// assert!(hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
///
/// // The same identifier under another platform's secret gives another hash.
/// let ios: IdentitySecret = "ios-identity-secret".parse()?;
/// assert_ne!(user_hash(&ios, "user-42")?, hash);
///
/// // Emails are identifiers too.
/// assert!(user_hash(&secret, "ada.lovelace@example.com").is_ok());
///
/// // `{"alg":"HS256"}` in base64url, then a dot: its hash would sign a JWT.
/// let err = user_hash(&secret, "eyJhbGciOiJIUzI1NiJ9.e30").unwrap_err();
/// assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);
/// # Ok(())
/// # }
/// ```
pub fn user_hash(secret: &IdentitySecret, identifier: &str) -> Result<String, UserHashError> {
    if could_be_jwt_signing_input(identifier.as_bytes()) {
        return Err(UserHashError {
            kind: UserHashErrorKind::JwtSigningInput,
        });
    }
    let mut mac = secret.hmac();
    mac.update(identifier.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The rule documented on [`user_hash`].
fn could_be_jwt_signing_input(identifier: &[u8]) -> bool {
    let Some(dot) = identifier.iter().position(|&b| b == b'.') else {
        return false;
    };
    let mut header = lenient_base64(&identifier[..dot]);
    header.retain(|&b| b != 0);
    starts_like_json_object(&header)
}

/// The bytes a lenient base64 decoder makes of `text`: both alphabets, every
/// other byte (`=` included) dropped, trailing bits ignored.
fn lenient_base64(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut bits: u32 = 0;
    let mut count = 0;
    for &c in text {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => continue,
        };
        bits = (bits << 6 | u32::from(sextet)) & 0xFFFF;
        count += 6;
        if count >= 8 {
            count -= 8;
            // The low byte of the accumulator after the shift.
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// Whether `bytes`, past whitespace, byte-order-mark bytes and comments,
/// begins with `{`.
fn starts_like_json_object(mut bytes: &[u8]) -> bool {
    loop {
        bytes = match bytes {
            [b'{', ..] => return true,
            [b' ' | b'\t' | b'\n' | b'\r' | 0xEF | 0xBB | 0xBF | 0xFE | 0xFF, rest @ ..] => rest,
            [b'/', b'*', rest @ ..] => match rest.windows(2).position(|w| w == b"*/") {
                Some(end) => &rest[end + 2..],
                None => return false,
            },
            [b'/', b'/', rest @ ..] | [b'#', rest @ ..] => {
                match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => &rest[end + 1..],
                    None => return false,
                }
            }
            _ => return false,
        };
    }
}

/// Why [`user_hash`] refused an identifier.
///
/// The message says why; it never contains the identifier or the secret.
///
/// # Example
///
/// ```
/// use tower_intercom::identity::{user_hash, IdentitySecret};
///
/// let secret: IdentitySecret = "web-identity-secret".parse()?;
/// let err = user_hash(&secret, "eyJhbGciOiJIUzI1NiJ9.e30").unwrap_err();
/// assert!(err.to_string().starts_with("the identifier could be read as the start of a JWT"));
/// # Ok::<(), tower_intercom::SecretError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHashError {
    kind: UserHashErrorKind,
}

/// What was wrong with an identifier; see [`UserHashError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserHashErrorKind {
    /// The identifier could be the signing input of a JWT (the rule is on
    /// [`user_hash`]): its hash would be a valid signature for a Messenger
    /// JWT naming any user.
    JwtSigningInput,
}

impl UserHashError {
    /// What was wrong.
    pub fn kind(&self) -> UserHashErrorKind {
        self.kind
    }
}

impl fmt::Display for UserHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            UserHashErrorKind::JwtSigningInput => f.write_str(
                "the identifier could be read as the start of a JWT (a dot, and before it \
                 base64 text decoding to a JSON object), so its user_hash would sign Messenger \
                 JWTs for any user; give the user another identifier or use a Messenger JWT",
            ),
        }
    }
}

impl Error for UserHashError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(identifier: &str) -> bool {
        could_be_jwt_signing_input(identifier.as_bytes())
    }

    #[test]
    fn lenient_base64_reads_both_alphabets_and_skips_the_rest() {
        assert_eq!(
            lenient_base64(b"eyJhbGciOiJIUzI1NiJ9"),
            br#"{"alg":"HS256"}"#
        );
        assert_eq!(lenient_base64(b"e@y!J=h b G c i"), br#"{"alg""#);
        assert_eq!(lenient_base64(b"-_+/"), [0xFB, 0xFF, 0xBF]);
        assert_eq!(lenient_base64(b"Zm9vYg=="), b"foob");
        assert_eq!(lenient_base64(b"e"), b"");
        assert_eq!(lenient_base64(b""), b"");
    }

    #[test]
    fn refuses_what_a_jwt_library_could_read_as_a_header() {
        for identifier in [
            "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYWRtaW4ifQ",
            "eyJhbGciOiJIUzI1NiJ9.",
            "e30.e30",
            "ew.x",
            "ezra@example.com",
            "example@example.com",
            // Padding, foreign bytes, the standard alphabet.
            "eyJhbGciOiJIUzI1NiIsIngiOjF9==.e30",
            "e@yJ.x",
            "\u{e9}eyJ.x",
            "e+.x",
            // Whitespace before the brace: " {", "\t{", "\r\n{".
            "IHs.x",
            "CXs.x",
            "DQp7.x",
            // A UTF-8 byte-order mark, UTF-16 big- and little-endian.
            "77u_eyJhbGciOiJIUzI1NiJ9.e30",
            "77u/ew.x",
            "AHsAIgBh.e30",
            "ewAiAGEA.e30",
            "__57AA.e30",
            // Comments before the brace.
            "LyoqL3s.x",
            "Ly8KeyJ9.x",
            "Iwp7.x",
        ] {
            assert!(refused(identifier), "{identifier:?} was not refused");
        }
    }

    #[test]
    fn keeps_hashing_ordinary_identifiers() {
        for identifier in [
            "",
            "user-42",
            "12345",
            "0d5e4c9a-2b7f-4c1e-9a3d-6f8b2e1c7a90",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9-no-dot",
            "ada.lovelace@example.com",
            "Ada.Lovelace@example.com",
            "ada@example.com",
            "e.x",
            "a.eyJhbGciOiJIUzI1NiJ9.e30",
            ".eyJhbGciOiJIUzI1NiJ9.e30",
            "grace.hopper@navy.mil",
            "user 42.",
            "LyoqL.x",
            "Ly8.x",
            "Iw.x",
        ] {
            assert!(!refused(identifier), "{identifier:?} was refused");
        }
    }

    #[test]
    fn the_error_never_shows_the_identifier() {
        let secret: IdentitySecret = "s".parse().unwrap();
        let identifier = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYWRtaW4ifQ";
        let err = user_hash(&secret, identifier).unwrap_err();
        assert_eq!(err.kind(), UserHashErrorKind::JwtSigningInput);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("eyJ"));
    }
}
