//! # stockwatch
//!
//! Streaming stockout-risk detection: inventory events in, stockout-risk alerts out.
//!
//! ```text
//!  sale / shipment / receipt / availability / inventory_count / adjustment
//!  (JSON, keyed "{location}|{sku}")
//!     │
//!  source ──> decode + validate ──> engine: route by key to shard p (one per partition)
//!  (file,       JSON -> Arrow batch;    · reorder by event time, dedupe, watermark
//!   Kafka)      bad -> rejection        · apply to Arrow-layout state
//!                                       · features -> model -> risk; matured labels -> learn
//!                                       · alert policy (raised / updated / resolved)
//!                                            │
//!  sink <────────────────────────────────────┘  alerts, dead letters (rejections + reason)
//! ```
//!
//! ## Layout
//! - [`event`]: the input contract v2 and v1 (types the JSON Schemas are generated from).
//! - [`reject`]: rejection reasons (bounded codes) — the dead-letter contract's core.
//! - [`decode`]: raw messages → validated Arrow `RecordBatch` + rejections.
//! - [`master`]: master data as tables (locations with their time zones, items), and the
//!   per-location local clock.
//! - [`partition`]: Kafka's default partitioner (murmur2), for key → shard routing.
//! - [`model`]: the model's read view of a key (`KeyInputs`), features, analytic prior,
//!   online learner and its calibration layer, delayed labels and the model's rolling quality
//!   (Brier, log loss, ROC AUC).
//! - [`state`]: per-shard state — key dictionary, per-key rows, inbound schedule, event order;
//!   [`state::ShardState`] is everything persisted of a shard, which snapshots and the
//!   changelog read and write.
//! - [`alert`]: the alert contract v1 and the hysteresis/cool-down policy.
//! - [`schema`]: JSON Schemas of both contracts, generated from the types (`schemas/`).
//! - [`engine`]: the shard (a `ShardState` plus scratch: apply → score → alert), its pools
//!   of locations and SKUs (`engine::pool`, the pooled features' state, derived from the
//!   rows), the multi-shard engine, and a shard to snapshot / changelog and back
//!   (`engine::persist`).
//! - [`source`] / [`sink`]: reading events (files, Kafka), writing alerts, rejects and reports.
//! - [`service`]: the Kafka service — consume, process, produce, commit, rebalance, restore.
//! - [`eval`]: offline prequential evaluation on real data (`stockwatch evaluate`): dataset
//!   readers, metrics, baselines, plots, and the exchange files of the offline reference.
//! - [`sim`]: a deterministic store-network simulator (the load generator), and its ground
//!   truth to score alerts against.
//! - [`config`]: layered configuration (embedded defaults, file, environment).
//! - [`kafka`]: what the Kafka clients share: librdkafka's features, client security checks.
//! - [`telemetry`]: Prometheus metrics, health/readiness and the HTTP endpoints that serve them.
//! - [`cli`]: the `stockwatch` command line (the binary is a thin wrapper).
//! - [`failpoint`]: named crash points for the fault-injection tests (`failpoints` feature
//!   only; nothing in a user's build).
//!
//! ## Dependencies
//! Imports point one way, down the data flow: each line's modules use only modules named on
//! the lines below it (`a ──> b`: `a` uses `b` directly).
//!
//! ```text
//!  cli ──────────────────> service, eval, sim, …
//!  service ──────────────> source, sink, telemetry, config, engine
//!  source, sink, telemetry ──> config
//!  config, eval ─────────> engine
//!  engine ───────────────> state, decode, partition, alert
//!  state ────────────────> model, alert
//!  model, decode ────────> event, reject          (leaves: event, reject, partition, alert)
//! ```
//!
//! `state` keeps the model replica and its label snapshots, so it may use `model`; `model`
//! never uses `state` (it reads a key only through `model::features::KeyInputs`, which the
//! state fills). `sim` stands alone; `schema` reads the contracts (`event`, `alert`).
//! `failpoint` is a leaf that `service` and `sink` use (crash points, test builds only).
//! Unsafe code is denied crate-wide (`Cargo.toml`, `[lints]`) except for the CPU and kernel
//! hints in `state::mem` and two librdkafka calls in `source::kafka` (a cached watermark, and
//! header names read as bytes).

pub mod alert;
pub mod cli;
pub mod config;
pub mod decode;
pub mod engine;
pub mod eval;
pub mod event;
pub mod failpoint;
pub mod kafka;
pub mod master;
pub mod model;
pub mod partition;
pub mod reject;
pub mod schema;
pub mod service;
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;

/// Unit tests' pseudo-random numbers: xorshift64 from `seed` (non-zero), the same sequence on
/// every run.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = seed;
    move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    }
}
