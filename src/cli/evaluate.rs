//! `stockwatch evaluate`: the model, prequentially, on real data, against baselines; writes
//! `report.json`, `details.json` and PNG plots into `--out`. See [`crate::eval`].

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::config::Config;
use crate::eval::dataset::{self, StoreFold};
use crate::eval::metrics::ReliabilityBin;
use crate::eval::report::Report;
use crate::eval::{self as ev, DayPoint, EvalOptions};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetKind {
    /// FreshRetailNet-50K daily rows with hourly sales and hourly stock flags: the published
    /// Parquet files (`.parquet`) or a CSV export.
    Frn50k,
    /// Any `date,location,sku,units` table (needs --simulate-inventory: it has no stock flags).
    DemandDaily,
}

/// Arguments of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Input format.
    #[arg(long, value_enum)]
    pub dataset: DatasetKind,
    /// Input table: CSV (`.gz` accepted), or for `frn50k` also the published Parquet file
    /// (`.parquet`, e.g. `train.parquet` of Dingdong-Inc/FreshRetailNet-50K on Hugging Face).
    #[arg(long)]
    pub input: PathBuf,
    /// Output directory (created): report.json, details.json, *.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Horizon H: the risk is P(out of stock within H hours). Default: the configuration's
    /// `model.horizon_hours` (72 in the embedded defaults).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub horizon_hours: Option<u32>,
    /// One label snapshot per key per this many hours (1: every grid point, the research
    /// setting). Default: the configuration's `model.label_sample_hours` (12).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub label_sample_hours: Option<u32>,
    /// Model replicas: route the series by their Kafka key to this many shards, one model
    /// each, as the service does with the input topics' partitions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
    /// Configuration file (its [model] and [alerts] sections are used, `model.initial`
    /// included; --horizon-hours and --label-sample-hours replace theirs).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the trained model (the state at the end of the data) as a model artifact with
    /// its model card, for `model.initial` (needs --partitions 1: one model that saw all of it).
    #[arg(long, value_name = "FILE")]
    pub save_model: Option<PathBuf>,
    /// Generate shipments, receipts and on hand with an (s, S) policy from the real demand; the
    /// stock flags then come from the simulated shelf.
    #[arg(long)]
    pub simulate_inventory: bool,
    /// Seed of the inventory simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only the stores whose number is R modulo N (`R/N`), e.g. to tune on some stores and
    /// confirm on others.
    #[arg(long, value_name = "R/N")]
    pub stores: Option<String>,
    /// No plots.
    #[arg(long)]
    pub no_plots: bool,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Master data: locations CSV (as `replay --locations`): local hour of day and day of week.
    #[arg(long)]
    pub locations: Option<PathBuf>,
    /// Master data: items CSV (as `replay --items`).
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Add the offline reference: a gradient-boosted model (LightGBM, `tools/reference/
    /// gbdt.py`) trained on other stores' feature rows (--reference-train-stores) and scored on
    /// the scored stores' rows, reported as `reference_gbdt`. Needs --stores and the Python
    /// environment of `tools/reference/setup.sh`.
    #[arg(long)]
    pub reference: bool,
    /// The reference's training stores, `R/N`. Default: the next remainder after --stores
    /// (`--stores 0/8` trains on 1/8).
    #[arg(long, value_name = "R/N")]
    pub reference_train_stores: Option<String>,
    /// Where the feature rows go (Parquet; default `<out>/features.parquet`). Given without
    /// --reference, the rows are written and no reference is run.
    #[arg(long, value_name = "FILE")]
    pub features_out: Option<PathBuf>,
    /// The reference environment's Python.
    #[arg(
        long,
        env = "STOCKWATCH_REFERENCE_PYTHON",
        default_value = "tools/reference/.venv/bin/python"
    )]
    pub reference_python: PathBuf,
    /// The reference script.
    #[arg(long, default_value = "tools/reference/gbdt.py")]
    pub reference_script: PathBuf,
}

