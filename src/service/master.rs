//! Master data in the service: the locations and items tables (Kafka Streams' GlobalKTable
//! pattern). Every instance reads both compacted topics in full (every partition assigned,
//! outside the consumer group) before it reads its inputs, then keeps following them.
//!
//! A background thread owns the reader: it applies each record to its own
//! [`MasterData`] ([`MasterData::apply_location`] / [`MasterData::apply_item`]: an upsert, a
//! tombstone deletes) and, after each poll that changed something, publishes a copy as a new
//! `Arc` with a generation number. The service loop looks at the generation once per step (one
//! atomic load) and hands a new table to its shards between batches, so the hot path reads a
//! plain `Arc` without a lock, and a change (a time zone, say) applies to the events processed
//! after it, without a restart.
//!
//! Decisions:
//! - a missing topic is an empty table (every location UTC, every kind unknown: what the
//!   engine does without master data), logged once; the reader looks for it again every
//!   [`RECHECK`] and reads it from the beginning once it exists. The service does not create
//!   it: another system owns the master data, and a deployment without it keeps working.
//! - a bad record (not JSON, wrong shape, unknown kind or time zone, no key, key ≠ id) is
//!   dead-lettered with its reason ([`MasterError::reason`]) and counted like any rejected
//!   input; the table keeps the previous value of that id. Each instance reads the whole
//!   table, so each instance dead-letters a bad record it reads (once per start): the dead
//!   letter's `__connect.errors.topic/partition/offset` headers identify duplicates. The dead
//!   letters are sent by the reader's own (idempotent, non-transactional) producer: they
//!   belong to no input offset, so no batch transaction has to carry them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::Core;
use crate::config::Config;
use crate::master::{MasterData, MasterError};
use crate::reject::{clip, RejectReason, Rejection};
use crate::sink::kafka::{EventProducer, ProducerSettings};
use crate::telemetry::events::Rejected as RejectedEvent;

/// How often the reader looks for a missing topic (or new partitions) once loaded.
pub const RECHECK: Duration = Duration::from_secs(5);
/// ... and before the first full read (a broker not answering yet).
const RECHECK_LOADING: Duration = Duration::from_millis(500);
/// Bound on the reader's metadata and watermark queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// One poll of the reader.
const POLL: Duration = Duration::from_millis(50);
/// Records applied per published table at most (a big initial read publishes at the end).
const BATCH: usize = 10_000;
/// The first full read is also done when the partitions still short of their end at
/// assignment yield nothing for this long: a broker whose reported end is off (or a
/// transaction left open) must not keep the instance from ever starting.
const LOAD_QUIET: Duration = Duration::from_secs(3);

const REASONS: usize = RejectReason::ALL.len();

/// The two tables' topics, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Table {
    Locations,
    Items,
}

/// What the reader thread shares with the service loop.
#[derive(Debug, Default)]
struct Shared {
    table: Mutex<Arc<MasterData>>,
    /// Bumped after each publication of `table`.
    generation: AtomicU64,
    /// The first full read is done.
    loaded: AtomicBool,
    /// Records refused, by [`RejectReason::index`] (cumulative).
    rejected: [AtomicU64; REASONS],
    /// Records dead-lettered, by [`RejectReason::index`] (cumulative).
    dead_lettered: [AtomicU64; REASONS],
}

/// The service loop's handle on the master-data reader.
#[derive(Debug)]
pub(crate) struct MasterTables {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The table the shards were last given, and its generation.
    current: Arc<MasterData>,
    generation: u64,
    /// Rejections and dead letters already reported, by reason.
    reported: [[u64; REASONS]; 2],
}

impl MasterTables {
    /// Starts the reader thread (it connects lazily: a broker not up yet only delays the
    /// first full read).
    pub(crate) fn start(cfg: &Config) -> Result<Self, rdkafka::error::KafkaError> {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader::new(cfg)?;
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("master-data".to_owned())
                .spawn(move || reader.run(&shared, &stop))
                .map_err(|e| {
                    rdkafka::error::KafkaError::ClientCreation(format!(
                        "cannot start the master-data reader: {e}"
                    ))
                })?
        };
        Ok(MasterTables {
            shared,
            stop,
            thread: Some(thread),
            current: Arc::default(),
            generation: 0,
            reported: [[0; REASONS]; 2],
        })
    }

    /// Whether the first full read of both tables is done.
    pub(crate) fn loaded(&self) -> bool {
        self.shared.loaded.load(Ordering::Acquire)
    }

    /// The newest table (a new `Arc` only when the reader published since the last call).
    pub(crate) fn current(&mut self) -> &Arc<MasterData> {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.generation = g;
            self.current = self
                .shared
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
        }
        &self.current
    }

    /// Records refused and dead letters sent since the last call, by reason.
    fn take_counts(&mut self) -> Option<[[u64; REASONS]; 2]> {
        let mut delta = [[0; REASONS]; 2];
        let mut any = false;
        for (k, counters) in [&self.shared.rejected, &self.shared.dead_lettered]
            .into_iter()
            .enumerate()
        {
            for (i, c) in counters.iter().enumerate() {
                let now = c.load(Ordering::Relaxed);
                delta[k][i] = now - self.reported[k][i];
                self.reported[k][i] = now;
                any |= delta[k][i] > 0;
            }
        }
        any.then_some(delta)
    }
}

