//! Changelog adversity against a real broker (tansu): the three ways a shard's changelog and
//! the group's committed offsets stop agreeing — offsets expired (a group new to the broker,
//! the changelog full), the changelog deleted (an empty one, offsets committed), the
//! changelog truncated (a partition of it holding only its last records) — are each reported
//! (`/readyz` reason, `stockwatch_state_inconsistent_partitions`, an error line naming the
//! partition), the partition is not processed while the others go on, the instance stays up,
//! and `stockwatch reset-state` resolves it: `--from changelog` republishes nothing and
//! commits up to the end; `--from earliest` republishes exactly `replay`'s alerts;
//! `--from committed` starts the partition empty at its committed offsets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use broker::Broker;
use service::{stockwatch, topics, v2_topics, Instance};

use crate::support::{broker, consume, service};

const PARTITIONS: i32 = 2;
const PREFIX: &str = "adv.";
const SIM: [&str; 10] = [
    "--events", "6000", "--stores", "4", "--skus", "20", "--days", "6", "--seed", "11",
];

/// `stockwatch reset-state ARGS` with the test's topics, group and changelog: (success,
/// stdout, stderr).
fn reset_state(
    bootstrap: &str,
    group: &str,
    changelog: &str,
    args: &[&str],
) -> (bool, String, String) {
    let t = topics(PREFIX);
    let v2 = v2_topics(PREFIX);
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .arg("reset-state")
        .args(args)
        .env("STOCKWATCH__KAFKA__BOOTSTRAP_SERVERS", bootstrap)
        .env("STOCKWATCH__KAFKA__GROUP_ID", group)
        .env("STOCKWATCH__KAFKA__TOPICS__SALES", &t[0])
        .env("STOCKWATCH__KAFKA__TOPICS__SHIPMENTS", &t[1])
        .env("STOCKWATCH__KAFKA__TOPICS__RECEIPTS", &t[2])
        .env("STOCKWATCH__KAFKA__TOPICS__AVAILABILITY", &t[3])
        .env("STOCKWATCH__KAFKA__TOPICS__INVENTORY_COUNTS", &v2[0])
        .env("STOCKWATCH__KAFKA__TOPICS__ADJUSTMENTS", &v2[1])
        .env("STOCKWATCH__KAFKA__TOPICS__CHANGELOG", changelog)
        .env("STOCKWATCH_LOG", "warn")
        .output()
        .expect("run reset-state");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn start(name: &str, bootstrap: &str, group: &str, changelog: &str, dir: &Path) -> Instance {
    Instance::start(
        name,
        bootstrap,
        PREFIX,
        group,
        dir,
        &[("STOCKWATCH__KAFKA__TOPICS__CHANGELOG", changelog)],
    )
}

/// Waits until the instance reports `reason` for exactly `partitions` among all assigned.
fn wait_blocked(svc: &mut Instance, reason: &str, partitions: &[i32]) -> serde_json::Value {
    let want: Vec<serde_json::Value> = partitions
        .iter()
        .map(|p| serde_json::json!({ "partition": p, "reason": reason }))
        .collect();
    let r = svc.wait_ready(Duration::from_secs(60), |r| {
        r["reason"] == reason
            && r["inconsistent"].as_array() == Some(&want)
            && r["partitions"].as_array().map(Vec::len) == Some(PARTITIONS as usize)
    });
    assert_eq!(r["ready"], false, "{r}");
    let (status, _) = svc.get("/readyz").expect("readyz");
    assert_eq!(status, 503);
    let metrics = svc.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    let line = format!(
        "stockwatch_state_inconsistent_partitions{{reason=\"{reason}\"}} {}",
        partitions.len()
    );
    assert!(metrics.contains(&line), "no `{line}` in /metrics");
    for p in partitions {
        let needle = format!("partition {p} not processed");
        assert!(
            svc.log_count(&needle) >= 1,
            "no `{needle}` in the log:\n{}",
            svc.log()
        );
    }
    r
}

fn stop(mut svc: Instance) {
    let (status, _) = svc
        .sigterm(Duration::from_secs(30))
        .expect("exit within 30 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}\n{}", svc.log());
}

/// Waits until `group` has committed every partition of `ends` to its end (except those of
/// `but`, which must stay behind); panics with the log.
fn wait_committed(
    bootstrap: &str,
    group: &str,
    ends: &BTreeMap<(String, i32), i64>,
    but: &[i32],
    svc: &Instance,
) {
    let started = Instant::now();
    loop {
        let behind = consume::behind(bootstrap, group, ends);
        let unexpected: Vec<_> = behind.iter().filter(|b| !but.contains(&b.1)).collect();
        if unexpected.is_empty() {
            assert!(
                but.iter().all(|p| behind.iter().any(|b| b.1 == *p)),
                "a blocked partition was committed: behind {behind:?}"
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not committed to the end within 60 s: {unexpected:?}\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn alert_ids(bootstrap: &str, at_least: usize, wait: Duration) -> BTreeMap<String, usize> {
    let t = topics(PREFIX);
    let mut ids = BTreeMap::new();
    for m in consume::consume_until(bootstrap, &t[4..5], PARTITIONS, at_least, wait) {
        let v: serde_json::Value = serde_json::from_slice(&m.value).expect("alert json");
        *ids.entry(v["alert_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    ids
}

/// A changelog record read for the copy: partition, offset, key, value, headers.
type Copied = (i32, i64, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Copies changelog `from` to `to`: partition 0 whole, partition 1 from its last shard
/// record on (what a `DeleteRecords` up to it leaves).
fn copy_truncated(bootstrap: &str, from: &str, to: &str) {
    let _ = stockwatch::sink::kafka::EventProducer::new(
        stockwatch::sink::kafka::ProducerSettings::new(bootstrap),
    )
    .and_then(|p| p.ensure_topics(&[to], PARTITIONS as u32, 1, Duration::from_secs(20)))
    .expect("create the copy");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "adv-copy")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(from, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut records: Vec<Copied> = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_owned(), x.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            records.push((
                m.partition(),
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    records.sort_by_key(|r| (r.0, r.1));
    let cut = records
        .iter()
        .filter(|r| r.0 == 1 && r.2 == b"#shard")
        .map(|r| r.1)
        .max()
        .expect("partition 1 of the changelog holds a shard record");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let mut copied = 0;
    for (p, off, key, value, headers) in &records {
        if *p == 1 && *off < cut {
            continue;
        }
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        producer
            .send(
                BaseRecord::to(to)
                    .partition(*p)
                    .key(key)
                    .payload(value)
                    .headers(h),
            )
            .map_err(|(e, _)| e)
            .expect("send");
        copied += 1;
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    eprintln!("changelog copy: {copied} of {} records", records.len());
}

#[test]
fn expired_offsets_a_deleted_and_a_truncated_changelog_are_reported_and_reset() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(PREFIX);
    let parts = PARTITIONS.to_string();

    let file = dir.path().join("events.jsonl");
    let mut args = vec!["simulate", "--quiet", "--out", file.to_str().unwrap()];
    args.extend_from_slice(&SIM);
    stockwatch(&args);
    let mut args = vec![
        "simulate",
        "--quiet",
        "--bootstrap-servers",
        &bootstrap,
        "--topic-prefix",
        PREFIX,
        "--partitions",
        &parts,
    ];
    args.extend_from_slice(&SIM);
    stockwatch(&args);
    let alerts_file = dir.path().join("alerts.jsonl");
    stockwatch(&[
        "replay",
        "--quiet",
        "--input",
        file.to_str().unwrap(),
        "--alerts-out",
        alerts_file.to_str().unwrap(),
        "--partitions",
        &parts,
    ]);
    let want: Vec<String> = std::fs::read_to_string(&alerts_file)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["alert_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(want.len() > 10, "the stream should raise alerts");

    // A normal run of group g1 on changelog c1, to the end.
    let (g1, g2) = ("adv-g1", "adv-g2");
    let (c1, c2, c3) = ("adv.changelog", "adv.changelog-2", "adv.changelog-3");
    let ends = consume::ends(&bootstrap, &t[..4], PARTITIONS);
    let svc = start("A", &bootstrap, g1, c1, dir.path());
    let first = alert_ids(&bootstrap, want.len(), Duration::from_secs(60));
    assert_eq!(first.len(), want.len(), "{}", svc.log());
    wait_committed(&bootstrap, g1, &ends, &[], &svc);
    stop(svc);
    let published = first.values().sum::<usize>();

    // 1. Expired offsets: group g2 is new to the broker, changelog c1 holds committed state.
    let mut svc = start("B", &bootstrap, g2, c1, dir.path());
    let blocked_at = Instant::now();
    wait_blocked(&mut svc, "offsets_missing", &[0, 1]);
    eprintln!(
        "offsets_missing reported {:.1} s after start",
        blocked_at.elapsed().as_secs_f64()
    );
    // Not processed: nothing republished, nothing committed.
    std::thread::sleep(Duration::from_secs(3));
    let again = alert_ids(&bootstrap, published + 1, Duration::from_secs(3));
    assert_eq!(
        again.values().sum::<usize>(),
        published,
        "a blocked partition published alerts"
    );
    assert_eq!(consume::behind(&bootstrap, g2, &ends).len(), ends.len());
    assert!(svc.is_running(), "the instance stays up, not ready");
    // The command refuses while an instance runs.
    let (ok, _, err) = reset_state(
        &bootstrap,
        g2,
        c1,
        &["--all-partitions", "--from", "changelog"],
    );
    assert!(!ok && err.contains("running member"), "{err}");
    stop(svc);
    let (ok, out, err) = reset_state(
        &bootstrap,
        g2,
        c1,
        &["--all-partitions", "--from", "changelog"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let svc = start("C", &bootstrap, g2, c1, dir.path());
    let mut svc = svc;
    svc.wait_ready(Duration::from_secs(60), |r| {
        r["ready"] == true && r["partitions"].as_array().map(Vec::len) == Some(2)
    });
    wait_committed(&bootstrap, g2, &ends, &[], &svc);
    let again = alert_ids(&bootstrap, published + 1, Duration::from_secs(3));
    assert_eq!(
        again.values().sum::<usize>(),
        published,
        "--from changelog kept the state: nothing republished"
    );
    stop(svc);

    // 2. Deleted changelog: group g1 (offsets committed) on an empty changelog c2.
    let mut svc = start("D", &bootstrap, g1, c2, dir.path());
    wait_blocked(&mut svc, "changelog_missing", &[0, 1]);
    stop(svc);
    let (ok, out, err) = reset_state(
        &bootstrap,
        g1,
        c2,
        &["--all-partitions", "--from", "earliest"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("0 keys"), "{out}");
    let started = Instant::now();
    let svc = start("E", &bootstrap, g1, c2, dir.path());
    let all = alert_ids(&bootstrap, 2 * published, Duration::from_secs(60));
    wait_committed(&bootstrap, g1, &ends, &[], &svc);
    eprintln!(
        "--from earliest: rebuilt and committed to the end {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    // Rebuilt from the inputs: exactly replay's alerts once more.
    for id in &want {
        assert_eq!(all.get(id), Some(&2), "alert {id} after the rebuild");
    }
    assert_eq!(all.len(), want.len(), "alerts replay does not raise");
    stop(svc);

    // 3. Truncated changelog: c3 holds c2's partition 0 whole and partition 1 from its last
    // shard record on. Partition 0 goes on, partition 1 waits.
    copy_truncated(&bootstrap, c2, c3);
    let more = [
        "--events", "2000", "--stores", "4", "--skus", "20", "--days", "2", "--seed", "12",
    ];
    let mut args = vec![
        "simulate",
        "--quiet",
        "--bootstrap-servers",
        &bootstrap,
        "--topic-prefix",
        PREFIX,
        "--partitions",
        &parts,
    ];
    args.extend_from_slice(&more);
    stockwatch(&args);
    let ends = consume::ends(&bootstrap, &t[..4], PARTITIONS);
    let mut svc = start("F", &bootstrap, g1, c3, dir.path());
    wait_blocked(&mut svc, "changelog_truncated", &[1]);
    wait_committed(&bootstrap, g1, &ends, &[1], &svc);
    stop(svc);
    let (ok, out, err) = reset_state(
        &bootstrap,
        g1,
        c3,
        &["--partition", "1", "--from", "committed"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("partition 1: reset from committed: 0 keys"),
        "{out}"
    );
    let mut svc = start("G", &bootstrap, g1, c3, dir.path());
    svc.wait_ready(Duration::from_secs(60), |r| {
        r["ready"] == true && r["partitions"].as_array().map(Vec::len) == Some(2)
    });
    wait_committed(&bootstrap, g1, &ends, &[], &svc);
    stop(svc);
}
