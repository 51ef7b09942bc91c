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
        label_sample_hours: 1,
        partitions: 1,
        engine: EngineConfig::default(),
        simulate_inventory,
        seed: 5,
        master: Default::default(),
        train_from: None,
    };
    evaluate(&panel, &opts, |_, _| {}).expect("evaluates")
}

#[test]
fn report_has_the_issue_shape_and_the_model_beats_persistence() {
    let o = run(6, false);
    let r = Report::new("frn50k", 6, &o);
    // 95 % bootstrap intervals (resampling series) around every model's ROC AUC and Brier.
    for (name, m) in &r.models {
        let iv = r.intervals.get(name).expect("an interval per model");
        assert!(
            iv.roc_auc[0] <= iv.roc_auc[1] && iv.brier[0] <= iv.brier[1],
            "{name}: {iv:?}"
        );
        assert!(
            iv.roc_auc[0] - 0.01 <= m.roc_auc && m.roc_auc <= iv.roc_auc[1] + 0.01,
            "{name}: AUC {} outside {iv:?}",
            m.roc_auc
        );
        assert!(iv.roc_auc[1] - iv.roc_auc[0] > 0.0, "{name}: series differ");
    }
    let v = serde_json::to_value(&r).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "alert_budget",
            "alerts",
            "auc_within_hour",
            "dataset",
            "horizon_hours",
            "intervals",
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
        "seasonal_yesterday",
        "seasonal_7d",
        "hour_of_day_frequency",
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
            "lost_units_covered",
            "median_lead_hours",
            "per_1000_keys_per_day",
            "precision",
            "recall"
        ]
    );
    // The budget sweep: one point per budget, the unlimited one equal to the run's alerts, and
    // a tighter budget never raises more, nor catches more stockouts.
    assert_eq!(
        r.alert_budget.len(),
        stockwatch::eval::report::BUDGETS.len()
    );
    let unlimited = r
        .alert_budget
        .iter()
        .find(|b| b.max_raised_per_location_per_day == 0)
        .expect("a point without a limit");
    assert_eq!(unlimited.alerts, r.alerts);
    let capped: Vec<_> = r
        .alert_budget
        .iter()
        .filter(|b| b.max_raised_per_location_per_day > 0)
        .collect();
    for w in capped.windows(2) {
        assert!(w[0].max_raised_per_location_per_day < w[1].max_raised_per_location_per_day);
        assert!(
            w[0].alerts.per_1000_keys_per_day <= w[1].alerts.per_1000_keys_per_day,
            "{w:?}"
        );
    }
    assert!(capped[0].alerts.per_1000_keys_per_day < r.alerts.per_1000_keys_per_day);
    assert!((0.0..=1.0).contains(&r.alerts.lost_units_covered));
    assert!(r.alerts.lost_units_covered > 0.0);
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
    // Within hour of day: defined for every model, and below the pooled AUC for the online
    // model (part of its ranking is the daily cycle).
    for m in r.models.keys() {
        let w = r.auc_within_hour[m];
        assert!((0.0..=1.0).contains(&w), "{m}: {w}");
    }
    assert!(r.auc_within_hour["online"] > 0.6, "{:?}", r.auc_within_hour);
    // The seasonal baselines know the key's flags: better than the base rate.
    for b in ["seasonal_yesterday", "seasonal_7d"] {
        assert!(r.models[b].roc_auc > 0.55, "{b}: {:?}", r.models[b]);
    }
}

