//! The state changelog topic: what each batch writes, and how a shard is restored from it.
//!
//! Partition `p` of the changelog holds shard `p`. Every batch writes, for each shard that
//! changed, one record per changed key (key `"{location}|{sku}"`, the value of
//! [`KeyRecord::encode`]) and then one *shard record* (key [`SHARD_KEY`]: the shard-level state
//! plus the [`Lineage`]). Every record carries headers: the batch's input offsets (the offset
//! after the last record read of each input partition, [`H_OFFSETS`]), and the writer's epoch
//! and batch sequence number ([`H_EPOCH`], [`H_SEQ`]). The input offsets committed for the
//! batch are those same offsets: the state, its reorder buffer included, reflects exactly the
//! input before them, so a restored shard resumes reading there and nothing is read twice.
//!
//! **Restore** of shard `p` with committed input offsets `C`:
//! 1. write a marker record to partition `p` and read the partition from the beginning up to
//!    it (the end, without trusting the broker's high watermark);
//! 2. the restore point is the shard record of the batch the commit names (the offsets'
//!    metadata, `changelog_batch={epoch}:{seq}`), else the last shard record whose offsets are
//!    all ≤ `C`. A batch whose commit never happened (a crash between writing and committing,
//!    an aborted transaction that a broker still shows) has offsets beyond `C` — unless it
//!    read no input (its inputs idle, the watermark applying what waited): then only the
//!    commit's name tells the two apart. A broker that drops the metadata of transactional
//!    offset commits (tansu 0.6) leaves the offsets alone; after an abort the service names
//!    the batch it last committed itself (`Committed::batch`);
//! 3. read again up to the restore point and keep, per key, the last record whose (epoch, seq)
//!    belongs to the restore point's lineage: the batches that led to it. Records of a batch
//!    that never committed, written by an instance that then died, are older than the restore
//!    point but not in its lineage, and are ignored;
//! 4. rebuild the shard ([`restore_shard`]: it checks that every key of the shard record was
//!    found) and resume the inputs at the restore point's offsets.
//!
//! A restored instance starts a new epoch whose lineage is the restore point's plus itself.
//!
//! When the changelog and `C` disagree, restore refuses with [`RestoreError::Inconsistent`]
//! ([`Inconsistency`]): offsets committed but no restore point (the partition holds no state:
//! `changelog_missing`; it holds records, but not the restore point or not all its keys:
//! `changelog_truncated`), or nothing committed while the last shard record's lineage says
//! offsets were committed for it (`offsets_missing`). The service pauses that partition until
//! `stockwatch reset-state` ([`super::reset`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::MAX_INPUTS;
use crate::engine::{persist, EngineConfig, Shard};
use crate::sink::kafka::{EventProducer, ProduceError};
use crate::state::changelog::{
    Change, ChangelogError, Journal, KeyRecord, ShardRecord, CHANGELOG_VERSION, LABEL_JOURNAL,
    SEEN_JOURNAL,
};

/// Whether a changelog message key names a journal record (see
/// [`crate::state::changelog::Journal`]).
fn is_journal(key: &[u8]) -> bool {
    key.starts_with(SEEN_JOURNAL.as_bytes()) || key.starts_with(LABEL_JOURNAL.as_bytes())
}

/// Key of the shard records.
pub const SHARD_KEY: &[u8] = b"#shard";
/// Key of the restore markers (a key that is not `{location}|{sku}`: it has no `|`).
pub const MARKER_KEY: &[u8] = b"#restore-marker";
/// Header: the input offsets the record reflects, `"sales,shipments,receipts,availability"`.
pub const H_OFFSETS: &str = "stockwatch.offsets";
/// Header: the writer's epoch (a random number per restore).
pub const H_EPOCH: &str = "stockwatch.epoch";
/// Header: the batch sequence number within the lineage.
pub const H_SEQ: &str = "stockwatch.seq";
/// Commit-metadata prefix of the input offsets: the batch they commit, `{epoch}:{seq}`.
pub const BATCH_METADATA: &str = "changelog_batch=";

