//! Alerts built from a shard's state: the confirmed alerts of the policy and the early ones.

use super::Shard;
use crate::alert::{self, Alert, AlertKind, AlertStatus, Reason};
use crate::model::features::{self, Features, NAMES, NF};
use crate::state::columns::KeyRow;
use crate::state::order::PendingEvent;

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &mut self,
        kind: AlertKind,
        status: AlertStatus,
        e: &PendingEvent,
        risk: f64,
        d: &features::Derived,
        processing_ms: Option<i64>,
        alerts: &mut Vec<Alert>,
    ) {
        self.state.counters.alerts[kind as usize][status as usize] += 1;
        let spare = self.spare_alerts.pop();
        let a = self.alert(
            spare,
            kind,
            status,
            e,
            risk,
            d,
            self.state.rows.get(e.row as usize),
            &self.x,
            processing_ms,
            false,
        );
        alerts.push(a);
    }

    /// An alert about `e`'s key in state `c` scored `risk` from features `x`: a confirmed
    /// one, or with `early` an early one (id `e-…`). Built in `spare` (an alert handed back by
    /// [`Shard::recycle_alerts`]) when there is one: its strings and reasons are overwritten
    /// in place, so an alert costs no allocation once the caller recycles them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn alert(
        &self,
        spare: Option<Alert>,
        kind: AlertKind,
        status: AlertStatus,
        e: &PendingEvent,
        risk: f64,
        d: &features::Derived,
        c: &KeyRow,
        x: &Features,
        processing_ms: Option<i64>,
        early: bool,
    ) -> Alert {
        let (location, sku) = (self.state.keys.location(e.row), self.state.keys.sku(e.row));
        let mut contrib = [0.0; NF];
        self.state.model.contributions(x, &mut contrib);
        // The features by decreasing |contribution| (ties: by index, so any sort agrees).
        let mut order = [0usize; NF];
        let mut n = 0;
        for (i, &v) in contrib.iter().enumerate().skip(1) {
            if v != 0.0 {
                order[n] = i;
                n += 1;
            }
        }
        let order = &mut order[..n];
        order.sort_unstable_by(|&a, &b| {
            contrib[b]
                .abs()
                .total_cmp(&contrib[a].abs())
                .then(a.cmp(&b))
        });
        let mut a = spare.unwrap_or_else(|| Alert {
            alert_id: String::new(),
            schema_version: String::new(),
            kind,
            status,
            sku: String::new(),
            location: String::new(),
            risk: 0.0,
            horizon_hours: 0,
            on_hand: None,
            in_transit: 0.0,
            expected_demand: 0.0,
            days_of_cover: None,
            reasons: Vec::new(),
            model_version: String::new(),
            event_time: String::new(),
            emitted_at: String::new(),
            trigger_source: 0,
        });
        let top = &order[..order.len().min(self.cfg.alerts.max_reasons)];
        a.reasons.truncate(top.len());
        for (j, &i) in top.iter().enumerate() {
            let contribution = round6(contrib[i]);
            match a.reasons.get_mut(j) {
                Some(r) => {
                    set(&mut r.feature, NAMES[i]);
                    r.contribution = contribution;
                }
                None => a.reasons.push(Reason {
                    feature: NAMES[i].to_string(),
                    contribution,
                }),
            }
        }
        alert::write_alert_id(
            &mut a.alert_id,
            early,
            location,
            sku,
            kind,
            status,
            e.time_ms,
            e.id_hash,
        );
        set(&mut a.schema_version, alert::ALERT_CONTRACT_VERSION);
        a.kind = kind;
        a.status = status;
        set(&mut a.sku, sku);
        set(&mut a.location, location);
        a.risk = round6(risk);
        a.horizon_hours = self.cfg.model.horizon_hours;
        a.on_hand = c.known_on_hand().map(round6);
        a.in_transit = round6(c.in_transit);
        a.expected_demand = round6(d.expected_demand);
        a.days_of_cover = d.days_of_cover.map(round6);
        set(&mut a.model_version, self.state.model.version());
        alert::write_rfc3339_ms(&mut a.event_time, e.time_ms);
        alert::write_rfc3339_ms(&mut a.emitted_at, processing_ms.unwrap_or(e.time_ms));
        a.trigger_source = e.source;
        a
    }
}

/// Replaces the contents of `s` with `v` (no allocation when it fits).
fn set(s: &mut String, v: &str) {
    s.clear();
    s.push_str(v);
}

/// Rounds to 6 decimals so alert JSON stays short and stable.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
