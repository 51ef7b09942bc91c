//! `stockwatch load-master`: the master-data CSV files (`replay --locations/--items`'s) onto
//! the service's compacted locations and items topics, one record per id (key = the id,
//! the JSON value the service reads). `simulate --contract v2 --bootstrap-servers` writes the
//! simulated network's tables the same way ([`send_tables`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Args};

use crate::master::{item_records_csv, location_records_csv, TopicRecord};
use crate::sink::kafka::{EventProducer, ProducerSettings};

/// Arguments of `load-master`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("tables").required(true).multiple(true).args(["locations", "items"])),
    after_help = "Example:\n  \
        stockwatch load-master --locations locations.csv --items items.csv --bootstrap-servers kafka:9092"
)]
pub struct LoadMasterArgs {
    /// Locations CSV: `location,kind,time_zone,dc,region` (`kind` store|dc, `time_zone` an
    /// IANA name; `dc` and `region` may be empty).
    #[arg(long, value_name = "FILE")]
    pub locations: Option<PathBuf>,
    /// Items CSV: `sku,category,case_pack` (the last two may be empty).
    #[arg(long, value_name = "FILE")]
    pub items: Option<PathBuf>,
    /// The cluster: `host:port[,host:port…]`.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_servers: String,
    /// Configuration file of the service, for the topic names (`kafka.topics.locations` and
    /// `kafka.topics.items`, layered like `run`'s: embedded defaults, file, environment).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Give up when the cluster has not answered within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
    /// Extra librdkafka producer property, by its own name (repeatable).
    #[arg(short = 'X', long = "producer-property", value_name = "KEY=VALUE", value_parser = key_value)]
    pub producer_properties: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

/// Runs `load-master`: every row is checked as the service checks a record (the first bad
/// line stops it before anything is sent).
pub fn run(a: LoadMasterArgs) -> anyhow::Result<()> {
    let cfg = crate::config::Config::load(a.config.as_deref())?;
    let t = &cfg.kafka.topics;
    let locations = match &a.locations {
        Some(p) => location_records_csv(p)?,
        None => Vec::new(),
    };
    let items = match &a.items {
        Some(p) => item_records_csv(p)?,
        None => Vec::new(),
    };
    let mut settings = ProducerSettings::new(a.bootstrap_servers.clone());
    settings.client_id = "stockwatch-load-master".to_owned();
    settings.properties = a.producer_properties.clone();
    let mut producer = EventProducer::new(settings).context("-X/--producer-property")?;
    let tables = [
        (t.locations.as_str(), a.locations.is_some(), &locations),
        (t.items.as_str(), a.items.is_some(), &items),
    ];
    send_tables(&mut producer, &tables, Duration::from_secs(a.timeout_secs))
        .with_context(|| format!("producing to --bootstrap-servers {}", a.bootstrap_servers))?;
    for (topic, given, records) in tables {
        if given {
            eprintln!("{} records to {topic}", records.len());
        }
    }
    Ok(())
}

/// Sends the records of each table `(topic, wanted, records)` that is wanted to its topic
/// (created compacted, one partition, when missing), then waits for every acknowledgement.
pub(crate) fn send_tables(
    producer: &mut EventProducer,
    tables: &[(&str, bool, &Vec<TopicRecord>)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let topics: Vec<&str> = tables
        .iter()
        .filter(|(_, wanted, _)| *wanted)
        .map(|(t, _, _)| *t)
        .collect();
    producer
        .ensure_topics_with(&topics, 1, 1, &[("cleanup.policy", "compact")], timeout)
        .with_context(|| format!("preparing the master-data topics {topics:?}"))?;
    for (topic, wanted, records) in tables {
        if !wanted {
            continue;
        }
        for (key, value) in records.iter() {
            producer.send(topic, key.as_bytes(), value)?;
        }
    }
    producer.flush(timeout)?;
    Ok(())
}
