//! A shard to its persisted form and back, at the engine level: thin wrappers over
//! [`crate::state::snapshot`] and [`crate::state::changelog`], which work on the shard's
//! [`ShardState`] alone, so that `state` never depends on the engine.

use std::path::Path;

use arrow::array::RecordBatch;

use super::{Engine, EngineConfig, Shard};
use crate::state::changelog::{self, Change, ChangelogError, Journal, KeyRecord, ShardRecord};
use crate::state::snapshot::{self, SnapshotError};
use crate::state::ShardState;

pub use crate::state::snapshot::shard_meta;

/// A shard as a `RecordBatch` (see [`snapshot::shard_to_batch`]).
pub fn shard_to_batch(s: &Shard, partition: u32) -> Result<RecordBatch, SnapshotError> {
    snapshot::shard_to_batch(s.state(), partition)
}

/// Rebuilds a shard from a batch made by [`shard_to_batch`] and its metadata ([`shard_meta`]).
pub fn shard_from_batch(
    b: &RecordBatch,
    meta: &serde_json::Value,
    cfg: EngineConfig,
) -> Result<Shard, SnapshotError> {
    let state = snapshot::shard_from_batch(b, meta, &cfg.state_config())?;
    Ok(Shard::from_state(cfg, state))
}

/// Writes every shard of `engine` into one Arrow IPC file (see [`snapshot::write_state`]).
pub fn write_engine_state(engine: &Engine, path: &Path) -> Result<(), SnapshotError> {
    write_state(engine.shards(), path)
}

/// Writes shards (index = partition) into one Arrow IPC file, as [`write_engine_state`].
pub fn write_state(shards: &[Shard], path: &Path) -> Result<(), SnapshotError> {
    snapshot::write_state(shards.iter().map(Shard::state), path)
}

/// Reads a file written by [`write_engine_state`] back into shards (one per partition).
pub fn read_engine_state(path: &Path, cfg: EngineConfig) -> Result<Vec<Shard>, SnapshotError> {
    let states = snapshot::read_state(path, &cfg.state_config())?;
    Ok(states
        .into_iter()
        .map(|s| Shard::from_state(cfg, s))
        .collect())
}

/// The shard-level changelog record of `s` now (see [`changelog::shard_record`]).
pub fn shard_record(s: &Shard) -> ShardRecord {
    changelog::shard_record(s.state())
}

/// Takes the changes since the last call (see [`Shard::track_changes`]) and calls
/// `emit(message key, change)` for each (see [`changelog::take_changes`]).
pub fn take_changes(s: &mut Shard, emit: impl FnMut(&str, Change<'_>)) {
    changelog::take_changes(&s.state, &mut s.changed, emit);
}

/// The latest changelog records of a shard as owned values, kept as a compacted topic keeps
/// them: the last record per message key, a tombstone deleting its key. For tests and tools
/// that need the changelog without a broker; [`ChangeLog::restore`] rebuilds the shard.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    keys: std::collections::BTreeMap<String, KeyRecord>,
    journals: std::collections::BTreeMap<String, Journal>,
}

impl ChangeLog {
    /// Takes `s`'s changes since the last call into the log (see [`take_changes`]).
    pub fn take(&mut self, s: &mut Shard) {
        take_changes(s, |key, change| match change {
            Change::Key(r) => {
                self.keys.insert(key.to_owned(), r.to_record());
            }
            Change::Journal(j) => {
                self.journals.insert(key.to_owned(), j.to_record());
            }
            Change::Gone => {
                self.journals.remove(key);
            }
        });
    }

    /// Rebuilds the shard from `meta` and the records held (see [`restore_shard`]).
    pub fn restore(&self, cfg: EngineConfig, meta: &ShardRecord) -> Result<Shard, ChangelogError> {
        restore_shard(
            cfg,
            meta,
            self.keys.values().cloned().collect(),
            self.journals.values().cloned().collect(),
        )
    }
}

