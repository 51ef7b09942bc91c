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

    /// [`World::next_hour`] of the contract-v2 world.
    fn next_hour_v2(&mut self, out: &mut Vec<Pending>) -> bool {
        let hour_start = self.start_ms + self.hour as i64 * HOUR_MS;
        let hour = hour_of_day(hour_start);
        let day = hour_start.div_euclid(DAY_MS) - self.start_ms.div_euclid(DAY_MS);
        if self.hour == 0 {
            self.stats.promotions += self.demand.start_day(&mut self.rng, day, true);
            // The stock already on the shelves is known only to the ERPs that send snapshots.
            for loc in 0..self.names.locations() {
                self.snapshot(out, loc, self.start_ms);
            }
        } else if hour == 0 {
            self.close_day();
            self.stats.promotions += self.demand.start_day(&mut self.rng, day, false);
        }
        self.due_revisions(out, hour_start + HOUR_MS);
        for loc in 0..self.names.locations() {
            let local = hour_start + self.offset_ms(loc);
            // As of the hour's start, before anything of the hour happens to the book.
            if hour_of_day(local) == SNAPSHOT_LOCAL_HOUR {
                self.snapshot(out, loc, hour_start);
            }
        }
        if hour == DC_REVIEW_HOUR {
            self.review_dcs(out, hour_start);
        }
        if hour == STORE_REVIEW_HOUR {
            self.expire_and_transfer(out, hour_start);
            self.review_stores(out, hour_start, day);
        }
        self.run_hour(out, hour_start, hour, weekday(hour_start));
        self.hour += 1;
        self.stats.hours += 1;
        true
    }

    /// The v2 world's random stream (only called with contract v2).
    fn v2_rng(&mut self) -> &mut ChaCha8Rng {
        &mut self
            .v2
            .as_mut()
            .expect("contract v2 world has its v2 part")
            .rng
    }

    /// UTC offset of location `loc`, ms (0 with contract v1).
    fn offset_ms(&self, loc: u32) -> i64 {
        self.v2
            .as_ref()
            .map_or(0, |v| v.offsets[loc as usize] * HOUR_MS)
    }

    /// The nightly ERP position of every SKU at `loc` (its book), if `loc` sends snapshots.
    fn snapshot(&mut self, out: &mut Vec<Pending>, loc: u32, time_ms: i64) {
        if !self.v2.as_ref().is_some_and(|v| v.snapshots[loc as usize]) {
            return;
        }
        let skus = self.names.skus();
        for sku in 0..skus {
            let qty_milli = self.keys[(loc * skus + sku) as usize].book;
            let body = Body::Count {
                qty_milli,
                source: CountSource::Snapshot,
            };
            self.emit(out, loc, sku, time_ms, body);
        }
    }

    /// Emits the shipment revisions and cancellations due before `until`.
    fn due_revisions(&mut self, out: &mut Vec<Pending>, until: i64) {
        let skus = self.names.skus();
        loop {
            let Some(v2) = self.v2.as_mut() else { return };
            let Some(Reverse(next)) = v2.revisions.peek() else {
                return;
            };
            if next.time_ms >= until {
                return;
            }
            let r = *next;
            v2.revisions.pop();
            let (loc, sku) = (r.key / skus, r.key % skus);
            let body = if r.cancel {
                self.keys[r.key as usize].in_transit -= r.qty_milli;
                self.stats.cancellations += 1;
                Body::Cancel {
                    shipment: r.shipment,
                    origin: r.origin,
                    qty_milli: r.qty_milli,
                    eta_ms: r.eta_ms,
                }
            } else {
                self.stats.shipment_revisions += 1;
                Body::Shipment {
                    shipment: r.shipment,
                    origin: r.origin,
                    qty_milli: r.qty_milli,
                    eta_ms: r.eta_ms,
                }
            };
            self.emit(out, loc, sku, r.time_ms, body);
        }
    }

    /// A recorded stock movement at `key`: stock and book move by `qty_milli`.
    fn adjust(
        &mut self,
        out: &mut Vec<Pending>,
        key: usize,
        time_ms: i64,
        qty_milli: i64,
        reason: Reason,
        reference: Option<Reference>,
    ) {
        if qty_milli == 0 {
            return;
        }
        let skus = self.names.skus();
        let k = &mut self.keys[key];
        k.on_hand += qty_milli;
        k.book += qty_milli;
        self.note_stock(key, time_ms);
        let body = Body::Adjustment {
            qty_milli,
            reason,
            reference,
        };
        self.emit(out, key as u32 / skus, key as u32 % skus, time_ms, body);
    }

    /// The morning (contract v2): fresh goods past their date are written off, and stores
    /// running low borrow a case from a store with plenty (both legs in this hour: stores are
    /// closed).
    fn expire_and_transfer(&mut self, out: &mut Vec<Pending>, hour_start: i64) {
        let skus = self.names.skus();
        let dcs = self.names.dcs();
        let stores = self.names.locations() - dcs;
        let transfer_chance = self.v2.as_ref().map_or(0.0, |v| v.knobs.transfer_chance);
        for loc in dcs..self.names.locations() {
            for sku in 0..skus {
                let key = (loc * skus + sku) as usize;
                let params = &self.demand.skus[sku as usize];
                let (by_weight, pack) = (params.by_weight, params.pack_milli);
                let rng = self.v2_rng();
                let at = hour_start + rng.random_range(0..1_800) * 1_000;
                if by_weight && rng.random_bool(EXPIRY_CHANCE) {
                    let share: f64 = rng.random_range(0.05..0.15);
                    let loss = ((self.keys[key].on_hand as f64 * share) as i64 / 100) * 100;
                    self.adjust(out, key, at, -loss, Reason::Expiry, None);
                }
                if stores < 2 || !self.v2_rng().random_bool(transfer_chance) {
                    continue;
                }
                let k = &self.keys[key];
                if k.book + k.in_transit > k.reorder {
                    continue;
                }
                let donor = dcs + self.v2_rng().random_range(0..stores);
                let from = (donor * skus + sku) as usize;
                let d = &self.keys[from];
                if donor == loc || d.on_hand < 2 * pack || d.book < d.order_up_to / 2 {
                    continue;
                }
                let qty = pack.min(d.on_hand / 2);
                let (id, arrive) = {
                    let v2 = self.v2.as_mut().expect("contract v2");
                    v2.next_transfer += 1;
                    let arrive = at + v2.rng.random_range(600..1_800) * 1_000;
                    (v2.next_transfer - 1, arrive)
                };
                self.stats.transfers_between_stores += 1;
                let reference = Some(Reference::Transfer(id));
                self.adjust(out, from, at, -qty, Reason::TransferOut, reference);
                self.adjust(out, key, arrive, qty, Reason::TransferIn, reference);
            }
        }
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

    /// Planned and actual delivery time of an order placed at `ordered_ms`.
    fn draw_delivery(&mut self, ordered_ms: i64, lead: &[(i64, f64)], eta_hour: i64) -> (i64, i64) {
        let days = pick(&mut self.rng, lead);
        let eta = ordered_ms.div_euclid(DAY_MS) * DAY_MS + days * DAY_MS + eta_hour * HOUR_MS;
        let u: f64 = self.rng.random();
        let delay_s: i64 = if u < VERY_LATE_DELIVERY {
            self.rng.random_range(36 * 3_600..72 * 3_600)
        } else if u < VERY_LATE_DELIVERY + LATE_DELIVERY {
            self.rng.random_range(8 * 3_600..36 * 3_600)
        } else {
            self.rng.random_range(-40 * 60..80 * 60)
        };
        (eta, (eta + delay_s * 1_000).max(ordered_ms + HOUR_MS))
    }

    /// What arrives of `shipped`: usually exactly that, sometimes a little more or less.
    fn draw_received(&mut self, shipped: i64, by_weight: bool) -> i64 {
        if !self.rng.random_bool(RECEIPT_MISMATCH) {
            return shipped;
        }
        if by_weight {
            let factor: f64 = self.rng.random_range(0.97..1.01);
            ((shipped as f64 * factor).round() as i64).max(1)
        } else {
            let delta = pick(
                &mut self.rng,
                &[(-1_000, 0.45), (-2_000, 0.2), (1_000, 0.35)],
            );
            (shipped + delta).max(1_000)
        }
    }

    /// Sends a shipment towards key `key` and schedules its arrival.
    #[allow(clippy::too_many_arguments)]
    fn ship(
        &mut self,
        out: &mut Vec<Pending>,
        loc: u32,
        sku: u32,
        origin: Origin,
        qty_milli: i64,
        ordered_ms: i64,
        (eta_ms, arrival_ms): (i64, i64),
    ) {
        let shipment = self.next_shipment;
        self.next_shipment += 1;
        let body = Body::Shipment {
            shipment,
            origin,
            qty_milli,
            eta_ms,
        };
        self.emit(out, loc, sku, ordered_ms, body);
        let by_weight = self.demand.skus[sku as usize].by_weight;
        let received_milli = self.draw_received(qty_milli, by_weight);
        let key = loc * self.names.skus() + sku;
        self.keys[key as usize].in_transit += qty_milli;
        if let Some(v2) = self.v2.as_mut() {
            let revision = Revision {
                time_ms: 0,
                shipment,
                key,
                origin,
                qty_milli,
                eta_ms,
                cancel: false,
            };
            // Some supplier shipments never come: cancelled a few hours after the order.
            if origin == Origin::Supplier && v2.rng.random_bool(v2.knobs.cancel_share) {
                let at = ordered_ms + v2.rng.random_range(2 * 3_600..12 * 3_600) * 1_000;
                v2.revisions.push(Reverse(Revision {
                    time_ms: at.min(eta_ms - HOUR_MS).max(ordered_ms + 1_000),
                    cancel: true,
                    ..revision
                }));
                return;
            }
            // A delivery running late is announced with a new ETA before the old one.
            if arrival_ms - eta_ms >= ANNOUNCED_DELAY_MS
                && v2.rng.random_bool(v2.knobs.eta_revision_share)
            {
                let before = v2.rng.random_range(3_600..12 * 3_600) * 1_000;
                let new_eta = (arrival_ms + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS;
                v2.revisions.push(Reverse(Revision {
                    time_ms: (eta_ms - before).max(ordered_ms + 1_000),
                    eta_ms: new_eta,
                    ..revision
                }));
            }
        }
        self.arrivals.push(Reverse(Arrival {
            time_ms: arrival_ms,
            shipment,
            key,
            shipped_milli: qty_milli,
            received_milli,
        }));
    }

    /// Each DC orders from the supplier every SKU at or below its reorder point.
    fn review_dcs(&mut self, out: &mut Vec<Pending>, hour_start: i64) {
        let skus = self.names.skus();
        for dc in 0..self.names.dcs() {
            let ordered_ms = hour_start + self.rng.random_range(0..3_600) * 1_000;
            for sku in 0..skus {
                let key = &self.keys[(dc * skus + sku) as usize];
                let params = &self.demand.skus[sku as usize];
                let position = key.on_hand + key.in_transit;
                let plan = params.plan_factor(DC_PLAN_HORIZON_DAYS);
                let Some(wanted) = key.order_for(position, plan) else {
                    continue;
                };
                let qty = round_up(wanted, params.pack_milli * DC_PALLET_PACKS);
                // Each SKU has its own supplier, hence its own lead time.
                let delivery =
                    self.draw_delivery(ordered_ms, &SUPPLIER_LEAD_DAYS, DC_DELIVERY_HOUR);
                self.ship(out, dc, sku, Origin::Supplier, qty, ordered_ms, delivery);
            }
        }
    }

    /// Each store orders every SKU whose book position is at or below its reorder point;
    /// its DC ships what it has (one truck per store and day).
    fn review_stores(&mut self, out: &mut Vec<Pending>, hour_start: i64, day: i64) {
        let skus = self.names.skus();
        let dcs = self.names.dcs();
        let stores = self.names.locations() - dcs;
        // Rotate who is served first, so that a short DC does not always fail the same store.
        let first = day.rem_euclid(i64::from(stores)) as u32;
        for i in 0..stores {
            let loc = dcs + (first + i) % stores;
            let ordered_ms = hour_start + self.rng.random_range(0..3_600) * 1_000;
            let delivery = self.draw_delivery(ordered_ms, &STORE_LEAD_DAYS, STORE_DELIVERY_HOUR);
            let dc = self.names.dc_for_store(loc);
            for sku in 0..skus {
                let key = &self.keys[(loc * skus + sku) as usize];
                let params = &self.demand.skus[sku as usize];
                let position = key.book + key.in_transit;
                let plan = params.plan_factor(STORE_PLAN_HORIZON_DAYS);
                let Some(wanted) = key.order_for(position, plan) else {
                    continue;
                };
                let wanted = round_up(wanted, params.pack_milli);
                let (origin, qty) = match dc {
                    None => (Origin::Supplier, wanted),
                    Some(dc) => {
                        let stock = &mut self.keys[(dc * skus + sku) as usize];
                        let qty = wanted.min(stock.on_hand);
                        if qty < wanted {
                            self.stats.dc_shortfalls += 1;
                        }
                        if qty <= 0 {
                            continue;
                        }
                        let dc_key = (dc * skus + sku) as usize;
                        if self.v2.is_some() {
                            // Contract v2: the pick is a transfer out, referring to the
                            // shipment it fills.
                            let reference = Some(Reference::Shipment(self.next_shipment));
                            let reason = Reason::TransferOut;
                            self.adjust(out, dc_key, ordered_ms, -qty, reason, reference);
                            self.stats.dc_picks += 1;
                            self.ship(
                                out,
                                loc,
                                sku,
                                Origin::Location(dc),
                                qty,
                                ordered_ms,
                                delivery,
                            );
                            continue;
                        }
                        stock.on_hand -= qty;
                        stock.book -= qty;
                        self.note_stock(dc_key, ordered_ms);
                        // The DC's outbound is its demand: a sale on the transfer channel
                        // keeps its `receipts − sales` equal to its stock.
                        let body = Body::Sale {
                            qty_milli: qty,
                            unit_price_cents: None,
                            channel: Some("transfer"),
                        };
                        self.emit(out, dc, sku, ordered_ms, body);
                        (Origin::Location(dc), qty)
                    }
                };
                self.ship(out, loc, sku, origin, qty, ordered_ms, delivery);
            }
        }
    }

    /// Applies every key's arrivals, and at open stores its customers, scans and shrink.
    fn run_hour(&mut self, out: &mut Vec<Pending>, hour_start: i64, hour: usize, weekday: usize) {
        let hour_end = hour_start + HOUR_MS;
        let mut due = std::mem::take(&mut self.due);
        while let Some(Reverse(next)) = self.arrivals.peek() {
            if next.time_ms >= hour_end {
                break;
            }
            due.push(*next);
            self.arrivals.pop();
        }
        due.sort_unstable_by_key(|a| (a.key, a.time_ms, a.shipment));
        let skus = self.names.skus();
        let dcs = self.names.dcs();
        let mut next_due = 0;
        for loc in 0..self.names.locations() {
            let store = loc.checked_sub(dcs).map(|s| s as usize);
            // Contract v2 stores keep their local time.
            let (hour, weekday) = match self.offset_ms(loc) {
                0 => (hour, weekday),
                offset => (
                    hour_of_day(hour_start + offset),
                    super::format::weekday(hour_start + offset),
                ),
            };
            let hour_factor = store.map_or(0.0, |s| self.demand.hour_factor(s, hour, weekday));
            if hour_factor <= 0.0 {
                // Closed (or a DC): only deliveries happen.
                while next_due < due.len() && due[next_due].key / skus == loc {
                    self.arrive(out, due[next_due]);
                    next_due += 1;
                }
                continue;
            }
            for sku in 0..skus {
                let key = loc * skus + sku;
                let first = next_due;
                while next_due < due.len() && due[next_due].key == key {
                    next_due += 1;
                }
                let sku_factor = store.map_or(hour_factor, |s| {
                    self.demand
                        .sku_hour_factor(s, sku as usize, hour, hour_factor)
                });
                self.open_key_hour(out, loc, sku, hour_start, sku_factor, &due[first..next_due]);
            }
        }
        due.clear();
        self.due = due;
    }

    /// A delivery: stock and book go up, the shipment leaves transit.
    fn arrive(&mut self, out: &mut Vec<Pending>, arrival: Arrival) {
        let skus = self.names.skus();
        let (loc, sku) = (arrival.key / skus, arrival.key % skus);
        let key = &mut self.keys[arrival.key as usize];
        let book_was_empty = key.book <= 0;
        key.on_hand += arrival.received_milli;
        key.book += arrival.received_milli;
        key.in_transit -= arrival.shipped_milli;
        self.note_stock(arrival.key as usize, arrival.time_ms);
        let body = Body::Receipt {
            shipment: Some(arrival.shipment),
            qty_milli: arrival.received_milli,
        };
        self.emit(out, loc, sku, arrival.time_ms, body);
        if book_was_empty && loc >= self.names.dcs() {
            let flag_ms = arrival.time_ms + self.rng.random_range(1..1_000);
            let body = Body::Availability {
                in_stock: true,
                source: Source::StoreSystem,
            };
            self.emit(out, loc, sku, flag_ms, body);
        }
    }

    /// One key of an open store for one hour: deliveries, customers (censored by true
    /// stock), a possible shelf scan and a possible shrink, in time order.
    fn open_key_hour(
        &mut self,
        out: &mut Vec<Pending>,
        loc: u32,
        sku: u32,
        hour_start: i64,
        hour_factor: f64,
        arrivals: &[Arrival],
    ) {
        let index = (loc * self.names.skus() + sku) as usize;
        let key = &mut self.keys[index];
        let empty = key.on_hand <= 0;
        self.stats.open_key_hours += 1;
        if empty {
            key.out_today = true;
            self.stats.out_of_stock_key_hours += 1;
            self.stats.phantom_key_hours += u64::from(key.book > 0);
        }
        let params = &self.demand.skus[sku as usize];
        let lambda =
            key.rate * params.today_factor * hour_factor * 1_000.0 / params.mean_basket_milli();
        let customers = poisson(&mut self.rng, lambda);
        let u: f64 = self.rng.random();
        let scan_chance = if empty {
            SCAN_EMPTY_CHANCE
        } else {
            SCAN_CHANCE
        };
        let scan = u < scan_chance;
        let shrink = !scan && u < scan_chance + SHRINK_CHANCE;
        // Contract v2: counts, damage and returns, from the v2 stream.
        let (mut count, mut damage, mut returns) = (false, false, 0);
        if let Some(v2) = self.v2.as_mut() {
            let days = v2.knobs.cycle_count_days;
            if days > 0.0 {
                let factor = if empty { 5.0 } else { 1.0 };
                count = v2
                    .rng
                    .random_bool((factor / (days * OPEN_HOURS_PER_DAY)).min(1.0));
            }
            damage = v2.rng.random_bool(DAMAGE_CHANCE);
            returns = poisson(&mut v2.rng, lambda * RETURNS_PER_CUSTOMER);
        }
        if customers == 0
            && !scan
            && !shrink
            && arrivals.is_empty()
            && !count
            && !damage
            && returns == 0
        {
            return;
        }
        let mut happenings = std::mem::take(&mut self.happenings);
        happenings.clear();
        happenings.extend(arrivals.iter().map(|a| (a.time_ms, Happening::Arrival(*a))));
        let at = |rng: &mut ChaCha8Rng| hour_start + rng.random_range(0..3_600) * 1_000;
        for _ in 0..customers {
            let wants_milli = params.basket_milli(&mut self.rng);
            happenings.push((at(&mut self.rng), Happening::Customer { wants_milli }));
        }
        if scan {
            happenings.push((at(&mut self.rng), Happening::Scan));
        }
        if shrink {
            happenings.push((at(&mut self.rng), Happening::Shrink));
        }
        if let Some(v2) = self.v2.as_mut() {
            let extra = [(count, Happening::Count), (damage, Happening::Damage)];
            for (_, h) in extra.into_iter().filter(|(on, _)| *on) {
                happenings.push((at(&mut v2.rng), h));
            }
            for _ in 0..returns {
                happenings.push((at(&mut v2.rng), Happening::Return));
            }
        }
        // Stable: at equal times deliveries come first, then customers in draw order.
        happenings.sort_by_key(|&(time, _)| time);
        let mut picker_reported = false;
        for &(time_ms, happening) in &happenings {
            match happening {
                Happening::Arrival(arrival) => self.arrive(out, arrival),
                Happening::Customer { wants_milli } => {
                    picker_reported |=
                        self.sell(out, loc, sku, time_ms, wants_milli, picker_reported);
                }
                Happening::Scan => self.scan(out, loc, sku, time_ms),
                Happening::Shrink => self.shrink(out, index, sku, time_ms),
                Happening::Count => self.count(out, loc, sku, time_ms),
                Happening::Damage => {
                    let params = &self.demand.skus[sku as usize];
                    let unit = if params.by_weight { 500 } else { 1_000 };
                    let loss = unit.min(self.keys[index].on_hand);
                    self.adjust(out, index, time_ms, -loss, Reason::Damage, None);
                }
                Happening::Return => {
                    let params = &self.demand.skus[sku as usize];
                    let unit = if params.by_weight { 500 } else { 1_000 };
                    self.adjust(out, index, time_ms, unit, Reason::CustomerReturn, None);
                }
            }
        }
        self.happenings = happenings;
    }

    /// One customer wanting `wants_milli`: a sale of what is there, or a lost sale. Returns
    /// whether a picker reported the item missing.
    fn sell(
        &mut self,
        out: &mut Vec<Pending>,
        loc: u32,
        sku: u32,
        time_ms: i64,
        wants_milli: i64,
        picker_reported: bool,
    ) -> bool {
        let key = &mut self.keys[(loc * self.names.skus() + sku) as usize];
        if key.on_hand <= 0 {
            self.stats.lost_customers += 1;
            if picker_reported || !self.rng.random_bool(PICKER_CHANCE) {
                return false;
            }
            let body = Body::Availability {
                in_stock: false,
                source: Source::PickerNotFound,
            };
            self.emit(out, loc, sku, time_ms, body);
            return true;
        }
        let qty_milli = wants_milli.min(key.on_hand);
        key.on_hand -= qty_milli;
        key.book -= qty_milli;
        key.out_today |= key.on_hand <= 0;
        let book_empty = key.book <= 0;
        self.note_stock((loc * self.names.skus() + sku) as usize, time_ms);
        let body = Body::Sale {
            qty_milli,
            unit_price_cents: Some(self.demand.skus[sku as usize].today_price_cents),
            channel: None,
        };
        self.emit(out, loc, sku, time_ms, body);
        if book_empty {
            let flag_ms = time_ms + self.rng.random_range(1..1_000);
            let body = Body::Availability {
                in_stock: false,
                source: Source::StoreSystem,
            };
            self.emit(out, loc, sku, flag_ms, body);
        }
        false
    }

    /// A shelf scan reports what is physically there; an empty shelf also corrects the store
    /// system's book (but not the engine's `receipts − sales`, which never sees it).
    fn scan(&mut self, out: &mut Vec<Pending>, loc: u32, sku: u32, time_ms: i64) {
        let key = &mut self.keys[(loc * self.names.skus() + sku) as usize];
        let in_stock = key.on_hand > 0;
        if !in_stock && key.book > 0 {
            key.book = key.on_hand;
            self.stats.book_corrections += 1;
        }
        let body = Body::Availability {
            in_stock,
            source: Source::ShelfScan,
        };
        self.emit(out, loc, sku, time_ms, body);
    }

    /// Contract v2: an associate counts the shelf; the count is the truth and corrects the
    /// book.
    fn count(&mut self, out: &mut Vec<Pending>, loc: u32, sku: u32, time_ms: i64) {
        let key = &mut self.keys[(loc * self.names.skus() + sku) as usize];
        if key.book != key.on_hand {
            self.stats.book_corrections += 1;
        }
        key.book = key.on_hand;
        let body = Body::Count {
            qty_milli: key.on_hand,
            source: CountSource::CycleCount,
        };
        self.emit(out, loc, sku, time_ms, body);
    }

    /// Stock lost without a sale: usually a unit or two, sometimes a whole case. With
    /// contract v2 a share of it is recorded (a `shrink` adjustment).
    fn shrink(&mut self, out: &mut Vec<Pending>, index: usize, sku: u32, time_ms: i64) {
        let params = &self.demand.skus[sku as usize];
        let loss = if self.rng.random_bool(0.2) {
            params.pack_milli
        } else if params.by_weight {
            self.rng.random_range(100..800)
        } else {
            self.rng.random_range(1..=2) * 1_000
        };
        let loss = loss.min(self.keys[index].on_hand);
        if loss <= 0 {
            return;
        }
        self.stats.shrink_events += 1;
        let recorded = self
            .v2
            .as_mut()
            .is_some_and(|v2| v2.rng.random_bool(v2.knobs.shrink_recorded_share));
        if recorded {
            self.adjust(out, index, time_ms, -loss, Reason::Shrink, None);
        } else {
            let key = &mut self.keys[index];
            key.on_hand -= loss;
            self.note_stock(index, time_ms);
        }
        let key = &mut self.keys[index];
        key.out_today |= key.on_hand <= 0;
    }
}
