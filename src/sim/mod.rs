//! A deterministic store-network event generator: the load for every test, benchmark, demo
//! and load run.
//!
//! It simulates stores and DCs selling and replenishing SKUs hour by hour, and emits the
//! input topics of the contract (docs/architecture.md#contracts; the four of v1, or with
//! [`Contract::V2`] also inventory counts and adjustments) as Kafka-ready records (key
//! `"{location}|{sku}"`, one-line JSON value), roughly in event-time order, optionally mixed
//! with planned duplicates, late events and bad records of every [`BadKind`]. The same
//! [`SimConfig`] always gives the same records, byte for byte.
//!
//! Layout:
//! - `config`: [`SimConfig`], its defaults and validation.
//! - `demand`: how much each SKU sells per store and hour (rates, profiles, promotions).
//! - `real`: the embedded FreshRetailNet-50K sample behind [`DemandSource::Frn50kSample`].
//! - `world`: stock, replenishment, deliveries, shrink and shelf observations.
//! - `event`: the contract's events and their JSON encoding; `format`: times and numbers.
//! - `bad`: the catalogue of bad records.
//! - `masterdata`: locations (kind, time zone, DC, region) and items as CSV tables.
//! - `stats`: what was emitted, and the world's ground-truth counters.
//! - [`truth`]: every true out-of-stock episode, and alerts scored against them.
//! - this file: the [`Simulator`] iterator, which orders the world's events and adds the
//!   noise (duplicates, late events, bad records).
//!
//! ```
//! use stockwatch::sim::{SimConfig, Simulator};
//! let cfg = SimConfig { stores: 2, skus: 5, days: 1, ..SimConfig::default() };
//! let records: Vec<_> = Simulator::new(cfg).unwrap().collect();
//! assert!(records.iter().any(|r| r.value.starts_with(br#"{"event_id":"#)));
//! ```

mod bad;
mod config;
mod demand;
mod event;
mod format;
pub mod load;
mod masterdata;
mod real;
mod stats;
pub mod truth;
mod world;

#[cfg(test)]
mod tests;

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use bad::BadKind;
pub use config::{
    Contract, DemandSource, SimConfig, SimError, V2Config, DEFAULT_LATE_DELAY_MS, DEFAULT_START_MS,
};
pub use real::{SampleError, UNITS_PER_SALE};
pub use stats::{SimStats, WorldStats};
pub use truth::Truth;

use bad::BadMaker;
use world::{Pending, World};

/// Stream of the noise decisions, apart from the world's, so that the noise knobs never
/// change the good events.
const NOISE_STREAM: u64 = 1;
/// Bounds of how long after its event time a duplicate is re-sent: inside an hour, so within
/// the engine's default lateness and its dedupe window.
const DUPLICATE_DELAY_MS: std::ops::Range<i64> = 60_000..2_700_000;

/// An input topic of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `sale` events.
    Sales,
    /// `shipment` events.
    Shipments,
    /// `receipt` events.
    Receipts,
    /// `availability` events.
    Availability,
    /// `inventory_count` events (contract v2).
    InventoryCounts,
    /// `adjustment` events (contract v2).
    Adjustments,
}

impl Topic {
    /// The topics of contract v1, in declaration order.
    pub const ALL: [Topic; 4] = [
        Topic::Sales,
        Topic::Shipments,
        Topic::Receipts,
        Topic::Availability,
    ];

    /// Every topic of contract v2 (v1's and the two new ones), in declaration order.
    pub const ALL_V2: [Topic; 6] = [
        Topic::Sales,
        Topic::Shipments,
        Topic::Receipts,
        Topic::Availability,
        Topic::InventoryCounts,
        Topic::Adjustments,
    ];

