//! The crate's examples, run as a user runs them: the compiled example
//! binary, started with the environment the README describes. Tests talk to
//! it over loopback sockets or read its output; they never include its
//! source.

use std::{
    collections::BTreeMap,
    io::Read,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Every variable an example reads: the tests set what they need and
/// nothing leaks in from the environment they run in.
const VARIABLES: [&str; 11] = [
    "INTERCOM_ACCESS_TOKEN",
    "INTERCOM_ACCESS_TOKEN_ISSUED_AT",
    "INTERCOM_API_URL",
    "INTERCOM_WEBHOOK_SECRET",
    "INTERCOM_WEBHOOK_SECRET_PREVIOUS",
    "INTERCOM_WEBHOOK_SECRET_FILE",
    "INTERCOM_IDENTITY_SECRET",
    "INTERCOM_APP_ID",
    "INBOX_URL",
    "PORT",
    "ADMIN_PORT",
];

/// Builds `tower-intercom`'s example `name` (a no-op when it is up to date)
/// and returns the path of its binary. Once per test process: later calls
/// return the path at once.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    // Held while building, so parallel tests wait for one build.
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--all-features"])
        .args(["--package", "tower-intercom", "--example", name])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name} failed");
    // The test binary is target/<profile>/deps/<test>.
    let test = std::env::current_exe().unwrap();
    let profile_dir = test.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    built.insert(name.to_owned(), path.clone());
    path
}

/// Example `name`, ready to run with none of the variables the examples
/// read set, and `RUST_LOG=warn`.
pub fn command(name: &str) -> Command {
    let mut command = Command::new(binary(name));
    for variable in VARIABLES {
        command.env_remove(variable);
    }
    command.env("RUST_LOG", "warn");
    command
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// At most this many lines of a running example's output are kept for
/// [`Running::output`].
const MAX_KEPT_LINES: usize = 10_000;

/// A running example server, killed when dropped.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line of stdout and stderr so far (up to `MAX_KEPT_LINES`).
    output: Arc<Mutex<Vec<String>>>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the axum example serves `/metrics` and `/inbox` (`ADMIN_PORT`,
    /// a free port of its own; the other examples ignore it).
    pub admin_addr: SocketAddr,
    /// Its working directory, a fresh temporary one (the axum example
    /// keeps its inbox there unless `INBOX_URL` says otherwise).
    dir: tempfile::TempDir,
}

impl Running {
    /// Starts example receiver `name` on a free port with `env` and waits
    /// until it says it listens for webhooks.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Self {
        Self::start_until(name, env, "Listening for Intercom webhooks")
    }

    /// Starts example server `name` on a free port with `env` and waits
    /// for an output line that starts with `ready`.
    pub fn start_until(name: &str, env: &[(&str, &str)], ready: &str) -> Self {
        let ports = (free_port(), free_port());
        Self::start_in(tempfile::tempdir().unwrap(), ports, name, env, ready)
    }

    /// Starts example server `name` again, in the same working directory
    /// and on the same port, after this one was killed or stopped.
    pub fn restart(mut self, name: &str, env: &[(&str, &str)]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let ports = (self.addr.port(), self.admin_addr.port());
        // The old process is gone: take its directory over.
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Self::start_in(dir, ports, name, env, "Listening for Intercom webhooks")
    }

    /// Everything it printed so far, stdout and stderr (their lines
    /// interleaved as they were read; at most 10,000 lines).
    pub fn output(&self) -> String {
        let kept = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        kept.join("\n")
    }

    /// The process id, to read what the kernel says of it (`/proc/PID/…`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, as a crash, an OOM kill or a hard
    /// redeploy does, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every output line received so far that contains `needle`, and those
    /// arriving within `wait`.
    pub fn lines_containing(&self, needle: &str, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut found = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => found.push(line),
                Ok(_) => {}
                Err(_) => return found,
            }
        }
    }

    fn start_in(
        dir: tempfile::TempDir,
        (port, admin_port): (u16, u16),
        name: &str,
        env: &[(&str, &str)],
        ready: &str,
    ) -> Self {
        let mut command = command(name);
        command
            .current_dir(dir.path())
            .env("PORT", port.to_string())
            .env("ADMIN_PORT", admin_port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start example");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        keep_lines(stdout, output.clone(), Some(tx));
        let stderr = child.stderr.take().unwrap();
        keep_lines(stderr, output.clone(), None);
        let running = Self {
            child,
            lines,
            output,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            dir,
        };
        running.wait_for_line(ready);
        running
    }

    /// The first output line from now on that starts with `prefix`.
    pub fn wait_for_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(err) => panic!("no line starting with {prefix:?}: {err}"),
            }
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "example did not shut down");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads `stream` line by line until it closes: keeps each line in
/// `kept` (up to `MAX_KEPT_LINES`) and sends it to `tx`, if any.
fn keep_lines(
    stream: impl Read + Send + 'static,
    kept: Arc<Mutex<Vec<String>>>,
    mut tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() < MAX_KEPT_LINES {
                    kept.push(line.clone());
                }
            }
            // Once the receiver is gone, the stream is still drained, so
            // the process never blocks on a full pipe.
            if tx.as_ref().is_some_and(|tx| tx.send(line).is_err()) {
                tx = None;
            }
        }
    });
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
