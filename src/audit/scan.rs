//! Finding Intercom access tokens and given secret values in a stream of
//! bytes (one blob or file), in bounded memory.
//!
//! The rules for a token are in the [module docs](super#what-counts-as-an-access-token).

use std::io::{self, Read};

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use memchr::memmem;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::report::{Fingerprint, SecretKind};

/// What every token's base64 text starts with: `tok:` encodes as `dG9r`,
/// and the `:` makes the fifth character `O`.
const TOKEN_START: &[u8] = b"dG9rO";

/// The longest base64 run read as a token, padding included. Tokens of the
/// shapes seen are 60 characters; a longer run is not a token.
const MAX_TOKEN_RUN: usize = 128;

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

/// How much of the start of a stream decides whether it is binary: git's
/// own rule (a NUL byte in the first 8000 bytes).
const BINARY_PROBE: usize = 8000;

/// Standard base64, with or without padding, trailing bits tolerated: a
/// token written as `…%3D` in a URL still decodes.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Canonical standard base64 (padded), to fingerprint a token the way
/// Intercom hands it out, however it was written.
const CANONICAL: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new());

/// One secret or token found in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) kind: SecretKind,
    pub(crate) fingerprint: Fingerprint,
    /// 1-based: one more than the number of `\n` bytes before the hit.
    pub(crate) line: u64,
}

/// What one stream held.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub(crate) hits: Vec<Hit>,
    /// A NUL byte in its first 8000 bytes (git's test for binary files).
    pub(crate) binary: bool,
}

/// A secret value to look for, byte for byte.
pub(crate) struct Needle {
    kind: SecretKind,
    fingerprint: Fingerprint,
    finder: memmem::Finder<'static>,
    /// The finder holds its own copy of the value; this one is wiped.
    len: usize,
}

impl std::fmt::Debug for Needle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needle")
            .field("kind", &self.kind)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// What a scan looks for: token-shaped text always, and the given values.
#[derive(Debug)]
pub(crate) struct Scanner {
    needles: Vec<Needle>,
    tokens: memmem::Finder<'static>,
    /// Bytes kept after a possible start so that a match starting there is
    /// whole in the buffer.
    overlap: usize,
}

impl Scanner {
    /// A scanner for token-shaped text and for each of `values`.
    pub(crate) fn new(values: &[(SecretKind, &[u8])]) -> Self {
        let needles: Vec<Needle> = values
            .iter()
            .map(|&(kind, value)| Needle {
                kind,
                fingerprint: Fingerprint::of(value),
                finder: memmem::Finder::new(&Zeroizing::new(value.to_vec())[..]).into_owned(),
                len: value.len(),
            })
            .collect();
        let longest = needles.iter().map(|n| n.len).max().unwrap_or(0);
        Self {
            needles,
            tokens: memmem::Finder::new(TOKEN_START),
            overlap: longest.max(MAX_TOKEN_RUN + 2),
        }
    }

    /// Scans everything `reader` gives, `CHUNK` bytes at a time, in `buf`
    /// (a buffer kept from one scan to the next, so that scanning many
    /// small blobs allocates nothing).
    pub(crate) fn scan(&self, reader: impl Read, buf: &mut Vec<u8>) -> io::Result<Scanned> {
        self.scan_in_chunks(reader, buf, CHUNK)
    }

