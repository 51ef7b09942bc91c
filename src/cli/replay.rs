//! `stockwatch replay`: the engine over an event file, in micro-batches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::alert::{AlertKind, AlertStatus};
use crate::config::Config;
use crate::engine::{BatchOutput, Engine};
use crate::event::EventType;
use crate::reject::RejectReason;
use crate::sim::truth::{score, AlertPoint, Scores, Truth};
use crate::sink::file::JsonLines;
use crate::source::file::LineBatches;

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Event file, one JSON message per line (`.gz` accepted).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write alerts (JSON lines).
    #[arg(long)]
    pub alerts_out: PathBuf,
    /// Where to write the early alerts (`alerts.early`; JSON lines), to evaluate them offline:
    /// here they are scored in file order, as the service scores them in arrival order.
    #[arg(long)]
    pub early_out: Option<PathBuf>,
    /// Where to write the open-alerts table as the service's `kafka.topics.open_alerts` holds it
    /// at the end: one JSON line `{"key": "{location}|{sku}|{kind}", "value": ALERT}` per key
    /// whose latest confirmed alert is not `resolved`, sorted by key.
    #[arg(long)]
    pub open_alerts_out: Option<PathBuf>,
    /// Where to write rejected lines with their reason (JSON lines).
    #[arg(long)]
    pub rejects_out: Option<PathBuf>,
    /// Where to write the final state of every shard (Arrow IPC file).
    #[arg(long)]
    pub state_out: Option<PathBuf>,
    /// Where to write the run report (JSON).
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// The simulator's ground truth (`simulate --truth-out`): score the alerts against the
    /// true out-of-stock episodes, stores and DCs apart (`scoring` in the report).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Route events to this many shards as Kafka's default partitioner would.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,
    /// Configuration file (layered over the embedded defaults; env overrides both).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Apply the events still inside the lateness window at the end of the file (offline use).
    /// Without it they stay pending, as in a live stream that pauses.
    #[arg(long)]
    pub flush: bool,
    /// Processing clock for the future/ancient checks (RFC 3339). Default: now. Pin it to make
    /// outputs independent of the day the replay runs.
    #[arg(long)]
    pub now: Option<String>,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Master data: locations CSV (header `location,kind,time_zone,dc,region`). The model's
    /// hour of day and day of week are local to each location's time zone; locations not in
    /// the file are UTC.
    #[arg(long)]
    pub locations: Option<PathBuf>,
    /// Master data: items CSV (header `sku,category,case_pack`).
    #[arg(long)]
    pub items: Option<PathBuf>,
}

/// Master data from `--locations` / `--items` files (empty without them).
pub fn load_master(
    locations: Option<&std::path::Path>,
    items: Option<&std::path::Path>,
) -> anyhow::Result<crate::master::MasterData> {
    let mut m = crate::master::MasterData::default();
    if let Some(p) = locations {
        m.load_locations_csv(p)?;
    }
    if let Some(p) = items {
        m.load_items_csv(p)?;
    }
    Ok(m)
}

/// Inventory counts and shipment refusals of a replay (contract v2).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CountReport {
    /// Counts that found the book (recorded on hand) known.
    pub against_book: u64,
    /// Of those, counts below the book (phantom inventory).
    pub below_book: u64,
    /// Σ (book − count) over the counts below the book, units.
    pub phantom_units: f64,
    /// Shipment revisions or cancellations of closed shipments refused at apply (those
    /// refused at ingest are in `rejected_by_reason.shipment_closed`).
    pub shipments_refused: u64,
}