/// The batch named by a committed offset's metadata.
pub fn parse_batch_metadata(m: &str) -> Option<(u64, u64)> {
    let (e, s) = m.strip_prefix(BATCH_METADATA)?.split_once(':')?;
    Some((e.parse().ok()?, s.parse().ok()?))
}

/// Header: the changelog layout version.
pub const H_VERSION: &str = "stockwatch.changelog_version";

/// Errors restoring a shard.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading the changelog failed.
    #[error("reading changelog partition {partition}: {error}")]
    Read {
        /// The partition.
        partition: i32,
        /// The error.
        error: rdkafka::error::KafkaError,
    },
    /// The marker did not come back in time.
    #[error("changelog partition {partition}: the end was not reached within {waited:?} ({records} records read); is a transaction of a dead instance still open? it ends after service.transaction_timeout_ms")]
    Timeout {
        /// The partition.
        partition: i32,
        /// How long we waited.
        waited: Duration,
        /// Records read so far.
        records: u64,
    },
    /// Writing the marker failed.
    #[error(transparent)]
    Marker(#[from] ProduceError),
    /// The restore was abandoned: its [`KeepAlive`] said the assignment changed meanwhile.
    #[error("changelog partition {partition}: restore abandoned, the assignment changed")]
    Interrupted {
        /// The partition.
        partition: i32,
    },
    /// The changelog and the group's committed offsets do not agree: the shard cannot be
    /// restored without an operator's choice (`stockwatch reset-state`).
    #[error("partition {partition}: {kind}: {detail}; the partition is not processed until `stockwatch reset-state --partition {partition} --from …` (see the runbook)")]
    Inconsistent {
        /// The partition.
        partition: i32,
        /// What was found.
        kind: Inconsistency,
        /// The offsets and records that show it.
        detail: String,
    },
    /// A record is not in this build's layout, or the records do not add up to the shard.
    #[error("changelog partition {partition}: {error}")]
    Layout {
        /// The partition.
        partition: i32,
        /// The error.
        error: ChangelogError,
    },
}

/// How a shard's changelog and the group's committed input offsets disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Inconsistency {
    /// Input offsets are committed, but the changelog partition holds no state at all: the
    /// topic was deleted (and recreated empty).
    ChangelogMissing,
    /// Input offsets are committed, the changelog partition holds records, but not the state
    /// they name: records were deleted (retention, `DeleteRecords`, a partial copy).
    ChangelogTruncated,
    /// The changelog holds state that was committed once, but the group has no committed
    /// offsets (they expired: `offsets.retention.minutes`, or the group was deleted).
    OffsetsMissing,
}

impl Inconsistency {
    /// Every kind, in [`Inconsistency::index`] order.
    pub const ALL: [Inconsistency; 3] = [
        Inconsistency::ChangelogMissing,
        Inconsistency::ChangelogTruncated,
        Inconsistency::OffsetsMissing,
    ];

    /// The `/readyz` reason and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Inconsistency::ChangelogMissing => "changelog_missing",
            Inconsistency::ChangelogTruncated => "changelog_truncated",
            Inconsistency::OffsetsMissing => "offsets_missing",
        }
    }

    /// Position in [`Inconsistency::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The batches a shard's state descends from: each earlier epoch up to the last batch it
/// committed, then the current epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Earlier epochs: (epoch, last batch of it in this lineage).
    pub closed: Vec<(u64, u64)>,
    /// The current epoch.
    pub epoch: u64,
    /// The current batch sequence number.
    pub seq: u64,
    /// Input offsets were committed for this state (or one it descends from): a changelog
    /// whose state says so, found with no committed offsets, means they were lost
    /// ([`Inconsistency::OffsetsMissing`]), not that they were never committed. Absent in
    /// records written before it existed: a restored lineage (`closed` not empty) says the
    /// same.
    #[serde(default)]
    pub committed: bool,
}

