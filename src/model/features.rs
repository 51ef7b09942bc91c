//! Features of one key at one moment, computed from its state. All are bounded and roughly
//! unit-scaled so one learning rate fits all; missing inputs get a neutral value plus an
//! indicator, never NaN.

use super::prior::stockout_prior;
use crate::event::HOUR_MS;

/// Number of features, bias included.
pub const NF: usize = 42;

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
    "oos_hours_24h",
    "oos_window_yesterday",
    "hours_since_oos",
    "oos_days_7d",
    "oos_days_28d",
    "oos_today",
    "hour_of_day",
    "day_of_week",
    "pace_today",
    "pace_3h",
    "log_daily_rate",
    "since_stockout",
    "loc_oos_hours_24h",
    "loc_oos_window_yesterday",
    "loc_oos_now",
    "loc_oos_days_7d",
    "loc_pace_today",
    "sku_oos_hours_24h",
    "sku_oos_window_yesterday",
    "sku_oos_now",
    "sku_oos_days_7d",
    "sku_pace_today",
    "cat_oos_hours_24h",
    "cat_oos_window_yesterday",
    "cat_oos_now",
    "cat_oos_days_7d",
    "cat_pace_today",
];

/// Index of the prior's logit.
pub const PRIOR_LOGIT: usize = 1;
/// Index of the on-hand-unknown indicator.
pub const ON_HAND_UNKNOWN: usize = 2;
/// Index of the last-observation-out-of-stock indicator.
pub const LAST_OBS_OOS: usize = 12;
/// Index of the in-stockout indicator.
pub const IN_STOCKOUT: usize = 14;
/// Index of the hour of day (hour / 24, local time of the location: see `KeyInputs::utc_offset_ms`).
pub const HOUR_OF_DAY: usize = 21;
/// Index of the day of week (Monday = 0, / 7).
pub const DAY_OF_WEEK: usize = 22;
/// Index of the first pooled feature of the key's location (five: see [`pool_features`]).
pub const LOC_POOL: usize = 27;
/// Index of the first pooled feature of the key's SKU (five, as [`LOC_POOL`]).
pub const SKU_POOL: usize = 32;
/// Levels of the item table's category path (`a/b/c`) that name the key's category pool
/// (`engine::pool`): 1, the top level (chosen on the development data: `docs/model.md`,
/// "Category pools"). Part of the feature set's fingerprint.
pub const CATEGORY_LEVEL: usize = 1;
/// Index of the first pooled feature of the key's item category (five, as [`LOC_POOL`]; a key
/// whose SKU has no category reads an empty pool: the shard's shares, pace 0).
pub const CAT_POOL: usize = 37;

/// The features that come from availability observations (the "no availability history"
/// baseline of `stockwatch evaluate` zeroes them).
pub const AVAILABILITY_HISTORY: &[usize] = &[
    10,
    11,
    LAST_OBS_OOS,
    13,
    IN_STOCKOUT,
    15,
    16,
    17,
    18,
    19,
    20,
    26,
    LOC_POOL,
    LOC_POOL + 1,
    LOC_POOL + 2,
    LOC_POOL + 3,
    SKU_POOL,
    SKU_POOL + 1,
    SKU_POOL + 2,
    SKU_POOL + 3,
    CAT_POOL,
    CAT_POOL + 1,
    CAT_POOL + 2,
    CAT_POOL + 3,
];

/// A feature vector.
pub type Features = [f32; NF];

/// Demand statistics of one key at one hour, from its windows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DemandStats {
    /// Shrunk estimate of demand per hour over the whole window.
    pub rate_per_hour: f64,
    /// Demand per hour over the last 24 hours (shrunk).
    pub recent_per_hour: f64,
    /// Dispersion index of daily demand (variance / mean, ≥ 1).
    pub dispersion: f64,
    /// Fraction of complete days in the window with no demand.
    pub zero_day_fraction: f64,
    /// Complete days of history in the window.
    pub complete_days: u32,
    /// Demand so far today.
    pub today: f64,
    /// Demand of the complete days before today, summed (oldest last: the sum the rate is
    /// made of; the key's usual daily demand in its pools is this over `complete_days`).
    pub past: f64,
}

