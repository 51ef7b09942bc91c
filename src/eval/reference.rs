//! The exchange files of the offline reference (`evaluate --reference`): evaluate writes the
//! online model's feature rows on the grid ([`FeatureWriter`], Parquet), the Python script
//! `tools/reference/gbdt.py` trains a gradient-boosted model on the training stores' rows and
//! writes the scored rows' probabilities ([`read_scores`]), and evaluate adds them as the
//! [`super::REFERENCE`] model with the same metrics ([`super::Outcome::add_model`]).
//!
//! Feature file columns: `split` (u8: 0 = training stores, 1 = scored), `store` (u32: the FRN
//! store id, `u32::MAX` when the location is not `STORE-<n>`), `series` (u32, the panel's series
//! index), `hour` (u32: the grid hour from the start of the data; scored at its end), `label`
//! (u8, 1 = out of stock within the horizon), then one f32 column per feature, named as
//! [`crate::model::features::NAMES`]. Scores file: one f64 column `score`, one row per scored
//! row in the feature file's order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Float64Array, UInt32Array, UInt8Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::EvalError;
use crate::model::features::{Features, NAMES};

/// Rows buffered before a row group's batch is written.
const BATCH_ROWS: usize = 1 << 16;

/// Which side of the store split a row is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// A training store's row (never scored).
    Train = 0,
    /// A scored store's row.
    Score = 1,
}

/// Writes feature rows to a Parquet file, a batch of [`BATCH_ROWS`] at a time.
pub struct FeatureWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    split: Vec<u8>,
    store: Vec<u32>,
    series: Vec<u32>,
    hour: Vec<u32>,
    label: Vec<u8>,
    x: Vec<Vec<f32>>,
    /// Scored rows written.
    pub scored: u64,
    /// Training rows written.
    pub train: u64,
}

impl std::fmt::Debug for FeatureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureWriter")
            .field("path", &self.path)
            .field("scored", &self.scored)
            .field("train", &self.train)
            .finish()
    }
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Parquet(path.display().to_string(), e.to_string())
}

impl FeatureWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, EvalError> {
        let mut fields = vec![
            Field::new("split", DataType::UInt8, false),
            Field::new("store", DataType::UInt32, false),
            Field::new("series", DataType::UInt32, false),
            Field::new("hour", DataType::UInt32, false),
            Field::new("label", DataType::UInt8, false),
        ];
        fields.extend(
            NAMES
                .iter()
                .map(|n| Field::new(*n, DataType::Float32, false)),
        );
        let schema = Arc::new(Schema::new(fields));
        let file = File::create(path).map_err(|e| EvalError::Io(path.display().to_string(), e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| parquet_err(path, e))?;
        Ok(FeatureWriter {
            path: path.to_owned(),
            writer,
            schema,
            split: Vec::with_capacity(BATCH_ROWS),
            store: Vec::with_capacity(BATCH_ROWS),
            series: Vec::with_capacity(BATCH_ROWS),
            hour: Vec::with_capacity(BATCH_ROWS),
            label: Vec::with_capacity(BATCH_ROWS),
            x: NAMES
                .iter()
                .map(|_| Vec::with_capacity(BATCH_ROWS))
                .collect(),
            scored: 0,
            train: 0,
        })
    }

    /// Adds one grid point.
    pub fn push(
        &mut self,
        split: Split,
        store: u32,
        series: u32,
        hour: u32,
        label: bool,
        x: &Features,
    ) -> Result<(), EvalError> {
        self.split.push(split as u8);
        self.store.push(store);
        self.series.push(series);
        self.hour.push(hour);
        self.label.push(u8::from(label));
        for (col, &v) in self.x.iter_mut().zip(x) {
            col.push(v);
        }
        match split {
            Split::Train => self.train += 1,
            Split::Score => self.scored += 1,
        }
        if self.split.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EvalError> {
        if self.split.is_empty() {
            return Ok(());
        }
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt8Array::from(std::mem::take(&mut self.split))),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.store))),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.series))),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.hour))),
            Arc::new(UInt8Array::from(std::mem::take(&mut self.label))),
        ];
        for c in &mut self.x {
            cols.push(Arc::new(Float32Array::from(std::mem::take(c))));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), cols)?;
        self.writer
            .write(&batch)
            .map_err(|e| parquet_err(&self.path, e))
    }

    /// Writes what is buffered and closes the file.
    pub fn finish(mut self) -> Result<(u64, u64), EvalError> {
        self.flush()?;
        let (train, scored) = (self.train, self.scored);
        let path = self.path.clone();
        self.writer.close().map_err(|e| parquet_err(&path, e))?;
        Ok((train, scored))
    }
}