impl Lineage {
    /// A lineage with no history.
    pub fn fresh() -> Self {
        Lineage {
            closed: Vec::new(),
            epoch: rand::random(),
            seq: 0,
            committed: false,
        }
    }

    /// The lineage of an instance restored from `self`: a new epoch after it.
    pub fn successor(&self) -> Self {
        let mut closed = self.closed.clone();
        closed.push((self.epoch, self.seq));
        Lineage {
            closed,
            epoch: rand::random(),
            seq: self.seq,
            // Restored from a committed point.
            committed: true,
        }
    }

    /// Whether input offsets were ever committed for this state (see [`Lineage::committed`]).
    pub fn was_committed(&self) -> bool {
        self.committed || !self.closed.is_empty()
    }

    /// Whether batch `seq` of `epoch` is one this state descends from.
    pub fn contains(&self, epoch: u64, seq: u64) -> bool {
        (epoch == self.epoch && seq <= self.seq)
            || self.closed.iter().any(|&(e, s)| e == epoch && seq <= s)
    }
}

/// The value of a shard record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardValue {
    lineage: Lineage,
    #[serde(deserialize_with = "offsets_de")]
    offsets: [i64; MAX_INPUTS],
    state: ShardRecord,
}

/// Writes the changes of one batch of one shard: the changed keys, then the shard record.
#[derive(Debug, Default)]
pub struct Writer {
    value: Vec<u8>,
}

/// What one [`Writer::write`] sent: records and their values' bytes, per kind (key, journal,
/// tombstone, shard: `stockwatch_changelog_records_total{record}`'s order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Records per kind.
    pub records: [u64; 4],
    /// Value bytes per kind.
    pub bytes: [u64; 4],
}

impl Written {
    /// Records of every kind.
    pub fn total(&self) -> u64 {
        self.records.iter().sum()
    }

    fn add(&mut self, kind: usize, bytes: usize) {
        self.records[kind] += 1;
        self.bytes[kind] += bytes as u64;
    }
}

impl Writer {
    /// Sends the records of `shard`'s changes since the last call to partition `p` of `topic`,
    /// as batch `lineage.seq + 1` (which `lineage` then is), reflecting input `offsets`.
    pub fn write(
        &mut self,
        producer: &mut EventProducer,
        topic: &str,
        p: i32,
        shard: &mut Shard,
        lineage: &mut Lineage,
        offsets: [i64; MAX_INPUTS],
    ) -> Result<Written, ProduceError> {
        lineage.seq += 1;
        let epoch = lineage.epoch.to_string();
        let seq = lineage.seq.to_string();
        let offs = format_offsets(offsets);
        let version = CHANGELOG_VERSION.to_string();
        let headers: [(&str, &[u8]); 4] = [
            (H_OFFSETS, offs.as_bytes()),
            (H_EPOCH, epoch.as_bytes()),
            (H_SEQ, seq.as_bytes()),
            (H_VERSION, version.as_bytes()),
        ];
        let mut result = Ok(());
        let mut written = Written::default();
        let value = &mut self.value;
        persist::take_changes(shard, |key, change| {
            if result.is_err() {
                return;
            }
            value.clear();
            let kind = match change {
                Change::Key(_) => 0,
                Change::Journal(_) => 1,
                Change::Gone => 2,
            };
            result = if change.encode(value) {
                producer.send_to_partition(topic, p, key.as_bytes(), value, &headers)
            } else {
                producer.send_tombstone_to_partition(topic, p, key.as_bytes(), &headers)
            };
            written.add(kind, value.len());
        });
        result?;
        let v = ShardValue {
            lineage: lineage.clone(),
            offsets,
            state: persist::shard_record(shard),
        };
        self.value.clear();
        self.value.push(CHANGELOG_VERSION);
        // Plain data into a Vec: cannot fail.
        let _ = serde_json::to_writer(&mut self.value, &v);
        producer.send_to_partition(topic, p, SHARD_KEY, &self.value, &headers)?;
        written.add(3, self.value.len());
        Ok(written)
    }
}

