//! No per-event heap allocation on the decode → ingest → apply → score path in steady state:
//! once buffers have grown, a batch costs a constant number of allocations (Arrow's output
//! buffers, the schema), however many events it holds. Alerts and rejections allocate, by
//! design, and are rare; this stream triggers neither.

use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy};
use stockwatch::engine::{BatchOutput, EngineConfig, Shard};
use stockwatch::sim::load;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const NOW: i64 = 1_800_000_000_000;

#[test]
fn steady_state_allocations_do_not_grow_with_events() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let keys = 2_000;
    // 2 ms of event time per event and one minute of lateness: the reorder buffer and dedupe
    // memory hold ~30 k events. (The reorder buffer's B-tree allocates per second of event
    // time, not per event: a sparse stream pays a little per bucket.)
    let mut l = load::Load::new(keys, 2.0);
    let mut cfg = EngineConfig {
        allowed_lateness_ms: 60_000,
        dedupe_ttl_ms: 60_000,
        ..EngineConfig::default()
    };
    cfg.alerts.raise_threshold = 1.0; // no alerts: their (rare) allocation is not the point here
    cfg.alerts.resolve_threshold = 0.99;
    let mut shard = Shard::new(cfg);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut batch = load::Batch::default();
    let mut out = BatchOutput::default();
    let mut process = |b: &load::Batch, shard: &mut Shard| {
        out.clear();
        let d = dec.decode(b.messages(), NOW, &mut out.rejects);
        shard.process(&d, u64::from, None, &mut out.rejects, &mut out.alerts);
        assert!(out.rejects.is_empty() && out.alerts.is_empty());
    };
    // Warm up well past the lateness window so every buffer has reached its working size.
    for _ in 0..200 {
        batch.fill(&mut l, 1024);
        process(&batch, &mut shard);
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
    let mut measure = |batches: &[load::Batch], shard: &mut Shard| {
        let before = dhat::HeapStats::get().total_blocks;
        for b in batches {
            process(b, shard);
        }
        (dhat::HeapStats::get().total_blocks - before) as f64
    };
    let small = measure(&small_batches, &mut shard);
    let large = measure(&large_batches, &mut shard);
    let per_batch_small = small / 20.0;
    let per_batch_large = large / 20.0;
    let per_event = (large - small) / (20.0 * (2048.0 - 256.0));
    eprintln!(
        "allocations per batch: {per_batch_small:.1} (256 events), {per_batch_large:.1} (2048 events); \
         marginal per event: {per_event:.4}"
    );
    // Arrow builders grow geometrically, so a larger batch may cost a handful more blocks, but
    // nothing proportional to the events in it.
    assert!(per_event < 0.01, "{per_event} allocations per event");
    assert!(
        per_batch_large < 100.0,
        "{per_batch_large} allocations per batch"
    );
}
