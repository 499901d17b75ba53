//! The Redis store: a Redis Stream with a consumer group, and Lua scripts
//! that make every state change one atomic step. See [`RedisStore`] for the
//! key layout, the scripts and the Redis settings durability needs.

use std::{
    fmt,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use redis::{aio::ConnectionManager, Script, Value};

use crate::redis_connection::{config_get, within, Connection, StoreKeys};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{
    ClaimRequest, Claimed, Counts, DeadNotification, DeadPage, DeadQuery, Failure, Inbox,
    InboxFuture, InboxStore, Inserted, Lease, LeaseToken, NewNotification, OverloadStatus,
    ReceivedNotification, StoreError,
};

/// An [`Inbox`] over Redis, shared by receivers and workers on many
/// machines. See [`RedisStore`].
///
/// Switching from SQLite is one constructor: `SqliteInbox::open(path)?`
/// becomes `RedisInbox::connect(url).await?`; receivers, workers and the
/// inspection API are the same.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_intercom::inbox::{Persistence, RedisInbox};
///
/// # async fn run() -> Result<(), tower_intercom::StoreError> {
/// let inbox = RedisInbox::options()
///     .key_prefix("my-app:intercom")
///     .timeout(Duration::from_millis(500))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// if inbox.store().persistence().await != Persistence::Durable {
///     // Also logged at `warn` by `connect`.
///     eprintln!("Redis can lose notifications that were answered 200");
/// }
/// # Ok(())
/// # }
/// ```
pub type RedisInbox = Inbox<RedisStore>;

impl Inbox<RedisStore> {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`)
    /// with the default settings, and warns (through `tracing`) when Redis
    /// can lose acknowledged writes. Needs a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached. The error never
    /// contains the URL or its password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        RedisOptions::default().connect(url).await
    }

    /// Settings for [`RedisOptions::connect`].
    pub fn options() -> RedisOptions {
        RedisOptions::default()
    }
}

/// The default [`RedisOptions::key_prefix`]: `tower-intercom:inbox`, so the
/// keys are `{tower-intercom:inbox}:stream` and so on.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tower-intercom:inbox";

/// The default [`RedisOptions::timeout`]: each operation waits at most 1 s
/// for Redis.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The default [`RedisOptions::max_in_flight`]: 4096 inserts waiting for
/// Redis at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// The largest [`RedisOptions::max_in_flight`]: the most a Tokio semaphore
/// counts (`tokio::sync::Semaphore::MAX_PERMITS`, 2^61 − 1 on 64-bit
/// machines). A larger one is taken as this.
pub const LARGEST_MAX_IN_FLIGHT: usize = Semaphore::MAX_PERMITS;

/// Settings of a [`RedisStore`] and of the [`RedisInbox`] over it.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
    max_in_flight: usize,
    deadline: Duration,
    retention: Duration,
    overload_status: OverloadStatus,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            deadline: super::DEFAULT_DEADLINE,
            retention: super::DEFAULT_RETENTION,
            overload_status: OverloadStatus::default(),
        }
    }
}

impl RedisOptions {
    /// See [`RedisStore::key_prefix`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// See [`RedisStore::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// See [`RedisStore::max_in_flight`] (at most
    /// [`LARGEST_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.clamp(1, LARGEST_MAX_IN_FLIGHT);
        self
    }

    /// See [`Inbox::deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// See [`Inbox::retention`].
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// See [`Inbox::overload_status`].
    pub fn overload_status(mut self, status: OverloadStatus) -> Self {
        self.overload_status = status;
        self
    }

    /// Connects to the Redis at `url` and warns when Redis can lose
    /// acknowledged writes (see [`RedisStore::connect`]).
    ///
    /// # Errors
    ///
    /// As [`RedisStore::connect`]: when the URL is invalid, Redis cannot be
    /// reached, or it refuses commands. The error never contains the URL
    /// or its password.
    pub async fn connect(self, url: &str) -> Result<RedisInbox, StoreError> {
        let (deadline, retention, overload) = (self.deadline, self.retention, self.overload_status);
        Ok(Inbox::new(self.connect_store(url).await?)
            .deadline(deadline)
            .retention(retention)
            .overload_status(overload))
    }

    /// Connects just the store. The inbox settings of these options
    /// ([`deadline`](Self::deadline), [`retention`](Self::retention),
    /// [`overload_status`](Self::overload_status)) are not the store's: set
    /// them on the [`Inbox`] you make over it, or use
    /// [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_store(self, url: &str) -> Result<RedisStore, StoreError> {
        let store = RedisStore::open(url, self.timeout).await?;
        let store = store
            .key_prefix(self.prefix)
            .max_in_flight(self.max_in_flight);
        store.warn_if_not_durable().await;
        Ok(store)
    }
}

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