    /// The topics a stream of `contract` uses.
    pub fn of(contract: Contract) -> &'static [Topic] {
        match contract {
            Contract::V1 => &Topic::ALL,
            Contract::V2 => &Topic::ALL_V2,
        }
    }

    /// The topic's name: `sales`, `shipments`, `receipts`, `availability`,
    /// `inventory_counts` or `adjustments`.
    pub fn name(&self) -> &'static str {
        match self {
            Topic::Sales => "sales",
            Topic::Shipments => "shipments",
            Topic::Receipts => "receipts",
            Topic::Availability => "availability",
            Topic::InventoryCounts => "inventory_counts",
            Topic::Adjustments => "adjustments",
        }
    }

    /// Position in [`Topic::ALL_V2`] (and in [`Topic::ALL`] for the v1 topics).
    pub fn index(&self) -> usize {
        *self as usize
    }
}

/// Why a record is in the stream: what a correct consumer should do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordClass {
    /// A valid event, emitted on time: apply it.
    Good,
    /// A verbatim re-send of a good record, within the lateness: drop it as a duplicate.
    Duplicate,
    /// A valid event emitted after the stream moved `late_delay_ms` past it: reject as late.
    Late,
    /// A broken record: send it to the dead-letter topic.
    Bad(BadKind),
}

/// One Kafka-ready record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// The topic to produce it to.
    pub topic: Topic,
    /// The message key, `"{location}|{sku}"` (plausible even for bad records).
    pub key: Vec<u8>,
    /// The message: one line of JSON (no `'\n'`), or the broken bytes of a bad record.
    pub value: Vec<u8>,
    /// What the record is.
    pub class: RecordClass,
    /// The event time the record claims, in ms since the epoch (for a bad record whose time
    /// is unreadable, the stream time it was made at).
    pub event_time_ms: i64,
}

/// A good record held back to be emitted later.
#[derive(Debug)]
struct Delayed {
    emit_at_ms: i64,
    record: Pending,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Delayed {}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.emit_at_ms, self.record.seq).cmp(&(other.emit_at_ms, other.record.seq))
    }
}

/// The generator: an iterator of [`SimRecord`]s.
///
/// It simulates one hour of the world at a time (memory grows with the number of keys, not
/// of events), sorts that hour's events by event time (ties in generation order) and mixes
/// in the noise:
/// - a duplicate is re-sent before the first on-time record more than 1–45 minutes younger
///   than the original, so it is never more than 45 minutes behind the stream;
/// - a late event is held back until an on-time record at least `late_delay_ms` younger has
///   been emitted, so it is behind the stream by at least that much (the remaining ones are
///   flushed at the end of the run);
/// - a bad record takes each output slot with probability `bad_ratio`.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    world: World,
    world_done: bool,
    noise: ChaCha8Rng,
    bad: BadMaker,
    /// The current hour's on-time records, in emission order.
    ready: VecDeque<Pending>,
    hour: Vec<Pending>,
    duplicates: BinaryHeap<Reverse<Delayed>>,
    late: BinaryHeap<Reverse<Delayed>>,
    /// Latest event time of an on-time good record emitted so far.
    frontier_ms: i64,
    stats: SimStats,
}

