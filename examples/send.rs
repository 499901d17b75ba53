//! Run with `cargo run --example send -- [--topic TOPIC] [--file PAYLOAD.json] [--secret-env NAME] [--tamper] URL`
//!
//! Sends a signed Intercom webhook to a receiver, so you can test it without
//! a public URL:
//!
//! ```text
//! # terminal 1: a receiver (prints its development secret when none is set)
//! INTERCOM_WEBHOOK_SECRET=my-dev-secret cargo run --example tonic --features axum
//! # terminal 2: a signed conversation reply, then a tampered one (401)
//! INTERCOM_WEBHOOK_SECRET=my-dev-secret cargo run --example send -- \
//!     --topic conversation.user.replied http://127.0.0.1:3000/webhooks/intercom
//! INTERCOM_WEBHOOK_SECRET=my-dev-secret cargo run --example send -- \
//!     --tamper http://127.0.0.1:3000/webhooks/intercom
//! ```
//!
//! - `--topic TOPIC`: builds a realistic notification for the topic (default
//!   `ping`): a conversation with parts for conversation topics, a contact,
//!   a company, a ticket, an admin, or only identifying fields for
//!   `*.deleted` topics. Fresh `id` and timestamps each time.
//! - `--file PATH`: sends the file's bytes exactly as they are instead
//!   (`-` reads standard input).
//! - `--secret-env NAME`: the environment variable holding the secret
//!   (default `INTERCOM_WEBHOOK_SECRET`). The secret is never printed.
//! - `--tamper`: flips one bit of the body *after* signing, to see the
//!   receiver refuse it with 401.
//!
//! It signs the exact bytes it sends with `X-Hub-Signature: sha1=…` as
//! Intercom does, POSTs them over HTTP/1.1 (plain `http://`: point it at a
//! local receiver), and prints the response status and body.

use std::{
    env,
    error::Error,
    fmt::Write as _,
    io::Read as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tower_intercom::{notification::Topic, sign, WebhookSecret};

/// The default environment variable for the secret.
const DEFAULT_SECRET_ENV: &str = "INTERCOM_WEBHOOK_SECRET";

/// How long to wait for the receiver. Intercom itself gives up after 5 s.
const TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: cargo run --example send -- [--topic TOPIC] [--file PAYLOAD.json] \
[--secret-env NAME] [--tamper] URL

  --topic TOPIC      build a realistic notification for TOPIC (default: ping)
  --file PATH        send the bytes of PATH as they are (- for standard input)
  --secret-env NAME  read the secret from $NAME (default: INTERCOM_WEBHOOK_SECRET)
  --tamper           flip one bit of the body after signing (expect 401)
  URL                the receiver, e.g. http://127.0.0.1:3000/webhooks/intercom";

/// What to send, from the command line.
#[derive(Debug)]
struct Args {
    /// The topic of the generated notification.
    topic: Topic,
    /// Send this file's bytes instead of a generated notification.
    file: Option<PathBuf>,
    /// The environment variable holding the secret.
    secret_env: String,
    /// Flip one bit of the body after signing.
    tamper: bool,
    /// Where to send it.
    url: Uri,
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    /// Send a webhook.
    Send(Args),
    /// Print the usage.
    Help,
}

/// Parses the arguments that follow the program name.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut topic = None;
    let mut file = None;
    let mut secret_env = None;
    let mut tamper = false;
    let mut url = None;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--topic" => topic = Some(Topic::from(value("--topic")?)),
            "--file" => file = Some(PathBuf::from(value("--file")?)),
            "--secret-env" => secret_env = Some(value("--secret-env")?),
            "--tamper" => tamper = true,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ if url.is_some() => return Err(format!("unexpected argument {arg:?}")),
            _ => url = Some(arg),
        }
    }
    if topic.is_some() && file.is_some() {
        return Err("--topic and --file cannot be used together".to_owned());
    }
    let url = url.ok_or("missing URL")?;
    let url: Uri = url
        .parse()
        .map_err(|err| format!("bad URL {url:?}: {err}"))?;
    match url.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(
                "https is not supported: this sender speaks plain http to a local \
                        receiver (use http://127.0.0.1:PORT/...)"
                    .to_owned(),
            )
        }
        _ => return Err(format!("the URL must start with http://, not {url}")),
    }
    if url.host().is_none() {
        return Err(format!("the URL has no host: {url}"));
    }
    Ok(Command::Send(Args {
        topic: topic.unwrap_or(Topic::PING),
        file,
        secret_env: secret_env.unwrap_or_else(|| DEFAULT_SECRET_ENV.to_owned()),
        tamper,
        url,
    }))
}

