//! The state changelog codec: one record per changed key, one record for the shard.
//!
//! A key's record holds everything of the shard that belongs to that key — its state row, its open shipments, the event ids remembered for it, its events waiting for
//! the watermark and its label snapshots — so that the latest record of every key, plus the
//! latest shard record (clocks, model, quality, counters), rebuild the shard exactly. Entries of
//! the shard-wide FIFOs (remembered ids, label snapshots) carry their absolute position, which
//! restores their order across keys written at different times.
//!
//! The shard-wide FIFOs' entries (remembered ids, label snapshots) never change once made, and
//! a key keeps dozens of them: they are *journaled*, written once in journal records of many
//! entries (message key `#seen/{first position}` or `#labels/{first position}`, a [`Journal`])
//! and deleted (a tombstone) once every entry of a record has left its FIFO, instead of being
//! written again with every change of their key. (Written inside the key records, as versions
//! 1–3 did, they were two thirds of the changelog's bytes in the load run: ~830 of ~1 260
//! bytes a key record.) The shard record names each FIFO's first live position, so a restore
//! knows which entries it must find.
//!
//! Key records are `[CHANGELOG_VERSION]` followed by the [`KeyRecord`] in postcard (a compact,
//! stable serde format: ~300 bytes for a key with no backlog); journal records the same with a
//! [`Journal`]; shard records are `[CHANGELOG_VERSION]` followed by JSON (small, and readable
//! with any Kafka tool). How the records are framed, stamped and chosen on restore is the
//! service's business ([`crate::service::changelog`]); this module only maps a shard's state to
//! records and back.

use serde::{Deserialize, Serialize};

use super::columns::{KeyRow, Rows, DAYS, HOURS};
use super::order::{Clocks, Groups, PendingEvent};
use super::shard::{SavedModel, ShardCounters, ShardState, StateConfig};
use crate::event::EventType;
use crate::model::features::NF;
use crate::model::labels::{RollingQuality, Snapshot};

/// Version byte that starts every changelog value. 2 (contract v2): key records carry the
/// count discrepancy, closed shipments and the pending events' `sub` code; shard records count
/// six event types. 3: label snapshots carry the margin they were scored with (the calibration
/// layer learns from it, `crate::model::calibration`). 4: remembered ids and label snapshots
/// are journaled ([`Journal`]); key records keep the version 3 layout with those two lists
/// empty. Versions 1 to 3 are still read (an upgrade restores from them; version 1 and 2
/// snapshots' margins are unknown), and the first batch after such a restore journals every
/// live entry.
pub const CHANGELOG_VERSION: u8 = 4;

/// The previous versions, still read.
const CHANGELOG_V1: u8 = 1;
const CHANGELOG_V2: u8 = 2;
const CHANGELOG_V3: u8 = 3;

/// Message-key prefix of the remembered ids' journal records: `#seen/{first position}`.
pub const SEEN_JOURNAL: &str = "#seen/";
/// Message-key prefix of the label snapshots' journal records: `#labels/{first position}`.
pub const LABEL_JOURNAL: &str = "#labels/";
/// Most remembered ids in one journal record (~20 bytes each, plus their keys).
const JOURNAL_SEEN_MAX: usize = 4096;
/// Most label snapshots in one journal record (~190 bytes each: ~200 KB a record, well
/// under the brokers' default 1 MB).
const JOURNAL_LABELS_MAX: usize = 1024;

/// Errors decoding changelog records or rebuilding a shard from them.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    /// The value is not in this build's layout.
    #[error("changelog record layout: {0}")]
    Layout(String),
    /// The model state was refused.
    #[error("model: {0}")]
    Model(#[from] crate::model::ModelError),
    /// Records the shard record counts on are missing (a truncated or deleted changelog).
    #[error("incomplete changelog: {0}")]
    Incomplete(String),
}

fn layout(m: impl Into<String>) -> ChangelogError {
    ChangelogError::Layout(m.into())
}

/// An event waiting for the watermark (a [`PendingEvent`] without its row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingRecord {
    time_ms: i64,
    id_hash: u64,
    kind: u8,
    in_stock: bool,
    qty: f64,
    eta_ms: i64,
    shipment_hash: u64,
    source: u64,
    sub: u8,
}

/// A [`PendingRecord`] of changelog version 1 (no `sub`: v1 types only, whose code is 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct PendingRecordV1 {
    time_ms: i64,
    id_hash: u64,
    kind: u8,
    in_stock: bool,
    qty: f64,
    eta_ms: i64,
    shipment_hash: u64,
    source: u64,
}

/// A label snapshot with its absolute FIFO position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRecord {
    position: u64,
    time_ms: i64,
    risk: f32,
    x: Vec<f32>,
    margin: f32,
}

/// A [`LabelRecord`] of changelog versions 1 and 2 (no margin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LabelRecordV2 {
    position: u64,
    time_ms: i64,
    risk: f32,
    x: Vec<f32>,
}

impl From<LabelRecordV2> for LabelRecord {
    fn from(l: LabelRecordV2) -> Self {
        LabelRecord {
            position: l.position,
            time_ms: l.time_ms,
            risk: l.risk,
            x: l.x,
            margin: f32::NAN,
        }
    }
}