impl Simulator {
    /// A simulator for `cfg`, after validating it.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let mut noise = ChaCha8Rng::seed_from_u64(cfg.seed);
        noise.set_stream(NOISE_STREAM);
        Ok(Self {
            world: World::new(&cfg)?,
            world_done: false,
            noise,
            bad: BadMaker::default(),
            ready: VecDeque::new(),
            hour: Vec::new(),
            duplicates: BinaryHeap::new(),
            late: BinaryHeap::new(),
            frontier_ms: cfg.start_ms,
            stats: SimStats::default(),
            cfg,
        })
    }

    /// The configuration being simulated.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// What has been emitted so far, and the world's ground truth.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The ground truth so far: every out-of-stock episode (with
    /// [`SimConfig::record_truth`]; none otherwise), the DCs, and the share of keys known after
    /// the first day.
    pub fn truth(&self) -> Truth {
        let names = self.world.names();
        let dc_keys = u64::from(names.dcs()) * u64::from(names.skus());
        let all = u64::from(names.locations()) * u64::from(names.skus());
        Truth {
            start_ms: self.cfg.start_ms,
            end_ms: self.cfg.start_ms + self.stats.world.hours as i64 * format::HOUR_MS,
            dcs: (0..names.dcs())
                .map(|d| names.location(d).to_owned())
                .collect(),
            store_keys: all - dc_keys,
            dc_keys,
            known_after_first_day: self.stats.world.known_after_first_day().unwrap_or(0.0),
            episodes: self.world.episodes(),
        }
    }

    /// Writes the network's locations as CSV: `location,kind,time_zone,dc,region` (US zones
    /// with contract v2, UTC with v1).
    pub fn write_locations(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        masterdata::write_locations(self.world.names(), self.cfg.contract, out)
    }

    /// Writes the SKUs as CSV: `sku,category,case_pack`.
    pub fn write_items(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.world.write_items(out)
    }

    /// Simulates hours until one has events, or the run ends.
    fn refill(&mut self) {
        while self.ready.is_empty() && !self.world_done {
            self.world_done = !self.world.next_hour(&mut self.hour);
            self.hour.sort_unstable_by_key(|p| (p.time_ms, p.seq));
            self.ready.extend(self.hour.drain(..));
            self.stats.world = self.world.stats().clone();
        }
    }

    /// Makes a bad record near the current stream time.
    fn bad_record(&mut self) -> SimRecord {
        let names = self.world.names();
        let bad = self
            .bad
            .make(&mut self.noise, names, self.cfg.start_ms, self.frontier_ms);
        SimRecord {
            topic: bad.topic,
            key: self.world.names().key(bad.loc, bad.sku),
            value: bad.value,
            class: RecordClass::Bad(bad.kind),
            event_time_ms: bad.time_ms,
        }
    }

    fn record(&self, pending: Pending, class: RecordClass) -> SimRecord {
        SimRecord {
            topic: pending.topic,
            key: self.world.names().key(pending.loc, pending.sku),
            value: pending.value,
            class,
            event_time_ms: pending.time_ms,
        }
    }

    /// The next record before counting: a bad one, a held-back one that is due, or the next
    /// on-time one.
    fn next_record(&mut self) -> Option<SimRecord> {
        if self.cfg.bad_ratio > 0.0 && self.noise.random_bool(self.cfg.bad_ratio) {
            return Some(self.bad_record());
        }
        let held_back = self.cfg.late_ratio + self.cfg.duplicate_ratio;
        loop {
            self.refill();
            if let Some(Reverse(late)) = self.late.peek() {
                if late.emit_at_ms <= self.frontier_ms {
                    let late = self.late.pop()?.0;
                    return Some(self.record(late.record, RecordClass::Late));
                }
            }
            let next_ms = self.ready.front().map(|p| p.time_ms);
            if let Some(Reverse(dup)) = self.duplicates.peek() {
                if next_ms.is_none_or(|t| dup.emit_at_ms < t) {
                    let dup = self.duplicates.pop()?.0;
                    return Some(self.record(dup.record, RecordClass::Duplicate));
                }
            }
            let Some(pending) = self.ready.pop_front() else {
                // The run is over: flush what is still held back as late.
                let late = self.late.pop()?.0;
                return Some(self.record(late.record, RecordClass::Late));
            };
            if held_back > 0.0 {
                let u: f64 = self.noise.random();
                if u < self.cfg.late_ratio {
                    let emit_at_ms = pending.time_ms + self.cfg.late_delay_ms;
                    self.late.push(Reverse(Delayed {
                        emit_at_ms,
                        record: pending,
                    }));
                    continue;
                }
                if u < held_back {
                    let emit_at_ms = pending.time_ms + self.noise.random_range(DUPLICATE_DELAY_MS);
                    self.duplicates.push(Reverse(Delayed {
                        emit_at_ms,
                        record: pending.clone(),
                    }));
                }
            }
            self.frontier_ms = self.frontier_ms.max(pending.time_ms);
            return Some(self.record(pending, RecordClass::Good));
        }
    }
}

impl Iterator for Simulator {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        if self
            .cfg
            .max_events
            .is_some_and(|max| self.stats.records >= max)
        {
            return None;
        }
        let record = self.next_record()?;
        self.stats.count(&record);
        Some(record)
    }
}
