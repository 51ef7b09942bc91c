//! `stockwatch simulate`: the simulator's records to a JSON-lines file, or produced to the four
//! input topics of a Kafka cluster.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{ArgGroup, Args};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::cli::progress::{count_bar, Progress};
use crate::sim::{
    BadKind, Contract, DemandSource, SimConfig, SimError, SimRecord, SimStats, Simulator, Topic,
    V2Config,
};
use crate::sink::kafka::{EventProducer, ProducerSettings};

const HOUR_MS: i64 = 3_600_000;
/// Progress is redrawn (and delivery reports served) every this many records.
const PROGRESS_EVERY: u64 = 4096;

/// Arguments of `simulate`.
///
/// Simulates a network of stores and distribution centres selling and replenishing SKUs hour
/// by hour, and emits the sale, shipment, receipt and availability events of the input
/// contract, roughly in event-time order, optionally mixed with duplicates, late events and bad
/// records. The same flags always give the same records, byte for byte.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("destination").required(true).args(["out", "bootstrap_servers"])),
    after_help = "Examples:\n  \
        stockwatch simulate --out events.jsonl.gz --days 7 --bad-ratio 0.01 --duplicate-ratio 0.01\n  \
        stockwatch simulate --bootstrap-servers 127.0.0.1:19092 --partitions 8 --rate 5000"
)]
pub struct SimulateArgs {
    /// Write the records' values to this file, one per line (JSON lines; gzip if the name ends
    /// in `.gz`). The input of `stockwatch replay`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Produce to Kafka instead of a file: `host:port[,host:port…]`. Each record goes to
    /// `{topic-prefix}{sales|shipments|receipts|availability}` with the key `location|sku`;
    /// missing topics are created.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Kafka")]
    pub bootstrap_servers: Option<String>,
    /// Stop after this many records (bad, duplicate and late ones included). Default: all the
    /// records of `--days`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub events: Option<u64>,
    /// Number of stores (`STORE-0001`, …).
    #[arg(long, value_name = "S", default_value_t = SimConfig::default().stores)]
    pub stores: u32,
    /// Number of distribution centres (`DC-01`, …) between the supplier and the stores; 0
    /// replenishes stores from the supplier directly.
    #[arg(long, value_name = "N", default_value_t = SimConfig::default().dcs)]
    pub dcs: u32,
    /// Number of SKUs (`SKU-00001`, …), each stocked at every store and DC.
    #[arg(long, value_name = "K", default_value_t = SimConfig::default().skus)]
    pub skus: u32,
    /// Days of event time to simulate.
    #[arg(long, value_name = "D", default_value_t = SimConfig::default().days)]
    pub days: u32,
    /// Seed of every random draw.
    #[arg(long, value_name = "X", default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// Where demand comes from: `synthetic` (drawn per SKU), or `frn50k-sample` (each SKU
    /// follows a real store-product series of the FreshRetailNet-50K sample built into the
    /// binary, Dingdong Inc., CC BY 4.0: daily demand, hour-of-day shares, promotions and
    /// discounts).
    #[arg(long, value_name = "SOURCE", value_enum, default_value_t = SimConfig::default().demand)]
    pub demand: DemandSource,
    /// Fraction of records that are bad (invalid JSON, missing fields, zero quantities, …,
    /// cycling through every kind); below 1.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = ratio)]
    pub bad_ratio: f64,
    /// Fraction of good events re-sent verbatim up to 45 minutes later (to be deduplicated).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = ratio)]
    pub duplicate_ratio: f64,
    /// Fraction of good events held back until the stream is `--late-delay-ms` past them (to
    /// be rejected as late).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = ratio)]
    pub late_ratio: f64,
    /// How far behind the stream late events are emitted, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = SimConfig::default().late_delay_ms)]
    pub late_delay_ms: i64,
    /// Input contract: `v1` (sale, shipment, receipt, availability; every key starts with a
    /// receipt of its stock) or `v2` (also nightly snapshots, cycle counts, adjustments,
    /// shipment revisions and cancellations; the run starts with stock on the shelves; stores
    /// keep US local time).
    #[arg(long, value_name = "V", value_enum, default_value_t = Contract::V1)]
    pub contract: Contract,
    /// v2: share of locations whose ERP sends a nightly on-hand snapshot (the book at 03:00
    /// local time, and at the start of the run).
    #[arg(long, value_name = "P", default_value_t = V2Config::default().snapshot_share, value_parser = ratio, help_heading = "Contract v2")]
    pub snapshot_share: f64,
    /// v2: mean days between two cycle counts of a store key (0: none).
    #[arg(long, value_name = "DAYS", default_value_t = V2Config::default().cycle_count_days, help_heading = "Contract v2")]
    pub cycle_count_days: f64,
    /// v2: share of shrink recorded as `shrink` adjustments.
    #[arg(long, value_name = "P", default_value_t = V2Config::default().shrink_recorded_share, value_parser = ratio, help_heading = "Contract v2")]
    pub shrink_recorded_share: f64,
    /// v2: share of late deliveries announced by a shipment revision (new ETA).
    #[arg(long, value_name = "P", default_value_t = V2Config::default().eta_revision_share, value_parser = ratio, help_heading = "Contract v2")]
    pub eta_revision_share: f64,
    /// v2: share of supplier shipments cancelled.
    #[arg(long, value_name = "P", default_value_t = V2Config::default().cancel_share, value_parser = ratio, help_heading = "Contract v2")]
    pub cancel_share: f64,
    /// v2: share of supplier shipments short-shipped (a revision with a smaller quantity
    /// before the ETA; the receipt brings that).
    #[arg(long, value_name = "P", default_value_t = V2Config::default().short_share, value_parser = ratio, help_heading = "Contract v2")]
    pub short_share: f64,
    /// v2: chance per store key and day of a store-to-store transfer when it runs low.
    #[arg(long, value_name = "P", default_value_t = V2Config::default().transfer_chance, value_parser = ratio, help_heading = "Contract v2")]
    pub transfer_chance: f64,
    /// Write the network's locations as CSV (`location,kind,time_zone,dc,region`), for
    /// `replay --locations`.
    #[arg(long, value_name = "FILE")]
    pub locations_out: Option<PathBuf>,
    /// Write the SKUs as CSV (`sku,category,case_pack`), for `replay --items`.
    #[arg(long, value_name = "FILE")]
    pub items_out: Option<PathBuf>,
    /// Write the world's ground truth (every true out-of-stock episode, the DCs, the share of
    /// keys known after the first day) as JSON, to score alerts with `replay --truth`.
    #[arg(long, value_name = "FILE")]
    pub truth_out: Option<PathBuf>,
    /// Record the ground truth even without `--truth-out` (for callers of [`produce`]).
    #[arg(skip)]
    pub record_truth: bool,
    /// Start of event time (RFC 3339). Default: 2026-01-05T00:00:00Z, a Monday.
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339_ms)]
    pub start: Option<i64>,
    /// Prefix of the four topic names.
    #[arg(
        long,
        value_name = "P",
        default_value = "stockwatch.",
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub topic_prefix: String,
    /// Partitions of each topic it creates; existing topics must have this many (the input
    /// topics are co-partitioned).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=100_000),
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub partitions: u32,
    /// Replication factor of the topics it creates.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=100),
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub replication_factor: u32,
    /// Produce at most this many records per second (token bucket). Default: as fast as the
    /// cluster takes them.
    #[arg(
        long,
        value_name = "EVENTS_PER_SEC",
        value_parser = positive,
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub rate: Option<f64>,
    /// Give up when the cluster has not answered within this many seconds: while creating
    /// the topics, and when waiting for the last records to be acknowledged at the end.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..),
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub timeout_secs: u64,
    /// Extra librdkafka producer property, by its own name (repeatable), e.g.
    /// `-X security.protocol=SASL_SSL`. Overrides the defaults (murmur2_random partitioner,
    /// idempotence, linger.ms=5, compression.type=lz4).
    #[arg(
        short = 'X',
        long = "producer-property",
        value_name = "KEY=VALUE",
        value_parser = key_value,
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub producer_properties: Vec<(String, String)>,
    /// No progress line and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

