//! The inventory side of the world: true stock, the store system's book stock,
//! replenishment, deliveries and shrink, simulated hour by hour.
//!
//! Every (location, SKU) pair is a key. Stores sell (see [`super::demand`]) out of their
//! *true* stock, so demand is censored: nobody buys what is not on the shelf. Each store runs
//! an (s, S) policy on its *book* stock (what its system believes) every morning and orders
//! from its DC; DCs order from `SUPPLIER` the same way. Shrink (theft, damage) lowers true
//! stock without any event, so the book — and the engine's `receipts − sales` — drifts above
//! the truth until a shelf scan finds the shelf empty; those stockouts are visible only
//! through `availability` events.
//!
//! With contract v2 ([`Contract::V2`]) the world also speaks the new event types (all its
//! extra draws come from a separate random stream, so v1 runs are unchanged): the run starts
//! with stock on the shelves and no initial receipts; the ERP of a share of locations sends
//! the *book* position every night (`inventory_count`, `snapshot`); associates count shelves
//! (`cycle_count`, the truth, which also corrects the book); a share of shrink is recorded,
//! damage, expiry of fresh goods and customer returns are `adjustment`s; stores lend each other
//! stock (`transfer_out` / `transfer_in`); DCs' picks for stores are `transfer_out`s; late
//! deliveries are announced by a shipment revision (new ETA) and some supplier shipments are
//! cancelled. Stores keep their local time (see [`super::masterdata`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{Contract, DemandSource, SimConfig, SimError, V2Config};
use super::demand::{log_normal, pick, poisson, Demand};
use super::event::{Body, CountSource, Event, EventId, Names, Origin, Reason, Reference, Source};
use super::format::{hour_of_day, weekday, DAY_MS, HOUR_MS};
use super::masterdata::offset_hours;
use super::real::Sample;
use super::stats::WorldStats;
use super::truth::Episode;
use super::Topic;

mod hour;
mod replenish;
mod v2;

/// Hour of day at which DCs review their stock and order from the supplier.
const DC_REVIEW_HOUR: usize = 4;
/// Hour of day at which stores review their stock and order from their DC.
const STORE_REVIEW_HOUR: usize = 6;
/// Planned (ETA) hour of day of deliveries to stores and to DCs.
const STORE_DELIVERY_HOUR: i64 = 7;
const DC_DELIVERY_HOUR: i64 = 9;
/// Days from a store's order to its planned delivery, and their probabilities.
const STORE_LEAD_DAYS: [(i64, f64); 5] = [(1, 0.3), (2, 0.45), (3, 0.15), (4, 0.07), (5, 0.03)];
/// Days from a DC's order to its planned delivery, and their probabilities.
const SUPPLIER_LEAD_DAYS: [(i64, f64); 6] =
    [(3, 0.1), (4, 0.2), (5, 0.25), (6, 0.2), (7, 0.15), (8, 0.1)];
/// Days of demand a store must cover between two deliveries on average (lead time plus the
/// daily review period): the base of its reorder point.
const STORE_EXPOSURE_DAYS: f64 = 3.2;
/// The same for a DC (supplier lead time plus review).
const DC_EXPOSURE_DAYS: f64 = 6.5;
/// How many days ahead stores and DCs look for promotions when they order (about their
/// lead time plus a review).
const STORE_PLAN_HORIZON_DAYS: i64 = 3;
const DC_PLAN_HORIZON_DAYS: i64 = 8;
/// DCs order whole pallets of this many case packs.
const DC_PALLET_PACKS: i64 = 10;
/// Chance that a delivery is more than a few hours late (8–36 h), and very late (36–72 h).
const LATE_DELIVERY: f64 = 0.08;
const VERY_LATE_DELIVERY: f64 = 0.02;
/// Chance that a receipt's quantity differs from what was shipped.
const RECEIPT_MISMATCH: f64 = 0.04;
/// Chance per open hour of a shelf scan of one key, when the shelf has stock and when it is
/// empty (gaps are noticed more often).
const SCAN_CHANCE: f64 = 0.02;
const SCAN_EMPTY_CHANCE: f64 = 0.1;
/// Chance per open hour that a key loses stock without a sale (about 2 % per day).
const SHRINK_CHANCE: f64 = 0.0015;
/// Chance that a customer who found the shelf empty was an online order whose picker reports
/// "not found" (at most one report per key and hour).
const PICKER_CHANCE: f64 = 0.25;