/// The run report (`--report-json`).
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// Input file.
    pub input: String,
    /// Shards.
    pub partitions: u32,
    /// Lines read.
    pub events_read: u64,
    /// Events applied to state.
    pub events_applied: u64,
    /// Events applied by type.
    pub applied_by_type: BTreeMap<&'static str, u64>,
    /// Events still waiting for the watermark at the end (not applied, not rejected).
    pub events_pending: u64,
    /// Rejections by reason.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Rejections in total.
    pub rejected: u64,
    /// Alerts by kind, then status.
    pub alerts: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Alerts in total.
    pub alerts_total: u64,
    /// Early alerts (`alerts.early`) by kind, then outcome: `raised`, `confirmed` and
    /// `retracted` (an early `resolved`); raised minus the other two are still open.
    pub early: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Stockout episodes observed.
    pub stockouts_observed: u64,
    /// Receipts that matched no open shipment (applied to on hand).
    pub receipts_unmatched: u64,
    /// Inventory counts against a known book, and the phantom inventory they found.
    pub counts: CountReport,
    /// Fields outside the contract (ignored).
    pub unknown_fields: u64,
    /// Keys tracked.
    pub keys_tracked: u64,
    /// Heap bytes of per-key state (rows, index, early alerts' slots), key strings, and
    /// shard-level structures.
    pub state_bytes: StateBytes,
    /// Labels learned from, over all shards.
    pub model_updates: u64,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
    /// Lines per second.
    pub events_per_second: f64,
    /// Alerts scored against the simulator's truth (with `--truth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scoring: Option<Scores>,
}

/// State memory, bytes.
#[derive(Debug, Serialize, Default)]
pub struct StateBytes {
    /// Per-key rows and the key index.
    pub per_key: u64,
    /// Key strings and offsets.
    pub key_strings: u64,
    /// Inbound table, reorder buffer, dedupe memory, pending labels, early alerts' shadows.
    pub shard_level: u64,
    /// per_key / keys.
    pub per_key_per_key: f64,
}

/// Runs `replay`.
pub fn run(a: ReplayArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let now_ms = match &a.now {
        Some(s) => crate::decode::parse_time("--now", s)
            .map_err(|(_, d)| anyhow::anyhow!(d))
            .context("--now")?,
        None => chrono::Utc::now().timestamp_millis(),
    };
    let mut src = LineBatches::open(&a.input)
        .with_context(|| format!("cannot open --input {}", a.input.display()))?;
    let mut alerts_out = JsonLines::create(&a.alerts_out)
        .with_context(|| format!("cannot create --alerts-out {}", a.alerts_out.display()))?;
    let mut rejects_out = match &a.rejects_out {
        Some(p) => Some(
            JsonLines::create(p)
                .with_context(|| format!("cannot create --rejects-out {}", p.display()))?,
        ),
        None => None,
    };
    let mut early_out = match &a.early_out {
        Some(p) => Some(
            JsonLines::create(p)
                .with_context(|| format!("cannot create --early-out {}", p.display()))?,
        ),
        None => None,
    };
    let truth: Option<Truth> = match &a.truth {
        Some(p) => {
            let f = std::fs::File::open(p)
                .with_context(|| format!("cannot open --truth {}", p.display()))?;
            Some(
                serde_json::from_reader(std::io::BufReader::new(f))
                    .with_context(|| format!("reading --truth {}", p.display()))?,
            )
        }
        None => None,
    };
    let mut points = Vec::new();
    let mut table = OpenAlerts::default();
    let mut engine = Engine::new(cfg.engine_config(), a.partitions);
    let master = load_master(a.locations.as_deref(), a.items.as_deref())?;
    engine.set_master(std::sync::Arc::new(master));
    let progress = crate::cli::progress::bytes_bar(src.total_bytes(), a.quiet);
    let started = Instant::now();
    let mut out = BatchOutput::default();
    let batch = cfg.engine.batch_max_messages;
    while src.next_batch(batch).context("reading --input")? {
        let first_line = src.lines_read() - src.len() as u64 + 1;
        out.clear();
        engine.process_batch(src.messages(), first_line, now_ms, None, &mut out);
        if truth.is_some() {
            points.extend(out.alerts.iter().filter_map(alert_point));
        }
        alerts_out
            .write_alerts(&out.alerts)
            .context("writing alerts")?;
        if a.open_alerts_out.is_some() {
            table.apply(&out.alerts);
        }
        if let Some(w) = early_out.as_mut() {
            w.write_alerts(&out.early).context("writing early alerts")?;
        }
        if let Some(w) = rejects_out.as_mut() {
            w.write_rejects(&out.rejects, first_line, |i| src.line(i as usize))
                .context("writing rejects")?;
        }
        progress.set(src.bytes_read(), src.lines_read());
    }
    if a.flush {
        out.clear();
        engine.flush(None, &mut out);
        if truth.is_some() {
            points.extend(out.alerts.iter().filter_map(alert_point));
        }
        alerts_out
            .write_alerts(&out.alerts)
            .context("writing alerts")?;
        if a.open_alerts_out.is_some() {
            table.apply(&out.alerts);
        }
        if let Some(w) = early_out.as_mut() {
            w.write_alerts(&out.early).context("writing early alerts")?;
        }
    }
    if let Some(p) = &a.open_alerts_out {
        table
            .write(p)
            .with_context(|| format!("writing --open-alerts-out {}", p.display()))?;
    }
    alerts_out.finish().context("writing alerts")?;
    if let Some(w) = early_out {
        w.finish().context("writing early alerts")?;
    }
    if let Some(w) = rejects_out {
        w.finish().context("writing rejects")?;
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(p) = &a.state_out {
        crate::engine::persist::write_engine_state(&engine, p)
            .with_context(|| format!("writing --state-out {}", p.display()))?;
    }
    let mut report = report(&a, &engine, src.lines_read(), elapsed);
    report.scoring = truth.map(|t| score(&t, &points, cfg.model.horizon_hours));
    if let Some(p) = &a.report_json {
        let f = std::fs::File::create(p)
            .with_context(|| format!("cannot create --report-json {}", p.display()))?;
        serde_json::to_writer_pretty(f, &report).context("writing report")?;
    }
    if !a.quiet {
        print_summary(&report);
    }
    Ok(())
}

/// The open-alerts table as the service writes it (`kafka.topics.open_alerts`): the latest
/// confirmed alert per key, a key removed when its alert resolves.
#[derive(Debug, Default)]
pub struct OpenAlerts {
    rows: BTreeMap<String, crate::alert::Alert>,
}

/// One row of `--open-alerts-out`.
#[derive(Serialize)]
struct TableRow<'a> {
    key: &'a str,
    value: &'a crate::alert::Alert,
}

