//! The demand side of the world: how much each SKU sells at each store, hour by hour.
//!
//! Expected units sold in one hour at one store for one SKU is
//! `key rate × SKU trend and promotion × store opening-hour profile × day-of-week factor`,
//! and the number of customers in that hour is a Poisson draw around it (see [`poisson`]).
//!
//! With real demand ([`DemandSource::Frn50kSample`](super::DemandSource)), every SKU follows
//! one series of the embedded sample (see [`super::real`]) instead: the key rate is the
//! series' mean daily demand × the store's size, the day's factor is the real day's demand
//! over that mean (real promotions and weekdays included), and the hour's share is the real
//! day's share of that hour. Customers are still Poisson draws around the expected demand,
//! so a seed still gives one stream.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::real::{Sample, Series};

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
    /// The real series the SKU follows, with real demand.
    real: Option<RealLink>,
}

/// A SKU's real series: simulated day `d` shows the series' day `offset + d` (mod 90).
#[derive(Debug, Clone, Copy)]
struct RealLink {
    series: &'static Series,
    /// Index of the series in the sample.
    index: usize,
    offset: i64,
}

impl RealLink {
    /// Index of today's day in the series.
    fn day_index(&self, today: i64) -> usize {
        (self.offset + today).rem_euclid(self.series.days.len() as i64) as usize
    }
}

/// Case pack, in thousandths, of a SKU selling `daily_rate` a day at an average store.
fn pack_milli(daily_rate: f64, by_weight: bool) -> i64 {
    if by_weight {
        2_500
    } else if daily_rate < 0.5 {
        1_000
    } else if daily_rate < 3.0 {
        6_000
    } else if daily_rate < 10.0 {
        12_000
    } else {
        24_000
    }
}

