//! Dataset readers: a table of real demand (and, for FreshRetailNet-50K, real hourly stock
//! flags) becomes a [`Panel`] — one row per series (location, SKU), one column per hour.
//!
//! - `frn50k`: one row per store × product × day with `hours_stock_status` (24 characters,
//!   1 = out of stock) and `hours_sale` (24 space-separated values), see the dataset's README;
//!   or the published Parquet files as they are (`.parquet`, see [`super::parquet`]).
//! - `demand-daily`: `date, location, sku, units` (any column order, header required). Daily
//!   units are spread over the hours with a fixed store-day profile ([`DAY_PROFILE`]); there are
//!   no stock flags, so such a panel is only evaluated with a simulated inventory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::EvalError;

/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;

/// Share of a day's demand in each hour (stores open 8:00–22:00, an evening peak); sums to 1.
pub const DAY_PROFILE: [f64; 24] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.04, 0.05, 0.06, 0.07, 0.08, 0.07, 0.06, 0.06, 0.07,
    0.09, 0.11, 0.11, 0.08, 0.05, 0.0, 0.0,
];

/// Keeps the series of a subset of locations: those whose number (FRN `store_id`, or a hash of
/// the location name) is `rem` modulo `modulus`. Used to tune on some stores and confirm on
/// others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFold {
    /// Remainder kept.
    pub rem: u32,
    /// Modulus (≥ 1).
    pub modulus: u32,
}

impl StoreFold {
    /// Parses `R/N`.
    pub fn parse(s: &str) -> Result<Self, EvalError> {
        let bad = || EvalError::Argument(format!("store fold {s:?} is not R/N with R < N"));
        let (r, n) = s.split_once('/').ok_or_else(bad)?;
        let (rem, modulus) = (
            r.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if modulus == 0 || rem >= modulus {
            return Err(bad());
        }
        Ok(StoreFold { rem, modulus })
    }

    pub(crate) fn keeps(&self, n: u64) -> bool {
        n % u64::from(self.modulus) == u64::from(self.rem)
    }
}

/// Hourly demand and stock flags of many series over a common span of hours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    /// Location of each series.
    pub locations: Vec<String>,
    /// SKU of each series.
    pub skus: Vec<String>,
    /// Event time of hour 0 (a midnight, UTC), ms.
    pub start_ms: i64,
    /// Hours covered.
    pub hours: usize,
    /// Sales (observed demand) per series and hour, `[series * hours + hour]`.
    pub sales: Vec<f32>,
    /// Out-of-stock flag per series and hour, if the data has them.
    pub oos: Option<Vec<bool>>,
    /// Category path (`a/b/c`) of each SKU that has one in the data (FRN CSV: its first,
    /// second and third category ids), sorted by SKU: the item table evaluate gives the engine
    /// (its category pools) unless `--items` gives one.
    pub categories: Vec<(String, String)>,
}

impl Panel {
    /// Appends the series of `other`, which must cover the same hours.
    pub fn append(&mut self, other: Panel) -> Result<(), EvalError> {
        if other.start_ms != self.start_ms || other.hours != self.hours {
            return Err(EvalError::Argument(format!(
                "the panels cover different hours ({} h from {} ms, {} h from {} ms)",
                self.hours, self.start_ms, other.hours, other.start_ms
            )));
        }
        match (&mut self.oos, other.oos) {
            (Some(a), Some(b)) => a.extend(b),
            (None, None) => {}
            _ => {
                return Err(EvalError::Argument(
                    "one panel has stock flags, the other not".into(),
                ))
            }
        }
        self.locations.extend(other.locations);
        self.skus.extend(other.skus);
        self.sales.extend(other.sales);
        self.categories.extend(other.categories);
        self.categories.sort();
        self.categories.dedup();
        Ok(())
    }

    /// Number of series.
    pub fn series(&self) -> usize {
        self.locations.len()
    }

    /// Sales of series `s`, hour by hour.
    pub fn sales_of(&self, s: usize) -> &[f32] {
        &self.sales[s * self.hours..(s + 1) * self.hours]
    }
}

fn open(path: &Path) -> Result<(Box<dyn BufRead>, u64), EvalError> {
    let io = |e: std::io::Error| EvalError::Io(path.display().to_string(), e);
    let f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok((Box::new(BufReader::with_capacity(1 << 20, r)), size))
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn parse_day(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(
        d.signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?)
            .num_days(),
    )
}

