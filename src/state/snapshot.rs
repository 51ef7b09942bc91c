//! A shard's whole state as one Arrow `RecordBatch` — one row per key, sorted by
//! `(location, sku)` so equal states give equal bytes — and back, exactly.
//!
//! Each field of the per-key rows is a column (gathered from the rows on export, scattered back
//! on import); the demand rings are `FixedSizeList<Float32>` columns; what
//! belongs to a key but varies in count (open shipments, remembered event ids, events waiting
//! for the watermark, label snapshots) is a `List<Struct>` column. Shard-level scalars (format
//! version, max event time, model weights, quality, counters) are JSON in the schema metadata.
//! State files hold every shard's rows with a `partition` column (see [`write_state`]).

use std::collections::HashMap as StdHashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray, UInt32Array,
    UInt64Array, UInt8Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use super::columns::{KeyRow, Rows, DAYS, HOURS};
use super::keys::KeyDict;
use super::order::{Groups, PendingEvent};
use super::shard::{ShardCounters, ShardState, StateConfig};
use crate::event::EventType;
use crate::model::features::NF;
use crate::model::labels::{RollingQuality, Snapshot};

/// Version of the snapshot layout. 2 (contract v2): the `count_gap` column, closed shipments
/// in `inbound` (`closed`), the events' `sub` code in `pending_events`, six event types in the
/// counters. Version 1 files are refused (replay the events again to rebuild them).
pub const SNAPSHOT_VERSION: &str = "2";

/// Errors reading or writing state snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Arrow encoding or decoding failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// File I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The snapshot is not in the expected layout.
    #[error("snapshot layout: {0}")]
    Layout(String),
    /// The model state inside it was refused.
    #[error("model: {0}")]
    Model(#[from] crate::model::ModelError),
}

/// Shard-level scalars stored as JSON in the schema metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ShardMeta {
    version: String,
    max_time_ms: i64,
    model: serde_json::Value,
    quality: RollingQuality,
    counters: ShardCounters,
    labels_dropped: u64,
    /// The artifact the model started from (absent: the prior, or an older snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_origin: Option<String>,
    /// The challenger (absent without one, and in older snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    challenger: Option<super::changelog::ChallengerRecord>,
    /// The locations' raise budgets (absent before they existed: none).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    budgets: crate::alert::RaiseBudgets,
}

fn layout(m: impl Into<String>) -> SnapshotError {
    SnapshotError::Layout(m.into())
}

fn fsl(values: Vec<f32>, width: usize) -> ArrayRef {
    let f = Arc::new(Field::new("item", DataType::Float32, false));
    Arc::new(FixedSizeListArray::new(
        f,
        width as i32,
        Arc::new(Float32Array::from(values)),
        None,
    ))
}

fn list_of(children: Vec<(&str, ArrayRef)>, counts: &[usize]) -> ArrayRef {
    let fields: Fields = children
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
        .collect();
    let arrays: Vec<ArrayRef> = children.into_iter().map(|(_, a)| a).collect();
    let st = StructArray::new(fields.clone(), arrays, None);
    let item = Arc::new(Field::new("item", DataType::Struct(fields), false));
    Arc::new(ListArray::new(
        item,
        OffsetBuffer::from_lengths(counts.iter().copied()),
        Arc::new(st),
        None,
    ))
}

