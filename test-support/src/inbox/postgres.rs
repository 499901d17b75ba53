//! The Postgres store's harness: a database of its own per test on the
//! PostgreSQL server this test binary shares
//! ([`PostgresServer::shared`]), stalled by another session that holds an
//! exclusive lock on the inbox's table in an open transaction (as a
//! migration, a `VACUUM FULL` or a careless `LOCK TABLE` would), and taken
//! down by ending the database's sessions and refusing new ones (as a
//! server that went away does, for this database only: the other tests'
//! databases on the same server carry on). A test that kills the server
//! itself starts one of its own ([`PostgresServer::start`]).

use std::{
    sync::mpsc,
    time::{Duration, Instant, SystemTime},
};

use tower_intercom::{
    inbox::{PostgresOptions, PostgresStore},
    StoreError,
};

use super::{millis, InboxHarness, Inspect, StoreSettings};
use crate::postgres_server::PostgresServer;

/// Connects the Postgres store at `url` with the options `configure`
/// sets: where the Postgres tests make every store.
pub async fn connect_store(
    url: &str,
    configure: impl FnOnce(PostgresOptions) -> PostgresOptions,
) -> Result<PostgresStore, StoreError> {
    configure(PostgresStore::options()).connect(url).await
}

/// A database of its own on the server this test binary shares: the
/// superuser's URL of it.
pub fn database() -> String {
    PostgresServer::shared().fresh_database()
}

/// The database's name in the superuser's `url` of it.
pub fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}

/// A plain connection, to look at the tables as another client would.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// What another session sees of each notification in the default schema,
/// in the order they were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub topic: String,
    /// Gone once the notification is done.
    pub body: Option<Vec<u8>>,
    pub received_at: SystemTime,
    /// 0 pending, 1 in progress, 2 done, 3 dead.
    pub state: i16,
    pub attempts: i32,
    pub done_at: Option<SystemTime>,
}

/// Reads every notification in the database at `url` through a session of
/// its own.
pub async fn rows(url: &str) -> Vec<Row> {
    raw(url)
        .await
        .query(
            "SELECT id, topic, body, received_at, state, attempts, done_at
               FROM tower_intercom.inbox LEFT JOIN tower_intercom.inbox_body USING (seq)
              ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Row {
            id: String::from_utf8(row.get(0)).unwrap(),
            topic: String::from_utf8(row.get(1)).unwrap(),
            body: row.get(2),
            received_at: row.get(3),
            state: row.get(4),
            attempts: row.get(5),
            done_at: row.get(6),
        })
        .collect()
}

/// A session that holds `LOCK TABLE tower_intercom.inbox IN ACCESS
/// EXCLUSIVE MODE` in an open transaction, on a thread of its own, until
/// dropped: every statement of the store (inserts, claims, counts) waits
/// for it.
struct TableLock {
    release: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TableLock {
    /// Takes the lock and returns once it is held.
    fn take(url: &str) -> Self {
        let (locked, is_locked) = mpsc::channel();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let url = url.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut client = raw(&url).await;
                let transaction = client.transaction().await.unwrap();
                transaction
                    .batch_execute("LOCK TABLE tower_intercom.inbox IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                locked.send(()).unwrap();
                let _ = released.await;
                transaction.rollback().await.unwrap();
            });
        });
        is_locked
            .recv_timeout(Duration::from_secs(30))
            .expect("the inbox's table locked by another session");
        Self {
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let released = thread.join();
            if !std::thread::panicking() {
                released.expect("the lock released");
            }
        }
    }
}

/// One test's database on the shared server, and the session that holds
/// its table while it is stalled.
pub struct PostgresHarness {
    /// The superuser's URL of the database.
    pub url: String,
    lock: Option<TableLock>,
}

impl PostgresHarness {
    /// The database's name.
    pub fn database(&self) -> &str {
        database_name(&self.url)
    }

    /// How many bodies are stored.
    async fn bodies(&self) -> i64 {
        raw(&self.url)
            .await
            .query_one("SELECT count(*) FROM tower_intercom.inbox_body", &[])
            .await
            .unwrap()
            .get(0)
    }
}

