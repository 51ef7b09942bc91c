//! Golden test: a small hand-made stream (tests/fixtures/golden_stream.jsonl) through the real
//! `stockwatch replay` binary gives exactly the committed alerts and rejects. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff like code.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn replay(dir: &Path, partitions: u32) -> (String, String, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args([
            "replay",
            "--quiet",
            "--flush",
            "--now",
            "2026-06-01T00:00:00Z",
        ])
        .arg("--input")
        .arg(fixture("golden_stream.jsonl"))
        .arg("--alerts-out")
        .arg(dir.join("alerts.jsonl"))
        .arg("--rejects-out")
        .arg(dir.join("rejects.jsonl"))
        .arg("--report-json")
        .arg(dir.join("report.json"))
        .arg("--state-out")
        .arg(dir.join("state.arrow"))
        .args(["--partitions", &partitions.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let report = serde_json::from_str(&read("report.json")).unwrap();
    (read("alerts.jsonl"), read("rejects.jsonl"), report)
}

fn check(name: &str, got: &str) {
    let path = fixture(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "{name} differs from the golden file");
}

#[test]
fn golden_stream_gives_golden_alerts_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let (alerts, rejects, report) = replay(dir.path(), 1);
    check("golden_alerts.jsonl", &alerts);
    check("golden_rejects.jsonl", &rejects);
    // What the fixture was built to show (see tests/fixtures/README.md).
    let kinds: Vec<(String, String, String)> = alerts
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["location"].as_str().unwrap().to_string(),
                v["kind"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |loc: &str, kind: &str, status: &str| {
        kinds.contains(&(loc.to_string(), kind.to_string(), status.to_string()))
    };
    assert!(has("STORE-0001", "stockout_risk", "raised"), "{kinds:?}");
    assert!(has("STORE-0001", "stockout", "raised"), "{kinds:?}");
    assert!(has("STORE-0001", "stockout", "resolved"), "{kinds:?}");
    assert!(has("STORE-0002", "stockout", "raised"), "{kinds:?}");
    assert!(has("STORE-0002", "stockout", "resolved"), "{kinds:?}");
    assert_eq!(report["rejected_by_reason"]["duplicate"], 1);
    assert_eq!(report["rejected_by_reason"]["invalid_value"], 1);
    assert_eq!(report["rejected_by_reason"]["invalid_json"], 1);
    assert_eq!(report["rejected_by_reason"]["late"], 1);
    assert_eq!(report["events_applied"], 46);
}

#[test]
fn same_input_same_bytes_and_partitioning_changes_nothing_per_key() {
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = replay(d1.path(), 1);
    let b = replay(d2.path(), 1);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(
        std::fs::read(d1.path().join("state.arrow")).unwrap(),
        std::fs::read(d2.path().join("state.arrow")).unwrap()
    );
    // Shards have their own model replicas, so risks may differ across partition counts; the
    // observed stockouts may not.
    let c = replay(d3.path(), 4);
    let stockouts = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| l.contains("\"kind\":\"stockout\""))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(stockouts(&a.0), stockouts(&c.0));
}