/// An [`InboxStore`] in Redis, shared by every receiver and worker that
/// uses the same Redis and key prefix.
///
/// # Durability: configure Redis for it
///
/// The receiver answers 200 once Redis acknowledged the write, so the
/// inbox is exactly as durable as Redis's own persistence:
///
/// - **`appendonly yes`** is required: without the append-only file,
///   Redis keeps only periodic RDB snapshots (if any), and a restart loses
///   what was written since the last one.
/// - **`appendfsync always`** for no loss on a crash of the machine or a
///   power loss: Redis syncs the AOF before it answers. Redis groups the
///   writes of all clients into one `fsync` per event-loop turn, so this
///   costs latency (one disk sync per turn) far more than throughput.
/// - `appendfsync everysec` (the default when the AOF is on) survives a
///   crash of Redis itself but loses up to about 1 s of acknowledged
///   notifications (2 s at worst, when the disk is slow) if the machine
///   crashes or loses power. `appendfsync no` leaves it to the OS.
/// - **`no-appendfsync-on-rewrite no`** (Redis's default): with `yes`,
///   Redis does not sync while it rewrites the AOF or saves an RDB
///   snapshot, whatever `appendfsync` says (its own `redis.conf`: the
///   durability of `appendfsync no` meanwhile, up to about 30 s lost on a
///   power loss with Linux's defaults). Rewrites start on their own as the
///   file grows (`auto-aof-rewrite-percentage`), so this is a loss window
///   that opens regularly, not a rare event.
/// - **Replication is asynchronous**: a failover to a replica (Sentinel,
///   Cluster, a managed service) can lose writes the old primary had
///   acknowledged, whatever the fsync policy.
/// - **`maxmemory-policy noeviction`**: the keys have no TTL, and an
///   `allkeys-*` policy would evict notifications and dedupe records
///   (`volatile-*` ones leave them alone, but evict the keys of the
///   idempotency layer's `RedisStore`, all with a TTL, if it shares this
///   Redis). With `noeviction`, a full Redis refuses inserts, and the
///   receiver answers 503 (Intercom retries).
///
/// [`RedisOptions::connect`] and [`RedisInbox::connect`] read `appendonly`,
/// `appendfsync`, `no-appendfsync-on-rewrite` and `maxmemory-policy` with
/// `CONFIG GET` (falling back to `INFO persistence` when `CONFIG` is
/// refused) and log a `warn` when Redis can lose what it acknowledged;
/// [`persistence`](Self::persistence) returns the same finding.
///
/// # Keys
///
/// All under one hash tag, the key prefix `P` (default
/// [`DEFAULT_REDIS_KEY_PREFIX`]), so that every key of an inbox is in one
/// Cluster slot, and every script declares each key it touches:
///
/// | key | type | holds |
/// |---|---|---|
/// | `{P}:stream` | stream, group `workers` | one entry (`id` → notification id) per notification waiting, oldest first |
/// | `{P}:messages` | hash | id → sequence number, `received_at` and topic, for every notification not yet done |
/// | `{P}:bodies` | hash | id → the notification's exact verified bytes, for every notification not yet done |
/// | `{P}:attempts` | hash | id → attempts made |
/// | `{P}:errors` | hash | id → the last attempt's error |
/// | `{P}:leased` | sorted set | id → end of its lease (ms), for notifications in progress |
/// | `{P}:leases` | hash | id → lease token, the fence |
/// | `{P}:delayed` | sorted set | id → when its retry is due (ms) |
/// | `{P}:dead` | sorted set | id → sequence number, for dead notifications |
/// | `{P}:done` | sorted set | id → when it was done (ms): the dedupe memory until the retention ends |
/// | `{P}:seq` | string | the last sequence number |
///
/// Each operation is one Lua script, so atomic:
///
/// - insert: one `MULTI` transaction: `HSETNX bodies` for each
///   notification, then the script: if the id is in `messages` or `done`,
///   nothing (a duplicate; a body just written for a done id is deleted);
///   else `HSET messages` and `XADD stream`. Dedupe, body and enqueue are
///   one atomic write; the receiver answers 200 once it returned. The
///   bodies go through plain `HSETNX`, not through Lua, which would copy
///   each several times.
/// - claim: lapsed leases first (`leased` up to now: a failed attempt
///   each, dead at the maximum), then due retries from `delayed` join the
///   stream, then `XREADGROUP … NOACK … >` leases the oldest entries,
///   counting an attempt and writing the lease's end and token. The group
///   is the stream's cursor; the entries it passed are trimmed (`XTRIM
///   MINID`), so the stream holds only what is waiting. The leased
///   notifications' bodies are then read with a plain `HMGET` (the Lua
///   of Redis 7.0 hashes every byte of each string it is handed). If
///   that read fails, the leases are handed back at once, attempts
///   included; a notification whose body is missing (deleted by hand,
///   or evicted) is marked dead with that error, not handed out empty.
/// - complete, fail and release check the token in `leases` (the fence);
///   done ids go to `done` (their body is dropped), retries to `delayed`,
///   dead ones to `dead`, released ones back to the stream.
///
/// Inserts that arrive together share one script call (up to 128 per call,
/// at most 4 calls at once, the next one taking all that arrived
/// meanwhile), and so do completions (up to 256 per call); each script
/// reads and writes a whole batch with one multi-key command per key
/// (`HMGET`, `ZMSCORE`, `HSET`, `ZADD`, `HDEL`), one `XADD` per
/// notification stored. That costs Redis and the process far less than
/// one call, or one command, per notification; each notification is
/// still deduplicated, or fenced, on its own.
///
/// Leases lapse at the holder's own deadline (`leased`), not at the
/// claimer's idea of it: `XAUTOCLAIM`'s idle time would let a worker with
/// a short lease take over a notification still within a longer lease.
/// Times (lease ends, retries, done times) are Redis's clock (`TIME`), so
/// the machines' clocks need not agree.
///
/// # Redis version and topology
///
/// Redis 6.2 or newer (tested with 7.0: `ZMSCORE` and `XTRIM MINID` are
/// from 6.2); not `XAUTOCLAIM` or Redis 8's stream idempotency.
/// Scripts are sent with `EVALSHA` and loaded again after a restart of
/// Redis.
///
/// The key layout is ready for Redis Cluster (one hash tag, so one slot
/// and one node per inbox), but the store talks to one server through a
/// [`ConnectionManager`], which does not follow Cluster redirections
/// (`MOVED`): use a standalone primary, or a Cluster only while the slot
/// stays on the node the URL names.
///
/// # Bounds
///
/// Every operation gives up after [`timeout`](Self::timeout) (default
/// [`DEFAULT_REDIS_TIMEOUT`]) with an error, which the receiver answers
/// with 503; at most [`max_in_flight`](Self::max_in_flight) inserts wait
/// for Redis at once, beyond which the receiver answers 429 at once.
/// Nothing queues in the process. A write that Redis runs after the
/// timeout is kept (Intercom's retry then gets 200 as a duplicate), and a
/// claim that timed out may have leased notifications its worker never
/// saw: they are taken again when the lease lapses.
///
/// For `rediss://` (TLS), enable one of the `redis` crate's TLS features
/// (`tokio-rustls-comp` or `tokio-native-tls-comp`) in your own
/// `Cargo.toml`. Needs a Tokio runtime.
///
/// # Example
///
/// ```no_run
/// use tower_intercom::inbox::{Inbox, RedisStore};
///
/// # async fn run() -> Result<(), tower_intercom::StoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .key_prefix("my-app:intercom");
/// let inbox = Inbox::new(store);
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    keys: Arc<Keys>,
    timeout: Duration,
    inserts: Arc<Semaphore>,
    max_in_flight: usize,
    batchers: Arc<Batchers>,
}