/// A regular shelf price in cents, ending in .49 or .99.
fn draw_price_cents(rng: &mut ChaCha8Rng, by_weight: bool) -> u32 {
    let median_price = if by_weight { 8.99 } else { 3.99 };
    let price = log_normal(rng, median_price, 0.7).clamp(0.49, 199.99);
    let ending = if rng.random_bool(0.3) { 49 } else { 99 };
    (price.floor() as u32) * 100 + ending
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
        let pack_milli = pack_milli(daily_rate, by_weight);
        let price_cents = draw_price_cents(rng, by_weight);
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
            real: None,
        }
    }

    /// The SKU following series `index` of `sample`, from its day `offset` on.
    ///
    /// Sold by the piece: fractional sales are too rare in the sample's series (about 1 % of
    /// the hours with sales, in every series) to tell goods sold by weight apart. Its
    /// regular price is drawn as for a synthetic SKU; real discounts apply to it.
    fn real(rng: &mut ChaCha8Rng, sample: &'static Sample, index: usize, offset: i64) -> Self {
        let series = &sample.series[index];
        let daily_rate = series.mean_daily;
        let price_cents = draw_price_cents(rng, false);
        Self {
            daily_rate,
            by_weight: false,
            intermittent: false,
            pack_milli: pack_milli(daily_rate, false),
            price_cents,
            season_amplitude: 0.0,
            season_period_days: 1.0,
            season_phase: 0.0,
            promo: None,
            today: 0,
            today_factor: 1.0,
            today_price_cents: price_cents,
            real: Some(RealLink {
                series,
                index,
                offset,
            }),
        }
    }

    /// [`Sku::start_day`] for a SKU with a real series: today's demand factor, promotion and
    /// discount are the real day's. Returns whether a real promotion starts today (or, on
    /// the first day, is running).
    fn start_real_day(&mut self, real: RealLink, day: i64, first: bool) -> bool {
        self.today = day;
        let today = real.series.day(real.offset + day);
        self.today_factor = if real.series.mean_daily > 0.0 {
            today.total / real.series.mean_daily
        } else {
            0.0
        };
        self.today_price_cents =
            ((f64::from(self.price_cents) * today.discount).round() as u32).max(1);
        today.promo && (first || !real.series.day(real.offset + day - 1).promo)
    }

    /// Rolls the SKU to day `day` (days since the start of the run): trend, promotion
    /// schedule, today's price. Returns whether a promotion was scheduled.
    ///
    /// On the `first` day, promotions already scheduled before the run are drawn too, so
    /// that promotions run from the start.
    fn start_day(&mut self, rng: &mut ChaCha8Rng, day: i64, first: bool) -> bool {
        if let Some(real) = self.real {
            return self.start_real_day(real, day, first);
        }
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
    ///
    /// With a real series: whether a real promotion day falls within the horizon, and the
    /// series' own promotion lift.
    pub(crate) fn plan_factor(&self, horizon_days: i64) -> f64 {
        if let Some(real) = self.real {
            let ahead =
                (0..horizon_days).any(|k| real.series.day(real.offset + self.today + k).promo);
            return if ahead {
                1.0 + PROMO_PLANNED_SHARE * (real.series.promo_lift - 1.0)
            } else {
                1.0
            };
        }
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
    /// With real demand: per series and day (`series × 90 + day`), the day's demand within
    /// each opening-hours variant's hours.
    real_open_demand: Vec<[f64; OPENING_HOURS.len()]>,
}

impl Demand {
    /// Draws the stores and SKUs: synthetic ones, or with `real = Some((sample, weekday0))`
    /// SKUs following the sample's series in turn, for a run whose first day is `weekday0`
    /// (0 = Monday).
    pub(crate) fn new(
        rng: &mut ChaCha8Rng,
        stores: u32,
        skus: u32,
        real: Option<(&'static Sample, usize)>,
    ) -> Self {
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
        let skus = match real {
            None => (0..skus).map(|_| Sku::draw(rng)).collect(),
            Some((sample, weekday0)) => (0..skus as usize)
                .map(|sku| {
                    let (index, offset) = sample.source(sku, weekday0);
                    Sku::real(rng, sample, index, offset)
                })
                .collect(),
        };
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
        let real_open_demand = real.map_or_else(Vec::new, |(sample, _)| {
            let days = sample.series.iter().flat_map(|s| s.days.iter());
            days.map(|day| {
                let mut open = [0.0; OPENING_HOURS.len()];
                for (total, &(from, to, _)) in open.iter_mut().zip(OPENING_HOURS.iter()) {
                    *total = day.demand[from..to].iter().sum();
                }
                open
            })
            .collect()
        });
        Self {
            skus,
            stores,
            hour_share,
            real_open_demand,
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

    /// Share of today's demand of `sku` at `store` falling in hour `hour`, an opening hour
    /// whose [`Demand::hour_factor`] is `hour_factor`: that factor for a synthetic SKU. For
    /// a SKU with a real series, the real day's share of that hour among the store's opening
    /// hours (the source sells around the clock; what it sells while the store is closed is
    /// spread over the opening hours), or the store's synthetic share if the real day has
    /// no demand within them. No day-of-week factor: the real days carry their own.
    pub(crate) fn sku_hour_factor(
        &self,
        store: usize,
        sku: usize,
        hour: usize,
        hour_factor: f64,
    ) -> f64 {
        let sku = &self.skus[sku];
        let Some(real) = sku.real else {
            return hour_factor;
        };
        let day = real.day_index(sku.today);
        let variant = self.stores[store].hours;
        let open = self
            .real_open_demand
            .get(real.index * super::real::SERIES_DAYS + day)
            .map_or(0.0, |totals| totals[variant]);
        if open > 0.0 {
            real.series.days[day].demand[hour] / open
        } else {
            self.hour_share[variant][hour]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn profiles_are_normalised() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let demand = Demand::new(&mut rng, 20, 10, None);
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
    fn real_skus_follow_their_series_day_by_day() {
        let sample = Sample::embedded().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = sample.series.len();
        // Two rounds of SKUs over the series, a run starting on a Monday.
        let mut demand = Demand::new(&mut rng, 12, 2 * n as u32, Some((sample, 0)));
        let mut promotions = 0;
        for day in 0..100 {
            promotions += demand.start_day(&mut rng, day, day == 0);
            for (i, sku) in demand.skus.iter().enumerate() {
                let (index, offset) = sample.source(i, 0);
                let series = &sample.series[index];
                let real = series.day(offset + day);
                // Expected demand of an average store is the real day's, in units.
                assert!((sku.daily_rate * sku.today_factor - real.total).abs() < 1e-9);
                let discounted = (f64::from(sku.price_cents) * real.discount).round() as u32;
                assert_eq!(sku.today_price_cents, discounted.max(1));
                let plan = sku.plan_factor(3);
                assert!(plan >= 1.0);
                if plan > 1.0 {
                    assert!(series.promo_lift > 1.0);
                }
                if real.promo && series.promo_lift > 1.0 {
                    assert!(plan > 1.0);
                }
            }
            for store in 0..12 {
                let (open, close, _) = OPENING_HOURS[demand.stores[store].hours];
                for sku in 0..demand.skus.len() {
                    let shares: Vec<f64> = (open..close)
                        .map(|h| demand.sku_hour_factor(store, sku, h, 0.5))
                        .collect();
                    // The hours' shares of the day sum to 1, and follow the real day's hours.
                    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                    let (index, offset) = sample.source(sku, 0);
                    let real = sample.series[index].day(offset + day);
                    let within: f64 = real.demand[open..close].iter().sum();
                    if within > 0.0 {
                        for (h, share) in (open..close).zip(&shares) {
                            assert!((share - real.demand[h] / within).abs() < 1e-12);
                        }
                    }
                }
            }
        }
        assert!(promotions > 0);
        // Synthetic SKUs keep the store's factor.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let synthetic = Demand::new(&mut rng, 2, 3, None);
        assert_eq!(synthetic.sku_hour_factor(1, 2, 12, 0.123), 0.123);
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
        let mut demand = Demand::new(&mut rng, 1, 400, None);
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
