//! `verify` against the hashing limit (raw SHA-1 of the same bytes) and
//! against `ring`'s HMAC-SHA1, on 2 KiB, 16 KiB and 256 KiB notifications.
//!
//! Run with `cargo bench --bench verify`. After criterion's figures it
//! prints the ratios from one interleaved run (see `tower_intercom_test_support::bench`):
//! `verify / raw SHA-1` (the goal: within 5 %) and `ring / verify` (the
//! goal: at least 0.9).

use criterion::{BenchmarkId, Criterion, Throughput};
use http::HeaderValue;
use sha1::{Digest, Sha1};
use tower_intercom::{sign, verify, WebhookSecret};
use tower_intercom_test_support::bench::{self, interleaved, keep, notification, ns, SIZES};

const SECRET: &str = "s3cr3t-client-secret";

struct Case {
    label: &'static str,
    body: Vec<u8>,
    header: HeaderValue,
}

fn cases(secret: &WebhookSecret) -> Vec<Case> {
    SIZES
        .iter()
        .map(|&(len, label)| {
            let body = notification(len);
            let header = sign(secret, &body);
            Case {
                label,
                body,
                header,
            }
        })
        .collect()
}

/// What `verify` does, with ring: decode the header, HMAC, compare in
/// constant time. The key is prepared once, like `WebhookSecret` does.
fn ring_verify(key: &ring::hmac::Key, body: &[u8], header: &HeaderValue) -> bool {
    let Some(hex) = header.as_bytes().strip_prefix(b"sha1=") else {
        return false;
    };
    let mut tag = [0u8; 20];
    if hex::decode_to_slice(hex, &mut tag).is_err() {
        return false;
    }
    ring::hmac::verify(key, body, &tag).is_ok()
}

fn raw_sha1(body: &[u8]) -> [u8; 20] {
    Sha1::digest(body).into()
}

fn benches(c: &mut Criterion, secret: &WebhookSecret, key: &ring::hmac::Key, cases: &[Case]) {
    let mut group = c.benchmark_group("verify");
    for case in cases {
        group.throughput(Throughput::Bytes(case.body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("raw_sha1", case.label),
            &case.body,
            |b, body| b.iter(|| raw_sha1(body)),
        );
        group.bench_with_input(
            BenchmarkId::new("tower_intercom", case.label),
            case,
            |b, case| b.iter(|| verify(secret, &case.body, &case.header)),
        );
        group.bench_with_input(BenchmarkId::new("ring", case.label), case, |b, case| {
            b.iter(|| ring_verify(key, &case.body, &case.header))
        });
    }
    group.finish();
}

fn summary(secret: &WebhookSecret, key: &ring::hmac::Key, cases: &[Case]) {
    println!();
    println!(
        "verify, fastest of 41 interleaved batches ({})",
        bench::machine()
    );
    println!(
        "{:>7} {:>12} {:>12} {:>12} {:>10} {:>14} {:>12}",
        "body", "raw SHA-1", "verify", "ring", "verify", "verify/raw", "ring/verify"
    );
    println!(
        "{:>7} {:>12} {:>12} {:>12} {:>10} {:>14} {:>12}",
        "", "ns", "ns", "ns", "MiB/s", "(goal <=1.05)", "(goal >=0.9)"
    );
    for case in cases {
        let (body, header) = (&case.body, &case.header);
        let times = interleaved(
            &mut [
                ("raw_sha1", &mut || keep(raw_sha1(body))),
                ("verify", &mut || keep(verify(secret, body, header))),
                ("ring", &mut || keep(ring_verify(key, body, header))),
            ],
            41,
        );
        let (raw, ours, ring) = (ns(times[0]), ns(times[1]), ns(times[2]));
        let mib_s = body.len() as f64 / (ours * 1e-9) / (1 << 20) as f64;
        println!(
            "{:>7} {raw:>12.0} {ours:>12.0} {ring:>12.0} {mib_s:>10.0} {:>14.3} {:>12.2}",
            case.label,
            ours / raw,
            ring / ours
        );
    }
}

fn main() {
    let secret = WebhookSecret::new(SECRET).expect("a valid secret");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET.as_bytes());
    let cases = cases(&secret);
    // Every contender agrees before anything is timed.
    for case in &cases {
        assert_eq!(verify(&secret, &case.body, &case.header), Ok(()));
        assert!(ring_verify(&key, &case.body, &case.header));
    }

    let mut criterion = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .configure_from_args();
    benches(&mut criterion, &secret, &key, &cases);
    criterion.final_summary();
    if bench::benchmarking() {
        summary(&secret, &key, &cases);
    }
}
