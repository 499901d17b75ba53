//! What the `verify` and `middleware` benchmarks share: realistic Intercom notifications of a given
//! size, and an interleaved measurement for the ratios they print.
//!
//! Criterion measures one function after the other; on a shared machine the
//! load can change between two of them and skew a ratio. The summary runs
//! every contender in turn, round after round, in batches of about 5 ms, and
//! keeps each one's fastest batch: other work on the machine only ever adds
//! time, so the fastest batch is the closest to the code's own cost, and
//! all contenders get the same chances at a quiet moment.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

/// The body sizes the issue asks for, with their labels.
pub const SIZES: [(usize, &str); 3] = [
    (2 << 10, "2KiB"),
    (16 << 10, "16KiB"),
    (256 << 10, "256KiB"),
];

/// A `conversation.user.replied` notification of exactly `len` bytes
/// (at least a few hundred): the envelope Intercom sends, with as many
/// conversation parts as fit, padded in the last part's body.
pub fn notification(len: usize) -> Vec<u8> {
    let head = r#"{"type":"notification_event","app_id":"abc123","data":{"type":"notification_event_data","item":{"type":"conversation","id":"147","created_at":1700000000,"updated_at":1700000420,"title":null,"admin_assignee_id":4242,"team_assignee_id":null,"open":true,"state":"open","read":false,"tags":{"type":"tag.list","tags":[]},"source":{"type":"conversation","id":"403918330","delivered_as":"customer_initiated","subject":"","body":"<p>Hi, my invoice is wrong</p>","author":{"type":"user","id":"5f0c1e","name":"Ada","email":"ada@example.com"}},"conversation_parts":{"type":"conversation_part.list","conversation_parts":["#;
    let tail = r#"],"total_count":1}}},"links":{},"id":"notif_8a0c2b5e-0f4b-4c36-9b71-1e2a3f4b5c6d","topic":"conversation.user.replied","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":1700000420,"created_at":1700000420,"self":null}"#;
    let part = |n: usize, text: &str| {
        format!(
            r#"{{"type":"conversation_part","id":"{}","part_type":"comment","body":"<p>{text}</p>","created_at":1700000{n:03},"updated_at":1700000{n:03},"notified_at":1700000{n:03},"assigned_to":null,"author":{{"type":"user","id":"5f0c1e","name":"Ada","email":"ada@example.com"}},"attachments":[],"external_id":null,"redacted":false}}"#,
            9000 + n
        )
    };
    let sentence = "Thanks for the quick answer, the amount on the last invoice still looks off. ";
    let mut out = String::from(head);
    let mut n = 0;
    loop {
        let full = part(n, &sentence.repeat(3));
        // Leave room for the closing part, padded to the exact size.
        if out.len() + full.len() + 1 + part(n + 1, "").len() + tail.len() + 1 > len {
            break;
        }
        if n > 0 {
            out.push(',');
        }
        out.push_str(&full);
        n += 1;
    }
    if n > 0 {
        out.push(',');
    }
    let room = len.saturating_sub(out.len() + part(n, "").len() + tail.len());
    let text: String = sentence.chars().cycle().take(room).collect();
    out.push_str(&part(n, &text));
    out.push_str(tail);
    assert_eq!(out.len(), len, "notification of the requested size");
    out.into_bytes()
}

/// Runs every contender in turn, `rounds` times, each for a batch of about
/// 5 ms, and returns each one's time per call in its fastest batch.
pub fn interleaved(contenders: &mut [(&str, &mut dyn FnMut())], rounds: usize) -> Vec<Duration> {
    let batch = Duration::from_millis(5);
    // Calibrate: how many calls fill a batch.
    let iters: Vec<u64> = contenders
        .iter_mut()
        .map(|(_, run)| {
            let mut n = 1u64;
            loop {
                let start = Instant::now();
                for _ in 0..n {
                    run();
                }
                if start.elapsed() >= batch / 4 || n >= 1 << 24 {
                    let per = start.elapsed().as_secs_f64() / n as f64;
                    break ((batch.as_secs_f64() / per.max(1e-9)) as u64).max(1);
                }
                n *= 2;
            }
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); contenders.len()];
    for round in 0..rounds {
        for k in 0..contenders.len() {
            // Rotate the order so no contender always follows the same one.
            let i = (round + k) % contenders.len();
            let run = &mut contenders[i].1;
            let start = Instant::now();
            for _ in 0..iters[i] {
                run();
            }
            samples[i].push(start.elapsed().as_secs_f64() / iters[i] as f64);
        }
    }
    samples
        .into_iter()
        .map(|s| Duration::from_secs_f64(s.into_iter().fold(f64::INFINITY, f64::min)))
        .collect()
}

/// True when the binary was started by `cargo bench` (not `cargo test`,
/// which runs each benchmark once, as a test).
pub fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The machine, for the printed figures.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let model = info
                .lines()
                .find(|l| l.starts_with("model name"))?
                .split(':')
                .nth(1)?
                .trim()
                .to_owned();
            let sha_ni = info
                .lines()
                .any(|l| l.starts_with("flags") && l.contains(" sha_ni"));
            Some(format!(
                "{model}, SHA-NI: {}",
                if sha_ni { "yes" } else { "no" }
            ))
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}; {cores} cores; load average {load}")
}

/// Nanoseconds, for printing.
pub fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Keeps the optimiser from dropping a result.
pub fn keep<T>(value: T) {
    black_box(value);
}

/// The id [`notification`] carries, 42 bytes.
const NOTIFICATION_ID: &[u8] = b"notif_8a0c2b5e-0f4b-4c36-9b71-1e2a3f4b5c6d";

/// `body` (made by [`notification`]) with its id replaced by a unique one
/// of the same length, `notif_{run:08x}-{n:027}`, so the size stays
/// exact: the load tests of the inbox send each notification once, the
/// way Intercom does, so that they measure inserts, not the dedupe path.
pub fn with_unique_id(body: &[u8], run: u32, n: u64) -> Vec<u8> {
    let at = body
        .windows(NOTIFICATION_ID.len())
        .position(|window| window == NOTIFICATION_ID)
        .expect("a body made by notification()");
    let id = format!("notif_{run:08x}-{n:027}");
    assert_eq!(id.len(), NOTIFICATION_ID.len());
    let mut out = body.to_vec();
    out[at..at + id.len()].copy_from_slice(id.as_bytes());
    out
}
