//! Property tests of the engine through its public API (decode → shard → alerts):
//! order independence within the lateness window, on hand = receipts − sales, duplicates change
//! nothing, risk ∈ [0, 1], and exact state round-trips through Arrow IPC.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, RecordBatch};
use proptest::prelude::*;
use stockwatch::alert::Alert;
use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
use stockwatch::engine::persist;
use stockwatch::engine::{EngineConfig, Shard};
use stockwatch::reject::{RejectReason, Rejection};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const NOW: i64 = T0 + 400 * 86_400_000;
const H: i64 = 3_600_000;

#[derive(Debug, Clone)]
struct Ev {
    id: u32,
    kind: u8,
    key: (u8, u8),
    qty: f64,
    t: i64,
    eta_h: i64,
    ship: u8,
    in_stock: bool,
}

impl Ev {
    fn json(&self) -> String {
        let loc = format!("S{}", self.key.0);
        let sku = format!("K{}", self.key.1);
        let ts = |ms: i64| stockwatch::alert::rfc3339_ms(ms);
        match self.kind {
            0 => format!(
                r#"{{"event_id":"e{}","type":"sale","sku":"{sku}","location":"{loc}","qty":{},"event_time":"{}"}}"#,
                self.id,
                self.qty,
                ts(self.t)
            ),
            1 => format!(
                r#"{{"event_id":"e{}","type":"shipment","shipment_id":"sh{}","sku":"{sku}","location":"{loc}","qty":{},"event_time":"{}","eta":"{}"}}"#,
                self.id,
                self.ship,
                self.qty,
                ts(self.t),
                ts(self.t + self.eta_h * H)
            ),
            2 => format!(
                r#"{{"event_id":"e{}","type":"receipt","shipment_id":"sh{}","sku":"{sku}","location":"{loc}","qty":{},"event_time":"{}"}}"#,
                self.id,
                self.ship,
                self.qty,
                ts(self.t)
            ),
            _ => format!(
                r#"{{"event_id":"e{}","type":"availability","sku":"{sku}","location":"{loc}","in_stock":{},"event_time":"{}"}}"#,
                self.id,
                self.in_stock,
                ts(self.t)
            ),
        }
    }
}

fn ev_strategy(span_ms: i64) -> impl Strategy<Value = Ev> {
    (
        0u8..4,
        (0u8..2, 0u8..3),
        prop_oneof![1u32..50, 1u32..5000].prop_map(|q| f64::from(q) / 4.0),
        0..span_ms,
        1i64..200,
        0u8..4,
        any::<bool>(),
    )
        .prop_map(|(kind, key, qty, dt, eta_h, ship, in_stock)| Ev {
            id: 0,
            kind,
            key,
            qty,
            t: T0 + dt,
            eta_h,
            ship,
            in_stock,
        })
}

fn stream(span_ms: i64, max: usize) -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(ev_strategy(span_ms), 1..max).prop_map(|mut v| {
        for (i, e) in v.iter_mut().enumerate() {
            e.id = i as u32;
        }
        v
    })
}

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.model.horizon_hours = 24;
    c.model.label_sample_hours = 1;
    c
}

struct Run {
    shard: Shard,
    alerts: Vec<Alert>,
    rejects: Vec<Rejection>,
}

/// Feeds `jsons` in batches of `batch`, then flushes.
fn run(jsons: &[String], batch: usize) -> Run {
    let c = cfg();
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut shard = Shard::new(c);
    let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
    for chunk in jsons.chunks(batch.max(1)) {
        let b = dec.decode(
            chunk.iter().map(|s| MessageRef {
                key: None,
                value: s.as_bytes(),
            }),
            NOW,
            &mut rejects,
        );
        shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
    }
    shard.advance(true, None, &mut alerts);
    Run {
        shard,
        alerts,
        rejects,
    }
}

