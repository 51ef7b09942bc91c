//! Telemetry seen from outside: the metric catalogue against the registry, and the HTTP server
//! on a real loopback socket with a plain HTTP/1.1 client.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use stockwatch::alert::{AlertKind, AlertStatus};
use stockwatch::config::Secret;
use stockwatch::reject::RejectReason;
use stockwatch::telemetry::{
    serve, serve_with, AppState, Delivery, Health, HttpLimits, MetricKind, Metrics,
    OpenAlertFilter, StateQuery, TxOutcome, CATALOGUE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Label names that would carry an unbounded, per-entity value.
const FORBIDDEN_LABEL_PARTS: &[&str] = &[
    "sku", "location", "store", "key", "event", "alert_id", "id", "product", "item", "user",
];

/// Calls every method once, so every family has at least one series.
fn touched_metrics() -> Metrics {
    let m = Metrics::new("test-model").expect("metrics register");
    m.consumed([1; 7]);
    m.applied([1; 6]);
    m.rejected(RejectReason::Late, 1);
    m.rejected_by_reason(&[1; RejectReason::ALL.len()]);
    m.dead_lettered(RejectReason::InvalidJson, 1);
    m.batch(100, Duration::from_millis(3));
    m.end_to_end_latencies([0.02]);
    m.set_assignment(&[0, 1]);
    m.consumer_lag(0, 5);
    m.alert(AlertKind::StockoutRisk, AlertStatus::Raised, 1);
    m.alerts(&[[1, 1, 1], [1, 1, 1]]);
    m.open_alerts(AlertKind::Stockout, 2);
    m.tracked_keys(10);
    m.state_bytes((1, 2, 3));
    m.pending_events(4);
    m.restored(Duration::from_secs(1), 10);
    m.changelog_written([3, 1, 1, 1], [900, 4000, 0, 700]);
    m.transaction(TxOutcome::Commit);
    m.transaction(TxOutcome::Abort);
    m.commit_failed();
    m.producer_renewed();
    for model in stockwatch::model::ModelRole::ALL {
        m.model_brier(model, 0.1);
        m.model_auc(model, Some(0.8));
    }
    m.label_backlog(7);
    m.model_updates(3);
    m.phantom_inventory(2, 5.5);
    m
}

fn sorted(labels: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn catalogue_matches_registry_and_naming_rules() {
    let m = touched_metrics();

    let names: BTreeSet<&str> = CATALOGUE.iter().map(|e| e.0).collect();
    assert_eq!(names.len(), CATALOGUE.len(), "duplicate catalogue entry");

    let registered: BTreeMap<String, (MetricKind, Vec<String>)> = m
        .families()
        .into_iter()
        .map(|(name, kind, mut labels)| {
            labels.sort();
            (name, (kind, labels))
        })
        .collect();
    let catalogued: BTreeMap<String, (MetricKind, Vec<String>)> = CATALOGUE
        .iter()
        .map(|(name, kind, labels)| (name.to_string(), (*kind, sorted(labels))))
        .collect();
    assert_eq!(registered, catalogued, "registry and CATALOGUE differ");

    for (name, kind, labels) in CATALOGUE {
        assert!(name.starts_with("stockwatch_"), "{name}: prefix");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}: snake_case"
        );
        match kind {
            MetricKind::Counter => assert!(name.ends_with("_total"), "{name}: counter suffix"),
            MetricKind::Gauge => assert!(!name.ends_with("_total"), "{name}: gauge as counter"),
            MetricKind::Histogram => assert!(
                ["_seconds", "_bytes", "_messages"]
                    .iter()
                    .any(|u| name.ends_with(u)),
                "{name}: histogram unit"
            ),
        }
        for label in *labels {
            let l = label.to_ascii_lowercase();
            for bad in FORBIDDEN_LABEL_PARTS {
                // Split on '_' so that e.g. `kind` is not mistaken for `id`.
                assert!(
                    !l.split('_').any(|part| part == *bad),
                    "{name}: label `{label}` could carry a per-entity value"
                );
            }
        }
    }

    // The exposition's TYPE lines say the same.
    let text = m.encode().expect("encode");
    let typed: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let expected: BTreeMap<&str, &str> = CATALOGUE
        .iter()
        .map(|(name, kind, _)| (*name, kind.as_str()))
        .collect();
    assert_eq!(typed, expected);
}

