//! Per-phase cost of the engine (decode, ingest, advance) in ns per event over KEYS uniform
//! keys after warm-up: `cargo run --release --example phases -- [KEYS] [early]` (default 1 M;
//! `early`: with early alerts, which score each event a second time at ingest).
#[path = "../tests/support/load.rs"]
mod load;
use std::time::{Duration, Instant};
use stockwatch::decode::{DecodeLimits, Decoder, KeyPolicy};
use stockwatch::engine::{BatchOutput, EngineConfig, Shard};
fn main() {
    let keys: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let mut l = load::Load::new(keys, 3.6);
    let mut cfg = EngineConfig::default();
    cfg.alerts.early = std::env::args().nth(2).as_deref() == Some("early");
    let mut shard = Shard::new(cfg);
    let mut dec = Decoder::new(DecodeLimits::default(), KeyPolicy::Derive);
    let mut batch = load::Batch::default();
    let mut out = BatchOutput::default();
    let (mut td, mut ti, mut ta) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let total = 3 * keys as usize + 2_000_000;
    let mut n = 0;
    while n < total {
        batch.fill(&mut l, 4096);
        out.clear();
        let t0 = Instant::now();
        let b = dec.decode(batch.messages(), 1_800_000_000_000, &mut out.rejects);
        let t1 = Instant::now();
        shard.ingest(&b, u64::from, &mut out.rejects);
        let t2 = Instant::now();
        shard.advance(false, None, &mut out.alerts);
        let t3 = Instant::now();
        if n >= 3 * keys as usize {
            td += t1 - t0;
            ti += t2 - t1;
            ta += t3 - t2;
        }
        n += 4096;
    }
    let m = 2_000_000f64;
    println!("per event: decode {:.0} ns, ingest {:.0} ns, advance {:.0} ns, total {:.0} ns => {:.0} k/s",
        td.as_nanos() as f64 / m, ti.as_nanos() as f64 / m, ta.as_nanos() as f64 / m,
        (td + ti + ta).as_nanos() as f64 / m, m / (td + ti + ta).as_secs_f64() / 1e3);
}
