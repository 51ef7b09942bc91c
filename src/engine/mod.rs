//! The engine: decode → route by key to per-partition [`Shard`]s → apply, score, alert.
//!
//! The same engine runs under `replay` (a file), `evaluate` and the Kafka service; only the
//! source of the batches differs. Routing uses Kafka's default partitioner on the message key
//! `"{location}|{sku}"`, so `replay --partitions N` splits events exactly as the topics do.

pub mod early;
/// Test and fuzz harness only (feature `testing`): not part of the public API.
#[cfg(feature = "testing")]
pub mod exercise;
pub mod persist;
pub mod pool;
pub mod shard;
#[cfg(test)]
mod tests;

use crate::alert::{Alert, AlertPolicy};
use crate::decode::{DecodeLimits, Decoder, KeyPolicy, MessageRef};
use crate::model::ModelConfig;
use crate::partition::partition_for_key;
use crate::reject::{RejectReason, Rejection};
use crate::state::StateConfig;

pub use crate::state::ShardCounters;
pub use shard::{KeyView, OpenAlertView, ScoreRecord, Shard};

/// Everything a shard needs to know (built from the `[engine]`, `[model]` and `[alerts]`
/// sections of the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Decode limits.
    pub limits: DecodeLimits,
    /// Allowed lateness of event time, ms.
    pub allowed_lateness_ms: i64,
    /// How long event ids are remembered for dedupe, ms of event time (≥ lateness).
    pub dedupe_ttl_ms: i64,
    /// Model settings.
    pub model: ModelConfig,
    /// Alert policy.
    pub alerts: AlertPolicy,
}

impl EngineConfig {
    /// The part of the configuration that shapes a shard's persisted state.
    pub fn state_config(&self) -> StateConfig {
        StateConfig {
            allowed_lateness_ms: self.allowed_lateness_ms,
            dedupe_ttl_ms: self.dedupe_ttl_ms,
            model: self.model,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: DecodeLimits::default(),
            allowed_lateness_ms: 3_600_000,
            dedupe_ttl_ms: 3_600_000,
            model: ModelConfig::default(),
            alerts: AlertPolicy::default(),
        }
    }
}

/// Output of one batch, owned by the caller and reused across batches.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Alerts emitted, in emission order.
    pub alerts: Vec<Alert>,
    /// Early alerts emitted (`alerts.early`), in emission order.
    pub early: Vec<Alert>,
    /// Rejected messages (index into the batch), decode and ingest rejections together.
    pub rejects: Vec<Rejection>,
}

impl BatchOutput {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.early.clear();
        self.rejects.clear();
    }
}

/// Counters over the engine's lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Messages handed in.
    pub messages: u64,
    /// Rejections by reason (index: [`RejectReason::index`]).
    pub rejected: [u64; RejectReason::ALL.len()],
}

/// Several shards behind one decoder: a file or stream routed by key.
#[derive(Debug)]
pub struct Engine {
    shards: Vec<Shard>,
    decoder: Decoder,
    counters: EngineCounters,
    route: Vec<Vec<u32>>,
    key_buf: Vec<u8>,
}

impl Engine {
    /// An engine with `partitions` shards (at least one).
    pub fn new(cfg: EngineConfig, partitions: u32) -> Self {
        let n = partitions.max(1) as usize;
        Engine {
            shards: (0..n).map(|_| Shard::new(cfg)).collect(),
            decoder: Decoder::new(cfg.limits, KeyPolicy::Derive),
            counters: EngineCounters::default(),
            route: vec![Vec::new(); n],
            key_buf: Vec::with_capacity(64),
        }
    }

    /// The shards, by partition number.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Lifetime counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Unknown (ignored) fields seen by the decoder.
    pub fn unknown_fields(&self) -> u64 {
        self.decoder.stats().unknown_fields
    }

    /// Processes one micro-batch: decode, route, ingest, apply what the watermark allows.
    /// `source_base + index` is each message's source position; `now_ms` is the processing
    /// clock for time-range checks; `processing_ms` stamps alerts (`None`: event time).
    pub fn process_batch<'m>(
        &mut self,
        msgs: impl IntoIterator<Item = MessageRef<'m>>,
        source_base: u64,
        now_ms: i64,
        processing_ms: Option<i64>,
        out: &mut BatchOutput,
    ) {
        let first_reject = out.rejects.len();
        let batch = self.decoder.decode(msgs, now_ms, &mut out.rejects);
        let n = self.shards.len() as u32;
        for r in &mut self.route {
            r.clear();
        }
        {
            let c = batch.columns();
            for i in 0..batch.len() {
                let p = if n == 1 {
                    0
                } else {
                    self.key_buf.clear();
                    self.key_buf
                        .extend_from_slice(c.location.value(i).as_bytes());
                    self.key_buf.push(crate::event::KEY_SEPARATOR);
                    self.key_buf.extend_from_slice(c.sku.value(i).as_bytes());
                    partition_for_key(&self.key_buf, n)
                };
                self.route[p as usize].push(i as u32);
            }
        }
        for (p, shard) in self.shards.iter_mut().enumerate() {
            shard.set_processing_ms(processing_ms);
            shard.ingest_rows(
                &batch,
                &self.route[p],
                0,
                |i| source_base + u64::from(i),
                &mut out.rejects,
            );
            shard.advance(false, processing_ms, &mut out.alerts);
            out.early.extend(shard.drain_early());
        }
        for r in &out.rejects[first_reject..] {
            self.counters.rejected[r.reason.index()] += 1;
        }
        self.counters.messages = self.decoder.stats().messages;
    }

    /// Empties `out` for the next batch, handing its alerts back to the shards to be rebuilt in
    /// place (see [`Shard::recycle_alerts`]): in steady state an alert then allocates nothing.
    pub fn recycle(&mut self, out: &mut BatchOutput) {
        let n = self.shards.len();
        let per_shard = (out.alerts.len() + out.early.len()).div_ceil(n);
        let mut spent = out.alerts.drain(..).chain(out.early.drain(..));
        for shard in &mut self.shards {
            shard.recycle_alerts(spent.by_ref().take(per_shard));
        }
        drop(spent);
        out.clear();
    }

    /// Uses `master` (locations' time zones) in every shard from the next event on.
    pub fn set_master(&mut self, master: std::sync::Arc<crate::master::MasterData>) {
        for s in &mut self.shards {
            s.set_master(master.clone());
        }
    }

    /// Applies everything still waiting for the watermark (end of an offline input).
    pub fn flush(&mut self, processing_ms: Option<i64>, out: &mut BatchOutput) {
        for s in &mut self.shards {
            s.advance(true, processing_ms, &mut out.alerts);
            out.early.extend(s.drain_early());
        }
    }
}