#[test]
fn bounded_labels_take_only_their_documented_values() {
    let m = touched_metrics();
    let text = m.encode().expect("encode");
    let values = |metric: &str, label: &str| -> BTreeSet<String> {
        let prefix = format!("{metric}{{");
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let start = rest.find(&format!("{label}=\""))? + label.len() + 2;
                let end = rest[start..].find('"')? + start;
                Some(rest[start..end].to_string())
            })
            .collect()
    };
    let reasons: BTreeSet<String> = RejectReason::ALL
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    assert_eq!(
        values("stockwatch_events_rejected_total", "reason"),
        reasons
    );
    assert_eq!(values("stockwatch_dead_letters_total", "reason"), reasons);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        values("stockwatch_events_consumed_total", "type"),
        set(&[
            "sale",
            "shipment",
            "receipt",
            "availability",
            "inventory_count",
            "adjustment",
            "unknown"
        ])
    );
    assert_eq!(
        values("stockwatch_alerts_total", "status"),
        set(&["raised", "updated", "resolved"])
    );
    assert_eq!(
        values("stockwatch_open_alerts", "kind"),
        set(&["stockout_risk", "stockout"])
    );
    assert_eq!(
        values("stockwatch_state_bytes", "part"),
        set(&["per_key", "key_strings", "shard_level"])
    );
    assert_eq!(
        values("stockwatch_transactions_total", "outcome"),
        set(&["committed", "aborted"])
    );
    for metric in [
        "stockwatch_changelog_records_total",
        "stockwatch_changelog_bytes_total",
    ] {
        assert_eq!(
            values(metric, "record"),
            set(&["key", "journal", "tombstone", "shard"])
        );
    }
    assert_eq!(
        values("stockwatch_consumer_errors_total", "kind"),
        set(&[
            "bad_message",
            "bad_compression",
            "offset_out_of_range",
            "fatal",
            "broker",
            "other"
        ])
    );
    assert_eq!(
        values("stockwatch_service_latency_seconds_bucket", "stage"),
        set(&["early", "confirmed"])
    );
    assert_eq!(
        values("stockwatch_service_latency_seconds_bucket", "step"),
        set(&["handed", "acknowledged"])
    );
    assert_eq!(
        values("stockwatch_consumer_lag_messages", "partition"),
        set(&["0", "1"])
    );
}

// ---- HTTP ----

/// A fixed set of keys standing in for the service's shards.
struct FakeShards {
    keys: Vec<(String, String, f64)>,
    /// How long each query blocks (to exercise the request timeout).
    delay: Duration,
}

impl StateQuery for FakeShards {
    fn key(&self, location: &str, sku: &str) -> Option<Value> {
        std::thread::sleep(self.delay);
        self.keys
            .iter()
            .find(|(l, s, _)| l == location && s == sku)
            .map(|(l, s, r)| json!({ "location": l, "sku": s, "risk": r }))
    }

    fn top(&self, n: usize) -> Vec<Value> {
        std::thread::sleep(self.delay);
        let mut keys = self.keys.clone();
        keys.sort_by(|a, b| b.2.total_cmp(&a.2));
        keys.iter()
            .take(n)
            .map(|(l, s, r)| json!({ "location": l, "sku": s, "risk": r }))
            .collect()
    }

    /// Keys with risk >= 0.9 hold an open `stockout_risk` alert.
    fn open_alerts(&self, f: &OpenAlertFilter) -> Vec<Value> {
        let mut open: Vec<&(String, String, f64)> = self
            .keys
            .iter()
            .filter(|(l, _, r)| *r >= 0.9 && f.location.as_deref().is_none_or(|w| w == l))
            .filter(|_| f.kind.is_none_or(|k| k == AlertKind::StockoutRisk))
            .collect();
        open.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        open.iter()
            .take(f.limit)
            .map(|(l, s, r)| json!({ "location": l, "sku": s, "kind": "stockout_risk", "alert_risk": r }))
            .collect()
    }
}

