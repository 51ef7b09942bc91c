//! Offline, prequential evaluation of the stockout model on real data (`stockwatch evaluate`).
//!
//! A [`dataset::Panel`] (hourly demand and stock flags per series) becomes the event stream the
//! service would see — for hour `h` of a series: its sales at `h:30`, and the stock flag of hour
//! `h` as an `availability` observation at the end of the hour, `(h+1):00` (with
//! `--simulate-inventory` also shipments and receipts). The events go through the *unchanged*
//! shard ([`crate::engine::Shard`] ingest → watermark → apply → score → delayed labels → alerts)
//! hour by hour in event time; the shard records every scoring ([`Shard::record_scores`]).
//!
//! - **Grid**: every in-stock observation: key *k* at the end of hour *h*, when its flag for
//!   *h* says in stock. The risk scored there used nothing after `(h+1):00`.
//! - **Label**: an out-of-stock flag in hours `h+1 ..= h+H`, i.e. an observation in
//!   `(t, t + H]` — exactly the engine's own delayed label. Grid points whose window runs past
//!   the end of the data are not scored.
//! - The engine learns from a snapshot at every grid point (`label_sample_hours = 1`) once its
//!   horizon has passed in event time: predict first, learn later.
//! - **Baselines** on the same grid, prequential too (their calibration tables and the
//!   no-availability learner see a label only once it has matured): persistence (out of stock
//!   in the last 24 h), a days-of-cover rule (cover < H), the analytic prior alone, and the
//!   online learner without the availability-history features; and three that know the
//!   key's own past stock flags only (each turned into a calibrated frequency the same way):
//!   the seasonal ones, the out-of-stock share of the horizon's window one day earlier and
//!   over the last 7 days, and the key's past out-of-stock share at this hour of day.
//! - **Within hour of day**: ROC AUC is also computed per hour of day and averaged
//!   ([`metrics::within_hour_auc`]): a score that only knows the daily cycle ranks well pooled
//!   and not at all within an hour.
//! - **Alerts**: the engine's own `stockout_risk` alerts, checked against the flags.

pub mod dataset;
pub mod inventory;
pub mod metrics;
pub mod parquet;
pub mod plots;
pub mod reference;
pub mod report;

use std::collections::VecDeque;

use crate::alert::AlertKind;
use crate::decode::{decoded_schema, DecodedBatch};
use crate::engine::{EngineConfig, ScoreRecord, Shard};
use crate::event::EventType;
use crate::model::features::{Features, AVAILABILITY_HISTORY};
use crate::model::RiskModel;
use dataset::{Panel, HOUR_MS};
use inventory::InventoryEvent;
use metrics::Accumulator;

/// Errors of an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A data row is malformed.
    #[error("line {line}: {detail}")]
    Data {
        /// 1-based line number (0: the file as a whole).
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// A row of a Parquet file is malformed.
    #[error("row {row}: {detail}")]
    Row {
        /// 0-based row number in the file.
        row: u64,
        /// What is wrong, naming the column.
        detail: String,
    },
    /// A Parquet file could not be read (not Parquet, corrupt, or an unsupported encoding).
    #[error("{0}: {1}")]
    Parquet(String, String),
    /// The options do not fit together.
    #[error("{0}")]
    Argument(String),
    /// Arrow refused a batch (a bug: the batch follows the decoded schema).
    #[error("building an event batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A plot could not be drawn.
    #[error("plot {0}: {1}")]
    Plot(String, String),
}

/// Bootstrap replicates of the intervals in the report.
pub const BOOTSTRAP_REPLICATES: usize = 200;

/// The models compared, in report order.
pub const MODELS: [&str; 8] = [
    "online",
    "persistence",
    "days_of_cover",
    "prior",
    "online_no_availability",
    "seasonal_yesterday",
    "seasonal_7d",
    "hour_of_day_frequency",
];

