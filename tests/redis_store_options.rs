//! The two Redis stores (the inbox's and the idempotency layer's) made
//! from their options on a connection the user made: making one sends
//! nothing to Redis (so it works while Redis is down), logs nothing, and
//! the check `connect` runs is there when asked for. Against a real
//! `redis-server`.
//!
//! `redis-server` must be on `PATH` (`./scripts/test.sh` installs it):
//! without it these tests fail, they never skip.
#![cfg(all(feature = "inbox-redis", feature = "redis"))]

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tower_intercom::{
    idempotency::{self, Claim, ClaimOutcome, IdempotencyStore},
    inbox::{Counts, Inbox, InboxStore, Inserted, NewNotification, Persistence, RedisStore},
};
use tower_intercom_test_support::{
    logs::Logs,
    redis_server::{RedisServer, VOLATILE},
};

/// A connection as the stores' documentation asks for: no response
/// timeout of its own.
fn config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new().set_response_timeout(None)
}

async fn connection(url: &str) -> ConnectionManager {
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager_with_config(config())
        .await
        .unwrap()
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Without persistence: the store made on the connection logs nothing,
/// `check_redis_settings` finds and warns about what `connect` would
/// have, and the store works under the prefix of its options.
#[tokio::test]
async fn an_inbox_store_on_a_given_connection_checks_redis_when_asked() {
    let server = RedisServer::start_with(VOLATILE);
    let connection = connection(&server.url()).await;
    let (logs, capturing) = Logs::start();
    let store = RedisStore::options()
        .key_prefix("given")
        .with_connection(connection);
    let made = logs.text();
    let persistence = store.check_redis_settings().await;
    drop(capturing);
    assert_eq!(made, "");
    assert_eq!(persistence, Persistence::NotDurable);
    let checked = logs.text();
    assert!(checked.contains("WARN"), "{checked}");
    assert!(checked.contains("appendonly no"), "{checked}");

    let inbox = Inbox::new(store);
    let notification = NewNotification::new("notif_given", "ping", Bytes::from("{}"));
    assert_eq!(
        inbox.store().insert(notification).await.unwrap(),
        Inserted::Stored
    );
    let counts = inbox.counts().await.unwrap();
    assert_eq!(
        [counts.pending, counts.in_progress, counts.done, counts.dead],
        [1, 0, 0, 0]
    );
    let entries: usize = redis::cmd("XLEN")
        .arg("{given}:stream")
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();
    assert_eq!(entries, 1);
}

/// A store made on a lazy connection while Redis is down: made at once,
/// failing while Redis is down, working once it is back.
#[tokio::test]
async fn an_inbox_store_on_a_lazy_connection_is_made_while_redis_is_down() {
    let mut server = RedisServer::start_with(VOLATILE);
    server.kill();
    let client = redis::Client::open(server.url()).unwrap();
    let lazy = ConnectionManager::new_lazy_with_config(client, config()).unwrap();
    let store = RedisStore::options()
        .timeout(Duration::from_secs(2))
        .with_connection(lazy);
    assert!(store.counts().await.is_err());

    server.restart();
    let start = Instant::now();
    loop {
        match store.counts().await {
            Ok(counts) => {
                assert_eq!(counts, Counts::default());
                break;
            }
            Err(error) => assert!(
                start.elapsed() < Duration::from_secs(20),
                "Redis is back, the store is not: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With a policy that evicts its keys: the idempotency store made on the
/// connection logs nothing, `check_redis_settings` warns as `connect`
/// does, and the store deduplicates under the prefix of its options.
#[tokio::test]
async fn an_idempotency_store_on_a_given_connection_checks_redis_when_asked() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let connection = connection(&server.url()).await;
    let (logs, capturing) = Logs::start();
    let store = idempotency::RedisStore::options()
        .key_prefix("given:")
        .timeout(Duration::from_secs(2))
        .with_connection(connection);
    let made = logs.text();
    store.check_redis_settings().await;
    drop(capturing);
    assert_eq!(made, "");
    let checked = logs.text();
    assert!(checked.contains("WARN"), "{checked}");
    assert!(
        checked.contains("maxmemory-policy allkeys-lru"),
        "{checked}"
    );

    let ttl = Duration::from_secs(60);
    let claim = Claim::new("notif_given");
    assert_eq!(
        store.claim(&claim, ttl).await.unwrap(),
        ClaimOutcome::Claimed
    );
    store.complete(&claim, ttl).await.unwrap();
    assert_eq!(
        store.claim(&Claim::new("notif_given"), ttl).await.unwrap(),
        ClaimOutcome::Done
    );
    let value: Option<String> = redis::cmd("GET")
        .arg("given:notif_given")
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("done"));
}