/// A shard's state as a `RecordBatch` (rows sorted by key). `partition` fills the `partition`
/// column.
pub fn shard_to_batch(s: &ShardState, partition: u32) -> Result<RecordBatch, SnapshotError> {
    let n = s.keys.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| {
        (s.keys.location(a), s.keys.sku(a)).cmp(&(s.keys.location(b), s.keys.sku(b)))
    });
    let mut pos = vec![0usize; n];
    for (p, &r) in order.iter().enumerate() {
        pos[r as usize] = p;
    }
    let rows = s.rows.as_slice();
    let row = |r: u32| -> &KeyRow { &rows[r as usize] };
    // One field of every row, in key order: a gather into an Arrow column.
    macro_rules! col {
        ($f:ident, $arr:ty) => {
            Arc::new(<$arr>::from(
                order.iter().map(|&r| row(r).$f).collect::<Vec<_>>(),
            )) as ArrayRef
        };
    }
    let mut hourly = Vec::with_capacity(n * HOURS);
    let mut daily = Vec::with_capacity(n * DAYS);
    for &r in &order {
        hourly.extend_from_slice(&row(r).hourly);
        daily.extend_from_slice(&row(r).daily);
    }

    // Shipments (open and closed), per key in ETA order.
    let mut counts = vec![0usize; n];
    let (mut sh_hash, mut sh_qty, mut sh_eta, mut sh_closed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &r in &order {
        for sh in s.inbound.iter_key(row(r).inbound_head) {
            counts[pos[r as usize]] += 1;
            sh_hash.push(sh.id_hash);
            sh_qty.push(sh.qty);
            sh_eta.push(sh.eta_ms);
            sh_closed.push(sh.closed);
        }
    }
    let inbound = list_of(
        vec![
            ("shipment_hash", Arc::new(UInt64Array::from(sh_hash))),
            ("qty", Arc::new(Float64Array::from(sh_qty))),
            ("eta_ms", Arc::new(Int64Array::from(sh_eta))),
            ("closed", Arc::new(BooleanArray::from(sh_closed))),
        ],
        &counts,
    );

    // Remembered ids, per key, with their insertion sequence.
    let mut per_key: Vec<Vec<(u64, i64, u64)>> = vec![Vec::new(); n];
    for (seq, (t, h, r)) in s.order.seen_ids().enumerate() {
        per_key[pos[r as usize]].push((seq as u64, t, h));
    }
    let counts: Vec<usize> = per_key.iter().map(Vec::len).collect();
    let flat: Vec<(u64, i64, u64)> = per_key.into_iter().flatten().collect();
    let seen = list_of(
        vec![
            (
                "seq",
                Arc::new(UInt64Array::from(
                    flat.iter().map(|e| e.0).collect::<Vec<_>>(),
                )),
            ),
            (
                "time_ms",
                Arc::new(Int64Array::from(
                    flat.iter().map(|e| e.1).collect::<Vec<_>>(),
                )),
            ),
            (
                "id_hash",
                Arc::new(UInt64Array::from(
                    flat.iter().map(|e| e.2).collect::<Vec<_>>(),
                )),
            ),
        ],
        &counts,
    );

    // Events waiting for the watermark, per key in event order.
    let mut per_key: Vec<Vec<PendingEvent>> = vec![Vec::new(); n];
    for e in s.order.pending_events() {
        per_key[pos[e.row as usize]].push(*e);
    }
    for v in &mut per_key {
        v.sort_by_key(|e| (e.time_ms, e.id_hash, e.source));
    }
    let counts: Vec<usize> = per_key.iter().map(Vec::len).collect();
    let flat: Vec<PendingEvent> = per_key.into_iter().flatten().collect();
    let pending = list_of(
        vec![
            (
                "time_ms",
                Arc::new(Int64Array::from(
                    flat.iter().map(|e| e.time_ms).collect::<Vec<_>>(),
                )),
            ),
            (
                "id_hash",
                Arc::new(UInt64Array::from(
                    flat.iter().map(|e| e.id_hash).collect::<Vec<_>>(),
                )),
            ),
            (
                "kind",
                Arc::new(UInt8Array::from(
                    flat.iter().map(|e| e.kind as u8).collect::<Vec<_>>(),
                )),
            ),
            (
                "in_stock",
                Arc::new(BooleanArray::from(
                    flat.iter().map(|e| e.in_stock).collect::<Vec<_>>(),
                )),
            ),
            (
                "qty",
                Arc::new(Float64Array::from(
                    flat.iter().map(|e| e.qty).collect::<Vec<_>>(),
                )),
            ),
            (
                "eta_ms",
                Arc::new(Int64Array::from(
                    flat.iter().map(|e| e.eta_ms).collect::<Vec<_>>(),
                )),
            ),
            (
                "shipment_hash",
                Arc::new(UInt64Array::from(
                    flat.iter().map(|e| e.shipment_hash).collect::<Vec<_>>(),
                )),
            ),
            (
                "source",
                Arc::new(UInt64Array::from(
                    flat.iter().map(|e| e.source).collect::<Vec<_>>(),
                )),
            ),
            (
                "sub",
                Arc::new(UInt8Array::from(
                    flat.iter().map(|e| e.sub).collect::<Vec<_>>(),
                )),
            ),
        ],
        &counts,
    );

    // Label snapshots, per key, with their FIFO position.
    let mut per_key: Vec<Vec<(u64, Snapshot)>> = vec![Vec::new(); n];
    for (seq, sn) in s.labels.iter().enumerate() {
        per_key[pos[sn.row as usize]].push((seq as u64, *sn));
    }
    let counts: Vec<usize> = per_key.iter().map(Vec::len).collect();
    let flat: Vec<(u64, Snapshot)> = per_key.into_iter().flatten().collect();
    let labels = list_of(
        vec![
            (
                "seq",
                Arc::new(UInt64Array::from(
                    flat.iter().map(|e| e.0).collect::<Vec<_>>(),
                )),
            ),
            (
                "time_ms",
                Arc::new(Int64Array::from(
                    flat.iter().map(|e| e.1.time_ms).collect::<Vec<_>>(),
                )),
            ),
            (
                "risk",
                Arc::new(Float32Array::from(
                    flat.iter().map(|e| e.1.risk).collect::<Vec<_>>(),
                )),
            ),
            ("x", fsl(flat.iter().flat_map(|e| e.1.x).collect(), NF)),
            (
                "margin",
                Arc::new(Float32Array::from(
                    flat.iter().map(|e| e.1.margin).collect::<Vec<_>>(),
                )),
            ),
        ],
        &counts,
    );

    let loc: StringArray = order.iter().map(|&r| Some(s.keys.location(r))).collect();
    let sku: StringArray = order.iter().map(|&r| Some(s.keys.sku(r))).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("partition", Arc::new(UInt32Array::from(vec![partition; n]))),
        ("location", Arc::new(loc)),
        ("sku", Arc::new(sku)),
        ("on_hand", col!(on_hand, Float64Array)),
        ("in_transit", col!(in_transit, Float64Array)),
        ("flags", col!(flags, UInt8Array)),
        ("last_stockout_ms", col!(last_stockout_ms, Int64Array)),
        ("last_alert_ms", col!(last_alert_ms, Int64Array)),
        ("first_hour", col!(first_hour, Int32Array)),
        ("ring_hour", col!(ring_hour, Int32Array)),
        ("last_receipt_hour", col!(last_receipt_hour, Int32Array)),
        ("last_sample_hour", col!(last_sample_hour, Int32Array)),
        ("hourly_demand", fsl(hourly, HOURS)),
        ("daily_demand", fsl(daily, DAYS)),
        ("oos_hours", col!(oos_hours, UInt32Array)),
        ("oos_days", col!(oos_days, UInt32Array)),
        ("risk", col!(risk, Float32Array)),
        ("alert_risk", col!(alert_risk, Float32Array)),
        ("count_gap", col!(count_gap, Int16Array)),
        ("inbound", inbound),
        ("seen_ids", seen),
        ("pending_events", pending),
        ("label_snapshots", labels),
    ];
    let meta = ShardMeta {
        version: SNAPSHOT_VERSION.into(),
        max_time_ms: s.order.max_time_ms(),
        model: s.model.export(),
        quality: s.quality,
        counters: s.counters,
        labels_dropped: s.labels.dropped,
        model_origin: s.origin.clone(),
        challenger: super::changelog::ChallengerRecord::of(s),
        budgets: s.budgets.clone(),
    };
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), false))
        .collect();
    let mut md = StdHashMap::new();
    md.insert(
        "stockwatch.shards".to_string(),
        serde_json::to_string(&vec![meta]).map_err(|e| layout(e.to_string()))?,
    );
    let schema = Arc::new(Schema::new(fields).with_metadata(md));
    Ok(RecordBatch::try_new(
        schema,
        columns.into_iter().map(|(_, a)| a).collect(),
    )?)
}

