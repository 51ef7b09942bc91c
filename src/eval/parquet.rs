//! FreshRetailNet-50K as published: the Parquet files of the Hugging Face dataset
//! `Dingdong-Inc/FreshRetailNet-50K` (`data/train.parquet`, `data/eval.parquet`), read as they
//! are into the same day rows as the CSV reader ([`super::dataset::read_frn50k`]).
//!
//! One row per store × product × day; `hours_sale` and `hours_stock_status` are 24-element
//! lists. Only `store_id`, `product_id`, `dt`, `hours_sale` and `hours_stock_status` are read
//! (a column projection: the other fourteen are never decoded). The column types are taken as
//! they come: integer ids of any width, `dt` as a string `YYYY-MM-DD` or a date/timestamp,
//! lists (plain, large or fixed-size) of integers or floats — and the stock flags also as a
//! 24-character `0`/`1` string, like the CSV export.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::dataset::{assemble, parse_day, DayRow, Panel, StoreFold};
use super::EvalError;

/// Rows decoded per batch.
const BATCH_ROWS: usize = 65_536;

/// The columns read, in the order the reader looks them up.
const COLUMNS: [&str; 5] = [
    "store_id",
    "product_id",
    "dt",
    "hours_sale",
    "hours_stock_status",
];

/// Whether `path` is a Parquet file (by its `.parquet` extension).
pub fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

/// Reads a FreshRetailNet-50K Parquet file. `progress(bytes)` is called after every batch with
/// the share of the file's rows read so far, scaled to the file size.
pub fn read_frn50k_parquet(
    path: &Path,
    fold: Option<StoreFold>,
    mut progress: impl FnMut(u64),
) -> Result<Panel, EvalError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| EvalError::Io(name.clone(), e))?;
    let size = file
        .metadata()
        .map_err(|e| EvalError::Io(name.clone(), e))?
        .len();
    let pq = |e: parquet::errors::ParquetError| EvalError::Parquet(name.clone(), e.to_string());
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let mut roots = Vec::with_capacity(COLUMNS.len());
    for c in COLUMNS {
        let (i, _) = builder
            .schema()
            .column_with_name(c)
            .ok_or_else(|| EvalError::Data {
                line: 0,
                detail: format!("no column {c:?} in the Parquet schema"),
            })?;
        roots.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(pq)?;
    let mut index: HashMap<(u32, u32), u32> = HashMap::new();
    let mut keys = Vec::new();
    let mut rows = Vec::new();
    let mut first_row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| EvalError::Parquet(name.clone(), e.to_string()))?;
        let col = |c: &str| -> Result<&ArrayRef, EvalError> {
            batch.column_by_name(c).ok_or_else(|| EvalError::Data {
                line: 0,
                detail: format!("no column {c:?} in the Parquet schema"),
            })
        };
        let store = ids(col("store_id")?, "store_id", first_row)?;
        let product = ids(col("product_id")?, "product_id", first_row)?;
        let day = days(col("dt")?, first_row)?;
        let sales = Lists::new(col("hours_sale")?, "hours_sale", first_row)?;
        let flags = Flags::new(col("hours_stock_status")?, first_row)?;
        for i in 0..batch.num_rows() {
            let row = first_row + i as u64;
            let s = store[i];
            if fold.is_some_and(|k| !k.keeps(u64::from(s))) {
                continue;
            }
            let mut hours = [0.0f32; 24];
            for (h, x) in sales.row(i, row)?.iter().enumerate() {
                if !x.is_finite() || *x < 0.0 {
                    return Err(EvalError::Row {
                        row,
                        detail: format!("hours_sale[{h}] = {x} is not finite and ≥ 0"),
                    });
                }
                hours[h] = *x as f32;
            }
            let oos = flags.row(i, row)?;
            let next = keys.len() as u32;
            let series = *index.entry((s, product[i])).or_insert_with(|| {
                keys.push((format!("STORE-{s}"), format!("SKU-{}", product[i])));
                next
            });
            rows.push(DayRow {
                series,
                day: day[i],
                oos,
                sales: hours,
            });
        }
        first_row += batch.num_rows() as u64;
        progress((u128::from(size) * u128::from(first_row) / u128::from(total_rows)) as u64);
    }
    progress(size);
    assemble(keys, rows, true)
}

/// The first null of `a`, as a row error.
fn no_nulls(a: &dyn Array, column: &str, first_row: u64) -> Result<(), EvalError> {
    match (0..a.len()).find(|&i| a.is_null(i)) {
        None => Ok(()),
        Some(i) => Err(EvalError::Row {
            row: first_row + i as u64,
            detail: format!("{column} is null"),
        }),
    }
}

