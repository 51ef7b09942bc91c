//! Raw messages through the whole engine path, with the accounting a fuzzer or a property test
//! checks: every message is applied, pending or rejected exactly once; nothing panics; every
//! risk is a probability. Shared by `fuzz/` and `tests/fuzz_props.rs` (one harness, two
//! drivers).

use crate::alert::Alert;
use crate::decode::{Decoder, KeyPolicy, MessageRef};
use crate::engine::{EngineConfig, Shard};
use crate::reject::Rejection;

/// What became of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounting {
    /// Messages fed.
    pub messages: u64,
    /// Events applied.
    pub applied: u64,
    /// Events waiting for the watermark.
    pub pending: u64,
    /// Rejections (decode, validation, late, duplicate, miskeyed).
    pub rejected: u64,
    /// Shipment revisions refused when applied: their shipment's closure was applied after
    /// they were admitted (`ShardCounters::shipments_refused`).
    pub refused_at_apply: u64,
}

impl Accounting {
    /// Whether every message is accounted for exactly once.
    pub fn balanced(&self) -> bool {
        self.applied + self.pending + self.rejected + self.refused_at_apply == self.messages
    }
}

/// Feeds `(key, value)` messages in batches of `batch` through decode (keys required, as in
/// the service), apply and score, as of processing time `now_ms`. Panics only if an alert
/// carries a risk outside [0, 1] or a rejection points outside its batch.
pub fn exercise(
    messages: &[(Option<&[u8]>, &[u8])],
    batch: usize,
    now_ms: i64,
    cfg: EngineConfig,
) -> (Accounting, Shard) {
    let mut dec = Decoder::new(cfg.limits, KeyPolicy::Require);
    let mut shard = Shard::new(cfg);
    let (mut rejects, mut alerts): (Vec<Rejection>, Vec<Alert>) = (Vec::new(), Vec::new());
    let mut rejected = 0u64;
    for chunk in messages.chunks(batch.max(1)) {
        rejects.clear();
        let b = dec.decode(
            chunk.iter().map(|&(key, value)| MessageRef { key, value }),
            now_ms,
            &mut rejects,
        );
        shard.process(&b, u64::from, None, &mut rejects, &mut alerts);
        for r in &rejects {
            assert!((r.index as usize) < chunk.len(), "rejection index {r:?}");
        }
        rejected += rejects.len() as u64;
        for a in alerts.drain(..) {
            assert!((0.0..=1.0).contains(&a.risk), "risk {}", a.risk);
        }
    }
    let accounting = Accounting {
        messages: messages.len() as u64,
        applied: shard.counters().applied.iter().sum(),
        pending: shard.pending_events() as u64,
        rejected,
        refused_at_apply: shard.counters().shipments_refused,
    };
    (accounting, shard)
}
