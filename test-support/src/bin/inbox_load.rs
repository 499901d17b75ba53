//! The load generator of `scripts/inbox-load.sh`: many keep-alive HTTP/1.1
//! connections, each sending signed 2 KiB notifications one after the
//! other for a fixed time. A measuring tool, not an example to copy.
//!
//! Each request is written out whole (head, signature and body) before the
//! clock starts, and sent with one write; responses are read with
//! `httparse` (they must carry a `content-length`). The generator shares
//! its core with redis-server in the load script, so what it costs per
//! request is taken from Redis: like `wrk`, it does no more than that.
//!
//! `inbox_load --url URL [--connections 128] [--duration 10] [--warmup 1]
//! [--size 2048] [--pool N] [--repeat] [--rate R] [--timeline PATH]`
//!
//! Closed loop by default: each connection sends its next request as soon
//! as the previous one is answered, so the run finds the receiver's
//! capacity, and the latencies include the wait of 128 requests queued
//! at once. With `--rate R`, open loop: request `i` is due at
//! `start + i / R` whatever happened before, like Intercom sending at a
//! steady rate; each latency is measured from when the request was due
//! (not when a connection was free to send it), so a stalled receiver's
//! backlog shows in the latencies instead of slowing the sender down (no
//! coordinated omission). Timer resolution adds up to about 1 ms to
//! those latencies.
//!
//! Every body carries its own notification id and is signed (with
//! `INTERCOM_WEBHOOK_SECRET`) before the clock starts: `--pool` bodies
//! (default 30,000, or the `--rate`, per second of warmup + duration). Without `--repeat`,
//! each is sent once, as Intercom does, and a run that uses them all stops
//! early and says `exhausted=1`; with it, they are sent again in turn
//! (for receivers without an inbox). Runs on one thread: pin it with
//! `taskset`.
//!
//! Prints one line: `RESULT rps= p50= p99= max= requests= ok= non2xx=
//! errors= all_ok= exhausted= statuses= busy= load_cpu=` (latencies in µs,
//! over the requests that completed after the warmup; `all_ok` counts the
//! 200s of the warmup too, which an inbox must have stored). `busy` is the
//! share of each core's time spent busy over the measured window (from
//! `/proc/stat`, comma-separated by core, `-` where it cannot be read),
//! and `load_cpu` the share of a core the generator itself used then: in
//! the load script the generator shares its core with redis-server, and a
//! nearly full core shows in the tail latencies.
//!
//! With `--timeline PATH`, it also writes the measured requests window by
//! window, 100 ms each by when the request was sent (due, in open loop):
//! one line per window, `ms_after_start requests p50_us p99_us max_us`.
//! It tells a tail made of a few stalls (a fork, the machine pausing)
//! from one spread over the whole run.

use std::{
    collections::BTreeMap,
    env, io,
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Uri};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower_intercom::{sign, WebhookSecret};
use tower_intercom_test_support::bench::{notification, with_unique_id};

struct Options {
    url: Uri,
    connections: usize,
    duration: f64,
    warmup: f64,
    size: usize,
    pool: Option<usize>,
    repeat: bool,
    rate: Option<f64>,
    timeline: Option<std::path::PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut url = None;
    let mut options = Options {
        url: Uri::default(),
        connections: 128,
        duration: 10.0,
        warmup: 1.0,
        size: 2048,
        pool: None,
        repeat: false,
        rate: None,
        timeline: None,
    };
    let mut args = env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--repeat" {
            options.repeat = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: cannot use {value:?}");
        match flag.as_str() {
            "--url" => {
                url = Some(
                    value
                        .parse::<Uri>()
                        .map_err(|_| format!("bad url {value}"))?,
                )
            }
            "--connections" => options.connections = value.parse().map_err(|_| bad())?,
            "--duration" => options.duration = value.parse().map_err(|_| bad())?,
            "--warmup" => options.warmup = value.parse().map_err(|_| bad())?,
            "--size" => options.size = value.parse().map_err(|_| bad())?,
            "--pool" => options.pool = Some(value.parse().map_err(|_| bad())?),
            "--rate" => {
                let rate: f64 = value.parse().map_err(|_| bad())?;
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(bad());
                }
                options.rate = Some(rate);
            }
            "--timeline" => options.timeline = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    options.url = url.ok_or("--url is required")?;
    Ok(options)
}

