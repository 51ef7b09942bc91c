//! A reference subscriber of stockwatch's alerts in Rust (rdkafka), as docs/consuming.md
//! describes it; examples/subscriber.py does the same with confluent-kafka.
//!
//! 1. **Bootstrap from the open-alerts table** (`kafka.topics.open_alerts`): read every
//!    partition from the beginning to its end; the latest record per key
//!    `"{location}|{sku}|{kind}"` is that key's open alert, a tombstone (null value) deletes it.
//!    This is complete whatever the alert topic's retention dropped.
//! 2. **Follow the alert topic** from a little before the bootstrap started (`--lookback-secs`,
//!    found by timestamp): an alert the table did not show yet is read again, and replaying a
//!    stretch of a partition in order ends on each key's latest alert, so the open set is right
//!    once caught up. Copies (at-least-once redeliveries, and the stretch read again) are
//!    skipped by `alert_id`; `resolved` closes a key; a `ce_type` this client does not know is
//!    skipped.
//! 3. **Early alerts** (`--early-topic`, optional) are kept apart: added on an early `raised`,
//!    removed on its retraction (an early `resolved`) or when a confirmed alert of the same key
//!    and kind arrives.
//!
//! `read_committed` throughout (for `service.delivery = exactly_once`). The state is in memory:
//! a restart bootstraps again, so no consumer-group offsets are needed (partitions are
//! assigned, not subscribed; run one subscriber, or shard the partitions yourself).
//!
//! ```text
//! cargo run --example subscriber -- --bootstrap-servers 127.0.0.1:9092 \
//!     [--topic stockwatch.alerts] [--table-topic stockwatch.alerts.open] \
//!     [--early-topic stockwatch.alerts.early] [--from-beginning] [--until-caught-up] \
//!     [--open-set-out OPEN.jsonl]
//! ```
//!
//! `--from-beginning` skips the table and reads the alert topic from its start (complete only
//! within retention; the tests compare the two). With `--until-caught-up` it stops once every
//! partition is read to its end; otherwise it runs until killed. The open set is written as
//! JSON lines `{"key": …, "value": ALERT}` sorted by key, the format of
//! `stockwatch replay --open-alerts-out`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// The CloudEvents types this subscriber understands.
const CONFIRMED_TYPE: &str = "com.stockwatch.alert.v1";
const EARLY_TYPE: &str = "com.stockwatch.alert.early.v1";
/// Ids remembered per (location, sku, kind): a redelivery repeats a few alerts of a key at most.
const DEDUPE_IDS_PER_KEY: usize = 32;
/// Bound on metadata and offset lookups.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Command line.
#[derive(Debug, Clone, Parser)]
#[command(about = "Keeps the set of open stockwatch alerts (docs/consuming.md)")]
pub struct Options {
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long)]
    pub bootstrap_servers: String,
    /// The confirmed alerts (`kafka.topics.alerts`).
    #[arg(long, default_value = "stockwatch.alerts")]
    pub topic: String,
    /// The open-alerts table (`kafka.topics.open_alerts`).
    #[arg(long, default_value = "stockwatch.alerts.open")]
    pub table_topic: String,
    /// The early alerts (`kafka.topics.early_alerts`); not read without it.
    #[arg(long)]
    pub early_topic: Option<String>,
    /// Do not bootstrap from the table: read the alert topic from its beginning.
    #[arg(long)]
    pub from_beginning: bool,
    /// After the bootstrap, follow the alert topic from this long before the bootstrap started
    /// (0: from its end, trusting the table alone).
    #[arg(long, default_value_t = 300)]
    pub lookback_secs: u64,
    /// Stop once every partition is read to its end.
    #[arg(long)]
    pub until_caught_up: bool,
    /// A partition with nothing new for this long counts as read to its end (some brokers
    /// report no end-of-partition event).
    #[arg(long, default_value_t = 2000)]
    pub quiet_ms: u64,
    /// Where to write the open set (JSON lines); stdout without it.
    #[arg(long)]
    pub open_set_out: Option<PathBuf>,
}

/// What went wrong.
#[derive(Debug)]
pub enum SubscriberError {
    /// A Kafka call failed.
    Kafka(&'static str, KafkaError),
    /// Writing the output failed.
    Io(std::io::Error),
}

impl std::fmt::Display for SubscriberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscriberError::Kafka(what, e) => write!(f, "{what}: {e}"),
            SubscriberError::Io(e) => write!(f, "writing the open set: {e}"),
        }
    }
}

impl std::error::Error for SubscriberError {}

/// `(location, sku, kind)`, the table's key as text.
pub type AlertKey = String;