/// A shard record's value.
fn shard_value(value: &[u8]) -> Result<ShardValue, ChangelogError> {
    match value.split_first() {
        // Versions 1 (before contract v2), 2 (before label margins) and 3 (before the
        // journals) read into the same value (see `ShardRecord::decode`).
        Some((&CHANGELOG_VERSION | &1 | &2 | &3, body)) => serde_json::from_slice(body)
            .map_err(|e| ChangelogError::Layout(format!("shard record: {e}"))),
        _ => Err(ChangelogError::Layout(
            "shard record of another version".into(),
        )),
    }
}

fn format_offsets(o: [i64; MAX_INPUTS]) -> String {
    o.map(|x| x.to_string()).join(",")
}

/// Input offsets of a stamp. A record written before contract v2 names four inputs: the
/// inputs added since start at offset 0.
fn parse_offsets(v: &[u8]) -> Option<[i64; MAX_INPUTS]> {
    let s = std::str::from_utf8(v).ok()?;
    let mut out = [0i64; MAX_INPUTS];
    let mut n = 0;
    for x in s.split(',') {
        *out.get_mut(n)? = x.parse().ok()?;
        n += 1;
    }
    (n >= 4).then_some(out)
}

/// [`ShardValue::offsets`], of four inputs (before contract v2) or more.
fn offsets_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[i64; MAX_INPUTS], D::Error> {
    let v: Vec<i64> = Deserialize::deserialize(d)?;
    let mut out = [0i64; MAX_INPUTS];
    if v.len() > MAX_INPUTS {
        return Err(serde::de::Error::custom("more input offsets than inputs"));
    }
    out[..v.len()].copy_from_slice(&v);
    Ok(out)
}

/// The stamp of a changelog record, from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    offsets: [i64; MAX_INPUTS],
    epoch: u64,
    seq: u64,
}

fn stamp<M: Message>(m: &M) -> Option<Stamp> {
    let h = m.headers()?;
    let (mut offsets, mut epoch, mut seq) = (None, None, None);
    for i in 0..h.count() {
        let hd = h.get(i);
        let v = hd.value.unwrap_or_default();
        match hd.key {
            H_OFFSETS => offsets = parse_offsets(v),
            H_EPOCH => epoch = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
            H_SEQ => seq = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
            _ => {}
        }
    }
    Some(Stamp {
        offsets: offsets?,
        epoch: epoch?,
        seq: seq?,
    })
}

/// A restored shard and where its inputs resume.
#[derive(Debug)]
pub struct Restored {
    /// The shard (change tracking on).
    pub shard: Shard,
    /// Its lineage: a new epoch.
    pub lineage: Lineage,
    /// Per input: the offset to read next.
    pub offsets: [i64; MAX_INPUTS],
    /// The batch restored, `(epoch, seq)` of the restore point (`None`: a fresh shard).
    pub batch: Option<(u64, u64)>,
    /// Changelog records read (both passes).
    pub records_read: u64,
}

/// How long a restore may wait for the end of the changelog partition.
const RESTORE_DEADLINE: Duration = Duration::from_secs(crate::config::RESTORE_DEADLINE_SECS);

/// How often a restore calls its [`KeepAlive`] while it reads.
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(200);

/// Called at most every [`KEEP_ALIVE_EVERY`] while a restore reads and decodes the changelog, so that the caller
/// can serve its group consumer (a restore can take longer than `max.poll.interval.ms`: the
/// member would be dropped from the group). Returns true to abandon the restore
/// ([`RestoreError::Interrupted`]): the assignment changed meanwhile.
pub type KeepAlive<'a> = &'a mut dyn FnMut() -> bool;