/// The state batch without what legitimately depends on arrival order (the insertion order of
/// remembered ids and the source positions of pending events).
fn canonical(s: &Shard) -> RecordBatch {
    let b = persist::shard_to_batch(s, 0).unwrap();
    let keep: Vec<usize> = (0..b.num_columns())
        .filter(|&i| {
            !matches!(
                b.schema().field(i).name().as_str(),
                "seen_ids" | "pending_events"
            )
        })
        .collect();
    let b = b.project(&keep).unwrap();
    // Rejection counters differ by construction (a duplicate is counted); the rest must not.
    let mut meta = persist::shard_meta(&b).unwrap();
    meta["counters"]["duplicate"] = 0.into();
    meta["counters"]["late"] = 0.into();
    // A revision of a closed shipment (shipment ids repeat here) is refused on arrival or when
    // applied, depending on the arrival order, with the same effect on the state.
    let c = &mut meta["counters"];
    let refused = c["shipment_closed"].as_u64().unwrap() + c["shipments_refused"].as_u64().unwrap();
    c["shipment_closed"] = refused.into();
    c["shipments_refused"] = 0.into();
    let md = [(
        "stockwatch.shards".to_string(),
        serde_json::json!([meta]).to_string(),
    )]
    .into();
    let schema = std::sync::Arc::new(b.schema().as_ref().clone().with_metadata(md));
    RecordBatch::try_new(schema, b.columns().to_vec()).unwrap()
}

/// Where two state snapshots differ: the metadata, or the first column and row that do (the
/// whole batches are too large to read in a failure message).
fn state_diff(a: &RecordBatch, b: &RecordBatch) -> Option<String> {
    if a == b {
        return None;
    }
    if a.schema() != b.schema() {
        let (ma, mb) = (persist::shard_meta(a), persist::shard_meta(b));
        return Some(format!(
            "metadata differs:\n  left:  {ma:?}\n  right: {mb:?}"
        ));
    }
    if a.num_rows() != b.num_rows() {
        return Some(format!("rows: {} vs {}", a.num_rows(), b.num_rows()));
    }
    for (i, f) in a.schema().fields().iter().enumerate() {
        let (ca, cb) = (a.column(i), b.column(i));
        if ca.to_data() == cb.to_data() {
            continue;
        }
        for r in 0..a.num_rows() {
            let (ra, rb) = (ca.slice(r, 1), cb.slice(r, 1));
            if ra.to_data() != rb.to_data() {
                return Some(format!(
                    "column {} row {r} (key {:?}):\n  left:  {ra:?}\n  right: {rb:?}",
                    f.name(),
                    arrow::util::display::array_value_to_string(a.column(1), r).ok()
                ));
            }
        }
    }
    Some("batches differ".into())
}

fn alert_set(a: &[Alert]) -> BTreeSet<String> {
    a.iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect()
}

/// Rejections other than revisions of closed shipments (shipment ids repeat in these streams).
fn unexpected(r: &[Rejection]) -> Vec<&Rejection> {
    r.iter()
        .filter(|r| r.reason != RejectReason::ShipmentClosed)
        .collect()
}

