//! A real Prometheus against a running service: `stockwatch demo` (the whole pipeline on the
//! embedded broker) serves `/metrics` on a free loopback port; Debian's `/usr/bin/prometheus`
//! scrapes it every second with the repository's rules loaded, and its HTTP API must show the
//! key series, a recording rule's result and every rule healthy. `promtool check metrics` must
//! find nothing to say about the service's `/metrics`.
//!
//! Needs the `prometheus` package (`.ci/run` installs it). Without it the test fails and names
//! the missing binary: a test that passes without running proves nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
/// Longest wait for the series to show up (they normally do within ~5 s).
const DEADLINE: Duration = Duration::from_secs(45);

/// A child process killed (by its PID) and reaped when dropped, also when the test fails.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        Proc { child, log }
    }

    /// Fails if the process has exited (with the tail of its log).
    fn assert_running(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{what} exited early ({status}):\n{}", tail(&self.log));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// GET `path` from `127.0.0.1:port`: (status, body), or `None` if nobody answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A condition on the result of a query.
type Check = Box<dyn Fn(&[(Value, f64)]) -> bool>;

/// The instant vector of `query`: (labels, value) per series.
fn query(port: u16, q: &str) -> Vec<(Value, f64)> {
    let Some((200, body)) = get(port, &format!("/api/v1/query?query={}", url_encode(q))) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let value = r["value"][1]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(f64::NAN);
            (r["metric"].clone(), value)
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_demo_and_promtool_finds_the_metrics_clean() {
    for tool in [PROMETHEUS, PROMTOOL] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: this test needs Debian's prometheus package \
             (`apt-get install prometheus`; .ci/run installs it)"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (sw_port, prom_port) = (free_port(), free_port());

    // The service: the whole pipeline on the embedded broker, metrics on a free port.
    let mut demo = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_stockwatch"))
            .args([
                "demo",
                "--duration-secs",
                "90",
                "--rate",
                "2000",
                "--partitions",
                "2",
                "--max-rows",
                "0",
            ])
            .env("STOCKWATCH__HTTP__LISTEN", format!("127.0.0.1:{sw_port}"))
            .env("STOCKWATCH_LOG", "warn"),
        dir.path().join("demo.log"),
    );

    // Prometheus: scrape every second, with our rules evaluated every second.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules.yml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: stockwatch\n    static_configs:\n      - targets: ['127.0.0.1:{sw_port}']\n",
            rules.display()
        ),
    )
    .expect("prometheus.yml");
    let mut prom = Proc::spawn(
        Command::new(PROMETHEUS).args([
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=warn".to_owned(),
        ]),
        dir.path().join("prometheus.log"),
    );

    // The key series, each with its condition.
    let version = env!("CARGO_PKG_VERSION");
    let checks: Vec<(&str, Check)> = vec![
        (
            r#"up{job="stockwatch"}"#,
            Box::new(|r| r.len() == 1 && r[0].1 == 1.0),
        ),
        (
            "sum(stockwatch_events_consumed_total)",
            Box::new(|r| r.len() == 1 && r[0].1 > 0.0),
        ),
        (
            "stockwatch_batch_duration_seconds_count",
            Box::new(|r| r.len() == 1 && r[0].1 > 0.0),
        ),
        (
            "stockwatch_build_info",
            Box::new(move |r| r.len() == 1 && r[0].1 == 1.0 && r[0].0["version"] == version),
        ),
        (
            "stockwatch_assigned_partitions",
            Box::new(|r| r.len() == 1 && r[0].1 == 2.0),
        ),
        // The demo's challenger: both models' quality series, the challenger's its own.
        (
            "stockwatch_model_rolling_auc",
            Box::new(|r| {
                let models: Vec<&Value> = r.iter().map(|(l, _)| &l["model"]).collect();
                r.len() == 2
                    && models.contains(&&Value::from("champion"))
                    && models.contains(&&Value::from("challenger"))
            }),
        ),
        (
            r#"stockwatch_model_rolling_brier{model="challenger"}"#,
            Box::new(|r| r.len() == 1),
        ),
        // A recording rule of rules.yml, evaluated by this Prometheus.
        (
            "job:stockwatch_events_consumed:rate5m",
            Box::new(|r| r.len() == 1 && r[0].1 > 0.0 && r[0].0["job"] == "stockwatch"),
        ),
    ];
    let started = Instant::now();
    let mut pending: Vec<&str> = checks.iter().map(|c| c.0).collect();
    while !pending.is_empty() {
        demo.assert_running("stockwatch demo");
        prom.assert_running("prometheus");
        assert!(
            started.elapsed() < DEADLINE,
            "after {DEADLINE:?} Prometheus still lacks {pending:?}\n-- prometheus log:\n{}\n-- demo log:\n{}",
            tail(&prom.log),
            tail(&demo.log)
        );
        std::thread::sleep(Duration::from_millis(500));
        pending = checks
            .iter()
            .filter(|(q, ok)| !ok(&query(prom_port, q)))
            .map(|c| c.0)
            .collect();
    }

    // Every rule loaded and evaluated without error.
    let (_, body) = get(prom_port, "/api/v1/rules").expect("rules API");
    let rules: Value = serde_json::from_str(&body).expect("rules JSON");
    let mut count = 0;
    for g in rules["data"]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            count += 1;
            assert_eq!(r["health"], "ok", "rule {} is unhealthy: {r}", r["name"]);
        }
    }
    assert!(count >= 20, "only {count} rules loaded");

    // promtool's lint of the exposition: nothing to report.
    let (status, metrics) = get(sw_port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    let mut lint = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write metrics");
    let out = lint.wait_with_output().expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}",
        out.status
    );
    eprintln!(
        "prometheus saw every key series after {:.1} s; {count} rules healthy; promtool check metrics clean",
        started.elapsed().as_secs_f64()
    );
}