/// The tasks that send inserts and completions in batches.
#[derive(Default)]
struct Batchers {
    inserts: Batcher<Insert>,
    completions: Batcher<Completion>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection holds the URL's credentials: not printed.
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// The consumer group, and its only consumer: leases are fenced by token,
/// so which consumer holds an entry does not matter.
const GROUP: &str = "workers";

/// Lapsed leases, due retries and done ids handled per script call, so
/// that one call stays short.
const CHUNK: usize = 1000;

/// The longest error message kept per notification.
const MAX_ERROR_LEN: usize = 2048;

/// The error recorded when a lease lapsed (the SQLite store's words).
const LAPSED: &str = "the lease lapsed: the worker crashed, hung or was too slow";

/// The error recorded for a notification whose body is missing.
const MISSING_BODY: &str = "the notification's body is missing from Redis (deleted or evicted)";

/// The most notifications one claim leases, so that one call stays short;
/// a worker that asked for more claims again at once.
const MAX_CLAIM: usize = 256;

/// The largest page of dead notifications one call returns.
const MAX_PAGE: usize = 100_000;

/// Where `{P}:bodies` is among the keys.
const BODIES: usize = 10;

/// The keys of one inbox.
#[derive(Debug)]
struct Keys {
    prefix: Box<str>,
    /// In the order the scripts expect them (`KEYS[1]` …).
    all: [String; 11],
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{{{prefix}}}:{name}");
        Self {
            prefix: prefix.into(),
            all: [
                key("stream"),
                key("messages"),
                key("attempts"),
                key("errors"),
                key("leased"),
                key("leases"),
                key("delayed"),
                key("dead"),
                key("done"),
                key("seq"),
                key("bodies"),
            ],
        }
    }
}

/// The prefix is the hash tag: it must make one, the same for every key.
/// Names the keys and defines the helpers every script shares.
const PRELUDE: &str = r"
local stream, messages, attempts, errors, leased, leases, delayed, dead, done, seq, bodies =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether `id` is leased with `token`.
local function fenced(id, token)
  return redis.call('HGET', leases, id) == token
end

-- Ends the lease of `id`. (Its stream entry went when it was claimed.)
local function unlease(id)
  redis.call('HDEL', leases, id)
  redis.call('ZREM', leased, id)
end

-- The odd arguments (ids, of id-value pairs), for one multi-key command
-- per batch instead of one command per id.
local function pair_keys()
  local ids = {}
  for i = 1, #ARGV - 1, 2 do ids[#ids + 1] = ARGV[i] end
  return ids
end

-- Pending at once: a new entry at the end of the stream.
local function enqueue(id)
  redis.call('XADD', stream, '*', 'id', id)
end

-- Dead, in the order the notifications were received.
local function bury(id)
  local message = redis.call('HGET', messages, id)
  local n = 0
  if message then n = tonumber(string.match(message, '^(%d+):')) or 0 end
  redis.call('ZADD', dead, n, id)
end
";

fn script(body: &str) -> Script {
    Script::new(&source(body))
}

/// A script's whole source: the group, the prelude, then `body`.
fn source(body: &str) -> String {
    format!("local GROUP = '{GROUP}'\n{PRELUDE}\n{body}")
}

/// Sent with `EVAL` in one `MULTI` after one `HSETNX bodies id body` per
/// notification, which writes the bodies without passing them through
/// Lua. ARGV: pairs of id and `received_at:topic_len:topic`, one pair per
/// notification, in order. Returns one integer per pair: 1 when stored, 0
/// for a duplicate (also of an earlier pair of the same call); the body
/// the `HSETNX` wrote for a done id is deleted (done, and remembered: its
/// own body went when it was done, so the one there was written by this
/// call).
///
/// Without the prelude and without comments: Redis computes the SHA1 of
/// an `EVAL`'s whole source at every call, and the prelude tripled it.
/// Stored notifications are numbered in order, one by one; each joins the
/// end of the stream. The stream entries are written before the messages:
/// a script that fails half-way (a key of the wrong type) keeps what it
/// wrote, and an entry without its message is skipped by the claim, while
/// a message without its entry would be taken for stored and never be
/// processed.
static INSERT: &str = r"
local stream, messages, done, seq, bodies = KEYS[1], KEYS[2], KEYS[9], KEYS[10], KEYS[11]
local ids, results, stored = {}, {}, 0
for i = 1, #ARGV - 1, 2 do ids[#ids + 1] = ARGV[i] end
if #ids > 0 then
  local kept = redis.call('HMGET', messages, unpack(ids))
  local finished = redis.call('ZMSCORE', done, unpack(ids))
  local seen, forget = {}, {}
  for i, id in ipairs(ids) do
    if kept[i] or seen[id] then
      results[i] = 0
    elseif finished[i] then
      results[i] = 0
      forget[#forget + 1] = id
    else
      seen[id] = true
      results[i] = 1
      stored = stored + 1
    end
  end
  if #forget > 0 then redis.call('HDEL', bodies, unpack(forget)) end
end
if stored > 0 then
  local n = redis.call('INCRBY', seq, stored) - stored
  local fields = {}
  for i, id in ipairs(ids) do
    if results[i] == 1 then
      n = n + 1
      fields[#fields + 1] = id
      fields[#fields + 1] = string.format('%d:', n) .. ARGV[2 * i]
    end
  end
  for i, id in ipairs(ids) do
    if results[i] == 1 then redis.call('XADD', stream, '*', 'id', id) end
  end
  redis.call('HSET', messages, unpack(fields))
end
return results
";

/// ARGV: max, lease ms, max attempts, token, lapse error, chunk. Returns
/// `{ms until the next is due or -1, {{id, attempt, message}, …}}`; the
/// bodies are read after it with a plain `HMGET`, not through Lua (which
/// copies every string it is handed, and in Redis 7.0 hashes every byte).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local max, lease, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local token, lapse_error, chunk = ARGV[4], ARGV[5], tonumber(ARGV[6])
local now = now_ms()

-- Lapsed leases: each a failed attempt; dead at the maximum.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, chunk)) do
  unlease(id)
  if redis.call('HEXISTS', messages, id) == 1 then
    redis.call('HSET', errors, id, lapse_error)
    if (tonumber(redis.call('HGET', attempts, id)) or 0) >= max_attempts then
      bury(id)
    else
      enqueue(id)
    end
  end
end

-- Retries that are due join the queue.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, chunk)) do
  redis.call('ZREM', delayed, id)
  enqueue(id)
end