/// Stream of the contract-v2 world's draws, apart from the v1 world's.
const V2_STREAM: u64 = 2;
/// Local hour of day of the nightly snapshots.
const SNAPSHOT_LOCAL_HOUR: usize = 3;
/// A late delivery is announced when it is at least this late.
const ANNOUNCED_DELAY_MS: i64 = 8 * HOUR_MS;
/// Chance per open store key-hour of a damaged unit written off.
const DAMAGE_CHANCE: f64 = 0.0004;
/// Chance per fresh (by-weight) store key and day of an expiry write-off.
const EXPIRY_CHANCE: f64 = 0.05;
/// Customer returns per customer served.
const RETURNS_PER_CUSTOMER: f64 = 0.004;
/// Opening hours per day, roughly: turns `cycle_count_days` into a chance per open hour.
const OPEN_HOURS_PER_DAY: f64 = 14.0;

/// One generated event, waiting to be emitted in event-time order.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) time_ms: i64,
    /// Generation counter (also the event id number): ties in time keep generation order.
    pub(crate) seq: u64,
    pub(crate) topic: Topic,
    pub(crate) loc: u32,
    pub(crate) sku: u32,
    pub(crate) value: Vec<u8>,
}

/// A shipment on its way; ordered by arrival time, then shipment id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    time_ms: i64,
    shipment: u64,
    key: u32,
    shipped_milli: i64,
    received_milli: i64,
}

/// The state of one (location, SKU); quantities in thousandths of a unit (grams by weight).
#[derive(Debug, Clone, Default)]
struct KeyState {
    /// Expected demand per day before profiles (for a DC: the sum over its stores).
    rate: f64,
    /// What is physically there.
    on_hand: i64,
    /// What the store system believes (≥ `on_hand`: shrink only lowers the truth).
    book: i64,
    in_transit: i64,
    /// Reorder point `s`: order when book + in transit ≤ s.
    reorder: i64,
    /// Order-up-to level `S`.
    order_up_to: i64,
    /// The shelf was empty at some point of today's opening hours.
    out_today: bool,
    /// The stream has told its on hand (a receipt or an inventory count).
    known: bool,
    /// Since when the true stock is out (truth recording).
    empty_since: Option<i64>,
    /// The book still showed stock when the shelf emptied.
    phantom: bool,
}

impl KeyState {
    /// The (s, S) policy: what to order up to S when `position` (stock the system believes
    /// in, plus in transit) is at or below s; both levels scaled by `plan` for promotions.
    fn order_for(&self, position: i64, plan: f64) -> Option<i64> {
        let reorder = (self.reorder as f64 * plan) as i64;
        let order_up_to = (self.order_up_to as f64 * plan) as i64;
        (position <= reorder).then_some(order_up_to - position)
    }
}

/// Something that happens to a key within one hour, applied in time order.
#[derive(Debug, Clone, Copy)]
enum Happening {
    Arrival(Arrival),
    Customer {
        wants_milli: i64,
    },
    Scan,
    Shrink,
    /// Contract v2: a cycle count of the shelf.
    Count,
    /// Contract v2: a unit damaged and written off.
    Damage,
    /// Contract v2: a customer brings units back.
    Return,
}

/// An out-of-stock episode as recorded: key index, start, end (`None`: still out), phantom.
type RawEpisode = (u32, i64, Option<i64>, bool);