fn get<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T, SnapshotError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| layout(format!("column `{name}` missing or of the wrong type")))
}

fn struct_child<'a, T: 'static>(st: &'a StructArray, name: &str) -> Result<&'a T, SnapshotError> {
    st.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            layout(format!(
                "nested field `{name}` missing or of the wrong type"
            ))
        })
}

fn list_parts<'a>(
    b: &'a RecordBatch,
    name: &str,
) -> Result<(&'a ListArray, &'a StructArray), SnapshotError> {
    let l: &ListArray = get(b, name)?;
    let st = l
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| layout(format!("`{name}` is not a list of structs")))?;
    Ok((l, st))
}

/// `(row, index into the list's values)` of every entry of a list column, in order.
fn list_entries(l: &ListArray) -> impl Iterator<Item = (usize, usize)> + '_ {
    let o = l.value_offsets();
    (0..l.len()).flat_map(move |row| (o[row] as usize..o[row + 1] as usize).map(move |i| (row, i)))
}

fn f32_rows(a: &FixedSizeListArray, width: usize) -> Result<&[f32], SnapshotError> {
    if a.value_length() as usize != width {
        return Err(layout(format!(
            "ring width {} != {width}",
            a.value_length()
        )));
    }
    a.values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .map(|v| v.values().as_ref())
        .ok_or_else(|| layout("ring values are not Float32"))
}

