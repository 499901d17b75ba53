//! What the server's settings say of its durability, and the warning when
//! it can lose what it acknowledged.

use std::fmt;

use super::PostgresStore;

/// Whether Postgres keeps what it acknowledged, from the `synchronous_commit`
/// and `fsync` that the store's connections run with; see
/// [`PostgresStore::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PostgresDurability {
    /// `synchronous_commit` is not `off` and `fsync` is `on`: each commit
    /// is flushed to the write-ahead log on disk before Postgres answers,
    /// so an acknowledged notification survives a crash of Postgres, of
    /// its machine, or a power loss (on that machine: whether a standby
    /// has it too depends on `synchronous_standby_names`).
    Durable,
    /// `synchronous_commit = off`: Postgres answers before the commit
    /// reaches the disk. A crash of Postgres or of its machine loses the
    /// last commits, up to three times `wal_writer_delay` (600 ms by
    /// default), without corrupting anything.
    AsynchronousCommit,
    /// `fsync = off`: Postgres never syncs. A crash of its machine or a
    /// power loss can lose or corrupt anything, not only the last commits.
    NoFsync,
    /// The settings could not be read.
    Unknown,
}

impl PostgresDurability {
    /// What `synchronous_commit` and `fsync` mean.
    pub(super) fn from_settings(synchronous_commit: &str, fsync: &str) -> Self {
        let setting = |value: &str| value.trim().to_ascii_lowercase();
        let fsync = match setting(fsync).as_str() {
            "on" | "true" | "yes" | "1" => true,
            "off" | "false" | "no" | "0" => false,
            _ => return Self::Unknown,
        };
        let synchronous = match setting(synchronous_commit).as_str() {
            "on" | "local" | "remote_write" | "remote_apply" | "true" | "yes" | "1" => true,
            "off" | "false" | "no" | "0" => false,
            _ => return Self::Unknown,
        };
        match (fsync, synchronous) {
            (false, _) => Self::NoFsync,
            (true, false) => Self::AsynchronousCommit,
            (true, true) => Self::Durable,
        }
    }

    /// Whether an acknowledged write survives a power loss of Postgres's
    /// machine.
    pub fn is_durable(self) -> bool {
        self == Self::Durable
    }
}

impl fmt::Display for PostgresDurability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Durable => "durable (synchronous_commit on, fsync on)",
            Self::AsynchronousCommit => {
                "loses the last commits, up to 3 × wal_writer_delay, on a crash \
                 (synchronous_commit off)"
            }
            Self::NoFsync => "not durable: a crash of the machine can lose anything (fsync off)",
            Self::Unknown => "unknown (the settings could not be read)",
        })
    }
}

impl PostgresStore {
    /// Whether Postgres keeps what it acknowledged, from the
    /// `synchronous_commit` and `fsync` a pooled connection of the store
    /// runs with (the server's settings, the database's and the role's,
    /// and the store's own `synchronous_commit = on` when it could send it).
    pub async fn durability(&self) -> PostgresDurability {
        let shared = self.shared.clone();
        let reading = async move {
            let client = shared.pool.get().await.ok()?;
            let row = client
                .query_one(
                    "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
                    &[],
                )
                .await
                .ok()?;
            let synchronous_commit: String = row.try_get(0).ok()?;
            let fsync: String = row.try_get(1).ok()?;
            Some(PostgresDurability::from_settings(
                &synchronous_commit,
                &fsync,
            ))
        };
        tokio::time::timeout(self.shared.timeout, reading)
            .await
            .ok()
            .flatten()
            .unwrap_or(PostgresDurability::Unknown)
    }

    /// Logs a `warn` when Postgres can lose acknowledged writes.
    pub(super) async fn warn_if_not_durable(&self) {
        let durability = self.durability().await;
        match durability {
            PostgresDurability::Durable => {}
            PostgresDurability::AsynchronousCommit => tracing::warn!(
                target: "tower_intercom::inbox",
                durability = ?durability,
                "the inbox's Postgres connections run with synchronous_commit = off (the \
                 server's, the database's or the role's setting, which the store could not \
                 override: a pooler that drops startup options?): notifications already \
                 answered 200 are lost if Postgres crashes before its next WAL flush; set \
                 synchronous_commit = on"
            ),
            PostgresDurability::NoFsync => tracing::warn!(
                target: "tower_intercom::inbox",
                durability = ?durability,
                "Postgres runs with fsync = off: notifications already answered 200 can be \
                 lost, and the database corrupted, if its machine crashes or loses power; \
                 set fsync = on"
            ),
            PostgresDurability::Unknown => tracing::warn!(
                target: "tower_intercom::inbox",
                durability = ?durability,
                "could not read Postgres's synchronous_commit and fsync: unless both are \
                 on, notifications already answered 200 can be lost"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_follows_synchronous_commit_and_fsync() {
        use PostgresDurability::*;
        for (synchronous_commit, fsync, expected) in [
            ("on", "on", Durable),
            ("local", "on", Durable),
            ("remote_write", "on", Durable),
            ("remote_apply", "on", Durable),
            ("ON", " on ", Durable),
            ("off", "on", AsynchronousCommit),
            ("on", "off", NoFsync),
            ("off", "off", NoFsync),
            ("sometimes", "on", Unknown),
            ("on", "", Unknown),
        ] {
            assert_eq!(
                PostgresDurability::from_settings(synchronous_commit, fsync),
                expected,
                "{synchronous_commit} {fsync}"
            );
        }
    }
}
