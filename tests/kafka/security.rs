//! Security seen from outside the process: the SASL password never leaves it except towards the
//! broker, the HTTP port is hardened, and no metric label carries a SKU or a location.
//!
//! The canary tests run the real binary with a canary password (from the environment or from
//! `kafka.security.sasl_password_file`), logs at `trace` and librdkafka's `debug = "all"` (which
//! dumps its configuration), then search everything the process printed or served for it. Each
//! also proves it could have found it: the password does reach the broker (a SASL/PLAIN proxy in
//! front of the test broker records what each client sends), librdkafka's configuration dump
//! is in the captured logs (`sasl.password = [redacted]`, and a marker `client.id` set through a
//! non-secret channel shows up verbatim).
//!
//! The broker is tansu (see `support/broker.rs`), which cannot authenticate without stored
//! users; the proxy answers SaslHandshake/SaslAuthenticate itself and pipes everything else.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use service::{free_port, stockwatch, topics};

use crate::support::{broker, service};

/// The password. Long and unlikely, so a match is a leak.
const CANARY: &str = "canary-7f3c9a41e2d8-sasl-password";
/// A value passed through a non-secret channel (`client.id`): it must show up.
const VISIBLE: &str = "visible-marker-5b1e";
const PASSWORD_ENV: &str = "STOCKWATCH__KAFKA__SECURITY__SASL_PASSWORD";

/// Where the password comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Env,
    File,
}

/// Environment of a `stockwatch` process authenticating as `svc` with the canary, at every log
/// level with librdkafka's full debug output, in `format` ("text" or "json").
fn sasl_env(
    dir: &Path,
    from: Source,
    protocol: &str,
    mechanism: &str,
    format: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("STOCKWATCH__KAFKA__SECURITY__PROTOCOL", protocol),
        ("STOCKWATCH__KAFKA__SECURITY__SASL_MECHANISM", mechanism),
        ("STOCKWATCH__KAFKA__SECURITY__SASL_USERNAME", "svc"),
        ("STOCKWATCH__KAFKA__CONSUMER__DEBUG", "all"),
        ("STOCKWATCH__KAFKA__PRODUCER__DEBUG", "all"),
        ("STOCKWATCH__KAFKA__CONSUMER__CLIENT__ID", VISIBLE),
        ("STOCKWATCH__LOG__LEVEL", "trace"),
        ("STOCKWATCH__LOG__FORMAT", format),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    match from {
        Source::Env => env.push((PASSWORD_ENV.to_owned(), CANARY.to_owned())),
        Source::File => {
            let f = dir.join("sasl-password");
            std::fs::write(&f, format!("{CANARY}\n")).unwrap();
            env.push((
                "STOCKWATCH__KAFKA__SECURITY__SASL_PASSWORD_FILE".to_owned(),
                f.to_str().unwrap().to_owned(),
            ));
        }
    }
    env
}

/// A `stockwatch` command with `env` and nothing inherited that could change its config.
fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stockwatch"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("STOCKWATCH_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("STOCKWATCH__") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_canary(what: &str, s: &str) {
    if let Some(at) = s.find(CANARY) {
        let from = s[..at].char_indices().rev().nth(300).map_or(0, |(i, _)| i);
        panic!(
            "the password appears in {what}: ...{}",
            &s[from..(at + CANARY.len()).min(s.len())]
        );
    }
}

/// The log shows librdkafka's configuration dump, with the password redacted by librdkafka, and
/// a value given through a non-secret channel verbatim: a leak would have been seen.
fn assert_dump_seen(what: &str, log: &str) {
    for needle in ["sasl.password = [redacted]", VISIBLE] {
        assert!(
            log.contains(needle),
            "{what}: {needle:?} not in the log, so the search proves nothing:\n{}",
            tail(log)
        );
    }
}

fn tail(s: &str) -> &str {
    let from = s.char_indices().rev().nth(4000).map_or(0, |(i, _)| i);
    &s[from..]
}