/// Sums over a group of keys (a pool: the keys of one location, of one SKU, or of the whole
/// shard) of what each key says about availability and demand, as of the key's last event.
/// Integers (demand in fixed point), so that adding and removing a key's part is exact and
/// the sums do not depend on the order of the updates: a pool rebuilt from the key rows equals
/// the one maintained event by event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolSums {
    /// Keys with at least one availability observation.
    pub keys: u32,
    /// Out-of-stock hours in the last 24 hours.
    pub oos_hours: u32,
    /// Out-of-stock hours in the horizon's window one day earlier (see `oos_window_yesterday`).
    pub oos_window: u32,
    /// Keys whose stockout episode is open.
    pub oos_now: u32,
    /// Out-of-stock days among the 7 days before today.
    pub oos_days: u32,
    /// Demand today, in units of [`PoolSums::QTY_SCALE`]⁻¹, over keys with a complete day.
    pub today: i64,
    /// Mean daily demand over the complete days of the window, same units and keys.
    pub usual: i64,
}

impl PoolSums {
    /// Fixed-point scale of the demand sums (1/1000 of a unit).
    pub const QTY_SCALE: f64 = 1000.0;

    /// `self + o`.
    #[inline]
    pub fn add(&mut self, o: &PoolSums) {
        self.keys += o.keys;
        self.oos_hours += o.oos_hours;
        self.oos_window += o.oos_window;
        self.oos_now += o.oos_now;
        self.oos_days += o.oos_days;
        self.today += o.today;
        self.usual += o.usual;
    }

    /// `self − o` (`o` a part of `self`: never below zero).
    #[inline]
    pub fn sub(&mut self, o: &PoolSums) {
        self.keys -= o.keys;
        self.oos_hours -= o.oos_hours;
        self.oos_window -= o.oos_window;
        self.oos_now -= o.oos_now;
        self.oos_days -= o.oos_days;
        self.today -= o.today;
        self.usual -= o.usual;
    }

    /// `self − o`, a new value.
    #[inline]
    pub fn minus(mut self, o: &PoolSums) -> PoolSums {
        self.sub(o);
        self
    }
}

/// The pools a key is scored with, each **without the key itself** (leave-one-out: a key's
/// own history is in its own features already, and its label must not leak into its pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolInputs {
    /// The other keys of the key's location.
    pub location: PoolSums,
    /// The other keys of the key's SKU (at other locations).
    pub sku: PoolSums,
    /// The other keys of the key's item category (its SKU's category in the item table, at
    /// the pooled level: see `engine::pool`); empty when the SKU has no category.
    pub category: PoolSums,
    /// The other keys of the shard: what a small pool is shrunk towards.
    pub shard: PoolSums,
}

/// What the features are computed from: the model's one read view of a key, filled by the
/// state (`KeyRow::inputs` in `state::transition`), so the model never reads state types.
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
    /// Demand in the current and the two previous hours.
    pub demand_last_3h: f64,
    /// The last inventory count's discrepancy against the book (count − recorded on hand,
    /// whole units; negative: phantom inventory), if a count found the book known. Carried
    /// for models; not in the feature vector (whose layout the learned weights depend on).
    pub count_gap: Option<f64>,
    /// UTC offset of the key's location at `now_ms` (its time zone in the master data; 0 for
    /// a location it does not know): hour of day and day of week are local.
    pub utc_offset_ms: i64,
    /// The key's pools (set by the shard; empty for a key scored apart from one).
    pub pools: PoolInputs,
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
                let over = stockout_prior(expected, d.dispersion, oh + k.inbound_in_horizon);
                match k.next_eta_ms {
                    Some(eta) if k.inbound_in_horizon > 0.0 => {
                        let until_h = ((eta - k.now_ms) as f64 / 3_600_000.0).clamp(0.0, horizon_h);
                        let before = stockout_prior(d.rate_per_hour * until_h, d.dispersion, oh);
                        before.max(over)
                    }
                    // Nothing arrives in the horizon: "before the next arrival" is the horizon,
                    // the same probability (one prior, not two, per event without inbound).
                    _ => over,
                }
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
    // Availability history at hourly resolution (bit i of `oos_hours`: i hours ago).
    let hours24 = k.oos_hours & 0x00ff_ffff;
    x[15] = hours24.count_ones() as f32 / 24.0;
    // The horizon's window one day earlier: hours (24 - H)..=23 ago (all 24 if H >= 24).
    let w = window_hours(k.horizon_ms);
    let window = hours24 >> (24 - w);
    x[16] = window.count_ones() as f32 / w as f32;
    x[17] = if k.oos_hours == 0 {
        1.0
    } else {
        (f64::from(k.oos_hours.trailing_zeros()).ln_1p() / 32f64.ln_1p()) as f32
    };
    // Days (bit 0 = today).
    x[18] = (k.oos_days & 0xfe).count_ones() as f32 / 7.0;
    x[19] = (k.oos_days & 0x1fff_fffe).count_ones() as f32 / 28.0;
    x[20] = f32::from(k.oos_days & 1 != 0);
    // Local time of the key's location (UTC when the master data does not know it).
    let local_hour = (k.now_ms + k.utc_offset_ms).div_euclid(HOUR_MS);
    x[HOUR_OF_DAY] = local_hour.rem_euclid(24) as f32 / 24.0;
    // 1970-01-01 was a Thursday: Monday = 0.
    x[DAY_OF_WEEK] = (local_hour.div_euclid(24) + 3).rem_euclid(7) as f32 / 7.0;
    // Sell-through today against the key's usual pace (censored demand: an empty shelf sells
    // nothing), and over the last three hours. The state's day buckets are UTC days.
    let hod = k.now_ms.div_euclid(HOUR_MS).rem_euclid(24);
    let so_far = d.rate_per_hour * (hod + 1) as f64;
    x[23] = ((d.today + 0.1) / (so_far + 0.1)).ln().clamp(-3.0, 3.0) as f32;
    x[24] = ((k.demand_last_3h + 0.05) / (3.0 * d.rate_per_hour + 0.05))
        .ln()
        .clamp(-3.0, 3.0) as f32;
    x[25] = (per_day.ln_1p() / 4.0).min(2.5) as f32;
    x[26] = match k.hours_since_stockout {
        Some(h) => (h.max(0.0).ln_1p() / (24.0f64 * 28.0).ln_1p()).min(1.0) as f32,
        None => 1.0,
    };
    set_pooled(k, x);
    out
}

