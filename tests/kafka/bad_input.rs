//! The bad-input catalogue through the real service (tansu): every kind of bad record is
//! dead-lettered exactly once with its reason and its original bytes, the state of the key it
//! targets is unchanged, nothing panics, and the committed offsets move past it.
//!
//! Decisions recorded here:
//! - a `receipt` naming a shipment that was never seen is **accepted** as a plain receipt
//!   (on hand rises; the shard counts it as unmatched). Stock that arrived is real even when
//!   its shipment notice was lost, and dropping it would make on hand drift low.
//! - a record with no key, or with a key that is not the body's `"{location}|{sku}"`, is
//!   `miskeyed`: the partition it landed on may not own that key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use service::{topics, Instance};

use crate::support::{broker, consume, service};

const PARTITIONS: u32 = 2;
const KEY: &[u8] = b"S1|K1";

/// Topic index in [`topics`]: sales, shipments, receipts, availability.
const SALES: usize = 0;
const SHIPMENTS: usize = 1;
const RECEIPTS: usize = 2;
const AVAILABILITY: usize = 3;

/// One catalogue entry: what is sent where, and the reason it must be dead-lettered with.
struct Bad {
    name: &'static str,
    topic: usize,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    reason: &'static str,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn sale(id: &str, qty: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"sale","sku":"K1","location":"S1","qty":{qty},"event_time":"{at}"}}"#
    )
}

