//! Decode: a micro-batch of raw messages -> one validated Arrow `RecordBatch` plus rejections.
//!
//! Each message is parsed once with a borrowing serde visitor ([`raw`]), validated against the
//! contract, and appended to column builders; a bad message never fails its batch, it becomes a
//! [`Rejection`]. We do not use `arrow-json`'s decoder: it fails a whole buffered batch on one bad
//! record, so it would need a second, validating parse of every message anyway.
//!
//! One wide batch (all types, nullable type-specific columns) rather than one per type: the
//! shard must apply events of all types in one event-time order, so a single batch avoids a
//! merge; the unused columns cost one validity bit per row.

pub mod raw;
pub mod topic;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, StringArray,
    StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder, UInt32Array,
    UInt32Builder, UInt8Array, UInt8Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::event::{
    AdjustmentReason, CountSource, EventType, ShipmentStatus, KEY_SEPARATOR, MAX_ID_BYTES,
};
use crate::reject::{clip, RejectReason, Rejection};
use raw::{field_bit, FieldCursor, RawEvent};
pub use topic::TopicTypes;

/// Limits applied while decoding. Defaults are the service defaults (`config/default.toml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Largest accepted payload in bytes, checked before parsing.
    pub max_payload_bytes: usize,
    /// How far `event_time` may be ahead of the processing clock, in ms.
    pub future_skew_ms: i64,
    /// How far `event_time` may be behind the processing clock, in ms.
    pub max_event_age_ms: i64,
    /// How far `eta` may be after `event_time`, in ms.
    pub max_eta_ahead_ms: i64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_payload_bytes: 64 * 1024,
            future_skew_ms: 3_600_000,
            max_event_age_ms: 3650 * 86_400_000,
            max_eta_ahead_ms: 365 * 86_400_000,
        }
    }
}

/// How the message key is checked against the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// Files: there is no key; it is derived from the body.
    Derive,
    /// Kafka: the key must be present and equal `"{location}|{sku}"` of the body.
    Require,
}

/// One raw message of a batch.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    /// The Kafka message key, if any.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub value: &'a [u8],
}

/// Column positions of a decoded batch.
pub mod col {
    /// Index of the message in the input batch (`UInt32`).
    pub const INDEX: usize = 0;
    /// Event type code (`UInt8`, see [`crate::event::EventType`]).
    pub const TYPE: usize = 1;
    /// `event_id` (`Utf8`).
    pub const EVENT_ID: usize = 2;
    /// `location` (`Utf8`).
    pub const LOCATION: usize = 3;
    /// `sku` (`Utf8`).
    pub const SKU: usize = 4;
    /// `shipment_id` (`Utf8`, nullable).
    pub const SHIPMENT_ID: usize = 5;
    /// `qty` (`Float64`, null for availability).
    pub const QTY: usize = 6;
    /// `event_time` (`Timestamp(ms, UTC)`).
    pub const EVENT_TIME: usize = 7;
    /// `eta` (`Timestamp(ms, UTC)`, shipments only).
    pub const ETA: usize = 8;
    /// `in_stock` (`Boolean`, availability only).
    pub const IN_STOCK: usize = 9;
    /// The type's bounded-set field as its code (`UInt8`, nullable): a shipment's `status`
    /// ([`crate::event::ShipmentStatus`]), a count's `source`
    /// ([`crate::event::CountSource`]), an adjustment's `reason`
    /// ([`crate::event::AdjustmentReason`]); null for the other types.
    pub const SUB: usize = 10;
}

/// The Arrow schema of a decoded batch.
pub fn decoded_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt32, false),
        Field::new("type", DataType::UInt8, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("shipment_id", DataType::Utf8, true),
        Field::new("qty", DataType::Float64, true),
        Field::new("event_time", ts.clone(), false),
        Field::new("eta", ts, true),
        Field::new("in_stock", DataType::Boolean, true),
        Field::new("sub", DataType::UInt8, true),
    ]))
}

/// A validated micro-batch in Arrow form.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    /// The columns, see [`col`] and [`decoded_schema`].
    pub batch: RecordBatch,
}