/// Writes the pooled features of `x` (those from `k.pools`; part of [`compute`]): a function
/// of `k.pools`, `k.now_ms` and `k.horizon_ms` only.
fn set_pooled(k: &KeyInputs, x: &mut Features) {
    let w = window_hours(k.horizon_ms);
    let hod = k.now_ms.div_euclid(HOUR_MS).rem_euclid(24);
    let frac_today = (hod + 1) as f64 / 24.0;
    let p = &k.pools;
    pool_features(
        &p.location,
        &p.shard,
        w,
        frac_today,
        &mut x[LOC_POOL..LOC_POOL + 5],
    );
    pool_features(
        &p.sku,
        &p.shard,
        w,
        frac_today,
        &mut x[SKU_POOL..SKU_POOL + 5],
    );
    pool_features(
        &p.category,
        &p.shard,
        w,
        frac_today,
        &mut x[CAT_POOL..CAT_POOL + 5],
    );
}

/// Pseudo-keys of the shard's mean that a pool is shrunk towards: a pool of one other key says
/// about a third of what it would alone, an empty pool gives the shard's mean.
const POOL_PSEUDO_KEYS: f64 = 2.0;

/// The five pooled features of one pool `o` (the other keys of a location or of a SKU):
/// out-of-stock share of the last 24 hours, of the horizon's window yesterday (`w` hours), of
/// keys now out of stock and of the 7 days before today — each shrunk towards the shard's
/// share (`t`) with [`POOL_PSEUDO_KEYS`] — and the pool's sell-through today against its usual
/// pace (`frac_today`: the share of the day elapsed), as `pace_today` is for the key.
fn pool_features(o: &PoolSums, t: &PoolSums, w: u32, frac_today: f64, x: &mut [f32]) {
    let share = |own: u32, all: u32, per_key: f64| {
        let prior = if t.keys > 0 {
            f64::from(all) / (per_key * f64::from(t.keys))
        } else {
            0.0
        };
        ((f64::from(own) + POOL_PSEUDO_KEYS * per_key * prior)
            / (per_key * (f64::from(o.keys) + POOL_PSEUDO_KEYS))) as f32
    };
    x[0] = share(o.oos_hours, t.oos_hours, 24.0);
    x[1] = share(o.oos_window, t.oos_window, f64::from(w));
    x[2] = share(o.oos_now, t.oos_now, 1.0);
    x[3] = share(o.oos_days, t.oos_days, 7.0);
    let (today, usual) = (
        o.today as f64 / PoolSums::QTY_SCALE,
        o.usual as f64 / PoolSums::QTY_SCALE,
    );
    x[4] = ((today + 0.1) / (usual * frac_today + 0.1))
        .ln()
        .clamp(-3.0, 3.0) as f32;
}

