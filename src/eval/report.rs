//! The evaluation report (`report.json`, exactly the shape issue 5 asks for), the printed table,
//! and the alert bookkeeping behind its `alerts` section.

use std::collections::BTreeMap;

use serde::Serialize;

use super::dataset::HOUR_MS;
use super::metrics::{median, Interval, Summary};
use super::{Outcome, MODELS, REFERENCE};
use crate::alert::AlertStatus;

/// Quality of the engine's `stockout_risk` alerts against the observed stockouts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlertSummary {
    /// Raised alerts followed by an observed stockout within the horizon / raised alerts
    /// whose horizon ended inside the data.
    pub precision: f64,
    /// Stockout starts with an open alert raised at most the horizon before / stockout starts.
    pub recall: f64,
    /// Median hours between the raise and the stockout, over the caught stockouts.
    pub median_lead_hours: Option<f64>,
    /// Raised alerts per 1,000 keys per day.
    pub per_1000_keys_per_day: f64,
    /// Lost units of the caught stockouts / lost units of every stockout (counted as
    /// `recall`'s starts are): a stockout's lost units are its out-of-stock hours times its
    /// series' mean sales per in-stock hour.
    pub lost_units_covered: f64,
}

/// The alerts at one raise budget (`alerts.max_raised_per_location_per_day`), as
/// [`AlertTracker::budget_sweep`] measures it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetPoint {
    /// Most raises per location per day (0: no limit).
    pub max_raised_per_location_per_day: u32,
    /// The alerts' quality at that budget.
    #[serde(flatten)]
    pub alerts: AlertSummary,
}

/// The budgets [`AlertTracker::budget_sweep`] is measured at by `evaluate` (0: no limit).
pub const BUDGETS: [u32; 9] = [1, 2, 3, 5, 10, 20, 50, 100, 0];

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Dataset name.
    pub dataset: String,
    /// Horizon H, hours.
    pub horizon_hours: u32,
    /// Grid points scored.
    pub rows: u64,
    /// Positive grid points.
    pub positives: u64,
    /// Metrics per model.
    pub models: BTreeMap<String, Summary>,
    /// Alert quality (at the configured `alerts.max_raised_per_location_per_day`).
    pub alerts: AlertSummary,
    /// Alert quality at other raise budgets: the configured run's raises put through the
    /// budget rule afterwards ([`AlertTracker::budget_sweep`]).
    pub alert_budget: Vec<BudgetPoint>,
    /// 95 % bootstrap intervals of ROC AUC and Brier per model (200 replicates resampling
    /// groups of series: `metrics::bootstrap`).
    pub intervals: BTreeMap<String, Interval>,
    /// ROC AUC within hour of day per model: each hour of day's ROC AUC, weighted by its
    /// points (`metrics::within_hour_auc`). The daily cycle alone scores 0.5 here.
    pub auc_within_hour: BTreeMap<String, f64>,
}