impl InboxHarness for PostgresHarness {
    type Store = PostgresStore;

    const READS_FAIL_WHEN_DOWN: bool = true;
    /// An insert still waiting in the store's channel when its caller gave
    /// up is skipped; one already sent (waiting for the lock) is committed
    /// once the lock is released, and Intercom's retry is a duplicate.
    const GIVEN_UP_INSERTS_ARE_DROPPED: bool = false;

    async fn start() -> Self {
        Self {
            url: database(),
            lock: None,
        }
    }

    async fn store(&self, settings: &StoreSettings) -> PostgresStore {
        connect_store(&self.url, |mut options| {
            if let Some(timeout) = settings.timeout {
                options = options.timeout(timeout);
            }
            if let Some(waiting) = settings.waiting_inserts {
                // One insert at a time being written (one connection, one
                // insert per statement), the others in the channel.
                options = options
                    .pool_size(1)
                    .max_batch(1)
                    .channel_capacity(waiting.saturating_sub(1));
            }
            options
        })
        .await
        .unwrap()
    }

    fn address(&self) -> String {
        self.url.clone()
    }

    async fn store_at(address: &str) -> PostgresStore {
        connect_store(address, |options| options).await.unwrap()
    }

    /// Another session locks the inbox's table (the store must have
    /// created it: a store was opened).
    fn stall(&mut self) {
        self.lock = Some(TableLock::take(&self.url));
    }

    fn resume(&mut self) {
        self.lock = None;
    }

    /// The database refuses new sessions, and its sessions are ended
    /// (`pg_terminate_backend`); returns once none is left.
    fn take_down(&mut self) {
        let server = PostgresServer::shared();
        let name = self.database().to_owned();
        server.sql(
            "postgres",
            &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
        );
        let start = Instant::now();
        loop {
            let left = server.sql(
                "postgres",
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                      WHERE datname = '{name}'"
                ),
            );
            if left == "0" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{left} sessions of {name} never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn bring_back(&mut self) {
        PostgresServer::shared().sql(
            "postgres",
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.database()),
        );
    }

    async fn inspect(&self, point: Inspect<'_>) {
        match point {
            // Another session sees the committed row, pending, no attempt
            // yet, with the exact bytes.
            Inspect::Committed {
                id,
                topic,
                body,
                received,
            } => {
                let stored = rows(&self.url).await;
                assert_eq!(stored.len(), 1, "{stored:?}");
                let row = &stored[0];
                assert_eq!((row.id.as_str(), row.topic.as_str()), (id, topic));
                assert_eq!(row.body.as_deref(), Some(body));
                let received_at = millis(row.received_at);
                let window = millis(*received.start())..=millis(*received.end());
                assert!(window.contains(&received_at), "{received_at}");
                assert_eq!((row.state, row.attempts, row.done_at), (0, 0, None));
            }
            // Done: the body is gone (the redelivery's too), the id and
            // when it was done are kept.
            Inspect::DoneAndRedelivered { id } => {
                let stored = rows(&self.url).await;
                assert_eq!(stored.len(), 1, "{stored:?}");
                let row = &stored[0];
                assert_eq!((row.id.as_str(), row.state), (id, 2));
                assert_eq!(row.body, None);
                assert!(row.done_at.is_some(), "{row:?}");
                assert_eq!(self.bodies().await, 0);
            }
            Inspect::NothingStored => {
                assert_eq!(rows(&self.url).await, []);
                assert_eq!(self.bodies().await, 0);
            }
            // Tables, indexes and sequences: all in the store's schema.
            Inspect::End => {
                let elsewhere: Vec<String> = raw(&self.url)
                    .await
                    .query(
                        "SELECT n.nspname || '.' || c.relname
                           FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema',
                                                  'tower_intercom')
                            AND n.nspname NOT LIKE 'pg_toast%'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                assert_eq!(elsewhere, Vec::<String>::new());
            }
        }
    }
}
