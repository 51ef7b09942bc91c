//! `stockwatch simulate --bootstrap-servers` against a real Kafka-protocol broker (tansu, see
//! tests/support/broker.rs): the records in the topics are exactly the ones `simulate --out`
//! writes for the same flags, keyed `location|sku`, partitioned like Kafka's Java clients, in
//! the same order within a partition, and not duplicated.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stockwatch::partition::partition_for_key;
use stockwatch::sink::kafka::{EventProducer, ProducerSettings};

use crate::support::broker::Broker;
use crate::support::consume::consume;

const TOPICS: [&str; 4] = ["sales", "shipments", "receipts", "availability"];

fn stockwatch(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args(args)
        .output()
        .expect("cannot run stockwatch");
    eprintln!("$ stockwatch {}", args.join(" "));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn file_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("read --out file");
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(lines.pop(), Some(Vec::new()), "file ends with a newline");
    lines
}

/// `location|sku` of a body that is valid JSON with both as strings.
fn key_of_body(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let loc = v.get("location")?.as_str()?;
    let sku = v.get("sku")?.as_str()?;
    Some(format!("{loc}|{sku}"))
}

/// The topic (without prefix) a body's `type` belongs to, if it has a known one.
fn topic_of_body(value: &[u8]) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    match v.get("type")?.as_str()? {
        "sale" => Some("sales"),
        "shipment" => Some("shipments"),
        "receipt" => Some("receipts"),
        "availability" => Some("availability"),
        _ => None,
    }
}

#[test]
fn simulate_produces_the_file_stream_keyed_and_partitioned_like_kafka() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let flags = ["--events", "20000", "--bad-ratio", "0.01", "--seed", "7"];

    let out = stockwatch(
        &[
            &["simulate", "--quiet", "--out", file.to_str().unwrap()][..],
            &flags,
        ]
        .concat(),
    );
    assert!(out.status.success());
    let lines = file_lines(&file);
    assert_eq!(lines.len(), 20_000);

    let bootstrap = broker.bootstrap();
    let started = Instant::now();
    let out = stockwatch(
        &[
            &[
                "simulate",
                "--bootstrap-servers",
                &bootstrap,
                "--partitions",
                "4",
                "--topic-prefix",
                "it.",
            ][..],
            &flags,
        ]
        .concat(),
    );
    assert!(out.status.success(), "simulate to Kafka failed");
    eprintln!("produced in {:.2} s", started.elapsed().as_secs_f64());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("created topic it.sales (4 partitions)"),
        "{stderr}"
    );
    assert!(stderr.contains("20000 acknowledged"), "{stderr}");

    let topics: Vec<String> = TOPICS.iter().map(|t| format!("it.{t}")).collect();
    let got = consume(&bootstrap, &topics, 4, lines.len());
    assert_eq!(
        got.len(),
        lines.len(),
        "records in the topics vs in the file"
    );

    // The same records, byte for byte.
    let mut want_values = lines.clone();
    let mut got_values: Vec<Vec<u8>> = got.iter().map(|c| c.value.clone()).collect();
    want_values.sort_unstable();
    got_values.sort_unstable();
    assert!(
        want_values == got_values,
        "the topics hold other records than the file"
    );

    // Keys, partitions and topics follow the contract.
    let mut checked_keys = 0;
    for c in &got {
        let key = std::str::from_utf8(&c.key).expect("UTF-8 key");
        let (loc, sku) = key.split_once('|').expect("key is location|sku");
        assert!(!loc.is_empty() && !sku.is_empty(), "key {key}");
        assert_eq!(
            c.partition as u32,
            partition_for_key(&c.key, 4),
            "key {key} in {}[{}]",
            c.topic,
            c.partition
        );
        if let Some(body_key) = key_of_body(&c.value) {
            assert_eq!(key, body_key, "message key vs body in {}", c.topic);
            checked_keys += 1;
        }
        if let Some(t) = topic_of_body(&c.value) {
            assert_eq!(c.topic, format!("it.{t}"), "type vs topic of {key}");
        }
    }
    assert!(
        checked_keys > 19_700,
        "only {checked_keys} bodies had a key to check"
    );

    // Within a partition, records keep the file's order (the idempotent producer neither
    // reorders nor duplicates on retries). Equal values (re-sent duplicates) are matched to
    // file positions in order; empty values (one bad kind) cannot be placed and are skipped.
    let mut positions: HashMap<&[u8], std::collections::VecDeque<usize>> = HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        positions.entry(l.as_slice()).or_default().push_back(i);
    }
    let mut last: HashMap<(&str, i32), usize> = HashMap::new();
    for c in got.iter().filter(|c| !c.value.is_empty()) {
        let pos = positions
            .get_mut(c.value.as_slice())
            .and_then(|q| q.pop_front())
            .expect("value in file");
        let prev = last.insert((c.topic.as_str(), c.partition), pos);
        assert!(
            prev.is_none_or(|p| p < pos),
            "{}[{}]: file line {} after line {}",
            c.topic,
            c.partition,
            pos + 1,
            prev.unwrap_or(0) + 1
        );
    }
    assert_eq!(last.len(), 16, "every partition of every topic has records");
    broker.stop();
}

