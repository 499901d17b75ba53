//! The SQLite store's harness: a file in a temporary directory, stalled
//! and taken down by another connection that holds its write lock (as a
//! backup, a migration or another process would).

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use tower_intercom::{
    inbox::{SqliteOptions, SqliteStore},
    StoreError,
};

use super::{millis, InboxHarness, Inspect, StoreSettings};

/// Opens the SQLite store at `path` with the options `configure` sets:
/// where the SQLite tests make every store.
pub fn open_store(
    path: impl AsRef<Path>,
    configure: impl FnOnce(SqliteOptions) -> SqliteOptions,
) -> Result<SqliteStore, StoreError> {
    configure(SqliteOptions::default()).open(path)
}

/// One test's SQLite file, and the connection that holds its write lock
/// while it is stalled or down.
pub struct SqliteHarness {
    dir: tempfile::TempDir,
    lock: Mutex<Option<rusqlite::Connection>>,
}

impl SqliteHarness {
    /// The file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("inbox.sqlite3")
    }

    fn hold_write_lock(&self) {
        let connection = rusqlite::Connection::open(self.path()).unwrap();
        connection.execute_batch("BEGIN IMMEDIATE").unwrap();
        *self.lock.lock().unwrap() = Some(connection);
    }

    fn release_write_lock(&self) {
        self.lock.lock().unwrap().take();
    }
}

/// What another connection sees of each notification in the file, in
/// the order they were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub topic: String,
    /// Gone once the notification is done.
    pub body: Option<Vec<u8>>,
    /// Milliseconds since the epoch.
    pub received_at: i64,
    /// 0 pending, 1 in progress, 2 done, 3 dead.
    pub state: i64,
    pub attempts: i64,
}

/// Reads every notification in the file at `path` through a connection of
/// its own.
pub fn rows(path: &Path) -> Vec<Row> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT id, topic, body, received_at, state, attempts
             FROM intercom_inbox LEFT JOIN intercom_inbox_body USING (seq) ORDER BY seq",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok(Row {
                id: row.get(0)?,
                topic: row.get(1)?,
                body: row.get(2)?,
                received_at: row.get(3)?,
                state: row.get(4)?,
                attempts: row.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

impl InboxHarness for SqliteHarness {
    type Store = SqliteStore;

    const READS_FAIL_WHEN_DOWN: bool = false;
    const GIVEN_UP_INSERTS_ARE_DROPPED: bool = true;

    async fn start() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            lock: Mutex::new(None),
        }
    }

    async fn store(&self, settings: &StoreSettings) -> SqliteStore {
        open_store(self.path(), |mut options| {
            if let Some(timeout) = settings.timeout {
                options = options.busy_timeout(timeout);
            }
            if let Some(waiting) = settings.waiting_inserts {
                // The writer holds one while it waits for the lock.
                options = options.channel_capacity(waiting.saturating_sub(1));
            }
            options
        })
        .unwrap()
    }

    fn address(&self) -> String {
        self.path().to_str().unwrap().to_owned()
    }

    async fn store_at(address: &str) -> SqliteStore {
        open_store(address, |options| options).unwrap()
    }

    fn stall(&mut self) {
        self.hold_write_lock();
    }

    fn resume(&mut self) {
        self.release_write_lock();
    }

    fn take_down(&mut self) {
        self.hold_write_lock();
    }

    fn bring_back(&mut self) {
        self.release_write_lock();
    }

    async fn inspect(&self, point: Inspect<'_>) {
        match point {
            // Another connection sees the committed row, pending, no
            // attempt yet.
            Inspect::Committed {
                id,
                topic,
                body,
                received,
            } => {
                let stored = rows(&self.path());
                assert_eq!(stored.len(), 1, "{stored:?}");
                let row = &stored[0];
                assert_eq!((row.id.as_str(), row.topic.as_str()), (id, topic));
                assert_eq!(row.body.as_deref(), Some(body));
                let window = millis(*received.start()) as i64..=millis(*received.end()) as i64;
                assert!(window.contains(&row.received_at), "{}", row.received_at);
                assert_eq!((row.state, row.attempts), (0, 0));
            }
            Inspect::NothingStored => assert!(rows(&self.path()).is_empty()),
            Inspect::DoneAndRedelivered { .. } | Inspect::End => {}
        }
    }
}
