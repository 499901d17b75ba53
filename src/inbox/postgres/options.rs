//! The settings of a [`PostgresStore`], and how it connects.

use std::{fmt, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_postgres::config::{Config, Host, SslMode};

use super::{
    errors::{pool_error, store_error, url_error},
    listen::Listener,
    schema::{channel, migrate, validate_schema, Statements},
    tls::Rustls,
    writer::{write_loop, Completion, Insert, Writer},
    PostgresStore, Shared, StoreError,
};

/// The default [`PostgresOptions::schema`]: `tower_intercom`.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "tower_intercom";

/// The default [`PostgresOptions::timeout`]: 1 s, half the receiver's
/// default deadline.
pub const DEFAULT_POSTGRES_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest [`PostgresOptions::timeout`]: 2^31 − 1 ms (about 24.8
/// days), the longest `statement_timeout` Postgres takes. A longer one is
/// taken as this.
pub const MAX_POSTGRES_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The default [`PostgresOptions::pool_size`]: 16 connections.
pub const DEFAULT_POSTGRES_POOL_SIZE: usize = 16;

/// The largest [`PostgresOptions::pool_size`]: 10,000 connections, far
/// more than a server takes (each is a process). A larger one is taken as
/// this.
pub const MAX_POSTGRES_POOL_SIZE: usize = 10_000;

/// The default [`PostgresOptions::max_batch`]: 512 inserts per statement.
pub const DEFAULT_POSTGRES_MAX_BATCH: usize = 512;

/// The default [`PostgresOptions::channel_capacity`]: 4096 inserts waiting
/// to be written.
pub const DEFAULT_POSTGRES_CHANNEL_CAPACITY: usize = 4096;

/// The largest [`PostgresOptions::channel_capacity`]: the most a Tokio
/// channel holds (`tokio::sync::Semaphore::MAX_PERMITS`, 2^61 − 1 on
/// 64-bit machines). A larger one is taken as this.
pub const MAX_POSTGRES_CHANNEL_CAPACITY: usize = Semaphore::MAX_PERMITS;

/// How long the migrations at start-up may take (waiting for another
/// receiver's included).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a new connection may take (TCP, TLS, SCRAM), at least; its
/// TCP handshake too (tokio-postgres's `connect_timeout`, unless the URL
/// sets one), which a server whose queue of connections to accept is
/// full answers only at the client's next try, a second or more later.
/// An operation waits for one at most its timeout, but the connection is
/// made to the end all the same, for the next operations (see
/// `Shared::client`).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of a [`PostgresStore`]: made by [`PostgresStore::options`],
/// used by [`connect`](Self::connect). The inbox's own settings (deadline,
/// retention, …) are set on the [`Inbox`](crate::inbox::Inbox) made over
/// the store.
#[derive(Clone)]
#[must_use]
pub struct PostgresOptions {
    schema: String,
    pool_size: usize,
    max_batch: usize,
    channel_capacity: usize,
    timeout: Duration,
    session_settings: bool,
    listen: bool,
    root_certificates: Vec<u8>,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("max_batch", &self.max_batch)
            .field("channel_capacity", &self.channel_capacity)
            .field("timeout", &self.timeout)
            .field("session_settings", &self.session_settings)
            .field("listen", &self.listen)
            .field("root_certificates_len", &self.root_certificates.len())
            .finish()
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: DEFAULT_POSTGRES_SCHEMA.to_owned(),
            pool_size: DEFAULT_POSTGRES_POOL_SIZE,
            max_batch: DEFAULT_POSTGRES_MAX_BATCH,
            channel_capacity: DEFAULT_POSTGRES_CHANNEL_CAPACITY,
            timeout: DEFAULT_POSTGRES_TIMEOUT,
            session_settings: true,
            listen: true,
            root_certificates: Vec::new(),
        }
    }
}

impl PostgresStore {
    /// Settings for [`PostgresOptions::connect`].
    pub fn options() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// Connects with the default settings; see [`PostgresOptions::connect`].
    ///
    /// # Errors
    ///
    /// As [`PostgresOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresOptions::default().connect(url).await
    }
}