/// An id column (any integer type) as `u32`s.
fn ids(a: &ArrayRef, column: &str, first_row: u64) -> Result<Vec<u32>, EvalError> {
    if !a.data_type().is_integer() {
        return Err(EvalError::Data {
            line: 0,
            detail: format!("{column} is {}, not an integer column", a.data_type()),
        });
    }
    let a = cast(a, &DataType::Int64)?;
    no_nulls(&a, column, first_row)?;
    a.as_primitive::<Int64Type>()
        .values()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            u32::try_from(*v).map_err(|_| EvalError::Row {
                row: first_row + i as u64,
                detail: format!("{column} {v} is not a number from 0 to {}", u32::MAX),
            })
        })
        .collect()
}

/// The `dt` column as days since 1970-01-01: a `YYYY-MM-DD` string, a date or a timestamp.
fn days(a: &ArrayRef, first_row: u64) -> Result<Vec<i64>, EvalError> {
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let a = cast(a, &DataType::Utf8)?;
            no_nulls(&a, "dt", first_row)?;
            let a = a.as_string::<i32>();
            (0..a.len())
                .map(|i| {
                    parse_day(a.value(i)).ok_or_else(|| EvalError::Row {
                        row: first_row + i as u64,
                        detail: format!("dt {:?} is not a date YYYY-MM-DD", a.value(i)),
                    })
                })
                .collect()
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let a = cast(a, &DataType::Date32)?;
            no_nulls(&a, "dt", first_row)?;
            Ok(a.as_primitive::<Date32Type>()
                .values()
                .iter()
                .map(|d| i64::from(*d))
                .collect())
        }
        other => Err(EvalError::Data {
            line: 0,
            detail: format!("dt is {other}, not a string, date or timestamp column"),
        }),
    }
}

/// A list column cast to `List<Float64>`, checked row by row for 24 non-null values.
struct Lists {
    column: &'static str,
    offsets: Vec<usize>,
    values: Vec<f64>,
}

impl Lists {
    fn new(a: &ArrayRef, column: &'static str, first_row: u64) -> Result<Self, EvalError> {
        if !matches!(
            a.data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
        ) {
            return Err(EvalError::Data {
                line: 0,
                detail: format!("{column} is {}, not a list column", a.data_type()),
            });
        }
        let target = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        let a = cast(a, &target)?;
        no_nulls(&a, column, first_row)?;
        let list = a.as_list::<i32>();
        let values = list.values();
        if let Some(i) = (0..values.len()).find(|&i| values.is_null(i)) {
            let offsets = list.value_offsets();
            let row = offsets.partition_point(|o| (*o as usize) <= i) - 1;
            return Err(EvalError::Row {
                row: first_row + row as u64,
                detail: format!("{column} holds a null value"),
            });
        }
        Ok(Self {
            column,
            offsets: list.value_offsets().iter().map(|o| *o as usize).collect(),
            values: values.as_primitive::<Float64Type>().values().to_vec(),
        })
    }

    /// The 24 values of row `i` (file row `row`, for the error).
    fn row(&self, i: usize, row: u64) -> Result<&[f64], EvalError> {
        let v = &self.values[self.offsets[i]..self.offsets[i + 1]];
        if v.len() != 24 {
            return Err(EvalError::Row {
                row,
                detail: format!("{} has {} values, not 24", self.column, v.len()),
            });
        }
        Ok(v)
    }
}

/// `hours_stock_status`: a list of 24 flags (0 in stock, 1 out of stock), or a 24-character
/// `0`/`1` string.
enum Flags {
    List(Lists),
    Text(Vec<String>),
}