/// At least 25 kinds (the issue's list and a few more), all aimed at key `S1|K1`.
fn catalogue(t0: i64) -> Vec<Bad> {
    let at = rfc3339(t0 + 30_000);
    let s = |id: &str| sale(id, "1", &at);
    let bad = |name, topic, value: String, reason| Bad {
        name,
        topic,
        key: Some(KEY.to_vec()),
        value: value.into_bytes(),
        reason,
    };
    let mut invalid_utf8 = s("b-utf8").into_bytes();
    let i = invalid_utf8
        .windows(4)
        .position(|w| w == b"\"K1\"")
        .expect("sku")
        + 1;
    invalid_utf8[i] = 0xff;
    let long = "x".repeat(129);
    let mut v = vec![
        Bad {
            name: "invalid UTF-8",
            topic: SALES,
            key: Some(KEY.to_vec()),
            value: invalid_utf8,
            reason: "invalid_json",
        },
        bad(
            "BOM",
            SALES,
            format!("\u{feff}{}", s("b-bom")),
            "invalid_json",
        ),
        bad(
            "truncated JSON",
            SALES,
            s("b-trunc")[..40].to_owned(),
            "invalid_json",
        ),
        bad("not JSON", SALES, "hello".to_owned(), "invalid_json"),
        bad(
            "trailing garbage",
            SALES,
            format!("{} x", s("b-trail")),
            "invalid_json",
        ),
        bad(
            "deep nesting",
            SALES,
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
            "schema_violation",
        ),
        bad(
            "JSON array",
            SALES,
            "[1,2,3]".to_owned(),
            "schema_violation",
        ),
        bad(
            "duplicate JSON key",
            SALES,
            s("b-dupkey").replace("\"qty\":1", "\"qty\":1,\"qty\":5"),
            "schema_violation",
        ),
        bad(
            "qty as string",
            SALES,
            s("b-qtystr").replace("\"qty\":1", "\"qty\":\"1\""),
            "schema_violation",
        ),
        bad(
            "qty null",
            SALES,
            s("b-qtynull").replace("\"qty\":1", "\"qty\":null"),
            "schema_violation",
        ),
        bad(
            "sku null",
            SALES,
            s("b-skunull").replace("\"sku\":\"K1\"", "\"sku\":null"),
            "schema_violation",
        ),
        bad(
            "missing qty",
            SALES,
            s("b-noqty").replace("\"qty\":1,", ""),
            "schema_violation",
        ),
        bad(
            "unknown event type",
            SALES,
            s("b-refund").replace("\"type\":\"sale\"", "\"type\":\"refund\""),
            "unknown_type",
        ),
        bad("zero qty", SALES, sale("b-zero", "0", &at), "invalid_value"),
        bad(
            "negative qty",
            SALES,
            sale("b-neg", "-3", &at),
            "invalid_value",
        ),
        bad("NaN qty", SALES, sale("b-nan", "NaN", &at), "invalid_json"),
        bad(
            "1e400 qty",
            SALES,
            sale("b-huge", "1e400", &at),
            "invalid_value",
        ),
        bad(
            "overflowing integer qty",
            SALES,
            sale("b-overflow", &"9".repeat(400), &at),
            "invalid_value",
        ),
        bad(
            "over-long id",
            SALES,
            sale(&long, "1", &at),
            "invalid_value",
        ),
        bad(
            "control character in id",
            SALES,
            sale("b-ctl\\u0007", "1", &at),
            "invalid_value",
        ),
        bad(
            "far-future timestamp",
            SALES,
            sale("b-future", "1", &rfc3339(t0 + 400 * 86_400_000)),
            "future_event",
        ),
        bad(
            "ancient timestamp",
            SALES,
            sale("b-ancient", "1", "1970-01-01T00:00:00Z"),
            "ancient_event",
        ),
        bad(
            "unparseable timestamp",
            SALES,
            sale("b-when", "1", "yesterday"),
            "invalid_value",
        ),
        bad(
            "eta before event time",
            SHIPMENTS,
            format!(
                r#"{{"event_id":"b-eta","type":"shipment","shipment_id":"SH9","sku":"K1","location":"S1","qty":5,"event_time":"{at}","eta":"{}"}}"#,
                rfc3339(t0 - 86_400_000)
            ),
            "invalid_value",
        ),
        bad(
            "availability without in_stock",
            AVAILABILITY,
            format!(
                r#"{{"event_id":"b-avail","type":"availability","sku":"K1","location":"S1","event_time":"{at}"}}"#
            ),
            "schema_violation",
        ),
        bad(
            "oversized payload",
            SALES,
            s("b-big").replace(
                "\"qty\":1",
                &format!("\"qty\":1,\"pad\":\"{}\"", "x".repeat(70_000)),
            ),
            "too_large",
        ),
        bad("empty payload", SALES, String::new(), "invalid_json"),
        Bad {
            name: "missing key",
            topic: SALES,
            key: None,
            value: s("b-nokey").into_bytes(),
            reason: "miskeyed",
        },
        Bad {
            name: "mis-keyed record",
            topic: SALES,
            key: Some(b"S1|OTHER".to_vec()),
            value: s("b-miskey").into_bytes(),
            reason: "miskeyed",
        },
        bad(
            "sale sent to the receipts topic",
            RECEIPTS,
            s("b-wrongtopic"),
            "schema_violation",
        ),
    ];
    // 10 MB: far over `engine.max_payload_bytes`; dead-lettered with its bytes all the same.
    v.push(bad(
        "10 MB message",
        SALES,
        s("b-10mb").replace(
            "\"qty\":1",
            &format!("\"qty\":1,\"pad\":\"{}\"", "x".repeat(10 << 20)),
        ),
        "too_large",
    ));
    // The same message twice, under the same key: the second is a duplicate.
    v.push(bad(
        "duplicate event id",
        SALES,
        sale("g-sale-1", "1", &rfc3339(t0 + 60_000)),
        "duplicate",
    ));
    v
}

fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("message.max.bytes", "16000000")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, topic: &str, key: Option<&[u8]>, value: &[u8]) {
    let mut r = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
    if let Some(k) = key {
        r = r.key(k);
    }
    if p.send(r).is_err() {
        panic!("enqueue to {topic}");
    }
}