fn column(header: &[&str], name: &str, line: &str) -> Result<usize, EvalError> {
    header
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| EvalError::Data {
            line: 1,
            detail: format!("no column {name:?} in the header {line:?}"),
        })
}

/// One parsed day of one series.
pub(crate) struct DayRow {
    /// Index of the series (in first-seen order).
    pub(crate) series: u32,
    /// Days since 1970-01-01.
    pub(crate) day: i64,
    /// Out-of-stock flags, bit h for hour h.
    pub(crate) oos: u32,
    /// Sales per hour.
    pub(crate) sales: [f32; 24],
}

/// Collects day rows into a dense panel (days missing from the input are zero demand, in stock).
pub(crate) fn assemble(
    keys: Vec<(String, String)>,
    rows: Vec<DayRow>,
    with_flags: bool,
) -> Result<Panel, EvalError> {
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.day).min(),
        rows.iter().map(|r| r.day).max(),
    ) else {
        return Err(EvalError::Data {
            line: 0,
            detail: "no data rows (after the store fold)".into(),
        });
    };
    let hours = ((last - first + 1) * 24) as usize;
    let n = keys.len();
    let mut sales = vec![0.0f32; n * hours];
    let mut oos = with_flags.then(|| vec![false; n * hours]);
    for r in rows {
        let base = r.series as usize * hours + ((r.day - first) * 24) as usize;
        sales[base..base + 24].copy_from_slice(&r.sales);
        if let Some(o) = oos.as_mut() {
            for (h, v) in o[base..base + 24].iter_mut().enumerate() {
                *v = r.oos & (1 << h) != 0;
            }
        }
    }
    let (locations, skus) = keys.into_iter().unzip();
    Ok(Panel {
        locations,
        skus,
        start_ms: first * 24 * HOUR_MS,
        hours,
        sales,
        oos,
        categories: Vec::new(),
    })
}

/// A CSV table with a header line (gzip ok), read row by row: the one place that counts
/// lines, reports progress, skips blank lines and checks the field count.
struct Csv {
    path: String,
    reader: Box<dyn BufRead>,
    header_line: String,
}

impl Csv {
    fn open(path: &Path) -> Result<Csv, EvalError> {
        let (mut reader, _) = open(path)?;
        let path = path.display().to_string();
        let mut header_line = String::new();
        reader
            .read_line(&mut header_line)
            .map_err(|e| EvalError::Io(path.clone(), e))?;
        let header_line = header_line.trim_end().to_owned();
        Ok(Csv {
            path,
            reader,
            header_line,
        })
    }

    /// The index of header column `name`.
    fn column(&self, name: &str) -> Result<usize, EvalError> {
        let header: Vec<&str> = self.header_line.split(',').collect();
        column(&header, name, &self.header_line)
    }

    /// Calls `row(line number, fields)` for every non-blank line; `progress(bytes read)` now
    /// and then and at the end. A row with another field count than the header is an error.
    fn rows(
        mut self,
        mut progress: impl FnMut(u64),
        mut row: impl FnMut(u64, &[&str]) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        let width = self.header_line.split(',').count();
        let mut line = String::new();
        let mut bytes = 0u64;
        for lineno in 2u64.. {
            line.clear();
            let got = self
                .reader
                .read_line(&mut line)
                .map_err(|e| EvalError::Io(self.path.clone(), e))?;
            if got == 0 {
                break;
            }
            bytes += got as u64;
            if lineno % 65_536 == 0 {
                progress(bytes);
            }
            let l = line.trim_end();
            if l.is_empty() {
                continue;
            }
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != width {
                return Err(EvalError::Data {
                    line: lineno,
                    detail: format!("{} fields, the header has {width}", f.len()),
                });
            }
            row(lineno, &f)?;
        }
        progress(bytes);
        Ok(())
    }
}

