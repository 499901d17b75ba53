//! What Redis's settings say of its durability, and the warning when it
//! can lose what it acknowledged.

use std::fmt;

use crate::redis_connection::{config_get, StoreKeys};

use super::RedisStore;

/// Whether Redis keeps what it acknowledged, from its `appendonly`,
/// `appendfsync` and `no-appendfsync-on-rewrite` settings; see
/// [`RedisStore::persistence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Persistence {
    /// `appendonly yes`, `appendfsync always` and
    /// `no-appendfsync-on-rewrite no` (Redis's default): Redis writes and
    /// syncs its append-only file before it answers, so an acknowledged
    /// notification survives a crash of Redis, of its machine, or a power
    /// loss (on that machine: replicas are still asynchronous).
    Durable,
    /// `appendonly yes` and `appendfsync everysec` (Redis's default when
    /// the AOF is on): a crash of Redis alone loses nothing, but a crash of
    /// its machine or a power loss loses up to about the last second of
    /// acknowledged notifications (two seconds when the disk is slow).
    LosesUpToOneSecond,
    /// `appendonly yes` and `appendfsync always` or `everysec`, but
    /// `no-appendfsync-on-rewrite yes`: while Redis rewrites its
    /// append-only file or saves a snapshot (which it starts on its own,
    /// as the file or the writes grow), it does not sync at all, as with
    /// `appendfsync no`. A crash of its machine or a power loss then loses
    /// what the OS had not flushed yet: up to about 30 s of acknowledged
    /// notifications with Linux's default settings.
    LosesWritesDuringRewrites,
    /// `appendonly no` (only RDB snapshots, if any) or `appendfsync no`
    /// (the OS flushes when it likes, about every 30 s on Linux): a restart
    /// of Redis can lose acknowledged notifications.
    NotDurable,
    /// Redis refused `CONFIG GET` (an ACL, a managed Redis that renames
    /// `CONFIG`) and its `INFO` did not tell, or did not answer.
    Unknown,
}

impl Persistence {
    /// What the settings `appendonly`, `appendfsync` and
    /// `no-appendfsync-on-rewrite` mean.
    fn from_config(appendonly: &str, appendfsync: &str, no_fsync_on_rewrite: &str) -> Self {
        let setting = |value: &str| value.trim().to_ascii_lowercase();
        match (
            setting(appendonly).as_str(),
            setting(appendfsync).as_str(),
            setting(no_fsync_on_rewrite).as_str(),
        ) {
            ("no", _, _) | (_, "no", _) => Self::NotDurable,
            ("yes", "always" | "everysec", "yes") => Self::LosesWritesDuringRewrites,
            ("yes", "always", "no") => Self::Durable,
            ("yes", "everysec", "no") => Self::LosesUpToOneSecond,
            _ => Self::Unknown,
        }
    }

    /// Whether an acknowledged write survives a power loss of Redis's
    /// machine.
    pub fn is_durable(self) -> bool {
        self == Self::Durable
    }
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Durable => {
                "durable (appendonly yes, appendfsync always, no-appendfsync-on-rewrite no)"
            }
            Self::LosesUpToOneSecond => {
                "loses up to about 1 s of acknowledged writes on a power loss \
                 (appendonly yes, appendfsync everysec)"
            }
            Self::LosesWritesDuringRewrites => {
                "loses up to about 30 s of acknowledged writes on a power loss during \
                 an AOF rewrite or a snapshot (no-appendfsync-on-rewrite yes)"
            }
            Self::NotDurable => {
                "not durable: acknowledged writes can be lost on restart \
                 (appendonly no, or appendfsync no)"
            }
            Self::Unknown => "unknown (Redis refused CONFIG GET)",
        })
    }
}

impl RedisStore {
    /// Whether Redis keeps what it acknowledged, from `CONFIG GET
    /// appendonly`, `appendfsync` and `no-appendfsync-on-rewrite`, or
    /// `INFO persistence` when `CONFIG` is refused.
    /// [`Persistence::Unknown`] when neither tells.
    pub async fn persistence(&self) -> Persistence {
        self.read_config().await.0
    }

