//! Master data offline: with a locations table, the model's hour of day and day of week are
//! local to each location's time zone (daylight saving included) from the first event; events
//! of locations the table does not know are UTC; `replay --locations --items` reads the CSVs.

use std::sync::Arc;

use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
use stockwatch::engine::{EngineConfig, Shard};
use stockwatch::master::MasterData;
use stockwatch::model::features::{DAY_OF_WEEK, HOUR_OF_DAY};

const NOW: i64 = 1_798_761_600_000; // 2027-01-01

fn sale(id: &str, loc: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","type":"sale","sku":"K1","location":"{loc}","qty":1,"event_time":"{at}"}}"#
    )
}

/// (hour of day, day of week) as the model saw them, per scored event, in order.
fn local_times(master: MasterData, events: &[String]) -> Vec<(f32, f32)> {
    let mut shard = Shard::new(EngineConfig::default());
    shard.set_master(Arc::new(master));
    shard.record_scores(true);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let (mut rejects, mut alerts) = (Vec::new(), Vec::new());
    let b = dec.decode(
        events.iter().map(|s| MessageRef {
            key: None,
            value: s.as_bytes(),
        }),
        NOW,
        &mut rejects,
    );
    shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
    shard.advance(true, None, &mut alerts);
    assert!(rejects.is_empty(), "{rejects:?}");
    shard
        .drain_scores()
        .map(|s| (s.x[HOUR_OF_DAY] * 24.0, s.x[DAY_OF_WEEK] * 7.0))
        .collect()
}

#[test]
fn local_hour_and_weekday_follow_the_location_time_zone_across_dst() {
    let mut m = MasterData::default();
    m.apply_location(
        "NY",
        Some(br#"{"location":"NY","kind":"store","time_zone":"America/New_York"}"#),
    )
    .unwrap();
    // Sunday 2026-03-08: New York moves from UTC-5 to UTC-4 at 07:00 UTC.
    let events: Vec<String> = [
        ("a", "NY", "2026-03-08T03:30:00Z"), // Sat 22:30 EST
        ("b", "NY", "2026-03-08T06:30:00Z"), // Sun 01:30 EST
        ("c", "NY", "2026-03-08T07:30:00Z"), // Sun 03:30 EDT
        ("d", "XX", "2026-03-08T07:45:00Z"), // unknown location: UTC, Sun 07:45
        ("e", "NY", "2026-11-01T05:30:00Z"), // Sun 01:30 EDT
        ("f", "NY", "2026-11-01T06:30:00Z"), // Sun 01:30 EST (the hour repeats)
    ]
    .iter()
    .map(|(id, loc, at)| sale(id, loc, at))
    .collect();
    let got = local_times(m, &events);
    // Monday = 0, so Saturday = 5, Sunday = 6.
    assert_eq!(
        got,
        vec![
            (22.0, 5.0),
            (1.0, 6.0),
            (3.0, 6.0),
            (7.0, 6.0),
            (1.0, 6.0),
            (1.0, 6.0)
        ]
    );
    // Without master data every location is UTC.
    let utc = local_times(MasterData::default(), &events);
    assert_eq!(utc[0], (3.0, 6.0));
    assert_eq!(utc[2], (7.0, 6.0));
}

#[test]
fn replay_reads_the_master_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(
        p("locations.csv"),
        "location,kind,time_zone,dc,region\nSTORE-0001,store,Asia/Tokyo,DC-01,japan\n",
    )
    .unwrap();
    std::fs::write(
        p("items.csv"),
        "sku,category,case_pack\nSKU-A,food/dairy,12\n",
    )
    .unwrap();
    let input =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2_events.jsonl");
    let run = |extra: &[&std::path::Path]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stockwatch"));
        c.args([
            "replay",
            "--quiet",
            "--flush",
            "--now",
            "2026-06-01T00:00:00Z",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--alerts-out")
        .arg(p("alerts.jsonl"));
        if let [loc, items] = extra {
            c.arg("--locations").arg(loc).arg("--items").arg(items);
        }
        c.output().unwrap()
    };
    let ok = run(&[&p("locations.csv"), &p("items.csv")]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A bad file stops the replay with the line that is wrong.
    std::fs::write(
        p("bad.csv"),
        "location,kind,time_zone,dc,region\nSTORE-0001,store,Atlantis/Main,,\n",
    )
    .unwrap();
    let bad = run(&[&p("bad.csv"), &p("items.csv")]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("line 2") && err.contains("Atlantis/Main"),
        "{err}"
    );
}

#[test]
fn the_key_view_shows_the_time_zone_and_the_local_hour() {
    let mut m = MasterData::default();
    m.apply_location(
        "NY",
        Some(br#"{"location":"NY","kind":"store","time_zone":"America/New_York"}"#),
    )
    .unwrap();
    let mut shard = Shard::new(EngineConfig::default());
    shard.set_master(Arc::new(m));
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let (mut rejects, mut alerts) = (Vec::new(), Vec::new());
    let events = [
        sale("a", "NY", "2026-03-08T07:30:00Z"),
        sale("b", "XX", "2026-03-08T07:30:00Z"),
    ];
    let b = dec.decode(
        events.iter().map(|s| MessageRef {
            key: None,
            value: s.as_bytes(),
        }),
        NOW,
        &mut rejects,
    );
    shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
    shard.advance(true, None, &mut alerts);
    let ny = shard.view("NY", "K1").unwrap();
    assert_eq!(ny.time_zone.as_deref(), Some("America/New_York"));
    assert_eq!(
        ny.last_event_hour_local.as_deref(),
        Some("2026-03-08T03:00:00-04:00")
    );
    let unknown = shard.view("XX", "K1").unwrap();
    assert_eq!(
        (unknown.time_zone, unknown.last_event_hour_local),
        (None, None)
    );
    let json = serde_json::to_value(shard.view("XX", "K1").unwrap()).unwrap();
    assert!(json.get("time_zone").is_none(), "{json}");
}

#[test]
fn a_new_table_applies_to_the_events_processed_after_it() {
    let table = |tz: &str| {
        let mut m = MasterData::default();
        let v = format!(r#"{{"location":"L","kind":"store","time_zone":"{tz}"}}"#);
        m.apply_location("L", Some(v.as_bytes())).unwrap();
        Arc::new(m)
    };
    let mut shard = Shard::new(EngineConfig::default());
    shard.record_scores(true);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let (mut rejects, mut alerts) = (Vec::new(), Vec::new());
    let mut hours = Vec::new();
    // The service hands a shard a new table between batches (src/service/master.rs).
    for (id, at, tz) in [
        ("a", "2026-06-01T12:00:00Z", "America/New_York"),
        ("b", "2026-06-01T14:00:00Z", "Asia/Tokyo"),
    ] {
        shard.set_master(table(tz));
        let e = sale(id, "L", at);
        let b = dec.decode(
            [MessageRef {
                key: None,
                value: e.as_bytes(),
            }],
            NOW,
            &mut rejects,
        );
        shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
        shard.advance(true, None, &mut alerts);
        hours.extend(shard.drain_scores().map(|s| s.x[HOUR_OF_DAY] * 24.0));
    }
    assert!(rejects.is_empty(), "{rejects:?}");
    // 12:00Z in New York (EDT) is 08:00; 14:00Z in Tokyo is 23:00.
    assert_eq!(hours, vec![8.0, 23.0]);
}