/// Rebuilds the shard state of a batch made by [`shard_to_batch`] (rows of one partition) and
/// its metadata ([`shard_meta`]).
pub fn shard_from_batch(
    b: &RecordBatch,
    meta: &serde_json::Value,
    cfg: &StateConfig,
) -> Result<ShardState, SnapshotError> {
    let meta: ShardMeta =
        serde_json::from_value(meta.clone()).map_err(|e| layout(format!("metadata: {e}")))?;
    if meta.version != SNAPSHOT_VERSION {
        return Err(layout(format!(
            "snapshot version {} (this build reads {SNAPSHOT_VERSION})",
            meta.version
        )));
    }
    let mut s = ShardState::new(cfg);
    let loc: &StringArray = get(b, "location")?;
    let sku: &StringArray = get(b, "sku")?;
    s.keys = KeyDict::from_arrays(loc, sku);
    let n = b.num_rows();
    // Scatter the columns into rows. Every column must have one value per key.
    let on_hand = get::<Float64Array>(b, "on_hand")?.values();
    let in_transit = get::<Float64Array>(b, "in_transit")?.values();
    let flags = get::<UInt8Array>(b, "flags")?.values();
    let last_stockout_ms = get::<Int64Array>(b, "last_stockout_ms")?.values();
    let last_alert_ms = get::<Int64Array>(b, "last_alert_ms")?.values();
    let first_hour = get::<Int32Array>(b, "first_hour")?.values();
    let ring_hour = get::<Int32Array>(b, "ring_hour")?.values();
    let last_receipt_hour = get::<Int32Array>(b, "last_receipt_hour")?.values();
    let last_sample_hour = get::<Int32Array>(b, "last_sample_hour")?.values();
    let hourly = f32_rows(get(b, "hourly_demand")?, HOURS)?;
    let daily = f32_rows(get(b, "daily_demand")?, DAYS)?;
    let oos_hours = get::<UInt32Array>(b, "oos_hours")?.values();
    let oos_days = get::<UInt32Array>(b, "oos_days")?.values();
    let risk = get::<Float32Array>(b, "risk")?.values();
    let alert_risk = get::<Float32Array>(b, "alert_risk")?.values();
    let count_gap = get::<Int16Array>(b, "count_gap")?.values();
    if hourly.len() != n * HOURS || daily.len() != n * DAYS {
        return Err(layout("demand rings of another number of keys"));
    }
    let mut rows = Rows::default();
    rows.reserve_exact(n);
    for r in 0..n {
        let mut k = KeyRow {
            on_hand: on_hand[r],
            in_transit: in_transit[r],
            last_stockout_ms: last_stockout_ms[r],
            last_alert_ms: last_alert_ms[r],
            first_hour: first_hour[r],
            ring_hour: ring_hour[r],
            last_receipt_hour: last_receipt_hour[r],
            last_sample_hour: last_sample_hour[r],
            oos_hours: oos_hours[r],
            oos_days: oos_days[r],
            risk: risk[r],
            alert_risk: alert_risk[r],
            flags: flags[r],
            count_gap: count_gap[r],
            ..KeyRow::default()
        };
        k.hourly
            .copy_from_slice(&hourly[r * HOURS..(r + 1) * HOURS]);
        k.daily.copy_from_slice(&daily[r * DAYS..(r + 1) * DAYS]);
        rows.push(k);
    }
    s.rows = rows;

    let (l, st) = list_parts(b, "inbound")?;
    let (h, q, e, closed) = (
        struct_child::<UInt64Array>(st, "shipment_hash")?,
        struct_child::<Float64Array>(st, "qty")?,
        struct_child::<Int64Array>(st, "eta_ms")?,
        struct_child::<BooleanArray>(st, "closed")?,
    );
    for (row, i) in list_entries(l) {
        s.inbound.restore(
            &mut s.rows.get_mut(row).inbound_head,
            row as u32,
            h.value(i),
            q.value(i),
            e.value(i),
            closed.value(i),
        );
    }

    let (l, st) = list_parts(b, "seen_ids")?;
    let (seq, t, h) = (
        struct_child::<UInt64Array>(st, "seq")?,
        struct_child::<Int64Array>(st, "time_ms")?,
        struct_child::<UInt64Array>(st, "id_hash")?,
    );
    let mut seen: Vec<(u64, i64, u64, u32)> = Vec::with_capacity(st.len());
    for (row, i) in list_entries(l) {
        seen.push((seq.value(i), t.value(i), h.value(i), row as u32));
    }
    seen.sort_by_key(|e| e.0);
    s.order
        .restore(meta.max_time_ms, seen.iter().map(|&(_, t, h, r)| (t, h, r)));

    let (l, st) = list_parts(b, "pending_events")?;
    let cols = (
        struct_child::<Int64Array>(st, "time_ms")?,
        struct_child::<UInt64Array>(st, "id_hash")?,
        struct_child::<UInt8Array>(st, "kind")?,
        struct_child::<BooleanArray>(st, "in_stock")?,
        struct_child::<Float64Array>(st, "qty")?,
        struct_child::<Int64Array>(st, "eta_ms")?,
        struct_child::<UInt64Array>(st, "shipment_hash")?,
        struct_child::<UInt64Array>(st, "source")?,
        struct_child::<UInt8Array>(st, "sub")?,
    );
    for (row, i) in list_entries(l) {
        let kind = EventType::from_code(cols.2.value(i))
            .ok_or_else(|| layout(format!("pending event kind {}", cols.2.value(i))))?;
        s.order.restore_pending(PendingEvent {
            time_ms: cols.0.value(i),
            id_hash: cols.1.value(i),
            row: row as u32,
            kind,
            in_stock: cols.3.value(i),
            qty: cols.4.value(i),
            eta_ms: cols.5.value(i),
            shipment_hash: cols.6.value(i),
            sub: cols.8.value(i),
            groups: Groups::UNRESOLVED,
            source: cols.7.value(i),
        });
    }

    let (l, st) = list_parts(b, "label_snapshots")?;
    let (seq, t, risk) = (
        struct_child::<UInt64Array>(st, "seq")?,
        struct_child::<Int64Array>(st, "time_ms")?,
        struct_child::<Float32Array>(st, "risk")?,
    );
    let x = f32_rows(struct_child::<FixedSizeListArray>(st, "x")?, NF)?;
    // Files written before label margins were kept have none: unknown (NaN).
    let margin = match st.column_by_name("margin") {
        Some(_) => Some(struct_child::<Float32Array>(st, "margin")?),
        None => None,
    };
    let mut snaps: Vec<(u64, Snapshot)> = Vec::with_capacity(st.len());
    for (row, i) in list_entries(l) {
        let mut xs = [0.0f32; NF];
        xs.copy_from_slice(&x[i * NF..(i + 1) * NF]);
        snaps.push((
            seq.value(i),
            Snapshot {
                row: row as u32,
                time_ms: t.value(i),
                x: xs,
                risk: risk.value(i),
                margin: margin.map_or(f32::NAN, |m| m.value(i)),
                challenger_risk: f32::NAN,
                challenger_margin: f32::NAN,
            },
        ));
    }
    snaps.sort_by_key(|e| e.0);
    for (_, sn) in snaps {
        s.labels.push(sn, usize::MAX);
    }
    s.labels.dropped = meta.labels_dropped;
    let champion = super::shard::SavedModel {
        state: &meta.model,
        quality: meta.quality,
        origin: meta.model_origin.as_deref(),
    };
    s.restore_models(
        cfg,
        champion,
        meta.challenger
            .as_ref()
            .map(super::changelog::ChallengerRecord::saved),
        false,
    )?;
    s.counters = meta.counters;
    s.budgets = meta.budgets.clone();
    Ok(s)
}

