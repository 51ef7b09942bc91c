//! The demand side of the world: how much each SKU sells at each store, hour by hour.
//!
//! Expected units sold in one hour at one store for one SKU is
//! `key rate × SKU trend and promotion × store opening-hour profile × day-of-week factor`,
//! and the number of customers in that hour is a Poisson draw around it (see [`poisson`]).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

/// Day-of-week demand factors, Monday first; they average 1.
const WEEKDAY_FACTOR: [f64; 7] = [0.92, 0.88, 0.93, 1.0, 1.12, 1.3, 0.85];

/// Opening hours `[open, close)` a store can have, and how often each is drawn.
const OPENING_HOURS: [(usize, usize, f64); 4] =
    [(8, 21, 0.5), (7, 22, 0.2), (9, 20, 0.2), (8, 20, 0.1)];

/// Share of SKUs that sell only now and then (a few units a month per store).
const INTERMITTENT_SHARE: f64 = 0.2;
/// Share of the other SKUs that are fresh goods sold by weight (fractional quantities, kg).
const WEIGHT_SHARE: f64 = 0.06;
/// Daily chance that a (non-intermittent) SKU without a promotion schedules a chain-wide one.
const PROMO_SCHEDULE_CHANCE: f64 = 1.0 / 40.0;
/// Days between a promotion being scheduled and its start: long enough for DCs to stock up.
const PROMO_NOTICE_DAYS: i64 = 10;
/// Share of a promotion's lift that stores and DCs plan for in their orders: promotions
/// still empty shelves, but not for their whole duration.
const PROMO_PLANNED_SHARE: f64 = 0.6;

/// Units per customer for SKUs sold by the piece: 1 to 6, mostly 1.
const BASKET_UNITS: [(i64, f64); 5] = [(1, 0.74), (2, 0.17), (3, 0.05), (4, 0.02), (6, 0.02)];
/// Mean of [`BASKET_UNITS`].
const MEAN_BASKET_UNITS: f64 = 0.74 + 2.0 * 0.17 + 3.0 * 0.05 + 4.0 * 0.02 + 6.0 * 0.02;
/// Mean square of [`BASKET_UNITS`].
const MEAN_SQUARE_BASKET_UNITS: f64 = 0.74 + 4.0 * 0.17 + 9.0 * 0.05 + 16.0 * 0.02 + 36.0 * 0.02;
/// Median kilograms per customer for SKUs sold by weight (log-normal, σ = 0.45).
const MEDIAN_BASKET_KG: f64 = 0.45;
const SIGMA_BASKET_KG: f64 = 0.45;

/// A standard normal draw.
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// A log-normal draw with the given median and log-space σ.
pub(crate) fn log_normal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// Draws an index from `(value, weight)` pairs whose weights sum to about 1.
pub(crate) fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, f64)]) -> T {
    let mut u: f64 = rng.random();
    for &(value, weight) in choices {
        if u < weight {
            return value;
        }
        u -= weight;
    }
    choices[choices.len() - 1].0
}

/// A Poisson draw with mean `lambda`: by inversion for the small means of one key-hour (one
/// uniform draw, no allocation), by `rand_distr` for the rare large ones.
pub(crate) fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    if lambda > 30.0 {
        return Poisson::new(lambda).map_or(0, |d| d.sample(rng) as u32);
    }
    let u: f64 = rng.random();
    let mut k = 0u32;
    let mut p = (-lambda).exp();
    let mut cumulative = p;
    while u > cumulative && k < 200 {
        k += 1;
        p *= lambda / f64::from(k);
        cumulative += p;
    }
    k
}

/// How one SKU sells, chain-wide.
#[derive(Debug, Clone)]
pub(crate) struct Sku {
    /// Expected units (kg when sold by weight) per day at an average store, before trend
    /// and promotions.
    pub(crate) daily_rate: f64,
    /// Sold by weight: quantities are fractional kilograms.
    pub(crate) by_weight: bool,
    /// Sells only now and then; never promoted.
    pub(crate) intermittent: bool,
    /// Case pack in thousandths: store orders are rounded up to it.
    pub(crate) pack_milli: i64,
    /// Regular shelf price in cents (per kg when sold by weight).
    price_cents: u32,
    season_amplitude: f64,
    season_period_days: f64,
    season_phase: f64,
    /// The scheduled or running promotion, if any.
    promo: Option<Promo>,
    /// Today's day index (days since the start of the run).
    today: i64,
    /// Today's demand multiplier: seasonal trend × promotion lift.
    pub(crate) today_factor: f64,
    /// Today's shelf price in cents.
    pub(crate) today_price_cents: u32,
}

