//! The per-key state transition: one event applied to one key's [`KeyRow`] and its shipment
//! [`Schedule`], and the model inputs assembled from them. Neither touches anything else of the
//! shard, so both run as well on a copy of a key's row with a [`super::inbound::VecSchedule`]
//! as on the shard's own row and table (what the shard does, see `Shard::apply`).

use crate::alert::{AlertStatus, Transition};
use crate::event::EventType;
use crate::model::features::KeyInputs;

use super::columns::{flag, hour_of, KeyRow, HOURS, HOUR_MS, NO_HOUR, NO_TIME};
use super::inbound::{Closed, Schedule};
use super::order::PendingEvent;

/// What applying one event did, beyond the row and the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// A stockout episode started (`Raised`) or ended (`Resolved`) with this event.
    pub stockout: Option<AlertStatus>,
    /// A receipt named no open shipment of its key (applied to on hand all the same).
    pub receipt_unmatched: bool,
}

impl KeyRow {
    /// Applies one event (in event-time order) to the key: rolls the windows to its hour,
    /// drops overdue shipments, then books the sale, shipment, receipt or availability
    /// observation and opens or closes the stockout episode. `e.row`, `e.id_hash` and
    /// `e.source` are not read.
    #[inline]
    pub fn apply(&mut self, e: &PendingEvent, sched: &mut impl Schedule) -> Applied {
        let hour = hour_of(e.time_ms);
        self.roll(hour);
        if !sched.is_empty() {
            let gone = sched.expire_overdue(e.time_ms);
            self.in_transit = (self.in_transit - gone).max(0.0);
        }
        let mut receipt_unmatched = false;
        let mut stockout = Transition::None;
        match e.kind {
            EventType::Sale => {
                self.on_hand -= e.qty;
                self.add_demand(hour, e.qty);
                if self.flags & flag::ON_HAND_KNOWN != 0 && self.on_hand <= 0.0 {
                    stockout = Transition::Raise;
                }
            }
            EventType::Shipment => {
                let delta = sched.open(e.shipment_hash, e.qty, e.eta_ms);
                self.in_transit += delta;
            }
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
        }
    }
}
