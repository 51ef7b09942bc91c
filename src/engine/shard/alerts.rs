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
        let a = self.alert(
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
    /// one, or with `early` an early one (id `e-…`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn alert(
        &self,
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
        let mut order: Vec<usize> = (1..NF).filter(|&i| contrib[i] != 0.0).collect();
        order.sort_by(|&a, &b| {
            contrib[b]
                .abs()
                .total_cmp(&contrib[a].abs())
                .then(a.cmp(&b))
        });
        let reasons = order
            .into_iter()
            .take(self.cfg.alerts.max_reasons)
            .map(|i| Reason {
                feature: NAMES[i].to_string(),
                contribution: round6(contrib[i]),
            })
            .collect();
        let id = if early {
            alert::early_alert_id
        } else {
            alert::alert_id
        };
        Alert {
            alert_id: id(location, sku, kind, status, e.time_ms, e.id_hash),
            schema_version: alert::ALERT_CONTRACT_VERSION.to_string(),
            kind,
            status,
            sku: sku.to_string(),
            location: location.to_string(),
            risk: round6(risk),
            horizon_hours: self.cfg.model.horizon_hours,
            on_hand: c.known_on_hand().map(round6),
            in_transit: round6(c.in_transit),
            expected_demand: round6(d.expected_demand),
            days_of_cover: d.days_of_cover.map(round6),
            reasons,
            model_version: self.state.model.version().to_string(),
            event_time: alert::rfc3339_ms(e.time_ms),
            emitted_at: alert::rfc3339_ms(processing_ms.unwrap_or(e.time_ms)),
            trigger_source: e.source,
        }
    }
}

/// Rounds to 6 decimals so alert JSON stays short and stable.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
