//! `stockwatch load-positions`: an on-hand snapshot (the ERP/WMS position of every location ×
//! SKU) becomes `inventory_count` events (contract v2, `source: "snapshot"`), written to a
//! JSON-lines file or produced to the inventory-count topic — so a first deployment knows its
//! stock from the first minute instead of from each key's first receipt.
//!
//! Input: CSV (a header line, `,`-separated, quoted fields allowed, `.gz` accepted) or Parquet,
//! with the columns `location`, `sku`, `on_hand` and `as_of` in any order (others ignored).
//! `as_of` is an RFC 3339 time, or a date `YYYY-MM-DD` meaning 00:00 UTC of that day (a
//! Parquet date or timestamp column is taken as UTC too); it becomes the event time.
//!
//! Event ids are a hash of what the row says (`pos-` + 32 hex digits of XXH3-128 over
//! location, SKU, event time and quantity): loading the same file twice gives the same ids, so
//! the service drops the second copy as duplicates. A corrected file should carry a later
//! `as_of` (a row that differs only in its quantity gets another id and both are applied at
//! the same event time).

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use clap::{ArgGroup, Args};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Serialize;

use crate::cli::progress::{bytes_bar, count_bar, Progress};
use crate::event::{KEY_SEPARATOR, MAX_ID_BYTES};
use crate::sink::kafka::{EventProducer, ProducerSettings};

/// The input columns, in the order of [`Position`]'s fields.
const COLUMNS: [&str; 4] = ["location", "sku", "on_hand", "as_of"];
/// Progress is redrawn (and delivery reports served) every this many rows.
const PROGRESS_EVERY: u64 = 4096;
/// Bad rows listed in the summary with `--skip-bad` (all are counted).
const BAD_ROWS_SHOWN: usize = 10;
/// Rows decoded per Parquet batch.
const BATCH_ROWS: usize = 65_536;

/// Arguments of `load-positions`.
///
/// Turns an on-hand snapshot (location, sku, on_hand, as_of) into `inventory_count` events
/// with `source: "snapshot"`: the first step of a real deployment, so that every key's on hand
/// is known before its first receipt.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("destination").required(true).args(["out", "bootstrap_servers"])),
    after_help = "Examples:\n  \
        stockwatch load-positions --input positions.csv --out counts.jsonl\n  \
        stockwatch load-positions --input positions.parquet --bootstrap-servers kafka:9092"
)]
pub struct LoadPositionsArgs {
    /// The snapshot: CSV (`.gz` accepted) or Parquet (`.parquet`), with the columns
    /// `location`, `sku`, `on_hand` (≥ 0, may be fractional) and `as_of` (RFC 3339, or
    /// `YYYY-MM-DD` for 00:00 UTC), in any order.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Write the events to this file, one JSON object per line (the input of `replay`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Produce to Kafka instead: `host:port[,host:port…]`, to `--topic`, keyed `location|sku`
    /// with Kafka's default partitioner (the service's routing); a missing topic is created.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Kafka")]
    pub bootstrap_servers: Option<String>,
    /// The topic. Default: the service's `kafka.topics.inventory_counts` (from `--config`, the
    /// environment, or the embedded default `stockwatch.inventory_counts`).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub topic: Option<String>,
    /// Configuration file of the service, for the topic name (layered like `run`'s).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub config: Option<PathBuf>,
    /// Partitions of the topic if it is created; an existing topic must have this many (it
    /// is co-partitioned with the other input topics).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=100_000),
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub partitions: u32,
    /// Replication factor of the topic if it is created.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=100),
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub replication_factor: u32,
    /// Give up when the cluster has not answered within this many seconds (creating the
    /// topic, waiting for the last acknowledgements).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..),
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub timeout_secs: u64,
    /// Extra librdkafka producer property, by its own name (repeatable), e.g.
    /// `-X security.protocol=SASL_SSL`.
    #[arg(
        short = 'X',
        long = "producer-property",
        value_name = "KEY=VALUE",
        value_parser = key_value,
        conflicts_with = "out",
        help_heading = "Kafka"
    )]
    pub producer_properties: Vec<(String, String)>,
    /// Skip bad rows (counted, the first ones listed) instead of stopping at the first one.
    /// Without it nothing is written or produced when a row is bad.
    #[arg(long)]
    pub skip_bad: bool,
    /// No progress line and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