impl OpenAlerts {
    /// Applies confirmed alerts, in the order they were emitted.
    pub fn apply(&mut self, alerts: &[crate::alert::Alert]) {
        for a in alerts {
            let key = crate::sink::record::open_alert_key(a);
            if crate::sink::record::opens_row(a) {
                self.rows.insert(key, a.clone());
            } else {
                self.rows.remove(&key);
            }
        }
    }

    /// Keys with an open alert.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no alert is open.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the rows as JSON lines, sorted by key.
    pub fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (key, value) in &self.rows {
            serde_json::to_writer(&mut w, &TableRow { key, value })?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        Ok(())
    }
}

/// An alert as the truth scoring sees it.
pub fn alert_point(a: &crate::alert::Alert) -> Option<AlertPoint> {
    Some(AlertPoint {
        location: a.location.clone(),
        sku: a.sku.clone(),
        kind: a.kind,
        status: a.status,
        time_ms: chrono::DateTime::parse_from_rfc3339(&a.event_time)
            .ok()?
            .timestamp_millis(),
    })
}

fn report(a: &ReplayArgs, e: &Engine, lines: u64, elapsed: f64) -> ReplayReport {
    let mut applied = [0u64; EventType::COUNT];
    let mut alerts = [[0u64; 3]; 2];
    let mut early = [[0u64; 3]; 2];
    let (mut stockouts, mut unmatched, mut keys, mut pending, mut updates) = (0, 0, 0, 0, 0);
    let mut bytes = StateBytes::default();
    let mut counts = CountReport::default();
    for s in e.shards() {
        let c = s.counters();
        for (a, v) in applied.iter_mut().zip(c.applied) {
            *a += v;
        }
        for (row, src) in alerts.iter_mut().zip(c.alerts) {
            for (a, v) in row.iter_mut().zip(src) {
                *a += v;
            }
        }
        let ec = s.early().counters();
        for (k, row) in early.iter_mut().enumerate() {
            row[0] += ec.raised[k];
            row[1] += ec.confirmed[k];
            row[2] += ec.retracted[k];
        }
        stockouts += c.stockouts;
        unmatched += c.receipts_unmatched;
        counts.against_book += c.counts_against_book;
        counts.below_book += c.counts_below_book;
        counts.phantom_units += c.phantom_units;
        counts.shipments_refused += c.shipments_refused;
        keys += s.keys() as u64;
        pending += s.pending_events() as u64;
        updates += s.model().updates();
        let (k, st, sh) = s.state_bytes();
        bytes.per_key += k as u64;
        bytes.key_strings += st as u64;
        bytes.shard_level += sh as u64;
    }
    bytes.per_key_per_key = if keys > 0 {
        bytes.per_key as f64 / keys as f64
    } else {
        0.0
    };
    let rejected = e.counters().rejected;
    let kinds = [AlertKind::StockoutRisk, AlertKind::Stockout];
    let statuses = [
        AlertStatus::Raised,
        AlertStatus::Updated,
        AlertStatus::Resolved,
    ];
    ReplayReport {
        input: a.input.display().to_string(),
        partitions: a.partitions,
        events_read: lines,
        events_applied: applied.iter().sum(),
        applied_by_type: EventType::ALL
            .iter()
            .map(|t| (t.as_str(), applied[*t as usize]))
            .collect(),
        events_pending: pending,
        rejected_by_reason: RejectReason::ALL
            .iter()
            .map(|r| (r.as_str(), rejected[r.index()]))
            .collect(),
        rejected: rejected.iter().sum(),
        alerts: kinds
            .iter()
            .map(|k| {
                (
                    k.as_str(),
                    statuses
                        .iter()
                        .map(|s| (s.as_str(), alerts[*k as usize][*s as usize]))
                        .collect(),
                )
            })
            .collect(),
        alerts_total: alerts.iter().flatten().sum(),
        early: kinds
            .iter()
            .map(|k| {
                let row = early[*k as usize];
                (
                    k.as_str(),
                    BTreeMap::from([
                        ("raised", row[0]),
                        ("confirmed", row[1]),
                        ("retracted", row[2]),
                    ]),
                )
            })
            .collect(),
        stockouts_observed: stockouts,
        receipts_unmatched: unmatched,
        counts,
        unknown_fields: e.unknown_fields(),
        keys_tracked: keys,
        state_bytes: bytes,
        model_updates: updates,
        elapsed_seconds: elapsed,
        events_per_second: if elapsed > 0.0 {
            lines as f64 / elapsed
        } else {
            0.0
        },
        scoring: None,
    }
}

