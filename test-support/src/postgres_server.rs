//! A real PostgreSQL server on a free loopback port, in a temporary
//! directory, stopped when dropped or when the test process ends.
//!
//! The binaries (`initdb`, `postgres`, `pg_isready`, `psql`) are taken from
//! `PATH`, or else from `/usr/lib/postgresql/*/bin` (Debian's layout, the
//! newest version first). `./scripts/test.sh` installs them when they are
//! missing; without them the tests that need a server fail (they never
//! skip).
//!
//! Connections over TCP authenticate with a password (`md5` in
//! `pg_hba.conf`: SCRAM for roles whose password is stored so, MD5 for the
//! superuser's, to keep the tests' many connections cheap).
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the
//! server runs as the `postgres` system user (`runuser -u postgres --`),
//! owner of the temporary directory.
//!
//! The server runs under a small shell that holds a pipe from the test
//! process: when that process ends in any way (a panic, `SIGKILL`), the
//! pipe closes and the shell stops the server. [`PostgresServer::shared`]
//! is one server per test binary, for tests that each use a database of
//! their own ([`PostgresServer::fresh_database`]); a test that kills or
//! restarts the server starts its own with [`PostgresServer::start`].

use std::{
    ffi::OsString,
    io::Write,
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

/// The superuser's name.
pub const SUPERUSER: &str = "postgres";

/// The superuser's password (connections over TCP use SCRAM-SHA-256).
pub const PASSWORD: &str = "test-superuser-password";

/// A PostgreSQL server with its own data directory.
pub struct PostgresServer {
    /// The shell that runs the server, and the pipe that keeps it alive.
    child: Option<(Child, ChildStdin)>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    settings: Vec<String>,
    /// The CA that signed the server's certificate, when it has TLS.
    ca: Option<Vec<u8>>,
    /// Remove the directory when the test process ends (the shared server,
    /// which is never dropped).
    remove_on_exit: bool,
}

impl PostgresServer {
    /// Starts a server on a free port and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with these extra settings (`name=value`, as
    /// `postgres -c` takes them).
    pub fn start_with(settings: &[&str]) -> Self {
        Self::launch(settings, false, false)
    }

    /// Starts a server that accepts TCP connections over TLS only, with a
    /// certificate for `localhost` and `127.0.0.1` signed by a CA of its
    /// own ([`ca_certificate`](Self::ca_certificate)).
    pub fn start_tls_only() -> Self {
        Self::launch(&[], true, false)
    }

    /// The server shared by the tests of this test binary, started by the
    /// first that asks. Give each test a database of its own
    /// ([`fresh_database`](Self::fresh_database)); never kill it.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(|| Self::launch(&[], false, true))
    }

    fn launch(settings: &[&str], tls: bool, remove_on_exit: bool) -> Self {
        let bin = binaries();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings: Vec<String> = settings.iter().map(|s| (*s).to_owned()).collect();
        let ca = tls.then(|| {
            let ca = make_certificates(dir.path());
            settings.push("ssl=on".to_owned());
            settings.push(format!(
                "ssl_cert_file={}",
                dir.path().join("server.crt").display()
            ));
            settings.push(format!(
                "ssl_key_file={}",
                dir.path().join("server.key").display()
            ));
            ca
        });
        std::fs::write(dir.path().join("password"), PASSWORD).unwrap();
        if as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown to the postgres user failed: the tests run as root, and PostgreSQL \
                 refuses to; they need a `postgres` system user (Debian's postgresql package \
                 makes one)"
            );
        }
        let data = dir.path().join("data");
        let output = server_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=md5"])
            .arg(format!(
                "--pwfile={}",
                dir.path().join("password").display()
            ))
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if tls {
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 md5\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
        }
        let server = Self::start_on_free_port(dir, bin, settings, ca, remove_on_exit);
        // The superuser's password as MD5, so that the tests' many
        // connections skip SCRAM's 4096 rounds of PBKDF2 (slow in debug
        // builds); roles made with a password in the tests still use
        // SCRAM (`md5` in pg_hba.conf takes either).
        server.sql_local(&format!(
            "SET password_encryption = 'md5'; ALTER ROLE {SUPERUSER} PASSWORD '{PASSWORD}'"
        ));
        server
    }

    fn start_on_free_port(
        dir: tempfile::TempDir,
        bin: PathBuf,
        settings: Vec<String>,
        ca: Option<Vec<u8>>,
        remove_on_exit: bool,
    ) -> Self {
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            bin,
            settings,
            ca,
            remove_on_exit,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("could not start postgres on a free port");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The PEM certificate of the CA that signed the server's certificate
    /// (servers started with [`start_tls_only`](Self::start_tls_only)).
    pub fn ca_certificate(&self) -> Option<&[u8]> {
        self.ca.as_deref()
    }

    /// The superuser's URL of `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates a database with a name no other test of this process uses,
    /// and returns the superuser's URL of it.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` as the superuser in `database` with `psql`, and returns
    /// what it printed (unaligned, tuples only). Panics when it fails.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .args(["-d", database, "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .env(
                "PGSSLMODE",
                if self.ca.is_some() {
                    "require"
                } else {
                    "prefer"
                },
            )
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Runs `sql` as the superuser over the Unix socket (trusted).
    fn sql_local(&self, sql: &str) {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .expect("postgres is running");
        pid_file
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("a process id in postmaster.pid")
    }

    /// Kills the postmaster with `SIGKILL`, as a crash would: no shutdown
    /// checkpoint; its backends end once they notice.
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid().to_string()])
                .status();
            let _ = child.wait();
            drop(stdin);
        }
    }

    /// Starts the server again on the same port and data directory, after
    /// [`kill`](Self::kill): it recovers from its write-ahead log. Waits
    /// until the old backends are gone and it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "postgres did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the server on `self.port` and waits until it accepts
    /// connections; false when it exited (the port was taken, or the old
    /// backends still hold its shared memory).
    fn spawn(&mut self) -> bool {
        let postgres = self.bin.join("postgres");
        let mut command = server_command(&self.bin, "sh");
        // The background jobs of a non-interactive shell read /dev/null:
        // the pipe from the test process is kept as descriptor 3.
        command.arg("-c").arg(
            "exec 3<&0\n\
             \"$@\" </dev/null >\"$LOG\" 2>&1 &\n\
             pid=$!\n\
             (cat <&3 >/dev/null; kill -QUIT \"$pid\" 2>/dev/null;\n\
              if [ -n \"$REMOVE\" ]; then\n\
                while kill -0 \"$pid\" 2>/dev/null; do sleep 0.1; done; rm -rf \"$REMOVE\"\n\
              fi) &\n\
             wait \"$pid\"\n",
        );
        command.arg("postgres-server");
        command.arg(&postgres).arg("-D").arg(self.data_dir());
        command.args(["-p", &self.port.to_string()]);
        command.arg("-k").arg(self.dir.path());
        command.args(["-c", "listen_addresses=127.0.0.1"]);
        command.args(["-c", "max_connections=300", "-c", "shared_buffers=32MB"]);
        for setting in &self.settings {
            command.args(["-c", setting]);
        }
        command.env("LOG", self.dir.path().join("server.log"));
        let remove: OsString = if self.remove_on_exit {
            self.dir.path().into()
        } else {
            OsString::new()
        };
        command.env("REMOVE", remove);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("could not start postgres: {error}"),
        };
        let stdin = child.stdin.take().expect("a pipe to the shell");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.ready() {
                self.child = Some((child, stdin));
                return true;
            }
            if let Ok(Some(_exited)) = child.try_wait() {
                return false;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "postgres did not accept connections on port {}: {}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.child.take() {
            // Closing the pipe makes the shell stop the server (immediate
            // shutdown); then wait for it, so the directory can go.
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.data_dir().join("postmaster.pid").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Runs a server binary (or `sh`) as the `postgres` user when this process
/// is root.
fn server_command(bin: &Path, program: &str) -> Command {
    let program = if program == "sh" {
        PathBuf::from("sh")
    } else {
        bin.join(program)
    };
    if as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// The directory holding `initdb`, `postgres`, `pg_isready` and `psql`:
/// where `postgres` on `PATH` really is, or Debian's
/// `/usr/lib/postgresql/<version>/bin`, newest first.
fn binaries() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                // Their own directory, which has psql and pg_isready too
                // (a PATH entry may hold links to a few of them only).
                if let Some(bin) = std::fs::canonicalize(dir.join("postgres"))
                    .ok()
                    .and_then(|postgres| postgres.parent().map(Path::to_path_buf))
                    .filter(|bin| bin.join("pg_isready").is_file() && bin.join("psql").is_file())
                {
                    return bin;
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (initdb, postgres) on PATH or in \
             /usr/lib/postgresql/*/bin; the Postgres tests need a real server. Run \
             ./scripts/test.sh, which installs it, or `apt-get install postgresql`"
        )
    })
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by
/// it, made with `openssl` in `dir`. Returns the CA's PEM certificate.
fn make_certificates(dir: &Path) -> Vec<u8> {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (the TLS tests make their certificates with it)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tower-intercom test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
         basicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    // PostgreSQL refuses a key that others can read.
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::read(dir.join("ca.crt")).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free loopback port")
}
