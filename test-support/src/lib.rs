//! What `tower-intercom`'s tests, benchmarks and fuzz targets share. A
//! development crate: never published, and no part of the library's API.
//!
//! - [`ScriptedBody`], a request body that plays a script of frames, errors
//!   and pending polls; [`Recorder`], an inner service that records what it
//!   received; [`model`], what the layer must answer to any request, and a
//!   runner that drives the real layer to compare. These three need no
//!   async runtime, so the fuzz targets use them too (with
//!   `default-features = false`).
//! - With the `runtime` feature (on by default): real loopback clients and
//!   servers ([`client`], [`requests`]), the idempotency harness
//!   ([`idempotency`]) and log capture ([`logs`]).
//! - With the `inbox` feature: the inbox's shared scenarios and
//!   [`inbox_suite!`], which runs them against a store through its
//!   harness ([`inbox`]; `inbox-sqlite`, `inbox-redis` and
//!   `inbox-postgres` add the harnesses of the three stores).
//! - [`examples`] builds and runs the crate's examples as a user does.
//! - [`fake_intercom`] is Intercom's REST API on a loopback port (tokens,
//!   `/me`, rate-limit windows, injected 429s and redirects, a record of
//!   the requests).
//! - [`redis_server`] runs a real `redis-server`, [`postgres_server`] a
//!   real PostgreSQL server, and [`proxy`] a TCP
//!   proxy whose connections can go silent; [`bench`] has the benchmarks'
//!   payloads and interleaved measurement.

pub mod bench;
#[cfg(feature = "runtime")]
pub mod client;
pub mod examples;
#[cfg(feature = "runtime")]
pub mod fake_intercom;
#[cfg(feature = "runtime")]
pub mod idempotency;
#[cfg(feature = "inbox")]
pub mod inbox;
#[cfg(feature = "runtime")]
pub mod logs;
pub mod model;
#[cfg(feature = "runtime")]
pub mod postgres_server;
pub mod prometheus;
#[cfg(feature = "runtime")]
pub mod proxy;
pub mod recorder;
pub mod redis_server;
#[cfg(feature = "runtime")]
pub mod requests;
pub mod scripted;

use tower_intercom::WebhookSecret;

pub use self::{
    recorder::{Recorder, Seen},
    scripted::{ScriptedBody, Step},
};

/// The secret most tests sign with.
pub const SECRET: &str = "s3cr3t-client-secret";

/// [`SECRET`], parsed.
pub fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).unwrap()
}

/// A compact ping notification, as Intercom sends it.
pub const PING: &[u8] = br#"{"type":"notification_event","app_id":"abc123","data":{"type":"notification_event_data","item":{"type":"ping","message":"Hi"}},"links":{},"id":"notif_ping","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":1700000000,"created_at":1700000000,"self":null}"#;

/// Reads a whole response body.
pub async fn body_bytes<B>(body: B) -> bytes::Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    body.collect().await.unwrap().to_bytes()
}