-- Lease the oldest entries. NOACK: the group's cursor is all the
-- stream is for (leases are `leased` and `leases`), and the entries it
-- passed are trimmed.
local claimed = {}
for _ = 1, 16 do
  if #claimed >= max then break end
  local read = redis.pcall('XREADGROUP', 'GROUP', GROUP, GROUP, 'COUNT', max - #claimed, 'NOACK',
                           'STREAMS', stream, '>')
  if type(read) == 'table' and read.err then
    if not string.find(read.err, 'NOGROUP', 1, true) then
      return redis.error_reply(read.err)
    end
    -- From the start: entries written before the group existed are read.
    redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
    read = redis.call('XREADGROUP', 'GROUP', GROUP, GROUP, 'COUNT', max - #claimed, 'NOACK',
                      'STREAMS', stream, '>')
  end
  if not read or not read[1] or #read[1][2] == 0 then break end
  local entries = read[1][2]
  local ids = {}
  for _, e in ipairs(entries) do
    local id = e[2] and e[2][2]
    if type(id) == 'string' then ids[#ids + 1] = id end
  end
  if #ids > 0 then
    local kept = redis.call('HMGET', messages, unpack(ids))
    local held = redis.call('HMGET', leases, unpack(ids))
    local buried = redis.call('ZMSCORE', dead, unpack(ids))
    local later = redis.call('ZMSCORE', delayed, unpack(ids))
    local made = redis.call('HMGET', attempts, unpack(ids))
    -- Numbers become text once, not once per notification.
    local lease_end = string.format('%d', now + lease)
    local taken, counted, ends, tokens = {}, {}, {}, {}
    for j, id in ipairs(ids) do
      -- Else not a notification waiting (a leftover entry): skipped.
      if kept[j] and not held[j] and not buried[j] and not later[j] and not taken[id] then
        taken[id] = true
        local attempt = (tonumber(made[j]) or 0) + 1
        counted[#counted + 1] = id
        counted[#counted + 1] = attempt
        ends[#ends + 1] = lease_end
        ends[#ends + 1] = id
        tokens[#tokens + 1] = id
        tokens[#tokens + 1] = token
        claimed[#claimed + 1] = {id, attempt, kept[j]}
      end
    end
    if #tokens > 0 then
      redis.call('HSET', attempts, unpack(counted))
      redis.call('ZADD', leased, unpack(ends))
      redis.call('HSET', leases, unpack(tokens))
    end
  end
  -- Entries up to the last one read leave the stream (no arithmetic on
  -- the id: its parts are 64-bit).
  local last = entries[#entries][1]
  redis.call('XTRIM', stream, 'MINID', last)
  redis.call('XDEL', stream, last)
end

-- When the next one is due: now when entries are still waiting in the
-- stream, else the earliest retry or lease end. (Not from the counts: a
-- message without its entry, which no claim can take, would make every
-- claim answer 'now' for ever.)
local next_due = -1
if redis.call('XLEN', stream) > 0 then
  next_due = 0
else
  for _, key in ipairs({delayed, leased}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local due = tonumber(first[2]) - now
      if due < 0 then due = 0 end
      if next_due < 0 or due < next_due then next_due = due end
    end
  end
end
return {next_due, claimed}
",
    )
});

/// ARGV: pairs of id and token. Returns one integer per pair: 1 when
/// marked done, 0 when the lease was lost.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local ids = pair_keys()
local results, finished, scored = {}, {}, {}
if #ids > 0 then
  local held = redis.call('HMGET', leases, unpack(ids))
  local now, seen = string.format('%d', now_ms()), {}
  for i, id in ipairs(ids) do
    if held[i] == ARGV[2 * i] and not seen[id] then
      seen[id] = true
      results[i] = 1
      finished[#finished + 1] = id
      scored[#scored + 1] = now
      scored[#scored + 1] = id
    else
      results[i] = 0
    end
  end
end
if #finished > 0 then
  redis.call('HDEL', leases, unpack(finished))
  redis.call('ZREM', leased, unpack(finished))
  redis.call('HDEL', messages, unpack(finished))
  redis.call('HDEL', bodies, unpack(finished))
  redis.call('HDEL', attempts, unpack(finished))
  redis.call('HDEL', errors, unpack(finished))
  redis.call('ZADD', done, unpack(scored))
end
return results
",
    )
});

/// ARGV: id, token, error, retry delay ms (empty: dead). Returns 1 when
/// recorded.
static FAIL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id = ARGV[1]
if not fenced(id, ARGV[2]) then return 0 end
unlease(id)
redis.call('HSET', errors, id, ARGV[3])
if ARGV[4] == '' then
  bury(id)
else
  redis.call('ZADD', delayed, now_ms() + tonumber(ARGV[4]), id)
end
return 1
",
    )
});

/// ARGV: pairs of id and token. Returns how many were handed back (the
/// attempt each lease counted is given back too).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local released = 0
for i = 1, #ARGV - 1, 2 do
  local id = ARGV[i]
  if fenced(id, ARGV[i + 1]) then
    unlease(id)
    local n = tonumber(redis.call('HGET', attempts, id)) or 0
    if n > 0 then n = n - 1 end
    redis.call('HSET', attempts, id, n)
    enqueue(id)
    released = released + 1
  end
end
return released
",
    )
});

/// ARGV: id. Returns 1 when requeued.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id = ARGV[1]
if not redis.call('ZSCORE', dead, id) then return 0 end
redis.call('ZREM', dead, id)
redis.call('HSET', attempts, id, 0)
redis.call('HDEL', errors, id)
enqueue(id)
return 1
",
    )
});

/// ARGV: after (a sequence number), how many. Returns
/// `{{id, seq, message, attempts, error, body}, …}`.
static DEAD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local found = redis.call('ZRANGEBYSCORE', dead, '(' .. ARGV[1], '+inf', 'WITHSCORES',
                         'LIMIT', 0, ARGV[2])
local page = {}
for i = 1, #found, 2 do
  local id = found[i]
  page[#page + 1] = {
    id, found[i + 1], redis.call('HGET', messages, id) or '',
    tonumber(redis.call('HGET', attempts, id)) or 0, redis.call('HGET', errors, id) or '',
    redis.call('HGET', bodies, id)
  }
end
return page
",
    )
});

/// ARGV: age ms (done before now − age is forgotten), chunk. Returns how
/// many were forgotten.
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local cutoff = now_ms() - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', done, '-inf', string.format('(%d', cutoff),
                       'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', done, unpack(ids)) end
return #ids
",
    )
});

/// Returns `{messages, leased, dead, done}`, read at one instant.
static COUNTS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
return {redis.call('HLEN', messages), redis.call('ZCARD', leased),
        redis.call('ZCARD', dead), redis.call('ZCARD', done)}
