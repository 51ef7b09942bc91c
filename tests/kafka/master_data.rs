//! Master data through the real service (tansu): an instance started after the locations and
//! items topics were written uses them from its first event (the key's view shows the
//! location's time zone and its last event hour in local time); a time-zone update written
//! while it runs is applied without a restart; bad master-data records are dead-lettered once
//! with their reason, and the previous good value stays in force.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use service::{ensure_v2_topics, topics, Instance};

use crate::support::{broker, consume, service};

const PARTITIONS: u32 = 2;

fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, topic: &str, key: Option<&str>, value: &str) {
    let mut r = BaseRecord::<str, str>::to(topic).payload(value);
    if let Some(k) = key {
        r = r.key(k);
    }
    p.send(r).map_err(|(e, _)| e).expect("enqueue");
    p.flush(Duration::from_secs(10)).expect("flush");
}

fn location(id: &str, kind: &str, tz: &str) -> String {
    format!(r#"{{"location":"{id}","kind":"{kind}","time_zone":"{tz}"}}"#)
}

fn sale(id: &str, loc: &str, at_ms: i64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(at_ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        r#"{{"event_id":"{id}","type":"sale","sku":"K1","location":"{loc}","qty":1,"event_time":"{at}"}}"#
    )
}

/// `/v1/state/{loc}/K1` once `ok` holds; panics with the log after 60 s.
fn state_when(
    svc: &mut Instance,
    loc: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let v: serde_json::Value = svc
            .get(&format!("/v1/state/{loc}/K1"))
            .and_then(|(status, body)| (status == 200).then_some(body))
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        if ok(&v) {
            return v;
        }
        assert!(svc.is_running(), "instance exited:\n{}", svc.log());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/v1/state/{loc}/K1 not as wanted (last {v}):\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The view's `last_event_hour` (UTC) in `tz`, as the view writes it.
fn local(view: &serde_json::Value, tz: chrono_tz::Tz) -> String {
    let utc = view["last_event_hour"].as_str().expect("last_event_hour");
    chrono::DateTime::parse_from_rfc3339(utc)
        .expect("RFC 3339")
        .with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[test]
fn master_data_is_read_before_the_inputs_followed_live_and_bad_records_are_dead_lettered() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "md.";
    let t = topics(prefix);
    let (locations, items) = (format!("{prefix}locations"), format!("{prefix}items"));
    let admin = stockwatch::sink::kafka::EventProducer::new(
        stockwatch::sink::kafka::ProducerSettings::new(bootstrap.as_str()),
    )
    .expect("producer");
    admin
        .ensure_topics(
            &t.iter().map(String::as_str).collect::<Vec<_>>(),
            PARTITIONS,
            1,
            Duration::from_secs(20),
        )
        .expect("topics");
    admin
        .ensure_topics_with(
            &[&locations, &items],
            1,
            1,
            &[("cleanup.policy", "compact")],
            Duration::from_secs(20),
        )
        .expect("master-data topics");
    ensure_v2_topics(&bootstrap, prefix);

    // The tables, written before the instance starts: S1 in Tokyo, S2 in Paris; then bad
    // records, one per kind, two of them aimed at S2 (which keeps Paris).
    let p = producer(&bootstrap);
    send(
        &p,
        &locations,
        Some("S1"),
        &location("S1", "store", "Asia/Tokyo"),
    );
    send(
        &p,
        &locations,
        Some("S2"),
        &location("S2", "dc", "Europe/Paris"),
    );
    send(
        &p,
        &items,
        Some("K1"),
        r#"{"sku":"K1","category":"grocery/dry","case_pack":12}"#,
    );
    let bad: [(&str, Option<&str>, String, &str); 6] = [
        (
            "unknown kind",
            Some("S2"),
            location("S2", "kiosk", "UTC"),
            "unknown_value",
        ),
        (
            "unknown time zone",
            Some("S2"),
            location("S2", "store", "Mars/Olympus"),
            "unknown_value",
        ),
        (
            "not JSON",
            Some("S3"),
            "{not json".to_owned(),
            "invalid_json",
        ),
        (
            "no id",
            Some("S3"),
            r#"{"kind":"store","time_zone":"UTC"}"#.to_owned(),
            "schema_violation",
        ),
        (
            "key is not the id",
            Some("S3"),
            location("S4", "store", "UTC"),
            "miskeyed",
        ),
        ("no key", None, location("S5", "store", "UTC"), "miskeyed"),
    ];
    for (_, key, value, _) in &bad {
        send(&p, &locations, *key, value);
    }

    let mut svc = Instance::start(
        "A",
        &bootstrap,
        prefix,
        "md-test",
        dir.path(),
        &[
            ("STOCKWATCH__KAFKA__TOPICS__LOCATIONS", &locations),
            ("STOCKWATCH__KAFKA__TOPICS__ITEMS", &items),
            ("STOCKWATCH__ENGINE__ALLOWED_LATENESS_SECS", "0"),
            ("STOCKWATCH__KAFKA__INPUT_IDLE_MS", "200"),
        ],
    );
    let ready = svc.wait_ready(Duration::from_secs(60), |r| r["ready"] == true);
    assert_eq!(ready["master_data_loading"], false);
    assert!(
        svc.log_count("master data loaded") == 1,
        "the first full read is logged once:\n{}",
        svc.log()
    );
    // ...and ended by reaching each partition's end, not by the quiet-period fallback.
    assert_eq!(svc.log_count("yield nothing more"), 0, "{}", svc.log());

    // Sales of S1 and S2, then later ones that move the watermark past them.
    let t0 = chrono::Utc::now().timestamp_millis() - 2 * 86_400_000;
    for (i, at) in [t0, t0 + 7_200_000].into_iter().enumerate() {
        send(
            &p,
            &t[0],
            Some("S1|K1"),
            &sale(&format!("s1-{i}"), "S1", at),
        );
        send(
            &p,
            &t[0],
            Some("S2|K1"),
            &sale(&format!("s2-{i}"), "S2", at),
        );
    }
    let tokyo = state_when(&mut svc, "S1", |v| v["last_event_hour_local"].is_string());
    assert_eq!(tokyo["time_zone"], "Asia/Tokyo");
    assert_eq!(
        tokyo["last_event_hour_local"],
        local(&tokyo, chrono_tz::Asia::Tokyo),
        "{tokyo}"
    );
    assert!(tokyo["last_event_hour_local"]
        .as_str()
        .is_some_and(|s| s.ends_with("+09:00")));
    let paris = state_when(&mut svc, "S2", |v| v["last_event_hour_local"].is_string());
    assert_eq!(
        paris["time_zone"], "Europe/Paris",
        "the bad records left S2 as it was"
    );
    assert_eq!(
        paris["last_event_hour_local"],
        local(&paris, chrono_tz::Europe::Paris)
    );

    // A time-zone change while the instance runs: S1 moves to New York, no restart.
    send(
        &p,
        &locations,
        Some("S1"),
        &location("S1", "store", "America/New_York"),
    );
    let ny = state_when(&mut svc, "S1", |v| v["time_zone"] == "America/New_York");
    assert_eq!(
        ny["last_event_hour_local"],
        local(&ny, chrono_tz::America::New_York)
    );
    // A tombstone deletes S2: UTC again, no time zone in its view.
    let mut r = BaseRecord::<str, [u8]>::to(&locations).key("S2");
    r.payload = None;
    p.send(r).map_err(|(e, _)| e).expect("tombstone");
    p.flush(Duration::from_secs(10)).expect("flush");
    state_when(&mut svc, "S2", |v| {
        v["last_event_hour"].is_string() && v.get("time_zone").is_none()
    });

    // Each bad record is dead-lettered once, with its reason and original bytes.
    let dead = consume::consume(&bootstrap, &t[5..6], PARTITIONS as i32, bad.len());
    let mut by_offset: BTreeMap<i64, (String, Vec<u8>)> = BTreeMap::new();
    for d in &dead {
        assert_eq!(
            d.header("__connect.errors.topic"),
            Some(locations.as_bytes())
        );
        let text = |h: &str| String::from_utf8_lossy(d.header(h).unwrap_or_default()).into_owned();
        let offset: i64 = text("__connect.errors.offset").parse().expect("offset");
        let again = by_offset.insert(offset, (text("stockwatch.reason"), d.value.clone()));
        assert!(again.is_none(), "offset {offset} dead-lettered twice");
    }
    // In the order written, after the two good locations.
    let got: Vec<(String, Vec<u8>)> = by_offset.into_values().collect();
    let want: Vec<(String, Vec<u8>)> = bad
        .iter()
        .map(|(_, _, v, reason)| ((*reason).to_owned(), v.clone().into_bytes()))
        .collect();
    assert_eq!(got, want);
    // ...and counted like any rejected record.
    let metrics = svc.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    for (reason, n) in [
        ("unknown_value", 2),
        ("invalid_json", 1),
        ("schema_violation", 1),
        ("miskeyed", 2),
    ] {
        let line = format!("stockwatch_dead_letters_total{{reason=\"{reason}\"}} {n}\n");
        assert!(metrics.contains(&line), "no {line:?} in:\n{metrics}");
    }
    let (status, _) = svc.sigterm(Duration::from_secs(30)).expect("exits");
    assert!(status.success());
}

#[test]
fn load_master_and_simulate_v2_write_the_tables() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let locations_csv = dir.path().join("locations.csv");
    let items_csv = dir.path().join("items.csv");
    std::fs::write(
        &locations_csv,
        "location,kind,time_zone,dc,region\nDC-01,dc,America/Chicago,,central\nS-1,store,Asia/Tokyo,DC-01,\n",
    )
    .unwrap();
    std::fs::write(&items_csv, "sku,category,case_pack\nK1,grocery/dry,12\n").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stockwatch"))
            .args(args)
            .env("STOCKWATCH__KAFKA__TOPICS__LOCATIONS", "lm.locations")
            .env("STOCKWATCH__KAFKA__TOPICS__ITEMS", "lm.items")
            .output()
            .expect("run stockwatch")
    };
    let out = run(&[
        "load-master",
        "--bootstrap-servers",
        &bootstrap,
        "--locations",
        locations_csv.to_str().unwrap(),
        "--items",
        items_csv.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = consume::consume(
        &bootstrap,
        &["lm.locations".to_owned(), "lm.items".to_owned()],
        1,
        3,
    );
    let mut want: Vec<(String, Vec<u8>)> =
        stockwatch::master::location_records_csv(&locations_csv).unwrap();
    want.extend(stockwatch::master::item_records_csv(&items_csv).unwrap());
    let mut got: Vec<(String, Vec<u8>)> = got
        .iter()
        .map(|c| (String::from_utf8(c.key.clone()).unwrap(), c.value.clone()))
        .collect();
    // Two topics: their records interleave in any order.
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A bad line stops the load before anything is sent, naming the line.
    std::fs::write(
        &locations_csv,
        "location,kind,time_zone,dc,region\nS-2,store,UTC,,\nS-3,kiosk,UTC,,\n",
    )
    .unwrap();
    let out = run(&[
        "load-master",
        "--bootstrap-servers",
        &bootstrap,
        "--locations",
        locations_csv.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 3") && err.contains("kiosk"),
        "{err}"
    );
    let locations = ["lm.locations".to_owned()];
    let again = consume::consume_until(&bootstrap, &locations, 1, 3, Duration::from_secs(5));
    assert_eq!(again.len(), 2, "the bad file sent nothing");

    // simulate --contract v2 writes the simulated network's tables before its events.
    service::stockwatch(&[
        "simulate",
        "--quiet",
        "--contract",
        "v2",
        "--bootstrap-servers",
        &bootstrap,
        "--topic-prefix",
        "sim.",
        "--partitions",
        "1",
        "--stores",
        "3",
        "--dcs",
        "1",
        "--skus",
        "5",
        "--events",
        "50",
    ]);
    let locations = consume::consume(&bootstrap, &["sim.locations".to_owned()], 1, 4);
    let items = consume::consume(&bootstrap, &["sim.items".to_owned()], 1, 5);
    assert_eq!((locations.len(), items.len()), (4, 5));
    let mut table = stockwatch::master::MasterData::default();
    for l in &locations {
        table
            .apply_location(std::str::from_utf8(&l.key).unwrap(), Some(&l.value))
            .expect("a valid location record");
    }
    assert_eq!(
        table.location("STORE-0001").map(|l| l.time_zone.name()),
        Some("America/New_York")
    );
}
