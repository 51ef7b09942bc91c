//! A uniform-key event generator for benchmarks and allocation tests: ~200-byte events over
//! `keys` distinct (location, sku) pairs. The first `keys` events are one receipt per key (so on
//! hand is known everywhere), then a mix of sales (85 %), availability (8 %), receipts (5 %) and
//! shipments (2 %) on uniformly random keys. Event time advances `ms_per_event` per event.
//!
//! Used by `benches/engine.rs`, `examples/phases.rs` and `tests/alloc.rs`: a fixed, cheap
//! workload for measuring the engine, unlike the store-network simulator around it (whose
//! stream the same users measure as [`real_shaped`]).

use std::io::Write;

/// The generator: deterministic (a fixed seed), so every run measures the same events.
pub struct Load {
    /// Distinct (location, sku) keys.
    pub keys: u32,
    /// Event time between consecutive events, in milliseconds.
    pub ms_per_event: f64,
    /// Draw keys log-uniformly (P(k) ∝ 1/k, Zipf-like: a few hot SKUs, a long tail) instead
    /// of uniformly.
    pub skewed: bool,
    /// Events generated so far.
    pub n: u64,
    rng: u64,
    t0: i64,
}

impl Load {
    /// A generator over `keys` keys, uniform, starting at 2026-01-01T00:00:00Z.
    pub fn new(keys: u32, ms_per_event: f64) -> Self {
        Load {
            keys,
            ms_per_event,
            skewed: false,
            n: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            t0: 1_767_225_600_000,
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Appends one event (without newline) to `out`.
    pub fn next_event(&mut self, out: &mut Vec<u8>) {
        let n = self.n;
        self.n += 1;
        let (k, dice) = if n < u64::from(self.keys) {
            (n as u32, 97)
        } else {
            let r = self.rand();
            let k = if self.skewed {
                let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                // Scatter ranks over the key space so hot keys are not neighbours in memory.
                let rank = (f64::from(self.keys).powf(u) as u64).saturating_sub(1);
                (rank.wrapping_mul(0x9e37_79b9) % u64::from(self.keys)) as u32
            } else {
                (r % u64::from(self.keys)) as u32
            };
            (k, (self.rand() >> 40) % 100)
        };
        let t = self.t0 + (n as f64 * self.ms_per_event) as i64;
        // Out of chrono's range only ~260 000 years of event time later.
        let ts = chrono::DateTime::from_timestamp_millis(t).unwrap_or_default();
        let ts = ts.format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let (loc, sku) = (k / 1000, k % 1000);
        let _ = match dice {
            0..=84 => write!(
                out,
                r#"{{"event_id":"ev-{n:012}","type":"sale","sku":"SKU-{sku:06}","location":"STORE-{loc:05}","qty":1,"event_time":"{ts}","unit_price":19.99,"channel":"store","register":"R-{:02}"}}"#,
                n % 17
            ),
            85..=92 => write!(
                out,
                r#"{{"event_id":"ev-{n:012}","type":"availability","sku":"SKU-{sku:06}","location":"STORE-{loc:05}","in_stock":true,"event_time":"{ts}","source":"shelf_scan","scanner":"H-{:03}"}}"#,
                n % 101
            ),
            93..=97 => write!(
                out,
                r#"{{"event_id":"ev-{n:012}","type":"receipt","sku":"SKU-{sku:06}","location":"STORE-{loc:05}","qty":500,"event_time":"{ts}","dock":"D-{:02}","note":"regular replenishment"}}"#,
                n % 7
            ),
            _ => write!(
                out,
                r#"{{"event_id":"ev-{n:012}","type":"shipment","shipment_id":"SHP-{n:010}","sku":"SKU-{sku:06}","origin":"DC-01","location":"STORE-{loc:05}","qty":24,"event_time":"{ts}","eta":"{ts}"}}"#
            ),
        };
    }
}

/// A batch of messages in one buffer.
#[derive(Default)]
pub struct Batch {
    /// The messages' bytes, back to back.
    pub buf: Vec<u8>,
    /// The end offset of each message in `buf`.
    pub ends: Vec<usize>,
}

impl Batch {
    /// Replaces the batch's contents with the next `n` events of `load`.
    pub fn fill(&mut self, load: &mut Load, n: usize) {
        self.buf.clear();
        self.ends.clear();
        for _ in 0..n {
            load.next_event(&mut self.buf);
            self.ends.push(self.buf.len());
        }
    }

    /// The batch as unkeyed messages, ready for `Decoder`.
    pub fn messages(&self) -> impl Iterator<Item = crate::decode::MessageRef<'_>> + '_ {
        (0..self.ends.len()).map(move |i| {
            let s = if i == 0 { 0 } else { self.ends[i - 1] };
            crate::decode::MessageRef {
                key: None,
                value: &self.buf[s..self.ends[i]],
            }
        })
    }
}

/// The real-shaped stream of the engine bench and `examples/phases` (`real`), in batches of
/// `batch` events: the store-network simulator, seed 17, 100 stores and 2 DCs × 300 SKUs, real
/// FreshRetailNet-50K demand, 4 days (about 1.25 M events over 30 600 keys, skewed by real
/// demand, with availability observations, receipts naming their shipments, and thousands of
/// alerts).
pub fn real_shaped(batch: usize) -> Result<Vec<Batch>, super::SimError> {
    let cfg = super::SimConfig {
        stores: 100,
        dcs: 2,
        skus: 300,
        days: 4,
        seed: 17,
        demand: super::DemandSource::Frn50kSample,
        ..super::SimConfig::default()
    };
    let mut batches = vec![Batch::default()];
    for r in super::Simulator::new(cfg)? {
        let b = batches.last_mut().expect("one batch at least");
        b.buf.extend_from_slice(&r.value);
        b.ends.push(b.buf.len());
        if b.ends.len() == batch {
            batches.push(Batch::default());
        }
    }
    batches.retain(|b| !b.ends.is_empty());
    Ok(batches)
}
