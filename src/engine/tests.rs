//! Engine-level tests: the shard against the state's own transition and persistence code.

use super::{EngineConfig, Shard};
use crate::event::EventType;
use crate::state::columns::{flag, HOUR_MS};
use crate::state::inbound::KeySchedule;
use crate::state::order::{Groups, PendingEvent};

/// A copy of a key's row with a standalone schedule, advanced event by event, stays equal to
/// the shard's own row (apart from what scoring and the alert policy write) and gives the
/// same model inputs.
#[test]
fn a_copied_row_with_a_vec_schedule_follows_the_shard() {
    let t0 = 1_767_225_600_000i64;
    let mut s = Shard::new(EngineConfig::default());
    let h = i64::from(s.config().model.horizon_hours) * HOUR_MS;
    let (row, _) = s.state.keys.get_or_insert("S1", "K1");
    s.state.rows.push_key();
    let mut next = crate::xorshift(0x2545_f491_4f6c_dd1du64);
    let mut t = t0;
    let events: Vec<PendingEvent> = (0..1200u64)
        .map(|n| {
            t += (next() % 4) as i64 * HOUR_MS / 2 + 1;
            let dice = next() % 100;
            let (kind, qty) = match dice {
                0..=49 => (EventType::Sale, (next() % 3) as f64),
                50..=61 => (EventType::Availability, 0.0),
                62..=71 => (EventType::Receipt, (next() % 40) as f64),
                72..=79 => (EventType::InventoryCount, (next() % 30) as f64),
                80..=87 => (EventType::Adjustment, (next() % 9) as f64 - 4.0),
                _ => (EventType::Shipment, (next() % 30) as f64),
            };
            PendingEvent {
                time_ms: t,
                id_hash: n + 1,
                row,
                kind,
                in_stock: next() % 3 == 0,
                qty,
                eta_ms: t + ((next() % 30) as i64 - 5) * 24 * HOUR_MS,
                shipment_hash: next() % 24,
                // Shipments: one in four cancels.
                sub: u8::from(next() % 4 == 0),
                groups: Groups::UNRESOLVED,
                source: n,
            }
        })
        .collect();
    let (first, second) = events.split_at(200);
    let mut alerts = Vec::new();
    for e in first {
        assert!(s.state.order.accept_from(0, *e).is_ok());
    }
    s.advance(true, None, &mut alerts);
    let mut copy = *s.state.rows.get(row as usize);
    let mut sched = s.state.inbound.schedule_of(copy.inbound_head);
    let mut opened = 0;
    for e in second {
        assert!(s.state.order.accept_from(0, *e).is_ok());
        s.advance(true, None, &mut alerts);
        copy.apply(e, &mut sched);
        let mine = *s.state.rows.get(row as usize);
        let theirs = mine.inputs(
            &KeySchedule::new(&mut s.state.inbound, row, mine.inbound_head),
            e.time_ms,
            h,
        );
        assert_eq!(copy.inputs(&sched, e.time_ms, h), theirs, "{e:?}");
        // What scoring and the alert policy write is the shard's business.
        copy.risk = mine.risk;
        copy.alert_risk = mine.alert_risk;
        copy.last_alert_ms = mine.last_alert_ms;
        copy.last_sample_hour = mine.last_sample_hour;
        copy.inbound_head = mine.inbound_head;
        assert_eq!(copy.count_gap, mine.count_gap);
        copy.flags = (copy.flags & !flag::RISK_OPEN) | (mine.flags & flag::RISK_OPEN);
        assert_eq!(copy, mine, "{e:?}");
        assert_eq!(
            sched.shipments(),
            s.state.inbound.schedule_of(mine.inbound_head).shipments()
        );
        opened = opened.max(sched.shipments().len());
    }
    assert!(opened > 3, "the schedule was exercised ({opened})");
    let c = s.counters();
    assert!(c.shipments_dropped > 0 && c.stockouts > 0, "{c:?}");
    assert!(c.shipments_refused > 0, "closed shipments were revised");
    assert!(c.counts_below_book > 0 && c.phantom_units > 0.0);
}