/// Where a row is in the input: a CSV line or a Parquet row (both 1-based, data rows of a
/// Parquet file counted from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    /// Line of a CSV file (the header is line 1).
    Line(u64),
    /// Data row of a Parquet file.
    Row(u64),
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowRef::Line(n) => write!(f, "line {n}"),
            RowRef::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Why the snapshot cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// A row holds a bad value.
    #[error("{row}, column {column}: {detail}")]
    BadRow {
        /// Where.
        row: RowRef,
        /// The column (one of `location`, `sku`, `on_hand`, `as_of`).
        column: &'static str,
        /// What is wrong with the value.
        detail: String,
    },
    /// The file has no such column.
    #[error("no column {0:?} (the columns are location, sku, on_hand, as_of)")]
    MissingColumn(&'static str),
    /// The file cannot be read as CSV or Parquet.
    #[error("{0}")]
    Format(String),
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One validated row: the on-hand position of a key at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// Where it was read.
    pub row: RowRef,
    /// Location id.
    pub location: String,
    /// SKU id.
    pub sku: String,
    /// Units on hand (≥ 0), as the JSON number written.
    pub on_hand: serde_json::Number,
    /// `as_of`, ms since the Unix epoch.
    pub as_of_ms: i64,
}

/// The `inventory_count` event, in the contract's field order.
#[derive(Serialize)]
struct CountEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event_id: &'a str,
    sku: &'a str,
    location: &'a str,
    qty: &'a serde_json::Number,
    event_time: &'a str,
    source: &'static str,
}

impl Position {
    /// The message key, `location|sku`.
    pub fn key(&self) -> Vec<u8> {
        format!("{}|{}", self.location, self.sku).into_bytes()
    }

    /// The event's JSON (one line, no newline) into `out` (cleared first).
    pub fn write_event(&self, out: &mut Vec<u8>) {
        out.clear();
        let time = chrono::DateTime::from_timestamp_millis(self.as_of_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let qty = self.on_hand.to_string();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [&self.location, &self.sku, &time, &qty] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        let id = format!("pos-{:032x}", h.digest128());
        let event = CountEvent {
            kind: "inventory_count",
            event_id: &id,
            sku: &self.sku,
            location: &self.location,
            qty: &self.on_hand,
            event_time: &time,
            source: "snapshot",
        };
        // Serializing strings and a number into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &event);
    }
}

/// Checks an id: 1–128 bytes, no control character, no `|`.
fn check_id(row: RowRef, column: &'static str, s: &str) -> Result<String, PositionError> {
    let bad = |detail: String| PositionError::BadRow {
        row,
        column,
        detail,
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(bad("empty".into()));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(bad(format!(
            "{} bytes, the limit is {MAX_ID_BYTES}",
            s.len()
        )));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(bad(format!(
            "contains control character U+{:04X}",
            c as u32
        )));
    }
    if s.as_bytes().contains(&KEY_SEPARATOR) {
        return Err(bad(format!("{s:?} contains the key separator `|`")));
    }
    Ok(s.to_owned())
}

/// A quantity from text: a JSON number ≥ 0.
fn parse_qty(row: RowRef, s: &str) -> Result<serde_json::Number, PositionError> {
    let s = s.trim();
    let bad = |detail: String| PositionError::BadRow {
        row,
        column: "on_hand",
        detail,
    };
    let n: serde_json::Number = s
        .parse()
        .map_err(|_| bad(format!("{s:?} is not a number")))?;
    check_qty(row, n)
}

/// Checks a quantity (finite, ≥ 0) and writes whole numbers as integers, so that `12`, `12.0`
/// and a float column's 12.0 are the same event (and the same id).
fn check_qty(row: RowRef, n: serde_json::Number) -> Result<serde_json::Number, PositionError> {
    match n.as_f64() {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(match n.is_f64() {
            true if v.fract() == 0.0 && v < 9_007_199_254_740_992.0 => (v as u64).into(),
            _ => n,
        }),
        _ => Err(PositionError::BadRow {
            row,
            column: "on_hand",
            detail: format!("{n} is not a finite number ≥ 0"),
        }),
    }
}

/// `as_of` from text: RFC 3339, or `YYYY-MM-DD` (00:00 UTC).
fn parse_as_of(row: RowRef, s: &str) -> Result<i64, PositionError> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    Err(PositionError::BadRow {
        row,
        column: "as_of",
        detail: format!(
            "{s:?} is not an RFC 3339 time (2026-01-05T00:00:00Z) or a date (2026-01-05)"
        ),
    })
}