fn print_summary(r: &ReplayReport) {
    eprintln!(
        "replayed {} events in {:.2} s ({:.0} events/s) over {} partition(s)",
        r.events_read, r.elapsed_seconds, r.events_per_second, r.partitions
    );
    eprintln!(
        "  applied {} ({}), pending {}, rejected {}",
        r.events_applied,
        r.applied_by_type
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.events_pending,
        r.rejected
    );
    for (k, v) in r.rejected_by_reason.iter().filter(|(_, v)| **v > 0) {
        eprintln!("    {k:<18} {v}");
    }
    eprintln!(
        "  alerts {} — stockout_risk raised {} / updated {} / resolved {}; stockout raised {} / resolved {}",
        r.alerts_total,
        r.alerts["stockout_risk"]["raised"],
        r.alerts["stockout_risk"]["updated"],
        r.alerts["stockout_risk"]["resolved"],
        r.alerts["stockout"]["raised"],
        r.alerts["stockout"]["resolved"],
    );
    eprintln!(
        "  keys {}, state {:.1} MiB ({:.0} B/key + strings {:.1} MiB + shard-level {:.1} MiB), model updates {}",
        r.keys_tracked,
        (r.state_bytes.per_key + r.state_bytes.key_strings + r.state_bytes.shard_level) as f64
            / 1048576.0,
        r.state_bytes.per_key_per_key,
        r.state_bytes.key_strings as f64 / 1048576.0,
        r.state_bytes.shard_level as f64 / 1048576.0,
        r.model_updates
    );
    if let Some(s) = &r.scoring {
        eprintln!(
            "  against the truth (H = {} h; on hand known after day 1: {:.2} % of keys):",
            s.horizon_hours,
            100.0 * s.known_after_first_day
        );
        eprintln!("    stores: {}", s.store.line());
        eprintln!("    DCs:    {}", s.dc.line());
    }
}
