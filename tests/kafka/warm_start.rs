//! Warm start in the service: `stockwatch run` with `model.initial` (a model trained offline
//! by `evaluate --save-model`) publishes exactly the alerts — ids and bodies but for
//! `emitted_at` — of `stockwatch replay` started from the same file on the same events, also
//! with another model file as `model.challenger` (scored beside it, never alerting).

use std::collections::BTreeMap;

use broker::Broker;
use service::{stockwatch, topics, Instance};

use crate::support::{broker, consume, service};

const PARTITIONS: u32 = 3;
const SIM: [&str; 10] = [
    "--events", "15000", "--stores", "4", "--skus", "30", "--days", "10", "--seed", "11",
];

/// Alert bodies by id, without the processing-time stamp.
fn by_id(values: impl Iterator<Item = serde_json::Value>) -> BTreeMap<String, serde_json::Value> {
    values
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("emitted_at");
            }
            (v["alert_id"].as_str().expect("alert_id").to_owned(), v)
        })
        .collect()
}

#[test]
fn the_service_started_from_a_model_file_publishes_the_warm_replays_alerts() {
    let _one_at_a_time = crate::support::one_at_a_time();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "warm.";
    let t = topics(prefix);
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // Models trained offline at the default horizon (72 h): the champion, and a challenger
    // trained on fewer labels.
    let train = |name: &str, label_sample_hours: &str| {
        let model = d(name);
        stockwatch(&[
            "evaluate",
            "--quiet",
            "--no-plots",
            "--dataset",
            "frn50k",
            "--input",
            "data/frn50k_sample.csv",
            "--out",
            &d(&format!("eval-{name}")),
            "--horizon-hours",
            "72",
            "--label-sample-hours",
            label_sample_hours,
            "--save-model",
            &model,
        ]);
        model
    };
    let model = train("model.json", "1");
    let challenger = train("challenger.json", "6");
    assert_ne!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&challenger).unwrap()
    );

    // The same events to a file and to the broker.
    let file = d("events.jsonl");
    let mut args = vec!["simulate", "--quiet", "--out", &file];
    args.extend_from_slice(&SIM);
    stockwatch(&args);
    let parts = PARTITIONS.to_string();
    let mut args = vec![
        "simulate",
        "--quiet",
        "--bootstrap-servers",
        &bootstrap,
        "--topic-prefix",
        prefix,
        "--partitions",
        &parts,
    ];
    args.extend_from_slice(&SIM);
    stockwatch(&args);

    // Offline, from the file.
    let config = d("warm.toml");
    std::fs::write(&config, format!("[model]\ninitial = {model:?}\n")).unwrap();
    let alerts = d("alerts.jsonl");
    stockwatch(&[
        "replay",
        "--quiet",
        "--input",
        &file,
        "--alerts-out",
        &alerts,
        "--partitions",
        &parts,
        "--config",
        &config,
    ]);
    let want = by_id(
        std::fs::read_to_string(&alerts)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("alert json")),
    );
    assert!(want.len() > 20, "the stream should raise alerts");

    // The service, from the same file (given by the environment this time), with a
    // challenger: its alerts are the champion's alone.
    let svc = Instance::start(
        "A",
        &bootstrap,
        prefix,
        "warm-test",
        dir.path(),
        &[
            ("STOCKWATCH__MODEL__INITIAL", &model),
            ("STOCKWATCH__MODEL__CHALLENGER", &challenger),
        ],
    );
    let got = consume::consume(&bootstrap, &t[4..5], PARTITIONS as i32, want.len());
    let got = by_id(
        got.iter()
            .map(|m| serde_json::from_slice(&m.value).expect("alert json")),
    );
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} expected, {} published; missing e.g. {missing:?}, extra e.g. {extra:?}",
        want.len(),
        got.len()
    );
    for (id, body) in &want {
        assert_eq!(&got[id], body, "alert {id} differs from the warm replay's");
    }

    // The challenger's own quality on /metrics, beside the champion's, and its risk in the
    // state of a key.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = svc.get("/metrics").map(|(_, b)| b).unwrap_or_default();
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let brier = |m: &str| value(&format!("stockwatch_model_rolling_brier{{model=\"{m}\"}} "));
        if let (Some(champion), Some(challenger)) = (brier("champion"), brier("challenger")) {
            assert_ne!(champion, challenger, "two models");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let a = want.values().next().expect("an alert");
    let path = format!(
        "/v1/state/{}/{}",
        a["location"].as_str().unwrap(),
        a["sku"].as_str().unwrap()
    );
    let (status, body) = svc.get(&path).expect("state");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let risk = v["challenger_risk"].as_f64().expect("challenger_risk");
    assert!((0.0..=1.0).contains(&risk), "{v}");
}