/// The open alerts, with dedupe by `alert_id`.
#[derive(Debug, Default)]
pub struct OpenSet {
    /// Confirmed open alerts by key.
    pub open: BTreeMap<AlertKey, Value>,
    /// Early alerts not yet settled, by key.
    pub early: BTreeMap<AlertKey, Value>,
    seen: HashMap<AlertKey, (VecDeque<String>, HashSet<String>)>,
    /// Rows read from the table (tombstones included).
    pub table_records: u64,
    /// Alerts applied.
    pub applied: u64,
    /// Copies skipped.
    pub duplicates: u64,
    /// Records of a type this client does not know, skipped.
    pub unknown: u64,
    /// Records delivered again at an offset already read (table and alert topics), skipped.
    pub reread: u64,
}

impl OpenSet {
    /// The key of an alert body.
    fn key_of(a: &Value) -> Option<AlertKey> {
        Some(format!(
            "{}|{}|{}",
            a["location"].as_str()?,
            a["sku"].as_str()?,
            a["kind"].as_str()?
        ))
    }

    /// A table record: the key's open alert, or `None` (a tombstone) to delete it.
    pub fn apply_table(&mut self, key: &str, value: Option<Value>) {
        self.table_records += 1;
        match value {
            Some(a) => self.open.insert(key.to_owned(), a),
            None => self.open.remove(key),
        };
    }

    /// Whether `id` was seen for `key`; remembers it.
    fn first_time(&mut self, key: &str, id: &str) -> bool {
        let (order, ids) = self.seen.entry(key.to_owned()).or_default();
        if ids.contains(id) {
            return false;
        }
        if order.len() == DEDUPE_IDS_PER_KEY {
            if let Some(old) = order.pop_front() {
                ids.remove(&old);
            }
        }
        order.push_back(id.to_owned());
        ids.insert(id.to_owned());
        true
    }

    /// An alert from the alert topic (`early`: from the early topic).
    pub fn apply_alert(&mut self, alert: Value, early: bool) {
        let (Some(key), Some(id)) = (Self::key_of(&alert), alert["alert_id"].as_str()) else {
            self.unknown += 1;
            return;
        };
        let id = id.to_owned();
        if !self.first_time(&key, &id) {
            self.duplicates += 1;
            return;
        }
        self.applied += 1;
        let resolved = alert["status"] == "resolved";
        if early {
            // An early `resolved` is the retraction of the early `raised`.
            if resolved {
                self.early.remove(&key);
            } else {
                self.early.insert(key, alert);
            }
            return;
        }
        // The confirmed topic takes over from any early alert of the key and kind.
        self.early.remove(&key);
        if resolved {
            self.open.remove(&key);
        } else {
            self.open.insert(key, alert);
        }
    }

    /// The open set as JSON lines `{"key": …, "value": …}`, sorted by key.
    pub fn lines(&self) -> Vec<String> {
        self.open
            .iter()
            .map(|(k, v)| serde_json::json!({ "key": k, "value": v }).to_string())
            .collect()
    }
}

fn consumer(o: &Options) -> Result<BaseConsumer, SubscriberError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &o.bootstrap_servers)
        // Required by librdkafka; nothing is committed under it (partitions are assigned).
        .set("group.id", "stockwatch-subscriber-example")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    c.create()
        .map_err(|e| SubscriberError::Kafka("creating the consumer", e))
}