/// Everything of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Store or DC.
    pub location: String,
    /// Stock keeping unit.
    pub sku: String,
    on_hand: f64,
    in_transit: f64,
    flags: u8,
    last_stockout_ms: i64,
    last_alert_ms: i64,
    first_hour: i32,
    ring_hour: i32,
    last_receipt_hour: i32,
    last_sample_hour: i32,
    hourly: Vec<f32>,
    daily: Vec<f32>,
    oos_hours: u32,
    oos_days: u32,
    risk: f32,
    alert_risk: f32,
    /// Shipments in ETA order: (id hash, qty, eta ms, closed).
    inbound: Vec<(u64, f64, i64, bool)>,
    /// Remembered ids: (absolute position, event time ms, id hash).
    seen: Vec<(u64, i64, u64)>,
    pending: Vec<PendingRecord>,
    labels: Vec<LabelRecord>,
    count_gap: i16,
}

/// A key's record borrowed from the shard, as [`take_changes`] hands it out: it encodes to the
/// very bytes of the [`KeyRecord`] it decodes as (the same fields in the same order; postcard
/// writes a slice as a `Vec` and a `&str` as a `String`), without copying the key's state.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KeyRecordRef<'a> {
    location: &'a str,
    sku: &'a str,
    on_hand: f64,
    in_transit: f64,
    flags: u8,
    last_stockout_ms: i64,
    last_alert_ms: i64,
    first_hour: i32,
    ring_hour: i32,
    last_receipt_hour: i32,
    last_sample_hour: i32,
    hourly: &'a [f32],
    daily: &'a [f32],
    oos_hours: u32,
    oos_days: u32,
    risk: f32,
    alert_risk: f32,
    inbound: &'a [(u64, f64, i64, bool)],
    seen: &'a [(u64, i64, u64)],
    pending: &'a [PendingRecord],
    labels: &'a [LabelRef<'a>],
    count_gap: i16,
}

/// A [`LabelRecord`] borrowed from the shard's label queue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LabelRef<'a> {
    position: u64,
    time_ms: i64,
    risk: f32,
    x: &'a [f32],
    margin: f32,
}

impl KeyRecordRef<'_> {
    /// Appends the record's changelog value (version byte, then postcard) to `out`, as
    /// [`KeyRecord::encode`] does.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_versioned(self, out);
    }

    /// The owned record (what a decode of [`KeyRecordRef::encode`]'s bytes gives).
    pub fn to_record(&self) -> KeyRecord {
        KeyRecord {
            location: self.location.to_owned(),
            sku: self.sku.to_owned(),
            on_hand: self.on_hand,
            in_transit: self.in_transit,
            flags: self.flags,
            last_stockout_ms: self.last_stockout_ms,
            last_alert_ms: self.last_alert_ms,
            first_hour: self.first_hour,
            ring_hour: self.ring_hour,
            last_receipt_hour: self.last_receipt_hour,
            last_sample_hour: self.last_sample_hour,
            hourly: self.hourly.to_vec(),
            daily: self.daily.to_vec(),
            oos_hours: self.oos_hours,
            oos_days: self.oos_days,
            risk: self.risk,
            alert_risk: self.alert_risk,
            inbound: self.inbound.to_vec(),
            seen: self.seen.to_vec(),
            pending: self.pending.to_vec(),
            labels: self
                .labels
                .iter()
                .map(|l| LabelRecord {
                    position: l.position,
                    time_ms: l.time_ms,
                    risk: l.risk,
                    x: l.x.to_vec(),
                    margin: l.margin,
                })
                .collect(),
            count_gap: self.count_gap,
        }
    }
}

/// A journal record: consecutive entries of one of the shard-wide FIFOs, positions
/// `first..first + len` (remembered ids or label snapshots: one of the two lists is empty),
/// written once (see the module documentation). Entries name their key by its index in
/// `keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Position of the first entry.
    pub first: u64,
    /// `(location, sku)` of the keys the entries belong to.
    keys: Vec<(String, String)>,
    /// Remembered ids: (key index, event time ms, id hash).
    seen: Vec<(u32, i64, u64)>,
    /// Label snapshots.
    labels: Vec<JournalLabel>,
}

/// A label snapshot in a [`Journal`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JournalLabel {
    key: u32,
    time_ms: i64,
    risk: f32,
    x: Vec<f32>,
    margin: f32,
}

/// A [`Journal`] borrowed from the shard: encodes to the very bytes of the owned one.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct JournalRef<'a> {
    first: u64,
    keys: &'a [(&'a str, &'a str)],
    seen: &'a [(u32, i64, u64)],
    labels: &'a [JournalLabelRef<'a>],
}

/// A [`JournalLabel`] borrowed from the shard's label queue.
#[derive(Debug, Clone, Copy, Serialize)]
struct JournalLabelRef<'a> {
    key: u32,
    time_ms: i64,
    risk: f32,
    x: &'a [f32],
    margin: f32,
}

impl JournalRef<'_> {
    /// Appends the record's changelog value (version byte, then postcard) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_versioned(self, out);
    }

    /// The owned record (what a decode of [`JournalRef::encode`]'s bytes gives).
    pub fn to_record(&self) -> Journal {
        Journal {
            first: self.first,
            keys: self
                .keys
                .iter()
                .map(|&(l, s)| (l.to_owned(), s.to_owned()))
                .collect(),
            seen: self.seen.to_vec(),
            labels: self
                .labels
                .iter()
                .map(|l| JournalLabel {
                    key: l.key,
                    time_ms: l.time_ms,
                    risk: l.risk,
                    x: l.x.to_vec(),
                    margin: l.margin,
                })
                .collect(),
        }
    }
}