impl PostgresOptions {
    /// The schema that holds the inbox's tables (default
    /// [`DEFAULT_POSTGRES_SCHEMA`]): inboxes that must not share
    /// notifications (two environments in one database) need different
    /// schemas. 1 to 57 lower-case ASCII letters, digits and underscores,
    /// not starting with a digit or `pg_`; [`connect`](Self::connect)
    /// refuses any other name.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The most connections the store holds (default
    /// [`DEFAULT_POSTGRES_POOL_SIZE`]; at least 1, at most
    /// [`MAX_POSTGRES_POOL_SIZE`]: a value outside is taken as the nearest
    /// of the two), besides the one that listens for wake-ups. Inserts use
    /// up to 4 of them at once; claims and outcomes one each. An operation
    /// that finds them all busy waits for one, within the
    /// [`timeout`](Self::timeout).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.clamp(1, MAX_POSTGRES_POOL_SIZE);
        self
    }

    /// At most this many inserts per statement (default
    /// [`DEFAULT_POSTGRES_MAX_BATCH`]; at least 1, and any larger count),
    /// and at most 4 MiB of notifications (a larger one goes alone).
    /// Inserts that arrive while a statement is being committed go in the
    /// next: one commit, one sync of the log, for all of them.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How many inserts may wait to be written (default
    /// [`DEFAULT_POSTGRES_CHANNEL_CAPACITY`]). When they are that many,
    /// the receiver answers 429 at once (see
    /// [`Inbox::overload_status`](crate::inbox::Inbox::overload_status)):
    /// nothing queues without bound. At least 1, at most
    /// [`MAX_POSTGRES_CHANNEL_CAPACITY`] (a value outside is taken as the
    /// nearest of the two); memory is taken for what waits, not for the
    /// capacity.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.clamp(1, MAX_POSTGRES_CHANNEL_CAPACITY);
        self
    }

    /// How long each operation may take (default
    /// [`DEFAULT_POSTGRES_TIMEOUT`], 1 s; at least 1 ms, at most
    /// [`MAX_POSTGRES_TIMEOUT`]: a value outside is taken as the nearest
    /// of the two), waiting for a connection included, before it fails
    /// with [`StoreErrorKind::TimedOut`](crate::StoreErrorKind::TimedOut).
    /// Also the connections' `statement_timeout` (see
    /// [`session_settings`](Self::session_settings)), so that Postgres
    /// stops what nobody waits for any more. Keep it under the inbox's
    /// [deadline](crate::inbox::Inbox::deadline) (2 s by default), so that
    /// a stalled server is answered 503 by the store, not by the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), MAX_POSTGRES_TIMEOUT);
        self
    }

    /// Whether connections start with `synchronous_commit = on`,
    /// `statement_timeout` = the [`timeout`](Self::timeout) and
    /// `plan_cache_mode = force_generic_plan` (each statement is planned
    /// once per connection, not at every call: every one of them reads
    /// through its indexes in its generic plan), sent as startup options
    /// (default `true`). Turn it off behind a pooler that
    /// refuses startup options (PgBouncer without
    /// `ignore_startup_parameters = options`); then the server's, the
    /// database's and the role's settings apply, and
    /// [`connect`](Self::connect) warns when they let Postgres lose
    /// commits.
    pub fn session_settings(mut self, send: bool) -> Self {
        self.session_settings = send;
        self
    }

    /// Whether a connection of its own `LISTEN`s for notifications stored
    /// by other processes, to wake this process's idle workers at once
    /// (default `true`). Turn it off behind a pooler in transaction mode
    /// (PgBouncer's default), where `LISTEN` does not work: workers then
    /// find those notifications at their next poll
    /// ([`Worker::poll_interval`](crate::inbox::Worker::poll_interval)).
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Trusts the CA certificates in `pem` (PEM, one or more), besides the
    /// webpki roots, to verify the server with `sslmode=require`: a
    /// managed database's CA bundle, or your own CA. May be called more
    /// than once.
    pub fn root_certificates(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.extend_from_slice(pem.as_ref());
        self.root_certificates.push(b'\n');
        self
    }

    /// Connects to the database at `url`
    /// (`postgres://user:password@host:port/database?sslmode=require`, or
    /// libpq's `key=value` form), creates or migrates the inbox's schema,
    /// and warns (through `tracing`) when Postgres can lose acknowledged
    /// writes (see [`PostgresStore::durability`]). Needs a Tokio runtime.
    ///
    /// `sslmode=require` connects with TLS and verifies the server's
    /// certificate and host name (as libpq's `verify-full`, which
    /// tokio-postgres does not take by that name); `prefer` (the default)
    /// and `disable` connect without TLS, and a `warn` says so when a host
    /// is not this machine (a Unix socket, `localhost` or a loopback
    /// address).
    ///
    /// # Errors
    ///
    /// When the URL or the schema name is invalid, the server cannot be
    /// reached, the database does not exist, the login is refused, the
    /// role may not create the schema (when it is missing or older), the
    /// schema is newer than this version of the crate knows, or the server
    /// is older than PostgreSQL 12. The error never contains the URL or
    /// its password.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        validate_schema(&self.schema)?;
        let mut config: Config = url.parse().map_err(|error| url_error(&error))?;
        if config.get_ssl_mode() == SslMode::Prefer {
            config.ssl_mode(SslMode::Disable);
        }
        if config.get_ssl_mode() == SslMode::Disable && !config.get_hosts().iter().all(is_local) {
            tracing::warn!(
                target: "tower_intercom::inbox",
                "the inbox's Postgres connections are not encrypted (sslmode is prefer, the \
                 default, or disable) and the server is not on this machine: notifications \
                 and the login cross the network in the clear; add sslmode=require to the URL"
            );
        }
        if self.session_settings {
            let mut options = config.get_options().unwrap_or_default().to_owned();
            options.push_str(&format!(
                " -c synchronous_commit=on -c statement_timeout={} -c plan_cache_mode=force_generic_plan",
                self.timeout.as_millis()
            ));
            config.options(options.trim_start());
        }
        if config.get_application_name().is_none() {
            config.application_name("tower-intercom inbox");
        }
        let connecting = self.timeout.max(CONNECT_TIMEOUT);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connecting);
        }
        let tls = Rustls::new(&self.root_certificates)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.timeout))
            .create_timeout(Some(connecting))
            .recycle_timeout(Some(self.timeout))
            .build()
            .map_err(|error| StoreError::unavailable(error.to_string()))?;

        let mut client = tokio::time::timeout(connecting, pool.get())
            .await
            .map_err(|_| StoreError::timed_out(connecting))?
            .map_err(|error| pool_error(error, self.timeout))?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::integer, \
                        current_setting('server_encoding')",
                &[],
            )
            .await
            .map_err(|error| store_error(&error, self.timeout))?;
        let version: i32 = row
            .try_get(0)
            .map_err(|error| store_error(&error, self.timeout))?;
        if version < 120_000 {
            return Err(StoreError::unavailable(format!(
                "the inbox needs PostgreSQL 12 or newer; the server is {}.{}",
                version / 10_000,
                version % 10_000
            )));
        }
        let encoding: String = row
            .try_get(1)
            .map_err(|error| store_error(&error, self.timeout))?;
        match tokio::time::timeout(
            MIGRATION_TIMEOUT,
            migrate(&mut client, &self.schema, MIGRATION_TIMEOUT),
        )
        .await
        {
            Ok(migrated) => migrated?,
            Err(_) => return Err(StoreError::timed_out(MIGRATION_TIMEOUT)),
        }
        drop(client);

        let origin: Arc<str> = format!("{:016x}", fastrand::u64(..)).into();
        let channel = channel(&self.schema);
        let sql = Statements::new(&self.schema);
        let stats = Arc::default();
        let wake = Arc::new(Notify::new());
        let writer = Arc::new(Writer {
            pool: pool.clone(),
            insert_sql: sql.insert.as_str().into(),
            complete_sql: sql.complete.as_str().into(),
            channel: channel.as_str().into(),
            origin: origin.clone(),
            timeout: self.timeout,
            max_batch: self.max_batch,
            stats: Arc::clone(&stats),
            wake: wake.clone(),
        });
        let (writes, queue) = mpsc::channel(self.channel_capacity);
        tokio::spawn(write_loop::<Insert>(queue, writer.clone()));
        // Completions wait for room (their workers bound how many there
        // are), within the timeout.
        let (completions, queue) = mpsc::channel(self.channel_capacity);
        tokio::spawn(write_loop::<Completion>(queue, writer));
        let stop_listening = if self.listen {
            let (stop, stopped) = oneshot::channel();
            let listener = Listener {
                config,
                tls,
                channel,
                origin,
                wake: wake.clone(),
                timeout: connecting,
            };
            tokio::spawn(listener.run(stopped));
            Some(stop)
        } else {
            None
        };
        let store = PostgresStore {
            shared: Arc::new(Shared {
                pool,
                sql,
                schema: self.schema,
                timeout: self.timeout,
                max_batch: self.max_batch,
                channel_capacity: self.channel_capacity,
                writes,
                completions,
                wake,
                ascii_errors: !encoding.eq_ignore_ascii_case("UTF8"),
                stats,
                runtime: tokio::runtime::Handle::current(),
                stop_listening,
            }),
        };
        store.warn_if_not_durable().await;
        Ok(store)
    }
}

/// Whether `host` is this machine: a Unix socket, `localhost` or a
/// loopback address.
fn is_local(host: &Host) -> bool {
    match host {
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| address.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}