/// What a reader reports after every row: the row (or why it is bad), and how far it is.
type OnRow<'a> = dyn FnMut(Result<Position, PositionError>, Done) -> anyhow::Result<()> + 'a;

/// Progress of a reader: bytes of a CSV file or rows of a Parquet file.
#[derive(Debug, Clone, Copy)]
pub enum Done {
    /// Bytes read (of the decompressed stream).
    Bytes(u64),
    /// Rows read.
    Rows(u64),
}

/// Whether `path` is read as Parquet (its name ends in `.parquet`).
fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

/// Reads every row of a CSV snapshot.
fn read_csv(path: &Path, on_row: &mut OnRow<'_>) -> anyhow::Result<()> {
    let f = File::open(path)?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(1 << 20, r));
    let header = csv
        .headers()
        .map_err(|e| PositionError::Format(format!("header: {e}")))?
        .clone();
    let mut at = [0usize; 4];
    for (i, c) in COLUMNS.iter().enumerate() {
        at[i] = header
            .iter()
            .position(|h| h.trim() == *c)
            .ok_or(PositionError::MissingColumn(c))?;
    }
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                return Err(PositionError::Format(format!("line {line}: {e}")).into());
            }
        }
        let row = RowRef::Line(record.position().map_or(0, csv::Position::line));
        let done = Done::Bytes(record.position().map_or(0, csv::Position::byte));
        let field = |i: usize| record.get(at[i]).unwrap_or("");
        let position = (|| {
            Ok(Position {
                row,
                location: check_id(row, "location", field(0))?,
                sku: check_id(row, "sku", field(1))?,
                on_hand: parse_qty(row, field(2))?,
                as_of_ms: parse_as_of(row, field(3))?,
            })
        })();
        on_row(position, done)?;
    }
}

/// A Parquet column as text (ids), `None` per null.
fn texts(a: &ArrayRef, column: &'static str) -> Result<Vec<Option<String>>, PositionError> {
    let a = cast(a, &DataType::Utf8)
        .map_err(|e| PositionError::Format(format!("column {column}: {e}")))?;
    let a = a.as_string::<i32>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect())
}

