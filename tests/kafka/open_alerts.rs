//! The open-alerts table (`kafka.topics.open_alerts`) against a real broker (tansu), in
//! `at_least_once` with a SIGKILL and a restart in the middle of the stream:
//! - the table read from the beginning (latest record per key, tombstones applied) equals
//!   `stockwatch replay --open-alerts-out` on the same events, and each row is on its input
//!   partition (co-partitioned, whatever the key hashes to);
//! - the reference subscriber (`examples/subscriber.rs`, compiled in here) reaches that same
//!   open set both ways: reading the whole alert topic (duplicates and early alerts included),
//!   and starting late from the table, then following an alert topic retention has emptied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use broker::Broker;
use consume::Tail;
use service::{stockwatch, topics, Instance, Producer};

use crate::support::{broker, consume, service};

#[path = "../../examples/subscriber.rs"]
#[allow(dead_code)]
mod subscriber;

const PARTITIONS: u32 = 4;
/// More records than the stream writes to any topic: read until the deadline.
const READ_ALL: usize = 100_000;
const SIM: [&str; 12] = [
    "--events",
    "12000",
    "--stores",
    "5",
    "--skus",
    "30",
    "--days",
    "12",
    "--seed",
    "23",
    "--bad-ratio",
    "0",
];

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// `key -> alert_id` of an open set.
fn ids<'a>(
    rows: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
) -> BTreeMap<String, String> {
    rows.into_iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["alert_id"].as_str().expect("alert_id").to_owned(),
            )
        })
        .collect()
}

#[test]
fn at_least_once_the_table_equals_replay_after_a_kill_and_bootstraps_a_late_subscriber() {
    let _one_at_a_time = crate::support::one_at_a_time();
    table_after_a_kill("at_least_once");
}

/// The same in `exactly_once`: the table is written in the alerts' transactions, read
/// `read_committed`. A and B share `service.instance_id`, so B's transactional id fences A's
/// open transaction at once.
#[test]
fn exactly_once_the_table_equals_replay_after_a_kill_and_bootstraps_a_late_subscriber() {
    let _one_at_a_time = crate::support::one_at_a_time();
    table_after_a_kill("exactly_once");
}