/// What happened.
#[derive(Debug)]
struct Outcome {
    /// The bytes sent (after tampering, if asked).
    sent: Bytes,
    /// The `X-Hub-Signature` sent.
    signature: String,
    /// The receiver's status.
    status: StatusCode,
    /// The receiver's body.
    body: Bytes,
}

/// Builds, signs and sends the webhook `args` describe.
async fn run(args: &Args) -> Result<Outcome, String> {
    let secret = WebhookSecret::from_env(&args.secret_env).map_err(|err| {
        format!("{err}: set it to the receiver's secret (the development secret the example receivers print, or your app's client secret)")
    })?;
    let body = match &args.file {
        Some(path) => read_file(path)?,
        None => sample_notification(&args.topic, &notification_id(), unix_now()),
    };
    let (sent, signature) = sign_body(body, &secret, args.tamper)?;
    let request = post_request(&args.url, sent.clone(), signature.clone())?;
    let (status, body) = post(request)
        .await
        .map_err(|err| format!("sending to {}: {err}", args.url))?;
    Ok(Outcome {
        sent,
        signature: signature.to_str().unwrap_or_default().to_owned(),
        status,
        body,
    })
}

/// Signs `body` as Intercom does and returns the bytes to send with their
/// `X-Hub-Signature`. With `tamper`, one bit of the body is flipped *after*
/// signing, so the signature no longer matches.
fn sign_body(
    body: Vec<u8>,
    secret: &WebhookSecret,
    tamper: bool,
) -> Result<(Bytes, HeaderValue), String> {
    let signature = sign(secret, &body);
    let mut body = body;
    if tamper {
        let middle = body.len() / 2;
        let Some(byte) = body.get_mut(middle) else {
            return Err("--tamper needs a body with at least one byte".to_owned());
        };
        *byte ^= 0x01;
    }
    Ok((Bytes::from(body), signature))
}

/// A POST of `body` to `url` with the signature header, as Intercom sends
/// webhooks.
fn post_request(
    url: &Uri,
    body: Bytes,
    signature: HeaderValue,
) -> Result<Request<Full<Bytes>>, String> {
    let path = url.path_and_query().map_or("/", |path| path.as_str());
    let host = url
        .authority()
        .ok_or_else(|| format!("the URL has no host: {url}"))?;
    Request::post(path)
        .header(header::HOST, host.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "tower-intercom-send/0.1")
        .header("x-hub-signature", signature)
        .body(Full::new(body))
        .map_err(|err| err.to_string())
}

/// Sends `request` to the host of its `Host` header over HTTP/1.1 and reads
/// the whole response.
async fn post(
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), Box<dyn Error + Send + Sync>> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .ok_or("no Host header")?;
    let authority: http::uri::Authority = host.parse()?;
    let address = (authority.host(), authority.port_u16().unwrap_or(80));
    let exchange = async {
        let stream = TcpStream::connect(address).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        drop(sender);
        let _ = connection.await;
        Ok::<_, Box<dyn Error + Send + Sync>>((status, body))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no response within {} s", TIMEOUT.as_secs()))?
}

/// A realistic notification for `topic`, compact as Intercom sends it.
fn sample_notification(topic: &Topic, id: &str, now: u64) -> Vec<u8> {
    let notification = json!({
        "type": "notification_event",
        "app_id": "a86dr8yl",
        "data": {
            "type": "notification_event_data",
            "item": sample_item(topic, now),
        },
        "links": {},
        "id": id,
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": now,
        "created_at": now,
        "self": null,
    });
    notification.to_string().into_bytes()
}

