//! Alerts built from a shard's state: the confirmed alerts of the policy and the early ones.

use super::Shard;
use crate::alert::{self, Alert, AlertKind, AlertStatus, Reason};
use crate::model::features::{self, Features, KeyInputs, NAMES, NF, PRIOR_LOGIT};
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
        lost: Option<f64>,
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
            lost,
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
        lost: Option<f64>,
        c: &KeyRow,
        x: &Features,
        processing_ms: Option<i64>,
        early: bool,
    ) -> Alert {
        let (location, sku) = (self.state.keys.location(e.row), self.state.keys.sku(e.row));
        let mut contrib = [0.0; NF];
        self.state.model.contributions(x, &mut contrib);
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
            expected_lost_units: None,
            priority: None,
            reasons: Vec::new(),
            model_version: String::new(),
            event_time: String::new(),
            emitted_at: String::new(),
            trigger_source: 0,
        });
        explain(&mut contrib, x, self.cfg.alerts.max_reasons, &mut a.reasons);
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
        a.expected_lost_units = lost.map(round6);
        a.priority = Some(alert::priority(lost, risk));
        set(&mut a.model_version, self.state.model.version());
        alert::write_rfc3339_ms(&mut a.event_time, e.time_ms);
        alert::write_rfc3339_ms(&mut a.emitted_at, processing_ms.unwrap_or(e.time_ms));
        a.trigger_source = e.source;
        a
    }
}

impl Shard {
    /// Whether a `stockout_risk` raise of `e`'s key (expected lost units `lost`, `risk`) is
    /// within its location's budget (`alerts.max_raised_per_location_per_day`; always without
    /// one). Records the candidate in the budget ([`alert::LocationBudget`]).
    pub(super) fn within_budget(&mut self, e: &PendingEvent, lost: Option<f64>, risk: f64) -> bool {
        let cap = self.cfg.alerts.max_raised_per_location_per_day;
        if cap == 0 {
            return true;
        }
        let location = self.state.keys.location(e.row);
        let value = alert::raise_value(lost, risk);
        let budgets = &mut self.state.budgets;
        let b = match budgets.get_mut(location) {
            Some(b) => b,
            // Once per location: its entry.
            None => budgets.entry(location.to_owned()).or_default(),
        };
        b.admit(cap, e.time_ms, value)
    }

    /// [`Shard::within_budget`] without recording anything (the early alerts' look ahead).
    pub(super) fn budget_has_room(&self, e: &PendingEvent, lost: Option<f64>, risk: f64) -> bool {
        let cap = self.cfg.alerts.max_raised_per_location_per_day;
        if cap == 0 {
            return true;
        }
        match self.state.budgets.get(self.state.keys.location(e.row)) {
            Some(b) => b.has_room(cap, e.time_ms, alert::raise_value(lost, risk)),
            None => true,
        }
    }
}

/// The expected lost units of a key scored on `k` ([`alert::expected_lost_units`]).
pub(super) fn lost_units(k: &KeyInputs) -> Option<f64> {
    alert::expected_lost_units(
        k.on_hand,
        k.in_stockout,
        k.demand.rate_per_hour,
        k.now_ms,
        k.next_eta_ms,
        k.horizon_ms,
    )
}

/// The name of the reason that sums the contributions not listed.
pub const OTHER_REASON: &str = "other";

/// Writes the reasons of a score whose per-feature logit contributions are `contrib`
/// (summing to the margin; [`crate::model::RiskModel::contributions`]) into `reasons`: the
/// margin above the prior's logit (`x[PRIOR_LOGIT]`, 0 while on hand is unknown) split by
/// feature — the prior's own contribution less that logit — the `max_reasons` largest by
/// magnitude (not the bias), largest first, then `other`: the sum of the rest, bias included,
/// when it is not 0. So the listed contributions sum to the margin above the prior (each is
/// rounded to 6 decimals). Reuses the strings of `reasons` (no allocation once they exist).
pub fn explain(
    contrib: &mut [f64; NF],
    x: &Features,
    max_reasons: usize,
    reasons: &mut Vec<Reason>,
) {
    contrib[PRIOR_LOGIT] -= f64::from(x[PRIOR_LOGIT]);
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
    let listed = order.len().min(max_reasons);
    let mut rest = 0.0;
    if max_reasons > 0 {
        rest = contrib[0] + order[listed..].iter().map(|&i| contrib[i]).sum::<f64>();
    }
    let mut put = |j: usize, name: &str, contribution: f64| match reasons.get_mut(j) {
        Some(r) => {
            set(&mut r.feature, name);
            r.contribution = contribution;
        }
        None => reasons.push(Reason {
            feature: name.to_string(),
            contribution,
        }),
    };
    for (j, &i) in order[..listed].iter().enumerate() {
        put(j, NAMES[i], round6(contrib[i]));
    }
    let mut len = listed;
    if round6(rest) != 0.0 {
        put(listed, OTHER_REASON, round6(rest));
        len += 1;
    }
    reasons.truncate(len);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::learner::{BinnedLogistic, LearnerConfig};
    use crate::model::RiskModel;

    /// The listed reasons (the top ones and `other`) sum to the logit of the risk minus the
    /// prior's logit, for a model that learned crossed cells and a calibration layer.
    #[test]
    fn reasons_sum_to_the_margin_above_the_prior() {
        let mut m = BinnedLogistic::new(LearnerConfig {
            learning_rate: 0.3,
            ..LearnerConfig::default()
        });
        let mut next = crate::xorshift(11);
        let mut draw = || {
            let mut x = [0.0f32; NF];
            for v in x.iter_mut() {
                *v = (next() % 1000) as f32 / 1000.0;
            }
            x[0] = 1.0;
            x[PRIOR_LOGIT] = (next() % 600) as f32 / 100.0 - 3.0;
            x
        };
        for i in 0..3000 {
            let x = draw();
            m.learn_calibration(m.score_margin(&x).1, i % 3 == 0);
            m.learn(&x, i % 3 == 0);
        }
        let layer = m.calibration();
        assert!(layer.a != 1.0 && layer.b != 0.0, "{layer:?}");
        let mut reasons = Vec::new();
        for max in [0usize, 1, 3, NF] {
            for _ in 0..50 {
                let x = draw();
                let mut c = [0.0; NF];
                m.contributions(&x, &mut c);
                let risk = m.score(&x);
                explain(&mut c, &x, max, &mut reasons);
                let above = (risk / (1.0 - risk)).ln() - f64::from(x[PRIOR_LOGIT]);
                let listed: f64 = reasons.iter().map(|r| r.contribution).sum();
                if max == 0 {
                    assert!(reasons.is_empty());
                    continue;
                }
                assert!(reasons.len() <= max + 1, "{reasons:?}");
                assert!(
                    (listed - above).abs() < 1e-5 * reasons.len() as f64 + 1e-9,
                    "listed {listed}, margin above the prior {above}: {reasons:?}"
                );
                let named = reasons.iter().filter(|r| r.feature != OTHER_REASON);
                assert!(named.clone().count() <= max);
                assert!(named.clone().all(|r| r.feature != "bias"));
            }
        }
    }
}
