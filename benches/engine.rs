//! Throughput of the engine's hot path, in events (criterion `Throughput::Elements`):
//! decode → validate → reorder/dedupe → apply → score → alert policy, on one shard (one core).
//!
//! Every case runs twice: in the **default** configuration (early alerts on: each event is
//! also scored on arrival, see `engine::early`), which is what users run and what the README
//! quotes, and with early alerts off (`early_off_*`). The streams:
//! - `1M_keys_uniform`: steady state over 1 M distinct keys drawn uniformly (the cache-hostile
//!   worst case; `sim::load`), after 3 M warm-up events;
//! - `1M_keys_skewed`: the same keys drawn P(k) ∝ 1/k. This load's receipts never name a
//!   shipment, so hot keys keep the cap of open shipments (phantom open shipments);
//! - `real_shaped_30k_keys`: the store-network simulator (`sim`, seed 17, 100 stores and 2 DCs
//!   × 300 SKUs, real FreshRetailNet-50K demand, 4 days: 1.25 M events over 30 600 keys, skewed
//!   by real demand, availability observations, receipts naming their shipments, ~7 k
//!   confirmed and ~4 k early alerts). It is replayed from an empty shard, start to end, in
//!   batches: a sample is one batch, and the stream restarts on a fresh shard when it ends.
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

fn config(early: bool) -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.alerts.early = early;
    cfg
}

fn warm_shard(load: &mut load::Load, events: u64, early: bool) -> (Shard, Decoder) {
    let mut shard = Shard::new(config(early));
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut batch = load::Batch::default();
    let mut out = BatchOutput::default();
    let mut done = 0;
    while done < events {
        batch.fill(load, BATCH);
        shard.recycle_alerts(out.alerts.drain(..).chain(out.early.drain(..)));
        out.clear();
        let b = dec.decode(batch.messages(), NOW, &mut out.rejects);
        shard.process(&b, u64::from, None, &mut out.rejects, &mut out.alerts);
        out.early.extend(shard.drain_early());
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
    for (name, skewed, early) in [
        ("default_1M_keys_uniform", false, true),
        ("early_off_1M_keys_uniform", false, false),
        ("default_1M_keys_skewed", true, true),
        ("early_off_1M_keys_skewed", true, false),
    ] {
        let mut l = load::Load::new(KEYS, MS_PER_EVENT);
        l.skewed = skewed;
        let (mut shard, mut dec) = warm_shard(&mut l, 3 * u64::from(KEYS), early);
        let (per_key, strings, shard_level) = shard.state_bytes();
        eprintln!(
            "{name}: {} keys, per-key state {:.1} B/key (rows + index + early alerts' slots), key strings {:.1} MiB, \
             shard-level (inbound, reorder buffer {} events, dedupe {} ids, labels {}, early \
             alerts' shadows) {:.1} MiB, pools ({} locations, {} SKUs, {} categories) {:.1} KiB",
            shard.keys(),
            per_key as f64 / shard.keys() as f64,
            strings as f64 / 1048576.0,
            shard.pending_events(),
            shard.remembered_ids(),
            shard.label_backlog(),
            shard_level as f64 / 1048576.0,
            shard.pool_groups().0,
            shard.pool_groups().1,
            shard.pool_groups().2,
            shard.pool_bytes() as f64 / 1024.0
        );
        let mut out = BatchOutput::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    batch.fill(&mut l, BATCH);
                    shard.recycle_alerts(out.alerts.drain(..).chain(out.early.drain(..)));
                    out.clear();
                    let t = Instant::now();
                    let d = dec.decode(batch.messages(), NOW, &mut out.rejects);
                    shard.process(&d, u64::from, None, &mut out.rejects, &mut out.alerts);
                    out.early.extend(shard.drain_early());
                    total += t.elapsed();
                }
                total
            })
        });
    }

    // The real-shaped stream, replayed from the start on a fresh shard whenever it ends.
    let stream = load::real_shaped(BATCH).expect("a valid simulator config");
    let events: usize = stream.iter().map(|b| b.ends.len()).sum();
    eprintln!(
        "real_shaped_30k_keys: {events} events in {} batches",
        stream.len()
    );
    for (name, early) in [
        ("default_real_shaped_30k_keys", true),
        ("early_off_real_shaped_30k_keys", false),
    ] {
        let fresh = || {
            (
                Shard::new(config(early)),
                Decoder::new(DecodeLimits::default(), KeyPolicy::Derive),
            )
        };
        let (mut shard, mut dec) = fresh();
        let mut next = 0;
        let (mut alerts, mut early_alerts, mut done) = (0usize, 0usize, 0usize);
        let mut out = BatchOutput::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if next == stream.len() {
                        (shard, dec) = fresh();
                        next = 0;
                    }
                    let batch = &stream[next];
                    next += 1;
                    shard.recycle_alerts(out.alerts.drain(..).chain(out.early.drain(..)));
                    out.clear();
                    let t = Instant::now();
                    let d = dec.decode(batch.messages(), NOW, &mut out.rejects);
                    shard.process(&d, u64::from, None, &mut out.rejects, &mut out.alerts);
                    out.early.extend(shard.drain_early());
                    total += t.elapsed();
                    alerts += out.alerts.len();
                    early_alerts += out.early.len();
                    done += batch.ends.len();
                }
                // Batches differ in size at the stream's end: criterion's throughput assumes
                // `BATCH` events per sample, which the last batch of a pass falls short of
                // (one batch in ~300).
                total
            })
        });
        eprintln!(
            "{name}: {:.1} events per alert ({alerts} confirmed, {early_alerts} early over {done} events)",
            done as f64 / (alerts + early_alerts).max(1) as f64
        );
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
