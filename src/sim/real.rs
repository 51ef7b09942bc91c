//! Real demand: hourly sales of the FreshRetailNet-50K sample embedded in the binary.
//!
//! `data/frn50k_sample.csv` (see `data/README.md`) holds 90 days of hourly sales and hourly
//! out-of-stock flags of a few (store, product) series of FreshRetailNet-50K (Dingdong Inc.,
//! CC BY 4.0). It is parsed once per process into [`Sample`]: per series and day, the demand
//! per hour in simulated units, corrected for censoring (see [`Series`]), the promotion flag
//! and the price ratio. [`super::demand`] maps every simulated SKU to one series.

use std::sync::OnceLock;

use thiserror::Error;

/// The sample, embedded at build time so that the binary needs no file at run time.
const SAMPLE_CSV: &str = include_str!("../../data/frn50k_sample.csv");

/// Columns of the sample, in order.
const HEADER: &str = "store_id,product_id,dt,discount,activity_flag,hours_stock_status,hours_sale";

/// Days in every series of the dataset.
pub(crate) const SERIES_DAYS: usize = 90;

/// Simulated units per unit of the dataset's sales. The dataset's sales are normalised by an
/// undisclosed coefficient, in steps of 0.1 for almost every hour with sales (fractional
/// values are rare in every series): one step of 0.1 is taken as one unit. The sample's
/// series then sell about 4 to 75 units a day, the range of the synthetic SKUs.
pub const UNITS_PER_SALE: f64 = 10.0;

/// Largest promotion lift a series may show (mean demand on promotion days over other days).
const MAX_PROMO_LIFT: f64 = 4.0;

/// The embedded sample could not be read; every message names the line or series.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SampleError {
    /// The first line is not the expected header.
    #[error("frn50k sample: the header is {found:?}, expected {HEADER:?}")]
    Header {
        /// The first line.
        found: String,
    },
    /// A row cannot be parsed.
    #[error("frn50k sample line {line}: {reason}")]
    Row {
        /// Line number, 1-based (the header is line 1).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A series is not 90 consecutive days starting with the other series.
    #[error("frn50k sample series store {store} product {product}: {reason}")]
    Series {
        /// Store id of the series.
        store: u32,
        /// Product id of the series.
        product: u32,
        /// What is wrong.
        reason: String,
    },
    /// The sample has no rows.
    #[error("frn50k sample has no series")]
    Empty,
}

/// One day of a series.
#[derive(Debug, Clone)]
pub(crate) struct Day {
    /// Sales per hour as recorded, in simulated units (censored during out-of-stock hours).
    pub(crate) sales: [f64; 24],
    /// Hours flagged out of stock in the dataset.
    pub(crate) out_of_stock: [bool; 24],
    /// Demand per hour, in simulated units: the sales, or in an out-of-stock hour the
    /// series' average for that hour (see [`Series`]).
    pub(crate) demand: [f64; 24],
    /// Sum of `demand`.
    pub(crate) total: f64,
    /// Price ratio of the day (1 = regular price).
    pub(crate) discount: f64,
    /// The dataset's promotion flag.
    pub(crate) promo: bool,
}

/// One (store, product) series: 90 consecutive days.
///
/// Censoring: during an hour flagged out of stock the dataset's sales are what little was
/// left to sell, not what customers wanted. Such an hour's demand is taken as the series'
/// average sales in that hour of the day over the days it was in stock then (or the hour's
/// own sales, if higher), rather than as zero. Without this, the simulator would replay the
/// source's stockouts as days of low demand.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Store id in the dataset.
    pub(crate) store_id: u32,
    /// Product id in the dataset.
    pub(crate) product_id: u32,
    /// The days, in date order.
    pub(crate) days: Vec<Day>,
    /// Mean daily demand (units, censoring corrected).
    pub(crate) mean_daily: f64,
    /// Mean daily demand on promotion days over that on other days, in `[1, 4]` (1 when
    /// either kind of day is missing).
    pub(crate) promo_lift: f64,
}

impl Series {
    /// The day the series shows on `day` days after its first day (cycling every 90 days).
    pub(crate) fn day(&self, day: i64) -> &Day {
        &self.days[day.rem_euclid(self.days.len() as i64) as usize]
    }