/// The name of the offline reference model's row ([`reference`]).
pub const REFERENCE: &str = "reference_gbdt";

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Horizon H of the risk, hours (replaces the engine configuration's).
    pub horizon_hours: u32,
    /// One label snapshot per key per this many hours (replaces the engine configuration's):
    /// the service's `model.label_sample_hours`; 1 snapshots every grid point.
    pub label_sample_hours: u32,
    /// Model replicas: the series are routed to this many shards by their Kafka key, as the
    /// service routes the topics' partitions (one shard, and model, per partition).
    pub partitions: u32,
    /// The engine configuration (see [`engine_config`] for what evaluate changes in it).
    pub engine: EngineConfig,
    /// Simulate inventory (shipments, receipts, on hand) from the demand.
    pub simulate_inventory: bool,
    /// Seed of the simulation.
    pub seed: u64,
    /// Master data (the locations' time zones); empty: UTC.
    pub master: std::sync::Arc<crate::master::MasterData>,
    /// Series from this index on are the offline reference's training stores: they run
    /// through a shard of their own (the online model never learns from them) and are not
    /// scored; only their feature rows are written. `None`: every series is scored.
    pub train_from: Option<usize>,
}

/// Daily quality of one model (the learning curve).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DayPoint {
    /// Day index from the start of the data.
    pub day: u32,
    /// ROC AUC over the grid points of that day (None without both classes).
    pub roc_auc: Option<f64>,
    /// Brier score over them.
    pub brier: f64,
    /// Grid points.
    pub n: u64,
}

/// Everything an evaluation measured.
#[derive(Debug)]
pub struct Outcome {
    /// Names of the models, in report order: [`MODELS`], then any added with
    /// [`Outcome::add_model`].
    pub names: Vec<&'static str>,
    /// Accumulators per model, `names` order.
    pub models: Vec<Accumulator>,
    /// Daily accumulators per model.
    pub daily: Vec<Vec<Accumulator>>,
    /// 95 % bootstrap intervals (resampling series) of ROC AUC and Brier per model.
    pub intervals: Vec<Option<metrics::Interval>>,
    /// Accumulators per model and hour of day (of the scoring time).
    pub by_hour: Vec<Vec<Accumulator>>,
    /// Alert quality.
    pub alerts: report::AlertSummary,
    /// Alert quality at the raise budgets of [`report::BUDGETS`].
    pub alert_budget: Vec<report::BudgetPoint>,
    /// Lead times of the caught stockouts, hours.
    pub lead_hours: Vec<f64>,
    /// Series evaluated.
    pub series: usize,
    /// Days covered.
    pub days: f64,
    /// Events applied by the engine.
    pub events: u64,
    /// Labels the engine's learner learned from.
    pub engine_labels: u64,
    /// Positive labels among them.
    pub engine_positives: u64,
    /// The shard's own rolling prequential ROC AUC at the end (what the service exports; with
    /// several partitions: the mean over the shards that have one).
    pub engine_rolling_auc: Option<f64>,
    /// The shard's own rolling (exponentially weighted) Brier score at the end (with several
    /// partitions: the mean over the shards, weighted by their labels).
    pub engine_rolling_brier: f64,
    /// Label snapshots the shards did not take (their queue was full).
    pub engine_labels_dropped: u64,
    /// The final state of each shard's model ([`RiskModel::export`]), by partition.
    pub model_states: Vec<serde_json::Value>,
    /// The scored grid points in scoring order (series, grid hour, label), kept when feature
    /// rows are written: an offline model's scores of those rows are added with
    /// [`Outcome::add_model`].
    pub points: Vec<(u32, u32, bool)>,
}

/// The engine configuration evaluate runs: the given one with the horizon and the label
/// sampling set, room for every snapshot the label sampling can take (`max_pending_labels` is a
/// memory bound of the service, not a modelling choice), and no early alerts (the report
/// measures the confirmed alerts; early alerts are a latency feature of the live service,
/// tested against the confirmed ones in `tests/early_alerts.rs`).
pub fn engine_config(
    base: EngineConfig,
    horizon_hours: u32,
    label_sample_hours: u32,
    series: usize,
) -> EngineConfig {
    let mut cfg = base;
    cfg.model.horizon_hours = horizon_hours;
    cfg.model.label_sample_hours = label_sample_hours.max(1);
    let per_key = horizon_hours.div_ceil(cfg.model.label_sample_hours) as usize + 2;
    cfg.model.max_pending_labels = cfg.model.max_pending_labels.max(series * per_key);
    cfg.alerts.early = false;
    cfg
}