/// Reads a FreshRetailNet-50K daily file: CSV (gzip ok), or the published Parquet (a name
/// ending in `.parquet`, see [`super::parquet`]). `progress(bytes_read)` is called now and then
/// (compressed bytes are not known, so it gets the file size fraction when plain).
pub fn read_frn50k(
    path: &Path,
    fold: Option<StoreFold>,
    mut progress: impl FnMut(u64),
) -> Result<Panel, EvalError> {
    if super::parquet::is_parquet(path) {
        return super::parquet::read_frn50k_parquet(path, fold, progress);
    }
    let csv = Csv::open(path)?;
    let c_store = csv.column("store_id")?;
    let c_product = csv.column("product_id")?;
    let c_dt = csv.column("dt")?;
    let c_flags = csv.column("hours_stock_status")?;
    let c_sales = csv.column("hours_sale")?;
    // Optional: the category levels of the product.
    let c_category = [
        "first_category_id",
        "second_category_id",
        "third_category_id",
    ]
    .map(|name| csv.column(name).ok());
    let mut categories: HashMap<u32, String> = HashMap::new();
    let mut index: HashMap<(u32, u32), u32> = HashMap::new();
    let mut keys = Vec::new();
    let mut rows = Vec::new();
    csv.rows(&mut progress, |lineno, f| {
        let bad = |detail: String| EvalError::Data {
            line: lineno,
            detail,
        };
        let num = |i: usize, name: &str| {
            f[i].trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("{name} {:?} is not a number", f[i])))
        };
        let store = num(c_store, "store_id")?;
        if fold.is_some_and(|k| !k.keeps(u64::from(store))) {
            return Ok(());
        }
        let product = num(c_product, "product_id")?;
        let day = parse_day(f[c_dt]).ok_or_else(|| bad(format!("dt {:?}", f[c_dt])))?;
        let flags = f[c_flags].trim().as_bytes();
        if flags.len() != 24 || flags.iter().any(|b| *b != b'0' && *b != b'1') {
            return Err(bad(format!(
                "hours_stock_status {:?} is not 24 of 0/1",
                f[c_flags]
            )));
        }
        let oos = flags
            .iter()
            .enumerate()
            .fold(0u32, |m, (h, b)| m | (u32::from(*b == b'1') << h));
        let mut sales = [0.0f32; 24];
        let mut n = 0;
        for v in f[c_sales].split_whitespace() {
            let x: f32 = v
                .parse()
                .map_err(|_| bad(format!("hours_sale value {v:?}")))?;
            if n >= 24 || !x.is_finite() || x < 0.0 {
                return Err(bad(format!("hours_sale {:?}", f[c_sales])));
            }
            sales[n] = x;
            n += 1;
        }
        if n != 24 {
            return Err(bad(format!("hours_sale has {n} values, not 24")));
        }
        let next = keys.len() as u32;
        let series = *index.entry((store, product)).or_insert_with(|| {
            keys.push((format!("STORE-{store}"), format!("SKU-{product}")));
            next
        });
        if c_category[0].is_some() && !categories.contains_key(&product) {
            let levels: Vec<&str> = c_category
                .iter()
                .map_while(|c| c.map(|i| f[i].trim()).filter(|v| !v.is_empty()))
                .collect();
            if !levels.is_empty() {
                categories.insert(product, levels.join("/"));
            }
        }
        rows.push(DayRow {
            series,
            day,
            oos,
            sales,
        });
        Ok(())
    })?;
    let mut panel = assemble(keys, rows, true)?;
    panel.categories = categories
        .into_iter()
        .map(|(p, c)| (format!("SKU-{p}"), c))
        .collect();
    panel.categories.sort();
    Ok(panel)
}