",
    )
});

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`),
    /// with [`DEFAULT_REDIS_TIMEOUT`] for connecting and for each operation,
    /// and logs a `warn` when Redis can lose acknowledged writes (see
    /// [`persistence`](Self::persistence)). After three operations in a
    /// row timed out, the connection is replaced by a new one (redis-rs
    /// reconnects by itself only when a connection fails, not when it goes
    /// silent: a failover that took the server's machine away, a NAT that
    /// forgot the connection).
    ///
    /// # Errors
    ///
    /// When the URL is invalid, Redis cannot be reached (after a few
    /// attempts), or it refuses commands (a password it requires and the
    /// URL lacks: `NOAUTH`). The error never contains the URL or its
    /// password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::open(url, DEFAULT_REDIS_TIMEOUT).await?;
        store.warn_if_not_durable().await;
        Ok(store)
    }

    async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let connection = Connection::open(url, timeout).await?;
        Ok(Self::with(connection).timeout(timeout))
    }

    /// A store on a connection you configured yourself (for instance one
    /// made with `ConnectionManager::new_lazy_with_config`, to start while
    /// Redis is still down). Give it no response timeout
    /// (`ConnectionManagerConfig::set_response_timeout(None)`; redis-rs's
    /// default is 500 ms): every operation of the store has its own
    /// [`timeout`](Self::timeout), which a shorter one on the connection
    /// would cut short. Unlike one opened by [`connect`](Self::connect),
    /// it is never replaced when it goes silent. Checks nothing: call
    /// [`persistence`](Self::persistence) yourself.
    pub fn new(connection: ConnectionManager) -> Self {
        Self::with(Connection::given(connection))
    }

    fn with(connection: Connection) -> Self {
        Self {
            connection,
            keys: Arc::new(Keys::new(DEFAULT_REDIS_KEY_PREFIX)),
            timeout: DEFAULT_REDIS_TIMEOUT,
            inserts: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            batchers: Arc::default(),
        }
    }

    /// Sets the key prefix (default [`DEFAULT_REDIS_KEY_PREFIX`]): the keys
    /// are `{prefix}:stream` and so on, so the prefix is also their hash
    /// tag. Inboxes that must not share notifications (two environments on
    /// one Redis) need different prefixes.
    ///
    /// Any string is accepted, and two different prefixes never share a
    /// key. A prefix that is empty or starts with `}` gives keys without a
    /// common hash tag, which matters only to a Redis Cluster (whose
    /// redirections the store does not follow anyway).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.keys = Arc::new(Keys::new(&prefix));
        // The write tasks use the keys and the timeout: new ones.
        self.batchers = Arc::default();
        self
    }

    /// Sets how long each operation waits for Redis (default
    /// [`DEFAULT_REDIS_TIMEOUT`]) before failing with
    /// [`StoreErrorKind::TimedOut`](super::StoreErrorKind::TimedOut).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.batchers = Arc::default();
        self
    }

    /// Sets how many inserts may wait for Redis at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]; at least 1, at most
    /// [`LARGEST_MAX_IN_FLIGHT`]: a value outside is taken as the nearest
    /// of the two). Beyond that, inserts fail at once with
    /// [`StoreErrorKind::Overloaded`](super::StoreErrorKind::Overloaded),
    /// which the receiver answers with 429: nothing queues without bound.
    #[must_use]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.clamp(1, LARGEST_MAX_IN_FLIGHT);
        self.inserts = Arc::new(Semaphore::new(self.max_in_flight));
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

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

    /// Logs a `warn` when Redis can lose acknowledged writes or evict the
    /// inbox's keys.
    async fn warn_if_not_durable(&self) {
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
    }

    /// Hands back the leases of `ids` taken with `token` (a claim that
    /// failed after its script leased them), without holding up the
    /// caller; what cannot be handed back lapses as usual.
    fn release_in_background(&self, ids: Vec<String>, token: LeaseToken) {
        let mut args = Vec::with_capacity(ids.len() * 2);
        for id in ids {
            args.push(id.into_bytes());
            args.push(token_arg(&token));
        }
        let releasing = self.invoke(&RELEASE, args, |value| int(&value));
        tokio::spawn(async move {
            if let Err(error) = releasing.await {
                tracing::debug!(
                    target: "tower_intercom::inbox",
                    "handing back the leases of a failed claim failed (they will lapse): {error}"
                );
            }
        });
    }

    /// Marks dead the leased notifications of `ids` whose body is in
    /// neither `bodies` nor their message (deleted by hand or evicted):
    /// handing them out empty would lose them quietly, and leaving them
    /// leased would retry them until they died of lapses. A lease that
    /// is no longer `token`'s is left alone: its body went because
    /// another worker finished the notification after this lease lapsed.
    fn bury_missing_in_background(&self, ids: Vec<String>, token: LeaseToken) {
        let store = self.clone();
        tokio::spawn(async move {
            for id in ids {
                let failure = Failure::dead(MISSING_BODY);
                match store.fail(&id, &token, failure).await {
                    Ok(true) => tracing::warn!(
                        target: "tower_intercom::inbox",
                        id = %id,
                        "a notification's body is missing from Redis (deleted or evicted): \
                         it is dead, not handed to the handler"
                    ),
                    Ok(false) => {}
                    Err(error) => tracing::debug!(
                        target: "tower_intercom::inbox",
                        id = %id,
                        "recording a missing body failed (the lease will lapse): {error}"
                    ),
                }
            }
        });
    }

    /// Runs `script` with the inbox's keys and `args`, within the timeout.
    fn invoke<T, F>(&self, script: &'static Script, args: Vec<Vec<u8>>, parse: F) -> InboxFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(Value) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = self.connection.clone();
        let keys = self.keys.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let running = within(&connection, timeout, |mut connection| async move {
                let mut invocation = script.prepare_invoke();
                for key in &keys.all {
                    invocation.key(key);
                }
                for arg in &args {
                    invocation.arg(&arg[..]);
                }
                invocation.invoke_async::<Value>(&mut connection).await
            });
            parse(running.await?.map_err(StoreError::unavailable)?)
        })
    }
}

/// One write waiting for its script call, among others of its kind that
/// share the call: each item adds its arguments, and the script answers
/// one integer per item (`1` done, `0` not: a duplicate, or a lease lost).
trait Batched: Send + Sync + 'static {
    /// The most items one call carries.
    const MAX_ITEMS: usize;
    /// The bytes this item adds to the call.
    fn size(&self) -> usize;
    /// Writes `batch`: the script's answer, one integer per item.
    fn send(batch: &[Self], connection: ConnectionManager, keys: &Keys) -> Sending
    where
        Self: Sized;
    /// Whether its caller stopped waiting for the answer.
    fn abandoned(&self) -> bool;
    /// Answers the caller.
    fn answer(self, result: Result<bool, StoreError>);
}

/// The most bytes of notifications one insert script carries (a larger
/// notification goes alone): one large body must not hold up many small
/// ones, nor the connection the workers share.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Script calls of one kind sent at once; each carries the items that
/// arrived while the others ran.
const BATCHES_IN_FLIGHT: usize = 4;

/// A batch being written.
type Sending =
    std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<Value>> + Send>>;

/// One notification waiting to be stored.
struct Insert {
    id: Box<str>,
    /// `received_at:topic_len:topic`.
    meta: Vec<u8>,
    body: Bytes,
    /// `true`: stored; `false`: a duplicate.
    reply: oneshot::Sender<Result<bool, StoreError>>,
    /// Its place among the `max_in_flight`, held until it is answered.
    _permit: OwnedSemaphorePermit,
}

impl Batched for Insert {
    const MAX_ITEMS: usize = 128;
    fn size(&self) -> usize {
        self.id.len() + self.meta.len() + self.body.len()
    }
    /// One transaction: the bodies with plain `HSETNX` (Redis copies them
    /// once, Lua never sees them), then the insert script with `EVAL`
    /// (never `NOSCRIPT` half-way through the transaction).
    fn send(batch: &[Self], mut connection: ConnectionManager, keys: &Keys) -> Sending {
        let mut transaction = redis::pipe();
        transaction.atomic();
        for insert in batch {
            transaction
                .cmd("HSETNX")
                .arg(&keys.all[BODIES])
                .arg(insert.id.as_bytes())
                .arg(&insert.body[..])
                .ignore();
        }
        let script = transaction.cmd("EVAL").arg(INSERT).arg(keys.all.len());
        for key in &keys.all {
            script.arg(key);
        }
        for insert in batch {
            script.arg(insert.id.as_bytes()).arg(&insert.meta[..]);
        }
        Box::pin(async move {
            let (results,): (Value,) = transaction.query_async(&mut connection).await?;
            Ok(results)
        })
    }
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
    fn answer(self, result: Result<bool, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// One completion waiting to be written.
struct Completion {
    id: Box<str>,
    token: Vec<u8>,
    /// `true`: marked done; `false`: the lease was lost.
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

impl Batched for Completion {
    // Small items: a call of 256 is still short.
    const MAX_ITEMS: usize = 256;
    fn size(&self) -> usize {
        self.id.len() + self.token.len()
    }
    fn send(batch: &[Self], mut connection: ConnectionManager, keys: &Keys) -> Sending {
        let mut invocation = COMPLETE.prepare_invoke();
        for key in &keys.all {
            invocation.key(key);
        }
        for completion in batch {
            invocation
                .arg(completion.id.as_bytes())
                .arg(&completion.token[..]);
        }
        Box::pin(async move { invocation.invoke_async::<Value>(&mut connection).await })
    }
    // A completion is written even when its worker stopped waiting (it
    // timed out): the handler succeeded, and the lease's token fences it.
    fn abandoned(&self) -> bool {
        false
    }
    fn answer(self, result: Result<bool, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// Sends writes of one kind in batches: one script call writes every item
/// that arrived while the previous calls ran, as the SQLite store groups
/// writes into one commit. A batch is one script, so one atomic step; each
/// item in it is checked on its own, in order.
///
/// The task that sends them starts with the first item, in the runtime
/// the store was made in (the connection's), or else the one polling the
/// write; it ends when the store and its clones are dropped, and starts
/// again if its runtime ended.
struct Batcher<B> {
    queue: Mutex<Option<mpsc::UnboundedSender<B>>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl<B> Default for Batcher<B> {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

impl<B: Batched> Batcher<B> {
    /// Queues `item` for the task, and waits for its answer (at most the
    /// store's timeout). The queue is bounded by its callers: inserts by
    /// the store's `inserts` semaphore, completions by the workers'
    /// concurrency.
    async fn write(
        &self,
        item: B,
        answer: oneshot::Receiver<Result<bool, StoreError>>,
        store: &RedisStore,
    ) -> Result<bool, StoreError> {
        self.queue(item, store)?;
        match tokio::time::timeout(store.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::unavailable(
                "the inbox's Redis write task stopped",
            )),
            Err(_) => Err(StoreError::timed_out(store.timeout)),
        }
    }

    fn queue(&self, item: B, store: &RedisStore) -> Result<(), StoreError> {
        // Nothing panics while the lock is held; a poisoned lock is used.
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let item = match queue.as_ref() {
            Some(sender) => match sender.send(item) {
                Ok(()) => return Ok(()),
                // The task's runtime ended: a new task.
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        // The store's runtime, unless it is a current-thread runtime that
        // is not the one polling (its tasks run only while it is driven);
        // then, or when it has ended, the caller's.
        let current = tokio::runtime::Handle::try_current().ok();
        let own = self.runtime.clone().filter(|own| {
            own.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread
                || current
                    .as_ref()
                    .is_some_and(|current| current.id() == own.id())
        });
        let mut item = item;
        for runtime in own.into_iter().chain(current) {
            let (sender, receiver) = mpsc::unbounded_channel();
            runtime.spawn(send_batches(
                receiver,
                store.connection.clone(),
                store.keys.clone(),
                store.timeout,
            ));
            match sender.send(item) {
                Ok(()) => {
                    *queue = Some(sender);
                    return Ok(());
                }
                // That runtime has ended.
                Err(mpsc::error::SendError(back)) => item = back,
            }
        }
        drop(item);
        Err(StoreError::unavailable(
            "the inbox's Redis store needs a running Tokio runtime",
        ))
    }
}

/// The write task: as soon as one of the [`BATCHES_IN_FLIGHT`] is free,
/// takes every item waiting (up to `MAX_ITEMS` and [`MAX_BATCH_BYTES`])
/// and writes them with one script call.
async fn send_batches<B: Batched>(
    mut queue: mpsc::UnboundedReceiver<B>,
    connection: Connection,
    keys: Arc<Keys>,
    timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    // The item that did not fit in the previous batch.
    let mut carried: Option<B> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(item) => item,
            None => match queue.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let mut bytes = first.size();
        let mut batch = vec![first];
        while batch.len() < B::MAX_ITEMS && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(item) if bytes + item.size() > MAX_BATCH_BYTES => {
                    carried = Some(item);
                    break;
                }
                Ok(item) => {
                    bytes += item.size();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        // An insert whose caller already gave up (and answered 503) is not
        // written: the answer said "not stored", and Intercom's retry will
        // store it.
        batch.retain(|item| !item.abandoned());
        if batch.is_empty() {
            continue;
        }
        let (connection, keys) = (connection.clone(), keys.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match write_batch(&batch, connection, &keys, timeout).await {
                Ok(results) => {
                    for (item, done) in batch.into_iter().zip(results) {
                        item.answer(Ok(done));
                    }
                }
                Err(failure) => {
                    for item in batch {
                        item.answer(Err(failure.error()));
                    }
                }
            }
        });
    }
}

/// Why a batch was not written, for each of its items.
enum BatchFailure {
    TimedOut(Duration),
    Unavailable(Arc<redis::RedisError>),
    Malformed,
}

impl BatchFailure {
    fn error(&self) -> StoreError {
        match self {
            Self::TimedOut(timeout) => StoreError::timed_out(*timeout),
            Self::Unavailable(error) => StoreError::unavailable(error.clone()),
            Self::Malformed => malformed(),
        }
    }
}

/// Runs the batch's script: each item's answer.
async fn write_batch<B: Batched>(
    batch: &[B],
    connection: Connection,
    keys: &Keys,
    timeout: Duration,
) -> Result<Vec<bool>, BatchFailure> {
    let writing = within(&connection, timeout, |connection| {
        B::send(batch, connection, keys)
    });
    let value = match writing.await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => return Err(BatchFailure::Unavailable(Arc::new(error))),
        Err(_) => return Err(BatchFailure::TimedOut(timeout)),
    };
    let results = list(value).map_err(|_| BatchFailure::Malformed)?;
    if results.len() != batch.len() {
        return Err(BatchFailure::Malformed);
    }
    results
        .iter()
        .map(|result| int(result).map(|done| done == 1))
        .collect::<Result<_, _>>()
        .map_err(|_| BatchFailure::Malformed)
}

impl InboxStore for RedisStore {
    fn insert(&self, notification: NewNotification) -> InboxFuture<Inserted> {
        // At most `max_in_flight` inserts wait for Redis; the others are
        // refused at once.
        let Ok(permit) = self.inserts.clone().try_acquire_owned() else {
            return Box::pin(std::future::ready(Err(StoreError::overloaded())));
        };
        let mut meta = format!(
            "{}:{}:",
            millis(notification.received_at),
            notification.topic.len()
        )
        .into_bytes();
        meta.extend_from_slice(notification.topic.as_bytes());
        let (reply, answer) = oneshot::channel();
        let insert = Insert {
            id: notification.id,
            meta,
            body: notification.body,
            reply,
            _permit: permit,
        };
        let store = self.clone();
        Box::pin(async move {
            let stored = store.batchers.inserts.write(insert, answer, &store).await?;
            Ok(if stored {
                Inserted::Stored
            } else {
                Inserted::Duplicate
            })
        })
    }

    fn claim(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
        let token = LeaseToken::random();
        let args = vec![
            request.max.clamp(1, MAX_CLAIM).to_string().into_bytes(),
            duration_millis(request.lease)
                .max(1)
                .to_string()
                .into_bytes(),
            request.max_attempts.max(1).to_string().into_bytes(),
            token.value().to_string().into_bytes(),
            LAPSED.as_bytes().to_vec(),
            CHUNK.to_string().into_bytes(),
        ];
        let leasing = self.invoke(&CLAIM, args, |value| {
            let now = SystemTime::now();
            let [next_due, claimed] = array::<2>(value)?;
            let next_due = u64::try_from(int(&next_due)?)
                .ok()
                .map(|ms| now + Duration::from_millis(ms));
            let claimed = list(claimed)?
                .into_iter()
                .map(|lease| {
                    let [id, attempt, message] = array::<3>(lease)?;
                    let attempt = u32::try_from(int(&attempt)?).unwrap_or(u32::MAX);
                    Ok((text(id)?, attempt, bytes(message)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((claimed, next_due))
        });
        let store = self.clone();
        let started = tokio::time::Instant::now();
        Box::pin(async move {
            let (claimed, next_due) = leasing.await?;
            if claimed.is_empty() {
                return Ok(Claimed::new(Vec::new(), next_due));
            }
            // The bodies, by a plain command: through Lua, Redis would
            // hash and copy every byte of each. Within what is left of
            // the operation's timeout.
            let mut reading = redis::cmd("HMGET");
            reading.arg(&store.keys.all[BODIES]);
            for (id, _, _) in &claimed {
                reading.arg(id);
            }
            let timeout = store.timeout;
            let left = timeout.saturating_sub(started.elapsed());
            let read = within(&store.connection, left, |mut connection| async move {
                reading.query_async::<Vec<Value>>(&mut connection).await
            })
            .await;
            let bodies = match read {
                Ok(Ok(bodies)) if bodies.len() == claimed.len() => bodies,
                failed => {
                    // The leases were taken: handed back at once, with
                    // their attempts, rather than left to lapse as failed
                    // attempts of notifications no handler saw.
                    let ids = claimed.into_iter().map(|(id, ..)| id).collect();
                    store.release_in_background(ids, token);
                    return Err(match failed {
                        Ok(Ok(_)) => malformed(),
                        Ok(Err(error)) => StoreError::unavailable(error),
                        Err(_) => StoreError::timed_out(timeout),
                    });
                }
            };
            let mut leases = Vec::with_capacity(claimed.len());
            let mut missing = Vec::new();
            for ((id, attempt, message), body) in claimed.into_iter().zip(bodies) {
                let absent = body == Value::Nil;
                let (_, received_at, topic, body) = decode(message, body)?;
                // Neither in its hash nor after the topic: not handed out.
                if absent && body.is_empty() {
                    missing.push(id);
                    continue;
                }
                leases.push(Lease::new(
                    ReceivedNotification::new(id, topic, body, received_at, attempt),
                    token.clone(),
                ));
            }
            if !missing.is_empty() {
                store.bury_missing_in_background(missing, token);
            }
            Ok(Claimed::new(leases, next_due))
        })
    }

    fn complete(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let (reply, answer) = oneshot::channel();
        let completion = Completion {
            id: id.into(),
            token: token_arg(token),
            reply,
        };
        let store = self.clone();
        Box::pin(async move {
            store
                .batchers
                .completions
                .write(completion, answer, &store)
                .await
        })
    }

    fn fail(&self, id: &str, token: &LeaseToken, failure: Failure) -> InboxFuture<bool> {
        let delay = failure.retry_at.map(|retry_at| {
            let delay = retry_at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            duration_millis(delay).to_string().into_bytes()
        });
        let args = vec![
            id.as_bytes().to_vec(),
            token_arg(token),
            truncate(&failure.error, MAX_ERROR_LEN).as_bytes().to_vec(),
            delay.unwrap_or_default(),
        ];
        self.invoke(&FAIL, args, |value| Ok(int(&value)? == 1))
    }

    fn release(&self, id: &str, token: &LeaseToken) -> InboxFuture<bool> {
        let args = vec![id.as_bytes().to_vec(), token_arg(token)];
        self.invoke(&RELEASE, args, |value| Ok(int(&value)? == 1))
    }

    fn counts(&self) -> InboxFuture<Counts> {
        self.invoke(&COUNTS, Vec::new(), |value| {
            let [messages, leased, dead, done] = array::<4>(value)?;
            let [messages, leased, dead, done] =
                [messages, leased, dead, done].map(|n| int(&n).map(|n| n.max(0) as u64));
            let (leased, dead) = (leased?, dead?);
            Ok(Counts {
                pending: messages?.saturating_sub(leased).saturating_sub(dead),
                in_progress: leased,
                done: done?,
                dead,
            })
        })
    }

    fn dead(&self, query: DeadQuery) -> InboxFuture<DeadPage> {
        let after = match query.after.as_deref().map(str::parse::<u64>) {
            None => 0,
            Some(Ok(seq)) => seq,
            Some(Err(_)) => {
                return Box::pin(std::future::ready(Err(StoreError::unavailable(
                    "not a cursor of this store",
                ))))
            }
        };
        let limit = query.limit.clamp(1, MAX_PAGE);
        let args = vec![
            after.to_string().into_bytes(),
            (limit + 1).to_string().into_bytes(),
        ];
        self.invoke(&DEAD, args, move |value| {
            let mut rows = Vec::new();
            for row in list(value)? {
                let [id, seq, message, attempts, error, body] = array::<6>(row)?;
                let id = text(id)?;
                let seq = text(seq)?;
                let (_, received_at, topic, body) = decode(bytes(message)?, body)?;
                let attempts = u32::try_from(int(&attempts)?.max(0)).unwrap_or(u32::MAX);
                let error = String::from_utf8_lossy(&bytes(error)?).into_owned();
                let notification =
                    ReceivedNotification::new(id, topic, body, received_at, attempts);
                rows.push((seq, DeadNotification::new(notification, error)));
            }
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = more
                .then(|| rows.last().map(|(seq, _)| seq.clone().into_boxed_str()))
                .flatten();
            Ok(DeadPage::new(
                rows.into_iter().map(|(_, dead)| dead).collect(),
                next,
            ))
        })
    }

    fn requeue(&self, id: &str) -> InboxFuture<bool> {
        self.invoke(&REQUEUE, vec![id.as_bytes().to_vec()], |value| {
            Ok(int(&value)? == 1)
        })
    }

    fn prune_done(&self, before: SystemTime) -> InboxFuture<u64> {
        // Redis's clock decides when an id was done: the cutoff is sent as
        // an age, so the two clocks need not agree.
        let now = SystemTime::now();
        let age: i64 = match now.duration_since(before) {
            Ok(age) => duration_millis(age),
            Err(ahead) => -duration_millis(ahead.duration()),
        };
        let args = vec![age.to_string().into_bytes(), CHUNK.to_string().into_bytes()];
        self.invoke(&PRUNE, args, |value| {
            Ok(u64::try_from(int(&value)?).unwrap_or(0))
        })
    }
}

fn token_arg(token: &LeaseToken) -> Vec<u8> {
    token.value().to_string().into_bytes()
}

/// A stored message, `seq:received_at:topic_len:topic`, and its body from
/// `{P}:bodies`; a message stored before the bodies had their own hash
/// (no body there) carries its body after the topic.
fn decode(message: Vec<u8>, body: Value) -> Result<(u64, SystemTime, String, Bytes), StoreError> {
    let mut rest = &message[..];
    let mut number = || -> Result<u64, StoreError> {
        let colon = rest.iter().position(|&b| b == b':').ok_or_else(malformed)?;
        let digits = std::str::from_utf8(&rest[..colon]).map_err(|_| malformed())?;
        let n = digits.parse::<u64>().map_err(|_| malformed())?;
        rest = &rest[colon + 1..];
        Ok(n)
    };
    let seq = number()?;
    let received_at = number()?;
    let topic_len = usize::try_from(number()?).map_err(|_| malformed())?;
    if rest.len() < topic_len {
        return Err(malformed());
    }
    let topic = String::from_utf8(rest[..topic_len].to_vec()).map_err(|_| malformed())?;
    let body = match body {
        Value::Nil => {
            let offset = message.len() - rest.len() + topic_len;
            Bytes::from(message).slice(offset..)
        }
        body => Bytes::from(bytes(body)?),
    };
    Ok((seq, time(received_at), topic, body))
}

fn malformed() -> StoreError {
    StoreError::unavailable("Redis returned an unexpected reply to an inbox script")
}

fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(malformed),
        _ => Err(malformed()),
    }
}

fn bytes(value: Value) -> Result<Vec<u8>, StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        _ => Err(malformed()),
    }
}

fn text(value: Value) -> Result<String, StoreError> {
    String::from_utf8(bytes(value)?).map_err(|_| malformed())
}

fn list(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(malformed()),
    }
}

fn array<const N: usize>(value: Value) -> Result<[Value; N], StoreError> {
    <[Value; N]>::try_from(list(value)?).map_err(|_| malformed())
}

/// Milliseconds since the Unix epoch (0 before it).
fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// A duration in milliseconds, at most ten years (so that Redis's `now +
/// lease` stays an exact integer).
fn duration_millis(duration: Duration) -> i64 {
    const TEN_YEARS: i64 = 10 * 366 * 24 * 60 * 60 * 1000;
    i64::try_from(duration.as_millis()).map_or(TEN_YEARS, |ms| ms.min(TEN_YEARS))
}