/// Typed views of a decoded batch's columns (downcast once per batch, not per row).
#[derive(Debug)]
pub struct DecodedColumns<'a> {
    /// See [`col::INDEX`].
    pub index: &'a UInt32Array,
    /// See [`col::TYPE`].
    pub kind: &'a UInt8Array,
    /// See [`col::EVENT_ID`].
    pub event_id: &'a StringArray,
    /// See [`col::LOCATION`].
    pub location: &'a StringArray,
    /// See [`col::SKU`].
    pub sku: &'a StringArray,
    /// See [`col::SHIPMENT_ID`].
    pub shipment_id: &'a StringArray,
    /// See [`col::QTY`].
    pub qty: &'a Float64Array,
    /// See [`col::EVENT_TIME`].
    pub event_time: &'a TimestampMillisecondArray,
    /// See [`col::ETA`].
    pub eta: &'a TimestampMillisecondArray,
    /// See [`col::IN_STOCK`].
    pub in_stock: &'a BooleanArray,
    /// See [`col::SUB`].
    pub sub: &'a UInt8Array,
}

impl DecodedBatch {
    /// Number of valid events.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// True when no message of the batch was valid.
    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// Typed column views. The batch is always built by [`Decoder`], so the downcasts hold.
    pub fn columns(&self) -> DecodedColumns<'_> {
        fn get<T: 'static>(b: &RecordBatch, i: usize) -> &T {
            b.column(i)
                .as_any()
                .downcast_ref::<T>()
                .expect("decoded batch built by Decoder has a fixed schema")
        }
        let b = &self.batch;
        DecodedColumns {
            index: get(b, col::INDEX),
            kind: get(b, col::TYPE),
            event_id: get(b, col::EVENT_ID),
            location: get(b, col::LOCATION),
            sku: get(b, col::SKU),
            shipment_id: get(b, col::SHIPMENT_ID),
            qty: get(b, col::QTY),
            event_time: get(b, col::EVENT_TIME),
            eta: get(b, col::ETA),
            in_stock: get(b, col::IN_STOCK),
            sub: get(b, col::SUB),
        }
    }
}

/// A validated event borrowing from its message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidEvent<'a> {
    /// Event type.
    pub kind: EventType,
    /// `event_id`.
    pub event_id: &'a str,
    /// `location`.
    pub location: &'a str,
    /// `sku`.
    pub sku: &'a str,
    /// `shipment_id`, if any.
    pub shipment_id: Option<&'a str>,
    /// `qty` (0 for availability).
    pub qty: f64,
    /// `event_time` in ms since the Unix epoch.
    pub event_time_ms: i64,
    /// `eta` in ms (shipments only).
    pub eta_ms: Option<i64>,
    /// `in_stock` (availability only).
    pub in_stock: Option<bool>,
    /// The type's bounded-set field as its code (see [`col::SUB`]); `None` for sales, receipts
    /// and availability.
    pub sub: Option<u8>,
}

/// Counters kept by the decoder over its lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Messages seen.
    pub messages: u64,
    /// Messages that decoded into events.
    pub valid: u64,
    /// Fields outside the contract, ignored.
    pub unknown_fields: u64,
}

/// Turns batches of raw messages into [`DecodedBatch`]es. Reuse one per shard or source.
#[derive(Debug)]
pub struct Decoder {
    limits: DecodeLimits,
    policy: KeyPolicy,
    stats: DecodeStats,
    cursor: FieldCursor,
    b: Builders,
    schema: SchemaRef,
}

/// The Arrow builders of a decoded batch ([`decoded_schema`]): the one place that lays the
/// columns out (the decoder and `evaluate` both fill it).
#[derive(Debug)]
pub(crate) struct Builders {
    index: UInt32Builder,
    kind: UInt8Builder,
    event_id: StringBuilder,
    location: StringBuilder,
    sku: StringBuilder,
    shipment_id: StringBuilder,
    qty: Float64Builder,
    event_time: TimestampMillisecondBuilder,
    eta: TimestampMillisecondBuilder,
    in_stock: BooleanBuilder,
    sub: UInt8Builder,
}