/// The width of a `--timeline` window, in ms.
const WINDOW_MS: u64 = 100;

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// `(window, latency µs)` of each measured request, for `--timeline`.
    windows: Vec<(u32, u32)>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    all_ok: u64,
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let secret = match WebhookSecret::from_env("INTERCOM_WEBHOOK_SECRET") {
        Ok(secret) => secret,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Bodies and signatures, before the clock starts.
    let pool = options
        .pool
        .unwrap_or(
            ((options.duration + options.warmup) * options.rate.unwrap_or(30_000.0)) as usize + 1,
        )
        .max(1);
    let template = notification(options.size);
    let run = (std::process::id() as u64
        ^ std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() as u64) as u32;
    let requests: Arc<[Bytes]> = (0..pool as u64)
        .map(|i| {
            let body = with_unique_id(&template, run, i);
            let signature = sign(&secret, &body);
            request(&options.url, &body, &signature)
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (mut tally, exhausted, usage) = runtime.block_on(load(&options, requests));
    if let Some(path) = &options.timeline {
        if let Err(err) = std::fs::write(path, timeline(std::mem::take(&mut tally.windows))) {
            eprintln!("error: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    }
    tally.latencies_us.sort_unstable();
    let at = |q: f64| {
        let l = &tally.latencies_us;
        if l.is_empty() {
            0
        } else {
            l[((l.len() - 1) as f64 * q).round() as usize]
        }
    };
    let requests = tally.latencies_us.len() as u64;
    let ok = tally.statuses.get(&200).copied().unwrap_or(0);
    let statuses: Vec<String> = tally
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect();
    println!(
        "RESULT rps={:.1} p50={} p99={} max={} requests={requests} ok={ok} non2xx={} errors={} \
         all_ok={} exhausted={} statuses={} busy={} load_cpu={}",
        ok as f64 / options.duration,
        at(0.5),
        at(0.99),
        at(1.0),
        requests - ok,
        tally.errors,
        tally.all_ok,
        u8::from(exhausted),
        statuses.join(","),
        usage.busy,
        usage.load_cpu,
    );
    ExitCode::SUCCESS
}

async fn load(options: &Options, requests: Arc<[Bytes]>) -> (Tally, bool, Usage) {
    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(options.warmup);
    let end = measure_from + Duration::from_secs_f64(options.duration);
    let usage = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = Sample::take();
        tokio::time::sleep_until(end.into()).await;
        Usage::between(before, Sample::take())
    });
    let authority = options.url.authority().expect("a url with a host").clone();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.connections {
        let (requests, next, exhausted) = (requests.clone(), next.clone(), exhausted.clone());
        let authority = authority.clone();
        let repeat = options.repeat;
        let rate = options.rate;
        let timeline = options.timeline.is_some();
        tasks.spawn(async move {
            let mut tally = Tally::default();
            let mut buffer = Vec::with_capacity(4096);
            'connect: while Instant::now() < end {
                let Ok(mut stream) = TcpStream::connect(authority.as_str()).await else {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                buffer.clear();
                loop {
                    if Instant::now() >= end {
                        break 'connect;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    // Open loop: request `i` is due at its own time.
                    let due = rate.map(|rate| start + Duration::from_secs_f64(i as f64 / rate));
                    if due.is_some_and(|due| due >= end) {
                        break 'connect;
                    }
                    if i >= requests.len() && !repeat {
                        exhausted.store(true, Ordering::Relaxed);
                        break 'connect;
                    }
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let sent = due.unwrap_or_else(Instant::now);
                    let answered = async {
                        stream.write_all(&requests[i % requests.len()]).await?;
                        read_response(&mut stream, &mut buffer).await
                    };
                    let Ok((status, keep_alive)) = answered.await else {
                        tally.errors += 1;
                        continue 'connect;
                    };
                    let done = Instant::now();
                    if status == 200 {
                        tally.all_ok += 1;
                    }
                    if sent >= measure_from && done <= end {
                        let us = (done - sent).as_micros().min(u32::MAX as u128) as u32;
                        tally.latencies_us.push(us);
                        if timeline {
                            let window = (sent - start).as_millis() as u64 / WINDOW_MS;
                            tally.windows.push((window as u32, us));
                        }
                        *tally.statuses.entry(status).or_default() += 1;
                    }
                    if !keep_alive {
                        continue 'connect;
                    }
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        let tally = tally.expect("a load task");
        total.latencies_us.extend(tally.latencies_us);
        total.windows.extend(tally.windows);
        for (status, n) in tally.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.errors += tally.errors;
        total.all_ok += tally.all_ok;
    }
    let usage = usage.await.unwrap_or_default();
    (total, exhausted.load(Ordering::Relaxed), usage)
}

/// The `--timeline` lines: for each window with requests, when it starts
/// (ms after the start), how many, and their p50, p99 and largest latency.
fn timeline(mut windows: Vec<(u32, u32)>) -> String {
    windows.sort_unstable();
    let mut lines = String::new();
    for chunk in windows.chunk_by(|a, b| a.0 == b.0) {
        let at = |q: f64| chunk[((chunk.len() - 1) as f64 * q).round() as usize].1;
        lines += &format!(
            "{} {} {} {} {}\n",
            u64::from(chunk[0].0) * WINDOW_MS,
            chunk.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    lines
}

/// What the cores, and the generator, did over the measured window.
struct Usage {
    busy: String,
    load_cpu: String,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            busy: "-".into(),
            load_cpu: "-".into(),
        }
    }
}

/// The cores' and the generator's CPU time at one instant.
struct Sample {
    cores: Option<Vec<[u64; 2]>>,
    own_ns: Option<u64>,
    at: Instant,
}

impl Sample {
    fn take() -> Self {
        Self {
            cores: cores(),
            own_ns: own_cpu_ns(),
            at: Instant::now(),
        }
    }
}

impl Usage {
    fn between(before: Sample, after: Sample) -> Self {
        let mut usage = Self::default();
        if let (Some(cores_before), Some(cores_after)) = (&before.cores, &after.cores) {
            let shares: Vec<String> = cores_before
                .iter()
                .zip(cores_after)
                .map(|([busy0, total0], [busy1, total1])| {
                    let total = total1.saturating_sub(*total0).max(1);
                    format!("{:.2}", busy1.saturating_sub(*busy0) as f64 / total as f64)
                })
                .collect();
            usage.busy = shares.join(",");
        }
        if let (Some(own_before), Some(own_after)) = (before.own_ns, after.own_ns) {
            let wall = (after.at - before.at).as_nanos().max(1) as f64;
            usage.load_cpu = format!("{:.2}", own_after.saturating_sub(own_before) as f64 / wall);
        }
        usage
    }
}

/// Busy and total time of each core (`cpuN` lines of `/proc/stat`, in
/// ticks; idle and iowait are the time not busy).
fn cores() -> Option<Vec<[u64; 2]>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cores: Vec<[u64; 2]> = stat
        .lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .map(|field| field.parse().ok())
                .collect::<Option<_>>()?;
            let total: u64 = fields.iter().sum();
            let idle = fields.get(3)? + fields.get(4)?;
            Some([total - idle, total])
        })
        .collect();
    (!cores.is_empty()).then_some(cores)
}

/// CPU time of this thread (the generator runs on one), in ns.
fn own_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The whole request, head and body, written before the clock starts, so
/// that sending one costs a single write.
fn request(url: &Uri, body: &[u8], signature: &HeaderValue) -> Bytes {
    let authority = url.authority().expect("a url with a host");
    let path = url.path_and_query().map_or("/", |path| path.as_str());
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         user-agent: intercom-parrot-service-rb\r\ncontent-length: {}\r\nx-hub-signature: ",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(signature.as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body);
    Bytes::from(request)
}

/// Reads one response (its head with `httparse`, then a `content-length`
/// body) and returns its status and whether the connection stays open.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buffer) {
            Ok(httparse::Status::Complete(head)) => {
                let status = response.code.ok_or_else(|| invalid("no status"))?;
                let mut length = None;
                let mut keep_alive = response.version == Some(1);
                for header in response.headers.iter() {
                    if header.name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(header.value)
                            .ok()
                            .and_then(|value| value.trim().parse::<usize>().ok());
                    } else if header.name.eq_ignore_ascii_case("connection") {
                        keep_alive &= !header.value.eq_ignore_ascii_case(b"close");
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(invalid("a chunked response: not read by this generator"));
                    }
                }
                let length = length.ok_or_else(|| invalid("no content-length"))?;
                while buffer.len() < head + length {
                    read_more(stream, buffer).await?;
                }
                buffer.drain(..head + length);
                return Ok((status, keep_alive));
            }
            Ok(httparse::Status::Partial) => read_more(stream, buffer).await?,
            Err(_) => return Err(invalid("a malformed response")),
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    if buffer.len() > 64 * 1024 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a response over 64 KiB",
        ));
    }
    buffer.reserve(4096);
    if stream.read_buf(buffer).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