    /// Fills in `demand`, `total`, `mean_daily` and `promo_lift` from the raw days.
    fn finish(&mut self) {
        let mut sum = [0.0; 24];
        let mut count = [0u32; 24];
        for day in &self.days {
            let hours = day.sales.iter().zip(&day.out_of_stock);
            for ((&sold, &out), (s, n)) in hours.zip(sum.iter_mut().zip(&mut count)) {
                if !out {
                    *s += sold;
                    *n += 1;
                }
            }
        }
        let average: [f64; 24] = std::array::from_fn(|h| {
            if count[h] > 0 {
                sum[h] / f64::from(count[h])
            } else {
                0.0
            }
        });
        for day in &mut self.days {
            day.demand = std::array::from_fn(|h| {
                if day.out_of_stock[h] {
                    day.sales[h].max(average[h])
                } else {
                    day.sales[h]
                }
            });
            day.total = day.demand.iter().sum();
        }
        let mean = |promo: bool| {
            let (total, n) = self
                .days
                .iter()
                .filter(|d| d.promo == promo)
                .fold((0.0, 0u32), |(t, n), d| (t + d.total, n + 1));
            (n > 0).then(|| total / f64::from(n))
        };
        self.mean_daily = self.days.iter().map(|d| d.total).sum::<f64>() / self.days.len() as f64;
        self.promo_lift = match (mean(true), mean(false)) {
            (Some(on), Some(off)) if off > 0.0 => (on / off).clamp(1.0, MAX_PROMO_LIFT),
            _ => 1.0,
        };
    }
}

/// The parsed sample.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Every series, in file order.
    pub(crate) series: Vec<Series>,
    /// Day of the week of every series' first day, 0 = Monday.
    pub(crate) first_weekday: usize,
}

impl Sample {
    /// The embedded sample, parsed on first use.
    pub(crate) fn embedded() -> Result<&'static Sample, SampleError> {
        static SAMPLE: OnceLock<Result<Sample, SampleError>> = OnceLock::new();
        SAMPLE
            .get_or_init(|| Sample::parse(SAMPLE_CSV))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Parses the sample's CSV: the header, then one row per series and day, each series'
    /// rows together and in date order.
    pub(crate) fn parse(text: &str) -> Result<Self, SampleError> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default().trim_end_matches('\r');
        if header != HEADER {
            return Err(SampleError::Header {
                found: header.to_owned(),
            });
        }
        let mut series: Vec<Series> = Vec::new();
        let mut first_date: Option<i64> = None;
        for (i, raw) in lines.enumerate() {
            let line = i + 2;
            let raw = raw.trim_end_matches('\r');
            if raw.is_empty() {
                continue;
            }
            let row = parse_row(raw).map_err(|reason| SampleError::Row { line, reason })?;
            let same = series
                .last()
                .is_some_and(|s| (s.store_id, s.product_id) == (row.store_id, row.product_id));
            if !same {
                if let Some(done) = series.last() {
                    check_length(done)?;
                }
                if series
                    .iter()
                    .any(|s| (s.store_id, s.product_id) == (row.store_id, row.product_id))
                {
                    return Err(SampleError::Row {
                        line,
                        reason: "the series' rows are not together".to_owned(),
                    });
                }
                let first = *first_date.get_or_insert(row.date);
                if row.date != first {
                    return Err(SampleError::Row {
                        line,
                        reason: "the series does not start on the first series' first day"
                            .to_owned(),
                    });
                }
                series.push(Series {
                    store_id: row.store_id,
                    product_id: row.product_id,
                    days: Vec::with_capacity(SERIES_DAYS),
                    mean_daily: 0.0,
                    promo_lift: 1.0,
                });
            }
            // `series` is not empty here: a series was pushed if none matched.
            let Some(current) = series.last_mut() else {
                return Err(SampleError::Empty);
            };
            let expected = first_date.unwrap_or(row.date) + current.days.len() as i64;
            if row.date != expected {
                return Err(SampleError::Row {
                    line,
                    reason: "not the day after the series' previous row".to_owned(),
                });
            }
            if current.days.len() == SERIES_DAYS {
                return Err(SampleError::Row {
                    line,
                    reason: format!("more than {SERIES_DAYS} days in the series"),
                });
            }
            current.days.push(row.day);
        }
        let Some(last) = series.last() else {
            return Err(SampleError::Empty);
        };
        check_length(last)?;
        for s in &mut series {
            s.finish();
        }
        let first_weekday = first_date.map_or(0, |d| (d + 3).rem_euclid(7) as usize);
        Ok(Self {
            series,
            first_weekday,
        })
    }

    /// The series simulated SKU `sku` follows, and the offset of that series' day shown on
    /// simulated day 0 of a run whose day 0 falls on weekday `weekday0` (0 = Monday).
    ///
    /// SKUs take the series in turn; when there are more SKUs than series, each further
    /// round starts one more week into the series, so that SKUs sharing a series do not sell
    /// in lockstep. The offset keeps the days of the week of the source: simulated day `d`
    /// shows the series' day `(offset + d) mod 90`.
    pub(crate) fn source(&self, sku: usize, weekday0: usize) -> (usize, i64) {
        let n = self.series.len().max(1);
        let round = (sku / n) as i64;
        let align = (weekday0 + 7 - self.first_weekday % 7) % 7;
        (sku % n, align as i64 + 7 * round)
    }
}