/// Rebuilds a shard from its shard record, the latest record of each of its keys and its live
/// journal records (see [`changelog::restore_shard`]).
pub fn restore_shard(
    cfg: EngineConfig,
    meta: &ShardRecord,
    keys: Vec<KeyRecord>,
    journals: Vec<Journal>,
) -> Result<Shard, ChangelogError> {
    let (state, marks): (ShardState, _) =
        changelog::restore_shard(&cfg.state_config(), meta, keys, journals)?;
    let mut shard = Shard::from_state(cfg, state);
    shard.changed.set_journal(marks);
    Ok(shard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
    use crate::model::learner::LearnerKind;
    use crate::state::changelog::{Journal, KeyRecord, ShardRecord, CHANGELOG_VERSION};

    fn shard_with_keys(cfg: EngineConfig) -> Shard {
        let mut s = Shard::new(cfg);
        s.track_changes(true);
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let msgs = [
            r#"{"event_id":"a","type":"receipt","sku":"K1","location":"S1","qty":5,"event_time":"2026-01-01T00:00:00Z"}"#,
            r#"{"event_id":"b","type":"sale","sku":"K2","location":"S1","qty":2,"event_time":"2026-01-01T01:00:00Z"}"#,
        ];
        let b = dec.decode(
            msgs.iter().map(|m| MessageRef {
                key: None,
                value: m.as_bytes(),
            }),
            1_767_300_000_000,
            &mut Vec::new(),
        );
        s.process(&b, u64::from, None, &mut Vec::new(), &mut Vec::new());
        s
    }

    fn records(s: &mut Shard) -> (ShardRecord, Vec<KeyRecord>, Vec<Journal>) {
        let (mut keys, mut journals) = (Vec::new(), Vec::new());
        take_changes(s, |_, change| match change {
            Change::Key(r) => keys.push(r.to_record()),
            Change::Journal(j) => journals.push(j.to_record()),
            Change::Gone => {}
        });
        (shard_record(s), keys, journals)
    }

    /// The borrowed record `take_changes` hands out encodes to the bytes of the owned record
    /// it decodes as, on a shard holding every part of a key's state (pending events,
    /// remembered ids, open shipments, label snapshots).
    #[test]
    fn a_borrowed_record_encodes_as_the_owned_one() {
        let mut s = Shard::new(EngineConfig::default());
        s.track_changes(true);
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let mut l = crate::sim::load::Load::new(300, 60_000.0);
        let mut batch = crate::sim::load::Batch::default();
        for _ in 0..20 {
            batch.fill(&mut l, 1000);
            let b = dec.decode(batch.messages(), 1_800_000_000_000, &mut Vec::new());
            s.process(&b, u64::from, None, &mut Vec::new(), &mut Vec::new());
        }
        let (mut records, mut parts, mut journals) = (0, [0usize; 4], [0usize; 2]);
        take_changes(&mut s, |key, change| {
            let (mut borrowed, mut owned) = (Vec::new(), Vec::new());
            assert!(change.encode(&mut borrowed), "nothing to delete yet");
            match change {
                Change::Key(r) => {
                    let rec = r.to_record();
                    rec.encode(&mut owned);
                    assert_eq!(KeyRecord::decode(&borrowed).unwrap(), rec);
                    records += 1;
                    let counts = rec.part_counts();
                    for (p, c) in parts.iter_mut().zip(counts) {
                        *p += usize::from(c > 0);
                    }
                }
                Change::Journal(j) => {
                    let rec = j.to_record();
                    rec.encode(&mut owned);
                    assert_eq!(Journal::decode(&borrowed).unwrap(), rec);
                    assert!(!rec.is_empty() && key.ends_with(&format!("/{}", rec.first)));
                    journals[usize::from(rec.is_labels())] += rec.len();
                }
                Change::Gone => unreachable!(),
            }
            assert_eq!(borrowed, owned);
        });
        assert_eq!(records, 300);
        // Open shipments and waiting events in the key records; remembered ids and label
        // snapshots journaled, every one of them.
        assert!(
            parts[0] > 0 && parts[2] > 0 && parts[1] == 0 && parts[3] == 0,
            "parts present in some key: {parts:?}"
        );
        assert_eq!(journals[0], s.state().order.seen_ids().count());
        assert_eq!(journals[1], s.state().labels.len());
        assert!(journals[1] > 0, "{journals:?}");
    }

    #[test]
    fn values_are_versioned_and_round_trip() {
        let mut s = shard_with_keys(EngineConfig::default());
        let (meta, keys, _) = records(&mut s);
        assert_eq!(keys.len(), 2);
        let mut v = Vec::new();
        keys[0].encode(&mut v);
        assert_eq!(v[0], CHANGELOG_VERSION);
        assert_eq!(KeyRecord::decode(&v).unwrap(), keys[0]);
        assert_eq!(ShardRecord::decode(&meta.encode()).unwrap(), meta);
        v[0] = 9;
        let e = KeyRecord::decode(&v).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
        assert!(KeyRecord::decode(&[]).is_err());
        assert!(KeyRecord::decode(&[CHANGELOG_VERSION, 0xff]).is_err());
        // Nothing changed since: no records.
        let (_, again, journals) = records(&mut s);
        assert!(again.is_empty() && journals.is_empty());
    }

    /// A shard fed `rounds` batches of 1,000 events a minute apart over 300 keys (every part
    /// of a key's state, remembered ids expiring after an hour, snapshots maturing after
    /// 72 h), with `each` called after every batch.
    fn fed(rounds: usize, mut each: impl FnMut(&mut Shard)) -> Shard {
        let mut s = Shard::new(EngineConfig::default());
        s.track_changes(true);
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let mut l = crate::sim::load::Load::new(300, 60_000.0);
        let mut batch = crate::sim::load::Batch::default();
        for _ in 0..rounds {
            batch.fill(&mut l, 1000);
            let b = dec.decode(batch.messages(), 1_800_000_000_000, &mut Vec::new());
            s.process(&b, u64::from, None, &mut Vec::new(), &mut Vec::new());
            each(&mut s);
        }
        s
    }

    /// Every remembered id and label snapshot is journaled once, in order, and a journal record
    /// is deleted once its entries have all left the shard — not before: the live records hold
    /// every live entry.
    #[test]
    fn journal_records_are_written_once_and_deleted_when_spent() {
        let mut live: std::collections::BTreeMap<String, (u64, u64, bool)> = Default::default();
        let (mut written, mut gone) = ([0u64; 2], 0);
        let s = fed(40, |s| {
            take_changes(s, |key, change| match change {
                Change::Journal(j) => {
                    let r = j.to_record();
                    let kind = usize::from(r.is_labels());
                    // (Entries that left before a batch ended are never written.)
                    assert!(r.first >= written[kind], "{key}: each entry once, in order");
                    let end = r.first + r.len() as u64;
                    written[kind] = end;
                    assert!(live
                        .insert(key.to_owned(), (r.first, end, r.is_labels()))
                        .is_none());
                }
                Change::Gone => {
                    assert!(
                        live.remove(key).is_some(),
                        "{key} deleted once, after it was written"
                    );
                    gone += 1;
                }
                Change::Key(_) => {}
            });
        });
        let st = s.state();
        assert_eq!(written, [st.order.seen_pushed(), st.labels.pushed]);
        assert!(gone > 0, "ids expire and snapshots mature within the run");
        for (labels, head) in [(false, st.order.seen_head()), (true, st.labels.head())] {
            let mut spans: Vec<(u64, u64)> = live
                .values()
                .filter(|v| v.2 == labels)
                .map(|v| (v.0, v.1))
                .collect();
            spans.sort_unstable();
            assert!(
                spans.iter().all(|&(_, end)| end > head),
                "spent records are deleted"
            );
            assert!(
                spans.first().is_some_and(|&(first, _)| first <= head),
                "{spans:?} {head}"
            );
            assert!(
                spans.windows(2).all(|w| w[0].1 == w[1].0),
                "contiguous: {spans:?}"
            );
        }
    }

    /// A journal record gone missing (a truncated changelog) is refused by name, not restored
    /// into a shard that forgot ids or snapshots.
    #[test]
    fn a_missing_journal_record_is_refused() {
        let mut s = fed(3, |_| {});
        let (meta, keys, mut journals) = records(&mut s);
        let labels = journals.iter().position(Journal::is_labels).unwrap();
        journals.remove(labels);
        let e = restore_shard(EngineConfig::default(), &meta, keys, journals).unwrap_err();
        assert!(
            matches!(e, ChangelogError::Incomplete(_)) && e.to_string().contains("label snapshots"),
            "{e}"
        );
    }

    /// A changelog of version 3 (journaled entries inside the key records) restores the same
    /// shard, and the next changes journal every live entry, so that the records of both
    /// versions then restore it too.
    #[test]
    fn a_version_3_changelog_restores_and_is_journaled_at_the_next_batch() {
        let mut s = fed(3, |_| {});
        let (meta, keys, journals) = records(&mut s);
        let (meta3, keys3) = changelog::as_version_3(&meta, &keys, &journals);
        let mut r =
            restore_shard(EngineConfig::default(), &meta3, keys3.clone(), Vec::new()).unwrap();
        let same = |a: &Shard, b: &Shard| {
            assert_eq!(shard_to_batch(a, 0).unwrap(), shard_to_batch(b, 0).unwrap());
        };
        same(&r, &s);
        r.track_changes(true);
        let (meta4, none, journals4) = records(&mut r);
        assert!(none.is_empty(), "no key changed");
        let entries: usize = journals4.iter().map(Journal::len).sum();
        assert_eq!(
            entries,
            s.state().order.seen_ids().count() + s.state().labels.len()
        );
        let again = restore_shard(EngineConfig::default(), &meta4, keys3, journals4).unwrap();
        same(&again, &s);
    }

    #[test]
    fn a_missing_key_record_is_refused() {
        let mut s = shard_with_keys(EngineConfig::default());
        let (meta, mut keys, journals) = records(&mut s);
        keys.pop();
        let e = restore_shard(EngineConfig::default(), &meta, keys, journals)
            .unwrap_err()
            .to_string();
        assert!(e.contains("counts 2 keys but 1"), "{e}");
    }

    /// Events of three keys of one location, each of which the policy would raise.
    fn decoded(msgs: &[String]) -> crate::decode::DecodedBatch {
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        dec.decode(
            msgs.iter().map(|m| MessageRef {
                key: None,
                value: m.as_bytes(),
            }),
            1_767_300_000_000,
            &mut Vec::new(),
        )
    }

    fn sales(day: u32) -> Vec<String> {
        (1..=3)
            .map(|k| {
                format!(
                    r#"{{"event_id":"s{day}-{k}","type":"sale","sku":"K{k}","location":"S1","qty":1,"event_time":"2026-01-0{day}T0{k}:00:00Z"}}"#
                )
            })
            .collect()
    }

    /// The raise budget caps raises per location and day, and is restored with the shard:
    /// the restored shard refuses and admits exactly what the original does.
    #[test]
    fn the_raise_budget_caps_raises_and_survives_a_restore() {
        let mut cfg = EngineConfig::default();
        cfg.alerts.raise_threshold = 0.0;
        cfg.alerts.max_raised_per_location_per_day = 1;
        let mut s = Shard::new(cfg);
        s.track_changes(true);
        let mut alerts = Vec::new();
        s.process(
            &decoded(&sales(1)),
            u64::from,
            None,
            &mut Vec::new(),
            &mut alerts,
        );
        s.advance(true, None, &mut alerts);
        let raised = |a: &[crate::alert::Alert]| {
            a.iter()
                .filter(|a| {
                    a.kind == crate::alert::AlertKind::StockoutRisk
                        && a.status == crate::alert::AlertStatus::Raised
                })
                .count()
        };
        assert_eq!(raised(&alerts), 1, "{alerts:?}");
        assert_eq!(s.counters().raises_over_budget, 2);
        let (meta, keys, journals) = records(&mut s);
        let mut r = restore_shard(cfg, &meta, keys, journals).unwrap();
        assert_eq!(
            shard_record(&r),
            meta,
            "the budgets are in the shard record"
        );
        let batch = shard_to_batch(&s, 0).unwrap();
        let mut from_snapshot =
            shard_from_batch(&batch, &shard_meta(&batch).unwrap(), cfg).unwrap();
        assert!(!s.state().budgets.is_empty());
        assert_eq!(
            from_snapshot.state().budgets,
            s.state().budgets,
            "and in the snapshot"
        );
        assert_eq!(from_snapshot.counters(), s.counters());
        // Day 2 (after the cool-down): the same decisions from every copy.
        let next = decoded(&sales(2));
        let mut out = Vec::new();
        for shard in [&mut s, &mut r, &mut from_snapshot] {
            let mut a = Vec::new();
            shard.process(&next, u64::from, None, &mut Vec::new(), &mut a);
            shard.advance(true, None, &mut a);
            out.push((raised(&a), shard.counters().raises_over_budget));
        }
        assert!(out[0].0 <= 1, "{out:?}");
        assert_eq!(out[0], out[1]);
        assert_eq!(out[0], out[2]);
    }

    /// Hours `from..to` of three keys from 2026-01-01: a sale every hour, and each key out of
    /// stock for an hour in turn (so snapshots mature with both outcomes); decoded on 2026-01-05.
    fn hours(from: u32, to: u32) -> crate::decode::DecodedBatch {
        let mut m = Vec::new();
        for h in from..to {
            let t = |min: u32| format!("2026-01-{:02}T{:02}:{min:02}:00Z", 1 + h / 24, h % 24);
            for k in 1..=3 {
                m.push(format!(
                    r#"{{"event_id":"h{h}-s{k}","type":"sale","sku":"K{k}","location":"S1","qty":1,"event_time":"{}"}}"#,
                    t(10 + k)
                ));
                let out = (h + k) % 3 == 0 && (h / 3 + k) % 2 == 0;
                m.push(format!(
                    r#"{{"event_id":"h{h}-a{k}","type":"availability","sku":"K{k}","location":"S1","in_stock":{},"event_time":"{}"}}"#,
                    !out,
                    t(40 + k)
                ));
            }
        }
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let mut rejects = Vec::new();
        let b = dec.decode(
            m.iter().map(|m| MessageRef {
                key: None,
                value: m.as_bytes(),
            }),
            1_767_600_000_000,
            &mut rejects,
        );
        assert!(rejects.is_empty(), "{rejects:?}");
        b
    }

    /// The calibration layer learns from the margins kept in the label snapshots, and a shard
    /// restored from the changelog or a snapshot, with snapshots still waiting, continues
    /// exactly as the original: same layer, same weights, same risks.
    #[test]
    fn the_calibration_layer_and_the_snapshots_margins_survive_a_restore() {
        let mut cfg = EngineConfig::default();
        cfg.model.horizon_hours = 2;
        cfg.model.label_sample_hours = 1;
        cfg.model.learner.calibration_rate = 0.05;
        let mut s = Shard::new(cfg);
        s.track_changes(true);
        s.process(
            &hours(0, 48),
            u64::from,
            None,
            &mut Vec::new(),
            &mut Vec::new(),
        );
        s.advance(true, None, &mut Vec::new());
        assert!(s.label_backlog() > 0, "snapshots wait across the restore");
        assert!(s
            .state()
            .labels
            .iter()
            .all(|l| l.margin.is_finite() && l.challenger_margin.is_nan()));
        let layer = s.model().export()["calibration"].clone();
        assert!(layer["updates"].as_u64().unwrap_or(0) > 0, "{layer}");
        assert_ne!(layer["a"].as_f64(), Some(1.0), "{layer}");
        let (meta, keys, journals) = records(&mut s);
        let mut r = restore_shard(cfg, &meta, keys, journals).unwrap();
        let batch = shard_to_batch(&s, 0).unwrap();
        let mut from_snapshot =
            shard_from_batch(&batch, &shard_meta(&batch).unwrap(), cfg).unwrap();
        let next = hours(48, 72);
        let mut out = Vec::new();
        for shard in [&mut s, &mut r, &mut from_snapshot] {
            let mut a = Vec::new();
            shard.process(&next, u64::from, None, &mut Vec::new(), &mut a);
            shard.advance(true, None, &mut a);
            let risks: Vec<f64> = a.iter().map(|a| a.risk).collect();
            out.push((shard.model().export(), risks));
        }
        assert_ne!(out[0].0["calibration"], layer, "the layer kept learning");
        assert_eq!(out[0], out[1], "restored from the changelog");
        assert_eq!(out[0], out[2], "restored from a snapshot");
    }

    #[test]
    fn another_model_version_restarts_the_model_and_keeps_the_inventory() {
        let mut v1 = EngineConfig::default();
        v1.model.learner.kind = LearnerKind::Linear;
        let mut s = shard_with_keys(v1);
        let (meta, keys, journals) = records(&mut s);
        let r = restore_shard(EngineConfig::default(), &meta, keys, journals).unwrap();
        assert_eq!(r.keys(), 2);
        assert_eq!(
            r.model().version(),
            Shard::new(EngineConfig::default()).model().version()
        );
        assert_ne!(r.model().version(), s.model().version());
        // The inventory side is kept: here, the events still waiting for the watermark.
        assert!(r.pending_events() > 0);
        assert_eq!(r.pending_events(), s.pending_events());
    }
}