impl Sku {
    fn draw(rng: &mut ChaCha8Rng) -> Self {
        let intermittent = rng.random_bool(INTERMITTENT_SHARE);
        let by_weight = !intermittent && rng.random_bool(WEIGHT_SHARE);
        let daily_rate = if intermittent {
            rng.random_range(0.03..0.3)
        } else if by_weight {
            log_normal(rng, 3.0, 0.7).min(40.0)
        } else {
            log_normal(rng, 2.0, 1.0).clamp(0.2, 60.0)
        };
        let pack_milli = if by_weight {
            2_500
        } else if daily_rate < 0.5 {
            1_000
        } else if daily_rate < 3.0 {
            6_000
        } else if daily_rate < 10.0 {
            12_000
        } else {
            24_000
        };
        let median_price = if by_weight { 8.99 } else { 3.99 };
        let price = log_normal(rng, median_price, 0.7).clamp(0.49, 199.99);
        // Shelf prices end in .49 or .99.
        let ending = if rng.random_bool(0.3) { 49 } else { 99 };
        let price_cents = (price.floor() as u32) * 100 + ending;
        Self {
            daily_rate,
            by_weight,
            intermittent,
            pack_milli,
            price_cents,
            season_amplitude: rng.random_range(0.0..0.3),
            season_period_days: rng.random_range(30.0..120.0),
            season_phase: rng.random_range(0.0..1.0),
            promo: None,
            today: 0,
            today_factor: 1.0,
            today_price_cents: price_cents,
        }
    }

    /// Rolls the SKU to day `day` (days since the start of the run): trend, promotion
    /// schedule, today's price. Returns whether a promotion was scheduled.
    ///
    /// On the `first` day, promotions already scheduled before the run are drawn too, so
    /// that promotions run from the start.
    fn start_day(&mut self, rng: &mut ChaCha8Rng, day: i64, first: bool) -> bool {
        self.today = day;
        if self.promo.is_some_and(|p| day >= p.end_day) {
            self.promo = None;
        }
        let chance = if first {
            PROMO_SCHEDULE_CHANCE * (PROMO_NOTICE_DAYS + 1) as f64
        } else {
            PROMO_SCHEDULE_CHANCE
        };
        let scheduled = self.promo.is_none() && !self.intermittent && rng.random_bool(chance);
        if scheduled {
            let notice = if first {
                rng.random_range(0..=PROMO_NOTICE_DAYS)
            } else {
                PROMO_NOTICE_DAYS
            };
            let start_day = day + notice;
            self.promo = Some(Promo {
                start_day,
                end_day: start_day + rng.random_range(3..=7),
                lift: rng.random_range(2.0..4.0),
                discount: rng.random_range(0.15..0.4),
            });
        }
        let angle = std::f64::consts::TAU
            * ((day as f64 + 0.5) / self.season_period_days + self.season_phase);
        let trend = 1.0 + self.season_amplitude * angle.sin();
        let (lift, discount) = match self.promo {
            Some(p) if p.start_day <= day => (p.lift, p.discount),
            _ => (1.0, 0.0),
        };
        self.today_factor = trend * lift;
        self.today_price_cents =
            ((f64::from(self.price_cents) * (1.0 - discount)).round() as u32).max(1);
        scheduled
    }

    /// How much to scale a reorder point and order-up-to level today, for a location that
    /// must order `horizon_days` ahead: it plans for part of a promotion running within that
    /// horizon.
    pub(crate) fn plan_factor(&self, horizon_days: i64) -> f64 {
        match self.promo {
            Some(p) if p.start_day < self.today + horizon_days => {
                1.0 + PROMO_PLANNED_SHARE * (p.lift - 1.0)
            }
            _ => 1.0,
        }
    }

    /// Variance-to-mean ratio of demand (in units, or kg): customers arrive as a Poisson
    /// process but buy several units each, so demand is over-dispersed by `E[q²] / E[q]`.
    pub(crate) fn dispersion(&self) -> f64 {
        if self.by_weight {
            MEDIAN_BASKET_KG * (1.5 * SIGMA_BASKET_KG * SIGMA_BASKET_KG).exp()
        } else {
            MEAN_SQUARE_BASKET_UNITS / MEAN_BASKET_UNITS
        }
    }

    /// Expected quantity one customer buys, in thousandths.
    pub(crate) fn mean_basket_milli(&self) -> f64 {
        if self.by_weight {
            1_000.0 * MEDIAN_BASKET_KG * (SIGMA_BASKET_KG * SIGMA_BASKET_KG / 2.0).exp()
        } else {
            1_000.0 * MEAN_BASKET_UNITS
        }
    }

    /// What one customer wants to buy, in thousandths (whole units, or grams when sold by
    /// weight).
    pub(crate) fn basket_milli(&self, rng: &mut ChaCha8Rng) -> i64 {
        if self.by_weight {
            let kg = log_normal(rng, MEDIAN_BASKET_KG, SIGMA_BASKET_KG).clamp(0.05, 3.0);
            (kg * 1_000.0).round() as i64
        } else {
            pick(rng, &BASKET_UNITS) * 1_000
        }
    }
}

