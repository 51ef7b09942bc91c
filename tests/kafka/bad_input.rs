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
//! - contract v2: a revision or cancellation of a shipment that was received or cancelled
//!   before is `shipment_closed`; it is sent once the service has applied the cancellation
//!   (a revision racing a closure that still waits for the watermark is refused when applied,
//!   which changes nothing either, but is counted rather than dead-lettered).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use service::{ensure_v2_topics, topics, v2_topics, Instance};

use crate::support::{broker, consume, service};

const PARTITIONS: u32 = 2;
const KEY: &[u8] = b"S1|K1";
/// `kafka.dead_letter_max_header_bytes` (the default).
const HEADER_LIMIT: usize = 131_072;

/// Topic index in [`topics`]: sales, shipments, receipts, availability; then (above the
/// output topics' indices) the [`v2_topics`]: inventory counts, adjustments.
const SALES: usize = 0;
const SHIPMENTS: usize = 1;
const RECEIPTS: usize = 2;
const AVAILABILITY: usize = 3;
const COUNTS: usize = 6;
const ADJUSTMENTS: usize = 7;

/// Every topic of the test: [`topics`] then [`v2_topics`].
fn all_topics(prefix: &str) -> Vec<String> {
    topics(prefix)
        .into_iter()
        .chain(v2_topics(prefix))
        .collect()
}

/// One catalogue entry: what is sent where, and the reason it must be dead-lettered with.
struct Bad {
    name: &'static str,
    topic: usize,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    reason: &'static str,
    /// Headers, names and values as bytes (a name need not be UTF-8).
    headers: Vec<(Vec<u8>, Vec<u8>)>,
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
        headers: Vec::new(),
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
            headers: Vec::new(),
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
            headers: Vec::new(),
        },
        Bad {
            name: "mis-keyed record",
            topic: SALES,
            key: Some(b"S1|OTHER".to_vec()),
            value: s("b-miskey").into_bytes(),
            reason: "miskeyed",
            headers: Vec::new(),
        },
        bad(
            "sale sent to the receipts topic",
            RECEIPTS,
            s("b-wrongtopic"),
            "schema_violation",
        ),
        // Contract v2.
        bad(
            "negative inventory count",
            COUNTS,
            format!(
                r#"{{"event_id":"b-count-neg","type":"inventory_count","sku":"K1","location":"S1","qty":-4,"event_time":"{at}","source":"cycle_count"}}"#
            ),
            "invalid_value",
        ),
        bad(
            "unknown count source",
            COUNTS,
            format!(
                r#"{{"event_id":"b-count-src","type":"inventory_count","sku":"K1","location":"S1","qty":4,"event_time":"{at}","source":"guess"}}"#
            ),
            "unknown_value",
        ),
        bad(
            "inventory count sent to the sales topic",
            SALES,
            format!(
                r#"{{"event_id":"b-count-topic","type":"inventory_count","sku":"K1","location":"S1","qty":4,"event_time":"{at}","source":"snapshot"}}"#
            ),
            "schema_violation",
        ),
        bad(
            "zero adjustment",
            ADJUSTMENTS,
            format!(
                r#"{{"event_id":"b-adj-zero","type":"adjustment","sku":"K1","location":"S1","qty":0,"event_time":"{at}","reason":"shrink"}}"#
            ),
            "invalid_value",
        ),
        bad(
            "non-finite adjustment",
            ADJUSTMENTS,
            format!(
                r#"{{"event_id":"b-adj-inf","type":"adjustment","sku":"K1","location":"S1","qty":-1e400,"event_time":"{at}","reason":"damage"}}"#
            ),
            "invalid_value",
        ),
        bad(
            "unknown adjustment reason",
            ADJUSTMENTS,
            format!(
                r#"{{"event_id":"b-adj-why","type":"adjustment","sku":"K1","location":"S1","qty":-2,"event_time":"{at}","reason":"theft"}}"#
            ),
            "unknown_value",
        ),
        bad(
            "unknown shipment status",
            SHIPMENTS,
            format!(
                r#"{{"event_id":"b-ship-status","type":"shipment","shipment_id":"SH-C","sku":"K1","location":"S1","qty":5,"event_time":"{at}","eta":"{at}","status":"lost"}}"#
            ),
            "unknown_value",
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
    // Headers: a name that is not UTF-8 (rdkafka's `Headers::get` panics on it) next to a
    // plain one; both reach the dead letter byte for byte.
    v.push(Bad {
        headers: vec![
            (b"\xff\xfetrace".to_vec(), b"t1".to_vec()),
            (b"traceparent".to_vec(), b"00-ab".to_vec()),
        ],
        ..bad(
            "header name not UTF-8",
            SALES,
            "not JSON, odd header".to_owned(),
            "invalid_json",
        )
    });
    // Headers alone over what the dead-letter topic takes (2 MB, over the producer's
    // message.max.bytes): the dead letter goes without them and says so.
    v.push(Bad {
        headers: vec![(b"pad".to_vec(), vec![b'h'; 2 << 20])],
        ..bad(
            "2 MB of headers",
            SALES,
            "not JSON, huge headers".to_owned(),
            "invalid_json",
        )
    });
    v
}