impl Builders {
    /// Builders sized for `rows` rows of `id_bytes` bytes per string column: a batch then costs
    /// one allocation per buffer instead of a series of doublings.
    pub(crate) fn with_capacity(rows: usize, id_bytes: usize) -> Self {
        let ts = || TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
        Builders {
            index: UInt32Builder::with_capacity(rows),
            kind: UInt8Builder::with_capacity(rows),
            event_id: StringBuilder::with_capacity(rows, id_bytes),
            location: StringBuilder::with_capacity(rows, id_bytes),
            sku: StringBuilder::with_capacity(rows, id_bytes),
            shipment_id: StringBuilder::with_capacity(rows, id_bytes / 4),
            qty: Float64Builder::with_capacity(rows),
            event_time: ts(),
            eta: ts(),
            in_stock: BooleanBuilder::with_capacity(rows),
            sub: UInt8Builder::with_capacity(rows),
        }
    }

    pub(crate) fn push(&mut self, index: u32, e: &ValidEvent<'_>) {
        self.index.append_value(index);
        self.kind.append_value(e.kind as u8);
        self.event_id.append_value(e.event_id);
        self.location.append_value(e.location);
        self.sku.append_value(e.sku);
        self.shipment_id.append_option(e.shipment_id);
        match e.kind {
            EventType::Availability => self.qty.append_null(),
            _ => self.qty.append_value(e.qty),
        }
        self.event_time.append_value(e.event_time_ms);
        self.eta.append_option(e.eta_ms);
        self.in_stock.append_option(e.in_stock);
        self.sub.append_option(e.sub);
    }

    pub(crate) fn finish(&mut self, schema: &SchemaRef) -> RecordBatch {
        let rows = arrow::array::ArrayBuilder::len(&self.index);
        let id_bytes = self
            .event_id
            .values_slice()
            .len()
            .max(self.location.values_slice().len());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.index.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.location.finish()),
            Arc::new(self.sku.finish()),
            Arc::new(self.shipment_id.finish()),
            Arc::new(self.qty.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.eta.finish()),
            Arc::new(self.in_stock.finish()),
            Arc::new(self.sub.finish()),
        ];
        // The next batch is likely the same size as this one.
        *self = Builders::with_capacity(rows.max(16), id_bytes.max(256));
        RecordBatch::try_new(schema.clone(), cols)
            .expect("builders match decoded_schema by construction")
    }
}

impl Decoder {
    /// A decoder with the given limits and key policy.
    pub fn new(limits: DecodeLimits, policy: KeyPolicy) -> Self {
        Decoder {
            limits,
            policy,
            stats: DecodeStats::default(),
            cursor: FieldCursor::new(None),
            b: Builders::with_capacity(1024, 16 * 1024),
            schema: decoded_schema(),
        }
    }

    /// Lifetime counters.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Decodes a batch. `now_ms` is the processing clock for the future/age checks. Each
    /// rejected message is appended to `rejects` with its index in `msgs`.
    pub fn decode<'m>(
        &mut self,
        msgs: impl IntoIterator<Item = MessageRef<'m>>,
        now_ms: i64,
        rejects: &mut Vec<Rejection>,
    ) -> DecodedBatch {
        for (i, m) in msgs.into_iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            self.stats.messages += 1;
            let b = &mut self.b;
            let res = with_valid(
                &self.limits,
                self.policy,
                &self.cursor,
                &mut self.stats,
                m,
                now_ms,
                |ev| b.push(index, ev),
            );
            if let Err((reason, detail)) = res {
                rejects.push(Rejection {
                    index,
                    reason,
                    detail,
                });
            }
        }
        DecodedBatch {
            batch: self.b.finish(&self.schema),
        }
    }

    /// Validates one message and hands the borrowed event to `f` (tests, tools).
    pub fn check<R>(
        &mut self,
        m: MessageRef<'_>,
        now_ms: i64,
        f: impl FnOnce(&ValidEvent<'_>) -> R,
    ) -> Result<R, (RejectReason, String)> {
        self.stats.messages += 1;
        with_valid(
            &self.limits,
            self.policy,
            &self.cursor,
            &mut self.stats,
            m,
            now_ms,
            f,
        )
    }
}

