//! Per-phase cost of the engine (decode, ingest, advance) in ns per event over KEYS uniform
//! keys after warm-up: `cargo run --release --example phases -- [KEYS] [early-off] [skewed]
//! [challenger]` (default 1 M keys, the default configuration: early alerts on, which score each
//! event on arrival as well, in `ingest`; `early-off`: without them; `skewed`: keys drawn
//! P(k) ∝ 1/k as in the bench's skewed case; `challenger`: with a `model.challenger`, the v1
//! linear learner at its prior; `early` is accepted and changes nothing, for scripts that run
//! older builds too).
//!
//! `real`: the bench's real-shaped stream instead (`sim::load::real_shaped`: ~1.25 M events
//! over 30 600 keys, many alerts), replayed once from an empty shard and all of it measured
//! (KEYS is then ignored; `early-off` still applies).
//!
//! Warm-up is 3 × KEYS events, or `PHASES_WARM_EVENTS` (criterion's runs go on for ~15 M events,
//! so a long warm-up shows the state those runs end in).
//!
//! A second line gives the part of `advance` that the pooled features cost (see
//! `stockwatch::engine::pool`): a key's pools maintained and read as `Shard::apply` does it,
//! over the measured events' keys, timed apart, with an item table that puts every SKU in one
//! of 30 categories (the load has none: the shard above runs without category pools).
//!
//! The measured events are generated before the timed loop, so a profile of this program
//! (`perf record -e cpu-clock`) shows the engine, not the generator, for its last part. With
//! `PHASES_PERF_CTL=FIFO` it writes `enable` / `disable` to perf's control FIFO around the
//! timed loop, so only the engine is sampled:
//! `mkfifo /tmp/ctl && PHASES_PERF_CTL=/tmp/ctl perf record --control fifo:/tmp/ctl --delay=-1
//! -e cpu-clock target/release/examples/phases 1000000`.
use std::time::{Duration, Instant};
use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy};
use stockwatch::engine::pool::Pools;
use stockwatch::engine::{BatchOutput, EngineConfig, Shard};
use stockwatch::model::features::PoolSums;
use stockwatch::sim::load;

const BATCH: usize = 4096;
const MEASURED: usize = 2_000_000;