/// Restores shard `p` (see the module doc). `committed`: per input, the committed offset, or
/// `None` if none was ever committed. `reader` is a consumer outside the group
/// (read_uncommitted: the stamps, not the isolation level, exclude what never committed); `producer` writes the marker (inside a transaction of its own when
/// `transactional`). The shard keeps the input clocks it recorded (a fresh one has one): the
/// caller sets the number of inputs
/// ([`Shard::resize_inputs`]). `keep_alive` is called while the changelog is read.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    reader: &BaseConsumer,
    producer: &mut EventProducer,
    transactional: bool,
    topic: &str,
    p: i32,
    committed: Committed,
    cfg: EngineConfig,
    keep_alive: KeepAlive<'_>,
) -> Result<Restored, RestoreError> {
    let Committed {
        offsets: committed,
        batch,
    } = committed;
    let fresh = || {
        let mut shard = Shard::new(cfg);

        shard.track_changes(true);
        shard
    };
    // The caller's keep-alive at most every KEEP_ALIVE_EVERY: called on every record read
    // and between keys decoded.
    let mut last_kept = Instant::now();
    let mut keep_alive = move || {
        if last_kept.elapsed() < KEEP_ALIVE_EVERY {
            return false;
        }
        last_kept = Instant::now();
        keep_alive()
    };
    let never_committed = committed.iter().all(Option::is_none);
    let c = committed.map(|o| o.unwrap_or(0));
    // No committed offsets and an empty changelog partition: nothing to restore and nothing to
    // check, so no marker either (a first start writes nothing; a broker refusing every write
    // then fails the first batch's transaction, which the abort loop handles, not the restore).
    if never_committed {
        let (low, high) = reader
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .map_err(|error| RestoreError::Read {
                partition: p,
                error,
            })?;
        if high <= low {
            return Ok(Restored {
                shard: fresh(),
                lineage: Lineage::fresh(),
                offsets: [0; MAX_INPUTS],
                batch: None,
                records_read: 0,
            });
        }
    }
    // 1. The end of the partition: a marker of our own.
    let nonce = format!("{:016x}", rand::random::<u64>());
    if transactional {
        producer.begin_transaction()?;
    }
    producer.send_to_partition(topic, p, MARKER_KEY, nonce.as_bytes(), &[])?;
    if transactional {
        producer.commit_transaction(&TopicPartitionList::new(), None, Duration::from_secs(30))?;
    } else {
        producer.flush(Duration::from_secs(30))?;
    }
    // 2. Find the restore point.
    let mut point: Option<(i64, Vec<u8>)> = None;
    let mut named: Option<(i64, Vec<u8>)> = None;
    // The last shard record of any lineage, and how many state records the partition holds.
    let mut last: Option<(i64, Vec<u8>)> = None;
    let mut state_records = 0u64;
    let mut records = scan(reader, topic, p, &mut keep_alive, |m| {
        let key = m.key().unwrap_or_default();
        if key == MARKER_KEY {
            return m.payload() == Some(nonce.as_bytes());
        }
        state_records += 1;
        if key == SHARD_KEY {
            if let Some(s) = stamp(m) {
                let here = || (m.offset(), m.payload().unwrap_or_default().to_vec());
                if never_committed {
                    last = Some(here());
                } else if batch == Some((s.epoch, s.seq)) {
                    named = Some(here());
                } else if (0..MAX_INPUTS).all(|i| s.offsets[i] <= c[i]) {
                    point = Some(here());
                }
            }
        }
        false
    })?;
    let layout = |error| RestoreError::Layout {
        partition: p,
        error,
    };
    let inconsistent = |kind, detail| RestoreError::Inconsistent {
        partition: p,
        kind,
        detail,
    };
    let fresh_restored = |records_read| Restored {
        shard: fresh(),
        lineage: Lineage::fresh(),
        offsets: [0; MAX_INPUTS],
        batch: None,
        records_read,
    };
    if never_committed {
        // No committed offsets: a new group, or a first batch that never committed (its
        // records never counted) — unless the changelog's state says offsets were committed.
        if let Some((at, value)) = last {
            let sv = shard_value(&value).map_err(layout)?;
            if sv.lineage.was_committed() {
                return Err(inconsistent(
                    Inconsistency::OffsetsMissing,
                    format!(
                        "the group has no committed input offsets, but the changelog holds committed state (shard record at offset {at}, input offsets {:?})",
                        sv.offsets
                    ),
                ));
            }
        }
        return Ok(fresh_restored(records));
    }
    if batch.is_some() && named.is_none() {
        tracing::warn!(
            partition = p,
            ?batch,
            "the committed batch's shard record was not found; restoring from the last one within the committed offsets"
        );
    }
    let Some((at, value)) = named.or(point) else {
        if c.iter().all(|&o| o == 0) {
            return Ok(fresh_restored(records));
        }
        return Err(if state_records == 0 {
            inconsistent(
                Inconsistency::ChangelogMissing,
                format!("input offsets {c:?} are committed, but the changelog partition is empty"),
            )
        } else {
            inconsistent(
                Inconsistency::ChangelogTruncated,
                format!(
                    "input offsets {c:?} are committed (batch {batch:?}), but none of the changelog partition's {state_records} records is a shard record at or before them"
                ),
            )
        });
    };
    let sv = shard_value(&value).map_err(layout)?;
    crate::failpoint::crash_point!(crate::failpoint::RESTORE_BETWEEN_PASSES);
    // 3. The keys, as of the restore point, in its lineage.
    let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    records += scan(reader, topic, p, &mut keep_alive, |m| {
        if m.offset() >= at {
            return true;
        }
        let key = m.key().unwrap_or_default();
        if key.first() == Some(&b'#') && !is_journal(key) {
            return false;
        }
        if let Some(s) = stamp(m) {
            if sv.lineage.contains(s.epoch, s.seq) {
                let v = m.payload().unwrap_or_default();
                match latest.get_mut(key) {
                    Some(old) => {
                        old.clear();
                        old.extend_from_slice(v);
                    }
                    None => {
                        latest.insert(key.to_vec(), v.to_vec());
                    }
                }
            }
        }
        false
    })?;
    // 4. Rebuild.
    let key_records = latest.keys().filter(|k| !is_journal(k)).count();
    if (key_records as u64) < sv.state.keys {
        return Err(inconsistent(
            Inconsistency::ChangelogTruncated,
            format!(
                "the shard record at offset {at} counts {} keys, but only {key_records} of their records are left",
                sv.state.keys,
            ),
        ));
    }
    let mut keys = Vec::with_capacity(key_records);
    let mut journals = Vec::new();
    for (i, (k, v)) in latest.iter().enumerate() {
        if i % 1024 == 0 && keep_alive() {
            return Err(RestoreError::Interrupted { partition: p });
        }
        if !is_journal(k) {
            keys.push(KeyRecord::decode(v).map_err(layout)?);
        } else if !v.is_empty() {
            // (Empty: a tombstone, the record's entries all spent.)
            journals.push(Journal::decode(v).map_err(layout)?);
        }
    }
    drop(latest);
    let mut shard = match persist::restore_shard(cfg, &sv.state, keys, journals) {
        Ok(shard) => shard,
        Err(ChangelogError::Incomplete(detail)) => {
            return Err(inconsistent(
                Inconsistency::ChangelogTruncated,
                format!("the shard record at offset {at}: {detail}"),
            ))
        }
        Err(e) => return Err(layout(e)),
    };
    shard.track_changes(true);
    Ok(Restored {
        shard,
        batch: Some((sv.lineage.epoch, sv.lineage.seq)),
        lineage: sv.lineage.successor(),
        offsets: sv.offsets,
        records_read: records,
    })
}

