//! The per-key state transition: one event applied to one key's [`KeyRow`] and its shipment
//! [`Schedule`], and the model inputs assembled from them. Neither touches anything else of the
//! shard, so both run as well on a copy of a key's row with a [`super::inbound::VecSchedule`]
//! as on the shard's own row and table (what the shard does, see `Shard::apply`).

use crate::alert::{AlertStatus, Transition};
use crate::event::{EventType, ShipmentStatus};
use crate::model::features::KeyInputs;

use super::columns::{flag, hour_of, KeyRow, HOURS, HOUR_MS, NO_GAP, NO_HOUR, NO_TIME};
use super::inbound::{Closed, Schedule};
use super::order::PendingEvent;

/// What applying one event did, beyond the row and the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Applied {
    /// A stockout episode started (`Raised`) or ended (`Resolved`) with this event.
    pub stockout: Option<AlertStatus>,
    /// A receipt named no open shipment of its key (applied to on hand all the same).
    pub receipt_unmatched: bool,
    /// A shipment event revised or cancelled a closed shipment: refused, nothing changed
    /// (the shard normally refuses those at ingest already, see `Shard::ingest_rows`).
    pub shipment_refused: bool,
    /// An inventory count found the book known: count − recorded on hand before it.
    pub count_gap: Option<f64>,
}

impl KeyRow {
    /// Applies one event (in event-time order) to the key: rolls the windows to its hour,
    /// drops overdue shipments, then books the event and opens or closes the stockout episode:
    /// - sale: on hand − qty (a stockout opens at ≤ 0 when on hand is known); demand + qty;
    /// - shipment: opens it, or revises an open one (in transit moves by the difference);
    ///   `cancelled` closes it without stock; one that is closed is refused: nothing at all
    ///   changes, not even the windows (as if it had been refused on arrival);
    /// - receipt: on hand + qty, known; the named shipment is closed;
    /// - availability: the observation; in stock resolves, out of stock opens a stockout;
    /// - inventory count: on hand = qty, known; the discrepancy against a known book is kept;
    ///   a count > 0 resolves a stockout, a count of 0 opens one (the shelf was seen empty);
    /// - adjustment: on hand + qty (signed); with on hand known, ≤ 0 after a negative one opens
    ///   a stockout and > 0 after a positive one resolves it.
    ///
    /// `e.row`, `e.id_hash` and `e.source` are not read.
    #[inline]
    pub fn apply(&mut self, e: &PendingEvent, sched: &mut impl Schedule) -> Applied {
        if e.kind == EventType::Shipment && sched.is_closed(e.shipment_hash) {
            return Applied {
                stockout: None,
                receipt_unmatched: false,
                shipment_refused: true,
                count_gap: None,
            };
        }
        let hour = hour_of(e.time_ms);
        self.roll(hour);
        if !sched.is_empty() {
            let gone = sched.expire_overdue(e.time_ms);
            self.in_transit = (self.in_transit - gone).max(0.0);
        }
        let mut receipt_unmatched = false;
        let mut shipment_refused = false;
        let mut count_gap = None;
        let mut stockout = Transition::None;
        match e.kind {
            EventType::Sale => {
                self.on_hand -= e.qty;
                self.add_demand(hour, e.qty);
                if self.flags & flag::ON_HAND_KNOWN != 0 && self.on_hand <= 0.0 {
                    stockout = Transition::Raise;
                }
            }
            EventType::Shipment if e.sub == ShipmentStatus::Cancelled as u8 => {
                match sched.cancel(e.shipment_hash, e.eta_ms) {
                    Some(q) => self.in_transit = (self.in_transit - q).max(0.0),
                    None => shipment_refused = true,
                }
            }
            EventType::Shipment => match sched.open(e.shipment_hash, e.qty, e.eta_ms) {
                Some(delta) => self.in_transit += delta,
                None => shipment_refused = true,
            },
            EventType::Receipt => {
                if e.shipment_hash != 0 {
                    match sched.close(e.shipment_hash) {
                        Closed::Shipment(q) => {
                            self.in_transit = (self.in_transit - q).max(0.0);
                        }
                        Closed::Unmatched => receipt_unmatched = true,
                    }
                } else {
                    receipt_unmatched = true;
                }
                self.on_hand += e.qty;
                self.flags |= flag::ON_HAND_KNOWN;
                self.last_receipt_hour = hour;
                if self.on_hand > 0.0 {
                    stockout = Transition::Resolve;
                }
            }
            EventType::Availability => {
                self.flags |= flag::HAS_OBS;
                if e.in_stock {
                    self.flags &= !flag::LAST_OBS_OOS;
                    stockout = Transition::Resolve;
                } else {
                    self.flags |= flag::LAST_OBS_OOS;
                    self.mark_oos(hour);
                    stockout = Transition::Raise;
                }
            }
            EventType::InventoryCount => {
                if let Some(book) = self.known_on_hand() {
                    let gap = e.qty - book;
                    count_gap = Some(gap);
                    self.count_gap = gap.round().clamp(-32_767.0, 32_767.0) as i16;
                    debug_assert_ne!(self.count_gap, NO_GAP);
                }
                self.on_hand = e.qty;
                self.flags |= flag::ON_HAND_KNOWN;
                stockout = if e.qty > 0.0 {
                    Transition::Resolve
                } else {
                    Transition::Raise
                };
            }
            EventType::Adjustment => {
                self.on_hand += e.qty;
                // Stock sent on to another location is consumed here like a sale: a DC's
                // outbound picks to its stores are its demand, and without them a DC would
                // never show any (measured with `simulate --contract v2 --truth-out`).
                if e.sub == crate::event::AdjustmentReason::TransferOut as u8 && e.qty < 0.0 {
                    self.add_demand(hour, -e.qty);
                }
                if self.flags & flag::ON_HAND_KNOWN != 0 {
                    if e.qty < 0.0 && self.on_hand <= 0.0 {
                        stockout = Transition::Raise;
                    } else if e.qty > 0.0 && self.on_hand > 0.0 {
                        stockout = Transition::Resolve;
                    }
                }
            }
        }
        let in_stockout = self.in_stockout();
        let stockout = match stockout {
            Transition::Raise if !in_stockout => {
                self.flags |= flag::IN_STOCKOUT;
                self.last_stockout_ms = e.time_ms;
                Some(AlertStatus::Raised)
            }
            Transition::Resolve if in_stockout => {
                self.flags &= !flag::IN_STOCKOUT;
                Some(AlertStatus::Resolved)
            }
            _ => None,
        };
        Applied {
            stockout,
            receipt_unmatched,
            shipment_refused,
            count_gap,
        }
    }