/// Writes shard states (in partition order) into one Arrow IPC file: one record batch per
/// shard, rows tagged with their partition, shard metadata as a JSON array in the schema
/// metadata.
pub fn write_state<'a>(
    shards: impl IntoIterator<Item = &'a ShardState>,
    path: &Path,
) -> Result<(), SnapshotError> {
    let batches: Vec<RecordBatch> = shards
        .into_iter()
        .enumerate()
        .map(|(p, s)| shard_to_batch(s, p as u32))
        .collect::<Result<_, _>>()?;
    let mut metas = Vec::with_capacity(batches.len());
    for b in &batches {
        let m: Vec<serde_json::Value> = serde_json::from_str(
            b.schema()
                .metadata()
                .get("stockwatch.shards")
                .map(String::as_str)
                .unwrap_or("[]"),
        )
        .map_err(|e| layout(e.to_string()))?;
        metas.extend(m);
    }
    let Some(first) = batches.first() else {
        return Err(layout("engine has no shards"));
    };
    let mut md = StdHashMap::new();
    md.insert(
        "stockwatch.shards".to_string(),
        serde_json::to_string(&metas).map_err(|e| layout(e.to_string()))?,
    );
    let schema = Arc::new(Schema::new(first.schema().fields().clone()).with_metadata(md));
    let mut w = FileWriter::try_new(File::create(path)?, &schema)?;
    for b in batches {
        w.write(&RecordBatch::try_new(schema.clone(), b.columns().to_vec())?)?;
    }
    w.finish()?;
    Ok(())
}