/// The state of `S1|K1` as the service reports it (null if it does not answer).
fn state_of(svc: &Instance) -> serde_json::Value {
    let body = svc
        .get("/v1/state/S1/K1")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(&body).unwrap_or_default()
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

/// Sends a record whose headers are given as bytes, through librdkafka's
/// `rd_kafka_produceva`: rdkafka's `OwnedHeaders` takes only UTF-8 names, and the point is
/// to send one that is not.
#[allow(unsafe_code)]
fn send_raw_headers(
    p: &BaseProducer,
    topic: &str,
    key: &[u8],
    value: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
) {
    use rd::rd_kafka_vtype_t::*;
    use rdkafka::bindings as rd;
    let ok = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    let topic = std::ffi::CString::new(topic).expect("topic");
    // SAFETY: creates an empty header list owned here until produceva takes it.
    let hdrs = unsafe { rd::rd_kafka_headers_new(headers.len()) };
    assert!(!hdrs.is_null());
    for (name, v) in headers {
        // SAFETY: `hdrs` is valid; name and value are valid for their lengths during the call,
        // and librdkafka copies both.
        let err = unsafe {
            rd::rd_kafka_header_add(
                hdrs,
                name.as_ptr().cast(),
                name.len() as isize,
                v.as_ptr().cast(),
                v.len() as isize,
            )
        };
        assert_eq!(err, ok, "header");
    }
    let mem = |b: &[u8]| rd::rd_kafka_vu_s__bindgen_ty_1 {
        mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
            ptr: b.as_ptr() as *mut std::ffi::c_void,
            size: b.len(),
        },
    };
    let vus = [
        rd::rd_kafka_vu_t {
            vtype: RD_KAFKA_VTYPE_TOPIC,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 {
                cstr: topic.as_ptr(),
            },
        },
        rd::rd_kafka_vu_t {
            vtype: RD_KAFKA_VTYPE_KEY,
            u: mem(key),
        },
        rd::rd_kafka_vu_t {
            vtype: RD_KAFKA_VTYPE_VALUE,
            u: mem(value),
        },
        rd::rd_kafka_vu_t {
            vtype: RD_KAFKA_VTYPE_MSGFLAGS,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 {
                i: rd::RD_KAFKA_MSG_F_COPY,
            },
        },
        rd::rd_kafka_vu_t {
            vtype: RD_KAFKA_VTYPE_HEADERS,
            u: rd::rd_kafka_vu_s__bindgen_ty_1 { headers: hdrs },
        },
    ];
    // SAFETY: the producer's handle is valid while `p` lives; every pointer in `vus` is valid
    // for the call, key and value are copied (RD_KAFKA_MSG_F_COPY), and the header list
    // passes to librdkafka on success (destroyed here on failure).
    let error = unsafe { rd::rd_kafka_produceva(p.client().native_ptr(), vus.as_ptr(), vus.len()) };
    if !error.is_null() {
        // SAFETY: `error` and `hdrs` are ours after a failed call; each is freed once.
        unsafe {
            rd::rd_kafka_error_destroy(error);
            rd::rd_kafka_headers_destroy(hdrs);
        }
        panic!("enqueue to {topic:?} with raw headers");
    }
}