// ---- check-config and a failed start ----

#[test]
fn check_config_masks_the_password() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    for from in [Source::Env, Source::File] {
        let env = sasl_env(dir.path(), from, "sasl_ssl", "SCRAM-SHA-512", "text");
        let out = command(&["check-config", "--client-properties"], &env)
            .output()
            .unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert_no_canary("check-config output", &all);
        // Where it would have been: the config comment and both clients' properties.
        assert!(
            all.contains("kafka.security.sasl_password = \"***\""),
            "{all}"
        );
        assert_eq!(all.matches("#   sasl.password = ***").count(), 2, "{all}");
        assert!(all.contains("ssl.endpoint.identification.algorithm = https"));
        assert!(all.contains("enable.ssl.certificate.verification = true"));
    }
}

#[test]
fn a_failed_start_does_not_print_the_password() {
    let _one_at_a_time = crate::support::one_at_a_time();
    // SCRAM towards a loopback port nothing listens on: librdkafka initialises SCRAM, dumps
    // its configuration, retries connecting, and the service gives up (after its 10 s metadata
    // timeout) with an error. Both sources of the password and both log formats, at once.
    let dir = tempfile::tempdir().unwrap();
    // Port 1: nothing listens there, and unlike a port just freed by `free_port`, no other
    // test's broker can take it meanwhile (that made this test flaky: a broker answered).
    let dead = "127.0.0.1:1".to_string();
    let runs: Vec<(String, Child, PathBuf, PathBuf)> = [
        (Source::Env, "text"),
        (Source::File, "json"),
        (Source::Env, "json"),
        (Source::File, "text"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (from, format))| {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir(&sub).unwrap();
        let mut env = sasl_env(&sub, from, "sasl_plaintext", "SCRAM-SHA-512", format);
        env.push(("STOCKWATCH__KAFKA__BOOTSTRAP_SERVERS".into(), dead.clone()));
        env.push((
            "STOCKWATCH__HTTP__LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        ));
        let (out, err) = (sub.join("stdout"), sub.join("stderr"));
        let child = command(&["run"], &env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        (format!("{from:?}/{format}"), child, out, err)
    })
    .collect();
    let mut dumps_seen = 0;
    for (name, mut child, out, err) in runs {
        let status = wait_or_kill(&mut child, Duration::from_secs(60));
        let log = format!(
            "{}{}",
            std::fs::read_to_string(out).unwrap(),
            std::fs::read_to_string(err).unwrap()
        );
        assert_eq!(
            status,
            Some(false),
            "{name}: expected a failed start:\n{}",
            tail(&log)
        );
        assert_no_canary(&format!("{name} output"), &log);
        // librdkafka's configuration dump (the only place the mechanism is named, too)
        // reaches the log through its log queue; a process that fails fast on a loaded machine
        // sometimes exits before it is served (seen in CI under the full suite before 4956d40: a
        // run with neither the dump nor "SCRAM-SHA-512"). The running-service tests require it
        // in every run; here at least one of the four runs must show it.
        if ["sasl.password = [redacted]", VISIBLE, "SCRAM-SHA-512"]
            .iter()
            .all(|n| log.contains(n))
        {
            dumps_seen += 1;
        }
        assert!(
            log.contains("error: starting the service"),
            "{name}: {}",
            tail(&log)
        );
    }
    assert!(
        dumps_seen > 0,
        "no failed start logged librdkafka's configuration dump, so the search proves nothing"
    );
}

/// Waits up to `deadline`; `Some(success)`, or `None` after killing it.
fn wait_or_kill(child: &mut Child, deadline: Duration) -> Option<bool> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s.success());
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- a running service behind SASL ----

/// What one SASL/PLAIN authentication carried.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Auth {
    client_id: String,
    user: String,
    password: String,
}

/// A Kafka proxy that terminates SASL/PLAIN: it forwards ApiVersions to the broker, answers
/// SaslHandshake and SaslAuthenticate itself (recording what the client sent), then pipes the
/// connection to the broker. A client that does not authenticate is piped as it is.
struct SaslProxy {
    addr: SocketAddr,
    auths: Arc<Mutex<Vec<Auth>>>,
}

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;

impl SaslProxy {
    /// Listens on a free loopback port; `upstream` is set later (the broker must be told the
    /// proxy's address first, to advertise it).
    fn bind() -> (SaslProxy, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = SaslProxy {
            addr,
            auths: Arc::default(),
        };
        (proxy, listener)
    }

    fn serve(&self, listener: TcpListener, upstream: SocketAddr) {
        let auths = Arc::clone(&self.auths);
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let auths = Arc::clone(&auths);
                std::thread::spawn(move || {
                    let _ = proxy_connection(client, upstream, &auths);
                });
            }
        });
    }

    fn auths(&self) -> Vec<Auth> {
        self.auths.lock().unwrap().clone()
    }
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    s.write_all(&frame)
}

