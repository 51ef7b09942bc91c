//! # stockwatch
//!
//! Streaming stockout-risk detection: inventory events in, stockout-risk alerts out.
//!
//! ```text
//!  sale / shipment / receipt / availability (JSON, keyed "{location}|{sku}")
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
//! - [`event`]: the input contract v1 (types the JSON Schema is generated from).
//! - [`reject`]: rejection reasons (bounded codes) — the dead-letter contract's core.
//! - [`decode`]: raw messages → validated Arrow `RecordBatch` + rejections.
//! - [`partition`]: Kafka's default partitioner (murmur2), for key → shard routing.
//! - [`state`]: per-shard state — key dictionary, per-key rows, inbound schedule, event order.
//! - [`model`]: features, analytic prior, online learner, delayed labels.
//! - [`alert`]: the alert contract v1 and the hysteresis/cool-down policy.
//! - [`schema`]: JSON Schemas of both contracts, generated from the types (`schemas/`).
//! - [`engine`]: the shard (apply → score → alert) and the multi-shard engine.
//! - [`source`] / [`sink`]: reading event files, writing alerts, rejects and reports.
//! - [`eval`]: offline prequential evaluation on real data (`stockwatch evaluate`): dataset
//!   readers, metrics, baselines, plots.
//! - [`sim`]: a deterministic store-network simulator (the load generator), and its ground
//!   truth to score alerts against.
//! - [`config`]: layered configuration (embedded defaults, file, environment).
//! - [`telemetry`]: Prometheus metrics, health/readiness and the HTTP endpoints that serve them.
//! - [`cli`]: the `stockwatch` command line (the binary is a thin wrapper).

pub mod alert;
pub mod cli;
pub mod config;
pub mod decode;
pub mod engine;
pub mod eval;
pub mod event;
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
