//! Warm start in the service: `stockwatch run` with `model.initial` (a model trained offline
//! by `evaluate --save-model`) publishes exactly the alerts — ids and bodies but for
//! `emitted_at` — of `stockwatch replay` started from the same file on the same events.

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
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "warm.";
    let t = topics(prefix);
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // A model trained offline at the default horizon (72 h).
    let model = d("model.json");
    stockwatch(&[
        "evaluate",
        "--quiet",
        "--no-plots",
        "--dataset",
        "frn50k",
        "--input",
        "data/frn50k_sample.csv",
        "--out",
        &d("eval"),
        "--horizon-hours",
        "72",
        "--label-sample-hours",
        "1",
        "--save-model",
        &model,
    ]);

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

    // The service, from the same file (given by the environment this time).
    let _svc = Instance::start(
        "A",
        &bootstrap,
        prefix,
        "warm-test",
        dir.path(),
        &[("STOCKWATCH__MODEL__INITIAL", &model)],
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
}