#[test]
fn training_stores_are_not_scored_and_an_offline_model_is_added_on_the_scored_points() {
    let all = dataset::read_frn50k(Path::new("data/frn50k_sample.csv"), None, |_| {})
        .expect("the embedded sample reads");
    let opts = EvalOptions {
        horizon_hours: 6,
        label_sample_hours: 1,
        partitions: 1,
        engine: EngineConfig::default(),
        simulate_inventory: false,
        seed: 5,
        master: Default::default(),
        train_from: None,
    };
    let alone = evaluate(&all, &opts, |_, _| {}).expect("evaluates");
    // The same series followed by "training" copies of them: the scored part is unchanged
    // (the training series run through a shard of their own and are not scored).
    let mut panel = all.clone();
    panel.append(all.clone()).expect("same hours");
    let dir = std::env::temp_dir().join(format!("sw-eval-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("features.parquet");
    let mut w = stockwatch::eval::reference::FeatureWriter::create(&path).unwrap();
    let opts = EvalOptions {
        train_from: Some(all.series()),
        ..opts
    };
    let mut o = stockwatch::eval::evaluate_with_features(&panel, &opts, Some(&mut w), |_, _| {})
        .expect("evaluates");
    let (train, scored) = w.finish().unwrap();
    let (ra, rb) = (Report::new("x", 6, &alone), Report::new("x", 6, &o));
    assert_eq!(
        serde_json::to_string(&ra).unwrap(),
        serde_json::to_string(&rb).unwrap()
    );
    assert_eq!(scored, ra.rows);
    assert_eq!(train, ra.rows, "the copies have the same grid");
    assert_eq!(o.points.len() as u64, ra.rows);
    // An offline model scoring the label itself is perfect; one of the wrong length refused.
    let perfect: Vec<f64> = o.points.iter().map(|p| f64::from(u8::from(p.2))).collect();
    assert!(o.add_model("wrong", &perfect[1..]).is_err());
    o.add_model(stockwatch::eval::REFERENCE, &perfect).unwrap();
    let r = Report::new("x", 6, &o);
    assert_eq!(r.models[stockwatch::eval::REFERENCE].roc_auc, 1.0);
    assert_eq!(r.models[stockwatch::eval::REFERENCE].brier, 0.0);
    assert!(r.intervals.contains_key(stockwatch::eval::REFERENCE));
    assert_eq!(r.auc_within_hour[stockwatch::eval::REFERENCE], 1.0);
    std::fs::remove_dir_all(&dir).unwrap();
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

/// Writes the embedded sample's rows as FreshRetailNet-50K publishes them (Parquet, one row per
/// store × product × day, all nineteen columns, the hourly columns as 24-element lists,
/// snappy-compressed), in row groups of 1000 rows.
fn write_published_layout(csv: &Path, out: &Path) {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use std::sync::Arc;

    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (store, product, dt, discount, activity, flags, sales) = (
        at("store_id"),
        at("product_id"),
        at("dt"),
        at("discount"),
        at("activity_flag"),
        at("hours_stock_status"),
        at("hours_sale"),
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let n = rows.len();
    let int = |c: usize| Int64Array::from_iter_values(rows.iter().map(|r| r[c].parse().unwrap()));
    let float =
        |c: usize| Float64Array::from_iter_values(rows.iter().map(|r| r[c].parse().unwrap()));
    let hours_sale: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r[sales].split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    let hours_flags: Vec<Vec<i64>> = rows
        .iter()
        .map(|r| r[flags].bytes().map(|b| i64::from(b - b'0')).collect())
        .collect();
    let constant = |v: i64| Arc::new(Int64Array::from(vec![v; n])) as ArrayRef;
    let weather = |v: f64| Arc::new(Float64Array::from(vec![v; n])) as ArrayRef;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("city_id", constant(0)),
        ("store_id", Arc::new(int(store))),
        ("management_group_id", constant(1)),
        ("first_category_id", constant(2)),
        ("second_category_id", constant(3)),
        ("third_category_id", constant(4)),
        ("product_id", Arc::new(int(product))),
        (
            "dt",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[dt]))),
        ),
        (
            "sale_amount",
            Arc::new(Float64Array::from_iter_values(
                hours_sale.iter().map(|h| h.iter().sum()),
            )),
        ),
        (
            "hours_sale",
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
                hours_sale.iter().map(|h| Some(h.iter().map(|v| Some(*v)))),
            )),
        ),
        (
            "stock_hour6_22_cnt",
            Arc::new(Int64Array::from_iter_values(
                hours_flags.iter().map(|f| f[6..=22].iter().sum()),
            )),
        ),
        (
            "hours_stock_status",
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
                hours_flags.iter().map(|f| Some(f.iter().map(|v| Some(*v)))),
            )),
        ),
        ("discount", Arc::new(float(discount))),
        ("holiday_flag", constant(0)),
        ("activity_flag", Arc::new(int(activity))),
        ("precpt", weather(0.0)),
        ("avg_temperature", weather(18.5)),
        ("avg_humidity", weather(70.0)),
        ("avg_wind_level", weather(1.5)),
    ];
    assert_eq!(columns.len(), 19);
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1000))
        .build();
    let file = std::fs::File::create(out).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn the_published_parquet_layout_gives_the_csv_report() {
    let dir = tempfile::tempdir().unwrap();
    let csv = Path::new("data/frn50k_sample.csv");
    let pq = dir.path().join("train.parquet");
    write_published_layout(csv, &pq);
    let from_csv = dataset::read_frn50k(csv, None, |_| {}).unwrap();
    let from_parquet = dataset::read_frn50k(&pq, None, |_| {}).unwrap();
    assert_eq!(from_parquet.series(), 30);
    assert_eq!(from_parquet, from_csv);
    let opts = EvalOptions {
        horizon_hours: 24,
        label_sample_hours: 1,
        partitions: 1,
        engine: EngineConfig::default(),
        simulate_inventory: false,
        seed: 5,
        master: Default::default(),
        train_from: None,
    };
    let report = |p| {
        let o = evaluate(p, &opts, |_, _| {}).unwrap();
        serde_json::to_string(&Report::new("frn50k", 24, &o)).unwrap()
    };
    assert_eq!(report(&from_parquet), report(&from_csv));
    // The store fold works the same way on both.
    let fold = dataset::StoreFold::parse("1/3").ok();
    assert_eq!(
        dataset::read_frn50k(&pq, fold, |_| {}).unwrap(),
        dataset::read_frn50k(csv, fold, |_| {}).unwrap()
    );
}