/// Hours of the horizon's window one day earlier that `oos_window_yesterday` and its pooled
/// counterparts count: the horizon in whole hours, 1 to 24.
pub fn window_hours(horizon_ms: i64) -> u32 {
    (horizon_ms as f64 / 3_600_000.0).round().clamp(1.0, 24.0) as u32
}

/// Cut points of each feature for the binned learner (`v >= cut` moves up one bin; empty: the
/// feature only has its linear weight). Chosen on the feature's scale, not fitted to data.
pub const fn bin_edges(i: usize) -> &'static [f32] {
    const HOURS: [f32; 23] = [
        0.5 / 24.0,
        1.5 / 24.0,
        2.5 / 24.0,
        3.5 / 24.0,
        4.5 / 24.0,
        5.5 / 24.0,
        6.5 / 24.0,
        7.5 / 24.0,
        8.5 / 24.0,
        9.5 / 24.0,
        10.5 / 24.0,
        11.5 / 24.0,
        12.5 / 24.0,
        13.5 / 24.0,
        14.5 / 24.0,
        15.5 / 24.0,
        16.5 / 24.0,
        17.5 / 24.0,
        18.5 / 24.0,
        19.5 / 24.0,
        20.5 / 24.0,
        21.5 / 24.0,
        22.5 / 24.0,
    ];
    const DAYS: [f32; 6] = [
        0.5 / 7.0,
        1.5 / 7.0,
        2.5 / 7.0,
        3.5 / 7.0,
        4.5 / 7.0,
        5.5 / 7.0,
    ];
    const FRACTION: [f32; 5] = [0.01, 0.1, 0.25, 0.45, 0.7];
    const UNIT: [f32; 6] = [0.05, 0.2, 0.4, 0.6, 0.8, 0.95];
    const LOGIT: [f32; 7] = [-6.0, -3.0, -1.5, -0.5, 0.5, 1.5, 3.0];
    const RATIO: [f32; 6] = [-1.5, -0.7, -0.2, 0.2, 0.7, 1.5];
    // Pooled shares: means over many keys, so finer where they concentrate.
    const POOLED: [f32; 8] = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.7];
    match i {
        LOC_POOL..=30 | SKU_POOL..=35 | CAT_POOL..=40 => &POOLED,
        31 | 36 | 41 => &RATIO,
        PRIOR_LOGIT => &LOGIT,
        3 | 6 | 25 => &UNIT,
        4 | 23 | 24 => &RATIO,
        5 | 11 | 15 | 16 | 18 | 19 => &FRACTION,
        7 | 8 | 9 | 13 | 17 | 26 => &UNIT,
        HOUR_OF_DAY => &HOURS,
        DAY_OF_WEEK => &DAYS,
        _ => &[],
    }
}

/// Pairs of features whose bins are crossed (hour-of-day profiles of the availability history
/// and of demand, and the interplay of short- and long-run stock-out history).
pub const CROSSES: [(usize, usize); 10] = [
    (HOUR_OF_DAY, 15),
    (HOUR_OF_DAY, 16),
    (HOUR_OF_DAY, 17),
    (HOUR_OF_DAY, 18),
    (HOUR_OF_DAY, 25),
    (HOUR_OF_DAY, 23),
    (DAY_OF_WEEK, 18),
    (19, 17),
    (16, 18),
    (17, 15),
];

