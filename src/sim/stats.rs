//! Counters of what the simulator emitted, and ground truth about the simulated world.

use super::event::{Body, CountSource, Reason, Source};
use super::{BadKind, RecordClass, SimRecord, Topic};

/// Ground truth of the simulated world, counted as events are generated (whole hours at a
/// time, so with `max_events` it may run slightly ahead of what was emitted).
///
/// These are the numbers no consumer of the stream can see directly — lost customers,
/// shrink, empty shelves — for checking what a model makes of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldStats {
    /// Hours simulated.
    pub hours: u64,
    /// Good events generated, of every type.
    pub events: u64,
    /// Customer sales at stores.
    pub sales: u64,
    /// DC outbound records (`sale` with `channel: "transfer"`), one per store shipment from a DC.
    pub transfers: u64,
    /// Shipments, to stores and to DCs.
    pub shipments: u64,
    /// Receipts, including the initial receipt of every key.
    pub receipts: u64,
    /// Shelf scans (`source: "shelf_scan"`), whatever they found.
    pub shelf_scans: u64,
    /// Picker "not found" reports.
    pub picker_not_found: u64,
    /// Store-system flags (book stock reached zero, or was replenished from zero).
    pub store_flags: u64,
    /// Customers who found the shelf empty (lost sales).
    pub lost_customers: u64,
    /// Stock losses without a sale (theft, damage).
    pub shrink_events: u64,
    /// Times a shelf scan corrected a store's book stock to zero (phantom stock found).
    pub book_corrections: u64,
    /// Store orders the DC could fill only partly or not at all.
    pub dc_shortfalls: u64,
    /// Promotions scheduled (those drawn on the first day may start at once; later ones
    /// start ten days after being scheduled). With real demand: SKUs' real promotions
    /// starting (or running on the first day).
    pub promotions: u64,
    /// Store key-hours during opening hours.
    pub open_key_hours: u64,
    /// Of those, key-hours that started with an empty shelf.
    pub out_of_stock_key_hours: u64,
    /// Of those, key-hours whose book stock still said there was stock (phantom stock).
    pub phantom_key_hours: u64,
    /// Store key-days completed (partial first and last days included).
    pub store_key_days: u64,
    /// Of those, key-days whose shelf was empty at some point of the opening hours.
    pub out_of_stock_key_days: u64,
    /// Contract v2: nightly on-hand snapshots (one per key).
    pub snapshots: u64,
    /// Contract v2: cycle counts.
    pub cycle_counts: u64,
    /// Contract v2: adjustments per reason (shrink, damage, expiry, customer_return,
    /// transfer_in, transfer_out).
    pub adjustments: [u64; 6],
    /// Contract v2: DC picks for stores (`transfer_out` adjustments at DCs).
    pub dc_picks: u64,
    /// Contract v2: store-to-store transfers.
    pub transfers_between_stores: u64,
    /// Contract v2: shipment revisions (a new ETA announced).
    pub shipment_revisions: u64,
    /// Contract v2: shipments cancelled.
    pub cancellations: u64,
    /// Contract v2: shipments short-shipped (a revision with a smaller quantity; counted in
    /// `shipment_revisions` too).
    pub short_shipments: u64,
    /// Keys simulated (set at the end of the first day).
    pub keys: u64,
    /// Keys whose on hand the stream had told (receipt or inventory count) by the end of the
    /// first simulated day.
    pub keys_known_first_day: Option<u64>,
}

impl WorldStats {
    /// Counts one generated event.
    pub(crate) fn count(&mut self, body: &Body) {
        self.events += 1;
        match body {
            Body::Sale { channel: None, .. } => self.sales += 1,
            Body::Sale { .. } => self.transfers += 1,
            Body::Shipment { .. } => self.shipments += 1,
            Body::Receipt { .. } => self.receipts += 1,
            Body::Availability { source, .. } => match source {
                Source::ShelfScan => self.shelf_scans += 1,
                Source::PickerNotFound => self.picker_not_found += 1,
                Source::StoreSystem => self.store_flags += 1,
            },
            Body::Count { source, .. } => match source {
                CountSource::Snapshot => self.snapshots += 1,
                CountSource::CycleCount => self.cycle_counts += 1,
            },
            Body::Adjustment { reason, .. } => {
                let i = Reason::ALL.iter().position(|r| r == reason).unwrap_or(0);
                self.adjustments[i] += 1;
            }
            Body::Cancel { .. } => {}
        }
    }

    /// Share of keys whose on hand was known by the end of the first day (`None` before it
    /// ends).
    pub fn known_after_first_day(&self) -> Option<f64> {
        self.keys_known_first_day.map(|k| {
            if self.keys == 0 {
                0.0
            } else {
                k as f64 / self.keys as f64
            }
        })
    }

    /// Adjustments by reason name.
    pub fn adjustments_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reason::ALL
            .iter()
            .zip(self.adjustments)
            .map(|(r, n)| (r.name(), n))
    }

    /// Fraction of store key-days with an empty shelf at some point (0 before any day ends).
    pub fn out_of_stock_day_fraction(&self) -> f64 {
        if self.store_key_days == 0 {
            return 0.0;
        }
        self.out_of_stock_key_days as f64 / self.store_key_days as f64
    }
}

/// What the simulator has emitted so far, by topic and by class, plus the world's ground
/// truth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Records emitted, of every topic and class.
    pub records: u64,
    /// Records emitted per topic, indexed by [`Topic::index`].
    pub by_topic: [u64; 6],
    /// Good records: on time, first copy.
    pub good: u64,
    /// Planned re-sends of a good record.
    pub duplicate: u64,
    /// Good records emitted after the stream moved past their event time by the late delay.
    pub late: u64,
    /// Bad records of every kind.
    pub bad: u64,
    /// Bad records per kind, indexed like [`BadKind::ALL`].
    pub bad_by_kind: [u64; BadKind::ALL.len()],
    /// Ground truth of the simulated world.
    pub world: WorldStats,
}

impl SimStats {
    /// Records emitted on `topic`.
    pub fn topic(&self, topic: Topic) -> u64 {
        self.by_topic[topic.index()]
    }

    /// Bad records emitted of `kind`.
    pub fn bad_kind(&self, kind: BadKind) -> u64 {
        self.bad_by_kind[kind.index()]
    }

    /// Counts one emitted record.
    pub(crate) fn count(&mut self, record: &SimRecord) {
        self.records += 1;
        self.by_topic[record.topic.index()] += 1;
        match record.class {
            RecordClass::Good => self.good += 1,
            RecordClass::Duplicate => self.duplicate += 1,
            RecordClass::Late => self.late += 1,
            RecordClass::Bad(kind) => {
                self.bad += 1;
                self.bad_by_kind[kind.index()] += 1;
            }
        }
    }
}
