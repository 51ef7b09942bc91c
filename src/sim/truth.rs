//! The simulated world's ground truth about stockouts, and alerts scored against it.
//!
//! The simulator knows the true stock of every key. With [`super::SimConfig::record_truth`] it
//! records every *out-of-stock episode*: the true on hand reaches zero at `start` and stock is
//! back at `end` (open at the end of the run), and whether the store system's book still showed
//! stock when the shelf emptied (*phantom* inventory: only a count or a shelf observation can
//! reveal it). [`Truth`] is that record (a JSON file: `simulate --truth-out`), and [`score`]
//! checks the engine's alerts against it, stores and DCs apart:
//!
//! - **precision** of `stockout_risk` raises: a raise at `t` is right when an episode of the key
//!   is under way at some time in `[t, t + H]` (H: the risk horizon); raises whose window runs
//!   past the end of the run and find no episode are not judged;
//! - **recall**: the share of episodes starting after the first `H` hours of the run that a
//!   `stockout_risk` alert announced — raised at or before the start and not resolved more than
//!   H before it; **lead time** is the start minus that raise (median, hours);
//! - **detection**: the share of episodes during which a `stockout` alert was raised (the
//!   engine saw the empty shelf), with the median delay; and the same for phantom episodes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::alert::{AlertKind, AlertStatus};

/// One true out-of-stock episode of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// Location.
    pub location: String,
    /// SKU.
    pub sku: String,
    /// When the true on hand reached zero, ms since the epoch.
    pub start_ms: i64,
    /// When stock was back; `None`: still out at the end of the run.
    pub end_ms: Option<i64>,
    /// The book (store system) still showed stock when the shelf emptied.
    pub phantom: bool,
}

/// The ground truth of a run: its span, its DCs, and every out-of-stock episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Start of the run's event time, ms.
    pub start_ms: i64,
    /// End of the simulated event time, ms.
    pub end_ms: i64,
    /// The DC locations (every other location is a store).
    pub dcs: Vec<String>,
    /// Store keys simulated.
    pub store_keys: u64,
    /// DC keys simulated.
    pub dc_keys: u64,
    /// Share of keys whose on hand the stream made known (by a receipt or an inventory count)
    /// by the end of the first simulated day.
    pub known_after_first_day: f64,
    /// Every episode, in the order they ended (open ones last).
    pub episodes: Vec<Episode>,
}

/// An alert as scored: who, what, when.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPoint {
    /// Location.
    pub location: String,
    /// SKU.
    pub sku: String,
    /// Kind.
    pub kind: AlertKind,
    /// Status.
    pub status: AlertStatus,
    /// Event time of the alert, ms.
    pub time_ms: i64,
}

/// Scores of one class of keys (stores or DCs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassScore {
    /// Keys of the class.
    pub keys: u64,
    /// True out-of-stock episodes.
    pub episodes: u64,
    /// Of those, phantom ones (book > 0 when the shelf emptied).
    pub phantom_episodes: u64,
    /// `stockout_risk` raises.
    pub risk_raised: u64,
    /// Raises that could be judged (an episode in their window, or a window inside the run).
    pub risk_judged: u64,
    /// Share of judged raises followed by an episode within the horizon (null without any).
    pub precision: Option<f64>,
    /// Episodes that could have been announced (starting after the first horizon).
    pub episodes_scored: u64,
    /// Share of those announced by a `stockout_risk` alert.
    pub recall: Option<f64>,
    /// Median hours from the announcing raise to the episode's start.
    pub median_lead_hours: Option<f64>,
    /// Share of episodes during which a `stockout` alert was raised.
    pub detected: Option<f64>,
    /// Median hours from the episode's start to that `stockout` alert.
    pub median_detection_hours: Option<f64>,
    /// Share of phantom episodes detected.
    pub phantom_detected: Option<f64>,
}

/// Store and DC scores of a run, and the horizon they used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Risk horizon H, hours.
    pub horizon_hours: u32,
    /// Share of keys with known on hand after the first simulated day (from the truth file).
    pub known_after_first_day: f64,
    /// Store keys.
    pub store: ClassScore,
    /// DC keys.
    pub dc: ClassScore,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

const HOUR_MS: f64 = 3_600_000.0;

