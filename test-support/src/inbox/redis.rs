//! The Redis store's harness: a `redis-server` of its own per test, with
//! an append-only file (so that what it acknowledged survives its process
//! being killed; not synced, which would slow every test down), frozen
//! (`SIGSTOP`) to stall it, killed to take it down.

use std::collections::HashSet;

use redis::{aio::MultiplexedConnection, AsyncCommands};
use tower_intercom::{
    inbox::{RedisInbox, RedisOptions, RedisStore},
    StoreError,
};

use super::{millis, InboxHarness, Inspect, StoreSettings};
use crate::redis_server::{RedisServer, AOF_UNSYNCED};

/// Connects the Redis store at `url` with the options `configure` sets:
/// where the Redis tests make every store.
pub async fn connect_store(
    url: &str,
    configure: impl FnOnce(RedisOptions) -> RedisOptions,
) -> Result<RedisStore, StoreError> {
    configure(RedisOptions::default()).connect(url).await
}

/// An inbox over the store [`connect_store`] connects.
pub async fn connect_inbox(
    url: &str,
    configure: impl FnOnce(RedisOptions) -> RedisOptions,
) -> RedisInbox {
    RedisInbox::new(connect_store(url, configure).await.unwrap())
}

/// An inbox over the store at `server` with the default settings.
pub async fn inbox(server: &RedisServer) -> RedisInbox {
    connect_inbox(&server.url(), |options| options).await
}

/// A plain connection, to look at the keys as another client would.
pub async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The key `name` under the default prefix.
pub fn key(name: &str) -> String {
    format!("{{tower-intercom:inbox}}:{name}")
}

/// The length of the stream at `key`.
pub async fn xlen(redis: &mut MultiplexedConnection, key: impl AsRef<str>) -> usize {
    redis::cmd("XLEN")
        .arg(key.as_ref())
        .query_async(redis)
        .await
        .unwrap()
}

/// One test's `redis-server`.
pub struct RedisHarness {
    /// The server.
    pub server: RedisServer,
}

impl InboxHarness for RedisHarness {
    type Store = RedisStore;

    const READS_FAIL_WHEN_DOWN: bool = true;
    const GIVEN_UP_INSERTS_ARE_DROPPED: bool = false;

    async fn start() -> Self {
        Self {
            server: RedisServer::start_with(AOF_UNSYNCED),
        }
    }

    async fn store(&self, settings: &StoreSettings) -> RedisStore {
        connect_store(&self.server.url(), |mut options| {
            if let Some(timeout) = settings.timeout {
                options = options.timeout(timeout);
            }
            if let Some(waiting) = settings.waiting_inserts {
                options = options.max_in_flight(waiting);
            }
            options
        })
        .await
        .unwrap()
    }

    fn address(&self) -> String {
        self.server.url()
    }

    async fn store_at(address: &str) -> RedisStore {
        connect_store(address, |options| options).await.unwrap()
    }

    fn stall(&mut self) {
        self.server.pause();
    }

    fn resume(&mut self) {
        self.server.resume();
    }

    fn take_down(&mut self) {
        self.server.kill();
    }

    fn bring_back(&mut self) {
        self.server.restart();
    }

    async fn inspect(&self, point: Inspect<'_>) {
        let mut redis = raw(&self.server).await;
        match point {
            // Another client sees it as soon as the 200 is out: the message
            // (`seq:received_at:topic_len:topic`) and the exact bytes, one
            // stream entry.
            Inspect::Committed {
                id,
                topic,
                body,
                received,
            } => {
                let message: Vec<u8> = redis.hget(key("messages"), id).await.unwrap();
                let mut parts = message.splitn(4, |&b| b == b':');
                let mut next = || std::str::from_utf8(parts.next().unwrap()).unwrap();
                assert_eq!(next(), "1");
                let received_at: u64 = next().parse().unwrap();
                let window = millis(*received.start())..=millis(*received.end());
                assert!(window.contains(&received_at), "{received_at}");
                assert_eq!(next(), topic.len().to_string());
                assert_eq!(next(), topic);
                let stored: Vec<u8> = redis.hget(key("bodies"), id).await.unwrap();
                assert_eq!(stored, body);
                assert_eq!(xlen(&mut redis, key("stream")).await, 1);
            }
            // Done: the message and the body are gone (also the body the
            // redelivery brought), the id is remembered.
            Inspect::DoneAndRedelivered { id } => {
                let message: Option<Vec<u8>> = redis.hget(key("messages"), id).await.unwrap();
                let stored: Option<Vec<u8>> = redis.hget(key("bodies"), id).await.unwrap();
                assert_eq!((message, stored), (None, None));
                assert_eq!(xlen(&mut redis, key("stream")).await, 0);
            }
            Inspect::NothingStored => {
                let keys: Vec<String> = redis.keys("*").await.unwrap();
                assert!(keys.is_empty(), "{keys:?}");
            }
            Inspect::End => {
                let keys: HashSet<String> = redis.keys("*").await.unwrap();
                assert!(
                    keys.iter()
                        .all(|k| k.starts_with("{tower-intercom:inbox}:")),
                    "{keys:?}"
                );
            }
        }
    }
}