/// Size check, UTF-8 check, parse, field validation, key check; then `f` on the event.
fn with_valid<R>(
    limits: &DecodeLimits,
    policy: KeyPolicy,
    cursor: &FieldCursor,
    stats: &mut DecodeStats,
    m: MessageRef<'_>,
    now_ms: i64,
    f: impl FnOnce(&ValidEvent<'_>) -> R,
) -> Result<R, (RejectReason, String)> {
    let v = m.value;
    if v.len() > limits.max_payload_bytes {
        return Err((
            RejectReason::TooLarge,
            format!(
                "payload is {} bytes, limit is {}",
                v.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    if v.is_empty() {
        return Err((RejectReason::InvalidJson, "empty payload".into()));
    }
    let text = std::str::from_utf8(v).map_err(|e| {
        (
            RejectReason::InvalidJson,
            format!("not valid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if text.starts_with('\u{feff}') {
        return Err((
            RejectReason::InvalidJson,
            "payload starts with a byte order mark".into(),
        ));
    }
    let mut raw = RawEvent::default();
    raw::parse(text, cursor, &mut raw).map_err(|e| classify(&e, cursor.get()))?;
    stats.unknown_fields += u64::from(raw.unknown_fields);
    let ev = check_fields(&raw, limits, now_ms)?;
    check_key(policy, m.key, ev.location, ev.sku)?;
    stats.valid += 1;
    Ok(f(&ev))
}

fn classify(e: &serde_json::Error, field: Option<&'static str>) -> (RejectReason, String) {
    use serde_json::error::Category;
    let msg = e.to_string();
    let reason = match e.classify() {
        Category::Eof => RejectReason::InvalidJson,
        Category::Data => RejectReason::SchemaViolation,
        Category::Syntax if field.is_some() && msg.starts_with("number out of range") => {
            RejectReason::InvalidValue
        }
        Category::Syntax | Category::Io => RejectReason::InvalidJson,
    };

    let detail = match (e.classify(), field) {
        (Category::Eof, _) => format!("truncated JSON: {msg}"),
        (_, Some(f)) => format!("field `{f}`: {msg}"),
        (_, None) => msg,
    };
    (reason, detail)
}

fn required<'a>(
    v: &'a Option<std::borrow::Cow<'_, str>>,
    name: &'static str,
    nulls: u32,
) -> Result<&'a str, (RejectReason, String)> {
    match v {
        Some(s) => Ok(s.as_ref()),
        None if nulls & field_bit(name) != 0 => Err((
            RejectReason::SchemaViolation,
            format!("field `{name}` is null"),
        )),
        None => Err((
            RejectReason::SchemaViolation,
            format!("missing field `{name}`"),
        )),
    }
}

fn check_id<'a>(name: &'static str, s: &'a str) -> Result<&'a str, (RejectReason, String)> {
    if s.is_empty() {
        return Err((RejectReason::InvalidValue, format!("`{name}` is empty")));
    }
    if s.len() > MAX_ID_BYTES {
        return Err((
            RejectReason::InvalidValue,
            format!("`{name}` is {} bytes, limit is {MAX_ID_BYTES}", s.len()),
        ));
    }
    // Fast path: plain printable ASCII without the separator needs no per-char decoding.
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != KEY_SEPARATOR)
    {
        return Ok(s);
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err((
            RejectReason::InvalidValue,
            format!("`{name}` contains control character U+{:04X}", c as u32),
        ));
    }
    if s.as_bytes().contains(&KEY_SEPARATOR) {
        return Err((
            RejectReason::InvalidValue,
            format!("`{name}` contains the key separator `|`"),
        ));
    }
    Ok(s)
}

/// Parses an RFC 3339 timestamp into ms since the Unix epoch (sub-millisecond digits are
/// truncated, as chrono's `timestamp_millis` does).
pub fn parse_time(name: &'static str, s: &str) -> Result<i64, (RejectReason, String)> {
    if let Some(ms) = parse_utc_fast(s.as_bytes()) {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            (
                RejectReason::InvalidValue,
                format!("`{name}` is not RFC 3339 ({e}): {:?}", clip(s)),
            )
        })
}

/// The common form `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, parsed without chrono; `None` for
/// anything else (offsets, leap seconds, lowercase, out-of-range fields), which chrono handles.
fn parse_utc_fast(b: &[u8]) -> Option<i64> {
    let n = b.len();
    if !(20..=30).contains(&n) || b[n - 1] != b'Z' {
        return None;
    }
    // Digit values, each checked below (a non-digit wraps to 10 or more): straight-line code
    // for the fixed fields, no loop or early exit per digit.
    let d = |i: usize| i64::from(b[i].wrapping_sub(b'0'));
    const FIXED_DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if FIXED_DIGITS.iter().fold(0, |m, &i| m.max(d(i))) > 9 {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let two = |i: usize| d(i) * 10 + d(i + 1);
    let (y, mo, da) = (two(0) * 100 + two(2), two(5), two(8));
    let (h, mi, se) = (two(11), two(14), two(17));
    let mut ms = 0;
    if n > 20 {
        // ".fraction" between the seconds and the Z: 1 to 9 digits.
        if b[19] != b'.' || n < 22 {
            return None;
        }
        let digits = n - 21;
        let frac =
            (20..20 + digits).try_fold(0i64, |acc, i| (d(i) <= 9).then(|| acc * 10 + d(i)))?;
        ms = match digits {
            1 => frac * 100,
            2 => frac * 10,
            _ => frac / 10i64.pow(digits as u32 - 3),
        };
    } else if b[19] != b'Z' {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || da < 1 || da > mdays[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000 + ms)
}

/// `qty`, present and not null.
fn present_qty(q: Option<f64>, nulls: u32) -> Result<f64, (RejectReason, String)> {
    match q {
        Some(q) => Ok(q),
        None if nulls & field_bit("qty") != 0 => {
            Err((RejectReason::SchemaViolation, "field `qty` is null".into()))
        }
        None => Err((RejectReason::SchemaViolation, "missing field `qty`".into())),
    }
}

fn check_qty(q: Option<f64>, nulls: u32) -> Result<f64, (RejectReason, String)> {
    let q = present_qty(q, nulls)?;
    if !q.is_finite() || q <= 0.0 {
        return Err((
            RejectReason::InvalidValue,
            format!("`qty` must be finite and > 0, got {q}"),
        ));
    }
    Ok(q)
}

fn check_fields<'a>(
    r: &'a RawEvent<'_>,
    lim: &DecodeLimits,
    now_ms: i64,
) -> Result<ValidEvent<'a>, (RejectReason, String)> {
    let type_name = required(&r.kind, "type", r.nulls)?;
    let kind = EventType::parse(type_name).ok_or_else(|| {
        (
            RejectReason::UnknownType,
            format!("unknown event type {:?}", clip(type_name)),
        )
    })?;
    let event_id = check_id("event_id", required(&r.event_id, "event_id", r.nulls)?)?;
    let location = check_id("location", required(&r.location, "location", r.nulls)?)?;
    let sku = check_id("sku", required(&r.sku, "sku", r.nulls)?)?;
    let event_time_ms = parse_time(
        "event_time",
        required(&r.event_time, "event_time", r.nulls)?,
    )?;
    if event_time_ms > now_ms.saturating_add(lim.future_skew_ms) {
        return Err((
            RejectReason::FutureEvent,
            format!(
                "`event_time` {} is more than {} s ahead of the processing clock",
                r.event_time.as_deref().unwrap_or_default(),
                lim.future_skew_ms / 1000
            ),
        ));
    }
    if event_time_ms < now_ms.saturating_sub(lim.max_event_age_ms) {
        return Err((
            RejectReason::AncientEvent,
            format!(
                "`event_time` {} is older than the maximum event age of {} days",
                r.event_time.as_deref().unwrap_or_default(),
                lim.max_event_age_ms / 86_400_000
            ),
        ));
    }
    let mut ev = ValidEvent {
        kind,
        event_id,
        location,
        sku,
        shipment_id: None,
        qty: 0.0,
        event_time_ms,
        eta_ms: None,
        in_stock: None,
        sub: None,
    };
    match kind {
        EventType::Sale => ev.qty = check_qty(r.qty, r.nulls)?,
        EventType::Shipment => {
            ev.qty = check_qty(r.qty, r.nulls)?;
            let status = match r.status.as_deref() {
                None => ShipmentStatus::Open,
                Some(v) => ShipmentStatus::parse(v).ok_or_else(|| unknown("status", v))?,
            };
            ev.sub = Some(status as u8);
            ev.shipment_id = Some(check_id(
                "shipment_id",
                required(&r.shipment_id, "shipment_id", r.nulls)?,
            )?);
            let eta = parse_time("eta", required(&r.eta, "eta", r.nulls)?)?;
            if eta < event_time_ms {
                return Err((
                    RejectReason::InvalidValue,
                    "`eta` is before `event_time`".into(),
                ));
            }
            if eta - event_time_ms > lim.max_eta_ahead_ms {
                return Err((
                    RejectReason::InvalidValue,
                    format!(
                        "`eta` is more than {} days after `event_time`",
                        lim.max_eta_ahead_ms / 86_400_000
                    ),
                ));
            }
            ev.eta_ms = Some(eta);
        }
        EventType::Receipt => {
            ev.qty = check_qty(r.qty, r.nulls)?;
            if let Some(s) = r.shipment_id.as_deref() {
                ev.shipment_id = Some(check_id("shipment_id", s)?);
            }
        }
        EventType::Availability => {
            ev.in_stock = Some(match r.in_stock {
                Some(b) => b,
                None if r.nulls & field_bit("in_stock") != 0 => {
                    return Err((
                        RejectReason::SchemaViolation,
                        "field `in_stock` is null".into(),
                    ))
                }
                None => {
                    return Err((
                        RejectReason::SchemaViolation,
                        "missing field `in_stock`".into(),
                    ))
                }
            });
        }
        EventType::InventoryCount => {
            let q = present_qty(r.qty, r.nulls)?;
            if !q.is_finite() || q < 0.0 {
                return Err((
                    RejectReason::InvalidValue,
                    format!("`qty` of a count must be finite and >= 0, got {q}"),
                ));
            }
            ev.qty = q;
            let v = required(&r.source, "source", r.nulls)?;
            ev.sub = Some(CountSource::parse(v).ok_or_else(|| unknown("source", v))? as u8);
        }
        EventType::Adjustment => {
            let q = present_qty(r.qty, r.nulls)?;
            if !q.is_finite() || q == 0.0 {
                return Err((
                    RejectReason::InvalidValue,
                    format!("`qty` of an adjustment must be finite and != 0, got {q}"),
                ));
            }
            ev.qty = q;
            let v = required(&r.reason, "reason", r.nulls)?;
            ev.sub = Some(AdjustmentReason::parse(v).ok_or_else(|| unknown("reason", v))? as u8);
            if let Some(s) = r.reference_id.as_deref() {
                check_id("reference_id", s)?;
            }
        }
    }
    Ok(ev)
}

/// The rejection of a bounded-set field with a value outside its set.
fn unknown(name: &'static str, v: &str) -> (RejectReason, String) {
    (
        RejectReason::UnknownValue,
        format!("unknown `{name}` {:?}", clip(v)),
    )
}

fn check_key(
    policy: KeyPolicy,
    key: Option<&[u8]>,
    location: &str,
    sku: &str,
) -> Result<(), (RejectReason, String)> {
    let key = match (policy, key) {
        (KeyPolicy::Derive, None) => return Ok(()),
        (KeyPolicy::Require, None) => {
            return Err((RejectReason::Miskeyed, "message has no key".into()))
        }
        (_, Some(k)) => k,
    };
    let expected_len = location.len() + 1 + sku.len();
    let ok = key.len() == expected_len
        && key.starts_with(location.as_bytes())
        && key[location.len()] == KEY_SEPARATOR
        && key.ends_with(sku.as_bytes());
    if ok {
        Ok(())
    } else {
        Err((
            RejectReason::Miskeyed,
            format!(
                "message key {:?} does not match body `{location}|{sku}`",
                clip(&String::from_utf8_lossy(key))
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