fn proxy_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    auths: &Mutex<Vec<Auth>>,
) -> std::io::Result<()> {
    let mut broker = TcpStream::connect(upstream)?;
    loop {
        let req = read_frame(&mut client)?;
        // Request header v1: api_key, api_version, correlation_id, client_id (int16 + bytes).
        let api_key = i16::from_be_bytes([req[0], req[1]]);
        let version = i16::from_be_bytes([req[2], req[3]]);
        let correlation = &req[4..8];
        let id_len = i16::from_be_bytes([req[8], req[9]]).max(0) as usize;
        let client_id = String::from_utf8_lossy(&req[10..10 + id_len]).into_owned();
        let body = &req[10 + id_len..];
        match api_key {
            API_VERSIONS => {
                write_frame(&mut broker, &req)?;
                let resp = read_frame(&mut broker)?;
                write_frame(&mut client, &resp)?;
            }
            SASL_HANDSHAKE => {
                let mut resp = correlation.to_vec();
                resp.extend_from_slice(&0i16.to_be_bytes()); // error_code
                resp.extend_from_slice(&1i32.to_be_bytes()); // mechanisms: [PLAIN]
                resp.extend_from_slice(&5i16.to_be_bytes());
                resp.extend_from_slice(b"PLAIN");
                write_frame(&mut client, &resp)?;
            }
            SASL_AUTHENTICATE => {
                // v0/v1: auth_bytes (int32 + bytes) = authzid NUL user NUL password.
                let n = i32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
                let parts: Vec<String> = body[4..4 + n]
                    .split(|&b| b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                auths.lock().unwrap().push(Auth {
                    client_id,
                    user: parts.get(1).cloned().unwrap_or_default(),
                    password: parts.get(2).cloned().unwrap_or_default(),
                });
                let mut resp = correlation.to_vec();
                resp.extend_from_slice(&0i16.to_be_bytes()); // error_code
                resp.extend_from_slice(&(-1i16).to_be_bytes()); // error_message: null
                resp.extend_from_slice(&0i32.to_be_bytes()); // auth_bytes: empty
                if version >= 1 {
                    resp.extend_from_slice(&0i64.to_be_bytes()); // session_lifetime_ms
                }
                write_frame(&mut client, &resp)?;
                return pipe(client, broker);
            }
            _ => {
                write_frame(&mut broker, &req)?;
                return pipe(client, broker);
            }
        }
    }
}

fn pipe(mut client: TcpStream, mut broker: TcpStream) -> std::io::Result<()> {
    let (mut c2, mut b2) = (client.try_clone()?, broker.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut b2, &mut c2);
        let _ = c2.shutdown(Shutdown::Both);
    });
    let _ = std::io::copy(&mut client, &mut broker);
    let _ = broker.shutdown(Shutdown::Both);
    Ok(())
}