    /// The persistence, and the `maxmemory-policy` when readable.
    async fn read_config(&self) -> (Persistence, Option<String>) {
        let mut connection = self.connection.get();
        let reading = async move {
            let config = config_get(
                &mut connection,
                &[
                    "appendonly",
                    "appendfsync",
                    "no-appendfsync-on-rewrite",
                    "maxmemory-policy",
                ],
            )
            .await;
            if let Ok(mut config) = config {
                let mut get = |name: &str| config.remove(name);
                if let (Some(appendonly), Some(appendfsync), Some(no_fsync_on_rewrite)) = (
                    get("appendonly"),
                    get("appendfsync"),
                    get("no-appendfsync-on-rewrite"),
                ) {
                    return (
                        Persistence::from_config(&appendonly, &appendfsync, &no_fsync_on_rewrite),
                        get("maxmemory-policy"),
                    );
                }
            }
            // CONFIG refused or renamed: INFO tells whether the AOF is on,
            // not its fsync policies.
            let info: redis::RedisResult<String> = redis::cmd("INFO")
                .arg("persistence")
                .query_async(&mut connection)
                .await;
            let aof = info.ok().and_then(|info| {
                info.lines()
                    .find_map(|line| line.trim().strip_prefix("aof_enabled:").map(str::to_owned))
            });
            let persistence = match aof.as_deref() {
                Some("0") => Persistence::NotDurable,
                _ => Persistence::Unknown,
            };
            (persistence, None)
        };
        tokio::time::timeout(self.timeout, reading)
            .await
            .unwrap_or((Persistence::Unknown, None))
    }

    /// Reads Redis's settings as [`persistence`](Self::persistence) does,
    /// with its `maxmemory-policy`, and logs a `warn` when Redis can lose
    /// acknowledged writes or evict the inbox's keys; returns the
    /// persistence. [`RedisOptions::connect`](super::RedisOptions::connect)
    /// does this once connected; call it yourself on a store made with
    /// [`RedisOptions::with_connection`](super::RedisOptions::with_connection).
    pub async fn check_redis_settings(&self) -> Persistence {
        let (persistence, policy) = self.read_config().await;
        const ADVICE: &str = "set appendonly yes, appendfsync always and \
                              no-appendfsync-on-rewrite no in redis.conf";
        match persistence {
            Persistence::Durable => {}
            Persistence::LosesUpToOneSecond => tracing::warn!(
                target: "tower_intercom::inbox",
                persistence = ?persistence,
                "Redis syncs its append-only file once a second (appendfsync everysec): \
                 up to about 1 s (2 s at worst) of notifications already answered 200 \
                 are lost if Redis's machine crashes or loses power; {ADVICE}"
            ),
            Persistence::LosesWritesDuringRewrites => tracing::warn!(
                target: "tower_intercom::inbox",
                persistence = ?persistence,
                "Redis does not sync its append-only file while it rewrites it or saves a \
                 snapshot (no-appendfsync-on-rewrite yes), which it starts on its own: \
                 up to about 30 s of notifications already answered 200 are lost if \
                 Redis's machine crashes or loses power meanwhile; {ADVICE}"
            ),
            Persistence::NotDurable => tracing::warn!(
                target: "tower_intercom::inbox",
                persistence = ?persistence,
                "Redis does not keep what it acknowledged (appendonly no, or appendfsync no): \
                 notifications already answered 200 can be lost when Redis restarts; {ADVICE}"
            ),
            Persistence::Unknown => tracing::warn!(
                target: "tower_intercom::inbox",
                persistence = ?persistence,
                "could not read Redis's persistence settings (CONFIG GET was refused): \
                 unless Redis runs with appendonly yes, appendfsync always and \
                 no-appendfsync-on-rewrite no, notifications already answered 200 can be lost"
            ),
        }
        if let Some(policy) = policy {
            StoreKeys::Inbox.warn_if_evicted_under(&policy);
        }
        persistence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_follows_appendonly_appendfsync_and_no_appendfsync_on_rewrite() {
        use Persistence::*;
        for (appendonly, appendfsync, no_fsync_on_rewrite, expected) in [
            ("yes", "always", "no", Durable),
            ("yes", "everysec", "no", LosesUpToOneSecond),
            ("yes", "always", "yes", LosesWritesDuringRewrites),
            ("yes", "everysec", "yes", LosesWritesDuringRewrites),
            ("yes", "no", "no", NotDurable),
            ("yes", "no", "yes", NotDurable),
            ("no", "always", "no", NotDurable),
            ("no", "everysec", "yes", NotDurable),
            ("YES", "Always", "No", Durable),
            ("yes", "sometimes", "no", Unknown),
            ("yes", "always", "", Unknown),
            ("", "", "", Unknown),
        ] {
            assert_eq!(
                Persistence::from_config(appendonly, appendfsync, no_fsync_on_rewrite),
                expected,
                "{appendonly} {appendfsync} {no_fsync_on_rewrite}"
            );
        }
    }
}