fn ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("expected a number between 0 and 1".to_owned()),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive number".to_owned()),
    }
}

fn rfc3339_ms(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("expected an RFC 3339 time like 2026-01-05T00:00:00Z ({e})"))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

impl SimulateArgs {
    /// The simulator configuration the flags describe.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            stores: self.stores,
            dcs: self.dcs,
            skus: self.skus,
            days: self.days,
            seed: self.seed,
            bad_ratio: self.bad_ratio,
            duplicate_ratio: self.duplicate_ratio,
            late_ratio: self.late_ratio,
            late_delay_ms: self.late_delay_ms,
            start_ms: self.start.unwrap_or(SimConfig::default().start_ms),
            max_events: self.events,
            demand: self.demand,
            contract: self.contract,
            v2: V2Config {
                snapshot_share: self.snapshot_share,
                cycle_count_days: self.cycle_count_days,
                shrink_recorded_share: self.shrink_recorded_share,
                eta_revision_share: self.eta_revision_share,
                cancel_share: self.cancel_share,
                short_share: self.short_share,
                transfer_chance: self.transfer_chance,
            },
            record_truth: self.record_truth || self.truth_out.is_some(),
        }
    }
}

impl clap::ValueEnum for Contract {
    fn value_variants<'a>() -> &'a [Self] {
        &Contract::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            Contract::V1 => "sale, shipment, receipt and availability only",
            Contract::V2 => "also inventory counts, adjustments, revisions and cancellations",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

impl clap::ValueEnum for DemandSource {
    fn value_variants<'a>() -> &'a [Self] {
        &DemandSource::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            DemandSource::Synthetic => "synthetic rates, profiles and promotions",
            DemandSource::Frn50kSample => {
                "real hourly sales of FreshRetailNet-50K (Dingdong Inc., CC BY 4.0)"
            }
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

/// The flag behind a [`SimConfig`] field.
fn flag(field: &str) -> &'static str {
    match field {
        "stores" => "--stores",
        "dcs" => "--dcs",
        "skus" => "--skus",
        "days" => "--days",
        "bad_ratio" => "--bad-ratio",
        "duplicate_ratio" => "--duplicate-ratio",
        "late_ratio" => "--late-ratio",
        "late_delay_ms" => "--late-delay-ms",
        "start_ms" => "--start",
        "snapshot_share" => "--snapshot-share",
        "cycle_count_days" => "--cycle-count-days",
        "shrink_recorded_share" => "--shrink-recorded-share",
        "eta_revision_share" => "--eta-revision-share",
        "cancel_share" => "--cancel-share",
        "short_share" => "--short-share",
        "transfer_chance" => "--transfer-chance",
        _ => "a flag",
    }
}

/// A [`SimError`] in terms of the command line.
fn flag_error(e: &SimError) -> String {
    match e {
        SimError::Zero { field } => format!("{} must be at least 1", flag(field)),
        SimError::TooLarge { field, value, max } if field.contains('*') => {
            format!("(--stores + --dcs) * --skus = {value} keys exceeds the maximum of {max}")
        }
        SimError::TooLarge { field, value, max } => {
            format!("{} = {value} exceeds the maximum of {max}", flag(field))
        }
        SimError::Ratio { field, value, max } => {
            format!("{} = {value} must be a number in [0, {max}]", flag(field))
        }
        SimError::RatioSum { sum } => {
            format!("--duplicate-ratio + --late-ratio = {sum} must not exceed 1")
        }
        SimError::LateDelay(v) => format!("--late-delay-ms = {v} must be positive"),
        SimError::StartMs(_) => "--start must lie between 1971-01-01 and 2900-01-01".to_owned(),
        SimError::Sample(e) => format!("--demand {}: {e}", DemandSource::Frn50kSample.name()),
    }
}

/// Runs `simulate`.
pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    produce(a, None).map(drop)
}

/// Runs `simulate` until the end of the run or until `stop` is set (checked between records),
/// and returns the simulator (its statistics and ground truth).
pub fn produce(a: SimulateArgs, stop: Option<&AtomicBool>) -> anyhow::Result<Simulator> {
    let cfg = a.sim_config();
    let sim = Simulator::new(cfg.clone()).map_err(|e| anyhow::anyhow!(flag_error(&e)))?;
    let progress = Meter::new(&cfg, a.quiet);
    write_master_data(&sim, &a)?;
    let sim = match (&a.out, &a.bootstrap_servers) {
        (Some(path), _) => to_file(sim, path, &progress, a.quiet)?,
        (None, Some(servers)) => to_kafka(sim, servers, &a, &progress, stop)?,
        (None, None) => anyhow::bail!("one of --out or --bootstrap-servers is required"),
    };
    if let Some(path) = &a.truth_out {
        let truth = sim.truth();
        let f = File::create(path)
            .with_context(|| format!("cannot create --truth-out {}", path.display()))?;
        serde_json::to_writer(BufWriter::new(f), &truth)
            .with_context(|| format!("writing --truth-out {}", path.display()))?;
        if !a.quiet {
            eprintln!(
                "  truth: {} out-of-stock episodes to {}",
                truth.episodes.len(),
                path.display()
            );
        }
    }
    Ok(sim)
}

/// `--locations-out` and `--items-out`.
fn write_master_data(sim: &Simulator, a: &SimulateArgs) -> anyhow::Result<()> {
    type Writer = fn(&Simulator, &mut dyn Write) -> io::Result<()>;
    let tables: [(&Option<PathBuf>, &str, Writer); 2] = [
        (
            &a.locations_out,
            "--locations-out",
            Simulator::write_locations,
        ),
        (&a.items_out, "--items-out", Simulator::write_items),
    ];
    for (path, flag, write) in tables {
        let Some(path) = path else { continue };
        let mut w = BufWriter::new(
            File::create(path)
                .with_context(|| format!("cannot create {flag} {}", path.display()))?,
        );
        write(sim, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing {flag} {}", path.display()))?;
    }
    Ok(())
}

/// The progress line: over records with `--events`, else over simulated hours.
struct Meter {
    bar: Progress,
    by_hours: bool,
    start_ms: i64,
    hours: u64,
}

impl Meter {
    fn new(cfg: &SimConfig, quiet: bool) -> Self {
        let hours = u64::from(cfg.days) * 24;
        let bar = match cfg.max_events {
            Some(n) => count_bar(n, "records", quiet),
            None => count_bar(hours, "simulated hours", quiet),
        };
        Self {
            bar,
            by_hours: cfg.max_events.is_none(),
            start_ms: cfg.start_ms,
            hours,
        }
    }

    fn update(&self, records: u64, last: &SimRecord) {
        if self.by_hours {
            let h = (last.event_time_ms - self.start_ms).max(0) / HOUR_MS;
            self.bar.set(0, (h as u64).min(self.hours));
        } else {
            self.bar.set(0, records);
        }
    }
}

/// A plain or gzip file writer.
enum Output {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

impl Output {
    fn create(path: &Path) -> io::Result<Self> {
        let w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        Ok(if path.extension().is_some_and(|e| e == "gz") {
            Output::Gzip(GzEncoder::new(w, Compression::default()))
        } else {
            Output::Plain(w)
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Plain(w) => w,
            Output::Gzip(w) => w,
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Output::Plain(mut w) => w.flush(),
            Output::Gzip(w) => w.finish()?.flush(),
        }
    }
}

fn to_file(
    mut sim: Simulator,
    path: &Path,
    progress: &Meter,
    quiet: bool,
) -> anyhow::Result<Simulator> {
    let started = Instant::now();
    let mut out =
        Output::create(path).with_context(|| format!("cannot create --out {}", path.display()))?;
    let mut bytes = 0u64;
    let mut n = 0u64;
    for r in sim.by_ref() {
        // A value with a line break would split into two lines and shift every line number.
        anyhow::ensure!(
            !r.value.contains(&b'\n'),
            "record {} contains a line break and cannot be written as one line",
            n + 1
        );
        let w = out.writer();
        w.write_all(&r.value)
            .and_then(|()| w.write_all(b"\n"))
            .with_context(|| format!("writing --out {}", path.display()))?;
        bytes += r.value.len() as u64 + 1;
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            progress.update(n, &r);
        }
    }
    out.finish()
        .with_context(|| format!("writing --out {}", path.display()))?;
    progress.bar.finish();
    if !quiet {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(bytes);
        eprintln!(
            "wrote {} records to {} ({:.1} MiB{})",
            sim.stats().records,
            path.display(),
            size as f64 / 1_048_576.0,
            if size == bytes {
                String::new()
            } else {
                format!(", {:.1} MiB uncompressed", bytes as f64 / 1_048_576.0)
            }
        );
        print_summary(sim.stats(), sim.config(), started.elapsed(), |t| {
            t.name().to_owned()
        });
    }
    Ok(sim)
}

fn to_kafka(
    mut sim: Simulator,
    servers: &str,
    a: &SimulateArgs,
    progress: &Meter,
    stop: Option<&AtomicBool>,
) -> anyhow::Result<Simulator> {
    let mut settings = ProducerSettings::new(servers);
    settings.client_id = "stockwatch-simulate".to_owned();
    settings.properties = a.producer_properties.clone();
    let mut producer = EventProducer::new(settings).context("-X/--producer-property")?;
    // Indexed by `Topic::index`; only the contract's topics are created.
    let topics: Vec<String> = Topic::ALL_V2
        .iter()
        .map(|t| format!("{}{}", a.topic_prefix, t.name()))
        .collect();
    let names: Vec<&str> = Topic::of(a.contract)
        .iter()
        .map(|t| topics[t.index()].as_str())
        .collect();
    let timeout = Duration::from_secs(a.timeout_secs);
    let status = producer
        .ensure_topics(&names, a.partitions, a.replication_factor, timeout)
        .with_context(|| format!("preparing topics on --bootstrap-servers {servers}"))?;
    if !a.quiet {
        for s in &status {
            let what = if s.created { "created" } else { "using" };
            eprintln!("{what} topic {} ({} partitions)", s.name, a.partitions);
        }
    }
    if a.contract == Contract::V2 {
        send_master_data(&sim, &mut producer, a, timeout)?;
    }
    let started = Instant::now();
    let mut bucket = a.rate.map(|r| TokenBucket::new(r, started));
    let mut n = 0u64;
    for r in sim.by_ref() {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        if let Some(b) = bucket.as_mut() {
            // Serve delivery reports while waiting for a token, instead of sleeping.
            while let Some(wait) = b.take(Instant::now()) {
                producer.poll(wait);
            }
        }
        producer
            .send(&topics[r.topic.index()], &r.key, &r.value)
            .with_context(|| format!("producing to --bootstrap-servers {servers}"))?;
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            producer.poll(Duration::ZERO);
        }
        // A rate-limited run is slow enough to redraw at every record.
        if n % PROGRESS_EVERY == 0 || bucket.is_some() {
            progress.update(n, &r);
        }
    }
    let stats = producer
        .flush(timeout)
        .with_context(|| format!("flushing to --bootstrap-servers {servers}"))?;
    progress.bar.finish();
    if !a.quiet {
        eprintln!(
            "produced {} records to {servers}, {} acknowledged",
            stats.sent, stats.delivered
        );
        print_summary(sim.stats(), sim.config(), started.elapsed(), |t| {
            topics[t.index()].clone()
        });
    }
    Ok(sim)
}

/// Contract v2: the network's locations and items, before any event, onto the compacted
/// master-data topics `{topic-prefix}locations` and `{topic-prefix}items` (the service's
/// defaults with the default prefix), so a service started on them uses the stores' time zones.
fn send_master_data(
    sim: &Simulator,
    producer: &mut EventProducer,
    a: &SimulateArgs,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (mut locations, mut items) = (Vec::new(), Vec::new());
    sim.write_locations(&mut locations)?;
    sim.write_items(&mut items)?;
    let locations = crate::master::location_records_of("locations", &locations)?;
    let items = crate::master::item_records_of("items", &items)?;
    let names = [
        format!("{}locations", a.topic_prefix),
        format!("{}items", a.topic_prefix),
    ];
    super::load_master::send_tables(
        producer,
        &[(&names[0], true, &locations), (&names[1], true, &items)],
        timeout,
    )?;
    if !a.quiet {
        eprintln!(
            "master data: {} locations to {}, {} items to {}",
            locations.len(),
            names[0],
            items.len(),
            names[1]
        );
    }
    Ok(())
}

fn print_summary(
    s: &SimStats,
    cfg: &SimConfig,
    elapsed: Duration,
    topic_name: impl Fn(Topic) -> String,
) {
    let secs = elapsed.as_secs_f64();
    eprintln!(
        "  {} records in {secs:.2} s ({:.0} records/s); seed {}, {} stores, {} DCs, {} SKUs, {} of {} days simulated, {} demand",
        s.records,
        if secs > 0.0 { s.records as f64 / secs } else { 0.0 },
        cfg.seed,
        cfg.stores,
        cfg.dcs,
        cfg.skus,
        s.world.hours.div_ceil(24),
        cfg.days,
        cfg.demand.name(),
    );
    let by_topic: Vec<String> = Topic::of(cfg.contract)
        .iter()
        .map(|t| format!("{} {}", topic_name(*t), s.topic(*t)))
        .collect();
    eprintln!("  by topic: {}", by_topic.join(", "));
    eprintln!(
        "  by class: good {}, duplicate {}, late {}, bad {}",
        s.good, s.duplicate, s.late, s.bad
    );
    if cfg.contract == Contract::V2 {
        let w = &s.world;
        let reasons: Vec<String> = w
            .adjustments_by_reason()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        eprintln!(
            "  v2: snapshots {}, cycle counts {}, adjustments ({}), shipment revisions {} (short shipments {}), cancellations {}",
            w.snapshots,
            w.cycle_counts,
            reasons.join(", "),
            w.shipment_revisions,
            w.short_shipments,
            w.cancellations
        );
        if let Some(known) = w.known_after_first_day() {
            eprintln!(
                "  on hand known after the first day: {:.2} % of keys",
                100.0 * known
            );
        }
    }
    if s.bad > 0 {
        let kinds: Vec<String> = BadKind::ALL
            .iter()
            .filter(|k| s.bad_kind(**k) > 0)
            .map(|k| format!("{} {}", k.name(), s.bad_kind(*k)))
            .collect();
        eprintln!("  bad kinds: {}", kinds.join(", "));
    }
}

/// A token bucket: `rate` tokens per second, bursts of at most a tenth of a second's worth.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

/// Shortest wait, so that high rates wait in millisecond steps (and then send a burst) rather
/// than in microsecond ones.
const MIN_WAIT: Duration = Duration::from_millis(1);

impl TokenBucket {
    fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            capacity: (rate / 10.0).max(1.0),
            tokens: 1.0,
            last: now,
        }
    }

    /// Takes a token (`None`), or says how long to wait before asking again.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        Some(wait.max(MIN_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        a: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied())).map(|c| c.a)
    }