/// One shard of the evaluation: a partition's model replica, the batch of its events, and
/// which series its key rows are.
struct Part {
    shard: Shard,
    b: BatchBuilder,
    row_series: Vec<u32>,
    unmapped: Vec<usize>,
}

/// Builds the decoded (Arrow) batch of one hour of events, with the decoder's own builders.
struct BatchBuilder {
    b: crate::decode::Builders,
    schema: arrow::datatypes::SchemaRef,
    n: u32,
    id: String,
    ship: String,
}

impl BatchBuilder {
    fn new() -> Self {
        BatchBuilder {
            b: crate::decode::Builders::with_capacity(4096, 64 * 1024),
            schema: decoded_schema(),
            n: 0,
            id: String::new(),
            ship: String::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: EventType,
        tag: char,
        series: usize,
        seq: u64,
        p: &Panel,
        time_ms: i64,
        qty: Option<f64>,
        eta_ms: Option<i64>,
        shipment: Option<u32>,
        in_stock: Option<bool>,
    ) {
        use std::fmt::Write;
        self.id.clear();
        let _ = write!(self.id, "{tag}{series}-{seq}");
        let shipment_id = shipment.map(|s| {
            self.ship.clear();
            let _ = write!(self.ship, "SHP-{series}-{s}");
            self.ship.as_str()
        });
        let e = crate::decode::ValidEvent {
            kind,
            event_id: &self.id,
            location: &p.locations[series],
            sku: &p.skus[series],
            shipment_id,
            qty: qty.unwrap_or(0.0),
            event_time_ms: time_ms,
            eta_ms,
            in_stock,
            sub: None,
        };
        self.b.push(self.n, &e);
        self.n += 1;
    }

    fn finish(&mut self) -> Result<DecodedBatch, EvalError> {
        self.n = 0;
        Ok(DecodedBatch {
            batch: self.b.finish(&self.schema),
        })
    }
}

/// A grid point of a baseline, waiting for its label to mature.
struct Waiting {
    mature_ms: i64,
    y: bool,
    x: Features,
    /// The `online_no_availability` model's margin at the point (its calibration layer learns
    /// from it, as the engine's from a snapshot's).
    margin: f64,
    persistence: bool,
    cover_cell: usize,
    /// Cells of the seasonal (yesterday, 7 days) and hour-of-day tables.
    share_cells: [u8; 3],
}

/// A prequential frequency table: P(y | cell), learned from matured labels only.
#[derive(Debug, Clone, Copy)]
struct Table<const N: usize> {
    n: [f64; N],
    pos: [f64; N],
}

impl<const N: usize> Table<N> {
    fn new() -> Self {
        Table {
            n: [0.0; N],
            pos: [0.0; N],
        }
    }
    fn p(&self, cell: usize) -> f64 {
        (self.pos[cell] + 1.0) / (self.n[cell] + 2.0)
    }
    fn learn(&mut self, cell: usize, y: bool) {
        self.n[cell] += 1.0;
        self.pos[cell] += f64::from(u8::from(y));
    }
}

/// Cells of a share table: the share in percent (0..=100), and one for "no history".
const SHARE_CELLS: usize = 102;

/// The share table's cell of `oos` out-of-stock hours among `of` hours.
fn share_cell(oos: u32, of: u32) -> u8 {
    if of == 0 {
        return (SHARE_CELLS - 1) as u8;
    }
    (100.0 * f64::from(oos) / f64::from(of)).round() as u8
}

/// Per-series counts of the stock flags that make the seasonal baselines O(1) per point.
struct FlagCounts {
    hours: usize,
    /// `cum[s * (hours + 1) + h]`: out-of-stock hours of series `s` among hours `0..h`.
    cum: Vec<u16>,
    /// `same_hour[s * hours + h]`: out-of-stock flags of series `s` at hours `h, h − 24, …`.
    same_hour: Vec<u16>,
}

impl FlagCounts {
    fn new(oos: &[bool], hours: usize) -> Result<Self, EvalError> {
        if hours >= usize::from(u16::MAX) {
            return Err(EvalError::Argument(format!(
                "{hours} hours of data: at most {} fit the seasonal baselines' counters",
                u16::MAX - 1
            )));
        }
        let series = oos.len() / hours.max(1);
        let mut cum = vec![0u16; series * (hours + 1)];
        let mut same_hour = vec![0u16; series * hours];
        for (s, flags) in oos.chunks(hours).enumerate() {
            let c = &mut cum[s * (hours + 1)..(s + 1) * (hours + 1)];
            let d = &mut same_hour[s * hours..(s + 1) * hours];
            for (h, &f) in flags.iter().enumerate() {
                c[h + 1] = c[h] + u16::from(f);
                d[h] = u16::from(f) + if h >= 24 { d[h - 24] } else { 0 };
            }
        }
        Ok(FlagCounts {
            hours,
            cum,
            same_hour,
        })
    }