impl Drop for MasterTables {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reader thread's state.
struct Reader {
    consumer: BaseConsumer,
    topics: [(Table, String); 2],
    out: Apply,
    /// Assigned partitions.
    assigned: BTreeMap<(Table, i32), ()>,
    /// Partitions of the first full read not read to their end yet: the end (high watermark)
    /// when they were assigned.
    pending: BTreeMap<(Table, i32), i64>,
    /// Topics reported missing (logged once each).
    missing: [bool; 2],
    /// When the last record was read or partitions were added.
    progress: Instant,
}

impl Reader {
    fn new(cfg: &Config) -> Result<Self, rdkafka::error::KafkaError> {
        let group = format!("{}-master-data-reader", cfg.kafka.group_id);
        let consumer: BaseConsumer =
            super::setup::reader_config(cfg, &group, "read_committed", "100")
                .set("auto.offset.reset", "earliest")
                .create()?;
        let mut settings = ProducerSettings::new(cfg.kafka.bootstrap_servers.clone());
        settings.client_id = "stockwatch-master-data".to_owned();
        settings.properties = super::setup::producer_properties(cfg);
        let producer = EventProducer::new(settings).map_err(|e| {
            rdkafka::error::KafkaError::ClientCreation(format!("master-data producer: {e}"))
        })?;
        let t = &cfg.kafka.topics;
        Ok(Reader {
            consumer,
            topics: [
                (Table::Locations, t.locations.clone()),
                (Table::Items, t.items.clone()),
            ],
            out: Apply {
                producer,
                locations: t.locations.clone(),
                dead_letter: t.dead_letter.clone(),
                dead_letter_limits: super::dead_letter_limits(cfg),
                table: MasterData::default(),
            },
            assigned: BTreeMap::new(),
            pending: BTreeMap::new(),
            missing: [false; 2],
            progress: Instant::now(),
        })
    }

    fn run(mut self, shared: &Shared, stop: &AtomicBool) {
        let mut checked: Option<Instant> = None;
        let mut checked_once = false;
        while !stop.load(Ordering::Relaxed) {
            let loaded = shared.loaded.load(Ordering::Relaxed);
            let every = if loaded { RECHECK } else { RECHECK_LOADING };
            if checked.is_none_or(|t| t.elapsed() >= every) {
                checked = Some(Instant::now());
                checked_once |= self.refresh_assignment();
            }
            let mut changed = false;
            let mut n = 0;
            if !self.assigned.is_empty() {
                while n < BATCH {
                    match self
                        .consumer
                        .poll(if n == 0 { POLL } else { Duration::ZERO })
                    {
                        Some(Ok(m)) => {
                            changed |= self.out.apply(&m, shared);
                            n += 1;
                            self.progress = Instant::now();
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "master-data reader: consumer error");
                            break;
                        }
                        None => break,
                    }
                }
                self.out.producer.poll(Duration::ZERO);
            } else {
                std::thread::sleep(POLL);
            }
            if loaded {
                // Partitions found later are simply followed.
                self.pending.clear();
            } else if !self.pending.is_empty() {
                self.drop_reached();
                if !self.pending.is_empty() && self.progress.elapsed() >= LOAD_QUIET {
                    tracing::warn!(
                        partitions = ?self.pending.keys().collect::<Vec<_>>(),
                        quiet_ms = LOAD_QUIET.as_millis() as u64,
                        "master data: partitions short of the end they had when assigned \
                         yield nothing more; the first full read is taken as done"
                    );
                    self.pending.clear();
                }
            }
            let done = checked_once && self.pending.is_empty() && !loaded;
            // Nothing reads the table before the first full read is done: one copy then.
            if (changed && loaded) || done {
                *shared.table.lock().unwrap_or_else(PoisonError::into_inner) =
                    Arc::new(self.out.table.clone());
                shared.generation.fetch_add(1, Ordering::Release);
            }
            if done {
                let (locations, items) = self.out.table.len();
                tracing::info!(locations, items, "master data loaded");
                shared.loaded.store(true, Ordering::Release);
            }
        }
        let _ = self.out.producer.flush(Duration::from_secs(5));
    }