/// The `data.item` Intercom sends for `topic`.
fn sample_item(topic: &Topic, now: u64) -> Value {
    let family = topic.as_str().split('.').next().unwrap_or_default();
    if topic.is_deleted() {
        return json!({ "type": family, "id": "6650c1f2a1b2c3d4e5f60718", "deleted": true });
    }
    match family {
        "ping" => json!({ "type": "ping", "message": "Hello from tower-intercom's sender" }),
        "conversation" | "conversation_part" => conversation(topic, now),
        "contact" | "visitor" | "granular" => contact(topic, now),
        "company" => company(now),
        "ticket" => ticket(now),
        "admin" => json!({
            "type": "admin",
            "id": "5817354",
            "name": "Sam Support",
            "email": "sam@example.com",
            "job_title": "Support engineer",
            "away_mode_enabled": false,
            "away_mode_reassign": false,
            "has_inbox_seat": true,
            "team_ids": [],
        }),
        _ => json!({ "type": family, "id": "1" }),
    }
}

fn author(admin: bool) -> Value {
    if admin {
        json!({ "type": "admin", "id": "5817354", "name": "Sam Support", "email": "sam@example.com" })
    } else {
        json!({ "type": "user", "id": "6650c1f2a1b2c3d4e5f60718", "name": "Alice Example", "email": "alice@example.com" })
    }
}

fn conversation(topic: &Topic, now: u64) -> Value {
    let by_admin = topic.as_str().contains(".admin.");
    let part_type = match topic.as_str() {
        "conversation.admin.closed" => "close",
        "conversation.admin.opened" => "open",
        "conversation.admin.assigned" | "conversation.admin.open.assigned" => "assignment",
        "conversation.admin.noted" => "note",
        "conversation.admin.snoozed" => "snoozed",
        "conversation.admin.unsnoozed" => "timer_unsnooze",
        _ => "comment",
    };
    let state = match part_type {
        "close" => "closed",
        "snoozed" => "snoozed",
        _ => "open",
    };
    json!({
        "type": "conversation",
        "id": "215468012345678",
        "created_at": now.saturating_sub(1500),
        "updated_at": now,
        "title": null,
        "admin_assignee_id": 5817354,
        "team_assignee_id": null,
        "open": state != "closed",
        "state": state,
        "read": false,
        "priority": "not_priority",
        "waiting_since": if by_admin { Value::Null } else { json!(now) },
        "snoozed_until": null,
        "source": {
            "type": "conversation",
            "id": "2284173615",
            "delivered_as": "customer_initiated",
            "subject": "",
            "body": "<p>Hi! My invoice for May shows two charges.</p>",
            "author": author(false),
            "attachments": [],
            "url": "https://app.example.com/billing",
            "redacted": false,
        },
        "contacts": {
            "type": "contact.list",
            "contacts": [{ "type": "contact", "id": "6650c1f2a1b2c3d4e5f60718", "external_id": "user-42" }],
        },
        "teammates": { "type": "admin.list", "admins": [{ "type": "admin", "id": "5817354" }] },
        "tags": { "type": "tag.list", "tags": [] },
        "custom_attributes": {},
        "conversation_parts": {
            "type": "conversation_part.list",
            "conversation_parts": [{
                "type": "conversation_part",
                "id": "23456789999",
                "part_type": part_type,
                "body": if by_admin {
                    "<p>Thanks Alice, the duplicate charge is refunded.</p>"
                } else {
                    "<p>The second charge is from May 3rd.</p>"
                },
                "created_at": now,
                "updated_at": now,
                "notified_at": now,
                "assigned_to": null,
                "author": author(by_admin),
                "attachments": [],
                "external_id": null,
                "redacted": false,
            }],
            "total_count": 1,
        },
    })
}