/// Sorts events by (t + jitter): every event arrives less than the lateness after any event that
/// is later in event time, i.e. a permutation within the lateness window.
fn jittered(events: &[Ev], jitter: &[i64]) -> Vec<String> {
    let mut idx: Vec<usize> = (0..events.len()).collect();
    idx.sort_by_key(|&i| (events[i].t + jitter[i % jitter.len()], i));
    idx.iter().map(|&i| events[i].json()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn order_within_lateness_does_not_matter(
        events in stream(72 * H, 120),
        jitter in prop::collection::vec(0i64..3_599_000, 1..50),
        batch in 1usize..40,
    ) {
        let sorted: Vec<String> = {
            let mut e = events.clone();
            e.sort_by_key(|e| (e.t, e.id));
            e.iter().map(Ev::json).collect()
        };
        let a = run(&sorted, 7);
        let b = run(&jittered(&events, &jitter), batch);
        prop_assert!(unexpected(&a.rejects).is_empty(), "{:?}", a.rejects);
        prop_assert!(unexpected(&b.rejects).is_empty(), "{:?}", b.rejects);
        prop_assert_eq!(canonical(&a.shard), canonical(&b.shard));
        prop_assert_eq!(alert_set(&a.alerts), alert_set(&b.alerts));
    }

    #[test]
    fn on_hand_is_receipts_minus_sales(events in stream(200 * H, 150)) {
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| (e.t, e.id));
        let r = run(&sorted.iter().map(Ev::json).collect::<Vec<_>>(), 16);
        prop_assert!(unexpected(&r.rejects).is_empty(), "{:?}", r.rejects);
        let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
        for e in &sorted {
            let k = (format!("S{}", e.key.0), format!("K{}", e.key.1));
            let v = want.entry(k).or_insert(0.0);
            match e.kind { 0 => *v -= e.qty, 2 => *v += e.qty, _ => {} }
        }
        let b = persist::shard_to_batch(&r.shard, 0).unwrap();
        let loc = b.column_by_name("location").unwrap().as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        let sku = b.column_by_name("sku").unwrap().as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        let oh = b.column_by_name("on_hand").unwrap().as_any().downcast_ref::<arrow::array::Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            let k = (loc.value(i).to_string(), sku.value(i).to_string());
            let w = want.get(&k).copied().unwrap_or(0.0);
            prop_assert!((oh.value(i) - w).abs() < 1e-6, "{:?}: {} vs {}", k, oh.value(i), w);
        }
    }

    #[test]
    fn duplicates_change_nothing(
        events in stream(48 * H, 100),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 1..20),
    ) {
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| (e.t, e.id));
        let plain: Vec<String> = sorted.iter().map(Ev::json).collect();
        // Re-send some events right after the original (inside the lateness window).
        let mut with_dups = Vec::new();
        let picks: BTreeSet<usize> = dups.iter().map(|i| i.index(sorted.len())).collect();
        for (i, s) in plain.iter().enumerate() {
            with_dups.push(s.clone());
            if picks.contains(&i) {
                with_dups.push(s.clone());
            }
        }
        let a = run(&plain, 9);
        let b = run(&with_dups, 9);
        prop_assert_eq!(canonical(&a.shard), canonical(&b.shard));
        prop_assert_eq!(alert_set(&a.alerts), alert_set(&b.alerts));
        let dups = unexpected(&b.rejects);
        prop_assert_eq!(dups.len(), picks.len());
        prop_assert!(dups.iter().all(|r| r.reason == RejectReason::Duplicate));
    }

    #[test]
    fn risk_is_a_probability(events in stream(400 * H, 200)) {
        let r = run(&events.iter().map(Ev::json).collect::<Vec<_>>(), 13);
        for a in &r.alerts {
            prop_assert!((0.0..=1.0).contains(&a.risk), "{}", a.risk);
            prop_assert!(a.expected_demand.is_finite() && a.in_transit >= 0.0);
        }
        for v in r.shard.top_risks(100) {
            prop_assert!((0.0..=1.0).contains(&v.risk), "{}", v.risk);
        }
        // Alerts are transitions: per kind, what is open is what was raised and not resolved
        // (the service's open-alerts gauge relies on it).
        let c = r.shard.counters().alerts;
        let open = r.shard.open_alerts();
        prop_assert_eq!(open[0], c[0][0] - c[0][2]);
        prop_assert_eq!(open[1], c[1][0] - c[1][2]);
    }

    #[test]
    fn state_round_trips_through_arrow_ipc(events in stream(100 * H, 120), cut in 0usize..120) {
        // Stop before the end without flushing, so pending events, dedupe memory, open shipments
        // and label snapshots are all part of the state.
        let jsons: Vec<String> = events.iter().map(Ev::json).collect();
        let cut = cut.min(jsons.len());
        let c = cfg();
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let mut shard = Shard::new(c);
        let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
        let b = dec.decode(jsons[..cut].iter().map(|s| MessageRef { key: None, value: s.as_bytes() }), NOW, &mut rejects);
        shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
        let before = persist::shard_to_batch(&shard, 0).unwrap();
        let meta = persist::shard_meta(&before).unwrap();
        let rebuilt = persist::shard_from_batch(&before, &meta, c).unwrap();
        prop_assert_eq!(persist::shard_to_batch(&rebuilt, 0).unwrap(), before.clone());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        persist::write_state(std::slice::from_ref(&shard), &p).unwrap();
        let mut back = persist::read_engine_state(&p, c).unwrap();
        prop_assert_eq!(back.len(), 1);
        let mut restored = back.remove(0);
        prop_assert_eq!(persist::shard_to_batch(&restored, 0).unwrap(), before);
        // The restored shard goes on exactly like the original.
        let rest = dec.decode(jsons[cut..].iter().map(|s| MessageRef { key: None, value: s.as_bytes() }), NOW, &mut Vec::new());
        let (mut a1, mut a2) = (Vec::new(), Vec::new());
        restored.process(&rest, u64::from, None, &mut Vec::new(), &mut a1);
        shard.process(&rest, u64::from, None, &mut Vec::new(), &mut a2);
        restored.advance(true, None, &mut a1);
        shard.advance(true, None, &mut a2);
        prop_assert_eq!(persist::shard_to_batch(&restored, 0).unwrap(), persist::shard_to_batch(&shard, 0).unwrap());
        prop_assert_eq!(a1, a2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The changelog: after any sequence of batches, the latest record of each changed key
    /// plus the latest shard record rebuild the shard exactly (its snapshot is equal), and the
    /// rebuilt shard goes on exactly like the original.
    #[test]
    fn state_round_trips_through_the_changelog(
        events in stream(100 * H, 160),
        cuts in prop::collection::vec(1usize..40, 1..6),
    ) {
        let jsons: Vec<String> = events.iter().map(Ev::json).collect();
        let c = cfg();
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        let mut shard = Shard::new(c);
        shard.set_inputs(2);
        shard.track_changes(true);
        let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
        let mut latest: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut meta = Vec::new();
        let mut at = 0;
        for (i, n) in cuts.iter().enumerate() {
            let end = (at + n).min(jsons.len());
            let b = dec.decode(jsons[at..end].iter().map(|s| MessageRef { key: None, value: s.as_bytes() }), NOW, &mut rejects);
            shard.ingest_rows(&b, &(0..b.len() as u32).collect::<Vec<_>>(), i % 2, u64::from, &mut rejects);
            shard.advance(false, None, &mut alerts);
            take_into(&mut shard, &mut latest);
            meta = persist::shard_record(&shard).encode();
            at = end;
        }
        let mut restored = restore_from(c, &meta, &latest);
        let diff = state_diff(&persist::shard_to_batch(&restored, 0).unwrap(), &persist::shard_to_batch(&shard, 0).unwrap());
        prop_assert!(diff.is_none(), "restored state differs: {}", diff.unwrap_or_default());
        prop_assert_eq!(restored.input_clock(1), shard.input_clock(1));
        prop_assert_eq!(restored.watermark_ms(), shard.watermark_ms());
        let rest = dec.decode(jsons[at..].iter().map(|s| MessageRef { key: None, value: s.as_bytes() }), NOW, &mut Vec::new());
        let rows: Vec<u32> = (0..rest.len() as u32).collect();
        let (mut a1, mut a2, mut r1, mut r2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        restored.ingest_rows(&rest, &rows, 0, u64::from, &mut r1);
        shard.ingest_rows(&rest, &rows, 0, u64::from, &mut r2);
        prop_assert_eq!(r1, r2);
        restored.advance(true, None, &mut a1);
        shard.advance(true, None, &mut a2);
        let diff = state_diff(&persist::shard_to_batch(&restored, 0).unwrap(), &persist::shard_to_batch(&shard, 0).unwrap());
        prop_assert!(diff.is_none(), "state after going on differs: {}", diff.unwrap_or_default());
        prop_assert_eq!(a1, a2);
        // The restored shard's changes, added to the same changelog, restore it again: its
        // journal goes on where the first shard's left off (nothing journaled twice or lost).
        take_into(&mut restored, &mut latest);
        let again = restore_from(c, &persist::shard_record(&restored).encode(), &latest);
        let diff = state_diff(&persist::shard_to_batch(&again, 0).unwrap(), &persist::shard_to_batch(&shard, 0).unwrap());
        prop_assert!(diff.is_none(), "restored twice, the state differs: {}", diff.unwrap_or_default());
    }
}

/// Adds `shard`'s changes to `latest` (message key → value) as a compacted topic keeps them: the
/// last value per key, a tombstone deleting its key.
fn take_into(shard: &mut Shard, latest: &mut BTreeMap<String, Vec<u8>>) {
    persist::take_changes(shard, |k, change| {
        let mut v = Vec::new();
        if change.encode(&mut v) {
            latest.insert(k.to_string(), v);
        } else {
            assert!(
                latest.remove(k).is_some(),
                "a tombstone for {k}, which was never written"
            );
        }
    });
}

/// The shard rebuilt from encoded records: a shard record and the latest key and journal
/// records, each decoded from its bytes.
fn restore_from(c: EngineConfig, meta: &[u8], latest: &BTreeMap<String, Vec<u8>>) -> Shard {
    use stockwatch::state::changelog::{Journal, KeyRecord, ShardRecord};
    let (journals, keys): (Vec<_>, Vec<_>) = latest.iter().partition(|(k, _)| k.starts_with('#'));
    let keys: Vec<KeyRecord> = keys
        .into_iter()
        .map(|(_, v)| KeyRecord::decode(v).unwrap())
        .collect();
    let journals: Vec<Journal> = journals
        .into_iter()
        .map(|(_, v)| Journal::decode(v).unwrap())
        .collect();
    let mut s =
        persist::restore_shard(c, &ShardRecord::decode(meta).unwrap(), keys, journals).unwrap();
    s.track_changes(true);
    s
}
