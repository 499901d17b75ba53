//! Helpers shared by the integration tests: bodies that record how they were
//! read, and an inner service that records what it received.
//!
//! `scripted.rs`, `recorder.rs` and `model.rs` use no async runtime and no
//! test-only crate, so the fuzz targets (`fuzz/src/lib.rs`) include the very
//! same files.
#![allow(dead_code)]

pub mod client;
pub mod logs;
pub mod model;
mod recorder;
pub mod requests;
mod scripted;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tower_intercom::WebhookSecret;

// Not every test binary uses every helper.
#[allow(unused_imports)]
pub use self::{
    recorder::{Recorder, Seen},
    scripted::{ScriptedBody, Step},
};

pub const SECRET: &str = "s3cr3t-client-secret";

pub fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).unwrap()
}

pub const PING: &[u8] = br#"{"type":"notification_event","app_id":"abc123","data":{"type":"notification_event_data","item":{"type":"ping","message":"Hi"}},"links":{},"id":"notif_ping","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":1700000000,"created_at":1700000000,"self":null}"#;

/// Reads a whole response body.
pub async fn body_bytes<B>(body: B) -> Bytes
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes()
}
