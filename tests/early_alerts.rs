//! Early alerts through the real `stockwatch replay` binary on simulated events:
//! - they never change the confirmed alerts (replay with `alerts.early` off gives the same file);
//! - each is a valid alert (the v1 schema), id `e-…`;
//! - after `--flush` every early `raised` is settled: the report's `raised` = `confirmed` +
//!   `retracted`, each retraction is the early `resolved` that follows its `raised`, and each
//!   confirmed one has the confirmed alert of its kind open at its trigger.
//!
//! The same on a real broker: `tests/kafka/service.rs` (the early topic).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(args: &[&str], env: &[(&str, &str)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("cannot run stockwatch");
    assert!(
        out.status.success(),
        "stockwatch {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn key(a: &Value) -> (String, String, String) {
    (
        a["location"].as_str().unwrap().to_owned(),
        a["sku"].as_str().unwrap().to_owned(),
        a["kind"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn early_alerts_are_settled_by_their_trigger_and_leave_confirmed_alerts_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let events = p("events.jsonl");
    run(
        &[
            "simulate", "--quiet", "--out", &events, "--events", "60000", "--stores", "8",
            "--skus", "60", "--days", "20", "--seed", "11",
        ],
        &[],
    );
    let replay = |alerts: &str, early: Option<&str>, report: &str, on: &str| {
        let mut args = vec![
            "replay",
            "--quiet",
            "--flush",
            "--now",
            "2027-01-01T00:00:00Z",
            "--partitions",
            "3",
            "--input",
            &events,
            "--alerts-out",
            alerts,
            "--report-json",
            report,
        ];
        if let Some(e) = early {
            args.extend(["--early-out", e]);
        }
        run(&args, &[("STOCKWATCH__ALERTS__EARLY", on)]);
    };
    let (alerts, early, report) = (p("alerts.jsonl"), p("early.jsonl"), p("report.json"));
    replay(&alerts, Some(&early), &report, "true");
    let (alerts_off, report_off) = (p("alerts-off.jsonl"), p("report-off.json"));
    replay(&alerts_off, None, &report_off, "false");

    // Confirmed alerts do not depend on early alerts.
    assert_eq!(
        std::fs::read_to_string(&alerts).unwrap(),
        std::fs::read_to_string(&alerts_off).unwrap(),
        "early alerts changed the confirmed alerts"
    );
    let confirmed = lines(Path::new(&alerts));
    let early = lines(Path::new(&early));
    assert!(!early.is_empty(), "the stream should raise early alerts");

    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/alert.v1.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for a in &early {
        assert!(validator.is_valid(a), "early alert not valid: {a}");
        assert!(a["alert_id"].as_str().unwrap().starts_with("e-"), "{a}");
        assert_ne!(
            a["status"], "updated",
            "early alerts are raised or resolved: {a}"
        );
    }

    // The report's counts against the file.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let (mut raised, mut settled) = (0, 0);
    for kind in ["stockout_risk", "stockout"] {
        let r = &report["early"][kind];
        let n = |f: &str| r[f].as_u64().unwrap();
        assert_eq!(n("raised"), n("confirmed") + n("retracted"), "{kind}: {r}");
        let resolved = early
            .iter()
            .filter(|a| a["kind"] == kind && a["status"] == "resolved")
            .count() as u64;
        assert_eq!(
            n("retracted"),
            resolved,
            "{kind}: one early resolved per retraction"
        );
        raised += n("raised");
        settled += n("confirmed");
    }
    let raised_lines = early.iter().filter(|a| a["status"] == "raised").count() as u64;
    assert_eq!(raised, raised_lines);
    assert!(settled > 0, "some early alerts should be confirmed");

    // Per key and kind: a resolved always answers the raised just before it; a raised left
    // alone was confirmed: the confirmed alert of its kind (or, for a risk, a stockout) was
    // open at its trigger.
    let mut by_key: BTreeMap<(String, String, String), Vec<&Value>> = BTreeMap::new();
    for a in &early {
        by_key.entry(key(a)).or_default().push(a);
    }
    let open_at = |loc: &str, sku: &str, kind: &str, t: &str| {
        confirmed
            .iter()
            .rfind(|c| {
                c["location"] == loc
                    && c["sku"] == sku
                    && c["kind"] == kind
                    && c["event_time"].as_str().unwrap() <= t
            })
            .is_some_and(|c| c["status"] != "resolved")
    };
    for ((loc, sku, kind), seq) in &by_key {
        for (i, a) in seq.iter().enumerate() {
            let next = seq.get(i + 1);
            match a["status"].as_str().unwrap() {
                "resolved" => assert!(
                    i > 0 && seq[i - 1]["status"] == "raised",
                    "an early resolved without its raised: {a}"
                ),
                "raised" if next.is_some_and(|n| n["status"] == "resolved") => {}
                "raised" => {
                    let t = a["event_time"].as_str().unwrap();
                    let ok = open_at(loc, sku, kind, t)
                        || (kind == "stockout_risk" && open_at(loc, sku, "stockout", t));
                    assert!(ok, "an early alert left alone was not confirmed: {a}");
                }
                s => panic!("unexpected early status {s}: {a}"),
            }
        }
    }
}
