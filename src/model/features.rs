//! Features of one key at one moment, computed from its state. All are bounded and roughly
//! unit-scaled so one learning rate fits all; missing inputs get a neutral value plus an
//! indicator, never NaN.

use super::prior::stockout_prior;
use crate::state::columns::DemandStats;

/// Number of features, bias included.
pub const NF: usize = 15;

/// Feature names, index = position in the vector (used in alert reasons and model reports).
pub const NAMES: [&str; NF] = [
    "bias",
    "prior_logit",
    "on_hand_unknown",
    "log_days_of_cover",
    "demand_trend",
    "zero_demand_days",
    "log_expected_demand",
    "inbound_cover",
    "next_eta",
    "since_last_receipt",
    "oos_seen_24h",
    "oos_days_14d",
    "last_obs_oos",
    "recent_stockout",
    "in_stockout",
];

/// Index of the prior's logit.
pub const PRIOR_LOGIT: usize = 1;
/// Index of the on-hand-unknown indicator.
pub const ON_HAND_UNKNOWN: usize = 2;
/// Index of the last-observation-out-of-stock indicator.
pub const LAST_OBS_OOS: usize = 12;
/// Index of the in-stockout indicator.
pub const IN_STOCKOUT: usize = 14;

/// The features that come from availability observations (the "no availability history"
/// baseline of `stockwatch evaluate` zeroes them).
pub const AVAILABILITY_HISTORY: &[usize] = &[10, 11, LAST_OBS_OOS, 13, IN_STOCKOUT];

/// A feature vector.
pub type Features = [f32; NF];

/// What the features are computed from (a view of one key's state, assembled by the shard).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyInputs {
    /// Event time of the scoring, ms.
    pub now_ms: i64,
    /// Prediction horizon, ms.
    pub horizon_ms: i64,
    /// On hand, if known.
    pub on_hand: Option<f64>,
    /// Demand statistics from the windows.
    pub demand: DemandStats,
    /// Inbound quantity arriving before the horizon ends.
    pub inbound_in_horizon: f64,
    /// Earliest open ETA, ms.
    pub next_eta_ms: Option<i64>,
    /// Hours since the last receipt, if any.
    pub hours_since_receipt: Option<f64>,
    /// Out-of-stock observation bitmap over the last hours (bit 0 = current hour).
    pub oos_hours: u32,
    /// Out-of-stock observation bitmap over the last days (bit 0 = today).
    pub oos_days: u32,
    /// The last availability observation was out of stock.
    pub last_obs_oos: bool,
    /// A stockout episode is open.
    pub in_stockout: bool,
    /// Hours since the last stockout episode started, if any.
    pub hours_since_stockout: Option<f64>,
}

/// Derived quantities that alerts report next to the risk.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Derived {
    /// Expected demand over the horizon.
    pub expected_demand: f64,
    /// Days of cover at the current rate (None when on hand is unknown; capped at 999).
    pub days_of_cover: Option<f64>,
    /// The analytic prior (None when on hand is unknown).
    pub prior: Option<f64>,
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