impl Report {
    /// The report of an outcome.
    pub fn new(dataset: &str, horizon_hours: u32, o: &Outcome) -> Self {
        Report {
            dataset: dataset.to_owned(),
            horizon_hours,
            rows: o.models[0].len(),
            positives: o.models[0].positives(),
            models: o
                .names
                .iter()
                .zip(&o.models)
                .map(|(name, a)| ((*name).to_owned(), a.summary()))
                .collect(),
            alerts: o.alerts,
            alert_budget: o.alert_budget.clone(),
            intervals: o
                .names
                .iter()
                .zip(&o.intervals)
                .filter_map(|(name, i)| Some(((*name).to_owned(), (*i)?)))
                .collect(),
            auc_within_hour: o
                .names
                .iter()
                .zip(o.within_hour_auc())
                .filter_map(|(name, a)| Some(((*name).to_owned(), a?)))
                .collect(),
        }
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} · H = {} h · {} grid points, {:.1} % positive",
            self.dataset,
            self.horizon_hours,
            self.rows,
            100.0 * self.positives as f64 / self.rows.max(1) as f64
        );
        let _ = writeln!(
            s,
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8}  {:>17}  {:>17}  {:>11}",
            "model",
            "ROC AUC",
            "PR AUC",
            "Brier",
            "log loss",
            "ECE",
            "ROC AUC 95 %",
            "Brier 95 %",
            "AUC in hour"
        );
        for name in MODELS.into_iter().chain([REFERENCE]) {
            if let Some(m) = self.models.get(name) {
                let iv = self.intervals.get(name).map_or_else(
                    || format!("{:>17}  {:>17}", "–", "–"),
                    |i| {
                        format!(
                            "[{:.4}, {:.4}]  [{:.4}, {:.4}]",
                            i.roc_auc[0], i.roc_auc[1], i.brier[0], i.brier[1]
                        )
                    },
                );
                let within = self
                    .auc_within_hour
                    .get(name)
                    .map_or_else(|| "–".to_owned(), |a| format!("{a:.4}"));
                let _ = writeln!(
                    s,
                    "{:<24} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}  {iv}  {within:>11}",
                    name, m.roc_auc, m.pr_auc, m.brier, m.log_loss, m.ece
                );
            }
        }
        let a = &self.alerts;
        let _ = writeln!(
            s,
            "alerts (online): precision {:.3} · recall {:.3} · lost units covered {:.3} · median lead {} h · {:.1} per 1000 keys per day",
            a.precision,
            a.recall,
            a.lost_units_covered,
            a.median_lead_hours
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.1}")),
            a.per_1000_keys_per_day
        );
        for b in &self.alert_budget {
            let cap = match b.max_raised_per_location_per_day {
                0 => "no limit".to_owned(),
                n => format!("{n} per location per day"),
            };
            let _ = writeln!(
                s,
                "  budget {cap:<26} precision {:.3} · recall {:.3} · lost units covered {:.3} · {:.1} per 1000 keys per day",
                b.alerts.precision,
                b.alerts.recall,
                b.alerts.lost_units_covered,
                b.alerts.per_1000_keys_per_day
            );
        }
        s
    }
}

/// One raised risk alert: raised at, resolved at (ms), and its value
/// ([`crate::alert::raise_value`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    raised: i64,
    resolved: Option<i64>,
    value: f64,
}

/// Raised/resolved risk alerts per series, checked against the flags at the end.
#[derive(Debug, Clone)]
pub struct AlertTracker {
    /// Per series, in time order.
    spans: Vec<Vec<Span>>,
}

impl AlertTracker {
    /// A tracker for `series` series.
    pub fn new(series: usize) -> Self {
        AlertTracker {
            spans: vec![Vec::new(); series],
        }
    }

    /// Records one risk alert of series `s` at `ms`; `value` ranks a raise under a budget.
    pub fn on_alert(&mut self, s: usize, ms: i64, status: AlertStatus, value: f64) {
        let Some(v) = self.spans.get_mut(s) else {
            return;
        };
        match status {
            AlertStatus::Raised => v.push(Span {
                raised: ms,
                resolved: None,
                value,
            }),
            AlertStatus::Resolved => {
                if let Some(last) = v.last_mut().filter(|l| l.resolved.is_none()) {
                    last.resolved = Some(ms);
                }
            }
            AlertStatus::Updated => {}
        }
    }