/// The reference's training fold: the one given, or the next remainder after the scored one.
fn train_fold(a: &EvaluateArgs, scored: Option<StoreFold>) -> anyhow::Result<Option<StoreFold>> {
    if let Some(t) = a.reference_train_stores.as_deref() {
        let t = StoreFold::parse(t)?;
        if let Some(f) = scored {
            // Disjoint unless one fold's remainder class meets the other's.
            let g = gcd(t.modulus, f.modulus);
            if t.rem % g == f.rem % g {
                anyhow::bail!(
                    "--reference-train-stores {}/{} shares stores with --stores {}/{}",
                    t.rem,
                    t.modulus,
                    f.rem,
                    f.modulus
                );
            }
        }
        return Ok(Some(t));
    }
    if !a.reference {
        return Ok(None);
    }
    let f = scored.context(
        "--reference trains on other stores than the scored ones: give --stores R/N (and \
         optionally --reference-train-stores)",
    )?;
    if f.modulus < 2 {
        anyhow::bail!("--reference needs --stores R/N with N ≥ 2 (other stores to train on)");
    }
    Ok(Some(StoreFold {
        rem: (f.rem + 1) % f.modulus,
        modulus: f.modulus,
    }))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `details.json`: what `report.json` does not hold.
#[derive(Debug, Serialize)]
struct Details {
    input: String,
    store_fold: Option<String>,
    reference_train_stores: Option<String>,
    simulate_inventory: bool,
    seed: u64,
    series: usize,
    days: f64,
    events_applied: u64,
    engine_labels: u64,
    engine_positives: u64,
    engine_rolling_auc: Option<f64>,
    engine_rolling_brier: f64,
    engine_labels_dropped: u64,
    partitions: u32,
    model_version: String,
    model_config: crate::model::ModelConfig,
    /// Each shard's calibration layer at the end of the data (null without one).
    calibration: Vec<serde_json::Value>,
    read_seconds: f64,
    evaluate_seconds: f64,
    reliability: std::collections::BTreeMap<&'static str, Vec<ReliabilityBin>>,
    learning_curve: std::collections::BTreeMap<&'static str, Vec<DayPoint>>,
    plots: Vec<String>,
}

/// Runs `evaluate`.
pub fn run(a: EvaluateArgs) -> anyhow::Result<()> {
    // The configuration as evaluate runs it, checked as such: a `model.initial` must fit the
    // horizon run, whether that comes from the file or from --horizon-hours.
    let cfg = Config::load_adjusted(a.config.as_deref(), |c| {
        if let Some(h) = a.horizon_hours {
            c.model.horizon_hours = h;
        }
        if let Some(s) = a.label_sample_hours {
            c.model.label_sample_hours = s;
        }
    })?;
    let (horizon_hours, label_sample_hours) =
        (cfg.model.horizon_hours, cfg.model.label_sample_hours);
    if a.save_model.is_some() && a.partitions != 1 {
        anyhow::bail!(
            "--save-model writes one model trained on all the series: use --partitions 1 (got {})",
            a.partitions
        );
    }
    let fold = a.stores.as_deref().map(StoreFold::parse).transpose()?;
    let train = train_fold(&a, fold)?;
    let runner = ev::reference::Runner {
        python: a.reference_python.clone(),
        script: a.reference_script.clone(),
    };
    if a.reference {
        // Before the long run, not after it.
        runner.check()?;
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create --out {}", a.out.display()))?;
    let started = Instant::now();
    let total = std::fs::metadata(&a.input)
        .with_context(|| format!("cannot read --input {}", a.input.display()))?
        .len();
    let gz = a.input.extension().is_some_and(|e| e == "gz");
    let bar = crate::cli::progress::bytes_bar((!gz).then_some(total), a.quiet);
    let set = |b: u64| bar.set(b, 0);
    let read = |fold: Option<StoreFold>, set: &dyn Fn(u64)| {
        match a.dataset {
            DatasetKind::Frn50k => dataset::read_frn50k(&a.input, fold, set),
            DatasetKind::DemandDaily => dataset::read_demand_daily(&a.input, fold, set),
        }
        .with_context(|| format!("reading --input {}", a.input.display()))
    };
    let mut panel = read(fold, &set)?;
    bar.finish();
    // The reference's training stores follow the scored series in one panel.
    let train_from = match train {
        Some(t) => {
            let scored = panel.series();
            panel
                .append(read(Some(t), &|_| {})?)
                .context("the training stores' data")?;
            Some(scored)
        }
        None => None,
    };
    let read_seconds = started.elapsed().as_secs_f64();
    if !a.quiet {
        eprintln!(
            "read {} series × {} hours in {read_seconds:.1} s{}",
            panel.series(),
            panel.hours,
            train_from.map_or_else(String::new, |k| format!(
                " ({} of them the reference's training stores)",
                panel.series() - k
            ))
        );
    }
    let opts = EvalOptions {
        horizon_hours,
        label_sample_hours,
        partitions: a.partitions,
        engine: cfg.engine_config(),
        simulate_inventory: a.simulate_inventory,
        seed: a.seed,
        master: std::sync::Arc::new(super::replay::load_master(
            a.locations.as_deref(),
            a.items.as_deref(),
        )?),
        train_from,
    };
    let features_path = a
        .features_out
        .clone()
        .unwrap_or_else(|| a.out.join("features.parquet"));
    let mut features = if a.reference || a.features_out.is_some() {
        Some(ev::reference::FeatureWriter::create(&features_path)?)
    } else {
        None
    };
    let bar = crate::cli::progress::count_bar(panel.hours as u64, "hours", a.quiet);
    let t1 = Instant::now();
    let mut outcome =
        ev::evaluate_with_features(&panel, &opts, features.as_mut(), |done, _| bar.set(0, done))
            .context("evaluating")?;
    bar.finish();
    if let Some(w) = features {
        let (train_rows, scored_rows) = w.finish()?;
        if !a.quiet {
            eprintln!(
                "feature rows: {scored_rows} scored, {train_rows} of the training stores → {}",
                features_path.display()
            );
        }
    }
    if a.reference {
        let scores_path = a.out.join("reference_scores.parquet");
        runner.run(&features_path, &scores_path)?;
        let scores = ev::reference::read_scores(&scores_path)?;
        outcome.add_model(ev::REFERENCE, &scores)?;
    }
    let evaluate_seconds = t1.elapsed().as_secs_f64();
    let name = match (a.dataset, a.simulate_inventory) {
        (DatasetKind::Frn50k, false) => "frn50k",
        (DatasetKind::Frn50k, true) => "frn50k+simulated-inventory",
        (DatasetKind::DemandDaily, _) => "demand-daily+simulated-inventory",
    };
    let report = Report::new(name, horizon_hours, &outcome);
    let path = a.out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let plots = if a.no_plots {
        Vec::new()
    } else {
        let title = format!("{name}, H = {horizon_hours} h");
        ev::plots::draw_all(&a.out, &title, &outcome).context("drawing plots")?
    };
    let model_cfg = ev::engine_config(
        opts.engine,
        horizon_hours,
        label_sample_hours,
        panel.series(),
    )
    .model;
    let model_version = crate::model::build(&model_cfg).version().to_owned();
    if let Some(path) = &a.save_model {
        let online = report
            .models
            .get("online")
            .context("the report has no online model")?;
        let artifact = crate::model::ModelArtifact {
            format: crate::model::artifact::FORMAT,
            model_version: model_version.clone(),
            fingerprint: crate::model::artifact::fingerprint(),
            horizon_hours,
            learner: model_cfg.learner,
            state: outcome.model_states[0].clone(),
            card: crate::model::artifact::ModelCard {
                created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                stockwatch_version: env!("CARGO_PKG_VERSION").to_owned(),
                data: match &a.stores {
                    Some(f) => format!("{} (stores {f})", a.input.display()),
                    None => a.input.display().to_string(),
                },
                series: outcome.series,
                days: outcome.days,
                label_sample_hours,
                labels: outcome.engine_labels,
                positives: outcome.engine_positives,
                metrics: crate::model::artifact::CardMetrics {
                    roc_auc: online.roc_auc,
                    brier: online.brier,
                    ece: online.ece,
                    log_loss: online.log_loss,
                },
            },
        };
        artifact
            .write(path)
            .with_context(|| format!("writing --save-model {}", path.display()))?;
    }
    let details = Details {
        input: a.input.display().to_string(),
        store_fold: a.stores.clone(),
        reference_train_stores: train.map(|t| format!("{}/{}", t.rem, t.modulus)),
        simulate_inventory: a.simulate_inventory,
        seed: a.seed,
        series: outcome.series,
        days: outcome.days,
        events_applied: outcome.events,
        engine_labels: outcome.engine_labels,
        engine_positives: outcome.engine_positives,
        engine_rolling_auc: outcome.engine_rolling_auc,
        engine_rolling_brier: outcome.engine_rolling_brier,
        engine_labels_dropped: outcome.engine_labels_dropped,
        partitions: a.partitions,
        model_version,
        model_config: model_cfg,
        calibration: outcome
            .model_states
            .iter()
            .map(|s| s.get("calibration").cloned().unwrap_or_default())
            .collect(),
        read_seconds,
        evaluate_seconds,
        reliability: outcome
            .names
            .iter()
            .zip(&outcome.models)
            .map(|(m, acc)| (*m, acc.reliability()))
            .collect(),
        learning_curve: outcome
            .names
            .iter()
            .zip(&outcome.daily)
            .map(|(m, days)| {
                (
                    *m,
                    days.iter()
                        .enumerate()
                        .filter(|(_, d)| !d.is_empty())
                        .map(|(i, d)| DayPoint {
                            day: i as u32,
                            roc_auc: d.roc_auc(),
                            brier: d.brier(),
                            n: d.len(),
                        })
                        .collect(),
                )
            })
            .collect(),
        plots,
    };
    let path = a.out.join("details.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&details)?)
        .with_context(|| format!("writing {}", path.display()))?;
    print!("{}", report.table());
    println!(
        "configuration: horizon {horizon_hours} h · one label snapshot per key per \
         {label_sample_hours} h · {} partition(s), one model each{}",
        a.partitions,
        model_cfg
            .initial
            .map_or_else(String::new, |i| format!(" · started from {}", i.path()))
    );
    println!(
        "{} series, {:.0} days, {} events applied, {:.1} s (read {read_seconds:.1} s) → {}",
        outcome.series,
        outcome.days,
        outcome.events,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