    pub(crate) fn scan_in_chunks(
        &self,
        mut reader: impl Read,
        buf: &mut Vec<u8>,
        chunk: usize,
    ) -> io::Result<Scanned> {
        let mut out = Scanned::default();
        buf.clear();
        // Every possible start in buf[..from] was examined, and buf[from - 1]
        // is kept as the byte before the next one. `line` is one more than
        // the number of `\n` bytes in the stream before buf[counted]: lines
        // are only counted up to a hit, and before bytes are dropped.
        let mut from = 0;
        let mut counted = 0;
        let mut line = 1u64;
        // How many bytes of the stream were read before this round.
        let mut read = 0usize;
        let mut hits: Vec<(usize, SecretKind, Fingerprint)> = Vec::new();
        loop {
            let old = buf.len();
            let got = (&mut reader).take(chunk as u64).read_to_end(buf)?;
            let eof = got < chunk;
            if read < BINARY_PROBE {
                let end = buf.len().min(old + (BINARY_PROBE - read));
                out.binary |= memchr::memchr(0, &buf[old..end]).is_some();
            }
            read = read.saturating_add(got);
            let limit = if eof {
                buf.len()
            } else {
                buf.len().saturating_sub(self.overlap)
            };
            if limit > from {
                hits.clear();
                self.find_tokens(buf, from, limit, &mut hits);
                self.find_values(buf, from, limit, &mut hits);
                hits.sort_unstable_by_key(|&(at, _, _)| at);
                for &(at, kind, fingerprint) in &hits {
                    line += count_lines(&buf[counted..at]);
                    counted = at;
                    out.hits.push(Hit {
                        kind,
                        fingerprint,
                        line,
                    });
                }
                from = limit;
            }
            if eof {
                return Ok(out);
            }
            // Keep the byte before `from` and everything after it.
            let keep_from = from.saturating_sub(1);
            if counted < keep_from {
                line += count_lines(&buf[counted..keep_from]);
                counted = keep_from;
            }
            buf.drain(..keep_from);
            from -= keep_from;
            counted -= keep_from;
        }
    }

    /// Token-shaped runs starting in `buf[from..limit]`.
    fn find_tokens(
        &self,
        buf: &[u8],
        from: usize,
        limit: usize,
        hits: &mut Vec<(usize, SecretKind, Fingerprint)>,
    ) {
        for offset in self.tokens.find_iter(&buf[from..]) {
            let start = from + offset;
            if start >= limit {
                break;
            }
            if let Some(fingerprint) = token_at(buf, start) {
                hits.push((start, SecretKind::AccessToken, fingerprint));
            }
        }
    }