    /// The model inputs of the key at `now_ms` (its windows already rolled to that hour),
    /// counting inbound shipments that arrive within `horizon_ms`.
    #[inline]
    pub fn inputs(&self, sched: &impl Schedule, now_ms: i64, horizon_ms: i64) -> KeyInputs {
        let (inbound, next_eta) = sched.arriving(now_ms.saturating_add(horizon_ms));
        let hours_since = |ms: i64| (ms != NO_TIME).then(|| (now_ms - ms) as f64 / HOUR_MS as f64);
        let hour = hour_of(now_ms);
        let hb = &self.hourly;
        let demand_last_3h = (0..3)
            .map(|k| f64::from(hb[(i64::from(hour) - k).rem_euclid(HOURS as i64) as usize]))
            .sum();
        KeyInputs {
            now_ms,
            horizon_ms,
            on_hand: self.known_on_hand(),
            demand: self.demand(),
            inbound_in_horizon: inbound,
            next_eta_ms: next_eta,
            hours_since_receipt: (self.last_receipt_hour != NO_HOUR)
                .then(|| f64::from(hour - self.last_receipt_hour)),
            oos_hours: self.oos_hours,
            oos_days: self.oos_days,
            last_obs_oos: self.flags & flag::LAST_OBS_OOS != 0,
            in_stockout: self.in_stockout(),
            hours_since_stockout: hours_since(self.last_stockout_ms),
            demand_last_3h,
            count_gap: self.count_gap(),
            // Set by the shard from the master data (see `Shard::apply`).
            utc_offset_ms: 0,
            // Set by the shard from its pools (see `Shard::apply`).
            pools: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AdjustmentReason;
    use crate::state::inbound::VecSchedule;
    use crate::state::order::Groups;

    fn adjustment(hour: i64, qty: f64, reason: AdjustmentReason) -> PendingEvent {
        PendingEvent {
            time_ms: hour * HOUR_MS,
            id_hash: 1,
            row: 0,
            kind: EventType::Adjustment,
            in_stock: false,
            sub: reason as u8,
            qty,
            eta_ms: 0,
            shipment_hash: 0,
            groups: Groups::UNRESOLVED,
            source: 0,
        }
    }

    /// A DC's outbound picks (`transfer_out`) are its demand; other write-offs are not.
    #[test]
    fn transfer_out_counts_as_demand_and_other_adjustments_do_not() {
        let mut sched = VecSchedule::with_capacity();
        let mut picked = KeyRow::default();
        let mut shrunk = KeyRow::default();
        for h in 0..72 {
            picked.apply(
                &adjustment(h, -5.0, AdjustmentReason::TransferOut),
                &mut sched,
            );
            shrunk.apply(&adjustment(h, -5.0, AdjustmentReason::Shrink), &mut sched);
        }
        assert!(picked.demand().rate_per_hour > 1.0, "{:?}", picked.demand());
        assert_eq!(shrunk.demand().rate_per_hour, 0.0, "{:?}", shrunk.demand());
        assert_eq!(picked.on_hand, shrunk.on_hand);
    }
}