    /// Out-of-stock hours and hours known of series `s` in hours `a..=b` (clipped to the data).
    fn window(&self, s: usize, a: i64, b: i64) -> (u32, u32) {
        let (a, b) = (a.max(0), b.min(self.hours as i64 - 1));
        if a > b {
            return (0, 0);
        }
        let c = &self.cum[s * (self.hours + 1)..];
        let oos = c[b as usize + 1] - c[a as usize];
        (u32::from(oos), (b - a + 1) as u32)
    }

    /// Cells of the seasonal and hour-of-day tables for grid hour `g` of series `s` (the
    /// window is `g+1 ..= g+H`; only hours up to `g` are known at the scoring): the share of
    /// the window one day earlier, of the windows 1..=7 days earlier pooled, and of the hours of
    /// day of `g + 1` on every past day.
    fn cells(&self, s: usize, g: usize, h: usize) -> [u8; 3] {
        let (g, h) = (g as i64, h as i64);
        let (mut oos7, mut of7) = (0, 0);
        let mut yesterday = 0;
        for d in 1..=7i64 {
            let (o, n) = self.window(s, g + 1 - 24 * d, (g + h - 24 * d).min(g));
            oos7 += o;
            of7 += n;
            if d == 1 {
                yesterday = share_cell(o, n);
            }
        }
        let hod = if g + 1 >= 24 {
            let j = (g + 1 - 24) as usize;
            share_cell(
                u32::from(self.same_hour[s * self.hours + j]),
                (j / 24 + 1) as u32,
            )
        } else {
            share_cell(0, 0)
        };
        [yesterday, share_cell(oos7, of7), hod]
    }
}

/// The accumulators of one model: all points, per day, per bootstrap group, per hour of day.
struct ModelAcc {
    all: Accumulator,
    daily: Vec<Accumulator>,
    boot: Vec<Accumulator>,
    by_hour: Vec<Accumulator>,
}

impl ModelAcc {
    fn new(days: usize) -> Self {
        ModelAcc {
            all: Accumulator::default(),
            daily: (0..days).map(|_| Accumulator::with_bins(1000)).collect(),
            boot: (0..metrics::BOOTSTRAP_GROUPS)
                .map(|_| Accumulator::with_bins(metrics::BOOTSTRAP_BINS))
                .collect(),
            by_hour: (0..24)
                .map(|_| Accumulator::with_bins(metrics::HOUR_BINS))
                .collect(),
        }
    }

