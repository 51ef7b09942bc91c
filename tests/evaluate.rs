//! `stockwatch evaluate` end to end on the embedded FreshRetailNet-50K sample (30 real series):
//! the report's shape, prequential bookkeeping, determinism, and that the model beats the
//! baselines it must beat.

use std::path::Path;

use stockwatch::engine::EngineConfig;
use stockwatch::eval::report::Report;
use stockwatch::eval::{dataset, evaluate, EvalOptions, Outcome};

fn run(horizon_hours: u32, simulate_inventory: bool) -> Outcome {
    let panel = dataset::read_frn50k(Path::new("data/frn50k_sample.csv"), None, |_| {})
        .expect("the embedded sample reads");
    assert_eq!(panel.series(), 30);
    assert_eq!(panel.hours, 90 * 24);
    let opts = EvalOptions {
        horizon_hours,
        engine: EngineConfig::default(),
        simulate_inventory,
        seed: 5,
        master: Default::default(),
    };
    evaluate(&panel, &opts, |_, _| {}).expect("evaluates")
}

#[test]
fn report_has_the_issue_shape_and_the_model_beats_persistence() {
    let o = run(6, false);
    let r = Report::new("frn50k", 6, &o);
    let v = serde_json::to_value(&r).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "alerts",
            "dataset",
            "horizon_hours",
            "models",
            "positives",
            "rows"
        ]
    );
    for m in [
        "online",
        "persistence",
        "days_of_cover",
        "prior",
        "online_no_availability",
    ] {
        let keys: Vec<&str> = v["models"][m]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["brier", "ece", "log_loss", "pr_auc", "roc_auc"],
            "{m}"
        );
    }
    let alerts: Vec<&str> = v["alerts"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        alerts,
        [
            "median_lead_hours",
            "per_1000_keys_per_day",
            "precision",
            "recall"
        ]
    );
    // The grid: in-stock hours whose horizon ends inside the data.
    assert!(r.rows > 30 * 24 * 60 && r.rows < 30 * 24 * 90, "{}", r.rows);
    assert!(r.positives > 0 && r.positives < r.rows);
    // The engine learned from one snapshot per grid point, except the last hour's (no event
    // comes after their horizon to mature them).
    assert!(
        o.engine_labels + 30 >= r.rows,
        "{} < {}",
        o.engine_labels,
        r.rows
    );
    assert!(o.engine_rolling_auc.is_some_and(|a| a > 0.5));
    let online = r.models["online"];
    let persistence = r.models["persistence"];
    assert!(
        online.roc_auc > persistence.roc_auc + 0.05,
        "{online:?} vs {persistence:?}"
    );
    assert!(
        online.brier < persistence.brier,
        "{online:?} vs {persistence:?}"
    );
    assert!(online.ece < 0.05, "{online:?}");
}

#[test]
fn evaluation_is_deterministic() {
    let (a, b) = (run(24, false), run(24, false));
    let (ra, rb) = (Report::new("x", 24, &a), Report::new("x", 24, &b));
    assert_eq!(
        serde_json::to_string(&ra).unwrap(),
        serde_json::to_string(&rb).unwrap()
    );
}

#[test]
fn with_simulated_inventory_the_model_beats_cover_and_prior() {
    let o = run(24, true);
    let r = Report::new("frn50k+simulated-inventory", 24, &o);
    let online = r.models["online"];
    for b in ["days_of_cover", "prior"] {
        let m = r.models[b];
        assert!(online.roc_auc > m.roc_auc, "{b}: {online:?} vs {m:?}");
        assert!(online.brier < m.brier, "{b}: {online:?} vs {m:?}");
    }
}