fn table_after_a_kill(delivery: &str) {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "open.";
    let group = format!("open-alerts-{delivery}");
    let env = [
        ("STOCKWATCH__SERVICE__DELIVERY", delivery),
        ("STOCKWATCH__SERVICE__INSTANCE_ID", "open-0"),
        // Static membership would keep A's partitions for a whole session after the kill.
        ("STOCKWATCH__SERVICE__STATIC_MEMBERSHIP", "false"),
    ];
    let t = topics(prefix);
    let table = format!("{prefix}alerts-open");

    let file = dir.path().join("events.jsonl");
    let mut args = vec!["simulate", "--quiet", "--out", file.to_str().unwrap()];
    args.extend_from_slice(&SIM);
    stockwatch(&args);
    let parts = PARTITIONS.to_string();

    let alerts_file = dir.path().join("alerts.jsonl");
    let table_file = dir.path().join("open.jsonl");
    stockwatch(&[
        "replay",
        "--quiet",
        "--input",
        file.to_str().unwrap(),
        "--alerts-out",
        alerts_file.to_str().unwrap(),
        "--open-alerts-out",
        table_file.to_str().unwrap(),
        "--partitions",
        &parts,
    ]);
    let want_alerts = lines(&alerts_file);
    let want_rows: Vec<(String, serde_json::Value)> = lines(&table_file)
        .into_iter()
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r["value"].clone()))
        .collect();
    let want = ids(want_rows.iter().map(|(k, v)| (k, v)));
    let resolved = want_alerts
        .iter()
        .filter(|a| a["status"] == "resolved")
        .count();
    assert!(
        !want.is_empty() && resolved > 0,
        "the stream must leave alerts open and resolve some ({} open, {resolved} resolved)",
        want.len()
    );

    // The events produced live (12 000 at 3 000/s); the service killed once a fifth of the
    // alerts are out, mid-stream, and restarted: the uncommitted input is processed again, so
    // alerts and table rows are written twice (at least once).
    let producer = stockwatch::sink::kafka::EventProducer::new(
        stockwatch::sink::kafka::ProducerSettings::new(&bootstrap),
    )
    .expect("producer");
    // `expired`: the alert topic as a late subscriber finds it once retention dropped every
    // record (empty).
    let expired = format!("{prefix}alerts-expired");
    let names: Vec<&str> = t
        .iter()
        .map(String::as_str)
        .chain([expired.as_str()])
        .collect();
    producer
        .ensure_topics(&names, PARTITIONS, 1, Duration::from_secs(20))
        .expect("create topics");
    let mut alerts_tail = Tail::new(&bootstrap, &t[4..5], PARTITIONS as i32);
    let mut args = SIM.to_vec();
    args.extend(["--rate", "3000"]);
    let mut sim = Producer::start(&bootstrap, prefix, PARTITIONS, &args);
    let mut a = Instance::start("A", &bootstrap, prefix, &group, dir.path(), &env);
    let fifth = want_alerts.len() / 5;
    let some = alerts_tail.poll_until(Duration::from_secs(60), Duration::ZERO, |r| {
        r.len() >= fifth
    });
    assert!(some, "A did not publish {fifth} alerts:\n{}", a.log());
    a.sigkill();
    let killed_after = alerts_tail.records.len();
    let mut b = Instance::start("B", &bootstrap, prefix, &group, dir.path(), &env);
    sim.wait(Duration::from_secs(60));
    let ends = consume::ends(&bootstrap, &t[..4], PARTITIONS as i32);
    let waited = Instant::now();
    let mut lagging = consume::behind(&bootstrap, &group, &ends);
    while !lagging.is_empty() && waited.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(250));
        lagging = consume::behind(&bootstrap, &group, &ends);
    }
    assert!(
        lagging.is_empty(),
        "B did not commit up to the log end: {lagging:?}\n{}",
        b.log()
    );

    // Every alert of replay out: the last ones wait for the inputs to go idle (the watermark),
    // after the offsets are committed.
    let want_ids: BTreeSet<&str> = want_alerts
        .iter()
        .filter_map(|a| a["alert_id"].as_str())
        .collect();
    let complete =
        alerts_tail.poll_until(Duration::from_secs(60), Duration::from_millis(500), |r| {
            let got: BTreeSet<&[u8]> = r.iter().filter_map(|m| m.header("ce_id")).collect();
            want_ids.iter().all(|id| got.contains(id.as_bytes()))
        });
    assert!(
        complete,
        "not every alert of replay was published:\n{}",
        b.log()
    );

    // The offsets committed and every alert out do not yet mean B is done: A may have
    // committed its input offsets with events still waiting for the watermark in its state,
    // then published their alerts and died before committing the state after them. B restores
    // that state and, once its inputs are idle, applies those events again and publishes the
    // same alerts again (at least once). So: B holds every partition and its state has made
    // every alert replay made (the shards' alert counters are part of the state, restored
    // with it) — then nothing more is written.
    let all = PARTITIONS as usize;
    let settling = Instant::now();
    loop {
        b.wait_ready(Duration::from_secs(60), |r| {
            r["ready"] == true && r["partitions"].as_array().map(Vec::len) == Some(all)
        });
        let made = b.metric_sum("stockwatch_alerts_total");
        if made == Some(want_alerts.len() as f64) {
            break;
        }
        assert!(
            settling.elapsed() < Duration::from_secs(60),
            "B's state made {made:?} alerts after 60 s, replay {}:\n{}",
            want_alerts.len(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The table, read from the beginning: latest per key, a tombstone (null value) deletes.
    // Everything before the committed offsets is acknowledged, so it is all there. Read for a
    // fixed 4 s (the count is what is checked): far more than this stream writes stops it.
    let read_all = |topic: &String| {
        consume::consume_until(
            &bootstrap,
            std::slice::from_ref(topic),
            PARTITIONS as i32,
            READ_ALL,
            Duration::from_secs(4),
        )
    };
    let records = read_all(&table);
    let alerts = read_all(&t[4]);
    let partition_of: BTreeMap<Vec<u8>, i32> = alerts
        .iter()
        .map(|m| (m.key.clone(), m.partition))
        .collect();
    let mut rows: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut tombstones = 0;
    for m in &records {
        let key = String::from_utf8(m.key.clone()).expect("UTF-8 key");
        let (input_key, kind) = key.rsplit_once('|').expect("location|sku|kind");
        assert!(matches!(kind, "stockout_risk" | "stockout"), "{key}");
        assert_eq!(
            partition_of.get(input_key.as_bytes()),
            Some(&m.partition),
            "{key}: the row is not on its input partition"
        );
        if m.value.is_empty() {
            tombstones += 1;
            rows.remove(&key);
        } else {
            let v: serde_json::Value = serde_json::from_slice(&m.value).expect("alert json");
            assert_ne!(v["status"], "resolved", "{key}: a resolved alert as a row");
            assert_eq!(m.header("ce_id"), v["alert_id"].as_str().map(str::as_bytes));
            rows.insert(key, v);
        }
    }
    eprintln!(
        "{delivery}: A killed after {killed_after} alerts; table: {} records ({tombstones} tombstones), {} open; alerts topic: {} records for {} alerts of replay",
        records.len(),
        rows.len(),
        alerts.len(),
        want_alerts.len()
    );
    assert!(tombstones > 0, "no tombstone was written");
    assert_eq!(
        ids(&rows),
        want,
        "the table differs from replay --open-alerts-out"
    );

    // The reference subscriber: the whole alert topic, then late from the table alone.
    let options = subscriber::Options {
        bootstrap_servers: bootstrap.clone(),
        topic: t[4].clone(),
        table_topic: table.clone(),
        early_topic: Some(format!("{prefix}alerts-early")),
        from_beginning: true,
        lookback_secs: 0,
        until_caught_up: true,
        quiet_ms: 2000,
        open_set_out: None,
    };
    let full = subscriber::run(&options).expect("subscriber from the beginning");
    assert_eq!(full.table_records, 0);
    assert_eq!(ids(&full.open), want, "the subscriber that read everything");
    // Late: the table, then an alert topic retention has emptied (found by timestamp from
    // 5 minutes before the bootstrap): the open set comes from the table alone.
    let late = subscriber::run(&subscriber::Options {
        from_beginning: false,
        topic: expired,
        early_topic: None,
        lookback_secs: 300,
        ..options
    })
    .expect("subscriber from the table");
    if late.table_records != records.len() as u64 {
        // Read again now, to tell a partial first read from records written since (what B
        // would write if it processed its inputs again).
        let (table_now, alerts_now) = (read_all(&table), read_all(&t[4]));
        let per_partition = |rs: &[consume::Consumed]| {
            let mut n = BTreeMap::<i32, usize>::new();
            for r in rs {
                *n.entry(r.partition).or_default() += 1;
            }
            n
        };
        panic!(
            "the late subscriber read {} table records, the test {} (per partition: {:?}); read again now: table {} {:?}, alerts topic {} (was {}); the full subscriber skipped {} alert copies\n{}",
            late.table_records,
            records.len(),
            per_partition(&records),
            table_now.len(),
            per_partition(&table_now),
            alerts_now.len(),
            alerts.len(),
            full.duplicates,
            b.log()
        );
    }
    assert_eq!(late.applied, 0, "nothing but the table");
    assert_eq!(
        ids(&late.open),
        want,
        "the subscriber that started from the table"
    );
    eprintln!(
        "{delivery}: subscribers: full applied {} alerts, skipped {} copies, {} early open; late read {} table records and applied {} alerts; records delivered again and skipped: full {}, late {}",
        full.applied, full.duplicates, full.early.len(), late.table_records, late.applied, full.reread, late.reread
    );

    // B holds every partition: once ready on all of them, its /v1/alerts/open lists the
    // table's keys, from its state.
    let want_keys: BTreeSet<String> = want.keys().cloned().collect();
    let mut served = BTreeSet::new();
    let mut body = String::new();
    let asked = Instant::now();
    while served != want_keys && asked.elapsed() < Duration::from_secs(30) {
        b.wait_ready(Duration::from_secs(30), |r| {
            r["ready"] == true && r["partitions"].as_array().map(Vec::len) == Some(all)
        });
        let (code, text) = b.get("/v1/alerts/open").expect("B answers HTTP");
        assert_eq!(code, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        served = v["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| {
                let s = |f: &str| a[f].as_str().unwrap_or_default().to_owned();
                format!("{}|{}|{}", s("location"), s("sku"), s("kind"))
            })
            .collect();
        body = text;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        served,
        want_keys,
        "/v1/alerts/open differs from the table: {body}\n{}",
        b.log()
    );

    let (status, _) = b
        .sigterm(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{}", b.log());
}