/// Random events of `keys` keys over about two months of event time, in time order.
fn events_of_keys(keys: u32, n: u64, seed: u64, rows: &[u32]) -> Vec<PendingEvent> {
    let mut next = crate::xorshift(seed);
    let mut t = 1_767_225_600_000i64;
    (0..n)
        .map(|i| {
            t += (next() % 3) as i64 * HOUR_MS / (2 * i64::from(keys)) + 1;
            let (kind, qty) = match next() % 100 {
                0..=79 => (EventType::Sale, (next() % 3) as f64),
                80..=81 => (EventType::Availability, 0.0),
                82..=91 => (EventType::Receipt, (next() % 40) as f64),
                _ => (EventType::InventoryCount, (next() % 30) as f64),
            };
            PendingEvent {
                time_ms: t,
                id_hash: i + 1,
                row: rows[(next() % u64::from(keys)) as usize],
                kind,
                in_stock: next() % 3 == 0,
                qty,
                eta_ms: t,
                shipment_hash: 0,
                sub: 0,
                groups: Groups::UNRESOLVED,
                source: i,
            }
        })
        .collect()
}

/// A shard with `keys` keys fed `events`; its alerts.
fn run_shard(cfg: EngineConfig, keys: u32, n: u64) -> (Shard, Vec<crate::alert::Alert>) {
    run_shard_with(cfg, keys, n, None)
}

/// As [`run_shard`], the shard given `master` first if any.
fn run_shard_with(
    cfg: EngineConfig,
    keys: u32,
    n: u64,
    master: Option<std::sync::Arc<crate::master::MasterData>>,
) -> (Shard, Vec<crate::alert::Alert>) {
    let mut s = Shard::new(cfg);
    if let Some(m) = master {
        s.set_master(m);
    }
    s.track_changes(true);
    let rows: Vec<u32> = (0..keys)
        .map(|k| {
            let (row, _) = s.state.keys.get_or_insert("S1", &format!("K{k}"));
            s.state.rows.push_key();
            row
        })
        .collect();
    let mut alerts = Vec::new();
    for chunk in events_of_keys(keys, n, 0x9e37_79b9_7f4a_7c15, &rows).chunks(500) {
        for e in chunk {
            assert!(s.state.order.accept_from(0, *e).is_ok());
        }
        s.advance(false, None, &mut alerts);
    }
    s.advance(true, None, &mut alerts);
    (s, alerts)
}