impl Journal {
    /// `[CHANGELOG_VERSION]` + postcard, appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_versioned(self, out);
    }

    /// Reads a value written by [`Journal::encode`].
    pub fn decode(value: &[u8]) -> Result<Self, ChangelogError> {
        match value.split_first() {
            Some((&CHANGELOG_VERSION, body)) => {
                postcard::from_bytes(body).map_err(|e| layout(format!("journal record: {e}")))
            }
            Some((v, _)) => Err(layout(format!(
                "journal record of version {v} (this build reads {CHANGELOG_VERSION})"
            ))),
            None => Err(layout("empty journal record")),
        }
    }

    /// Entries held (remembered ids or label snapshots).
    pub fn len(&self) -> usize {
        self.seen.len() + self.labels.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether its entries are label snapshots (else remembered ids).
    pub fn is_labels(&self) -> bool {
        !self.labels.is_empty()
    }
}

/// What [`take_changes`] hands out, each under a message key.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A changed key's record (message key `"{location}|{sku}"`).
    Key(&'a KeyRecordRef<'a>),
    /// New entries of a shard-wide FIFO (message key [`SEEN_JOURNAL`] or [`LABEL_JOURNAL`] and
    /// its first position).
    Journal(&'a JournalRef<'a>),
    /// A journal record whose entries all left the shard: to delete (a tombstone).
    Gone,
}

impl Change<'_> {
    /// Appends the change's value to `out`; `false` for [`Change::Gone`] (no value: a
    /// tombstone).
    pub fn encode(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Change::Key(r) => r.encode(out),
            Change::Journal(j) => j.encode(out),
            Change::Gone => return false,
        }
        true
    }
}

/// Appends a key record's changelog value to `out`: the version byte, then postcard.
fn encode_versioned(record: &impl Serialize, out: &mut Vec<u8>) {
    out.push(CHANGELOG_VERSION);
    // Serialising plain data into a Vec cannot fail.
    if let Ok(v) = postcard::to_extend(record, std::mem::take(out)) {
        *out = v;
    }
}

/// A [`KeyRecord`] of changelog version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyRecordV1 {
    location: String,
    sku: String,
    on_hand: f64,
    in_transit: f64,
    flags: u8,
    last_stockout_ms: i64,
    last_alert_ms: i64,
    first_hour: i32,
    ring_hour: i32,
    last_receipt_hour: i32,
    last_sample_hour: i32,
    hourly: Vec<f32>,
    daily: Vec<f32>,
    oos_hours: u32,
    oos_days: u32,
    risk: f32,
    alert_risk: f32,
    inbound: Vec<(u64, f64, i64)>,
    seen: Vec<(u64, i64, u64)>,
    pending: Vec<PendingRecordV1>,
    labels: Vec<LabelRecordV2>,
}

/// A [`KeyRecord`] of changelog version 2 (its label snapshots without margins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyRecordV2 {
    location: String,
    sku: String,
    on_hand: f64,
    in_transit: f64,
    flags: u8,
    last_stockout_ms: i64,
    last_alert_ms: i64,
    first_hour: i32,
    ring_hour: i32,
    last_receipt_hour: i32,
    last_sample_hour: i32,
    hourly: Vec<f32>,
    daily: Vec<f32>,
    oos_hours: u32,
    oos_days: u32,
    risk: f32,
    alert_risk: f32,
    inbound: Vec<(u64, f64, i64, bool)>,
    seen: Vec<(u64, i64, u64)>,
    pending: Vec<PendingRecord>,
    labels: Vec<LabelRecordV2>,
    count_gap: i16,
}

impl From<KeyRecordV2> for KeyRecord {
    fn from(k: KeyRecordV2) -> Self {
        KeyRecord {
            location: k.location,
            sku: k.sku,
            on_hand: k.on_hand,
            in_transit: k.in_transit,
            flags: k.flags,
            last_stockout_ms: k.last_stockout_ms,
            last_alert_ms: k.last_alert_ms,
            first_hour: k.first_hour,
            ring_hour: k.ring_hour,
            last_receipt_hour: k.last_receipt_hour,
            last_sample_hour: k.last_sample_hour,
            hourly: k.hourly,
            daily: k.daily,
            oos_hours: k.oos_hours,
            oos_days: k.oos_days,
            risk: k.risk,
            alert_risk: k.alert_risk,
            inbound: k.inbound,
            seen: k.seen,
            pending: k.pending,
            labels: k.labels.into_iter().map(LabelRecord::from).collect(),
            count_gap: k.count_gap,
        }
    }
}

impl From<KeyRecordV1> for KeyRecord {
    fn from(k: KeyRecordV1) -> Self {
        KeyRecord {
            location: k.location,
            sku: k.sku,
            on_hand: k.on_hand,
            in_transit: k.in_transit,
            flags: k.flags,
            last_stockout_ms: k.last_stockout_ms,
            last_alert_ms: k.last_alert_ms,
            first_hour: k.first_hour,
            ring_hour: k.ring_hour,
            last_receipt_hour: k.last_receipt_hour,
            last_sample_hour: k.last_sample_hour,
            hourly: k.hourly,
            daily: k.daily,
            oos_hours: k.oos_hours,
            oos_days: k.oos_days,
            risk: k.risk,
            alert_risk: k.alert_risk,
            inbound: k
                .inbound
                .into_iter()
                .map(|(h, q, e)| (h, q, e, false))
                .collect(),
            seen: k.seen,
            pending: k
                .pending
                .into_iter()
                .map(|e| PendingRecord {
                    time_ms: e.time_ms,
                    id_hash: e.id_hash,
                    kind: e.kind,
                    in_stock: e.in_stock,
                    qty: e.qty,
                    eta_ms: e.eta_ms,
                    shipment_hash: e.shipment_hash,
                    source: e.source,
                    sub: 0,
                })
                .collect(),
            labels: k.labels.into_iter().map(LabelRecord::from).collect(),
            count_gap: super::columns::NO_GAP,
        }
    }
}