/// The last shard record of changelog partition `p` (any lineage): its lineage and the input
/// offsets it reflects; `None` if the partition holds none. Writes a marker to find the end,
/// like [`restore`].
pub fn last_shard_record(
    reader: &BaseConsumer,
    producer: &mut EventProducer,
    topic: &str,
    p: i32,
) -> Result<Option<(Lineage, [i64; MAX_INPUTS])>, RestoreError> {
    let nonce = format!("{:016x}", rand::random::<u64>());
    producer.send_to_partition(topic, p, MARKER_KEY, nonce.as_bytes(), &[])?;
    producer.flush(Duration::from_secs(30))?;
    let mut last: Option<Vec<u8>> = None;
    scan(reader, topic, p, &mut || false, |m| {
        let key = m.key().unwrap_or_default();
        if key == MARKER_KEY {
            return m.payload() == Some(nonce.as_bytes());
        }
        if key == SHARD_KEY && stamp(m).is_some() {
            last = Some(m.payload().unwrap_or_default().to_vec());
        }
        false
    })?;
    let Some(value) = last else {
        return Ok(None);
    };
    let sv = shard_value(&value).map_err(|error| RestoreError::Layout {
        partition: p,
        error,
    })?;
    Ok(Some((sv.lineage, sv.offsets)))
}

