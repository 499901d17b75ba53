//! The Lua scripts, one file each in `lua/`, and how they are run: each
//! is one atomic step over the inbox's keys.

use std::sync::LazyLock;

use redis::{Script, Value};

use crate::redis_connection::within;

use super::{InboxFuture, LeaseToken, RedisStore, StoreError};

/// The consumer group, and its only consumer: leases are fenced by token,
/// so which consumer holds an entry does not matter.
const GROUP: &str = "workers";

/// Lapsed leases, due retries and done ids handled per script call, so
/// that one call stays short.
pub(super) const CHUNK: usize = 1000;

/// The prefix is the hash tag: it must make one, the same for every key.
/// Names the keys and defines the helpers every script shares.
const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&source(body))
}

/// A script's whole source: the group, the prelude, then `body`.
fn source(body: &str) -> String {
    format!("local GROUP = '{GROUP}'\n\n{PRELUDE}\n\n{body}")
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
pub(super) static INSERT: &str = include_str!("lua/insert.lua");

/// ARGV: max, lease ms, max attempts, token, lapse error, chunk. Returns
/// `{ms until the next is due or -1, {{id, attempt, message}, …}}`; the
/// bodies are read after it with a plain `HMGET`, not through Lua (which
/// copies every string it is handed, and in Redis 7.0 hashes every byte).
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/claim.lua")));

/// ARGV: pairs of id and token. Returns one integer per pair: 1 when
/// marked done, 0 when the lease was lost.
pub(super) static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/complete.lua")));

/// ARGV: id, token, error, retry delay ms (empty: dead). Returns 1 when
/// recorded.
pub(super) static FAIL: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/fail.lua")));

/// ARGV: pairs of id and token. Returns how many were handed back (the
/// attempt each lease counted is given back too).
pub(super) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/release.lua")));

/// ARGV: id. Returns 1 when requeued.
pub(super) static REQUEUE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/requeue.lua")));

/// ARGV: after (a sequence number), how many. Returns
/// `{{id, seq, message, attempts, error, body}, …}`.
pub(super) static DEAD: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/dead.lua")));

/// ARGV: age ms (done before now − age is forgotten), chunk. Returns how
/// many were forgotten.
pub(super) static PRUNE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/prune.lua")));

/// Returns `{messages, leased, dead, done, oldest}`, read at one instant:
/// `oldest` is when the longest-waiting due notification became due, in
/// milliseconds since the Unix epoch, or -1 when none is due.
pub(super) static COUNTS: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/counts.lua")));

impl RedisStore {
    /// Runs `script` with the inbox's keys and `args`, within the timeout.
    pub(super) fn invoke<T, F>(
        &self,
        script: &'static Script,
        args: Vec<Vec<u8>>,
        parse: F,
    ) -> InboxFuture<T>
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

/// A lease token as a script argument.
pub(super) fn token_arg(token: &LeaseToken) -> Vec<u8> {
    token.value().to_string().into_bytes()
}