    /// Given values starting in `buf[from..limit]`.
    fn find_values(
        &self,
        buf: &[u8],
        from: usize,
        limit: usize,
        hits: &mut Vec<(usize, SecretKind, Fingerprint)>,
    ) {
        for needle in &self.needles {
            for offset in needle.finder.find_iter(&buf[from..]) {
                let start = from + offset;
                if start >= limit {
                    break;
                }
                // A token given by value and found by its shape is one hit.
                let same = hits.iter().any(|&(at, kind, fingerprint)| {
                    at == start && kind == needle.kind && fingerprint == needle.fingerprint
                });
                if !same {
                    hits.push((start, needle.kind, needle.fingerprint));
                }
            }
        }
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Inside a base64 run: a byte that, before `dG9rO`, makes it a piece of a
/// longer run rather than the start of a value. `/` is left out so that a
/// token at the end of a URL path is found; `=` and everything else ends
/// a run.
fn continues_run(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'+'
}

fn is_base64(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/'
}

/// The fingerprint of the token whose text starts at `buf[start]` (which
/// holds `dG9rO`), or `None` when it is not one.
fn token_at(buf: &[u8], start: usize) -> Option<Fingerprint> {
    if start > 0 && continues_run(buf[start - 1]) {
        return None;
    }
    let rest = &buf[start..];
    let mut end = rest
        .iter()
        .take(MAX_TOKEN_RUN + 1)
        .position(|&b| !is_base64(b))
        .unwrap_or(rest.len().min(MAX_TOKEN_RUN + 1));
    if end > MAX_TOKEN_RUN {
        return None;
    }
    let letters = end;
    while end < rest.len() && end - letters < 2 && rest[end] == b'=' {
        end += 1;
    }
    let decoded = Zeroizing::new(LENIENT.decode(&rest[..end]).ok()?);
    if !is_token_shape(&decoded) {
        return None;
    }
    let canonical = Zeroizing::new(CANONICAL.encode(&decoded[..]));
    Some(Fingerprint::of(canonical.as_bytes()))
}

/// `tok:`, 32 hex digits (alone, or in groups of 8, 4, 4, 4 and 12
/// separated by `_` or `-`), then up to three `:`-separated numbers of at
/// most 6 digits, and nothing else. Every token seen has this shape
/// (`tok:` + a UUID written with underscores + `:1:0`).
pub(crate) fn is_token_shape(decoded: &[u8]) -> bool {
    let Some(rest) = decoded.strip_prefix(b"tok:") else {
        return false;
    };
    let Some(rest) = uuid_prefix(rest) else {
        return false;
    };
    let mut numbers = 0;
    let mut rest = rest;
    while !rest.is_empty() {
        let Some(after) = rest.strip_prefix(b":") else {
            return false;
        };
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        numbers += 1;
        if digits == 0 || digits > 6 || numbers > 3 {
            return false;
        }
        rest = &after[digits..];
    }
    true
}

/// What follows a UUID at the start of `bytes`.
fn uuid_prefix(bytes: &[u8]) -> Option<&[u8]> {
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if bytes.len() >= 32 && hex(&bytes[..32]) {
        return Some(&bytes[32..]);
    }
    let mut rest = bytes;
    for (i, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            rest = rest
                .strip_prefix(b"_")
                .or_else(|| rest.strip_prefix(b"-"))?;
        }
        if rest.len() < len || !hex(&rest[..len]) {
            return None;
        }
        rest = &rest[len..];
    }
    Some(rest)
}

impl Fingerprint {
    /// The first 4 bytes of the SHA-256 of `secret`.
    pub(crate) fn of(secret: &[u8]) -> Self {
        let digest = Sha256::digest(secret);
        Self([digest[0], digest[1], digest[2], digest[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token of the shape Intercom issues, made from `seed` (never a
    /// literal in the source: this repository audits itself).
    fn token(seed: u8) -> String {
        let hex: String = (0..16u8)
            .map(|i| format!("{:02x}", i.wrapping_mul(37).wrapping_add(seed)))
            .collect();
        let uuid = format!(
            "{}_{}_{}_{}_{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        CANONICAL.encode(format!("tok:{uuid}:1:0"))
    }

    fn scan(text: &[u8]) -> Vec<Hit> {
        Scanner::new(&[]).scan(text, &mut Vec::new()).unwrap().hits
    }

    #[test]
    fn finds_tokens_of_the_shape_seen() {
        let token = token(1);
        assert_eq!(token.len(), 60);
        assert!(token.starts_with("dG9rO"));
        let fingerprint = Fingerprint::of(token.as_bytes());
        for text in [
            token.clone(),
            format!("TOKEN={token}\n"),
            format!("a\nb\n  \"token\": \"{token}\",\n"),
            format!("https://example.com/{token}"),
            format!("Authorization: Bearer {token}\r\n"),
            // Written without padding, or with it escaped in a URL.
            format!("x={}", token.trim_end_matches('=')),
            format!("x={}%3D&y=1", token.trim_end_matches('=')),
        ] {
            let hits = scan(text.as_bytes());
            assert_eq!(hits.len(), 1, "{text}");
            assert_eq!(hits[0].fingerprint, fingerprint, "{text}");
            assert_eq!(
                hits[0].line,
                1 + text
                    .split(&token[..10])
                    .next()
                    .unwrap()
                    .matches('\n')
                    .count() as u64
            );
        }
    }

    #[test]
    fn ordinary_base64_is_not_a_token() {
        let token = token(2);
        // Inside a longer run, at any offset: not a token.
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let noise = CANONICAL.encode(&bytes);
        for at in [1, 2, 3, 4, 5, 400, 401, 402, 403] {
            let mut text = noise.clone();
            text.insert_str(at, token.trim_end_matches('='));
            assert!(scan(text.as_bytes()).is_empty(), "{at}");
        }
        // A token's decoded text inside base64 of something longer, at every
        // alignment (`dG9rO` appears mid-run, or the run starts with it and
        // goes on).
        let decoded = LENIENT.decode(&token).unwrap();
        for before in 0..4 {
            let mut data = bytes[..before].to_vec();
            data.extend_from_slice(&decoded);
            data.extend_from_slice(&bytes[..300]);
            let text = CANONICAL.encode(&data);
            assert!(scan(text.as_bytes()).is_empty(), "{before}");
        }
        for text in [
            // `tok:` followed by something else than the shape.
            CANONICAL.encode("tok:example_token"),
            CANONICAL.encode("tok: true;\n"),
            CANONICAL.encode(format!("tok:{}", "a".repeat(40))),
            // The shape with a fourth number, or a number too long.
            CANONICAL.encode("tok:0123456789abcdef0123456789abcdef:1:0:0:0"),
            CANONICAL.encode("tok:0123456789abcdef0123456789abcdef:1234567"),
            // Run on into more base64.
            format!("{}QUJD", token.trim_end_matches('=')),
            // A piece of a token.
            token[..40].to_owned(),
        ] {
            assert!(scan(text.as_bytes()).is_empty(), "{text}");
        }
        // Without separators, or with dashes, the 32 hex digits are a token.
        for body in [
            "tok:0123456789abcdef0123456789ABCDEF:1:0",
            "tok:01234567-89ab-cdef-0123-456789abcdef",
        ] {
            assert_eq!(scan(CANONICAL.encode(body).as_bytes()).len(), 1, "{body}");
        }
    }

    #[test]
    fn finds_given_values_and_counts_lines() {
        let scanner = Scanner::new(&[(SecretKind::WebhookSecret, b"client-secret-value")]);
        let text = b"one\ntwo client-secret-value\nthree\n\nclient-secret-value";
        let hits = scanner.scan(&text[..], &mut Vec::new()).unwrap().hits;
        let lines: Vec<u64> = hits.iter().map(|h| h.line).collect();
        assert_eq!(lines, [2, 5]);
        assert!(hits.iter().all(|h| h.kind == SecretKind::WebhookSecret));
    }

    #[test]
    fn chunk_boundaries_change_nothing() {
        let token = token(3);
        let mut text = Vec::new();
        for i in 0..200 {
            text.extend_from_slice(format!("line {i} ").as_bytes());
            if i % 17 == 0 {
                text.extend_from_slice(token.as_bytes());
            }
            if i % 23 == 0 {
                text.extend_from_slice(b"the-webhook-secret");
            }
            text.push(b'\n');
        }
        let scanner = Scanner::new(&[(SecretKind::WebhookSecret, b"the-webhook-secret")]);
        let whole = scanner
            .scan_in_chunks(&text[..], &mut Vec::new(), text.len() + 1)
            .unwrap()
            .hits;
        assert_eq!(whole.len(), 12 + 9);
        let mut buf = Vec::new();
        for chunk in [1, 2, 3, 7, 64, 131, 1000] {
            let hits = scanner
                .scan_in_chunks(&text[..], &mut buf, chunk)
                .unwrap()
                .hits;
            assert_eq!(hits, whole, "chunk {chunk}");
        }
    }

    #[test]
    fn binary_is_a_nul_in_the_first_8000_bytes() {
        let scanner = Scanner::new(&[]);
        let mut data = vec![b'a'; 9000];
        assert!(!scanner.scan(&data[..], &mut Vec::new()).unwrap().binary);
        data[7999] = 0;
        assert!(
            scanner
                .scan_in_chunks(&data[..], &mut Vec::new(), 100)
                .unwrap()
                .binary
        );
        data[7999] = b'a';
        data[8500] = 0;
        assert!(
            !scanner
                .scan_in_chunks(&data[..], &mut Vec::new(), 100)
                .unwrap()
                .binary
        );
    }
}
