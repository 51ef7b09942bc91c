//! `stockwatch demo`: the whole pipeline with no setup. An embedded broker (librdkafka's
//! in-process mock cluster), the simulator producing into it at a steady rate, the service
//! consuming and alerting, a live table of alerts, and a summary at the end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::config::Config;
use crate::event::EventType;
use crate::reject::RejectReason;
use crate::service::Service;

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_secs: u64,
    /// Simulated events per second produced into the embedded broker.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Partitions of every topic (one shard each).
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Configuration file (layered over the embedded defaults), as for `run`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print at most this many alert rows (the summary counts all of them).
    #[arg(long, default_value_t = 40)]
    pub max_rows: usize,
    /// Input contract the simulator speaks: `v2` (snapshots, counts, adjustments, revisions,
    /// cancellations) or `v1`.
    #[arg(long, value_enum, default_value_t = crate::sim::Contract::V2)]
    pub contract: crate::sim::Contract,
    /// Run without a challenger model. Without this flag and without `model.challenger` in the
    /// configuration, the demo scores the v1 linear learner, starting from its prior, beside
    /// the champion (its quality is `model="challenger"` on `/metrics`; it never alerts).
    #[arg(long)]
    pub no_challenger: bool,
}

/// The demo's challenger: the v1 linear learner at its prior, at the configured horizon.
fn builtin_challenger(m: &crate::model::ModelConfig) -> crate::model::InitialModel {
    use crate::model::learner::{LearnerConfig, LearnerKind};
    let learner = LearnerConfig {
        kind: LearnerKind::Linear,
        ..m.learner
    };
    let data = "none: the v1 linear learner at its prior, built by stockwatch demo";
    crate::model::InitialModel::from_artifact(
        "(demo: linear learner at its prior)".to_owned(),
        crate::model::ModelArtifact::at_prior(learner, m.horizon_hours, m.label_sample_hours, data),
    )
}

/// A helper CLI to reuse `simulate`'s argument parsing for the producer thread.
#[derive(Debug, Parser)]
struct SimCli {
    #[command(flatten)]
    sim: super::simulate::SimulateArgs,
}

