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
}

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
    /// Alert quality.
    pub alerts: AlertSummary,
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
            "alerts (online): precision {:.3} · recall {:.3} · median lead {} h · {:.1} per 1000 keys per day",
            a.precision,
            a.recall,
            a.median_lead_hours
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.1}")),
            a.per_1000_keys_per_day
        );
        s
    }
}

/// Raised/resolved risk alerts per series, checked against the flags at the end.
#[derive(Debug, Clone)]
pub struct AlertTracker {
    /// Per series: (raised at, resolved at) in ms.
    spans: Vec<Vec<(i64, Option<i64>)>>,
}

impl AlertTracker {
    /// A tracker for `series` series.
    pub fn new(series: usize) -> Self {
        AlertTracker {
            spans: vec![Vec::new(); series],
        }
    }

    /// Records one risk alert of series `s` at `ms`.
    pub fn on_alert(&mut self, s: usize, ms: i64, status: AlertStatus) {
        let Some(v) = self.spans.get_mut(s) else {
            return;
        };
        match status {
            AlertStatus::Raised => v.push((ms, None)),
            AlertStatus::Resolved => {
                if let Some(last) = v.last_mut().filter(|l| l.1.is_none()) {
                    last.1 = Some(ms);
                }
            }
            AlertStatus::Updated => {}
        }
    }

    /// Precision, recall, lead times against the flags (`oos[s * hours + h]`, observed at the
    /// end of hour h).
    pub fn finish(
        &self,
        oos: &[bool],
        hours: usize,
        start_ms: i64,
        horizon_hours: u32,
    ) -> (AlertSummary, Vec<f64>) {
        let h_ms = i64::from(horizon_hours) * HOUR_MS;
        let obs_ms = |u: usize| start_ms + (u as i64 + 1) * HOUR_MS;
        let end_ms = obs_ms(hours.saturating_sub(1));
        let (mut raised, mut judged, mut hits) = (0u64, 0u64, 0u64);
        let (mut starts, mut caught) = (0u64, 0u64);
        let mut leads = Vec::new();
        for (s, spans) in self.spans.iter().enumerate() {
            let flags = &oos[s * hours..(s + 1) * hours];
            for &(r, _) in spans {
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
                let o = obs_ms(u);
                // The latest raise before the stockout was observed.
                let last = spans.iter().rev().find(|(r, _)| *r < o);
                if let Some(&(r, resolved)) = last {
                    if o - r <= h_ms && resolved.is_none_or(|x| x >= o) {
                        caught += 1;
                        leads.push((o - r) as f64 / HOUR_MS as f64);
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
        t.on_alert(0, h(5), AlertStatus::Raised);
        t.on_alert(0, h(12), AlertStatus::Resolved);
        // Raised at 20:00: nothing until 41:00 > 28:00, a false alarm.
        t.on_alert(0, h(20), AlertStatus::Raised);
        let (a, leads) = t.finish(&oos, hours, 0, 8);
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
}