/// Scores `alerts` against `truth` with the risk horizon `horizon_hours`.
pub fn score(truth: &Truth, alerts: &[AlertPoint], horizon_hours: u32) -> Scores {
    let h = i64::from(horizon_hours) * 3_600_000;
    // Per key: episodes, risk intervals (raised .. resolved), stockout raises.
    #[derive(Default)]
    struct Key<'a> {
        episodes: Vec<&'a Episode>,
        risk: Vec<(i64, i64)>,
        stockout: Vec<i64>,
    }
    let mut keys: HashMap<(&str, &str), Key<'_>> = HashMap::new();
    for e in &truth.episodes {
        keys.entry((&e.location, &e.sku))
            .or_default()
            .episodes
            .push(e);
    }
    let mut sorted: Vec<&AlertPoint> = alerts.iter().collect();
    sorted.sort_by_key(|a| a.time_ms);
    let mut raised_by_class = [0u64; 2];
    let is_dc = |loc: &str| truth.dcs.iter().any(|d| d == loc);
    for a in sorted {
        let k = keys.entry((&a.location, &a.sku)).or_default();
        match (a.kind, a.status) {
            (AlertKind::StockoutRisk, AlertStatus::Raised) => {
                k.risk.push((a.time_ms, i64::MAX));
                raised_by_class[usize::from(is_dc(&a.location))] += 1;
            }
            (AlertKind::StockoutRisk, AlertStatus::Resolved) => {
                if let Some(last) = k.risk.last_mut() {
                    if last.1 == i64::MAX {
                        last.1 = a.time_ms;
                    }
                }
            }
            (AlertKind::Stockout, AlertStatus::Raised) => k.stockout.push(a.time_ms),
            _ => {}
        }
    }
    #[derive(Default)]
    struct Acc {
        episodes: u64,
        phantom: u64,
        judged: u64,
        right: u64,
        scored: u64,
        announced: u64,
        leads: Vec<f64>,
        detected: u64,
        delays: Vec<f64>,
        phantom_detected: u64,
    }
    let mut acc = [Acc::default(), Acc::default()];
    for ((loc, _), k) in &keys {
        let a = &mut acc[usize::from(is_dc(loc))];
        for &(t, _) in &k.risk {
            let right = k
                .episodes
                .iter()
                .any(|e| e.start_ms <= t + h && e.end_ms.is_none_or(|end| end > t));
            if right || t + h <= truth.end_ms {
                a.judged += 1;
                a.right += u64::from(right);
            }
        }
        for e in &k.episodes {
            a.episodes += 1;
            a.phantom += u64::from(e.phantom);
            if e.start_ms >= truth.start_ms + h {
                a.scored += 1;
                let announcing = k
                    .risk
                    .iter()
                    .filter(|(r, s)| *r <= e.start_ms && *s > e.start_ms - h)
                    .map(|(r, _)| *r)
                    .max();
                if let Some(r) = announcing {
                    a.announced += 1;
                    a.leads.push((e.start_ms - r) as f64 / HOUR_MS);
                }
            }
            let end = e.end_ms.unwrap_or(i64::MAX);
            if let Some(d) = k.stockout.iter().find(|t| **t >= e.start_ms && **t <= end) {
                a.detected += 1;
                a.phantom_detected += u64::from(e.phantom);
                a.delays.push((d - e.start_ms) as f64 / HOUR_MS);
            }
        }
    }
    let mut class = |i: usize, keys: u64| {
        let a = std::mem::take(&mut acc[i]);
        ClassScore {
            keys,
            episodes: a.episodes,
            phantom_episodes: a.phantom,
            risk_raised: raised_by_class[i],
            risk_judged: a.judged,
            precision: ratio(a.right, a.judged),
            episodes_scored: a.scored,
            recall: ratio(a.announced, a.scored),
            median_lead_hours: median(a.leads),
            detected: ratio(a.detected, a.episodes),
            median_detection_hours: median(a.delays),
            phantom_detected: ratio(a.phantom_detected, a.phantom),
        }
    };
    let store = class(0, truth.store_keys);
    let dc = class(1, truth.dc_keys);
    Scores {
        horizon_hours,
        known_after_first_day: truth.known_after_first_day,
        store,
        dc,
    }
}

impl ClassScore {
    /// One line for summaries: precision, recall, lead, detection.
    pub fn line(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1} %", 100.0 * v));
        let hours = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} h"));
        format!(
            "risk precision {} ({} raised), recall {} of {} episodes, median lead {}; stockouts detected {} (phantom {} of {})",
            pct(self.precision),
            self.risk_raised,
            pct(self.recall),
            self.episodes_scored,
            hours(self.median_lead_hours),
            pct(self.detected),
            pct(self.phantom_detected),
            self.phantom_episodes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn ep(loc: &str, start: i64, end: Option<i64>, phantom: bool) -> Episode {
        Episode {
            location: loc.into(),
            sku: "S".into(),
            start_ms: start * H,
            end_ms: end.map(|e| e * H),
            phantom,
        }
    }

    fn alert(loc: &str, kind: AlertKind, status: AlertStatus, t: i64) -> AlertPoint {
        AlertPoint {
            location: loc.into(),
            sku: "S".into(),
            kind,
            status,
            time_ms: t * H,
        }
    }

    #[test]
    fn raises_are_scored_against_episodes_per_class() {
        use AlertKind::{Stockout, StockoutRisk};
        use AlertStatus::{Raised, Resolved};
        let truth = Truth {
            start_ms: 0,
            end_ms: 200 * H,
            dcs: vec!["DC".into()],
            store_keys: 2,
            dc_keys: 1,
            known_after_first_day: 1.0,
            episodes: vec![
                ep("A", 50, Some(60), false),
                ep("A", 100, Some(110), true),
                ep("B", 5, Some(8), false),
                ep("DC", 120, None, false),
            ],
        };
        let alerts = vec![
            // A: announced 10 h ahead, then a false raise, then the phantom one detected.
            alert("A", StockoutRisk, Raised, 40),
            alert("A", StockoutRisk, Resolved, 61),
            alert("A", StockoutRisk, Raised, 70),
            alert("A", StockoutRisk, Resolved, 75),
            alert("A", Stockout, Raised, 103),
            // DC: raised after the start (right, not announcing), window past the end.
            alert("DC", StockoutRisk, Raised, 130),
            alert("DC", StockoutRisk, Raised, 190),
        ];
        let s = score(&truth, &alerts, 24);
        assert_eq!(s.store.risk_raised, 2);
        assert_eq!(s.store.precision, Some(0.5));
        // B's episode starts within the first horizon: not scored for recall.
        assert_eq!(s.store.episodes_scored, 2);
        assert_eq!(s.store.recall, Some(0.5));
        assert_eq!(s.store.median_lead_hours, Some(10.0));
        assert_eq!(s.store.detected, Some(1.0 / 3.0));
        assert_eq!(s.store.phantom_detected, Some(1.0));
        assert_eq!(s.dc.risk_raised, 2);
        assert_eq!(s.dc.precision, Some(1.0));
        assert_eq!(s.dc.recall, Some(0.0));
        assert_eq!(s.dc.detected, Some(0.0));
        assert!(s.dc.line().contains("100.0 %"), "{}", s.dc.line());
    }
}