/// Reads partition `p` of `topic` from the beginning, calling `each` until it returns true,
/// and `keep_alive` between reads; returns the records read.
fn scan(
    reader: &BaseConsumer,
    topic: &str,
    p: i32,
    keep_alive: KeepAlive<'_>,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool,
) -> Result<u64, RestoreError> {
    let read = |error| RestoreError::Read {
        partition: p,
        error,
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning)
        .map_err(read)?;
    reader.assign(&tpl).map_err(read)?;
    let started = Instant::now();
    let mut records = 0u64;
    let result = loop {
        if keep_alive() {
            break Err(RestoreError::Interrupted { partition: p });
        }
        if started.elapsed() > RESTORE_DEADLINE {
            break Err(RestoreError::Timeout {
                partition: p,
                waited: started.elapsed(),
                records,
            });
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.partition() == p && m.topic() == topic => {
                records += 1;
                if each(&m) {
                    break Ok(records);
                }
            }
            Some(Ok(_)) | None => {}
            Some(Err(e)) => tracing::warn!(partition = p, error = %e, "reading the changelog"),
        }
    };
    let result = match (
        result,
        crate::failpoint::duration(crate::failpoint::SLOW_RESTORE),
    ) {
        (Ok(records), Some(at_least)) => loop {
            if keep_alive() {
                break Err(RestoreError::Interrupted { partition: p });
            }
            if started.elapsed() >= at_least {
                break Ok(records);
            }
            std::thread::sleep(Duration::from_millis(20));
        },
        (result, _) => result,
    };
    let _ = reader.unassign();
    result
}

/// The state the service would restore for each of `partitions`, read from the changelog with
/// the group's committed offsets (a consumer outside the group: nothing is assigned or moved).
/// For checks and inspection, not for the service loop.
pub fn read_state(
    cfg: &crate::config::Config,
    partitions: &[i32],
) -> Result<Vec<(i32, Restored)>, super::ServiceError> {
    use super::ServiceError;
    let reader: BaseConsumer =
        super::setup::reader_config(cfg, &cfg.kafka.group_id, "read_uncommitted", "10")
            .create()
            .map_err(ServiceError::Reader)?;
    let mut ps = crate::sink::kafka::ProducerSettings::new(cfg.kafka.bootstrap_servers.clone());
    ps.properties = super::setup::producer_properties(cfg);
    let mut producer = EventProducer::new(ps)?;
    let inputs = cfg.kafka.topics.inputs();
    let mut out = Vec::new();
    for &p in partitions {
        let mut tpl = TopicPartitionList::new();
        for t in &inputs {
            tpl.add_partition(t, p);
        }
        let c = reader
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(ServiceError::Committed)?;
        let r = restore(
            &reader,
            &mut producer,
            false,
            &cfg.kafka.topics.changelog,
            p,
            committed_of(&c, &inputs),
            cfg.engine_config(),
            &mut || false,
        )?;
        let mut r = r;
        r.shard.resize_inputs(inputs.len());
        out.push((p, r));
    }
    Ok(out)
}