/// A change announced for a shipment on its way (contract v2), due at `time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Revision {
    time_ms: i64,
    shipment: u64,
    key: u32,
    origin: Origin,
    qty_milli: i64,
    /// The new ETA (a revision) or the old one (a cancellation).
    eta_ms: i64,
    cancel: bool,
    /// A short shipment: how much less than first announced (`qty_milli` is the new quantity).
    short_by_milli: i64,
}

/// The contract-v2 part of the world.
#[derive(Debug)]
struct V2 {
    knobs: V2Config,
    rng: ChaCha8Rng,
    /// Per location: sends nightly snapshots.
    snapshots: Vec<bool>,
    /// Per location: UTC offset, hours.
    offsets: Vec<i64>,
    revisions: BinaryHeap<Reverse<Revision>>,
    next_transfer: u64,
}

/// The simulated store network, advanced one hour at a time.
#[derive(Debug)]
pub(crate) struct World {
    names: Names,
    demand: Demand,
    keys: Vec<KeyState>,
    arrivals: BinaryHeap<Reverse<Arrival>>,
    rng: ChaCha8Rng,
    start_ms: i64,
    hours: u64,
    hour: u64,
    finished: bool,
    next_event: u64,
    next_shipment: u64,
    // Buffers reused from hour to hour.
    due: Vec<Arrival>,
    happenings: Vec<(i64, Happening)>,
    scratch: Vec<u8>,
    stats: WorldStats,
    v2: Option<V2>,
    /// Out-of-stock episodes, when recorded.
    truth: Option<Vec<RawEpisode>>,
}

/// Rounds a positive quantity up to a multiple of `unit`.
fn round_up(qty: i64, unit: i64) -> i64 {
    (qty + unit - 1).div_euclid(unit) * unit
}