/// The partitions of `topic` (none if it does not exist).
fn partitions(c: &BaseConsumer, topic: &str) -> Result<Vec<i32>, SubscriberError> {
    let md = c
        .fetch_metadata(Some(topic), QUERY_TIMEOUT)
        .map_err(|e| SubscriberError::Kafka("reading metadata", e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Reads what is assigned until every partition is at its end (an end-of-partition event, or
/// nothing new for `quiet`), handing each record to `f` once; `forever`: never stops. A record
/// at an offset already read (a client that fetches a range again) is skipped and counted:
/// the returned number.
fn drain(
    c: &BaseConsumer,
    assigned: usize,
    quiet: Duration,
    forever: bool,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64, SubscriberError> {
    // Partitions only: with one topic assigned, that names them (several topics wait for
    // `quiet`, see `follow`).
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut next: HashMap<String, HashMap<i32, i64>> = HashMap::new();
    let mut reread = 0;
    let mut last = Instant::now();
    loop {
        if !forever && (at_end.len() >= assigned || last.elapsed() >= quiet) {
            return Ok(reread);
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                at_end.remove(&m.partition());
                let topic = match next.get_mut(m.topic()) {
                    Some(t) => t,
                    None => next.entry(m.topic().to_owned()).or_default(),
                };
                let at = topic.entry(m.partition()).or_insert(i64::MIN);
                if m.offset() < *at {
                    reread += 1;
                    continue;
                }
                *at = m.offset() + 1;
                f(&m);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(Err(e)) => return Err(SubscriberError::Kafka("consuming", e)),
            None => {}
        }
    }
}

/// Reads the open-alerts table from the beginning to its end into `set`.
pub fn bootstrap(o: &Options, set: &mut OpenSet) -> Result<(), SubscriberError> {
    let c = consumer(o)?;
    let parts = partitions(&c, &o.table_topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(&o.table_topic, *p, Offset::Beginning)
            .map_err(|e| SubscriberError::Kafka("assigning the table", e))?;
    }
    c.assign(&tpl)
        .map_err(|e| SubscriberError::Kafka("assigning the table", e))?;
    let quiet = Duration::from_millis(o.quiet_ms);
    set.reread += drain(&c, parts.len(), quiet, false, |m| {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let value = m.payload().and_then(|v| serde_json::from_slice(v).ok());
        set.apply_table(&key, value);
    })?;
    Ok(())
}

/// The CloudEvents type of a record, if it has one.
fn ce_type<'m>(m: &'m BorrowedMessage<'_>) -> Option<&'m [u8]> {
    let h = m.headers()?;
    (0..h.count()).find_map(|i| {
        let hd = h.try_get(i)?;
        (hd.key == "ce_type").then_some(hd.value).flatten()
    })
}

/// Follows the alert topic (and the early topic) from `start`, into `set`.
pub fn follow(o: &Options, start: Offset, set: &mut OpenSet) -> Result<(), SubscriberError> {
    let c = consumer(o)?;
    let mut tpl = TopicPartitionList::new();
    let topics: Vec<&str> = std::iter::once(o.topic.as_str())
        .chain(o.early_topic.as_deref())
        .collect();
    let mut assigned = 0;
    for t in &topics {
        for p in partitions(&c, t)? {
            tpl.add_partition_offset(t, p, start)
                .map_err(|e| SubscriberError::Kafka("assigning the alert topic", e))?;
            assigned += 1;
        }
    }
    if let Offset::Offset(_) = start {
        // A timestamp: each partition's first offset at or after it.
        tpl = c
            .offsets_for_times(tpl, QUERY_TIMEOUT)
            .map_err(|e| SubscriberError::Kafka("looking offsets up by time", e))?;
    }
    c.assign(&tpl)
        .map_err(|e| SubscriberError::Kafka("assigning the alert topic", e))?;
    let quiet = Duration::from_millis(o.quiet_ms);
    // Several topics: an end-of-partition event names only the partition, so count on quiet.
    let assigned = if topics.len() > 1 {
        usize::MAX
    } else {
        assigned
    };
    set.reread += drain(&c, assigned, quiet, !o.until_caught_up, |m| {
        let early = Some(m.topic()) == o.early_topic.as_deref() && m.topic() != o.topic;
        let want = if early { EARLY_TYPE } else { CONFIRMED_TYPE };
        match ce_type(m) {
            Some(t) if t != want.as_bytes() => {
                set.unknown += 1;
                return;
            }
            _ => {}
        }
        match m.payload().and_then(|v| serde_json::from_slice(v).ok()) {
            Some(alert) => set.apply_alert(alert, early),
            None => set.unknown += 1,
        }
    })?;
    Ok(())
}

/// Bootstraps (unless `--from-beginning`), then follows: the open set so far.
pub fn run(o: &Options) -> Result<OpenSet, SubscriberError> {
    let mut set = OpenSet::default();
    let start = if o.from_beginning {
        Offset::Beginning
    } else {
        // Taken before the table is read: the alerts the table may not show yet are after it.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let from = now_ms.saturating_sub(o.lookback_secs.saturating_mul(1000) as i64);
        bootstrap(o, &mut set)?;
        match o.lookback_secs {
            0 => Offset::End,
            _ => Offset::Offset(from),
        }
    };
    follow(o, start, &mut set)?;
    Ok(set)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = Options::parse();
    let set = run(&o)?;
    let mut out: Box<dyn Write> = match &o.open_set_out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(SubscriberError::Io)?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    for line in set.lines() {
        writeln!(out, "{line}").map_err(SubscriberError::Io)?;
    }
    out.flush().map_err(SubscriberError::Io)?;
    eprintln!(
        "{} table records, {} alerts applied, {} copies skipped, {} unknown skipped, {} re-read records skipped; {} open, {} early",
        set.table_records,
        set.applied,
        set.duplicates,
        set.unknown,
        set.reread,
        set.open.len(),
        set.early.len()
    );
    Ok(())
}
