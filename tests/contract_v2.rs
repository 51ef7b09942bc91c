//! Contract v2: every v2 type validates against `event.v2.schema.json` and decodes; every v1
//! event is still valid; the new bad values are refused with their reason codes; replaying a
//! v2 stream is deterministic, and its state round-trips through `--state-out` files and
//! through the changelog.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
use stockwatch::engine::persist;
use stockwatch::engine::{EngineConfig, Shard};
use stockwatch::event::{EventType, InputEvent};
use stockwatch::reject::RejectReason;
use stockwatch::state::changelog;

const NOW: i64 = 1_780_272_000_000; // 2026-06-01T00:00:00Z

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

#[test]
fn every_v2_type_validates_and_decodes_and_v1_events_stay_valid() {
    let v2 = validator("event.v2.schema.json");
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut seen = [0usize; EventType::COUNT];
    let (mut revisions, mut cancellations) = (0, 0);
    for line in lines("v2_events.jsonl") {
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        let errors: Vec<String> = v2.iter_errors(&j).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
        let typed: InputEvent =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let InputEvent::Shipment { status, .. } = &typed {
            match status {
                Some(stockwatch::event::ShipmentStatus::Cancelled) => cancellations += 1,
                Some(_) => revisions += 1,
                None => {}
            }
        }
        let kind = dec
            .check(
                MessageRef {
                    key: None,
                    value: line.as_bytes(),
                },
                NOW,
                |e| e.kind,
            )
            .unwrap_or_else(|e| panic!("{line}: {e:?}"));
        seen[kind as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "every type: {seen:?}");
    assert!(revisions > 0 && cancellations > 0);
    // Every v1 event is a v2 event (same meaning, same bytes).
    for line in lines("golden_events.jsonl") {
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v2.is_valid(&j), "{line}");
    }
}