#[test]
fn existing_topics_must_have_the_partition_count() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let base = [
        "simulate",
        "--bootstrap-servers",
        &bootstrap,
        "--topic-prefix",
        "pc.",
        "--events",
        "100",
    ];
    let out = stockwatch(&[&base[..], &["--partitions", "2"]].concat());
    assert!(out.status.success());
    // Again with the same count: the topics are reused.
    let out = stockwatch(&[&base[..], &["--partitions", "2"]].concat());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("using topic pc.sales"));
    // Another count: refused, naming the topic and both counts.
    let out = stockwatch(&[&base[..], &["--partitions", "3", "--quiet"]].concat());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has 2 partitions, expected 3") && stderr.contains("pc."),
        "{stderr}"
    );
}

#[test]
fn rate_limit_paces_production() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let started = Instant::now();
    let out = stockwatch(&[
        "simulate",
        "--bootstrap-servers",
        &bootstrap,
        "--events",
        "3000",
        "--rate",
        "3000",
        "--partitions",
        "1",
    ]);
    let elapsed = started.elapsed();
    assert!(out.status.success());
    // 3000 records at 3000/s: about a second (the first tenth of a second may burst).
    assert!(
        elapsed >= Duration::from_millis(850) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
}

#[test]
fn unreachable_cluster_fails_naming_the_flag() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let out = stockwatch(&[
        "simulate",
        "--quiet",
        "--bootstrap-servers",
        &bootstrap,
        "--events",
        "10",
        "--timeout-secs",
        "2",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--bootstrap-servers") && stderr.contains("brokers are down"),
        "{stderr}"
    );
}

/// The library producer (which the service reuses for alerts and dead letters): headers
/// arrive as sent, and the delivery counts add up.
#[test]
fn event_producer_sends_headers_and_counts_deliveries() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let mut p = EventProducer::new(ProducerSettings::new(broker.bootstrap())).unwrap();
    let status = p
        .ensure_topics(&["dlq"], 3, 1, Duration::from_secs(10))
        .unwrap();
    assert!(status[0].created);
    for i in 0..100u32 {
        let key = format!("STORE-{i:04}|SKU-1");
        p.send_with_headers(
            "dlq",
            key.as_bytes(),
            b"{oops",
            &[
                ("reason", b"invalid_json"),
                ("offset", i.to_string().as_bytes()),
            ],
        )
        .unwrap();
    }
    let stats = p.flush(Duration::from_secs(10)).unwrap();
    assert_eq!((stats.sent, stats.delivered, stats.failed), (100, 100, 0));
    let got = consume(&broker.bootstrap(), &["dlq".to_owned()], 3, 100);
    assert_eq!(got.len(), 100);
    for c in &got {
        assert_eq!(c.partition as u32, partition_for_key(&c.key, 3));
        assert_eq!(
            c.headers[0],
            ("reason".to_owned(), b"invalid_json".to_vec())
        );
        assert_eq!(c.headers[1].0, "offset");
    }
}
