//! `stockwatch run` and `stockwatch simulate` as child processes of a test, against a broker of
//! `support/broker.rs`: each instance on its own loopback HTTP port (for `/readyz`), its log in
//! a file. Only the processes started here are ever signalled; they are killed when dropped
//! (also when a test panics).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The six topics of a test, input topics first: sales, shipments, receipts, availability,
/// alerts, dead-letter.
pub fn topics(prefix: &str) -> [String; 6] {
    [
        "sales",
        "shipments",
        "receipts",
        "availability",
        "alerts",
        "dead-letter",
    ]
    .map(|t| format!("{prefix}{t}"))
}

/// The input topics of contract v2's types, inventory counts and adjustments (apart from
/// [`topics`], whose indices the tests use): [`Instance::start`] creates them when missing, with
/// the partition count of the sales topic (inputs are co-partitioned).
pub fn v2_topics(prefix: &str) -> [String; 2] {
    ["inventory_counts", "adjustments"].map(|t| format!("{prefix}{t}"))
}

/// Creates the [`v2_topics`] of `prefix` like the sales topic, if it exists (a test that did
/// not create its inputs yet leaves it to the service's own check).
pub fn ensure_v2_topics(bootstrap: &str, prefix: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let sales = topics(prefix)[0].clone();
    let Ok(c) = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<BaseConsumer>()
    else {
        return;
    };
    let partitions = c
        .fetch_metadata(Some(&sales), Duration::from_secs(10))
        .ok()
        .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
        .unwrap_or(0);
    if partitions == 0 {
        return;
    }
    let names = v2_topics(prefix);
    let _ = stockwatch::sink::kafka::EventProducer::new(
        stockwatch::sink::kafka::ProducerSettings::new(bootstrap),
    )
    .and_then(|p| {
        p.ensure_topics(
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
            partitions as u32,
            1,
            Duration::from_secs(20),
        )
    });
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

/// `GET path` on `addr`: (status, body), or `None` if the server does not answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Runs `stockwatch ARGS` to completion; panics with its stderr unless it succeeds.
pub fn stockwatch(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args(args)
        .output()
        .expect("cannot run stockwatch");
    assert!(
        out.status.success(),
        "stockwatch {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends `sig` (e.g. "TERM") to `pid` with kill(1).
fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Waits up to `deadline` for `child` to exit.
fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some(s);
        }
        if started.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `stockwatch run` process.
pub struct Instance {
    /// A name for messages ("A", "B", ...).
    pub name: String,
    child: Child,
    http: SocketAddr,
    log: PathBuf,
    /// When it was started.
    pub started: Instant,
}

impl Instance {
    /// Starts `stockwatch run` on the broker at `bootstrap`, with the topics of `prefix`,
    /// consumer group `group`, session timeout 6 s, 50 ms polls, `/readyz` on a free loopback
    /// port, its log in `dir/{name}.log`, and `extra` environment overrides.
    pub fn start(
        name: &str,
        bootstrap: &str,
        prefix: &str,
        group: &str,
        dir: &Path,
        extra: &[(&str, &str)],
    ) -> Instance {
        let t = topics(prefix);
        let v2 = v2_topics(prefix);
        ensure_v2_topics(bootstrap, prefix);
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let port = free_port();
        let http = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stockwatch"));
        cmd.arg("run")
            .env("STOCKWATCH__KAFKA__BOOTSTRAP_SERVERS", bootstrap)
            .env("STOCKWATCH__KAFKA__GROUP_ID", group)
            .env("STOCKWATCH__KAFKA__SESSION_TIMEOUT_MS", "6000")
            .env("STOCKWATCH__KAFKA__POLL_MAX_MS", "50")
            // The test streams squeeze ~40 days into 30 s of production: the default allowed
            // lateness (1 h of event time) is ~30 ms of wall time. An input silent for the
            // default 500 ms (a partition's receipts come ~8 a second) stops holding the
            // watermark, and its next record, fetched a little after the sales, was late: a
            // `late` dead letter replay never has. 2 s of silence does not happen mid-stream.
            .env("STOCKWATCH__KAFKA__INPUT_IDLE_MS", "2000")
            .env("STOCKWATCH__KAFKA__TOPICS__SALES", &t[0])
            .env("STOCKWATCH__KAFKA__TOPICS__SHIPMENTS", &t[1])
            .env("STOCKWATCH__KAFKA__TOPICS__RECEIPTS", &t[2])
            .env("STOCKWATCH__KAFKA__TOPICS__AVAILABILITY", &t[3])
            .env("STOCKWATCH__KAFKA__TOPICS__INVENTORY_COUNTS", &v2[0])
            .env("STOCKWATCH__KAFKA__TOPICS__ADJUSTMENTS", &v2[1])
            .env("STOCKWATCH__KAFKA__TOPICS__ALERTS", &t[4])
            .env(
                "STOCKWATCH__KAFKA__TOPICS__EARLY_ALERTS",
                format!("{prefix}alerts-early"),
            )
            .env("STOCKWATCH__KAFKA__TOPICS__DEAD_LETTER", &t[5])
            .env(
                "STOCKWATCH__KAFKA__TOPICS__CHANGELOG",
                format!("{prefix}changelog"),
            )
            .env(
                "STOCKWATCH__KAFKA__TOPICS__OPEN_ALERTS",
                format!("{prefix}alerts-open"),
            )
            .env("STOCKWATCH__HTTP__LISTEN", http.to_string())
            .env("STOCKWATCH__LOG__FORMAT", "text")
            .env("STOCKWATCH_LOG", "info")
            .env("NO_COLOR", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start stockwatch run");
        Instance {
            name: name.to_owned(),
            child,
            http,
            log,
            started: Instant::now(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET path` on the instance's HTTP port: (status, body), or `None` if it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http, path)
    }

    /// The value of the unlabelled series `name` on `/metrics`, if the instance answers.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find(|l| l.split(' ').next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The sum of every series of metric `name` on `/metrics` (all its labels), if the
    /// instance answers and has one.
    pub fn metric_sum(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The `/readyz` report, if the instance answers.
    pub fn readiness(&self) -> Option<serde_json::Value> {
        let (_, body) = self.get("/readyz")?;
        serde_json::from_str(&body).ok()
    }

    /// The partitions `/readyz` reports (`None` if it does not answer).
    pub fn partitions(&self) -> Option<Vec<i32>> {
        let r = self.readiness()?;
        Some(
            r["partitions"]
                .as_array()?
                .iter()
                .filter_map(|p| p.as_i64().map(|p| p as i32))
                .collect(),
        )
    }

    /// Polls `/readyz` until `ok(report)` holds; panics with the log after `deadline`.
    pub fn wait_ready(
        &mut self,
        deadline: Duration,
        mut ok: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let r = self.readiness();
            if let Some(r) = &r {
                if ok(r) {
                    return r.clone();
                }
            }
            assert!(
                self.is_running(),
                "instance {} exited:\n{}",
                self.name,
                self.log()
            );
            assert!(
                started.elapsed() < deadline,
                "instance {}: /readyz not as wanted after {deadline:?} (last {r:?}):\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `deadline` for the process to end by itself: its exit status, or `None`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, deadline)
    }

    /// SIGSTOP: the process freezes (its sockets stay open; nothing it would send is sent).
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT after [`Instance::freeze`].
    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, and waits for the process.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit status and how long the exit took, or `None` if it did not exit
    /// within `deadline` (it is then SIGKILLed).
    pub fn sigterm(&mut self, deadline: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        signal(self.pid(), "TERM");
        match wait_exit(&mut self.child, deadline) {
            Some(s) => Some((s, started.elapsed())),
            None => {
                self.sigkill();
                None
            }
        }
    }

    /// What the instance logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `stockwatch simulate` producing into the input topics in the background.
pub struct Producer {
    child: Child,
    /// When it was started.
    pub started: Instant,
}

impl Producer {
    /// Starts `stockwatch simulate --quiet --bootstrap-servers B --topic-prefix P
    /// --partitions N ARGS`.
    pub fn start(bootstrap: &str, prefix: &str, partitions: u32, args: &[&str]) -> Producer {
        let child = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
            .args(["simulate", "--quiet", "--bootstrap-servers", bootstrap])
            .args(["--topic-prefix", prefix])
            .args(["--partitions", &partitions.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stockwatch simulate");
        Producer {
            child,
            started: Instant::now(),
        }
    }

    /// Whether it is still producing.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to finish (panics unless it succeeds within `deadline`); returns how long
    /// it ran.
    pub fn wait(&mut self, deadline: Duration) -> Duration {
        let remaining = deadline.saturating_sub(self.started.elapsed());
        let status = wait_exit(&mut self.child, remaining);
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        match status {
            Some(s) => assert!(s.success(), "simulate failed ({s}): {err}"),
            None => panic!("simulate still running after {deadline:?}"),
        }
        self.started.elapsed()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