/// The `on_hand` column: integers exactly, floats and decimals as `f64`, text parsed.
fn quantities(
    a: &ArrayRef,
    first: u64,
) -> Result<Vec<Result<serde_json::Number, PositionError>>, PositionError> {
    let row = |i: usize| RowRef::Row(first + i as u64 + 1);
    let null = |i: usize| PositionError::BadRow {
        row: row(i),
        column: "on_hand",
        detail: "null".into(),
    };
    let t = a.data_type();
    let fmt_err =
        |e: arrow::error::ArrowError| PositionError::Format(format!("column on_hand: {e}"));
    if t.is_integer() {
        let a = cast(a, &DataType::Int64).map_err(fmt_err)?;
        let a = a.as_primitive::<Int64Type>();
        Ok((0..a.len())
            .map(|i| match a.is_valid(i) {
                true => check_qty(row(i), a.value(i).into()),
                false => Err(null(i)),
            })
            .collect())
    } else if t.is_numeric() {
        let a = cast(a, &DataType::Float64).map_err(fmt_err)?;
        let a = a.as_primitive::<Float64Type>();
        Ok((0..a.len())
            .map(|i| match a.is_valid(i) {
                true => serde_json::Number::from_f64(a.value(i))
                    .ok_or_else(|| PositionError::BadRow {
                        row: row(i),
                        column: "on_hand",
                        detail: format!("{} is not a finite number ≥ 0", a.value(i)),
                    })
                    .and_then(|n| check_qty(row(i), n)),
                false => Err(null(i)),
            })
            .collect())
    } else {
        Ok(texts(a, "on_hand")?
            .into_iter()
            .enumerate()
            .map(|(i, s)| match s {
                Some(s) => parse_qty(row(i), &s),
                None => Err(null(i)),
            })
            .collect())
    }
}

/// The `as_of` column: a timestamp (naive ones read as UTC), a date, or text.
fn times(a: &ArrayRef, first: u64) -> Result<Vec<Result<i64, PositionError>>, PositionError> {
    let row = |i: usize| RowRef::Row(first + i as u64 + 1);
    let null = |i: usize| PositionError::BadRow {
        row: row(i),
        column: "as_of",
        detail: "null".into(),
    };
    let fmt_err = |e: arrow::error::ArrowError| PositionError::Format(format!("column as_of: {e}"));
    let (scale_mul, scale_div) = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => (1_000, 1),
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => (1, 1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (1, 1_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (1, 1_000_000),
        DataType::Date32 => (86_400_000, 1),
        _ => {
            return Ok(texts(a, "as_of")?
                .into_iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Some(s) => parse_as_of(row(i), &s),
                    None => Err(null(i)),
                })
                .collect())
        }
    };
    // The raw values: days or the timestamp's unit since the epoch, always UTC-based.
    let raw = cast(a, &DataType::Int64).map_err(fmt_err)?;
    let raw = raw.as_primitive::<Int64Type>();
    Ok((0..raw.len())
        .map(|i| match raw.is_valid(i) {
            true => Ok((raw.value(i) * scale_mul).div_euclid(scale_div)),
            false => Err(null(i)),
        })
        .collect())
}

/// Reads every row of a Parquet snapshot.
fn read_parquet(path: &Path, on_row: &mut OnRow<'_>) -> anyhow::Result<()> {
    let f = File::open(path)?;
    let pq = |e: parquet::errors::ParquetError| PositionError::Format(e.to_string());
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(pq)?;
    let mut roots = Vec::with_capacity(COLUMNS.len());
    for c in COLUMNS {
        let (i, _) = builder
            .schema()
            .column_with_name(c)
            .ok_or(PositionError::MissingColumn(c))?;
        roots.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(pq)?;
    let mut first = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| PositionError::Format(e.to_string()))?;
        let col = |c: &'static str| {
            batch
                .column_by_name(c)
                .cloned()
                .ok_or(PositionError::MissingColumn(c))
        };
        let locations = texts(&col("location")?, "location")?;
        let skus = texts(&col("sku")?, "sku")?;
        let qty = quantities(&col("on_hand")?, first)?;
        let time = times(&col("as_of")?, first)?;
        for (i, ((l, s), (q, t))) in locations
            .into_iter()
            .zip(skus)
            .zip(qty.into_iter().zip(time))
            .enumerate()
        {
            let row = RowRef::Row(first + i as u64 + 1);
            let id = |column, v: Option<String>| match v {
                Some(v) => check_id(row, column, &v),
                None => Err(PositionError::BadRow {
                    row,
                    column,
                    detail: "null".into(),
                }),
            };
            let position = (|| {
                Ok(Position {
                    row,
                    location: id("location", l)?,
                    sku: id("sku", s)?,
                    on_hand: q?,
                    as_of_ms: t?,
                })
            })();
            on_row(position, Done::Rows(first + i as u64 + 1))?;
        }
        first += batch.num_rows() as u64;
    }
    Ok(())
}

