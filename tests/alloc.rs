//! No per-event heap allocation on the decode → ingest → apply → score path in steady state:
//! once buffers have grown, a batch costs a constant number of allocations (Arrow's output
//! buffers, the schema), however many events it holds. The same holds with an alert on
//! (nearly) every event, as long as the caller hands published alerts back
//! (`Shard::recycle_alerts`): an alert is then rebuilt in the strings of a spent one, and its
//! record (key, JSON, headers) is written into the service's reused buffers (`AlertEncoder`).
//! Rejections allocate (their message), by design; these streams have none.

use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy};
use stockwatch::engine::{BatchOutput, EngineConfig, Shard};
use stockwatch::sim::load;
use stockwatch::sink::record::AlertEncoder;
use stockwatch::telemetry::Stage;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const NOW: i64 = 1_800_000_000_000;

/// What one stream cost: allocations per batch (256 and 2048 events), the marginal
/// allocations per event, and the alerts per event.
struct Cost {
    per_batch_small: f64,
    per_batch_large: f64,
    per_event: f64,
    alerts_per_event: f64,
}

fn measure(cfg: EngineConfig) -> Cost {
    let keys = 2_000;
    // 2 ms of event time per event and one minute of lateness: the reorder buffer and dedupe
    // memory hold ~30 k events. (The reorder buffer's B-tree allocates per second of event
    // time, not per event: a sparse stream pays a little per bucket.)
    let mut l = load::Load::new(keys, 2.0);
    let mut shard = Shard::new(cfg);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut batch = load::Batch::default();
    let mut out = BatchOutput::default();
    let mut alerts = 0usize;
    // The service's alert records (key, JSON value, CloudEvents headers, open-alerts key),
    // written into reused buffers.
    let mut encoder = AlertEncoder::default();
    let mut encoded = 0usize;
    let mut process = |b: &load::Batch, shard: &mut Shard, alerts: &mut usize| {
        shard.recycle_alerts(out.alerts.drain(..).chain(out.early.drain(..)));
        out.clear();
        let d = dec.decode(b.messages(), NOW, &mut out.rejects);
        shard.process(&d, u64::from, None, &mut out.rejects, &mut out.alerts);
        out.early.extend(shard.drain_early());
        assert!(out.rejects.is_empty());
        *alerts += out.alerts.len() + out.early.len();
        let staged = (out.alerts.iter().map(|a| (Stage::Confirmed, a)))
            .chain(out.early.iter().map(|a| (Stage::Early, a)));
        for (stage, a) in staged {
            let r = encoder.encode(a, stage, "stockwatch/alloc");
            encoded += r.key.len() + r.value.len() + r.open_key.len() + r.headers.len();
        }
    };
    // Warm up well past the lateness window so every buffer has reached its working size (the
    // batches as large as the largest measured: as many spare alerts as it emits).
    for _ in 0..100 {
        batch.fill(&mut l, 2048);
        process(&batch, &mut shard, &mut alerts);
    }
    // The generator allocates while formatting; make the batches before counting.
    let mut make = |n: usize, size: usize| -> Vec<load::Batch> {
        (0..n)
            .map(|_| {
                let mut b = load::Batch::default();
                b.fill(&mut l, size);
                b
            })
            .collect()
    };
    let (small_batches, large_batches) = (make(20, 256), make(20, 2048));
    let mut measure = |batches: &[load::Batch], shard: &mut Shard, alerts: &mut usize| {
        let before = dhat::HeapStats::get().total_blocks;
        for b in batches {
            process(b, shard, alerts);
        }
        (dhat::HeapStats::get().total_blocks - before) as f64
    };
    let small = measure(&small_batches, &mut shard, &mut alerts);
    alerts = 0;
    let large = measure(&large_batches, &mut shard, &mut alerts);
    std::hint::black_box(encoded);
    Cost {
        per_batch_small: small / 20.0,
        per_batch_large: large / 20.0,
        per_event: (large - small) / (20.0 * (2048.0 - 256.0)),
        alerts_per_event: alerts as f64 / (20.0 * 2048.0),
    }
}

fn check(name: &str, c: &Cost) {
    eprintln!(
        "{name}: allocations per batch: {:.1} (256 events), {:.1} (2048 events); marginal per \
         event: {:.4}; alerts per event: {:.3}",
        c.per_batch_small, c.per_batch_large, c.per_event, c.alerts_per_event
    );
    // Arrow builders grow geometrically, so a larger batch may cost a handful more blocks, but
    // nothing proportional to the events in it.
    assert!(
        c.per_event < 0.01,
        "{name}: {} allocations per event",
        c.per_event
    );
    assert!(
        c.per_batch_large < 100.0,
        "{name}: {} allocations per batch",
        c.per_batch_large
    );
}