/// The FRN store number of a location `STORE-<n>`, or `u32::MAX`.
pub fn store_number(location: &str) -> u32 {
    location
        .strip_prefix("STORE-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Reads the `score` column of a scores file.
pub fn read_scores(path: &Path) -> Result<Vec<f64>, EvalError> {
    let file = File::open(path).map_err(|e| EvalError::Io(path.display().to_string(), e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| parquet_err(path, e))?
        .build()
        .map_err(|e| parquet_err(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        let col = batch
            .column_by_name("score")
            .ok_or_else(|| parquet_err(path, "no column `score`"))?;
        let col = arrow::compute::cast(col, &DataType::Float64)?;
        let col = col.as_primitive::<Float64Type>();
        if col.null_count() > 0 {
            return Err(parquet_err(path, "null scores"));
        }
        out.extend(col.values().iter().copied());
    }
    Ok(out)
}

/// Writes a scores file (what `gbdt.py` writes; for tests and other reference models).
pub fn write_scores(path: &Path, scores: &[f64]) -> Result<(), EvalError> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "score",
        DataType::Float64,
        false,
    )]));
    let file = File::create(path).map_err(|e| EvalError::Io(path.display().to_string(), e))?;
    let mut w =
        ArrowWriter::try_new(file, schema.clone(), None).map_err(|e| parquet_err(path, e))?;
    let col: ArrayRef = Arc::new(Float64Array::from(scores.to_vec()));
    w.write(&RecordBatch::try_new(schema, vec![col])?)
        .map_err(|e| parquet_err(path, e))?;
    w.close().map_err(|e| parquet_err(path, e))?;
    Ok(())
}

/// How to run the reference script.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The Python interpreter of the reference's environment.
    pub python: PathBuf,
    /// `gbdt.py`.
    pub script: PathBuf,
}

impl Runner {
    /// Fails, saying how to set the environment up, unless the interpreter and script exist.
    pub fn check(&self) -> Result<(), EvalError> {
        if !self.script.is_file() {
            return Err(EvalError::Argument(format!(
                "--reference: no script {} (run evaluate from the repository root, or pass \
                 --reference-script tools/reference/gbdt.py)",
                self.script.display()
            )));
        }
        if !self.python.is_file() {
            return Err(EvalError::Argument(format!(
                "--reference needs the reference's Python environment, and {} does not exist: \
                 run tools/reference/setup.sh (it creates tools/reference/.venv with the pinned \
                 LightGBM and pyarrow), or pass --reference-python",
                self.python.display()
            )));
        }
        Ok(())
    }

    /// Runs the script on `features`, writing `scores`.
    pub fn run(&self, features: &Path, scores: &Path) -> Result<(), EvalError> {
        self.check()?;
        let status = std::process::Command::new(&self.python)
            .arg(&self.script)
            .arg("--features")
            .arg(features)
            .arg("--scores")
            .arg(scores)
            .status()
            .map_err(|e| EvalError::Io(self.python.display().to_string(), e))?;
        if !status.success() {
            return Err(EvalError::Argument(format!(
                "the reference script {} failed ({status}); is the environment complete? \
                 (tools/reference/setup.sh)",
                self.script.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::features::NF;

    #[test]
    fn feature_rows_and_scores_round_trip() {
        let dir = std::env::temp_dir().join(format!("sw-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("features.parquet");
        let mut w = FeatureWriter::create(&path).unwrap();
        // More than one batch, both splits.
        let rows = BATCH_ROWS + 10;
        for i in 0..rows {
            let mut x = [0.0f32; NF];
            x[0] = i as f32;
            x[NF - 1] = -(i as f32);
            let split = if i % 3 == 0 {
                Split::Train
            } else {
                Split::Score
            };
            w.push(split, 7, i as u32, (i % 2160) as u32, i % 2 == 0, &x)
                .unwrap();
        }
        let (train, scored) = w.finish().unwrap();
        assert_eq!(train + scored, rows as u64);
        assert_eq!(train, rows.div_ceil(3) as u64);
        let file = File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut seen = 0usize;
        for b in reader {
            let b = b.unwrap();
            let names: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(&names[..5], ["split", "store", "series", "hour", "label"]);
            assert_eq!(&names[5..], NAMES);
            let series = b.column(2).as_primitive::<arrow::datatypes::UInt32Type>();
            let label = b.column(4).as_primitive::<arrow::datatypes::UInt8Type>();
            let first = b.column(5).as_primitive::<arrow::datatypes::Float32Type>();
            let last = b
                .column(5 + NF - 1)
                .as_primitive::<arrow::datatypes::Float32Type>();
            for r in 0..b.num_rows() {
                let i = seen + r;
                assert_eq!(series.value(r), i as u32);
                assert_eq!(label.value(r), u8::from(i % 2 == 0));
                assert_eq!(first.value(r), i as f32);
                assert_eq!(last.value(r), -(i as f32));
            }
            seen += b.num_rows();
        }
        assert_eq!(seen, rows);
        let scores: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let sp = dir.join("scores.parquet");
        write_scores(&sp, &scores).unwrap();
        assert_eq!(read_scores(&sp).unwrap(), scores);
        // Not a scores file: a clear error, not a panic.
        assert!(read_scores(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_environment_says_how_to_set_it_up() {
        let r = Runner {
            python: PathBuf::from("/nonexistent/.venv/bin/python"),
            script: PathBuf::from("Cargo.toml"),
        };
        let e = r.check().unwrap_err().to_string();
        assert!(e.contains("tools/reference/setup.sh"), "{e}");
        assert_eq!(store_number("STORE-42"), 42);
        assert_eq!(store_number("DC-1"), u32::MAX);
    }
}