/// A chain-wide promotion of one SKU: days `[start_day, end_day)` at `lift` times the
/// demand and a `discount` off the shelf price.
#[derive(Debug, Clone, Copy)]
struct Promo {
    start_day: i64,
    end_day: i64,
    lift: f64,
    discount: f64,
}

/// How one store sells: its size and opening hours.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// Demand multiplier of the store (log-normal around 1).
    pub(crate) size: f64,
    /// Index into [`OPENING_HOURS`].
    hours: usize,
}

/// The demand model of the whole network.
#[derive(Debug)]
pub(crate) struct Demand {
    pub(crate) skus: Vec<Sku>,
    pub(crate) stores: Vec<Store>,
    /// Per opening-hours variant, the share of a day's demand in each hour (sums to 1).
    hour_share: [[f64; 24]; OPENING_HOURS.len()],
}

impl Demand {
    /// Draws the stores and SKUs.
    pub(crate) fn new(rng: &mut ChaCha8Rng, stores: u32, skus: u32) -> Self {
        let variants: Vec<(usize, f64)> = OPENING_HOURS
            .iter()
            .enumerate()
            .map(|(i, &(_, _, weight))| (i, weight))
            .collect();
        let stores = (0..stores)
            .map(|_| Store {
                size: log_normal(rng, 1.0, 0.35),
                hours: pick(rng, &variants),
            })
            .collect();
        let skus = (0..skus).map(|_| Sku::draw(rng)).collect();
        let mut hour_share = [[0.0; 24]; OPENING_HOURS.len()];
        for (shares, &(open, close, _)) in hour_share.iter_mut().zip(OPENING_HOURS.iter()) {
            for (hour, share) in shares.iter_mut().enumerate().take(close).skip(open) {
                // Quiet first and last hours, a lunch peak and a larger after-work peak.
                *share = match hour {
                    h if h == open => 0.6,
                    h if h + 1 == close => 0.7,
                    11..=13 => 1.35,
                    16..=18 => 1.6,
                    _ => 1.0,
                };
            }
            let total: f64 = shares.iter().sum();
            shares.iter_mut().for_each(|s| *s /= total);
        }
        Self {
            skus,
            stores,
            hour_share,
        }
    }

    /// Rolls every SKU to day `day` (days since the start of the run); returns how many
    /// promotions were scheduled (see [`Sku::start_day`] for the `first` day).
    pub(crate) fn start_day(&mut self, rng: &mut ChaCha8Rng, day: i64, first: bool) -> u64 {
        let mut scheduled = 0;
        for sku in &mut self.skus {
            scheduled += u64::from(sku.start_day(rng, day, first));
        }
        scheduled
    }

    /// Share of a day's demand at `store` falling in hour `hour` of weekday `weekday`
    /// (0 when closed).
    pub(crate) fn hour_factor(&self, store: usize, hour: usize, weekday: usize) -> f64 {
        self.hour_share[self.stores[store].hours][hour] * WEEKDAY_FACTOR[weekday]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn profiles_are_normalised() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let demand = Demand::new(&mut rng, 20, 10);
        let mean_weekday: f64 = WEEKDAY_FACTOR.iter().sum::<f64>() / 7.0;
        assert!((mean_weekday - 1.0).abs() < 1e-9);
        for store in 0..20 {
            let day: f64 = (0..24).map(|h| demand.hour_factor(store, h, 3)).sum();
            assert!((day - 1.0).abs() < 1e-9);
            assert_eq!(demand.hour_factor(store, 3, 0), 0.0);
            assert!(demand.hour_factor(store, 12, 0) > 0.0);
        }
    }

    #[test]
    fn poisson_has_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for lambda in [0.05, 0.7, 4.0, 45.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| u64::from(poisson(&mut rng, lambda))).sum();
            let mean = total as f64 / f64::from(n);
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.01,
                "{lambda}: {mean}"
            );
        }
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(poisson(&mut rng, f64::NAN), 0);
    }

    #[test]
    fn baskets_match_their_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut demand = Demand::new(&mut rng, 1, 400);
        demand.start_day(&mut rng, 0, true);
        for sku in demand.skus.iter().filter(|s| !s.intermittent).take(40) {
            let n = 5_000;
            let total: i64 = (0..n).map(|_| sku.basket_milli(&mut rng)).sum();
            let mean = total as f64 / f64::from(n);
            let expected = sku.mean_basket_milli();
            assert!(
                (mean - expected).abs() < 0.06 * expected,
                "{mean} vs {expected}"
            );
            assert!(sku.today_price_cents > 0);
        }
        assert!(demand.skus.iter().any(|s| s.by_weight));
        assert!(demand.skus.iter().any(|s| s.intermittent));
    }
}