/// Runs the demo.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(a.config.as_deref())?;
    super::run::init_logs(&cfg.log);
    if a.no_challenger {
        cfg.model.challenger = None;
    } else if cfg.model.challenger.is_none() {
        cfg.model.challenger = Some(builtin_challenger(&cfg.model));
    }
    if let Some(ch) = cfg.model.challenger {
        cfg.model
            .check_challenger()
            .context("the demo's model.challenger")?;
        eprintln!(
            "challenger model: {} ({}), scored beside the champion, never alerting",
            ch.path(),
            ch.artifact().model_version
        );
    }
    let cluster = MockCluster::new(1).context("starting the embedded broker")?;
    let bootstrap = cluster.bootstrap_servers();
    let t = cfg.kafka.topics.clone();
    let mut inputs: Vec<&String> = Vec::new();
    for topic in [
        &t.sales,
        &t.shipments,
        &t.receipts,
        &t.availability,
        &t.inventory_counts,
        &t.adjustments,
    ] {
        if !inputs.contains(&topic) {
            inputs.push(topic);
        }
    }
    for topic in inputs.into_iter().chain([
        &t.alerts,
        &t.early_alerts,
        &t.dead_letter,
        &t.changelog,
        &t.open_alerts,
    ]) {
        cluster
            .create_topic(topic, a.partitions as i32, 1)
            .with_context(|| format!("creating topic {topic} on the embedded broker"))?;
    }
    // The master-data tables (the v2 simulator writes the network's locations and items).
    for topic in [&t.locations, &t.items] {
        cluster
            .create_topic(topic, 1, 1)
            .with_context(|| format!("creating topic {topic} on the embedded broker"))?;
    }
    cfg.kafka.bootstrap_servers = bootstrap.clone();
    cfg.kafka.poll_max_ms = 100;
    eprintln!(
        "embedded broker at {bootstrap}; {} partitions per topic; producing {} simulated events/s for {} s",
        a.partitions, a.rate, a.duration_secs
    );
    eprintln!(
        "demand follows real hourly sales: a sample of FreshRetailNet-50K, Dingdong Inc., CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
    );

    // Producer: the simulator, rate-limited, into the input topics.
    let prefix = t
        .sales
        .strip_suffix("sales")
        .context("kafka.topics.sales must end in \"sales\" for the demo's simulator")?
        .to_owned();
    let sim = SimCli::try_parse_from([
        "simulate".to_owned(),
        "--quiet".to_owned(),
        "--bootstrap-servers".to_owned(),
        bootstrap.clone(),
        "--topic-prefix".to_owned(),
        prefix,
        "--partitions".to_owned(),
        a.partitions.to_string(),
        "--rate".to_owned(),
        a.rate.to_string(),
        "--seed".to_owned(),
        a.seed.to_string(),
        "--stores".to_owned(),
        "20".to_owned(),
        "--skus".to_owned(),
        "100".to_owned(),
        "--days".to_owned(),
        "60".to_owned(),
        "--bad-ratio".to_owned(),
        "0.002".to_owned(),
        "--duplicate-ratio".to_owned(),
        "0.002".to_owned(),
        "--demand".to_owned(),
        crate::sim::DemandSource::Frn50kSample.name().to_owned(),
        "--contract".to_owned(),
        a.contract.name().to_owned(),
    ])
    .context("demo simulator arguments")?;
    let mut sim_args = sim.sim;
    // The summary scores the alerts against the simulated world's true stockouts.
    sim_args.record_truth = true;
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sim = super::simulate::produce(sim_args, Some(&stop));
            if let Err(e) = &sim {
                if !stop.load(Ordering::Relaxed) {
                    eprintln!("simulator stopped: {e:#}");
                }
            }
            sim.ok()
        })
    };

    // Printer: the alerts topic, as a table.
    let printer = {
        let stop = stop.clone();
        let (bootstrap, topic, parts, max_rows) = (
            bootstrap.clone(),
            t.alerts.clone(),
            a.partitions,
            a.max_rows,
        );
        std::thread::spawn(move || print_alerts(&bootstrap, &topic, parts, max_rows, &stop))
    };

    // Timer and signals.
    {
        let stop = stop.clone();
        let deadline = Duration::from_secs(a.duration_secs);
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < deadline && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime for HTTP")?;
    let mut service = Service::new(cfg.clone()).context("starting the service")?;
    let http = match super::run::start_http(&rt, &cfg, &mut service) {
        Ok(h) => {
            eprintln!(
                "metrics at http://{}/metrics, top risks at http://{}/v1/risks/top",
                cfg.http.listen, cfg.http.listen
            );
            Some(h)
        }
        Err(e) => {
            eprintln!("no HTTP endpoints ({e:#}); set http.listen to a free address");
            None
        }
    };
    let stats = service.run(&stop).context("the service stopped")?;
    if let Some(h) = http {
        h.stop(&rt, Duration::from_secs(2));
    }
    let points = printer.join().unwrap_or_default();
    // The simulator stops at the flag (after delivering what it sent).
    let truth = producer.join().ok().flatten().map(|s| s.truth());

    // Summary.
    let mut applied = [0u64; EventType::COUNT];
    let mut alerts = [[0u64; 3]; 2];
    let (mut stockouts, mut keys) = (0u64, 0usize);
    let mut top = Vec::new();
    for (_, s) in service.shards() {
        let c = s.counters();
        for (x, v) in applied.iter_mut().zip(c.applied) {
            *x += v;
        }
        for (row, src) in alerts.iter_mut().zip(c.alerts) {
            for (x, v) in row.iter_mut().zip(src) {
                *x += v;
            }
        }
        stockouts += c.stockouts;
        keys += s.keys();
        top.extend(s.top_risks(10));
    }
    top.sort_by(|a, b| b.risk.total_cmp(&a.risk));
    println!();
    println!("== summary after {} s", a.duration_secs);
    println!(
        "messages {}  batches {}  keys {}  dead letters {}",
        stats.messages, stats.batches, keys, stats.dead_letters
    );
    let by_type: Vec<String> = EventType::ALL
        .iter()
        .map(|t| format!("{} {}", t.as_str(), applied[*t as usize]))
        .collect();
    println!("applied: {}", by_type.join(", "));
    let rejected = service.rejected_by_reason();
    let rej: Vec<String> = RejectReason::ALL
        .iter()
        .filter(|r| rejected[r.index()] > 0)
        .map(|r| format!("{} {}", r.as_str(), rejected[r.index()]))
        .collect();
    println!(
        "rejected: {}",
        if rej.is_empty() {
            "none".to_owned()
        } else {
            rej.join(", ")
        }
    );
    println!(
        "alerts: stockout_risk raised {} / updated {} / resolved {}; stockout raised {} / resolved {}; stockouts observed {}",
        alerts[AlertKind::StockoutRisk as usize][AlertStatus::Raised as usize],
        alerts[AlertKind::StockoutRisk as usize][AlertStatus::Updated as usize],
        alerts[AlertKind::StockoutRisk as usize][AlertStatus::Resolved as usize],
        alerts[AlertKind::Stockout as usize][AlertStatus::Raised as usize],
        alerts[AlertKind::Stockout as usize][AlertStatus::Resolved as usize],
        stockouts
    );
    let quality = |q: &crate::model::labels::RollingQuality| {
        format!("{} labels, rolling Brier {:.4}", q.labels, q.brier)
    };
    for (_, s) in service.shards() {
        let auc = |a: Option<f64>| a.map_or("-".to_owned(), |a| format!("{a:.3}"));
        let mut line = format!(
            "model, shard: champion {} AUC {}",
            quality(s.quality()),
            auc(s.rolling_auc())
        );
        if let Some(c) = s.challenger() {
            line += &format!(
                "; challenger {} AUC {}",
                quality(c.quality()),
                auc(s.challenger_rolling_auc())
            );
        }
        println!("{line}");
    }
    if let Some(truth) = &truth {
        let s = crate::sim::truth::score(truth, &points, cfg.model.horizon_hours);
        println!(
            "against the simulated truth ({:.1} days simulated, H = {} h; on hand known after day 1: {:.2} % of keys):",
            (truth.end_ms - truth.start_ms) as f64 / 86_400_000.0,
            s.horizon_hours,
            100.0 * s.known_after_first_day
        );
        println!("  stores: {}", s.store.line());
        println!("  DCs:    {}", s.dc.line());
    }
    println!("top at-risk keys:");
    println!(
        "  {:<12} {:<10} {:>6} {:>9} {:>10}",
        "location", "sku", "risk", "on_hand", "in_transit"
    );
    for v in top.iter().take(10) {
        println!(
            "  {:<12} {:<10} {:>6.3} {:>9} {:>10.1}",
            v.location,
            v.sku,
            v.risk,
            v.on_hand.map_or("?".to_owned(), |o| format!("{o:.1}")),
            v.in_transit
        );
    }
    // The simulator thread may still be producing into the embedded broker; end the process
    // here rather than tear the broker down under it (which only makes librdkafka complain).
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// Prints the alerts topic as a table until `stop`, then reads what is left (the service has
/// flushed by then); returns every alert, for scoring.
fn print_alerts(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    max_rows: usize,
    stop: &AtomicBool,
) -> Vec<crate::sim::truth::AlertPoint> {
    let mut points = Vec::new();
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "stockwatch-demo-printer")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alert printer: {e}");
            return points;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        let _ = tpl.add_partition_offset(topic, p, Offset::Beginning);
    }
    if let Err(e) = consumer.assign(&tpl) {
        eprintln!("alert printer: {e}");
        return points;
    }
    println!(
        "{:<24} {:<13} {:<8} {:<12} {:<10} {:>6} {:>8} {:>8}",
        "event time", "kind", "status", "location", "sku", "risk", "on_hand", "cover_d"
    );
    let mut rows = 0usize;
    // After the stop, read on until the topic has been quiet for a second.
    let mut quiet_polls = 0;
    loop {
        let stopped = stop.load(Ordering::Relaxed);
        if stopped && quiet_polls >= 10 {
            break;
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            quiet_polls += usize::from(stopped);
            continue;
        };
        quiet_polls = 0;
        let Ok(a) = serde_json::from_slice::<Alert>(m.payload().unwrap_or_default()) else {
            continue;
        };
        points.extend(super::replay::alert_point(&a));
        // Show transitions people act on: raises and resolves.
        if a.status == AlertStatus::Updated || stopped {
            continue;
        }
        rows += 1;
        if rows > max_rows {
            if rows == max_rows + 1 {
                println!("… (more alerts; see the summary)");
            }
            continue;
        }
        println!(
            "{:<24} {:<13} {:<8} {:<12} {:<10} {:>6.3} {:>8} {:>8}",
            a.event_time,
            a.kind.as_str(),
            a.status.as_str(),
            a.location,
            a.sku,
            a.risk,
            a.on_hand.map_or("?".to_owned(), |o| format!("{o:.1}")),
            a.days_of_cover
                .map_or("?".to_owned(), |d| format!("{d:.1}")),
        );
    }
    points
}