/// Bin of value `v` given the cut points (ascending): the number of cuts at or below `v`.
/// Counted over all cuts without an early exit, which compiles to compares without branches;
/// as the cuts ascend, it is the length of the prefix `v >= cut` (0 for NaN).
#[inline]
pub fn bin_of(v: f32, edges: &[f32]) -> usize {
    edges.iter().map(|&c| usize::from(v >= c)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(keys: u32, oos_hours: u32, oos_now: u32, today: i64, usual: i64) -> PoolSums {
        PoolSums {
            keys,
            oos_hours,
            oos_window: oos_hours,
            oos_now,
            oos_days: 0,
            today,
            usual,
        }
    }

    #[test]
    fn a_pool_is_shrunk_towards_the_shard_and_paced_against_its_usual() {
        // The shard: 100 keys, a quarter of the hours out of stock, one key in ten empty now.
        let shard = sums(100, 600, 10, 0, 0);
        let mut x = [0.0f32; 5];
        // No other key in the pool: the shard's shares.
        pool_features(&PoolSums::default(), &shard, 24, 0.5, &mut x);
        assert!(
            (x[0] - 0.25).abs() < 1e-6 && (x[2] - 0.1).abs() < 1e-6,
            "{x:?}"
        );
        // Many other keys, all out of stock: close to 1, not quite (two pseudo-keys).
        pool_features(&sums(98, 98 * 24, 98, 0, 0), &shard, 24, 0.5, &mut x);
        assert!(x[0] > 0.98 && x[0] < 1.0 && x[2] > 0.98, "{x:?}");
        // One other key out of stock all day: between the shard and the key.
        pool_features(&sums(1, 24, 1, 0, 0), &shard, 24, 0.5, &mut x);
        assert!((x[0] - 0.5).abs() < 1e-6, "{x:?}");
        // Half a day gone, the pool sold its usual daily demand: twice its pace.
        pool_features(&sums(5, 0, 0, 50_000, 50_000), &shard, 24, 0.5, &mut x);
        assert!(
            (f64::from(x[4]) - (50.1f64 / 25.1).ln()).abs() < 1e-5,
            "{x:?}"
        );
        // Nothing known at all: neutral.
        pool_features(&PoolSums::default(), &PoolSums::default(), 24, 0.5, &mut x);
        assert_eq!(x, [0.0; 5]);
    }

    /// `set_pooled` writes every feature the pools move and nothing else: on features
    /// computed from other pools it gives, bit for bit, the features computed from the new
    /// pools.
    #[test]
    fn rewriting_the_pooled_features_equals_computing_them() {
        let k = KeyInputs {
            now_ms: 1_700_000_000_000 + 13 * HOUR_MS + 1234,
            horizon_ms: 24 * HOUR_MS,
            on_hand: Some(7.0),
            demand: DemandStats {
                rate_per_hour: 0.4,
                recent_per_hour: 0.6,
                dispersion: 1.7,
                zero_day_fraction: 0.2,
                complete_days: 9,
                today: 3.0,
                past: 20.0,
            },
            inbound_in_horizon: 4.0,
            next_eta_ms: Some(1_700_000_000_000 + 20 * HOUR_MS),
            hours_since_receipt: Some(30.0),
            oos_hours: 0b1011,
            oos_days: 0b101,
            last_obs_oos: false,
            in_stockout: false,
            hours_since_stockout: Some(50.0),
            demand_last_3h: 1.0,
            count_gap: None,
            utc_offset_ms: 0,
            pools: PoolInputs::default(),
        };
        let mut a = [0.0f32; NF];
        compute(&k, &mut a);
        for (n, (loc, sku)) in [
            (sums(3, 20, 1, 9_000, 12_000), sums(40, 100, 2, 0, 5_000)),
            (sums(0, 0, 0, 0, 0), sums(1, 24, 1, 1_000, 0)),
            (sums(500, 9_000, 90, 77_000, 70_000), sums(2, 0, 0, 10, 10)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut moved = k;
            moved.now_ms += n as i64 * 5 * HOUR_MS;
            moved.pools = PoolInputs {
                location: loc,
                sku,
                category: sums(60 + n as u32, 300, 4, 20_000, 21_000),
                shard: sums(900, 5_000, 50, 300_000, 280_000),
            };
            let (mut want, mut got) = ([0.0f32; NF], [0.0f32; NF]);
            compute(&moved, &mut want);
            let mut own = k;
            own.now_ms = moved.now_ms;
            compute(&own, &mut got);
            set_pooled(&moved, &mut got);
            assert_eq!(want.map(f32::to_bits), got.map(f32::to_bits), "case {n}");
            assert_ne!(
                a.map(f32::to_bits),
                got.map(f32::to_bits),
                "case {n} moved nothing"
            );
        }
    }

    #[test]
    fn pooled_features_come_from_the_pools_and_are_history() {
        assert_eq!(NAMES[LOC_POOL], "loc_oos_hours_24h");
        assert_eq!(NAMES[SKU_POOL + 4], "sku_pace_today");
        assert_eq!(NAMES[CAT_POOL], "cat_oos_hours_24h");
        assert_eq!(NAMES[CAT_POOL + 4], "cat_pace_today");
        for i in [
            LOC_POOL,
            LOC_POOL + 3,
            SKU_POOL,
            SKU_POOL + 3,
            CAT_POOL,
            CAT_POOL + 3,
        ] {
            assert!(AVAILABILITY_HISTORY.contains(&i), "{}", NAMES[i]);
        }
        assert!(!AVAILABILITY_HISTORY.contains(&(SKU_POOL + 4)));
        assert!(!AVAILABILITY_HISTORY.contains(&(CAT_POOL + 4)));
    }
}