    /// The raises kept under `cap` raises per location per day (0: all): every raise, in time
    /// order (ties: by series), put through the service's rule ([`crate::alert::LocationBudget`])
    /// of its series' location `location_of[s]`. A raise refused here is simply dropped; in
    /// the service its key could raise again once its cool-down is over, so this slightly
    /// undercounts what the service would raise at that budget.
    pub fn under_budget(&self, location_of: &[u32], cap: u32) -> AlertTracker {
        if cap == 0 {
            return self.clone();
        }
        let mut all: Vec<(i64, usize, Span)> = self
            .spans
            .iter()
            .enumerate()
            .flat_map(|(s, v)| v.iter().map(move |&sp| (sp.raised, s, sp)))
            .collect();
        all.sort_by_key(|&(t, s, _)| (t, s));
        let locations = location_of
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut budgets = vec![crate::alert::LocationBudget::default(); locations];
        let mut kept = AlertTracker::new(self.spans.len());
        for (t, s, sp) in all {
            let Some(&loc) = location_of.get(s) else {
                continue;
            };
            if budgets[loc as usize].admit(cap, t, sp.value) {
                kept.spans[s].push(sp);
            }
        }
        kept
    }

    /// [`AlertTracker::finish`]'s summary at each of `budgets` ([`AlertTracker::under_budget`]).
    #[allow(clippy::too_many_arguments)]
    pub fn budget_sweep(
        &self,
        location_of: &[u32],
        budgets: &[u32],
        oos: &[bool],
        hours: usize,
        start_ms: i64,
        horizon_hours: u32,
        lost_per_hour: &[f64],
    ) -> Vec<BudgetPoint> {
        budgets
            .iter()
            .map(|&cap| BudgetPoint {
                max_raised_per_location_per_day: cap,
                alerts: self
                    .under_budget(location_of, cap)
                    .finish(oos, hours, start_ms, horizon_hours, lost_per_hour)
                    .0,
            })
            .collect()
    }