/// What the group committed for a shard's inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Per input, the committed offset (`None`: never committed).
    pub offsets: [Option<i64>; MAX_INPUTS],
    /// The batch the commit names (its metadata), `(epoch, seq)`.
    pub batch: Option<(u64, u64)>,
}

/// [`Committed`] from a committed-offsets answer.
pub fn committed_of(tpl: &TopicPartitionList, inputs: &[&str]) -> Committed {
    let mut committed: [Option<i64>; MAX_INPUTS] = [None; MAX_INPUTS];
    let mut batch = None;
    for e in tpl.elements() {
        if let (Some(i), Offset::Offset(o)) =
            (inputs.iter().position(|t| *t == e.topic()), e.offset())
        {
            committed[i] = Some(o);
            batch = batch.or_else(|| parse_batch_metadata(e.metadata()));
        }
    }
    Committed {
        offsets: committed,
        batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_names_the_batches_a_state_descends_from() {
        let mut a = Lineage::fresh();
        a.seq = 7;
        let b = a.successor();
        assert!(b.contains(a.epoch, 7) && b.contains(a.epoch, 1));
        assert!(
            !b.contains(a.epoch, 8),
            "a batch of the old epoch after the restore point"
        );
        let mut c = b.clone();
        c.seq = 12;
        assert!(c.contains(c.epoch, 12) && !c.contains(c.epoch, 13));
        assert!(!c.contains(rand::random(), 1));
    }

    #[test]
    fn inconsistency_reasons_are_the_metric_labels() {
        let names = Inconsistency::ALL.map(Inconsistency::as_str);
        assert_eq!(names, crate::telemetry::INCONSISTENCY_REASONS);
        for (i, k) in Inconsistency::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn a_lineage_says_whether_offsets_were_committed() {
        let mut a = Lineage::fresh();
        assert!(!a.was_committed(), "a first epoch before its first commit");
        a.seq = 3;
        assert!(
            a.successor().was_committed(),
            "restored from a committed point"
        );
        // Written before the field existed: a restored lineage still says so.
        let old: Lineage =
            serde_json::from_str(r#"{"closed":[[1,2]],"epoch":5,"seq":3}"#).expect("old lineage");
        assert!(old.was_committed() && !old.committed);
        let first: Lineage =
            serde_json::from_str(r#"{"closed":[],"epoch":5,"seq":3}"#).expect("old lineage");
        assert!(!first.was_committed());
    }

    #[test]
    fn offsets_and_batch_metadata_parse() {
        assert_eq!(
            parse_offsets(format_offsets([1, 2, 3, 4, 5, 6]).as_bytes()),
            Some([1, 2, 3, 4, 5, 6])
        );
        assert_eq!(parse_offsets(b"1,2,3"), None);
        // A stamp written before contract v2 names four inputs; the two added read from 0.
        assert_eq!(parse_offsets(b"1,2,3,4"), Some([1, 2, 3, 4, 0, 0]));
        assert_eq!(parse_offsets(b"1,2,3,4,5,6,7"), None);
        assert_eq!(parse_batch_metadata("changelog_batch=5:9"), Some((5, 9)));
        assert_eq!(parse_batch_metadata("dead_lettered_until=5"), None);
        assert_eq!(parse_batch_metadata("changelog_batch=x:9"), None);
    }
}