/// The shard-level part of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Keys in the shard when written (a restore that finds another number is refused).
    pub keys: u64,
    clocks: Clocks,
    model: serde_json::Value,
    quality: RollingQuality,
    counters: ShardCounters,
    labels_dropped: u64,
    labels_pushed: u64,
    inbound_dropped: u64,
    /// The artifact the model started from (absent: the prior, or a record written before
    /// origins were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_origin: Option<String>,
    /// The challenger (`model.challenger`; absent without one, and in records written before
    /// challengers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    challenger: Option<ChallengerRecord>,
    /// The locations' raise budgets (absent before they existed: none).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    budgets: crate::alert::RaiseBudgets,
    /// The first live position of each journaled FIFO (absent before version 4: the entries
    /// are in the key records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal: Option<JournalHeads>,
}

/// The first live position of the journaled FIFOs: a restore must find every entry from there
/// to the FIFO's end (`Clocks::seen_pushed`, `labels_pushed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct JournalHeads {
    seen: u64,
    labels: u64,
}

/// The challenger's part of a [`ShardRecord`] (also in snapshots' metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengerRecord {
    /// The artifact it started from.
    pub origin: String,
    /// Its state ([`crate::model::RiskModel::export`]).
    pub model: serde_json::Value,
    /// Its rolling quality.
    pub quality: RollingQuality,
}

impl ChallengerRecord {
    /// The challenger of `s`, if any.
    pub fn of(s: &ShardState) -> Option<Self> {
        s.challenger.as_ref().map(|c| ChallengerRecord {
            origin: c.origin.clone(),
            model: c.model.export(),
            quality: c.quality,
        })
    }

    /// As a [`SavedModel`].
    pub fn saved(&self) -> SavedModel<'_> {
        SavedModel {
            state: &self.model,
            quality: self.quality,
            origin: Some(&self.origin),
        }
    }
}

impl KeyRecord {
    /// How many open shipments, remembered ids, pending events and label snapshots it holds.
    pub fn part_counts(&self) -> [usize; 4] {
        [
            self.inbound.len(),
            self.seen.len(),
            self.pending.len(),
            self.labels.len(),
        ]
    }

    /// `[CHANGELOG_VERSION]` + postcard, appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_versioned(self, out);
    }

    /// Reads a value written by [`KeyRecord::encode`] (or by a version 1 or 2 build).
    pub fn decode(value: &[u8]) -> Result<Self, ChangelogError> {
        let err = |e: postcard::Error| layout(format!("key record: {e}"));
        match value.split_first() {
            Some((&CHANGELOG_V1, body)) => postcard::from_bytes::<KeyRecordV1>(body)
                .map(KeyRecord::from)
                .map_err(err),
            Some((&CHANGELOG_V2, body)) => postcard::from_bytes::<KeyRecordV2>(body)
                .map(KeyRecord::from)
                .map_err(err),
            _ => postcard::from_bytes(versioned(value)?).map_err(err),
        }
    }
}

impl ShardRecord {
    /// `[CHANGELOG_VERSION]` + JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CHANGELOG_VERSION];
        // Serialising plain data (finite or not: serde_json writes non-finite floats as null,
        // and the model keeps none) into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, self);
        out
    }

    /// Reads a value written by [`ShardRecord::encode`] (or by a version 1 build: its counters
    /// lack the v2 ones, which start at 0; a version 2 shard record is this one's).
    pub fn decode(value: &[u8]) -> Result<Self, ChangelogError> {
        let body = match value.split_first() {
            Some((&CHANGELOG_V1 | &CHANGELOG_V2, body)) => body,
            _ => versioned(value)?,
        };
        serde_json::from_slice(body).map_err(|e| layout(format!("shard record: {e}")))
    }
}

fn versioned(value: &[u8]) -> Result<&[u8], ChangelogError> {
    match value.split_first() {
        Some((&CHANGELOG_VERSION | &CHANGELOG_V3, body)) => Ok(body),
        Some((v, _)) => Err(layout(format!(
            "version {v} (this build reads {CHANGELOG_VERSION})"
        ))),
        None => Err(layout("empty value")),
    }
}

/// Key rows changed since the changelog last took them: the engine marks a row whenever it
/// touches anything of that key's record (state, reorder buffer), and [`take_changes`] writes
/// and forgets them. Off (marks nothing) until [`ChangedKeys::track`]. Also what of the
/// journaled FIFOs was written ([`JournalMarks`]).
#[derive(Debug, Default)]
pub struct ChangedKeys {
    on: bool,
    /// Changed rows, in the order first changed.
    rows: Vec<u32>,
    /// Per row: 0 if unchanged, else its position in `rows` + 1.
    slot: Vec<u32>,
    /// The journal records written.
    journal: JournalMarks,
}

/// What of the journaled FIFOs the changelog holds: the next position to write, and the
/// journal records not deleted yet, `(first, end)`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalMarks {
    seen_written: u64,
    labels_written: u64,
    seen: std::collections::VecDeque<(u64, u64)>,
    labels: std::collections::VecDeque<(u64, u64)>,
}

impl ChangedKeys {
    /// Turns tracking on or off.
    pub fn track(&mut self, on: bool) {
        self.on = on;
    }

    /// What the changelog's journal holds (a restored shard's, from [`restore_shard`]).
    pub fn set_journal(&mut self, marks: JournalMarks) {
        self.journal = marks;
    }

    /// Marks `row` changed (when tracking).
    #[inline]
    pub fn mark(&mut self, row: u32) {
        if !self.on {
            return;
        }
        let r = row as usize;
        if r >= self.slot.len() {
            self.slot.resize(r + 1, 0);
        }
        if self.slot[r] == 0 {
            self.rows.push(row);
            self.slot[r] = self.rows.len() as u32;
        }
    }