/// An item table gives category pools: a shard that gets it after its events rebuilds its
/// pools to what a shard that had it from the start maintained event by event (replay = run),
/// and a shard without one has none (its keys read an empty category pool).
#[test]
fn an_item_table_gives_category_pools_rebuilt_when_it_changes() {
    use crate::engine::pool::contribution;
    use crate::model::features::window_hours;
    let (keys, n) = (24u32, 6_000u64);
    let mut m = crate::master::MasterData::default();
    // Three categories; K0 has none.
    for k in 1..keys {
        let record = format!(r#"{{"sku":"K{k}","category":"c{}/x/y"}}"#, k % 3);
        m.apply_item(&format!("K{k}"), Some(record.as_bytes()))
            .unwrap();
    }
    let m = std::sync::Arc::new(m);
    let cfg = EngineConfig::default();
    let (mut late, _) = run_shard(cfg, keys, n);
    assert_eq!(late.pool_groups(), (1, keys as usize, 0));
    let (early, _) = run_shard_with(cfg, keys, n, Some(m.clone()));
    late.set_master(m.clone());
    assert_eq!(late.pool_groups(), (1, keys as usize, 3));
    let window = window_hours(i64::from(cfg.model.horizon_hours) * HOUR_MS);
    let mut categorised = 0;
    for k in 0..keys {
        let sku = format!("K{k}");
        let row = late.state.keys.get("S1", &sku).expect("a key");
        let own = contribution(late.state.rows.get(row as usize), window);
        let a = late.pools().others_of("S1", &sku, &m, &own);
        let b = early.pools().others_of("S1", &sku, &m, &own);
        assert_eq!(a, b, "{sku}");
        if k == 0 {
            assert_eq!(a.category, Default::default());
        } else if a.category.keys > 0 {
            categorised += 1;
        }
    }
    assert!(
        categorised > 0,
        "some keys read a category pool with history"
    );
}

fn with_challenger(cfg: EngineConfig) -> EngineConfig {
    use crate::model::learner::{LearnerConfig, LearnerKind};
    use crate::model::{InitialModel, ModelArtifact};
    let learner = LearnerConfig {
        kind: LearnerKind::Linear,
        ..LearnerConfig::default()
    };
    let a = ModelArtifact::at_prior(learner, cfg.model.horizon_hours, 12, "test");
    let mut c = cfg;
    c.model.challenger = Some(InitialModel::from_artifact("challenger.json".into(), a));
    c
}

/// A challenger changes no alert, learns from every label the champion learns from, is scored
/// on every key, and its weights survive the changelog and a snapshot; a restart without it
/// drops it, a record written before challengers restores it from its artifact, and naming
/// its artifact as `model.initial` promotes it with what it learned live.
#[test]
fn a_challenger_learns_beside_the_champion_never_alerts_and_is_persisted() {
    use crate::engine::persist::ChangeLog;
    use crate::engine::persist::{shard_from_batch, shard_meta, shard_record, shard_to_batch};
    use crate::model::ModelConfig;
    let plain_cfg = EngineConfig::default();
    let ch_cfg = with_challenger(plain_cfg);
    let (keys, n) = (40, 60_000);
    let (plain, plain_alerts) = run_shard(plain_cfg, keys, n);
    let (mut s, alerts) = run_shard(ch_cfg, keys, n);
    assert!(alerts.len() > 10, "{} alerts", alerts.len());
    assert_eq!(
        alerts, plain_alerts,
        "the challenger never changes an alert"
    );
    assert!(plain.challenger().is_none());

    let ch = s.challenger().expect("a challenger");
    let learned = s.model().updates();
    assert!(learned > 1000, "{learned} labels");
    assert_eq!(ch.model().updates(), learned, "the same labels");
    assert_eq!(ch.quality().labels, s.quality().labels);
    assert_ne!(ch.quality().brier, s.quality().brier, "another model");
    let q = s.quality();
    assert!(q.positives > 0 && q.positives < q.labels, "{q:?}");
    assert!(s.rolling_auc().is_some(), "{q:?}");
    assert!(s.challenger_rolling_auc().is_some() && plain.challenger_rolling_auc().is_none());
    let start = ch_cfg.model.challenger.unwrap().artifact().state.clone();
    let ch_state = ch.model().export();
    let ch_quality = *ch.quality();
    assert_ne!(ch_state, start, "it learned live");
    let v = s.view("S1", "K0").expect("tracked");
    let cr = v.challenger_risk.expect("scored by the challenger");
    assert!((0.0..=1.0).contains(&cr) && cr != v.risk, "{v:?}");
    assert_eq!(plain.view("S1", "K0").unwrap().challenger_risk, None);
    assert_eq!(plain.view("S1", "K0").unwrap().risk, v.risk);

    // The changelog: both models come back.
    let mut log = ChangeLog::default();
    log.take(&mut s);
    let meta = shard_record(&s);
    let back = log.restore(ch_cfg, &meta).unwrap();
    assert_eq!(back.model().export(), s.model().export());
    let bch = back.challenger().expect("restored");
    assert_eq!(bch.model().export(), ch_state);
    assert_eq!(*bch.quality(), ch_quality);
    // A snapshot too.
    let b = shard_to_batch(&s, 0).unwrap();
    let from_snap = shard_from_batch(&b, &shard_meta(&b).unwrap(), ch_cfg).unwrap();
    assert_eq!(from_snap.challenger().unwrap().model().export(), ch_state);

    // Without `model.challenger`: dropped, the champion as it was.
    let dropped = log.restore(plain_cfg, &meta).unwrap();
    assert!(dropped.challenger().is_none());
    assert_eq!(dropped.model().export(), s.model().export());

    // A record written before challengers: the champion restores, the challenger starts
    // from its artifact.
    let mut old: serde_json::Value = serde_json::from_slice(&meta.encode()[1..]).unwrap();
    let obj = old.as_object_mut().unwrap();
    assert!(obj.remove("challenger").is_some());
    assert!(
        obj.remove("model_origin").is_none(),
        "the champion is from the prior"
    );
    let mut value = vec![crate::state::changelog::CHANGELOG_VERSION];
    value.extend(serde_json::to_vec(&old).unwrap());
    let old = crate::state::changelog::ShardRecord::decode(&value).unwrap();
    let r = log.restore(ch_cfg, &old).unwrap();
    assert_eq!(r.model().export(), s.model().export());
    assert_eq!(r.challenger().unwrap().model().export(), start);

    // Promotion: `model.initial` = the challenger's artifact (and its learner), no challenger.
    let art = ch_cfg.model.challenger.unwrap();
    let promoted_cfg = EngineConfig {
        model: ModelConfig {
            initial: Some(art),
            challenger: None,
            learner: art.artifact().learner,
            ..ch_cfg.model
        },
        ..ch_cfg
    };
    promoted_cfg.model.check().expect("a valid configuration");
    let p = log.restore(promoted_cfg, &meta).unwrap();
    assert_eq!(
        p.model().export(),
        ch_state,
        "the champion is the live challenger"
    );
    assert_eq!(*p.quality(), ch_quality);
    assert!(p.challenger().is_none());
    // ... and it stays the champion at the next restart (its origin is `model.initial`).
    let after = shard_record(&p);
    let encoded: serde_json::Value = serde_json::from_slice(&after.encode()[1..]).unwrap();
    assert_eq!(encoded["model_origin"], art.id());
}

/// Events admitted before the item table arrives carry their keys' group ids (resolved at
/// admission); the pools keep those ids when the table recategorises them, so the events
/// applied after it give what a shard that had the table from the start gives: the same
/// features and risks for every applied event, the same pools.
#[test]
fn events_admitted_before_an_item_table_apply_to_its_pools() {
    use crate::decode::{DecodeLimits, Decoder, KeyPolicy};
    use crate::sim::load;
    // 600 keys (one store's SKUs 0..599, a receipt each first), an event a minute: 40 h of
    // event time.
    let mut l = load::Load::new(600, 60_000.0);
    let batches: Vec<load::Batch> = (0..6)
        .map(|_| {
            let mut b = load::Batch::default();
            b.fill(&mut l, 400);
            b
        })
        .collect();
    let mut m = crate::master::MasterData::default();
    for sku in 0..1_000 {
        let name = format!("SKU-{sku:06}");
        let record = format!(r#"{{"sku":"{name}","category":"c{}/x"}}"#, sku % 7);
        m.apply_item(&name, Some(record.as_bytes())).unwrap();
    }
    let m = std::sync::Arc::new(m);
    let run = |table_after_first: bool| {
        let mut s = Shard::new(EngineConfig::default());
        let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
        if !table_after_first {
            s.set_master(m.clone());
        }
        s.record_scores(true);
        let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
        let mut scores = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let d = dec.decode(b.messages(), 1_800_000_000_000, &mut rejects);
            s.ingest(&d, u64::from, &mut rejects);
            if i == 0 && table_after_first {
                s.set_master(m.clone());
            }
            s.advance(false, None, &mut alerts);
            scores.extend(s.drain_scores().map(|r| (r.row, r.time_ms, r.risk, r.x)));
        }
        s.advance(true, None, &mut alerts);
        scores.extend(s.drain_scores().map(|r| (r.row, r.time_ms, r.risk, r.x)));
        assert!(rejects.is_empty(), "{rejects:?}");
        (s, alerts, scores)
    };
    let (a, alerts_a, scores_a) = run(false);
    let (b, alerts_b, scores_b) = run(true);
    assert_eq!(scores_a.len(), 2_400);
    assert_eq!(scores_a, scores_b);
    assert_eq!(alerts_a, alerts_b);
    // The category pools are read: some event saw other keys of its category.
    let cat = crate::model::features::CAT_POOL;
    assert!(scores_a
        .iter()
        .any(|s| s.3[cat..cat + 5] != scores_a[0].3[cat..cat + 5]));
    assert_eq!(a.pool_groups(), (1, 600, 7));
    assert_eq!(b.pool_groups(), a.pool_groups());
    let window = crate::model::features::window_hours(
        i64::from(EngineConfig::default().model.horizon_hours) * HOUR_MS,
    );
    for row in 0..a.keys() as u32 {
        let (location, sku) = a.state.keys.parts(row);
        let own = crate::engine::pool::contribution(a.state.rows.get(row as usize), window);
        assert_eq!(
            a.pools().others_of(location, sku, &m, &own),
            b.pools().others_of(location, sku, &m, &own),
            "{location}|{sku}"
        );
    }
}