/// Reads a `date, location, sku, units` table (CSV, gzip ok).
pub fn read_demand_daily(
    path: &Path,
    fold: Option<StoreFold>,
    mut progress: impl FnMut(u64),
) -> Result<Panel, EvalError> {
    let csv = Csv::open(path)?;
    let c_date = csv.column("date")?;
    let c_loc = csv.column("location")?;
    let c_sku = csv.column("sku")?;
    let c_units = csv.column("units")?;
    let mut index: HashMap<(String, String), u32> = HashMap::new();
    let mut keys = Vec::new();
    let mut days: HashMap<(u32, i64), f64> = HashMap::new();
    csv.rows(&mut progress, |lineno, f| {
        let bad = |detail: String| EvalError::Data {
            line: lineno,
            detail,
        };
        let (loc, sku) = (f[c_loc].trim(), f[c_sku].trim());
        if loc.is_empty() || sku.is_empty() || loc.contains('|') || sku.contains('|') {
            return Err(bad(format!("bad location/sku {loc:?}/{sku:?}")));
        }
        if fold.is_some_and(|k| !k.keeps(xxhash_rust::xxh3::xxh3_64(loc.as_bytes()))) {
            return Ok(());
        }
        let day = parse_day(f[c_date]).ok_or_else(|| bad(format!("date {:?}", f[c_date])))?;
        let units: f64 = f[c_units]
            .trim()
            .parse()
            .map_err(|_| bad(format!("units {:?}", f[c_units])))?;
        if !units.is_finite() || units < 0.0 {
            return Err(bad(format!("units {units} is not finite and ≥ 0")));
        }
        let next = keys.len() as u32;
        let series = *index
            .entry((loc.to_owned(), sku.to_owned()))
            .or_insert_with(|| {
                keys.push((loc.to_owned(), sku.to_owned()));
                next
            });
        *days.entry((series, day)).or_insert(0.0) += units;
        Ok(())
    })?;
    let mut rows: Vec<DayRow> = days
        .into_iter()
        .map(|((series, day), units)| {
            let mut sales = [0.0f32; 24];
            for (s, w) in sales.iter_mut().zip(DAY_PROFILE) {
                *s = (units * w) as f32;
            }
            DayRow {
                series,
                day,
                oos: 0,
                sales,
            }
        })
        .collect();
    rows.sort_by_key(|r| (r.series, r.day));
    assemble(keys, rows, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn day_profile_sums_to_one() {
        assert!((DAY_PROFILE.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn reads_frn_rows_into_hours() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "city_id,store_id,product_id,dt,hours_stock_status,hours_sale"
        )
        .unwrap();
        let sales = |v: &str| {
            let mut s = vec!["0"; 24];
            s[3] = v;
            s.join(" ")
        };
        let mut flags = vec!['0'; 24];
        flags[23] = '1';
        let flags: String = flags.into_iter().collect();
        writeln!(f, "0,7,9,2024-03-29,{flags},{}", sales("0.5")).unwrap();
        writeln!(f, "0,7,9,2024-03-28,{},{}", "0".repeat(24), sales("1.5")).unwrap();
        writeln!(f, "0,8,9,2024-03-28,{},{}", "0".repeat(24), sales("0")).unwrap();
        let p = read_frn50k(f.path(), None, |_| {}).unwrap();
        assert_eq!(p.series(), 2);
        assert_eq!(p.hours, 48);
        assert_eq!(p.start_ms, parse_day("2024-03-28").unwrap() * 24 * HOUR_MS);
        assert_eq!(p.sales_of(0)[3], 1.5);
        assert_eq!(p.sales_of(0)[27], 0.5);
        let oos = p.oos.as_ref().unwrap();
        assert!(oos[47] && !oos[46] && !oos[48 + 47]);
        assert!(p.categories.is_empty(), "no category columns");
        // The fold keeps store 8 only.
        let p = read_frn50k(f.path(), Some(StoreFold::parse("0/2").unwrap()), |_| {}).unwrap();
        assert_eq!(p.locations, vec!["STORE-8".to_owned()]);
    }

    #[test]
    fn reads_the_products_category_paths() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "store_id,first_category_id,second_category_id,third_category_id,product_id,dt,\
             hours_stock_status,hours_sale"
        )
        .unwrap();
        let day = format!("{},{}", "0".repeat(24), vec!["0"; 24].join(" "));
        writeln!(f, "1,3,14,159,9,2024-03-28,{day}").unwrap();
        writeln!(f, "2,3,14,159,9,2024-03-28,{day}").unwrap();
        writeln!(f, "1,2,71,,8,2024-03-28,{day}").unwrap();
        let p = read_frn50k(f.path(), None, |_| {}).unwrap();
        assert_eq!(
            p.categories,
            vec![
                ("SKU-8".to_owned(), "2/71".to_owned()),
                ("SKU-9".to_owned(), "3/14/159".to_owned())
            ]
        );
    }

    #[test]
    fn rejects_bad_rows_with_their_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "store_id,product_id,dt,hours_stock_status,hours_sale").unwrap();
        writeln!(f, "1,2,2024-03-28,0101,1 2").unwrap();
        let e = read_frn50k(f.path(), None, |_| {}).unwrap_err();
        assert!(matches!(e, EvalError::Data { line: 2, .. }), "{e}");
    }

    #[test]
    fn reads_daily_demand() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "sku,date,location,units").unwrap();
        writeln!(f, "A,2024-01-02,L1,10").unwrap();
        writeln!(f, "A,2024-01-01,L1,20").unwrap();
        let p = read_demand_daily(f.path(), None, |_| {}).unwrap();
        assert_eq!(p.hours, 48);
        assert!(p.oos.is_none());
        let day0: f32 = p.sales_of(0)[..24].iter().sum();
        assert!((day0 - 20.0).abs() < 1e-4);
        assert_eq!(p.sales_of(0)[0], 0.0, "closed at night");
        assert!(StoreFold::parse("2/2").is_err());
    }
}