#[test]
fn every_bad_input_kind_is_dead_lettered_once_and_changes_nothing() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "bad.";
    let t = topics(prefix);
    stockwatch::sink::kafka::EventProducer::new(stockwatch::sink::kafka::ProducerSettings::new(
        bootstrap.as_str(),
    ))
    .expect("producer")
    .ensure_topics(
        &t.iter().map(String::as_str).collect::<Vec<_>>(),
        PARTITIONS,
        1,
        Duration::from_secs(20),
    )
    .expect("topics");

    // Good events on S1|K1: on hand 100 − 1 = 99; the same sale again later (a duplicate);
    // a receipt for a shipment never seen (+5, accepted); then a later event elsewhere moves
    // the watermark past everything (lateness 0 below).
    let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let p = producer(&bootstrap);
    let receipt = format!(
        r#"{{"event_id":"g-rcpt-1","type":"receipt","sku":"K1","location":"S1","qty":100,"event_time":"{}"}}"#,
        rfc3339(t0)
    );
    send(&p, &t[RECEIPTS], Some(KEY), receipt.as_bytes());
    let good_sale = sale("g-sale-1", "1", &rfc3339(t0 + 60_000));
    send(&p, &t[SALES], Some(KEY), good_sale.as_bytes());
    let unknown_shipment = format!(
        r#"{{"event_id":"g-rcpt-2","type":"receipt","shipment_id":"NEVER-SEEN","sku":"K1","location":"S1","qty":5,"event_time":"{}"}}"#,
        rfc3339(t0 + 90_000)
    );
    send(&p, &t[RECEIPTS], Some(KEY), unknown_shipment.as_bytes());
    let bad = catalogue(t0);
    assert!(bad.len() >= 25, "the catalogue has {} kinds", bad.len());
    for b in &bad {
        send(&p, &t[b.topic], b.key.as_deref(), &b.value);
    }
    // Every input of every partition gets a later event, so the watermark passes t0 + 2 min.
    for (i, topic) in t[..4].iter().enumerate() {
        for k in 0..8 {
            let (loc, sku) = (format!("C{k}"), format!("Z{i}"));
            let at = rfc3339(t0 + 600_000 + i as i64);
            let v = match i {
                SHIPMENTS => format!(
                    r#"{{"event_id":"clk-{i}-{k}","type":"shipment","shipment_id":"CS{k}","sku":"{sku}","location":"{loc}","qty":1,"event_time":"{at}","eta":"{at}"}}"#
                ),
                AVAILABILITY => format!(
                    r#"{{"event_id":"clk-{i}-{k}","type":"availability","sku":"{sku}","location":"{loc}","in_stock":true,"event_time":"{at}"}}"#
                ),
                RECEIPTS => format!(
                    r#"{{"event_id":"clk-{i}-{k}","type":"receipt","sku":"{sku}","location":"{loc}","qty":1,"event_time":"{at}"}}"#
                ),
                _ => sale(&format!("clk-{i}-{k}"), "1", &at)
                    .replace("\"K1\"", &format!("\"{sku}\""))
                    .replace("\"S1\"", &format!("\"{loc}\"")),
            };
            send(
                &p,
                topic,
                Some(format!("{loc}|{sku}").as_bytes()),
                v.as_bytes(),
            );
        }
    }
    assert_eq!(p.flush(Duration::from_secs(20)), Ok(()), "produce");

    let mut svc = Instance::start(
        "A",
        &bootstrap,
        prefix,
        "bad-input",
        dir.path(),
        &[
            ("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "0"),
            ("STOCKWATCH__KAFKA__INPUT_IDLE_MS", "200"),
        ],
    );

    // Dead letters: exactly one per catalogue entry, with its reason and the original bytes.
    let dead = consume::consume(&bootstrap, &t[5..6], PARTITIONS as i32, bad.len());
    let mut by_value: BTreeMap<Vec<u8>, Vec<&consume::Consumed>> = BTreeMap::new();
    for d in &dead {
        by_value.entry(d.value.clone()).or_default().push(d);
    }
    // A record over `kafka.dead_letter_max_value_bytes` is republished truncated, with its
    // size and checksum: match it by those.
    let limit = 524_288;
    for d in &dead {
        if d.header("stockwatch.truncated") == Some(b"true".as_slice()) {
            let b = bad
                .iter()
                .find(|b| b.value.len() > limit && b.value.starts_with(&d.value))
                .expect("a truncated dead letter is a prefix of a catalogue record");
            assert_eq!(d.value.len(), limit);
            assert_eq!(
                d.header("stockwatch.original_bytes"),
                Some(b.value.len().to_string().as_bytes())
            );
            let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&b.value));
            assert_eq!(
                d.header("stockwatch.original_xxh3_128"),
                Some(digest.as_bytes())
            );
            by_value.entry(b.value.clone()).or_default().push(d);
        }
    }
    let mut problems = Vec::new();
    for b in &bad {
        let got = by_value
            .get(&b.value)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let reasons: Vec<String> = got
            .iter()
            .map(|d| {
                String::from_utf8_lossy(d.header("stockwatch.reason").unwrap_or_default())
                    .into_owned()
            })
            .collect();
        if got.len() != 1 || reasons.iter().any(|r| r != b.reason) {
            problems.push(format!(
                "{}: want 1 × {}, got {reasons:?}",
                b.name, b.reason
            ));
        }
        for d in got {
            assert_eq!(
                d.key.as_slice(),
                b.key.as_deref().unwrap_or_default(),
                "{}: key",
                b.name
            );
            assert!(
                d.header("__connect.errors.offset").is_some(),
                "{}: offset header",
                b.name
            );
        }
    }
    if !problems.is_empty() {
        let log = svc.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        panic!(
            "catalogue mismatches:\n{}\nservice log (last lines, newest first):\n{}",
            problems.join("\n"),
            tail.join("\n")
        );
    }
    let sources: BTreeSet<_> = dead
        .iter()
        .map(|d| {
            (
                d.header("__connect.errors.topic").map(<[u8]>::to_vec),
                d.header("__connect.errors.partition").map(<[u8]>::to_vec),
                d.header("__connect.errors.offset").map(<[u8]>::to_vec),
            )
        })
        .collect();
    assert_eq!(
        sources.len(),
        dead.len(),
        "a source record dead-lettered twice"
    );
    assert_eq!(dead.len(), bad.len(), "dead letters beyond the catalogue");

    // State unchanged by the bad records: 100 − 1 + 5 (the unmatched receipt is accepted).
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let body = svc
            .get("/v1/state/S1/K1")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["on_hand"].as_f64() == Some(104.0) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        state["on_hand"].as_f64(),
        Some(104.0),
        "state of S1|K1: {state}"
    );
    assert_eq!(svc.get("/healthz").map(|(s, _)| s), Some(200), "alive");

    // SIGTERM commits; the committed offsets are past every bad record.
    let (status, _) = svc
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{}", svc.log());
    assert!(!svc.log().contains("panicked"), "{}", svc.log());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "bad-input")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for topic in &t[..4] {
        for part in 0..PARTITIONS as i32 {
            tpl.add_partition(topic, part);
        }
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    for d in &dead {
        let topic = String::from_utf8_lossy(d.header("__connect.errors.topic").unwrap_or_default())
            .into_owned();
        let part: i32 =
            String::from_utf8_lossy(d.header("__connect.errors.partition").unwrap_or_default())
                .parse()
                .expect("partition");
        let off: i64 =
            String::from_utf8_lossy(d.header("__connect.errors.offset").unwrap_or_default())
                .parse()
                .expect("offset");
        let at = committed
            .find_partition(&topic, part)
            .map(|e| e.offset())
            .unwrap_or(Offset::Invalid);
        assert!(
            matches!(at, Offset::Offset(o) if o > off),
            "{topic}[{part}] committed {at:?}, bad record at {off}"
        );
    }
    eprintln!(
        "bad-input catalogue: {} kinds, each dead-lettered once; on hand {}",
        bad.len(),
        state["on_hand"]
    );
}