/// Reads a file written by [`write_state`] back into shard states (one per partition).
pub fn read_state(path: &Path, cfg: &StateConfig) -> Result<Vec<ShardState>, SnapshotError> {
    let r = FileReader::try_new(File::open(path)?, None)?;
    let metas: Vec<serde_json::Value> = serde_json::from_str(
        r.schema()
            .metadata()
            .get("stockwatch.shards")
            .ok_or_else(|| layout("no stockwatch.shards metadata"))?,
    )
    .map_err(|e| layout(e.to_string()))?;
    let batches: Vec<RecordBatch> = r.collect::<Result<_, _>>()?;
    if batches.len() != metas.len() {
        return Err(layout(format!(
            "{} batches for {} shards",
            batches.len(),
            metas.len()
        )));
    }
    batches
        .iter()
        .zip(&metas)
        .map(|(b, m)| shard_from_batch(b, m, cfg))
        .collect()
}

/// The shard metadata JSON of a batch from [`shard_to_batch`].
pub fn shard_meta(b: &RecordBatch) -> Result<serde_json::Value, SnapshotError> {
    let v: Vec<serde_json::Value> = serde_json::from_str(
        b.schema()
            .metadata()
            .get("stockwatch.shards")
            .ok_or_else(|| layout("no stockwatch.shards metadata"))?,
    )
    .map_err(|e| layout(e.to_string()))?;
    v.into_iter()
        .next()
        .ok_or_else(|| layout("empty shard metadata"))
}