impl Flags {
    fn new(a: &ArrayRef, first_row: u64) -> Result<Self, EvalError> {
        match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let a = cast(a, &DataType::Utf8)?;
                no_nulls(&a, "hours_stock_status", first_row)?;
                let a = a.as_string::<i32>();
                Ok(Flags::Text(
                    (0..a.len()).map(|i| a.value(i).to_owned()).collect(),
                ))
            }
            _ => Ok(Flags::List(Lists::new(a, "hours_stock_status", first_row)?)),
        }
    }

    /// Row `i`'s flags as a bit mask (bit h: out of stock in hour h).
    fn row(&self, i: usize, row: u64) -> Result<u32, EvalError> {
        let bad = |what: String| EvalError::Row {
            row,
            detail: format!("hours_stock_status {what} is not 24 flags of 0/1"),
        };
        match self {
            Flags::List(l) => l
                .row(i, row)?
                .iter()
                .enumerate()
                .try_fold(0u32, |m, (h, v)| {
                    if *v == 0.0 || *v == 1.0 {
                        Ok(m | (u32::from(*v == 1.0) << h))
                    } else {
                        Err(bad(format!("value {v} at hour {h}")))
                    }
                }),
            Flags::Text(t) => {
                let s = t[i].trim().as_bytes();
                if s.len() != 24 || s.iter().any(|b| *b != b'0' && *b != b'1') {
                    return Err(bad(format!("{:?}", t[i])));
                }
                Ok(s.iter()
                    .enumerate()
                    .fold(0u32, |m, (h, b)| m | (u32::from(*b == b'1') << h)))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, ListArray, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;

    /// One day row of the test tables: store, product, date, 24 sales, 24 flags.
    type Row<'a> = (i64, i64, &'a str, Vec<f64>, Vec<i64>);

    fn list_f64(rows: &[Vec<f64>]) -> ListArray {
        ListArray::from_iter_primitive::<Float64Type, _, _>(
            rows.iter().map(|r| Some(r.iter().map(|v| Some(*v)))),
        )
    }

    fn list_i64(rows: &[Vec<i64>]) -> ListArray {
        ListArray::from_iter_primitive::<Int64Type, _, _>(
            rows.iter().map(|r| Some(r.iter().map(|v| Some(*v)))),
        )
    }

    /// Writes `rows` with the five read columns plus `city_id` (an int32, to check widths).
    fn write(rows: &[Row]) -> tempfile::NamedTempFile {
        let cols: Vec<(&str, ArrayRef)> = vec![
            (
                "city_id",
                Arc::new(Int32Array::from(vec![1; rows.len()])) as ArrayRef,
            ),
            (
                "store_id",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            ),
            (
                "product_id",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ),
            (
                "dt",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ),
            (
                "hours_sale",
                Arc::new(list_f64(
                    &rows.iter().map(|r| r.3.clone()).collect::<Vec<_>>(),
                )),
            ),
            (
                "hours_stock_status",
                Arc::new(list_i64(
                    &rows.iter().map(|r| r.4.clone()).collect::<Vec<_>>(),
                )),
            ),
        ];
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        let f = tempfile::Builder::new()
            .suffix(".parquet")
            .tempfile()
            .unwrap();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut w = ArrowWriter::try_new(f.reopen().unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        f
    }

    #[test]
    fn reads_list_columns_into_hours() {
        let mut sales = vec![0.0; 24];
        sales[3] = 1.5;
        let mut flags = vec![0; 24];
        flags[23] = 1;
        let f = write(&[
            (7, 9, "2024-03-29", vec![0.0; 24], flags),
            (7, 9, "2024-03-28", sales, vec![0; 24]),
            (8, 9, "2024-03-28", vec![0.0; 24], vec![0; 24]),
        ]);
        assert!(is_parquet(f.path()));
        let mut seen = 0;
        let p = read_frn50k_parquet(f.path(), None, |b| seen = b).unwrap();
        assert_eq!(seen, std::fs::metadata(f.path()).unwrap().len());
        assert_eq!(p.series(), 2);
        assert_eq!(p.hours, 48);
        assert_eq!(p.start_ms, parse_day("2024-03-28").unwrap() * 86_400_000);
        assert_eq!(p.sales_of(0)[3], 1.5);
        let oos = p.oos.as_ref().unwrap();
        assert!(oos[47] && !oos[46] && !oos[48 + 47]);
        let p =
            read_frn50k_parquet(f.path(), Some(StoreFold::parse("0/2").unwrap()), |_| {}).unwrap();
        assert_eq!(p.locations, vec!["STORE-8".to_owned()]);
    }

    #[test]
    fn bad_rows_are_named_by_row_and_column() {
        let ok = || (1, 2, "2024-03-28", vec![0.0; 24], vec![0; 24]);
        let mut short = ok();
        short.3.pop();
        let mut flag = ok();
        flag.4[5] = 2;
        let mut negative = ok();
        negative.3[0] = -1.0;
        let mut date = ok();
        date.2 = "28/03/2024";
        let mut id = ok();
        id.0 = -4;
        for (bad, column) in [
            (short, "hours_sale"),
            (flag, "hours_stock_status"),
            (negative, "hours_sale[0]"),
            (date, "dt"),
            (id, "store_id"),
        ] {
            let f = write(&[ok(), bad]);
            let e = read_frn50k_parquet(f.path(), None, |_| {}).unwrap_err();
            assert!(matches!(e, EvalError::Row { row: 1, .. }), "{e}");
            assert!(e.to_string().contains(column), "{column}: {e}");
        }
    }

    #[test]
    fn a_missing_column_or_a_non_parquet_file_is_an_error() {
        let f = tempfile::Builder::new()
            .suffix(".parquet")
            .tempfile()
            .unwrap();
        std::fs::write(f.path(), b"store_id,product_id\n").unwrap();
        let e = read_frn50k_parquet(f.path(), None, |_| {}).unwrap_err();
        assert!(matches!(e, EvalError::Parquet(..)), "{e}");
        let batch = RecordBatch::try_from_iter([(
            "store_id",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        let mut w = ArrowWriter::try_new(f.reopen().unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let e = read_frn50k_parquet(f.path(), None, |_| {}).unwrap_err();
        assert!(e.to_string().contains("product_id"), "{e}");
    }
}