    /// Precision, recall, lost units covered and lead times against the flags
    /// (`oos[s * hours + h]`, observed at the end of hour h); `lost_per_hour[s]` is the units
    /// series `s` loses per out-of-stock hour.
    pub fn finish(
        &self,
        oos: &[bool],
        hours: usize,
        start_ms: i64,
        horizon_hours: u32,
        lost_per_hour: &[f64],
    ) -> (AlertSummary, Vec<f64>) {
        let h_ms = i64::from(horizon_hours) * HOUR_MS;
        let obs_ms = |u: usize| start_ms + (u as i64 + 1) * HOUR_MS;
        let end_ms = obs_ms(hours.saturating_sub(1));
        let (mut raised, mut judged, mut hits) = (0u64, 0u64, 0u64);
        let (mut starts, mut caught) = (0u64, 0u64);
        let (mut lost, mut lost_caught) = (0.0f64, 0.0f64);
        let mut leads = Vec::new();
        for (s, spans) in self.spans.iter().enumerate() {
            let flags = &oos[s * hours..(s + 1) * hours];
            let rate = lost_per_hour.get(s).copied().unwrap_or(0.0);
            for sp in spans {
                let r = sp.raised;
                raised += 1;
                // First observation strictly after r: that of hour floor((r - start) / 1 h).
                let b = ((r - start_ms).max(0) / HOUR_MS) as usize;
                let hit = (b..hours)
                    .take_while(|&u| obs_ms(u) <= r + h_ms)
                    .any(|u| flags[u]);
                if hit || r + h_ms <= end_ms {
                    judged += 1;
                    hits += u64::from(hit);
                }
            }
            for u in 1..hours {
                if !flags[u] || flags[u - 1] {
                    continue;
                }
                starts += 1;
                let length = flags[u..].iter().take_while(|&&f| f).count();
                let units = rate * length as f64;
                lost += units;
                let o = obs_ms(u);
                // The latest raise before the stockout was observed.
                let last = spans.iter().rev().find(|sp| sp.raised < o);
                if let Some(sp) = last {
                    if o - sp.raised <= h_ms && sp.resolved.is_none_or(|x| x >= o) {
                        caught += 1;
                        lost_caught += units;
                        leads.push((o - sp.raised) as f64 / HOUR_MS as f64);
                    }
                }
            }
        }
        let series = self.spans.len().max(1) as f64;
        let days = (hours as f64 / 24.0).max(1.0 / 24.0);
        let mut sorted = leads.clone();
        (
            AlertSummary {
                precision: hits as f64 / judged.max(1) as f64,
                recall: caught as f64 / starts.max(1) as f64,
                median_lead_hours: median(&mut sorted),
                per_1000_keys_per_day: 1000.0 * raised as f64 / (series * days),
                lost_units_covered: if lost > 0.0 { lost_caught / lost } else { 0.0 },
            },
            leads,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_precision_recall_and_lead_by_hand() {
        // One series, 48 hours; out of stock in hours 10–11 and 40.
        let hours = 48;
        let mut oos = vec![false; hours];
        oos[10] = true;
        oos[11] = true;
        oos[40] = true;
        let h = |x: i64| x * HOUR_MS;
        let mut t = AlertTracker::new(1);
        // Raised at 05:00 (flag 10 observed at 11:00: 6 h later, inside H = 8), resolved 12:00.
        t.on_alert(0, h(5), AlertStatus::Raised, 1.0);
        t.on_alert(0, h(12), AlertStatus::Resolved, 0.0);
        // Raised at 20:00: nothing until 41:00 > 28:00, a false alarm.
        t.on_alert(0, h(20), AlertStatus::Raised, 1.0);
        // Two units lost per out-of-stock hour: 4 caught (hours 10-11) of 6.
        let (a, leads) = t.finish(&oos, hours, 0, 8, &[2.0]);
        assert!((a.lost_units_covered - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(a.precision, 0.5);
        // Starts: hour 10 (caught, lead 6 h) and hour 40 (last raise 21 h before: missed).
        assert_eq!(a.recall, 0.5);
        assert_eq!(leads, vec![6.0]);
        assert_eq!(a.median_lead_hours, Some(6.0));
        assert!(
            (a.per_1000_keys_per_day - 1000.0).abs() < 1e-9,
            "2 alerts, 1 key, 2 days"
        );
    }

    #[test]
    fn a_budget_keeps_the_valuable_raises_of_a_location() {
        // Three series at one location, 72 hours; each runs out 4 hours after its raises.
        let hours = 72;
        let h = |x: i64| x * HOUR_MS;
        let mut oos = vec![false; 3 * hours];
        let mut t = AlertTracker::new(3);
        // Day 0: series 0, 1, 2 raise at 01:00, 02:00, 03:00 with values 1, 3, 2; only series
        // 1 runs out (05:00 − 06:00).
        for (s, v) in [(0usize, 1.0), (1, 3.0), (2, 2.0)] {
            t.on_alert(s, h(s as i64 + 1), AlertStatus::Raised, v);
            t.on_alert(s, h(s as i64 + 8), AlertStatus::Resolved, 0.0);
        }
        oos[hours + 5] = true;
        // Day 1: the same three raise again; only the most valuable runs out.
        for (s, v) in [(0usize, 1.0), (1, 3.0), (2, 2.0)] {
            t.on_alert(s, h(24 + s as i64 + 1), AlertStatus::Raised, v);
        }
        oos[hours + 24 + 5] = true;
        let all = t.finish(&oos, hours, 0, 8, &[1.0; 3]).0;
        let sweep = t.budget_sweep(&[0, 0, 0], &[1, 0], &oos, hours, 0, 8, &[1.0; 3]);
        assert_eq!(sweep[1].alerts, all, "0: no limit");
        let one = sweep[0].alerts;
        // Day 0 admits the first raise (no bar yet: series 0, a false alarm); day 1's bar is
        // day 0's best value (3), so it admits series 1's raise alone: 2 raises, 1 hit, and
        // the second stockout of series 1 caught.
        assert_eq!(one.precision, 0.5);
        assert_eq!(one.recall, 0.5);
        assert!((one.per_1000_keys_per_day - 1000.0 * 2.0 / 9.0).abs() < 1e-9);
        assert!(all.per_1000_keys_per_day > one.per_1000_keys_per_day);
    }
}