/// Reads the snapshot at `path` (Parquet by its `.parquet` name, else CSV), calling `on_row`
/// for every data row.
pub fn read_positions(path: &Path, on_row: &mut OnRow<'_>) -> anyhow::Result<()> {
    if is_parquet(path) {
        read_parquet(path, on_row)
    } else {
        read_csv(path, on_row)
    }
}

/// Rows of a snapshot, good and bad.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    bad: u64,
    shown: Vec<String>,
}

/// Reads the input and hands the good rows to `emit`; bad ones are counted.
fn each_position(
    a: &LoadPositionsArgs,
    bar: &Progress,
    mut emit: impl FnMut(&Position, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Tally> {
    let input = &a.input;
    let mut tally = Tally::default();
    let mut value = Vec::with_capacity(256);
    let mut n = 0u64;
    read_positions(input, &mut |p, done| {
        n += 1;
        match p {
            Ok(p) => {
                p.write_event(&mut value);
                emit(&p, &value)?;
                tally.events += 1;
            }
            Err(e) => {
                tally.bad += 1;
                if tally.shown.len() < BAD_ROWS_SHOWN {
                    tally.shown.push(e.to_string());
                }
            }
        }
        if n % PROGRESS_EVERY == 0 {
            match done {
                Done::Bytes(b) => bar.set(b, n),
                Done::Rows(r) => bar.set(0, r),
            }
        }
        Ok(())
    })
    .with_context(|| format!("reading --input {}", input.display()))?;
    bar.finish();
    Ok(tally)
}

/// The progress line: rows of a Parquet file (known from its footer), bytes of a CSV file.
fn progress_bar(input: &Path, quiet: bool) -> anyhow::Result<Progress> {
    if is_parquet(input) {
        let f = File::open(input)
            .with_context(|| format!("cannot read --input {}", input.display()))?;
        let rows = ParquetRecordBatchReaderBuilder::try_new(f)
            .map(|b| b.metadata().file_metadata().num_rows().max(0) as u64)
            .unwrap_or(0);
        return Ok(count_bar(rows, "rows", quiet));
    }
    let size = std::fs::metadata(input)
        .with_context(|| format!("cannot read --input {}", input.display()))?
        .len();
    let gz = input.extension().is_some_and(|e| e == "gz");
    Ok(bytes_bar((!gz).then_some(size), quiet))
}

fn print_summary(t: &Tally, destination: &str, elapsed: Duration) {
    eprintln!(
        "{} inventory_count events (source snapshot) to {destination} in {:.2} s{}",
        t.events,
        elapsed.as_secs_f64(),
        if t.bad > 0 {
            format!("; {} bad rows skipped", t.bad)
        } else {
            String::new()
        }
    );
    for s in &t.shown {
        eprintln!("  skipped {s}");
    }
    if t.bad as usize > t.shown.len() {
        eprintln!("  … and {} more", t.bad as usize - t.shown.len());
    }
}

/// Runs `load-positions`.
pub fn run(a: LoadPositionsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if !a.skip_bad {
        // A first pass that only validates: a bad row stops the load before anything is
        // written or produced, so it never leaves half a snapshot behind.
        let bar = progress_bar(&a.input, a.quiet)?;
        let mut n = 0u64;
        read_positions(&a.input, &mut |p, done| {
            n += 1;
            if n % PROGRESS_EVERY == 0 {
                match done {
                    Done::Bytes(b) => bar.set(b, n),
                    Done::Rows(r) => bar.set(0, r),
                }
            }
            p.map(drop).map_err(anyhow::Error::from)
        })
        .with_context(|| format!("reading --input {}", a.input.display()))?;
        bar.finish();
    }
    let bar = progress_bar(&a.input, a.quiet)?;
    match (&a.out, &a.bootstrap_servers) {
        (Some(path), _) => {
            let f = File::create(path)
                .with_context(|| format!("cannot create --out {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let tally = each_position(&a, &bar, |_, v| {
                w.write_all(v)
                    .and_then(|()| w.write_all(b"\n"))
                    .with_context(|| format!("writing --out {}", path.display()))
            })?;
            w.flush()
                .with_context(|| format!("writing --out {}", path.display()))?;
            if !a.quiet {
                print_summary(&tally, &path.display().to_string(), started.elapsed());
            }
        }
        (None, Some(servers)) => {
            let topic = match &a.topic {
                Some(t) => t.clone(),
                None => {
                    crate::config::Config::load(a.config.as_deref())?
                        .kafka
                        .topics
                        .inventory_counts
                }
            };
            let mut settings = ProducerSettings::new(servers);
            settings.client_id = "stockwatch-load-positions".to_owned();
            settings.properties = a.producer_properties.clone();
            let mut producer = EventProducer::new(settings).context("-X/--producer-property")?;
            let timeout = Duration::from_secs(a.timeout_secs);
            let status = producer
                .ensure_topics(&[&topic], a.partitions, a.replication_factor, timeout)
                .with_context(|| format!("preparing topic {topic} on {servers}"))?;
            if !a.quiet {
                for s in &status {
                    let what = if s.created { "created" } else { "using" };
                    eprintln!("{what} topic {} ({} partitions)", s.name, a.partitions);
                }
            }
            let mut n = 0u64;
            let tally = each_position(&a, &bar, |p, v| {
                producer
                    .send(&topic, &p.key(), v)
                    .with_context(|| format!("producing to --bootstrap-servers {servers}"))?;
                n += 1;
                if n % PROGRESS_EVERY == 0 {
                    producer.poll(Duration::ZERO);
                }
                Ok(())
            })?;
            let stats = producer
                .flush(timeout)
                .with_context(|| format!("flushing to --bootstrap-servers {servers}"))?;
            if !a.quiet {
                print_summary(&tally, &format!("{topic} on {servers}"), started.elapsed());
                eprintln!(
                    "  {} produced, {} acknowledged",
                    stats.sent, stats.delivered
                );
            }
        }
        (None, None) => anyhow::bail!("one of --out or --bootstrap-servers is required"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    };
    use clap::Parser;
    use std::sync::Arc;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        a: LoadPositionsArgs,
    }

    fn load(args: &[&str]) -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(
            ["load-positions", "--quiet"]
                .into_iter()
                .chain(args.iter().copied()),
        )?;
        run(cli.a)
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    const CSV: &str = "sku,as_of,location,on_hand,note\n\
        SKU-1,2026-01-05T00:00:00Z,STORE-0001,12,a\n\
        SKU-2,2026-01-05,\"STORE, North\",0,\"b, c\"\n\
        SKU-3,2026-01-04T19:00:00-05:00,DC-01,2.750,\n";

    #[test]
    fn csv_rows_become_inventory_counts_with_deterministic_ids() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("positions.csv");
        std::fs::write(&input, CSV).unwrap();
        let out = |name: &str| {
            let out = dir.path().join(name);
            load(&[
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .unwrap();
            out
        };
        let (a, b) = (out("a.jsonl"), out("b.jsonl"));
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let events = lines(&a);
        assert_eq!(events.len(), 3);
        let first = serde_json::json!({
            "type": "inventory_count", "event_id": events[0]["event_id"], "sku": "SKU-1",
            "location": "STORE-0001", "qty": 12, "event_time": "2026-01-05T00:00:00Z",
            "source": "snapshot"
        });
        assert_eq!(events[0], first);
        // Field order follows the contract.
        let text = std::fs::read_to_string(&a).unwrap();
        assert!(
            text.starts_with(r#"{"type":"inventory_count","event_id":"pos-"#),
            "{text}"
        );
        assert_eq!(events[1]["location"], "STORE, North");
        assert_eq!(events[1]["qty"], 0);
        assert_eq!(events[2]["event_time"], "2026-01-05T00:00:00Z");
        assert_eq!(events[2]["qty"], 2.75);
        let ids: std::collections::HashSet<&str> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|i| i.len() == 36));
        // Another quantity or time is another event.
        std::fs::write(&input, CSV.replace(",12,", ",13,")).unwrap();
        let c = lines(&out("c.jsonl"));
        assert_ne!(c[0]["event_id"], events[0]["event_id"]);
        assert_eq!(c[1]["event_id"], events[1]["event_id"]);
    }

    #[test]
    fn a_bad_row_names_its_line_and_column_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("positions.csv");
        let out = dir.path().join("out.jsonl");
        for (row, column) in [
            ("L1,S1,-1,2026-01-05", "column on_hand"),
            ("L1,S1,many,2026-01-05", "column on_hand"),
            ("L1,S1,1,yesterday", "column as_of"),
            ("L|1,S1,1,2026-01-05", "column location"),
            (",S1,1,2026-01-05", "column location"),
            ("L1,,1,2026-01-05", "column sku"),
        ] {
            std::fs::write(
                &input,
                format!("location,sku,on_hand,as_of\nL0,S0,1,2026-01-05\n{row}\n"),
            )
            .unwrap();
            let e = load(&[
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .unwrap_err();
            let e = format!("{e:#}");
            assert!(e.contains("line 3") && e.contains(column), "{row}: {e}");
            assert!(!out.exists(), "{row}: nothing written");
            // With --skip-bad the good row is loaded and the bad one counted.
            load(&[
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--skip-bad",
            ])
            .unwrap();
            assert_eq!(lines(&out).len(), 1);
            std::fs::remove_file(&out).unwrap();
        }
        std::fs::write(&input, "location,sku,qty,as_of\n").unwrap();
        let e = load(&[
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{e:#}").contains("on_hand"), "{e:#}");
    }

    #[test]
    fn the_topic_defaults_to_the_services_inventory_counts() {
        let cli = Cli::try_parse_from([
            "load-positions",
            "--input",
            "p.csv",
            "--bootstrap-servers",
            "h:1",
        ])
        .unwrap();
        assert_eq!(cli.a.topic, None);
        let c = crate::config::Config::load(None).unwrap();
        assert_eq!(
            c.kafka.topics.inventory_counts,
            "stockwatch.inventory_counts"
        );
        assert!(Cli::try_parse_from([
            "load-positions",
            "--input",
            "p.csv",
            "--out",
            "x",
            "--topic",
            "t"
        ])
        .is_err());
    }

    #[test]
    fn parquet_reads_like_csv() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("p.csv");
        std::fs::write(
            &csv,
            "location,sku,on_hand,as_of\nL1,S1,12,2026-01-05T00:00:00Z\nL2,S1,0.5,2026-01-05T06:30:00Z\n",
        )
        .unwrap();
        let t0 = 1_767_571_200_000i64;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("location", Arc::new(StringArray::from(vec!["L1", "L2"]))),
            ("sku", Arc::new(StringArray::from(vec!["S1", "S1"]))),
            ("on_hand", Arc::new(Float64Array::from(vec![12.0, 0.5]))),
            (
                "as_of",
                Arc::new(
                    TimestampMillisecondArray::from(vec![t0, t0 + 23_400_000]).with_timezone("UTC"),
                ),
            ),
            ("extra", Arc::new(Int64Array::from(vec![1, 2]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let pq = dir.path().join("p.parquet");
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(&pq).unwrap(), batch.schema(), None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        load(&[
            "--input",
            csv.to_str().unwrap(),
            "--out",
            a.to_str().unwrap(),
        ])
        .unwrap();
        load(&[
            "--input",
            pq.to_str().unwrap(),
            "--out",
            b.to_str().unwrap(),
        ])
        .unwrap();
        let (a, b) = (lines(&a), lines(&b));
        // The same events, ids included (12.0 from the float column is written as 12).
        assert_eq!(a.len(), 2);
        assert_eq!(a, b);
        assert_eq!(a[0]["qty"], 12);
    }
}