#[test]
fn new_bad_values_are_refused_with_their_reason() {
    let v2 = validator("event.v2.schema.json");
    let at = r#""sku":"K1","location":"S1","event_time":"2026-01-01T00:00:00Z""#;
    // (value, reason, whether the schema can tell too)
    let cases = [
        (
            format!(
                r#"{{"event_id":"c1","type":"inventory_count",{at},"qty":-1,"source":"snapshot"}}"#
            ),
            RejectReason::InvalidValue,
            true,
        ),
        (
            format!(
                r#"{{"event_id":"c2","type":"inventory_count",{at},"qty":4,"source":"guess"}}"#
            ),
            RejectReason::UnknownValue,
            true,
        ),
        (
            format!(r#"{{"event_id":"c3","type":"inventory_count",{at},"qty":4}}"#),
            RejectReason::SchemaViolation,
            true,
        ),
        (
            format!(r#"{{"event_id":"a1","type":"adjustment",{at},"qty":0,"reason":"shrink"}}"#),
            RejectReason::InvalidValue,
            false,
        ),
        (
            format!(
                r#"{{"event_id":"a2","type":"adjustment",{at},"qty":1e400,"reason":"shrink"}}"#
            ),
            RejectReason::InvalidValue,
            false,
        ),
        (
            format!(r#"{{"event_id":"a3","type":"adjustment",{at},"qty":-2,"reason":"theft"}}"#),
            RejectReason::UnknownValue,
            true,
        ),
        (
            format!(r#"{{"event_id":"a4","type":"adjustment",{at},"qty":-2}}"#),
            RejectReason::SchemaViolation,
            true,
        ),
        (
            format!(
                r#"{{"event_id":"s1","type":"shipment","shipment_id":"P","qty":2,"eta":"2026-01-02T00:00:00Z",{at},"status":"lost"}}"#
            ),
            RejectReason::UnknownValue,
            true,
        ),
        (
            format!(
                r#"{{"event_id":"s2","type":"shipment","shipment_id":"P","qty":2,{at},"status":"cancelled"}}"#
            ),
            RejectReason::SchemaViolation,
            true,
        ),
    ];
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    for (value, reason, schema_tells) in &cases {
        let got = dec.check(
            MessageRef {
                key: None,
                value: value.as_bytes(),
            },
            NOW,
            |_| (),
        );
        assert_eq!(got.map_err(|e| e.0), Err(*reason), "{value}");
        if *schema_tells {
            let j: serde_json::Value = serde_json::from_str(value).unwrap();
            assert!(!v2.is_valid(&j), "the schema accepts {value}");
        }
    }
}

fn replay(dir: &Path) -> (String, Vec<u8>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_stockwatch"))
        .args([
            "replay",
            "--quiet",
            "--flush",
            "--now",
            "2026-06-01T00:00:00Z",
        ])
        .arg("--input")
        .arg(fixture("v2_events.jsonl"))
        .arg("--alerts-out")
        .arg(dir.join("alerts.jsonl"))
        .arg("--report-json")
        .arg(dir.join("report.json"))
        .arg("--state-out")
        .arg(dir.join("state.arrow"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap(),
        std::fs::read(dir.join("state.arrow")).unwrap(),
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap(),
    )
}

#[test]
fn a_v2_replay_is_deterministic_and_its_state_file_round_trips() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replay(d1.path());
    let b = replay(d2.path());
    assert_eq!(a.0, b.0, "alerts");
    assert_eq!(a.1, b.1, "state file bytes");
    let report = &a.2;
    assert_eq!(report["rejected"], 0, "{report}");
    assert_eq!(report["events_applied"], 50, "{report}");
    for t in ["inventory_count", "adjustment"] {
        assert!(report["applied_by_type"][t].as_u64() > Some(0), "{report}");
    }
    // The cycle counts of STORE-0001 found less than the book: phantom inventory.
    assert!(
        report["counts"]["below_book"].as_u64() > Some(0),
        "{report}"
    );
    assert!(
        report["counts"]["phantom_units"].as_f64() > Some(0.0),
        "{report}"
    );
    // STORE-0002|SKU-B: a count of 0 opens a stockout, the transfer in resolves it.
    let stockout = |status: &str| {
        a.0.lines().any(|l| {
            l.contains("\"location\":\"STORE-0002\"")
                && l.contains("\"kind\":\"stockout\"")
                && l.contains(&format!("\"status\":\"{status}\""))
        })
    };
    assert!(stockout("raised") && stockout("resolved"), "{}", a.0);

    // Read back and written again: the same bytes.
    let path = d1.path().join("state.arrow");
    let shards = persist::read_engine_state(&path, EngineConfig::default()).unwrap();
    let again = d1.path().join("again.arrow");
    persist::write_state(&shards, &again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), a.1);
    // What the state says, per key: the DC's book after counts, picks, the revised receipt
    // and write-offs; the revision and the cancellation left nothing in transit.
    let s = &shards[0];
    let dc = s.view("DC-01", "SKU-A").unwrap();
    assert_eq!(dc.on_hand, Some(500.0 - 360.0 + 250.0 - 3.0 - 2.5 + 4.0));
    assert_eq!(dc.in_transit, 0.0);
    let b2 = s.view("STORE-0002", "SKU-B").unwrap();
    assert_eq!(b2.on_hand, Some(11.0));
}

#[test]
fn a_v2_state_round_trips_through_the_changelog_and_goes_on_alike() {
    let events = lines("v2_events.jsonl");
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let cfg = EngineConfig::default();
    let mut shard = Shard::new(cfg);
    shard.track_changes(true);
    let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
    let mut latest: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for chunk in events[..30].chunks(7) {
        let b = dec.decode(
            chunk.iter().map(|s| MessageRef {
                key: None,
                value: s.as_bytes(),
            }),
            NOW,
            &mut rejects,
        );
        shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
        persist::take_changes(&mut shard, |k, change| {
            let mut v = Vec::new();
            if change.encode(&mut v) {
                latest.insert(k.to_string(), v);
            } else {
                latest.remove(k);
            }
        });
    }
    assert!(rejects.is_empty(), "{rejects:?}");
    let meta = changelog::ShardRecord::decode(&persist::shard_record(&shard).encode()).unwrap();
    let (journals, keys): (Vec<_>, Vec<_>) = latest.iter().partition(|(k, _)| k.starts_with('#'));
    let keys = keys
        .into_iter()
        .map(|(_, v)| changelog::KeyRecord::decode(v).unwrap())
        .collect();
    let journals = journals
        .into_iter()
        .map(|(_, v)| changelog::Journal::decode(v).unwrap())
        .collect();
    let mut restored = persist::restore_shard(cfg, &meta, keys, journals).unwrap();
    assert_eq!(
        persist::shard_to_batch(&restored, 0).unwrap(),
        persist::shard_to_batch(&shard, 0).unwrap()
    );
    let rest = dec.decode(
        events[30..].iter().map(|s| MessageRef {
            key: None,
            value: s.as_bytes(),
        }),
        NOW,
        &mut rejects,
    );
    let (mut a1, mut a2) = (Vec::new(), Vec::new());
    restored.process(&rest, u64::from, None, &mut Vec::new(), &mut a1);
    shard.process(&rest, u64::from, None, &mut Vec::new(), &mut a2);
    restored.advance(true, None, &mut a1);
    shard.advance(true, None, &mut a2);
    assert_eq!(a1, a2);
    assert_eq!(
        persist::shard_to_batch(&restored, 0).unwrap(),
        persist::shard_to_batch(&shard, 0).unwrap()
    );
}