    /// Assigns every partition of both topics (new ones from the beginning, the others where
    /// they are); the new ones join the first full read while it is not done. Whether both
    /// topics could be looked up (each exists or is known missing).
    fn refresh_assignment(&mut self) -> bool {
        let mut added = Vec::new();
        for (i, (table, topic)) in self.topics.iter().enumerate() {
            let md = match self.consumer.fetch_metadata(Some(topic), QUERY_TIMEOUT) {
                Ok(md) => md,
                Err(e) => {
                    tracing::warn!(topic, error = %e, "master-data reader: metadata");
                    return false;
                }
            };
            let partitions: Vec<i32> = md
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                .unwrap_or_default();
            if partitions.is_empty() {
                if !self.missing[i] {
                    self.missing[i] = true;
                    tracing::warn!(
                        topic,
                        "master-data topic does not exist: an empty table (every location UTC, \
                         kinds unknown) until it does"
                    );
                }
                continue;
            }
            self.missing[i] = false;
            for p in partitions {
                if !self.assigned.contains_key(&(*table, p)) {
                    added.push((*table, topic.clone(), p));
                }
            }
        }
        if added.is_empty() {
            return true;
        }
        for (table, topic, p) in &added {
            match self.consumer.fetch_watermarks(topic, *p, QUERY_TIMEOUT) {
                Ok((low, high)) => {
                    if high > low {
                        self.pending.insert((*table, *p), high);
                    }
                }
                Err(e) => {
                    tracing::warn!(topic, partition = p, error = %e, "master-data reader: watermarks");
                    return false;
                }
            }
            self.assigned.insert((*table, *p), ());
        }
        self.progress = Instant::now();
        // The full assignment: the partitions held keep their positions.
        let positions = self.consumer.position().unwrap_or_default();
        let mut tpl = TopicPartitionList::new();
        for (table, p) in self.assigned.keys() {
            let topic = self.topic(*table);
            let at = positions
                .find_partition(topic, *p)
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(_)))
                .unwrap_or(Offset::Beginning);
            let _ = tpl.add_partition_offset(topic, *p, at);
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            tracing::warn!(error = %e, "master-data reader: assign");
            for (table, _, p) in &added {
                self.assigned.remove(&(*table, *p));
                self.pending.remove(&(*table, *p));
            }
            return false;
        }
        true
    }

    fn topic(&self, table: Table) -> &str {
        &self.topics[table as usize].1
    }

    /// Removes from `pending` the partitions read up to their end at assignment.
    fn drop_reached(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let topics = &self.topics;
        self.pending.retain(|(table, p), end| {
            match positions
                .find_partition(&topics[*table as usize].1, *p)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o < *end,
                _ => true,
            }
        });
    }
}

/// The table the reader builds, and where its refused records go.
struct Apply {
    producer: EventProducer,
    /// The locations topic (any other record is an item).
    locations: String,
    dead_letter: String,
    dead_letter_limits: crate::sink::record::DeadLetterLimits,
    table: MasterData,
}

impl Apply {
    /// Applies one record; a refused one is dead-lettered. Whether the table changed.
    fn apply(&mut self, m: &BorrowedMessage<'_>, shared: &Shared) -> bool {
        let table = if m.topic() == self.locations {
            Table::Locations
        } else {
            Table::Items
        };
        let result = match m.key().map(std::str::from_utf8) {
            Some(Ok(key)) => match table {
                Table::Locations => self.table.apply_location(key, m.payload()),
                Table::Items => self.table.apply_item(key, m.payload()),
            },
            _ => Err(MasterError::Miskeyed(
                String::new(),
                "a master-data record needs its id as a UTF-8 key",
            )),
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                self.dead_letter(m, &e, shared);
                false
            }
        }
    }

    fn dead_letter(&mut self, m: &BorrowedMessage<'_>, e: &MasterError, shared: &Shared) {
        let reason = e.reason();
        shared.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
        let detail = e.to_string();
        tracing::warn!(
            topic = m.topic(),
            partition = m.partition(),
            offset = m.offset(),
            reason = reason.as_str(),
            error = clip(&detail),
            "master-data record refused: the previous value stays in force"
        );
        let rejection = Rejection {
            index: 0,
            reason,
            detail: clip(&detail).to_owned(),
        };
        // Headers are read as bytes (a name that is not UTF-8 must not panic the reader).
        match super::send_dead_letter(
            &mut self.producer,
            &self.dead_letter,
            self.dead_letter_limits,
            m,
            &rejection,
        ) {
            Ok(()) => {
                shared.dead_lettered[reason.index()].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "master-data reader: dead letter not sent"),
        }
    }
}

impl Core {
    /// At the start of a step: reports whether the master data is still loading (readiness),
    /// counts its dead letters, and gives every shard the newest table. False until the first
    /// full read is done (the step then reads no input).
    pub(super) fn sync_master(&mut self) -> bool {
        let loaded = self.master.loaded();
        if self.master_loading != Some(!loaded) {
            self.master_loading = Some(!loaded);
            self.observe.health.set_master_data_loading(!loaded);
        }
        if let Some([rejected, dead]) = self.master.take_counts() {
            for i in 0..REASONS {
                self.stats.rejected[i] += rejected[i];
                self.stats.dead_letters += dead[i];
            }
            RejectedEvent {
                rejected: &rejected,
                dead_lettered: &dead,
            }
            .emit(&self.observe.metrics);
        }
        if !loaded {
            return false;
        }
        let table = self.master.current();
        for slot in self.slots.values_mut() {
            if !Arc::ptr_eq(slot.shard.master(), table) {
                slot.shard.set_master(table.clone());
            }
        }
        true
    }
}
