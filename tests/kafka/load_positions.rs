//! `stockwatch load-positions` against a real Kafka-protocol broker (tansu, see
//! tests/support/broker.rs): the records in the inventory-count topic are exactly the lines
//! `load-positions --out` writes for the same snapshot, keyed `location|sku` and partitioned
//! like Kafka's Java clients; a second load of the same snapshot produces the same event ids.

use std::collections::HashSet;
use std::process::{Command, Output};

use stockwatch::partition::partition_for_key;

use crate::support::broker::Broker;
use crate::support::consume::consume;

fn stockwatch(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args(args)
        .output()
        .expect("cannot run stockwatch");
    eprintln!("$ stockwatch {}", args.join(" "));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn positions_are_produced_like_the_file_and_a_reload_repeats_the_ids() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("positions.csv");
    let mut csv = String::from("location,sku,on_hand,as_of\n");
    for l in 0..20 {
        for s in 0..50 {
            csv.push_str(&format!(
                "STORE-{l:04},SKU-{s:05},{},2026-01-05T00:00:00Z\n",
                (l * 7 + s * 3) % 40
            ));
        }
    }
    std::fs::write(&input, &csv).unwrap();
    let file = dir.path().join("counts.jsonl");
    let out = stockwatch(&[
        "load-positions",
        "--input",
        input.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1000);
    // The service's decoder takes every event: replayed, all 1000 are applied as counts.
    let report = dir.path().join("report.json");
    let out = stockwatch(&[
        "replay",
        "--quiet",
        "--flush",
        "--now",
        "2026-06-01T00:00:00Z",
        "--input",
        file.to_str().unwrap(),
        "--alerts-out",
        dir.path().join("alerts.jsonl").to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["rejected"], 0, "{report}");
    assert_eq!(
        report["applied_by_type"]["inventory_count"], 1000,
        "{report}"
    );

    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let load = || {
        stockwatch(&[
            "load-positions",
            "--input",
            input.to_str().unwrap(),
            "--bootstrap-servers",
            &bootstrap,
            "--topic",
            "it.inventory_counts",
            "--partitions",
            "4",
        ])
    };
    let out = load();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("created topic it.inventory_counts (4 partitions)"),
        "{stderr}"
    );
    assert!(stderr.contains("1000 acknowledged"), "{stderr}");
    let topics = ["it.inventory_counts".to_owned()];
    let got = consume(&bootstrap, &topics, 4, 1000);
    assert_eq!(got.len(), 1000);
    let mut want: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let mut values: Vec<&[u8]> = got.iter().map(|c| c.value.as_slice()).collect();
    want.sort_unstable();
    values.sort_unstable();
    assert!(
        want == values,
        "the topic holds other records than the file"
    );
    for c in &got {
        let v: serde_json::Value = serde_json::from_slice(&c.value).unwrap();
        let key = format!(
            "{}|{}",
            v["location"].as_str().unwrap(),
            v["sku"].as_str().unwrap()
        );
        assert_eq!(c.key, key.as_bytes());
        assert_eq!(c.partition as u32, partition_for_key(&c.key, 4), "{key}");
        assert_eq!(v["type"], "inventory_count");
        assert_eq!(v["source"], "snapshot");
    }

    // Loading the same snapshot again: the topic is reused and the second copy carries the
    // same event ids (the service drops it as duplicates).
    let out = load();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("using topic it.inventory_counts"));
    let got = consume(&bootstrap, &topics, 4, 2000);
    assert_eq!(got.len(), 2000);
    let ids: HashSet<String> = got
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_slice(&c.value).unwrap();
            v["event_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1000);
    broker.stop();
}