fn contact(topic: &Topic, now: u64) -> Value {
    let role = if topic.as_str().starts_with("contact.lead.") {
        "lead"
    } else {
        "user"
    };
    json!({
        "type": "contact",
        "id": "6650c1f2a1b2c3d4e5f60718",
        "workspace_id": "a86dr8yl",
        "external_id": if role == "user" { json!("user-42") } else { Value::Null },
        "role": role,
        "email": "alice@example.com",
        "phone": null,
        "name": "Alice Example",
        "owner_id": null,
        "has_hard_bounced": false,
        "marked_email_as_spam": false,
        "unsubscribed_from_emails": false,
        "created_at": now.saturating_sub(60),
        "updated_at": now,
        "signed_up_at": if role == "user" { json!(now.saturating_sub(60)) } else { Value::Null },
        "last_seen_at": null,
        "location": { "type": "location", "country": "Ireland", "region": "Dublin", "city": "Dublin" },
        "custom_attributes": { "plan": "pro" },
        "tags": { "type": "list", "data": [], "total_count": 0, "has_more": false },
        "companies": { "type": "list", "data": [], "total_count": 0, "has_more": false },
    })
}

fn company(now: u64) -> Value {
    json!({
        "type": "company",
        "id": "531ee472cce572a6ec000006",
        "name": "Example Company Inc.",
        "company_id": "6",
        "remote_created_at": 1394531169,
        "created_at": now,
        "updated_at": now,
        "monthly_spend": 1200,
        "session_count": 0,
        "user_count": 0,
        "size": 85,
        "website": "https://example.com",
        "industry": "Software",
        "plan": { "type": "plan", "id": "269315", "name": "Pro" },
        "custom_attributes": {},
        "tags": { "type": "tag.list", "tags": [] },
        "segments": { "type": "segment.list", "segments": [] },
    })
}

fn ticket(now: u64) -> Value {
    json!({
        "type": "ticket",
        "id": "1295",
        "ticket_id": "1390",
        "category": "Customer",
        "ticket_attributes": {
            "_default_title_": "Double charge on May invoice",
            "_default_description_": "Customer reports two charges for May.",
        },
        "ticket_state": {
            "type": "ticket_state",
            "id": "7493",
            "category": "submitted",
            "internal_label": "Submitted",
            "external_label": "Submitted",
        },
        "ticket_type": { "type": "ticket_type", "id": "14", "name": "Billing issue" },
        "contacts": {
            "type": "contact.list",
            "contacts": [{ "type": "contact", "id": "6650c1f2a1b2c3d4e5f60718", "external_id": "user-42" }],
        },
        "admin_assignee_id": "0",
        "team_assignee_id": "0",
        "created_at": now,
        "updated_at": now,
        "open": true,
        "snoozed_until": null,
        "is_shared": true,
    })
}

/// A fresh notification id, `notif_` and a random UUID-shaped suffix.
fn notification_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex = hex::encode(bytes);
    let mut id = String::from("notif_");
    for (i, range) in [0..8, 8..12, 12..16, 16..20, 20..32]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            id.push('-');
        }
        let _ = write!(id, "{}", &hex[range]);
    }
    id
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|err| format!("reading standard input: {err}"))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(env::args().skip(1)) {
        Ok(Command::Send(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let what = match &args.file {
        Some(path) => format!("the bytes of {}", path.display()),
        None => format!("a {} notification", args.topic),
    };
    let tampered = if args.tamper {
        " (tampered after signing)"
    } else {
        ""
    };
    println!(
        "POST {} with {what}{tampered}, signed with ${}",
        args.url, args.secret_env
    );
    match run(&args).await {
        Ok(outcome) => {
            println!("x-hub-signature: {}", outcome.signature);
            println!("sent {} bytes", outcome.sent.len());
            let reason = outcome.status.canonical_reason().unwrap_or("");
            println!("{} {reason}", outcome.status.as_u16());
            if !outcome.body.is_empty() {
                println!("{}", String::from_utf8_lossy(&outcome.body));
            }
            if outcome.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
