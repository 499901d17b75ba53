//! The load generator of `scripts/inbox-load.sh`: many keep-alive HTTP/1.1
//! connections, each sending signed 2 KiB notifications one after the
//! other for a fixed time. A measuring tool, not an example to copy.
//!
//! `inbox_load --url URL [--connections 128] [--duration 10] [--warmup 1]
//! [--size 2048] [--pool N] [--repeat] [--rate R]`
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
//! errors= all_ok= exhausted= statuses=` (latencies in µs, over the
//! requests that completed after the warmup; `all_ok` counts the 200s of
//! the warmup too, which an inbox must have stored).

use std::{
    collections::BTreeMap,
    env,
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
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
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    options.url = url.ok_or("--url is required")?;
    Ok(options)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
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
    let bodies: Arc<[(Bytes, HeaderValue)]> = (0..pool as u64)
        .map(|i| {
            let body = Bytes::from(with_unique_id(&template, run, i));
            let signature = sign(&secret, &body);
            (body, signature)
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let tally = runtime.block_on(load(&options, bodies));
    let exhausted = tally.1;
    let mut tally = tally.0;
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
         all_ok={} exhausted={} statuses={}",
        ok as f64 / options.duration,
        at(0.5),
        at(0.99),
        at(1.0),
        requests - ok,
        tally.errors,
        tally.all_ok,
        u8::from(exhausted),
        statuses.join(","),
    );
    ExitCode::SUCCESS
}

async fn load(options: &Options, bodies: Arc<[(Bytes, HeaderValue)]>) -> (Tally, bool) {
    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(options.warmup);
    let end = measure_from + Duration::from_secs_f64(options.duration);
    let authority = options.url.authority().expect("a url with a host").clone();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.connections {
        let (bodies, next, exhausted) = (bodies.clone(), next.clone(), exhausted.clone());
        let url = options.url.clone();
        let authority = authority.clone();
        let repeat = options.repeat;
        let rate = options.rate;
        tasks.spawn(async move {
            let mut tally = Tally::default();
            'connect: while Instant::now() < end {
                let Ok(stream) = tokio::net::TcpStream::connect(authority.as_str()).await else {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok((mut sender, connection)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
                else {
                    tally.errors += 1;
                    continue;
                };
                tokio::spawn(connection);
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
                    if i >= bodies.len() && !repeat {
                        exhausted.store(true, Ordering::Relaxed);
                        break 'connect;
                    }
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let (body, signature) = &bodies[i % bodies.len()];
                    let request = Request::post(url.clone())
                        .header("host", authority.as_str())
                        .header("content-type", "application/json")
                        .header("user-agent", "intercom-parrot-service-rb")
                        .header("x-hub-signature", signature.clone())
                        .body(Full::new(body.clone()))
                        .expect("a valid request");
                    if sender.ready().await.is_err() {
                        tally.errors += 1;
                        continue 'connect;
                    }
                    let sent = due.unwrap_or_else(Instant::now);
                    let status = match sender.send_request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            if response.into_body().collect().await.is_err() {
                                tally.errors += 1;
                                continue 'connect;
                            }
                            status
                        }
                        Err(_) => {
                            tally.errors += 1;
                            continue 'connect;
                        }
                    };
                    let done = Instant::now();
                    if status == 200 {
                        tally.all_ok += 1;
                    }
                    if sent >= measure_from && done <= end {
                        let us = (done - sent).as_micros().min(u32::MAX as u128) as u32;
                        tally.latencies_us.push(us);
                        *tally.statuses.entry(status).or_default() += 1;
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
        for (status, n) in tally.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.errors += tally.errors;
        total.all_ok += tally.all_ok;
    }
    (total, exhausted.load(Ordering::Relaxed))
}