// One test: dhat counts the whole process, so the streams are measured one after the other.
#[test]
fn steady_state_allocations_do_not_grow_with_events_or_alerts() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let base = EngineConfig {
        allowed_lateness_ms: 60_000,
        dedupe_ttl_ms: 60_000,
        ..EngineConfig::default()
    };

    // No alerts (the default configuration, early alerts on, with thresholds never reached).
    let mut quiet = base;
    quiet.alerts.raise_threshold = 1.0;
    quiet.alerts.resolve_threshold = 0.99;
    let c = measure(quiet);
    check("no alerts", &c);
    assert_eq!(c.alerts_per_event, 0.0);

    // The same with a challenger (`model.challenger`): a second score per event, its risk
    // kept per key.
    let mut with_challenger = quiet;
    {
        use stockwatch::model::learner::{LearnerConfig, LearnerKind};
        use stockwatch::model::{InitialModel, ModelArtifact};
        let learner = LearnerConfig {
            kind: LearnerKind::Linear,
            ..LearnerConfig::default()
        };
        let m = &quiet.model;
        let a = ModelArtifact::at_prior(learner, m.horizon_hours, m.label_sample_hours, "alloc");
        with_challenger.model.challenger = Some(InitialModel::from_artifact("alloc".into(), a));
    }
    let c = measure(with_challenger);
    check("no alerts, with a challenger", &c);
    assert_eq!(c.alerts_per_event, 0.0);

    // An alert on nearly every event: every key's risk alert opens at once (threshold 0) and
    // is updated whenever its risk moves at all (no cool-down).
    let mut loud = base;
    loud.alerts.raise_threshold = 0.0;
    loud.alerts.resolve_threshold = -1.0;
    loud.alerts.update_min_delta = 1e-12;
    loud.alerts.cooldown_minutes = 0;
    let c = measure(loud);
    check("an alert per event", &c);
    assert!(
        c.alerts_per_event > 0.5,
        "the stream should raise or update an alert on most events: {}",
        c.alerts_per_event
    );

    // A raise candidate on every event, nearly all refused by a budget of one raise per
    // location per day: every key raises, resolves on its next event and is a candidate again
    // (no cool-down), so the budget is consulted on most events.
    let mut budgeted = base;
    budgeted.alerts.raise_threshold = 0.0;
    budgeted.alerts.resolve_threshold = 0.999;
    budgeted.alerts.cooldown_minutes = 0;
    budgeted.alerts.max_raised_per_location_per_day = 1;
    let c = measure(budgeted);
    check("a raise budget consulted on every event", &c);

    changelog_allocations_do_not_grow_with_the_changed_keys();
}

/// The state changelog (`persist::take_changes`, every `service.commit_interval_ms` in the
/// service, over every key changed since): a constant number of allocations per call, however
/// many keys changed (each key's record is borrowed from the shard and encoded into the
/// caller's buffer). Before, each changed key cost a dozen (its record's owned vectors).
fn changelog_allocations_do_not_grow_with_the_changed_keys() {
    let mut shard = Shard::new(EngineConfig::default());
    shard.track_changes(true);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut l = load::Load::new(2_000, 60_000.0);
    let mut batch = load::Batch::default();
    let mut value = Vec::with_capacity(1 << 16);
    let mut cost = |events: usize, shard: &mut Shard| -> (usize, f64) {
        batch.fill(&mut l, events);
        let d = dec.decode(batch.messages(), NOW, &mut Vec::new());
        shard.process(&d, u64::from, None, &mut Vec::new(), &mut Vec::new());
        let keys = shard.changed_keys();
        let before = dhat::HeapStats::get().total_blocks;
        stockwatch::engine::persist::take_changes(shard, |_, r| {
            value.clear();
            r.encode(&mut value);
        });
        (keys, (dhat::HeapStats::get().total_blocks - before) as f64)
    };
    // Warm up: pending events, remembered ids, shipments and label snapshots on most keys.
    for _ in 0..20 {
        cost(2_000, &mut shard);
    }
    let (few, few_blocks) = cost(100, &mut shard);
    let (many, many_blocks) = cost(8_000, &mut shard);
    let per_key = (many_blocks - few_blocks) / (many - few) as f64;
    eprintln!(
        "changelog: {few_blocks} allocations for {few} changed keys, {many_blocks} for {many}; \
         marginal per key: {per_key:.3}"
    );
    assert!(many > 5 * few, "{many} vs {few} changed keys");
    assert!(per_key < 0.05, "{per_key} allocations per changed key");
    assert!(
        many_blocks < 64.0,
        "{many_blocks} allocations for {many} changed keys"
    );
}