    /// Keys changed since the changelog last took them.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no key changed since the changelog last took them.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Forgets the changed rows (after they were written).
    fn clear(&mut self) {
        for &r in &self.rows {
            self.slot[r as usize] = 0;
        }
        self.rows.clear();
    }
}

/// The shard-level record of `s` now.
pub fn shard_record(s: &ShardState) -> ShardRecord {
    ShardRecord {
        keys: s.keys.len() as u64,
        clocks: s.order.clocks(),
        model: s.model.export(),
        quality: s.quality,
        counters: s.counters,
        labels_dropped: s.labels.dropped,
        labels_pushed: s.labels.pushed,
        inbound_dropped: s.inbound.dropped,
        model_origin: s.origin.clone(),
        challenger: ChallengerRecord::of(s),
        budgets: s.budgets.clone(),
        journal: Some(JournalHeads {
            seen: s.order.seen_head(),
            labels: s.labels.head(),
        }),
    }
}

/// Takes the changes of `s` since the last call and calls `emit(message key, change)` for
/// each: the keys marked in `changed`, in the order they first changed ([`Change::Key`]); then
/// the journaled FIFOs' new entries ([`Change::Journal`]) and the journal records whose
/// entries all left the shard ([`Change::Gone`]). One pass over the reorder buffer collects
/// the changed keys' waiting events; the journals read only the FIFOs' new ends.
pub fn take_changes(
    s: &ShardState,
    changed: &mut ChangedKeys,
    mut emit: impl FnMut(&str, Change<'_>),
) {
    take_keys(s, changed, &mut emit);
    take_journal(s, &mut changed.journal, &mut emit);
}

fn take_keys(s: &ShardState, changed: &mut ChangedKeys, emit: &mut impl FnMut(&str, Change<'_>)) {
    let n = changed.rows.len();
    if n == 0 {
        return;
    }
    let slot = &changed.slot;
    let index = |row: u32| -> Option<usize> {
        match slot.get(row as usize) {
            Some(&i) if i > 0 => Some(i as usize - 1),
            _ => None,
        }
    };
    // Each entry grouped by its key's index, in one buffer (a few allocations per call, none
    // per key: at tens of thousands of changed keys a second, a record of owned vectors per
    // key cost the service a fifth of its time in the allocator).
    let mut pending = Grouped::new(
        n,
        s.order.pending_events().filter_map(|e| {
            let record = PendingRecord {
                time_ms: e.time_ms,
                id_hash: e.id_hash,
                kind: e.kind as u8,
                in_stock: e.in_stock,
                qty: e.qty,
                eta_ms: e.eta_ms,
                shipment_hash: e.shipment_hash,
                source: e.source,
                sub: e.sub,
            };
            Some((index(e.row)?, record))
        }),
    );
    let mut inbound = Vec::new();
    let mut key = String::new();
    for (i, &row) in changed.rows.iter().enumerate() {
        let c = s.rows.get(row as usize);
        let p = pending.get_mut(i);
        p.sort_by_key(|e| (e.time_ms, e.id_hash, e.source));
        inbound.clear();
        inbound.extend(
            s.inbound
                .iter_key(c.inbound_head)
                .map(|sh| (sh.id_hash, sh.qty, sh.eta_ms, sh.closed)),
        );
        let (location, sku) = (s.keys.location(row), s.keys.sku(row));
        let rec = KeyRecordRef {
            location,
            sku,
            on_hand: c.on_hand,
            in_transit: c.in_transit,
            flags: c.flags,
            last_stockout_ms: c.last_stockout_ms,
            last_alert_ms: c.last_alert_ms,
            first_hour: c.first_hour,
            ring_hour: c.ring_hour,
            last_receipt_hour: c.last_receipt_hour,
            last_sample_hour: c.last_sample_hour,
            hourly: &c.hourly[..],
            daily: &c.daily[..],
            oos_hours: c.oos_hours,
            oos_days: c.oos_days,
            risk: c.risk,
            alert_risk: c.alert_risk,
            inbound: &inbound,
            // Journaled (see the module documentation).
            seen: &[],
            pending: p,
            labels: &[],
            count_gap: c.count_gap,
        };
        // `event::message_key`, into a reused buffer.
        key.clear();
        key.push_str(location);
        key.push('|');
        key.push_str(sku);
        emit(&key, Change::Key(&rec));
    }
    changed.clear();
}

/// The journal records of the FIFOs' entries pushed since the last call (chunks of at most
/// [`JOURNAL_SEEN_MAX`] / [`JOURNAL_LABELS_MAX`]), then tombstones for the records whose
/// entries have all left.
fn take_journal(s: &ShardState, marks: &mut JournalMarks, emit: &mut impl FnMut(&str, Change<'_>)) {
    let mut name = String::new();
    let mut keys = KeyTable::default();
    // Remembered ids.
    let mut seen = Vec::new();
    let mut entries = s.order.seen_from(marks.seen_written).peekable();
    while let Some(&(first, ..)) = entries.peek() {
        seen.clear();
        keys.clear();
        for (_, t, h, row) in entries.by_ref().take(JOURNAL_SEEN_MAX) {
            seen.push((keys.index(s, row), t, h));
        }
        let j = JournalRef {
            first,
            keys: &keys.keys,
            seen: &seen,
            labels: &[],
        };
        journal_name(&mut name, SEEN_JOURNAL, first);
        emit(&name, Change::Journal(&j));
        marks.seen.push_back((first, first + seen.len() as u64));
    }
    marks.seen_written = s.order.seen_pushed();
    // Label snapshots.
    let mut labels = Vec::new();
    let mut entries = s.labels.positions_from(marks.labels_written).peekable();
    while let Some(&(first, _)) = entries.peek() {
        labels.clear();
        keys.clear();
        for (_, sn) in entries.by_ref().take(JOURNAL_LABELS_MAX) {
            labels.push(JournalLabelRef {
                key: keys.index(s, sn.row),
                time_ms: sn.time_ms,
                risk: sn.risk,
                x: &sn.x[..],
                margin: sn.margin,
            });
        }
        let j = JournalRef {
            first,
            keys: &keys.keys,
            seen: &[],
            labels: &labels,
        };
        journal_name(&mut name, LABEL_JOURNAL, first);
        emit(&name, Change::Journal(&j));
        marks.labels.push_back((first, first + labels.len() as u64));
    }
    marks.labels_written = s.labels.pushed;
    // Records every entry of which has left.
    for (chunks, head, prefix) in [
        (&mut marks.seen, s.order.seen_head(), SEEN_JOURNAL),
        (&mut marks.labels, s.labels.head(), LABEL_JOURNAL),
    ] {
        while let Some(&(first, end)) = chunks.front() {
            if end > head {
                break;
            }
            journal_name(&mut name, prefix, first);
            emit(&name, Change::Gone);
            chunks.pop_front();
        }
    }
}

/// The keys of one journal record: each key once, entries naming it by index.
#[derive(Default)]
struct KeyTable<'a> {
    index: std::collections::HashMap<u32, u32>,
    keys: Vec<(&'a str, &'a str)>,
}

impl<'a> KeyTable<'a> {
    fn clear(&mut self) {
        self.index.clear();
        self.keys.clear();
    }

    /// The index of `row`'s key, added if new.
    fn index(&mut self, s: &'a ShardState, row: u32) -> u32 {
        let keys = &mut self.keys;
        *self.index.entry(row).or_insert_with(|| {
            keys.push(s.keys.parts(row));
            keys.len() as u32 - 1
        })
    }
}

/// `{prefix}{first}` into `out`.
fn journal_name(out: &mut String, prefix: &str, first: u64) {
    use std::fmt::Write;
    out.clear();
    out.push_str(prefix);
    let _ = write!(out, "{first}");
}

/// Items grouped by a key index in `0..n`, each group in the order the items came.
struct Grouped<T> {
    items: Vec<T>,
    /// Group `i` is `items[start[i]..start[i + 1]]`.
    start: Vec<usize>,
}

impl<T: Copy> Grouped<T> {
    fn new(n: usize, entries: impl Iterator<Item = (usize, T)>) -> Self {
        let mut tagged: Vec<(usize, T)> = entries.collect();
        // Stable: a group keeps its items' order.
        tagged.sort_by_key(|&(i, _)| i);
        let mut start = vec![0; n + 1];
        for &(i, _) in &tagged {
            start[i + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        Grouped {
            items: tagged.into_iter().map(|(_, t)| t).collect(),
            start,
        }
    }

    fn get_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.items[self.start[i]..self.start[i + 1]]
    }
}

/// Rebuilds a shard's state from its shard record, the latest record of each of its keys (in
/// any order: rows are assigned in key order, as snapshots do) and its live journal records
/// (any order); also what of the journals the changelog holds, for the next
/// [`take_changes`]. A shard record of version 4 names the first live position of each
/// journaled FIFO: every entry from there to the FIFO's end must be found
/// ([`ChangelogError::Incomplete`] otherwise).
pub fn restore_shard(
    cfg: &StateConfig,
    meta: &ShardRecord,
    mut keys: Vec<KeyRecord>,
    journals: Vec<Journal>,
) -> Result<(ShardState, JournalMarks), ChangelogError> {
    if keys.len() as u64 != meta.keys {
        return Err(layout(format!(
            "the shard record counts {} keys but {} key records were found",
            meta.keys,
            keys.len()
        )));
    }
    keys.sort_by(|a, b| (&a.location, &a.sku).cmp(&(&b.location, &b.sku)));
    let mut s = ShardState::new(cfg);
    s.rows = Rows::default();
    s.rows.reserve_exact(keys.len());
    let mut seen: Vec<(u64, i64, u64, u32)> = Vec::new();
    let mut labels: Vec<(u64, Snapshot)> = Vec::new();
    let mut pending: Vec<PendingEvent> = Vec::new();
    for k in &keys {
        let (row, new) = s.keys.get_or_insert(&k.location, &k.sku);
        if !new {
            return Err(layout(format!("key {}|{} twice", k.location, k.sku)));
        }
        if k.hourly.len() != HOURS || k.daily.len() != DAYS {
            return Err(layout(format!(
                "demand rings of {} and {} buckets (this build keeps {HOURS} and {DAYS})",
                k.hourly.len(),
                k.daily.len()
            )));
        }
        let mut c = KeyRow {
            on_hand: k.on_hand,
            in_transit: k.in_transit,
            flags: k.flags,
            last_stockout_ms: k.last_stockout_ms,
            last_alert_ms: k.last_alert_ms,
            first_hour: k.first_hour,
            ring_hour: k.ring_hour,
            last_receipt_hour: k.last_receipt_hour,
            last_sample_hour: k.last_sample_hour,
            oos_hours: k.oos_hours,
            oos_days: k.oos_days,
            risk: k.risk,
            alert_risk: k.alert_risk,
            count_gap: k.count_gap,
            ..KeyRow::default()
        };
        c.hourly.copy_from_slice(&k.hourly);
        c.daily.copy_from_slice(&k.daily);
        for &(h, q, eta, closed) in &k.inbound {
            s.inbound
                .restore(&mut c.inbound_head, row, h, q, eta, closed);
        }
        s.rows.push(c);
        seen.extend(k.seen.iter().map(|&(p, t, h)| (p, t, h, row)));
        for e in &k.pending {
            let kind = EventType::from_code(e.kind)
                .ok_or_else(|| layout(format!("pending event kind {}", e.kind)))?;
            pending.push(PendingEvent {
                time_ms: e.time_ms,
                id_hash: e.id_hash,
                row,
                kind,
                in_stock: e.in_stock,
                qty: e.qty,
                eta_ms: e.eta_ms,
                shipment_hash: e.shipment_hash,
                sub: e.sub,
                groups: Groups::UNRESOLVED,
                source: e.source,
            });
        }
        for l in &k.labels {
            let x: [f32; NF] =
                l.x.as_slice()
                    .try_into()
                    .map_err(|_| layout(format!("{} features (this build has {NF})", l.x.len())))?;
            labels.push((
                l.position,
                Snapshot {
                    row,
                    time_ms: l.time_ms,
                    x,
                    risk: l.risk,
                    margin: l.margin,
                    challenger_risk: f32::NAN,
                    challenger_margin: f32::NAN,
                },
            ));
        }
    }
    // The journals' entries (version 4), from the first live positions on.
    let heads = meta.journal.unwrap_or(JournalHeads { seen: 0, labels: 0 });
    let mut marks = JournalMarks::default();
    for j in &journals {
        let rows = j
            .keys
            .iter()
            .map(|(location, sku)| {
                s.keys.get(location, sku).ok_or_else(|| {
                    ChangelogError::Incomplete(format!(
                        "journal record {} names key {location}|{sku}, which has no key record",
                        j.first
                    ))
                })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let row = |k: u32| {
            rows.get(k as usize)
                .copied()
                .ok_or_else(|| layout(format!("journal record {}: key index {k}", j.first)))
        };
        let end = j.first + j.len() as u64;
        if j.is_labels() {
            marks.labels.push_back((j.first, end));
        } else {
            marks.seen.push_back((j.first, end));
        }
        for (i, &(k, t, h)) in j.seen.iter().enumerate() {
            let pos = j.first + i as u64;
            if pos >= heads.seen {
                seen.push((pos, t, h, row(k)?));
            }
        }
        for (i, l) in j.labels.iter().enumerate() {
            let pos = j.first + i as u64;
            if pos < heads.labels {
                continue;
            }
            let x: [f32; NF] =
                l.x.as_slice()
                    .try_into()
                    .map_err(|_| layout(format!("{} features (this build has {NF})", l.x.len())))?;
            labels.push((
                pos,
                Snapshot {
                    row: row(l.key)?,
                    time_ms: l.time_ms,
                    x,
                    risk: l.risk,
                    margin: l.margin,
                    challenger_risk: f32::NAN,
                    challenger_margin: f32::NAN,
                },
            ));
        }
    }
    marks.seen.make_contiguous().sort_unstable();
    marks.labels.make_contiguous().sort_unstable();
    seen.sort_unstable_by_key(|e| e.0);
    seen.dedup_by_key(|e| e.0);
    labels.sort_unstable_by_key(|e| e.0);
    labels.dedup_by_key(|e| e.0);
    // Restored from key records of version 3 or older (no heads), nothing is journaled yet:
    // the next batch journals every live entry (the marks' written positions stay 0).
    if let Some(h) = meta.journal {
        // Every live entry must be there, each once.
        // (Sorted and deduplicated by position: the count and the first one tell.)
        for (what, found, first, head, end) in [
            (
                "remembered ids",
                seen.len(),
                seen.first().map(|e| e.0),
                h.seen,
                meta.clocks.seen_pushed,
            ),
            (
                "label snapshots",
                labels.len(),
                labels.first().map(|e| e.0),
                h.labels,
                meta.labels_pushed,
            ),
        ] {
            let want = end.saturating_sub(head);
            if found as u64 != want || first.is_some_and(|p| p != head) {
                return Err(ChangelogError::Incomplete(format!(
                    "{found} of the {want} {what} at positions {head}..{end} found in the journal"
                )));
            }
        }
        marks.seen_written = meta.clocks.seen_pushed;
        marks.labels_written = meta.labels_pushed;
    }
    s.order
        .restore_clocks(&meta.clocks, seen.iter().map(|&(_, t, h, row)| (t, h, row)));
    pending.sort_by_key(|e| (e.time_ms, e.id_hash, e.source));
    for e in pending {
        s.order.restore_pending(e);
    }
    for (_, sn) in labels {
        s.labels.push(sn, usize::MAX);
    }
    s.labels.pushed = meta.labels_pushed;
    s.labels.dropped = meta.labels_dropped;
    s.inbound.dropped = meta.inbound_dropped;
    let champion = SavedModel {
        state: &meta.model,
        quality: meta.quality,
        origin: meta.model_origin.as_deref(),
    };
    s.restore_models(
        cfg,
        champion,
        meta.challenger.as_ref().map(ChallengerRecord::saved),
        true,
    )?;
    s.counters = meta.counters;
    s.budgets = meta.budgets.clone();
    Ok((s, marks))
}

/// The records of a version 3 changelog holding the same state: every journaled entry back in
/// its key's record, no journal heads in the shard record.
#[cfg(test)]
pub(crate) fn as_version_3(
    meta: &ShardRecord,
    keys: &[KeyRecord],
    journals: &[Journal],
) -> (ShardRecord, Vec<KeyRecord>) {
    let mut meta = meta.clone();
    let heads = meta.journal.take().expect("a version 4 shard record");
    let mut keys = keys.to_vec();
    let at: std::collections::HashMap<(String, String), usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ((k.location.clone(), k.sku.clone()), i))
        .collect();
    for j in journals {
        let key = |k: u32| at[&j.keys[k as usize]];
        for (i, &(k, t, h)) in j.seen.iter().enumerate() {
            let pos = j.first + i as u64;
            if pos >= heads.seen {
                keys[key(k)].seen.push((pos, t, h));
            }
        }
        for (i, l) in j.labels.iter().enumerate() {
            let pos = j.first + i as u64;
            if pos >= heads.labels {
                keys[key(l.key)].labels.push(LabelRecord {
                    position: pos,
                    time_ms: l.time_ms,
                    risk: l.risk,
                    x: l.x.clone(),
                    margin: l.margin,
                });
            }
        }
    }
    (meta, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key record written before contract v2 (version 1) still restores: no count
    /// discrepancy, its shipments open, its waiting events of sub-type code 0.
    #[test]
    fn version_1_key_records_are_read() {
        let v1 = KeyRecordV1 {
            location: "S1".into(),
            sku: "K1".into(),
            on_hand: 7.0,
            in_transit: 5.0,
            flags: 1,
            last_stockout_ms: i64::MIN,
            last_alert_ms: i64::MIN,
            first_hour: 10,
            ring_hour: 12,
            last_receipt_hour: 11,
            last_sample_hour: i32::MIN,
            hourly: vec![0.0; HOURS],
            daily: vec![0.0; DAYS],
            oos_hours: 0,
            oos_days: 0,
            risk: 0.25,
            alert_risk: 0.0,
            inbound: vec![(42, 5.0, 1_000)],
            seen: vec![(3, 900, 77)],
            pending: vec![PendingRecordV1 {
                time_ms: 950,
                id_hash: 78,
                kind: 0,
                in_stock: false,
                qty: 1.0,
                eta_ms: 0,
                shipment_hash: 0,
                source: 9,
            }],
            labels: Vec::new(),
        };
        let mut value = vec![CHANGELOG_V1];
        value.extend(postcard::to_allocvec(&v1).unwrap());
        let k = KeyRecord::decode(&value).unwrap();
        assert_eq!(k, KeyRecord::from(v1));
        assert_eq!(k.count_gap, super::super::columns::NO_GAP);
        assert_eq!(k.inbound, vec![(42, 5.0, 1_000, false)]);
        assert_eq!(k.pending[0].sub, 0);
        // This version's records round-trip, and an unknown version is refused.
        let mut v2 = Vec::new();
        k.encode(&mut v2);
        assert_eq!(v2[0], CHANGELOG_VERSION);
        assert_eq!(KeyRecord::decode(&v2).unwrap(), k);
        value[0] = 9;
        assert!(KeyRecord::decode(&value).is_err());
    }

    /// A key record of version 2 still restores, its label snapshots' margins unknown (NaN:
    /// the calibration layer skips them); this version's keep them.
    #[test]
    fn version_2_key_records_are_read_without_margins() {
        let label = LabelRecordV2 {
            position: 4,
            time_ms: 900,
            risk: 0.3,
            x: vec![0.5; NF],
        };
        let v2 = KeyRecordV2 {
            location: "S1".into(),
            sku: "K1".into(),
            on_hand: 7.0,
            in_transit: 0.0,
            flags: 0,
            last_stockout_ms: i64::MIN,
            last_alert_ms: i64::MIN,
            first_hour: 10,
            ring_hour: 12,
            last_receipt_hour: 11,
            last_sample_hour: 0,
            hourly: vec![0.0; HOURS],
            daily: vec![0.0; DAYS],
            oos_hours: 0,
            oos_days: 0,
            risk: 0.3,
            alert_risk: 0.0,
            inbound: vec![(42, 5.0, 1_000, true)],
            seen: Vec::new(),
            pending: Vec::new(),
            labels: vec![label.clone()],
            count_gap: 3,
        };
        let mut value = vec![CHANGELOG_V2];
        value.extend(postcard::to_allocvec(&v2).unwrap());
        let k = KeyRecord::decode(&value).unwrap();
        assert_eq!((k.count_gap, k.inbound.clone()), (3, v2.inbound.clone()));
        assert_eq!(k.labels.len(), 1);
        let l = &k.labels[0];
        assert_eq!((l.position, l.time_ms, l.risk), (4, 900, 0.3));
        assert!(l.margin.is_nan());
        let mut k3 = k.clone();
        k3.labels[0].margin = -0.75;
        let mut v3 = Vec::new();
        k3.encode(&mut v3);
        assert_eq!(v3[0], CHANGELOG_VERSION);
        assert_eq!(KeyRecord::decode(&v3).unwrap().labels[0].margin, -0.75);
    }

    /// A version 1 shard record's counters (four event types, no v2 counters) read as v2's.
    #[test]
    fn version_1_counters_are_read() {
        let c: ShardCounters = serde_json::from_str(
            r#"{"applied":[1,2,3,4],"late":5,"duplicate":6,"receipts_unmatched":7,"shipments_dropped":8,"stockouts":9,"alerts":[[1,0,1],[2,0,2]]}"#,
        )
        .unwrap();
        assert_eq!(c.applied, [1, 2, 3, 4, 0, 0]);
        assert_eq!((c.late, c.stockouts, c.counts_below_book), (5, 9, 0));
        assert!(serde_json::from_str::<ShardCounters>(r#"{"applied":[1,2,3,4,5,6,7]}"#).is_err());
    }
}