/// Computes the feature vector and the derived quantities.
pub fn compute(k: &KeyInputs, x: &mut Features) -> Derived {
    let horizon_h = k.horizon_ms as f64 / 3_600_000.0;
    let d = &k.demand;
    let expected = d.rate_per_hour * horizon_h;
    let per_day = d.rate_per_hour * 24.0;
    let mut out = Derived {
        expected_demand: expected,
        days_of_cover: None,
        prior: None,
    };
    x.fill(0.0);
    x[0] = 1.0;
    match k.on_hand {
        Some(oh) => {
            let p = if k.in_stockout {
                1.0 // an observed empty shelf: nothing is available, whatever the records say
            } else {
                // Stock runs out before the next arrival, or over the whole horizon despite it.
                let until_h = match k.next_eta_ms {
                    Some(eta) if k.inbound_in_horizon > 0.0 => {
                        ((eta - k.now_ms) as f64 / 3_600_000.0).clamp(0.0, horizon_h)
                    }
                    _ => horizon_h,
                };
                let before = stockout_prior(d.rate_per_hour * until_h, d.dispersion, oh);
                let over = stockout_prior(expected, d.dispersion, oh + k.inbound_in_horizon);
                before.max(over)
            };
            out.prior = Some(p);
            x[PRIOR_LOGIT] = logit(p) as f32;
            let doc = if per_day > 1e-9 {
                (oh.max(0.0) / per_day).min(999.0)
            } else {
                999.0
            };
            out.days_of_cover = Some(doc);
            x[3] = (doc.min(60.0)).ln_1p() as f32 / 4.0;
        }
        None => x[ON_HAND_UNKNOWN] = 1.0,
    }
    x[4] = ((d.recent_per_hour + 0.01) / (d.rate_per_hour + 0.01))
        .ln()
        .clamp(-3.0, 3.0) as f32;
    x[5] = d.zero_day_fraction as f32;
    x[6] = expected.ln_1p().min(10.0) as f32 / 4.0;
    x[7] = (k.inbound_in_horizon / (expected + 1.0)).ln_1p().min(5.0) as f32;
    x[8] = match k.next_eta_ms {
        Some(eta) => ((eta - k.now_ms) as f64 / k.horizon_ms as f64).clamp(0.0, 1.0) as f32,
        None => 1.0,
    };
    x[9] = match k.hours_since_receipt {
        Some(h) => (h.max(0.0).ln_1p() / (24.0f64 * 28.0).ln_1p()).min(1.0) as f32,
        None => 1.0,
    };
    x[10] = f32::from(k.oos_hours & 0x00ff_ffff != 0);
    x[11] = (k.oos_days & 0x3fff).count_ones() as f32 / 14.0;
    x[LAST_OBS_OOS] = f32::from(k.last_obs_oos);
    x[13] = match k.hours_since_stockout {
        Some(h) => (-h.max(0.0) / horizon_h.max(1.0)).exp() as f32,
        None => 0.0,
    };
    x[IN_STOCKOUT] = f32::from(k.in_stockout);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            now_ms: 0,
            horizon_ms: 72 * 3_600_000,
            on_hand: Some(10.0),
            demand: DemandStats {
                rate_per_hour: 0.5,
                recent_per_hour: 0.5,
                dispersion: 1.0,
                zero_day_fraction: 0.0,
                complete_days: 7,
                today: 1.0,
            },
            inbound_in_horizon: 0.0,
            next_eta_ms: None,
            hours_since_receipt: Some(10.0),
            oos_hours: 0,
            oos_days: 0,
            last_obs_oos: false,
            in_stockout: false,
            hours_since_stockout: None,
        }
    }

    #[test]
    fn finite_and_bounded() {
        let mut x = [0.0; NF];
        let d = compute(&inputs(), &mut x);
        assert!(x.iter().all(|v| v.is_finite() && v.abs() <= 10.0), "{x:?}");
        assert_eq!(d.expected_demand, 36.0);
        assert!(d.prior.unwrap() > 0.99);
        let mut k = inputs();
        k.on_hand = None;
        k.demand = DemandStats::default();
        let d = compute(&k, &mut x);
        assert!(x.iter().all(|v| v.is_finite()), "{x:?}");
        assert_eq!(x[ON_HAND_UNKNOWN], 1.0);
        assert_eq!(d.days_of_cover, None);
    }

    #[test]
    fn inbound_lowers_the_prior_only_if_it_arrives_in_time() {
        let mut x = [0.0; NF];
        let p0 = compute(&inputs(), &mut x).prior.unwrap();
        let mut k = inputs();
        k.inbound_in_horizon = 40.0;
        k.next_eta_ms = Some(3_600_000);
        let early = compute(&k, &mut x).prior.unwrap();
        assert!(early < 0.2 && early < p0, "{early} {p0}");
        // The same shipment arriving after the on-hand stock is gone does not help much.
        k.next_eta_ms = Some(40 * 3_600_000);
        let late = compute(&k, &mut x).prior.unwrap();
        assert!(late > 0.5, "{late}");
        // An observed stockout is certain, whatever the records say.
        k.in_stockout = true;
        assert_eq!(compute(&k, &mut x).prior, Some(1.0));
    }
}