    #[test]
    fn defaults_are_the_simulators() {
        let a = parse(&["--out", "x.jsonl"]).unwrap();
        assert_eq!(a.sim_config(), SimConfig::default());
        let a = parse(&[
            "--out",
            "x",
            "--events",
            "5",
            "--start",
            "2026-03-01T00:00:00Z",
        ])
        .unwrap();
        assert_eq!(a.sim_config().max_events, Some(5));
        assert_eq!(a.sim_config().start_ms, 1_772_323_200_000);
        assert_eq!(a.sim_config().demand, DemandSource::Synthetic);
        let a = parse(&["--out", "x", "--demand", "frn50k-sample"]).unwrap();
        assert_eq!(a.sim_config().demand, DemandSource::Frn50kSample);
        let e = parse(&["--out", "x", "--demand", "real"]).unwrap_err();
        assert!(e.to_string().contains("frn50k-sample"), "{e}");
    }

    #[test]
    fn a_destination_is_required_and_kafka_flags_need_kafka() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--out", "x", "--bootstrap-servers", "h:1"]).is_err());
        let e = parse(&["--out", "x", "--partitions", "4"]).unwrap_err();
        assert!(e.to_string().contains("--out"), "{e}");
        let a = parse(&[
            "--bootstrap-servers",
            "h:1",
            "-X",
            "acks=all",
            "--rate",
            "10",
        ])
        .unwrap();
        assert_eq!(a.producer_properties, [("acks".into(), "all".into())]);
        assert_eq!(a.topic_prefix, "stockwatch.");
        assert_eq!(a.partitions, 8);
    }

    #[test]
    fn errors_name_the_flag() {
        for (args, flag) in [
            (&["--bad-ratio", "2"][..], "--bad-ratio"),
            (&["--start", "yesterday"], "--start"),
            (&["--events", "0"], "--events"),
            (&["--bootstrap-servers", "h:1", "--rate", "0"], "--rate"),
        ] {
            let mut all = vec!["--out", "x"];
            if args[0] == "--bootstrap-servers" {
                all.clear();
            }
            all.extend_from_slice(args);
            let e = parse(&all).unwrap_err().to_string();
            assert!(e.contains(flag), "{args:?}: {e}");
        }
        for (args, flag) in [
            (&["--stores", "0"][..], "--stores"),
            (&["--bad-ratio", "1"], "--bad-ratio"),
            (
                &["--late-ratio", "0.6", "--duplicate-ratio", "0.6"],
                "--late-ratio",
            ),
            (&["--start", "1900-01-01T00:00:00Z"], "--start"),
            (&["--stores", "99999", "--skus", "9999999"], "--skus"),
            (&["--late-delay-ms", "0"], "--late-delay-ms"),
        ] {
            let mut all = vec!["--out", "x"];
            all.extend_from_slice(args);
            let e = Simulator::new(parse(&all).unwrap().sim_config()).unwrap_err();
            assert!(
                flag_error(&e).contains(flag),
                "{args:?}: {}",
                flag_error(&e)
            );
        }
    }

    #[test]
    fn file_output_is_deterministic_and_gzip_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let run_to = |name: &str| {
            let path = dir.path().join(name);
            let a = parse(&[
                "--out",
                path.to_str().unwrap(),
                "--events",
                "3000",
                "--stores",
                "3",
                "--skus",
                "20",
                "--bad-ratio",
                "0.05",
                "--quiet",
            ])
            .unwrap();
            run(a).unwrap();
            std::fs::read(path).unwrap()
        };
        let plain = run_to("a.jsonl");
        assert_eq!(plain, run_to("b.jsonl"));
        assert_eq!(plain.iter().filter(|&&b| b == b'\n').count(), 3000);
        let gz = run_to("a.jsonl.gz");
        let mut unzipped = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped, plain);
    }

    #[test]
    fn token_bucket_paces_to_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, t0);
        assert_eq!(b.take(t0), None);
        let wait = b.take(t0).unwrap();
        assert!(
            wait >= MIN_WAIT && wait <= Duration::from_millis(2),
            "{wait:?}"
        );
        // One second later: a burst of at most a tenth of a second's worth.
        let t1 = t0 + Duration::from_secs(1);
        let burst = (0..1000).take_while(|_| b.take(t1).is_none()).count();
        assert_eq!(burst, 100);
        // Over simulated time, sends follow the rate.
        let mut b = TokenBucket::new(50.0, t0);
        let (mut now, mut sent) = (t0, 0);
        while now < t0 + Duration::from_secs(10) {
            match b.take(now) {
                None => sent += 1,
                Some(w) => now += w,
            }
        }
        assert!((495..=506).contains(&sent), "{sent}");
    }
}