fn app(delay: Duration) -> (AppState, Arc<Metrics>, Arc<Health>) {
    let metrics = Arc::new(Metrics::new("test-model").expect("metrics register"));
    let health = Arc::new(Health::new(Delivery::AtLeastOnce));
    let keys = (0..1500)
        .map(|i| {
            (
                format!("store-{}", i % 7),
                format!("sku-{i}"),
                f64::from(i) / 1500.0,
            )
        })
        .collect();
    let query = Arc::new(FakeShards { keys, delay });
    (
        AppState::new(Arc::clone(&metrics), Arc::clone(&health), query),
        metrics,
        health,
    )
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A parsed HTTP/1.1 response.
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// One request on its own connection (`Connection: close`), read to EOF.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    request_with(addr, method, path, "").await
}

/// [`request`] with extra header lines (each ending in `\r\n`).
async fn request_with(addr: SocketAddr, method: &str, path: &str, headers: &str) -> Reply {
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .expect("response within 10 s")
        .expect("HTTP exchange");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Every body we serve has a known length: no chunked decoding needed.
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    assert_eq!(body.len(), len, "body length");
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[tokio::test]
async fn endpoints_serve_metrics_health_readiness_and_state() {
    let (state, metrics, health) = app(Duration::ZERO);
    let shutdown = CancellationToken::new();
    let server = serve(loopback(), state, shutdown.clone())
        .await
        .expect("bind");
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    // /metrics: the text format, with a value set before the scrape.
    metrics.rejected(RejectReason::Late, 3);
    metrics.alert(AlertKind::StockoutRisk, AlertStatus::Raised, 2);
    let r = request(addr, "GET", "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    assert!(r
        .body
        .contains("stockwatch_events_rejected_total{reason=\"late\"} 3\n"));
    assert!(r
        .body
        .contains("stockwatch_alerts_total{kind=\"stockout_risk\",status=\"raised\"} 2\n"));

    // /healthz: alive.
    let r = request(addr, "GET", "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));

    // /readyz: 503 until assigned and restored, then 200, then 503 while draining.
    let r = request(addr, "GET", "/readyz").await;
    assert_eq!(r.status, 503);
    assert!(r.header("content-type").starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["assigned_partitions"], 0);
    assert_eq!(body["delivery"], "at_least_once");

    health.set_assignment(&[0, 1, 2]);
    health.restoring(1);
    let r = request(addr, "GET", "/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["restoring"], json!([1]));

    health.restored(1);
    let r = request(addr, "GET", "/readyz").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["ready"], true);
    assert_eq!(body["assigned_partitions"], 3);
    assert_eq!(body["restoring"], json!([]));

    // /v1/state: found, not found, invalid.
    let r = request(addr, "GET", "/v1/state/store-3/sku-10").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(r.json()["sku"], "sku-10");
    let r = request(addr, "GET", "/v1/state/store-3/sku-11").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    let r = request(addr, "GET", "/v1/state/store-3/a%7Cb").await;
    assert_eq!(r.status, 400);
    let long = "x".repeat(200);
    let r = request(addr, "GET", &format!("/v1/state/{long}/sku-1")).await;
    assert_eq!(r.status, 400);

    // /v1/risks/top: default 50, explicit n, clamped to 1000, bad n.
    let r = request(addr, "GET", "/v1/risks/top").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["n"], 50);
    assert_eq!(body["risks"][0]["sku"], "sku-1499");
    let r = request(addr, "GET", "/v1/risks/top?n=3").await;
    assert_eq!(r.json()["risks"].as_array().map(Vec::len), Some(3));
    let r = request(addr, "GET", "/v1/risks/top?n=100000").await;
    assert_eq!(r.json()["n"], 1000);
    let r = request(addr, "GET", "/v1/risks/top?n=-1").await;
    assert_eq!(r.status, 400);

    // GET only; unknown paths are 404 JSON.
    for path in ["/metrics", "/readyz", "/v1/risks/top"] {
        let r = request(addr, "POST", path).await;
        assert_eq!(r.status, 405, "POST {path}");
    }
    let r = request(addr, "DELETE", "/v1/state/store-3/sku-10").await;
    assert_eq!(r.status, 405);
    let r = request(addr, "GET", "/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");

    health.set_draining();
    let r = request(addr, "GET", "/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["draining"], true);

    // Shutdown: the server drains and stops listening.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("drained within 5 s")
        .expect("server task");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn slow_queries_time_out_and_slow_clients_are_disconnected() {
    let (state, _metrics, _health) = app(Duration::from_millis(900));
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let shutdown = CancellationToken::new();
    let server = serve_with(loopback(), state, limits, shutdown.clone())
        .await
        .expect("bind");
    let addr = server.local_addr();

    // A query slower than the request timeout gets 503.
    let started = std::time::Instant::now();
    let r = request(addr, "GET", "/v1/risks/top").await;
    assert_eq!(r.status, 503);
    assert!(started.elapsed() < Duration::from_millis(800));

    // A client that never finishes its request head is disconnected.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: loc")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection not closed by the header timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "closed after {waited:?}"
    );

    // Shutdown with an idle keep-alive connection open still completes.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("drained within 5 s")
        .expect("server task");
}

/// With a token, `/v1/*` answers 401 without it or with a wrong one and 200 with it; the
/// metrics and the probes stay open.
#[tokio::test]
async fn v1_requires_the_bearer_token_when_one_is_set() {
    let (state, _m, _h) = app(Duration::ZERO);
    let state = state.with_token(Some(Secret::new("t0ken-from-a-secret")));
    let shutdown = CancellationToken::new();
    let server = serve(loopback(), state, shutdown.clone())
        .await
        .expect("bind");
    let addr = server.local_addr();
    let paths = [
        "/v1/state/store-1/sku-1",
        "/v1/risks/top?n=3",
        "/v1/alerts/open?kind=stockout_risk",
    ];
    for path in paths {
        let r = request(addr, "GET", path).await;
        assert_eq!(r.status, 401, "{path} without a token: {}", r.body);
        assert_eq!(r.header("www-authenticate"), "Bearer", "{path}");
        assert_eq!(r.json()["error"], "unauthorized");
        for wrong in [
            "Authorization: Bearer t0ken-from-a-secreT\r\n",
            "Authorization: Bearer t0ken-from-a-secret-and-more\r\n",
            "Authorization: Bearer \r\n",
            "Authorization: Basic dDBrZW4tZnJvbS1hLXNlY3JldA==\r\n",
            "Authorization: t0ken-from-a-secret\r\n",
        ] {
            let r = request_with(addr, "GET", path, wrong).await;
            assert_eq!(r.status, 401, "{path} with {wrong:?}");
        }
        let ok = "Authorization: Bearer t0ken-from-a-secret\r\n";
        let r = request_with(addr, "GET", path, ok).await;
        assert_eq!(r.status, 200, "{path} with the token: {}", r.body);
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = request(addr, "GET", path).await;
        assert_ne!(r.status, 401, "{path} needs no token");
    }
    shutdown.cancel();
    server.wait().await.expect("server task");
}

/// `/v1/alerts/open` passes its filters to the shards, caps the list and says so, and refuses
/// a kind it does not know.
#[tokio::test]
async fn open_alerts_are_filtered_and_capped() {
    let (state, _m, _h) = app(Duration::ZERO);
    let shutdown = CancellationToken::new();
    let server = serve(loopback(), state, shutdown.clone())
        .await
        .expect("bind");
    let addr = server.local_addr();
    // Risk i / 1500 >= 0.9: keys 1350..1500, 150 of them, over 7 stores.
    let all = request(addr, "GET", "/v1/alerts/open").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let all = all.json();
    assert_eq!(all["n"], 150);
    assert_eq!(all["truncated"], false);
    let store = request(
        addr,
        "GET",
        "/v1/alerts/open?location=store-3&kind=stockout_risk",
    )
    .await;
    let store = store.json();
    let alerts = store["alerts"].as_array().expect("alerts");
    assert!(!alerts.is_empty() && alerts.len() < 150, "{store}");
    assert!(alerts.iter().all(|a| a["location"] == "store-3"), "{store}");
    let none = request(addr, "GET", "/v1/alerts/open?kind=stockout")
        .await
        .json();
    assert_eq!(none["n"], 0, "{none}");
    let capped = request(addr, "GET", "/v1/alerts/open?limit=10")
        .await
        .json();
    assert_eq!(capped["n"], 10);
    assert_eq!(capped["truncated"], true);
    let bad = request(addr, "GET", "/v1/alerts/open?kind=flood").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid_kind");
    shutdown.cancel();
    server.wait().await.expect("server task");
}

#[tokio::test]
async fn bind_failure_is_a_typed_error() {
    let (state, _m, _h) = app(Duration::ZERO);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = serve(addr, state, CancellationToken::new())
        .await
        .expect_err("address in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