    /// One scored grid point: series `s`, grid hour `g` (scored at the end of hour `g`).
    fn push(&mut self, p: f64, y: bool, s: usize, g: usize) {
        self.all.push(p, y);
        if let Some(d) = self.daily.get_mut(g / 24) {
            d.push(p, y);
        }
        self.boot[metrics::bootstrap_group(s)].push(p, y);
        self.by_hour[(g + 1) % 24].push(p, y);
    }
}

/// Hour (from the panel start) of the first out-of-stock flag after hour `h`, per series and
/// hour: `next[s][h]`, or `usize::MAX`.
fn next_oos(oos: &[bool], hours: usize) -> Vec<u32> {
    let mut next = vec![u32::MAX; oos.len()];
    for (flags, out) in oos.chunks(hours).zip(next.chunks_mut(hours)) {
        let mut n = u32::MAX;
        for h in (0..hours).rev() {
            out[h] = n;
            if flags[h] {
                n = h as u32;
            }
        }
    }
    next
}

/// `master` with the panel's category paths as its item table (the engine's category pools),
/// unless it has an item table already (`--items`).
fn with_categories(
    master: &std::sync::Arc<crate::master::MasterData>,
    categories: &[(String, String)],
) -> Result<std::sync::Arc<crate::master::MasterData>, EvalError> {
    if categories.is_empty() || master.len().1 > 0 {
        return Ok(master.clone());
    }
    let mut m = crate::master::MasterData::clone(master);
    for (sku, category) in categories {
        let record = serde_json::json!({ "sku": sku, "category": category }).to_string();
        m.apply_item(sku, Some(record.as_bytes()))
            .map_err(|e| EvalError::Argument(format!("item {sku:?}: {e}")))?;
    }
    Ok(std::sync::Arc::new(m))
}

/// Runs the evaluation. `progress(hours_done, hours_total)` is called once per hour of data.
pub fn evaluate(
    panel: &Panel,
    opts: &EvalOptions,
    progress: impl FnMut(u64, u64),
) -> Result<Outcome, EvalError> {
    evaluate_with_features(panel, opts, None, progress)
}

/// [`evaluate`], also writing every grid point's feature row (scored series, and the training
/// series of [`EvalOptions::train_from`]) to `features`.
pub fn evaluate_with_features(
    panel: &Panel,
    opts: &EvalOptions,
    mut features: Option<&mut reference::FeatureWriter>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Outcome, EvalError> {
    let (panel, inventory) = if opts.simulate_inventory {
        let (p, ev) = inventory::simulate(panel, opts.seed);
        (std::borrow::Cow::Owned(p), ev)
    } else {
        if panel.oos.is_none() {
            return Err(EvalError::Argument(
                "this dataset has no stock flags: evaluate it with --simulate-inventory".into(),
            ));
        }
        (std::borrow::Cow::Borrowed(panel), Vec::new())
    };
    let panel = panel.as_ref();
    let oos = panel.oos.as_deref().unwrap_or(&[]);
    let (n, hours) = (panel.series(), panel.hours);
    let h_hours = opts.horizon_hours.max(1);
    let horizon_ms = i64::from(h_hours) * HOUR_MS;
    let cfg = engine_config(opts.engine, h_hours, opts.label_sample_hours, n);
    let partitions = opts.partitions.max(1);
    let train_from = opts.train_from.filter(|&k| k < n);
    // The training series' shard (the last one): its model is never read.
    let train_part = train_from.map(|_| partitions);
    let master = with_categories(&opts.master, &panel.categories)?;
    let mut parts: Vec<Part> = (0..partitions + u32::from(train_from.is_some()))
        .map(|_| {
            let mut shard = Shard::new(cfg);
            shard.set_master(master.clone());
            shard.record_scores(true);
            Part {
                shard,
                b: BatchBuilder::new(),
                row_series: Vec::new(),
                unmapped: Vec::new(),
            }
        })
        .collect();
    // Each series to the shard of its Kafka partition (the engine's routing, `partition.rs`).
    let mut key = Vec::new();
    let part_of: Vec<u32> = (0..n)
        .map(|s| {
            if let (Some(k), Some(tp)) = (train_from, train_part) {
                if s >= k {
                    return tp;
                }
            }
            if partitions == 1 {
                return 0;
            }
            key.clear();
            key.extend_from_slice(panel.locations[s].as_bytes());
            key.push(crate::event::KEY_SEPARATOR);
            key.extend_from_slice(panel.skus[s].as_bytes());
            crate::partition::partition_for_key(&key, partitions)
        })
        .collect();
    for (s, &p) in part_of.iter().enumerate() {
        parts[p as usize].unmapped.push(s);
    }
    // The baseline learner starts at the prior whatever `model.initial` says.
    let mut shadow: Box<dyn RiskModel> = crate::model::build(&crate::model::ModelConfig {
        initial: None,
        ..cfg.model
    });
    let next = next_oos(oos, hours);
    let days = hours.div_ceil(24);
    let counts = FlagCounts::new(oos, hours)?;
    let mut accs: Vec<ModelAcc> = MODELS.iter().map(|_| ModelAcc::new(days)).collect();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let (mut persistence, mut cover, mut base) =
        (Table::<3>::new(), Table::<3>::new(), Table::<1>::new());
    let mut shares = [Table::<SHARE_CELLS>::new(); 3];
    // Alerts are judged on the scored series only (the training ones come after them).
    let scored_series = train_from.unwrap_or(n);
    let mut alerts_state = report::AlertTracker::new(scored_series);
    let mut rejects = Vec::new();
    let mut alerts = Vec::new();
    let mut records: Vec<(u32, ScoreRecord)> = Vec::new();
    let mut inv = inventory.iter().peekable();
    let doc_limit = f64::from(h_hours) / 24.0;
    let mut points = Vec::new();
    // A record's grid point: (series, hour g whose flag said in stock, label), or None when
    // the record is not one (not an in-stock observation, or its window runs past the data:
    // the label is unknown).
    let grid_point = |part: &Part, r: &ScoreRecord| -> Option<(usize, usize, bool)> {
        if r.kind != EventType::Availability || r.in_stockout {
            return None;
        }
        let s = *part.row_series.get(r.row as usize)? as usize;
        let bucket = ((r.time_ms - panel.start_ms) / HOUR_MS) as usize;
        if s >= n || bucket == 0 || bucket > hours {
            return None;
        }
        let g = bucket - 1;
        if oos[s * hours + g] || g + h_hours as usize >= hours {
            return None;
        }
        Some((s, g, next[s * hours + g] as usize <= g + h_hours as usize))
    };

    // Hour bucket t holds the observation of hour t-1 at t:00, the inventory events of hour t,
    // and the sales of hour t at t:30; bucket `hours` holds the last observations only.
    for t in 0..=hours {
        let t0 = panel.start_ms + t as i64 * HOUR_MS;
        if t > 0 {
            for s in 0..n {
                let flag = oos[s * hours + t - 1];
                parts[part_of[s] as usize].b.push(
                    EventType::Availability,
                    'a',
                    s,
                    t as u64,
                    panel,
                    t0,
                    None,
                    None,
                    None,
                    Some(!flag),
                );
            }
        }
        while let Some(e) = inv.next_if(|e| e.time_ms < t0 + HOUR_MS) {
            let InventoryEvent {
                time_ms,
                series,
                receipt,
                qty,
                eta_ms,
                shipment,
            } = *e;
            let s = series as usize;
            let ship = (shipment != u32::MAX).then_some(shipment);
            if receipt {
                parts[part_of[s] as usize].b.push(
                    EventType::Receipt,
                    'r',
                    s,
                    u64::from(shipment),
                    panel,
                    time_ms,
                    Some(qty),
                    None,
                    ship,
                    None,
                );
            } else {
                parts[part_of[s] as usize].b.push(
                    EventType::Shipment,
                    'h',
                    s,
                    u64::from(shipment),
                    panel,
                    time_ms,
                    Some(qty),
                    Some(eta_ms),
                    ship,
                    None,
                );
            }
        }
        if t < hours {
            for s in 0..n {
                let q = panel.sales[s * hours + t];
                if q > 0.0 {
                    parts[part_of[s] as usize].b.push(
                        EventType::Sale,
                        's',
                        s,
                        t as u64,
                        panel,
                        t0 + 30 * 60_000,
                        Some(f64::from(q)),
                        None,
                        None,
                        None,
                    );
                }
            }
        }
        records.clear();
        for (p, part) in parts.iter_mut().enumerate() {
            let batch = part.b.finish()?;
            rejects.clear();
            part.shard.ingest(&batch, u64::from, &mut rejects);
            if let Some(r) = rejects.first() {
                return Err(EvalError::Argument(format!(
                    "the engine rejected a generated event ({:?}: {}): a bug",
                    r.reason, r.detail
                )));
            }
            if !part.unmapped.is_empty() {
                let (shard, row_series) = (&part.shard, &mut part.row_series);
                part.unmapped.retain(|&s| {
                    match shard.row_of(&panel.locations[s], &panel.skus[s]) {
                        Some(row) => {
                            let row = row as usize;
                            if row_series.len() <= row {
                                row_series.resize(row + 1, u32::MAX);
                            }
                            row_series[row] = s as u32;
                            false
                        }
                        None => true,
                    }
                });
            }
            alerts.clear();
            part.shard.advance(t == hours, None, &mut alerts);
            records.extend(part.shard.drain_scores().map(|r| (p as u32, r)));
            for a in &alerts {
                if a.kind != AlertKind::StockoutRisk || Some(p as u32) == train_part {
                    continue;
                }
                let row = part.shard.row_of(&a.location, &a.sku);
                let s = row.and_then(|r| part.row_series.get(r as usize).copied());
                if let Some(s) = s.filter(|&s| s != u32::MAX) {
                    let ms = crate::decode::parse_time("event_time", &a.event_time).unwrap_or(0);
                    let value = crate::alert::raise_value(a.expected_lost_units, a.risk);
                    alerts_state.on_alert(s as usize, ms, a.status, value);
                }
            }
        }
        // With several shards the records of one hour come shard by shard, not in time order:
        // a baseline label is learned only once it matured before the point scored, either way.
        for (p, r) in &records {
            if Some(*p) == train_part {
                // A training store's grid point: its feature row only.
                if let Some(w) = features.as_deref_mut() {
                    if let Some((s, g, y)) = grid_point(&parts[*p as usize], r) {
                        let loc = &panel.locations[s];
                        w.push(
                            reference::Split::Train,
                            reference::store_number(loc),
                            s as u32,
                            g as u32,
                            y,
                            &r.x,
                        )?;
                    }
                }
                continue;
            }
            // Matured labels of the baselines first: strictly older than the horizon.
            while let Some(w) = waiting.front() {
                if w.mature_ms >= r.time_ms {
                    break;
                }
                if let Some(w) = waiting.pop_front() {
                    shadow.learn_calibration(w.margin, w.y);
                    shadow.learn(&w.x, w.y);
                    persistence.learn(usize::from(w.persistence), w.y);
                    cover.learn(w.cover_cell, w.y);
                    base.learn(0, w.y);
                    for (t, &c) in shares.iter_mut().zip(&w.share_cells) {
                        t.learn(usize::from(c), w.y);
                    }
                }
            }
            let Some((s, g, y)) = grid_point(&parts[*p as usize], r) else {
                continue;
            };
            if let Some(w) = features.as_deref_mut() {
                let loc = &panel.locations[s];
                w.push(
                    reference::Split::Score,
                    reference::store_number(loc),
                    s as u32,
                    g as u32,
                    y,
                    &r.x,
                )?;
                points.push((s as u32, g as u32, y));
            }
            let from = (s * hours + g).saturating_sub(23).max(s * hours);
            let persist = oos[from..=s * hours + g].iter().any(|&o| o);
            let cover_cell = match r.days_of_cover {
                None => 0,
                Some(d) if f64::from(d) < doc_limit => 1,
                Some(_) => 2,
            };
            let mut x_noav = r.x;
            for &i in AVAILABILITY_HISTORY {
                x_noav[i] = 0.0;
            }
            let share_cells = counts.cells(s, g, h_hours as usize);
            let (shadow_risk, shadow_margin) = shadow.score_margin(&x_noav);
            let scores: [f64; MODELS.len()] = [
                f64::from(r.risk),
                persistence.p(usize::from(persist)),
                cover.p(cover_cell),
                match r.prior {
                    Some(p) => f64::from(p),
                    None => base.p(0),
                },
                shadow_risk,
                shares[0].p(usize::from(share_cells[0])),
                shares[1].p(usize::from(share_cells[1])),
                shares[2].p(usize::from(share_cells[2])),
            ];
            for (acc, &p) in accs.iter_mut().zip(&scores) {
                acc.push(p, y, s, g);
            }
            waiting.push_back(Waiting {
                mature_ms: r.time_ms + horizon_ms,
                y,
                x: x_noav,
                margin: shadow_margin,
                persistence: persist,
                cover_cell,
                share_cells,
            });
        }
        progress(t as u64, hours as u64);
    }
    // Units a series loses per out-of-stock hour: its mean sales per in-stock hour.
    let lost_per_hour: Vec<f64> = (0..scored_series)
        .map(|s| {
            let (flags, sales) = (
                &oos[s * hours..(s + 1) * hours],
                &panel.sales[s * hours..(s + 1) * hours],
            );
            let (sum, n) = flags
                .iter()
                .zip(sales)
                .filter(|(&f, _)| !f)
                .fold((0.0, 0u32), |(a, n), (_, &q)| (a + f64::from(q), n + 1));
            sum / f64::from(n.max(1))
        })
        .collect();
    let (summary, lead_hours) =
        alerts_state.finish(oos, hours, panel.start_ms, h_hours, &lost_per_hour);
    let mut location_index = std::collections::HashMap::new();
    let location_of: Vec<u32> = (0..scored_series)
        .map(|s| {
            let next = location_index.len() as u32;
            *location_index
                .entry(panel.locations[s].as_str())
                .or_insert(next)
        })
        .collect();
    let alert_budget = alerts_state.budget_sweep(
        &location_of,
        &report::BUDGETS,
        oos,
        hours,
        panel.start_ms,
        h_hours,
        &lost_per_hour,
    );
    let mut events = 0;
    let (mut labels, mut positives, mut dropped) = (0, 0, 0);
    let (mut auc_sum, mut auc_n, mut brier_sum) = (0.0, 0u32, 0.0);
    for part in &parts[..partitions as usize] {
        let sh = &part.shard;
        events += sh.counters().applied.iter().sum::<u64>();
        let q = sh.quality();
        labels += q.labels;
        positives += q.positives;
        brier_sum += q.brier * q.labels as f64;
        dropped += sh.state().labels.dropped;
        if let Some(a) = sh.rolling_auc() {
            auc_sum += a;
            auc_n += 1;
        }
    }
    let mut o = Outcome {
        points,
        names: Vec::new(),
        models: Vec::new(),
        daily: Vec::new(),
        intervals: Vec::new(),
        by_hour: Vec::new(),
        alerts: summary,
        alert_budget,
        lead_hours,
        series: scored_series,
        days: hours as f64 / 24.0,
        events,
        engine_labels: labels,
        engine_positives: positives,
        engine_rolling_auc: (auc_n > 0).then(|| auc_sum / f64::from(auc_n)),
        engine_rolling_brier: brier_sum / labels.max(1) as f64,
        engine_labels_dropped: dropped,
        model_states: parts[..partitions as usize]
            .iter()
            .map(|p| p.shard.model().export())
            .collect(),
    };
    for (name, acc) in MODELS.into_iter().zip(accs) {
        o.push_model(name, acc);
    }
    Ok(o)
}

impl Outcome {
    fn push_model(&mut self, name: &'static str, acc: ModelAcc) {
        self.names.push(name);
        self.intervals
            .push(metrics::bootstrap(&acc.boot, BOOTSTRAP_REPLICATES, 0x5eed));
        self.models.push(acc.all);
        self.daily.push(acc.daily);
        self.by_hour.push(acc.by_hour);
    }

    /// Adds a model scored offline: `scores[i]` is its probability at `points[i]` (the order
    /// the feature rows were written in), with the same metrics and intervals as the others.
    pub fn add_model(&mut self, name: &'static str, scores: &[f64]) -> Result<(), EvalError> {
        if scores.len() != self.points.len() {
            return Err(EvalError::Argument(format!(
                "{name}: {} scores for {} scored grid points",
                scores.len(),
                self.points.len()
            )));
        }
        let mut acc = ModelAcc::new(self.daily.first().map_or(0, Vec::len));
        for (&(s, g, y), &p) in self.points.iter().zip(scores) {
            acc.push(p, y, s as usize, g as usize);
        }
        self.push_model(name, acc);
        Ok(())
    }

    /// ROC AUC within hour of day of each model, `names` order.
    pub fn within_hour_auc(&self) -> Vec<Option<f64>> {
        self.by_hour
            .iter()
            .map(|h| metrics::within_hour_auc(h))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_oos_per_series() {
        let oos = [false, true, false, false, false, false, true, false];
        let n = next_oos(&oos, 4);
        assert_eq!(n[0], 1);
        assert_eq!(n[1], u32::MAX);
        assert_eq!(&n[4..], &[2, 2, u32::MAX, u32::MAX]);
    }
}