fn main() {
    let keys: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let flag = |f: &str| std::env::args().skip(2).any(|a| a == f);
    let mut l = load::Load::new(keys, 3.6);
    l.skewed = flag("skewed");
    let mut cfg = EngineConfig::default();
    cfg.alerts.early = !flag("early-off");
    if flag("challenger") {
        use stockwatch::model::learner::{LearnerConfig, LearnerKind};
        use stockwatch::model::{InitialModel, ModelArtifact};
        let learner = LearnerConfig {
            kind: LearnerKind::Linear,
            ..LearnerConfig::default()
        };
        let m = &cfg.model;
        let a = ModelArtifact::at_prior(learner, m.horizon_hours, m.label_sample_hours, "phases");
        cfg.model.challenger = Some(InitialModel::from_artifact("phases".into(), a));
    }
    if flag("real") {
        real(cfg);
        return;
    }
    let mut shard = Shard::new(cfg);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut out = BatchOutput::default();
    let now = 1_800_000_000_000;
    let mut batch = load::Batch::default();
    let warm: usize = std::env::var("PHASES_WARM_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3 * keys as usize);
    for _ in 0..warm.div_ceil(BATCH) {
        batch.fill(&mut l, BATCH);
        shard.recycle_alerts(out.alerts.drain(..).chain(out.early.drain(..)));
        out.clear();
        let b = dec.decode(batch.messages(), now, &mut out.rejects);
        shard.process(&b, u64::from, None, &mut out.rejects, &mut out.alerts);
        out.early.extend(shard.drain_early());
    }
    let measured: Vec<load::Batch> = (0..MEASURED / BATCH)
        .map(|_| {
            let mut b = load::Batch::default();
            b.fill(&mut l, BATCH);
            b
        })
        .collect();
    let mut t = Timed::default();
    perf_ctl("enable");
    for batch in &measured {
        t.batch(&mut shard, &mut dec, &mut out, batch, now);
    }
    perf_ctl("disable");
    println!("{}", t.line());

    // The pools' part of `advance`, per event: the key's group ids from its names, its part of
    // the pools before and after the event, the update, and the leave-one-out read. Done twice
    // over (the part removed, then added back: the shard's one update does both), over the
    // pools of the warmed-up shard's rows, for the rows of the measured events.
    let rows: Vec<u32> = measured
        .iter()
        .flat_map(|batch| {
            let b = dec.decode(batch.messages(), now, &mut out.rejects);
            let c = b.columns();
            (0..b.len())
                .filter_map(|i| shard.row_of(c.location.value(i), c.sku.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    let st = shard.state();
    let (keys_of, rows_of) = (st.key_dict(), st.rows());
    // An item table giving every SKU one of 30 top-level categories (the pools' category).
    let mut master = stockwatch::master::MasterData::default();
    for r in 0..rows_of.len() as u32 {
        let sku = keys_of.sku(r);
        let c = xxhash_rust::xxh3::xxh3_64(sku.as_bytes()) % 30;
        let record = format!(r#"{{"sku":"{sku}","category":"c{c}/sub"}}"#);
        master.apply_item(sku, Some(record.as_bytes())).unwrap();
    }
    let mut pools = Pools::rebuild(cfg.model.horizon_hours, rows_of, keys_of, &master);
    let zero = PoolSums::default();
    let mut seen = 0u64;
    let t0 = Instant::now();
    for &r in &rows {
        let (location, sku) = keys_of.parts(r);
        let g = pools.groups(location, sku, &master);
        let row = rows_of.get(r as usize);
        let before = pools.contribution(row);
        pools.update(g, &before, &zero);
        let own = pools.contribution(row);
        pools.update(g, &zero, &own);
        seen += u64::from(std::hint::black_box(pools.others(g, &own)).location.keys);
    }
    let tp = t0.elapsed();
    std::hint::black_box(seen);
    let (locations, skus, categories) = pools.groups_len();
    println!(
        "pools: maintain + read {:.0} ns per event ({} events; {} locations, {} SKUs, {} \
         categories, {} bytes of pools)",
        tp.as_nanos() as f64 / rows.len().max(1) as f64,
        rows.len(),
        locations,
        skus,
        categories,
        pools.heap_bytes(),
    );
}

/// The `real` mode: the real-shaped stream, from an empty shard, every event measured.
fn real(cfg: EngineConfig) {
    let stream = load::real_shaped(BATCH).expect("a valid simulator config");
    let mut shard = Shard::new(cfg);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut out = BatchOutput::default();
    let mut t = Timed::default();
    perf_ctl("enable");
    for batch in &stream {
        t.batch(&mut shard, &mut dec, &mut out, batch, 1_800_000_000_000);
    }
    perf_ctl("disable");
    println!(
        "{}: {} confirmed, {} early over {} events, {} keys",
        t.line(),
        t.alerts,
        t.early,
        t.events,
        shard.keys()
    );
}

/// Time spent per phase over the measured batches, and what they gave.
#[derive(Default)]
struct Timed {
    decode: Duration,
    ingest: Duration,
    advance: Duration,
    events: usize,
    alerts: usize,
    early: usize,
}

impl Timed {
    /// Runs one batch through decode, ingest and advance, timing each.
    fn batch(
        &mut self,
        shard: &mut Shard,
        dec: &mut Decoder,
        out: &mut BatchOutput,
        batch: &load::Batch,
        now: i64,
    ) {
        shard.recycle_alerts(out.alerts.drain(..).chain(out.early.drain(..)));
        out.clear();
        let t0 = Instant::now();
        let b = dec.decode(batch.messages(), now, &mut out.rejects);
        let t1 = Instant::now();
        shard.ingest(&b, u64::from, &mut out.rejects);
        let t2 = Instant::now();
        shard.advance(false, None, &mut out.alerts);
        out.early.extend(shard.drain_early());
        let t3 = Instant::now();
        self.decode += t1 - t0;
        self.ingest += t2 - t1;
        self.advance += t3 - t2;
        self.events += batch.ends.len();
        self.alerts += out.alerts.len();
        self.early += out.early.len();
    }

    /// The per-event line.
    fn line(&self) -> String {
        let m = self.events as f64;
        let per = |d: Duration| d.as_nanos() as f64 / m;
        let total = self.decode + self.ingest + self.advance;
        format!(
            "per event: decode {:.0} ns, ingest {:.0} ns, advance {:.0} ns, total {:.0} ns => \
             {:.0} k/s ({:.3} alerts per event)",
            per(self.decode),
            per(self.ingest),
            per(self.advance),
            per(total),
            m / total.as_secs_f64() / 1e3,
            (self.alerts + self.early) as f64 / m
        )
    }
}

/// Writes `cmd` to perf's control FIFO named by `PHASES_PERF_CTL`, if set.
fn perf_ctl(cmd: &str) {
    if let Ok(path) = std::env::var("PHASES_PERF_CTL") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("PHASES_PERF_CTL names perf's control FIFO");
        writeln!(f, "{cmd}").expect("perf reads its control FIFO");
    }
}