#[test]
fn every_bad_input_kind_is_dead_lettered_once_and_changes_nothing() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "bad.";
    let t = all_topics(prefix);
    stockwatch::sink::kafka::EventProducer::new(stockwatch::sink::kafka::ProducerSettings::new(
        bootstrap.as_str(),
    ))
    .expect("producer")
    .ensure_topics(
        &t[..6].iter().map(String::as_str).collect::<Vec<_>>(),
        PARTITIONS,
        1,
        Duration::from_secs(20),
    )
    .expect("topics");
    ensure_v2_topics(&bootstrap, prefix);

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
    // Contract v2: a shipment announced and cancelled (closed without stock).
    for (id, status, at) in [
        ("g-ship-c1", "open", 10_000),
        ("g-ship-c2", "cancelled", 20_000),
    ] {
        let v = format!(
            r#"{{"event_id":"{id}","type":"shipment","shipment_id":"SH-C","sku":"K1","location":"S1","qty":10,"event_time":"{}","eta":"{}","status":"{status}"}}"#,
            rfc3339(t0 + at),
            rfc3339(t0 + 86_400_000)
        );
        send(&p, &t[SHIPMENTS], Some(KEY), v.as_bytes());
    }
    let bad = catalogue(t0);
    assert!(bad.len() >= 25, "the catalogue has {} kinds", bad.len());
    for b in &bad {
        if b.headers.is_empty() {
            send(&p, &t[b.topic], b.key.as_deref(), &b.value);
        } else {
            let key = b.key.as_deref().unwrap_or_default();
            send_raw_headers(&p, &t[b.topic], key, &b.value, &b.headers);
        }
    }
    // Every input of every partition gets a later event, so the watermark passes t0 + 2 min.
    let inputs: Vec<(usize, &String)> = t
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 4 || *i >= 6)
        .collect();
    for &(i, topic) in &inputs {
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
                COUNTS => format!(
                    r#"{{"event_id":"clk-{i}-{k}","type":"inventory_count","sku":"{sku}","location":"{loc}","qty":3,"event_time":"{at}","source":"snapshot"}}"#
                ),
                ADJUSTMENTS => format!(
                    r#"{{"event_id":"clk-{i}-{k}","type":"adjustment","sku":"{sku}","location":"{loc}","qty":-1,"event_time":"{at}","reason":"transfer_out"}}"#
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
            // The record's own headers: byte for byte and first when they fit
            // (`kafka.dead_letter_max_header_bytes`), else dropped with their count and size.
            let bytes: usize = b.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
            if bytes <= HEADER_LIMIT {
                let original: Vec<(Vec<u8>, Option<Vec<u8>>)> = b
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), Some(v.clone())))
                    .collect();
                assert_eq!(
                    d.raw_headers[..original.len()],
                    original[..],
                    "{}: headers",
                    b.name
                );
            } else {
                assert_eq!(
                    d.header("stockwatch.headers_dropped"),
                    Some(b.headers.len().to_string().as_bytes()),
                    "{}",
                    b.name
                );
                assert_eq!(
                    d.header("stockwatch.original_headers_bytes"),
                    Some(bytes.to_string().as_bytes()),
                    "{}",
                    b.name
                );
                assert!(d.header("pad").is_none(), "{}: headers dropped", b.name);
            }
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

    // Contract v2: the cancellation of SH-C is applied (nothing in transit); a revision of
    // it now is dead-lettered once as `shipment_closed` and changes nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while state_of(&svc)["in_transit"].as_f64() != Some(0.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(state_of(&svc)["in_transit"].as_f64(), Some(0.0));
    let revision = format!(
        r#"{{"event_id":"b-ship-closed","type":"shipment","shipment_id":"SH-C","sku":"K1","location":"S1","qty":12,"event_time":"{}","eta":"{}"}}"#,
        rfc3339(t0 + 700_000),
        rfc3339(t0 + 2 * 86_400_000)
    );
    send(&p, &t[SHIPMENTS], Some(KEY), revision.as_bytes());
    assert_eq!(p.flush(Duration::from_secs(20)), Ok(()), "produce");
    let dead = consume::consume(&bootstrap, &t[5..6], PARTITIONS as i32, bad.len() + 1);
    assert_eq!(
        dead.len(),
        bad.len() + 1,
        "dead letters beyond the catalogue"
    );
    let closed: Vec<&consume::Consumed> = dead
        .iter()
        .filter(|d| d.value == revision.as_bytes())
        .collect();
    assert_eq!(closed.len(), 1, "the revision of a closed shipment, once");
    assert_eq!(
        closed[0].header("stockwatch.reason"),
        Some(b"shipment_closed".as_slice())
    );
    let after = state_of(&svc);
    assert_eq!(
        (after["on_hand"].as_f64(), after["in_transit"].as_f64()),
        (Some(104.0), Some(0.0)),
        "{after}"
    );

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
    for (_, topic) in &inputs {
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
        bad.len() + 1,
        state["on_hand"]
    );
}