/// A series that ended before its 90th day.
fn check_length(s: &Series) -> Result<(), SampleError> {
    if s.days.len() == SERIES_DAYS {
        return Ok(());
    }
    Err(SampleError::Series {
        store: s.store_id,
        product: s.product_id,
        reason: format!("{} days instead of {SERIES_DAYS}", s.days.len()),
    })
}

/// One parsed row.
struct Row {
    store_id: u32,
    product_id: u32,
    /// Days since 1970-01-01.
    date: i64,
    day: Day,
}

fn parse_row(raw: &str) -> Result<Row, String> {
    let fields: Vec<&str> = raw.split(',').collect();
    let [store, product, dt, discount, activity, stock, sales] = fields[..] else {
        return Err(format!("{} fields instead of 7", fields.len()));
    };
    let id = |name: &str, text: &str| {
        text.parse::<u32>()
            .map_err(|e| format!("{name} {text:?}: {e}"))
    };
    let discount: f64 = discount
        .parse()
        .map_err(|e| format!("discount {discount:?}: {e}"))?;
    if !(discount > 0.0 && discount <= 1.0) {
        return Err(format!("discount {discount} is not in (0, 1]"));
    }
    let promo = match activity {
        "0" => false,
        "1" => true,
        other => return Err(format!("activity_flag {other:?} is not 0 or 1")),
    };
    if stock.len() != 24 {
        return Err(format!(
            "hours_stock_status has {} characters instead of 24",
            stock.len()
        ));
    }
    let mut out_of_stock = [false; 24];
    for (flag, c) in out_of_stock.iter_mut().zip(stock.bytes()) {
        *flag = match c {
            b'0' => false,
            b'1' => true,
            _ => return Err(format!("hours_stock_status {stock:?} is not 24 of 0 or 1")),
        };
    }
    let mut hourly = [0.0; 24];
    let mut n = 0;
    for value in sales.split(' ') {
        let slot = hourly
            .get_mut(n)
            .ok_or_else(|| "hours_sale has more than 24 values".to_owned())?;
        let v: f64 = value
            .parse()
            .map_err(|e| format!("hours_sale value {value:?}: {e}"))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("hours_sale value {v} is not a finite number ≥ 0"));
        }
        *slot = v * UNITS_PER_SALE;
        n += 1;
    }
    if n != 24 {
        return Err(format!("hours_sale has {n} values instead of 24"));
    }
    Ok(Row {
        store_id: id("store_id", store)?,
        product_id: id("product_id", product)?,
        date: parse_date(dt).ok_or_else(|| format!("dt {dt:?} is not a YYYY-MM-DD date"))?,
        day: Day {
            sales: hourly,
            out_of_stock,
            demand: [0.0; 24],
            total: 0.0,
            discount,
            promo,
        },
    })
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn parse_date(text: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sample_parses() {
        let sample = Sample::embedded().unwrap();
        assert_eq!(SAMPLE_CSV.lines().count(), 1 + 30 * SERIES_DAYS);
        assert_eq!(sample.series.len(), 30);
        // 2024-03-28 was a Thursday.
        assert_eq!(sample.first_weekday, 3);
        let mut promo_days = 0;
        let mut censored_hours = 0;
        for s in &sample.series {
            assert!(s.store_id <= 1, "stores 0 and 1 only");
            assert_eq!(s.days.len(), SERIES_DAYS);
            assert!(s.mean_daily > 1.0, "{} {}", s.store_id, s.product_id);
            assert!((1.0..=MAX_PROMO_LIFT).contains(&s.promo_lift));
            for d in &s.days {
                assert_eq!(d.sales.len(), 24);
                assert!(d.sales.iter().all(|v| v.is_finite() && *v >= 0.0));
                assert!(d.demand.iter().zip(&d.sales).all(|(dm, sl)| dm >= sl));
                assert!((d.total - d.demand.iter().sum::<f64>()).abs() < 1e-9);
                assert!(d.discount > 0.0 && d.discount <= 1.0);
                promo_days += usize::from(d.promo);
                censored_hours += d.out_of_stock.iter().filter(|&&o| o).count();
            }
        }
        assert!(promo_days > 0 && censored_hours > 0);
        // The first row, scaled: 0.2 at 8:00 → 2 units.
        let first = &sample.series[0].days[0];
        assert_eq!(first.sales[8], 2.0);
        assert!(first.out_of_stock[23] && !first.out_of_stock[0]);
    }

    #[test]
    fn censored_hours_get_the_hours_average() {
        let row = |dt: &str, stock: &str, sales: &str| format!("7,9,{dt},1.0,0,{stock},{sales}\n");
        let in_stock = "0".repeat(24);
        let mut text = format!("{HEADER}\n");
        // Hour 10 sells 0.2 on every in-stock day; day 0 is out of stock at 10:00.
        let sales = |h10: &str| {
            let mut v = vec!["0"; 24];
            v[10] = h10;
            v.join(" ")
        };
        let mut stock0 = in_stock.clone();
        stock0.replace_range(10..11, "1");
        let start = parse_date("2024-03-28").unwrap();
        for day in 0..SERIES_DAYS as i64 {
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Days::new((start + day) as u64);
            let dt = date.format("%Y-%m-%d").to_string();
            text += &if day == 0 {
                row(&dt, &stock0, &sales("0"))
            } else {
                row(&dt, &in_stock, &sales("0.2"))
            };
        }
        let sample = Sample::parse(&text).unwrap();
        let s = &sample.series[0];
        assert_eq!(s.days[0].sales[10], 0.0);
        assert!((s.days[0].demand[10] - 2.0).abs() < 1e-9);
        assert!((s.mean_daily - 2.0).abs() < 1e-9);
        assert_eq!(s.promo_lift, 1.0);
    }

    #[test]
    fn bad_samples_are_refused_with_the_line() {
        let good = SAMPLE_CSV;
        let line2 = good.lines().nth(1).unwrap();
        let first_series: String = good
            .lines()
            .take(1 + SERIES_DAYS)
            .collect::<Vec<_>>()
            .join("\n");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "header"),
            (format!("{HEADER}\n"), "no series"),
            (
                format!("{HEADER}\n{}", line2.replacen(",1.0,", ",1.5,", 1)),
                "line 2: discount",
            ),
            (
                format!("{HEADER}\n{}", line2.replacen(" 0 0", " 0 x", 1)),
                "line 2: hours_sale",
            ),
            (
                format!("{HEADER}\n{}", line2.replacen(" 0 0", " 0 -1", 1)),
                "line 2: hours_sale",
            ),
            (format!("{HEADER}\n{}", &line2[..line2.len() - 2]), "line 2"),
            (format!("{HEADER}\n{line2}"), "1 days instead of 90"),
            (
                format!("{HEADER}\n{line2}\n{line2}"),
                "line 3: not the day after",
            ),
            (
                format!(
                    "{first_series}\n{}",
                    good.lines().nth(1 + SERIES_DAYS).unwrap()
                ),
                "1 days instead of 90",
            ),
        ];
        for (text, want) in cases {
            let e = Sample::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert_eq!(Sample::parse(&first_series).unwrap().series.len(), 1);
    }

    #[test]
    fn skus_cycle_over_the_series_a_week_apart_on_matching_weekdays() {
        let sample = Sample::embedded().unwrap();
        let n = sample.series.len();
        // A run starting on a Monday: the series' first Monday is its 5th day (index 4).
        assert_eq!(sample.source(0, 0), (0, 4));
        assert_eq!(sample.source(n - 1, 0), (n - 1, 4));
        assert_eq!(sample.source(n, 0), (0, 11));
        assert_eq!(sample.source(2 * n + 1, 3), (1, 14));
    }
}