/// tansu listening on its own port and advertising the proxy's.
struct Tansu {
    child: Child,
    addr: SocketAddr,
}

impl Tansu {
    /// `authentication`: tansu's `--authentication` (SASL/SCRAM against the users it stores).
    fn start(advertised: SocketAddr, log: &Path, authentication: bool) -> Tansu {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(broker::tansu());
        cmd.args(["broker", "--listener-url", &format!("tcp://{addr}")])
            .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
            .args(["--storage-engine", "memory://tansu/", "--silent"]);
        if authentication {
            cmd.arg("--authentication");
        }
        let child = cmd
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start tansu");
        let t = Tansu { child, addr };
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tansu not accepting on {addr}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET`-style raw request; (status, body) or `None` if the connection closed without one.
fn http(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(request).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// The service's bootstrap server, group and topics (the simulator's, `prefix`) as
/// `STOCKWATCH__KAFKA__…` variables.
fn push_topics_env(env: &mut Vec<(String, String)>, bootstrap: &str, prefix: &str) {
    let t = topics(prefix);
    for (k, v) in [
        ("BOOTSTRAP_SERVERS", bootstrap),
        ("GROUP_ID", "sec"),
        ("SESSION_TIMEOUT_MS", "6000"),
        ("POLL_MAX_MS", "50"),
        ("TOPICS__SALES", &t[0]),
        ("TOPICS__SHIPMENTS", &t[1]),
        ("TOPICS__RECEIPTS", &t[2]),
        ("TOPICS__AVAILABILITY", &t[3]),
        // Contract v2's types share the receipts topic here (the SASL broker's topics are
        // the simulator's): the per-topic allowed types take both.
        ("TOPICS__INVENTORY_COUNTS", &t[2]),
        ("TOPICS__ADJUSTMENTS", &t[2]),
        ("TOPICS__ALERTS", &t[4]),
        ("TOPICS__DEAD_LETTER", &t[5]),
        ("TOPICS__EARLY_ALERTS", &format!("{prefix}alerts-early")),
        ("TOPICS__OPEN_ALERTS", &format!("{prefix}alerts-open")),
    ] {
        env.push((format!("STOCKWATCH__KAFKA__{k}"), v.to_owned()));
    }
}

/// Runs the service authenticated through the proxy until it is ready and has handled some
/// events, then checks its logs and HTTP bodies for the canary, and the HTTP hardening.
fn running_service(from: Source, format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, listener) = SaslProxy::bind();
    let tansu = Tansu::start(proxy.addr, &dir.path().join("tansu.log"), false);
    proxy.serve(listener, tansu.addr);
    let bootstrap = proxy.addr.to_string();

    // Input topics and events, without authentication (the proxy pipes such clients).
    let prefix = "sec.";
    stockwatch(&[
        "simulate",
        "--quiet",
        "--bootstrap-servers",
        &bootstrap,
        "--topic-prefix",
        prefix,
        "--partitions",
        "2",
        "--events",
        "2000",
        "--bad-ratio",
        "0.05",
    ]);

    let http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut env = sasl_env(dir.path(), from, "sasl_plaintext", "PLAIN", format);
    push_topics_env(&mut env, &bootstrap, prefix);
    env.push(("STOCKWATCH__HTTP__LISTEN".into(), http_addr.to_string()));
    env.push(("STOCKWATCH__HTTP__REQUEST_TIMEOUT_MS".into(), "500".into()));
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = command(&["run"], &env)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let log = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&out_path).unwrap_or_default(),
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )
    };

    // Ready, with both partitions, and every event handled (dead letters produced).
    let started = Instant::now();
    loop {
        let metrics = get(http_addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let ready = get(http_addr, "/readyz").is_some_and(|(s, _)| s == 200);
        let handled = metrics
            .lines()
            .filter(|l| l.starts_with("stockwatch_dead_letters_total{"))
            .any(|l| !l.ends_with(" 0"));
        if ready && handled {
            break;
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "stockwatch exited:\n{}",
            tail(&log())
        );
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not ready and busy after 90 s:\n{}",
            tail(&log())
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // What it serves.
    let mut served = String::new();
    for path in ["/metrics", "/readyz", "/healthz", "/v1/risks/top?n=5"] {
        let (status, body) = get(http_addr, path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        assert_no_canary(path, &body);
        served.push_str(&body);
    }
    let (_, metrics) = get(http_addr, "/metrics").unwrap();
    assert_metric_labels_are_bounded(&metrics);

    // HTTP hardening, as configured.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let req = format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let r = http(http_addr, req.as_bytes());
        assert_eq!(r.map(|r| r.0), Some(405), "{method}");
    }
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = http(http_addr, big.as_bytes());
    assert!(
        r.as_ref().is_none_or(|r| r.0 == 431),
        "a 64 KiB header section was served: {r:?}"
    );
    // Half a request head, then nothing: closed by the server (http.request_timeout_ms = 500
    // bounds the head; 10 s is a bound for a loaded machine, not a timing claim).
    let mut slow = TcpStream::connect(http_addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: lo")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let closed = slow.read_to_end(&mut buf);
    let cut = match &closed {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        cut && t0.elapsed() < Duration::from_secs(10),
        "a stalled client was not cut off: {closed:?} after {:?}",
        t0.elapsed()
    );

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_or_kill(&mut child, Duration::from_secs(30));
    let log = log();
    assert_eq!(status, Some(true), "clean exit:\n{}", tail(&log));

    // The password reached the broker from the consumer and from the producer...
    let auths = proxy.auths();
    let ids: BTreeSet<&str> = auths.iter().map(|a| a.client_id.as_str()).collect();
    assert!(
        ids.contains(VISIBLE) && ids.contains("stockwatch"),
        "consumer ({VISIBLE}) and producer (stockwatch) should both authenticate: {ids:?}"
    );
    for a in &auths {
        assert_eq!(
            (a.user.as_str(), a.password == CANARY),
            ("svc", true),
            "{} sent another password",
            a.client_id
        );
    }
    // ...and nowhere else.
    assert_no_canary("the service's stdout/stderr", &log);
    assert_dump_seen("running service", &log);
    let trace = if format == "json" {
        "\"level\":\"TRACE\""
    } else {
        "TRACE"
    };
    assert!(log.contains(trace), "no trace-level line:\n{}", tail(&log));
    assert!(log.contains("SASL"), "no librdkafka SASL debug line");
}

#[test]
fn running_service_password_from_env_text_logs() {
    let _one_at_a_time = crate::support::one_at_a_time();
    running_service(Source::Env, "text");
}

#[test]
fn running_service_password_from_file_json_logs() {
    let _one_at_a_time = crate::support::one_at_a_time();
    running_service(Source::File, "json");
}

// ---- metrics and the HTTP defaults ----

/// Label names that would carry a key, a SKU or a location (unbounded, and business data).
const DENIED_LABELS: [&str; 6] = ["sku", "location", "key", "store", "product", "item"];

#[test]
fn no_metric_has_a_sku_or_location_label() {
    let _one_at_a_time = crate::support::one_at_a_time();
    for (name, _, labels) in stockwatch::telemetry::CATALOGUE {
        for l in *labels {
            let l = l.to_ascii_lowercase();
            assert!(
                !DENIED_LABELS.iter().any(|d| l.contains(d)),
                "{name} has label {l:?}"
            );
        }
    }
}

/// Every label name of an exposition is allowed, and no value is a simulator id.
fn assert_metric_labels_are_bounded(metrics: &str) {
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split('}').next().unwrap_or("");
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            assert!(
                !DENIED_LABELS.iter().any(|d| name.contains(d)),
                "label {name:?} in {line}"
            );
            assert!(
                !["STORE-", "DC-", "SKU-"].iter().any(|p| value.contains(p)),
                "a key as a label value: {line}"
            );
        }
    }
}

#[test]
fn http_binds_loopback_by_default() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let d = stockwatch::config::Config::defaults();
    assert!(d.http.listen.ip().is_loopback(), "{}", d.http.listen);
    assert!(!d.http.allow_non_loopback);
    let env = [(
        "STOCKWATCH__HTTP__LISTEN".to_owned(),
        "0.0.0.0:9464".to_owned(),
    )];
    let out = command(&["check-config"], &env).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.listen") && err.contains("http.allow_non_loopback"),
        "{err}"
    );
}

#[test]
fn debug_output_of_config_and_clients_hides_the_password() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, CANARY).unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[kafka.security]\nprotocol = \"sasl_plaintext\"\nsasl_username = \"svc\"\n\
             sasl_password_file = {:?}\n",
            pw.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = stockwatch::config::Config::load_with_env(Some(&file), Vec::new()).unwrap();
    let cc = cfg.kafka.consumer_config(&cfg.service);
    let pc = cfg.kafka.producer_config();
    assert_eq!(
        pc.get("sasl.password"),
        Some(CANARY),
        "the password is used"
    );
    for shown in [
        format!("{cfg:?}"),
        format!("{cfg:#?}"),
        format!("{:?}", cfg.kafka.security),
        format!("{cc:?} {pc:?}"),
        format!("{:?}", stockwatch::config::redacted(&pc)),
        cfg.to_toml().unwrap(),
    ] {
        assert_no_canary("a Debug or TOML rendering", &shown);
    }
    // What a panic with the configuration in its message would print.
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        panic!("bad state: {cfg:?}")
    }))
    .unwrap_err();
    let msg = payload.downcast_ref::<String>().unwrap();
    assert!(msg.contains("sasl_password: Some(***)"), "{msg}");
    assert_no_canary("a panic message", msg);
}

// ---- TLS for real: a TLS terminator (Debian's stunnel4) in front of the test broker ----
//
// tansu 0.6 has `--cert`/`--key` flags but its listener speaks plain TCP whatever they say (a
// TLS ClientHello is read as a Kafka frame), so stunnel terminates TLS in front of it, with a
// test CA and a server certificate for 127.0.0.1 made here with the `openssl` CLI. The broker
// advertises stunnel's address, so every connection of every client goes through TLS.

/// A test CA, a server certificate for `127.0.0.1` signed by it, and a second CA that signed
/// nothing.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, cn) in [("ca", "stockwatch test CA"), ("other-ca", "another CA")] {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-x509", "-days", "1", "-subj", &subj];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem]);
        openssl(dir, &args);
    }
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.cnf",
            "-out",
            "server.pem",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// stunnel accepting TLS on a free loopback port and forwarding the plaintext to `upstream`.
struct Stunnel {
    child: Child,
}

impl Stunnel {
    fn bind() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], free_port()))
    }

    fn start(addr: SocketAddr, upstream: SocketAddr, pki: &Pki, dir: &Path) -> Stunnel {
        let bin = ["/usr/bin/stunnel4", "/usr/bin/stunnel"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("stunnel not found: install Debian's stunnel4 (`apt-get install stunnel4`; .ci/run does)");
        let conf = dir.join(format!("stunnel-{}.conf", addr.port()));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[kafka]\naccept = {addr}\nconnect = {upstream}\ncert = {}\nkey = {}\n",
                pki.cert.display(),
                pki.key.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("stunnel-{}.log", addr.port()))).unwrap();
        let child = Command::new(bin)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start stunnel");
        let s = Stunnel { child };
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "stunnel not accepting on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator's events into the topics of `prefix` over TLS (CA `ca`).
fn simulate_over_tls(bootstrap: &str, prefix: &str, ca: &Path) {
    let ca_prop = format!("ssl.ca.location={}", ca.display());
    stockwatch(&[
        "simulate",
        "--quiet",
        "--bootstrap-servers",
        bootstrap,
        "--topic-prefix",
        prefix,
        "--partitions",
        "2",
        // As failover.rs's streams: enough days for stockouts, so alerts.
        "--events",
        "20000",
        "--stores",
        "8",
        "--skus",
        "40",
        "--days",
        "40",
        "--bad-ratio",
        "0.01",
        "-X",
        "security.protocol=SSL",
        "-X",
        &ca_prop,
    ]);
}

#[test]
fn over_tls_with_the_right_ca_the_service_runs_end_to_end_with_sasl_plain() {
    let _one_at_a_time = crate::support::one_at_a_time();
    // service ──TLS──> stunnel ──> SASL/PLAIN proxy ──> tansu (advertising stunnel)
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let tls_addr = Stunnel::bind();
    let (proxy, listener) = SaslProxy::bind();
    let tansu = Tansu::start(tls_addr, &dir.path().join("tansu.log"), false);
    proxy.serve(listener, tansu.addr);
    let _tls = Stunnel::start(tls_addr, proxy.addr, &pki, dir.path());
    let bootstrap = tls_addr.to_string();
    let prefix = "tls.";
    simulate_over_tls(&bootstrap, prefix, &pki.ca);

    let http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut env = sasl_env(dir.path(), Source::File, "sasl_ssl", "PLAIN", "text");
    env.retain(|(k, _)| !k.ends_with("__DEBUG") && k != "STOCKWATCH__LOG__LEVEL");
    push_topics_env(&mut env, &bootstrap, prefix);
    env.push((
        "STOCKWATCH__KAFKA__SECURITY__SSL_CA_LOCATION".into(),
        pki.ca.to_str().unwrap().into(),
    ));
    env.push(("STOCKWATCH__HTTP__LISTEN".into(), http_addr.to_string()));
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = command(&["run"], &env)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let log = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&out_path).unwrap_or_default(),
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )
    };

    // Alerts published (the service's count), then read back from the topic over TLS.
    loop {
        let published: f64 = get(http_addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("stockwatch_alerts_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if published >= 20.0 {
            break;
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "stockwatch exited:\n{}",
            tail(&log())
        );
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "fewer than 20 alerts published over TLS after 90 s ({published}):\n{}",
            tail(&log())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let published_after = started.elapsed();
    let alerts_topic = topics(prefix)[4].clone();
    let reader: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "tls-reader")
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", pki.ca.to_str().unwrap())
        .set("enable.auto.commit", "false")
        .create()
        .expect("TLS reader");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&alerts_topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    rdkafka::consumer::Consumer::assign(&reader, &tpl).unwrap();
    let mut alerts = 0usize;
    while alerts < 20 {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let v: serde_json::Value =
                serde_json::from_slice(rdkafka::Message::payload(&m).unwrap_or_default())
                    .expect("alert JSON");
            assert!(v["alert_id"].is_string(), "not an alert: {v}");
            alerts += 1;
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "stockwatch exited:\n{}",
            tail(&log())
        );
        assert!(
            started.elapsed() < published_after + Duration::from_secs(60),
            "20 alerts published, {alerts} read back over TLS 60 s later:\n{}",
            tail(&log())
        );
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_or_kill(&mut child, Duration::from_secs(30));
    let log = log();
    assert_eq!(status, Some(true), "clean exit:\n{}", tail(&log));
    // SASL/PLAIN inside TLS: both clients sent the password through the tunnel.
    let ids: BTreeSet<String> = proxy.auths().into_iter().map(|a| a.client_id).collect();
    assert!(
        ids.contains(VISIBLE) && ids.contains("stockwatch"),
        "consumer ({VISIBLE}) and producer (stockwatch) should both authenticate: {ids:?}"
    );
    assert!(proxy.auths().iter().all(|a| a.password == CANARY));
    assert_no_canary("the service's output", &log);
    eprintln!(
        "TLS + SASL/PLAIN: 20 alerts published {:.1} s after the start, read back over TLS after {:.1} s; {} SASL authentications",
        published_after.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        proxy.auths().len()
    );
}

#[test]
fn over_tls_a_wrong_ca_and_an_unknown_scram_user_are_refused_with_a_clear_error() {
    let _one_at_a_time = crate::support::one_at_a_time();
    // Two brokers behind TLS: a plain one, and one with tansu's SCRAM authentication (no user
    // stored: tansu creates users only through an unauthenticated connection to a broker
    // without --authentication, and its memory store is per process).
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (tls_plain, tls_scram) = (Stunnel::bind(), Stunnel::bind());
    let plain = Tansu::start(tls_plain, &dir.path().join("tansu-plain.log"), false);
    let scram = Tansu::start(tls_scram, &dir.path().join("tansu-scram.log"), true);
    let _t1 = Stunnel::start(tls_plain, plain.addr, &pki, dir.path());
    let _t2 = Stunnel::start(tls_scram, scram.addr, &pki, dir.path());

    let runs = [
        (
            "wrong CA",
            tls_plain,
            "ssl",
            "",
            &pki.other_ca,
            "certificate verify failed",
        ),
        (
            "unknown SCRAM user",
            tls_scram,
            "sasl_ssl",
            "SCRAM-SHA-512",
            &pki.ca,
            "SASL SCRAM authentication failed",
        ),
    ];
    let started = Instant::now();
    let children: Vec<(&str, &str, Child, PathBuf)> = runs
        .iter()
        .enumerate()
        .map(|(i, (name, addr, protocol, mechanism, ca, needle))| {
            let mut env = if mechanism.is_empty() {
                Vec::new()
            } else {
                let sub = dir.path().join(format!("run{i}"));
                std::fs::create_dir(&sub).unwrap();
                sasl_env(&sub, Source::Env, protocol, mechanism, "text")
                    .into_iter()
                    .filter(|(k, _)| !k.ends_with("__DEBUG") && k != "STOCKWATCH__LOG__LEVEL")
                    .collect()
            };
            env.push((
                "STOCKWATCH__KAFKA__SECURITY__PROTOCOL".into(),
                (*protocol).into(),
            ));
            push_topics_env(&mut env, &addr.to_string(), "tls.");
            env.push((
                "STOCKWATCH__KAFKA__SECURITY__SSL_CA_LOCATION".into(),
                ca.to_str().unwrap().into(),
            ));
            env.push((
                "STOCKWATCH__HTTP__LISTEN".into(),
                format!("127.0.0.1:{}", free_port()),
            ));
            let out = dir.path().join(format!("run{i}.log"));
            let f = std::fs::File::create(&out).unwrap();
            let child = command(&["run"], &env)
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .unwrap();
            (*name, *needle, child, out)
        })
        .collect();
    for (name, needle, mut child, out) in children {
        let status = wait_or_kill(&mut child, Duration::from_secs(60));
        let took = started.elapsed();
        let log = std::fs::read_to_string(out).unwrap();
        assert_eq!(
            status,
            Some(false),
            "{name}: expected a failed start within 60 s:\n{}",
            tail(&log)
        );
        // The service's own error line names the cause (librdkafka's text), not only a
        // transport failure.
        let error_line = log
            .lines()
            .find(|l| l.starts_with("error: starting the service"))
            .unwrap_or_else(|| panic!("{name}: no error line:\n{}", tail(&log)));
        assert!(
            error_line.contains(needle),
            "{name}: the error should say {needle:?}:\n{}",
            tail(&log)
        );
        assert_no_canary(name, &log);
        eprintln!(
            "{name}: refused, the process ended {:.1} s after the start: {error_line}",
            took.as_secs_f64()
        );
    }
}