impl World {
    /// Draws the network (stores, SKUs, stock policies, initial stock) from `cfg.seed`;
    /// fails only if the real demand sample `cfg.demand` asks for cannot be read.
    pub(crate) fn new(cfg: &SimConfig) -> Result<Self, SimError> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let names = Names::new(cfg.seed, cfg.dcs, cfg.stores, cfg.skus);
        let real = match cfg.demand {
            DemandSource::Synthetic => None,
            DemandSource::Frn50kSample => Some((Sample::embedded()?, weekday(cfg.start_ms))),
        };
        let demand = Demand::new(&mut rng, cfg.stores, cfg.skus, real);
        let skus = cfg.skus as usize;
        let dcs = cfg.dcs as usize;
        let mut keys = vec![KeyState::default(); names.locations() as usize * skus];
        for (store, params) in demand.stores.iter().enumerate() {
            let loc = dcs + store;
            for (sku, params_sku) in demand.skus.iter().enumerate() {
                let rate = params_sku.daily_rate * params.size * log_normal(&mut rng, 1.0, 0.25);
                let unit = if params_sku.by_weight { 100 } else { 1_000 };
                let mu = rate * STORE_EXPOSURE_DAYS;
                // Safety factors differ by key so that some keys run tight.
                let sd = (mu * params_sku.dispersion()).sqrt();
                let z = rng.random_range(0.5..2.0);
                let reorder = round_up((1_000.0 * (mu + z * sd)) as i64, unit).max(unit);
                let cycle_days = if params_sku.by_weight {
                    rng.random_range(2.0..4.0)
                } else {
                    rng.random_range(4.0..9.0)
                };
                let lot = ((1_000.0 * rate * cycle_days) as i64).max(params_sku.pack_milli);
                let order_up_to = reorder + round_up(lot, unit);
                let fill: f64 = rng.random_range(0.2..1.0);
                let start = reorder
                    + round_up(((order_up_to - reorder) as f64 * fill) as i64, unit).max(unit);
                keys[loc * skus + sku] = KeyState {
                    rate,
                    on_hand: start,
                    book: start,
                    reorder,
                    order_up_to,
                    ..KeyState::default()
                };
            }
        }
        // A DC's demand is the sum of its stores' demand.
        for store_loc in dcs..keys.len() / skus {
            if let Some(dc) = names.dc_for_store(store_loc as u32) {
                for sku in 0..skus {
                    keys[dc as usize * skus + sku].rate += keys[store_loc * skus + sku].rate;
                }
            }
        }
        for dc in 0..dcs {
            for (sku, params_sku) in demand.skus.iter().enumerate() {
                let rate = keys[dc * skus + sku].rate;
                let pallet = params_sku.pack_milli * DC_PALLET_PACKS;
                let mu = rate * DC_EXPOSURE_DAYS;
                // Store orders arrive in lumps of case packs: a generous safety stock.
                let sd = (mu * params_sku.dispersion()).sqrt();
                let unit = if params_sku.by_weight { 100 } else { 1_000 };
                let reorder = round_up((1_000.0 * (1.3 * mu + 3.0 * sd)) as i64, unit);
                let lot = (1_000.0 * rate * rng.random_range(7.0..12.0)) as i64;
                let order_up_to = reorder + round_up(lot.max(1), pallet);
                let fill: f64 = rng.random_range(0.3..1.0);
                let start =
                    reorder + round_up(((order_up_to - reorder) as f64 * fill) as i64, unit);
                keys[dc * skus + sku] = KeyState {
                    rate,
                    on_hand: start.max(1_000),
                    book: start.max(1_000),
                    reorder,
                    order_up_to,
                    ..KeyState::default()
                };
            }
        }
        let v2 = (cfg.contract == Contract::V2).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(V2_STREAM);
            let locations = names.locations();
            V2 {
                knobs: cfg.v2.clone(),
                snapshots: (0..locations)
                    .map(|_| rng.random_bool(cfg.v2.snapshot_share))
                    .collect(),
                offsets: (0..locations)
                    .map(|l| offset_hours(&names, cfg.contract, l))
                    .collect(),
                rng,
                revisions: BinaryHeap::new(),
                next_transfer: 0,
            }
        });
        Ok(Self {
            v2,
            truth: cfg.record_truth.then(Vec::new),
            names,
            demand,
            keys,
            arrivals: BinaryHeap::new(),
            rng,
            start_ms: cfg.start_ms,
            hours: u64::from(cfg.days) * 24,
            hour: 0,
            finished: false,
            next_event: 0,
            next_shipment: 0,
            due: Vec::new(),
            happenings: Vec::new(),
            scratch: Vec::with_capacity(64),
            stats: WorldStats::default(),
        })
    }

    /// Writes the SKUs' master data (see [`super::masterdata::write_items`]).
    pub(crate) fn write_items(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        super::masterdata::write_items(
            &self.names,
            |sku| {
                let p = &self.demand.skus[sku as usize];
                (p.by_weight, p.pack_milli)
            },
            out,
        )
    }

    /// Location and SKU names of the network.
    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    /// Ground-truth counters so far.
    pub(crate) fn stats(&self) -> &WorldStats {
        &self.stats
    }

    /// Simulates the next hour, appending its events to `out` (unsorted); returns `false`
    /// once every hour of the run has been simulated.
    pub(crate) fn next_hour(&mut self, out: &mut Vec<Pending>) -> bool {
        if self.hour >= self.hours {
            if !self.finished {
                self.finished = true;
                self.close_day();
            }
            return false;
        }
        if self.v2.is_some() {
            return self.next_hour_v2(out);
        }
        let hour_start = self.start_ms + self.hour as i64 * HOUR_MS;
        let hour = hour_of_day(hour_start);
        let day = hour_start.div_euclid(DAY_MS) - self.start_ms.div_euclid(DAY_MS);
        if self.hour == 0 {
            self.stats.promotions += self.demand.start_day(&mut self.rng, day, true);
            self.initial_receipts(out);
        } else if hour == 0 {
            self.close_day();
            self.stats.promotions += self.demand.start_day(&mut self.rng, day, false);
        }
        if hour == DC_REVIEW_HOUR {
            self.review_dcs(out, hour_start);
        }
        if hour == STORE_REVIEW_HOUR {
            self.review_stores(out, hour_start, day);
        }
        self.run_hour(out, hour_start, hour, weekday(hour_start));
        self.hour += 1;
        self.stats.hours += 1;
        true
    }

    /// Truth recording after a change of `key`'s stock at `time_ms`: an episode starts when
    /// the true stock reaches zero and ends when it is back.
    fn note_stock(&mut self, key: usize, time_ms: i64) {
        let Some(truth) = self.truth.as_mut() else {
            return;
        };
        let k = &mut self.keys[key];
        match (k.on_hand <= 0, k.empty_since) {
            (true, None) => {
                k.empty_since = Some(time_ms);
                k.phantom = k.book > 0;
            }
            (false, Some(start)) => {
                truth.push((key as u32, start, Some(time_ms), k.phantom));
                k.empty_since = None;
            }
            _ => {}
        }
    }

    /// The recorded episodes, open ones included (ending `None`).
    pub(crate) fn episodes(&self) -> Vec<Episode> {
        let skus = self.names.skus();
        let open = self.keys.iter().enumerate().filter_map(|(i, k)| {
            k.empty_since
                .map(|start| (i as u32, start, None, k.phantom))
        });
        self.truth
            .iter()
            .flatten()
            .copied()
            .chain(open)
            .map(|(key, start_ms, end_ms, phantom)| Episode {
                location: self.names.location(key / skus).to_owned(),
                sku: self.names.sku(key % skus).to_owned(),
                start_ms,
                end_ms,
                phantom,
            })
            .collect()
    }

    /// Numbers, encodes and queues one event.
    fn emit(&mut self, out: &mut Vec<Pending>, loc: u32, sku: u32, time_ms: i64, body: Body) {
        let seq = self.next_event;
        self.next_event += 1;
        let event = Event {
            id: EventId::Good(seq),
            loc,
            sku,
            time_ms,
            // System-generated flags carry milliseconds; people and scanners write seconds.
            millis: matches!(
                body,
                Body::Availability {
                    source: Source::StoreSystem,
                    ..
                }
            ),
            body,
        };
        let mut value = Vec::with_capacity(192);
        event.write_json(&self.names, &mut self.scratch, &mut value);
        self.stats.count(&body);
        if matches!(body, Body::Receipt { .. } | Body::Count { .. }) {
            self.keys[(loc * self.names.skus() + sku) as usize].known = true;
        }
        out.push(Pending {
            time_ms,
            seq,
            topic: event.topic(),
            loc,
            sku,
            value,
        });
    }

    /// The receipt that establishes on-hand stock of every key at the start of the run.
    fn initial_receipts(&mut self, out: &mut Vec<Pending>) {
        let skus = self.names.skus();
        for loc in 0..self.names.locations() {
            for sku in 0..skus {
                let qty_milli = self.keys[(loc * skus + sku) as usize].on_hand;
                let body = Body::Receipt {
                    shipment: None,
                    qty_milli,
                };
                self.emit(out, loc, sku, self.start_ms, body);
            }
        }
    }

    /// Ends a day of the run: counts store key-days and those with an empty shelf.
    fn close_day(&mut self) {
        if self.stats.keys_known_first_day.is_none() {
            self.stats.keys = self.keys.len() as u64;
            self.stats.keys_known_first_day =
                Some(self.keys.iter().filter(|k| k.known).count() as u64);
        }
        let first_store = self.names.dcs() as usize * self.names.skus() as usize;
        for key in &mut self.keys[first_store..] {
            self.stats.store_key_days += 1;
            self.stats.out_of_stock_key_days += u64::from(key.out_today);
            key.out_today = false;
        }
    }
}