fn time(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

    #[test]
    fn messages_round_trip() {
        let topic = "conversation:user.created";
        let body = b"{\"id\":\"a:b\"}\0\xff";
        let mut message = format!("42:1700000000123:{}:", topic.len()).into_bytes();
        message.extend_from_slice(topic.as_bytes());
        let meta = message.clone();
        message.extend_from_slice(body);
        // A body that went from its hash (the notification was done by
        // another worker since the claim) reads as empty, which the claim
        // tells from a stored empty body by the missing hash field.
        let (.., gone) = decode(meta.clone(), Value::Nil).unwrap();
        assert!(gone.is_empty());
        // The body in its own hash, or (stored by an earlier version)
        // after the topic.
        for (message, body_value) in [
            (meta, Value::BulkString(body.to_vec())),
            (message, Value::Nil),
        ] {
            let (seq, received_at, decoded_topic, decoded_body) =
                decode(message, body_value).unwrap();
            assert_eq!(seq, 42);
            assert_eq!(millis(received_at), 1_700_000_000_123);
            assert_eq!(decoded_topic, topic);
            assert_eq!(&decoded_body[..], body);
        }
        for bad in [&b""[..], b"1:2", b"1:2:9:short", b"x:2:0:", b"1:2:1:\xff"] {
            assert!(decode(bad.to_vec(), Value::Nil).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("app:intercom");
        assert_eq!(keys.all[0], "{app:intercom}:stream");
        assert!(keys
            .all
            .iter()
            .all(|key| key.starts_with("{app:intercom}:")));
    }

    #[test]
    fn different_prefixes_never_share_a_key() {
        let prefixes = ["", "}", "a}b", "a}:stream", "{", "a{b}c", "app:intercom"];
        let mut seen = std::collections::HashSet::new();
        for prefix in prefixes {
            for key in Keys::new(prefix).all {
                assert!(seen.insert(key.clone()), "{key:?} twice");
            }
        }
    }
}
