//! Throughput of the engine's hot path, in events (criterion `Throughput::Elements`):
//! decode → validate → reorder/dedupe → apply → score → alert policy, on one shard (one core),
//! in steady state over 1 M distinct keys (uniformly random, the cache-hostile worst case).
//!
//! `cargo bench --bench engine` — the README's performance section quotes its figures.

// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy};
use stockwatch::engine::{BatchOutput, EngineConfig, Shard};
use stockwatch::sim::load;

const KEYS: u32 = 1_000_000;
const BATCH: usize = 4096;
/// Event time per event: 1 M events per hour of event time, i.e. every key about once an hour.
const MS_PER_EVENT: f64 = 3.6;
const NOW: i64 = 1_800_000_000_000;

fn warm_shard(load: &mut load::Load, events: u64) -> (Shard, Decoder) {
    // The pipeline: decode, apply, score. Early alerts (a second scoring at ingest)
    // are measured by `examples/phases -- KEYS early`.
    let mut cfg = EngineConfig::default();
    cfg.alerts.early = false;
    let mut shard = Shard::new(cfg);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut batch = load::Batch::default();
    let mut out = BatchOutput::default();
    let mut done = 0;
    while done < events {
        batch.fill(load, BATCH);
        out.clear();
        let b = dec.decode(batch.messages(), NOW, &mut out.rejects);
        shard.process(&b, u64::from, None, &mut out.rejects, &mut out.alerts);
        done += BATCH as u64;
    }
    (shard, dec)
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.sample_size(20).measurement_time(Duration::from_secs(15));

    // Decode + validate alone (no state), for scale.
    let mut l = load::Load::new(KEYS, MS_PER_EVENT);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut batch = load::Batch::default();
    batch.fill(&mut l, BATCH);
    let bytes = batch.buf.len() as f64 / BATCH as f64;
    eprintln!("mean event size: {bytes:.0} bytes");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("decode_validate_to_arrow", |b| {
        let mut rejects = Vec::new();
        b.iter(|| {
            rejects.clear();
            dec.decode(batch.messages(), NOW, &mut rejects)
        })
    });

    // Full path over 1 M keys in steady state: uniform keys (every access a cache miss), and
    // skewed keys (P(k) ∝ 1/k, closer to real sales where a few SKUs dominate).
    for (name, skewed) in [
        ("decode_apply_score_1M_keys_uniform", false),
        ("decode_apply_score_1M_keys_skewed", true),
    ] {
        let mut l = load::Load::new(KEYS, MS_PER_EVENT);
        l.skewed = skewed;
        let (mut shard, mut dec) = warm_shard(&mut l, 3 * u64::from(KEYS));
        let (per_key, strings, shard_level) = shard.state_bytes();
        eprintln!(
            "{name}: {} keys, per-key state {:.1} B/key (rows + index), key strings {:.1} MiB, \
             shard-level (inbound, reorder buffer {} events, dedupe {} ids, labels {}) {:.1} MiB",
            shard.keys(),
            per_key as f64 / shard.keys() as f64,
            strings as f64 / 1048576.0,
            shard.pending_events(),
            shard.remembered_ids(),
            shard.label_backlog(),
            shard_level as f64 / 1048576.0
        );
        let mut out = BatchOutput::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    batch.fill(&mut l, BATCH);
                    out.clear();
                    let t = Instant::now();
                    let d = dec.decode(batch.messages(), NOW, &mut out.rejects);
                    shard.process(&d, u64::from, None, &mut out.rejects, &mut out.alerts);
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

// No plots: criterion's plotters backend finds no font here once `plotters` is built with
// `ab_glyph` (our evaluation plots), and panics. The figures are in the terminal and
// `target/criterion/*/new/estimates.json`.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = engine
}
criterion_main!(benches);
