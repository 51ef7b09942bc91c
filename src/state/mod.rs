//! State: what a shard knows about each (location, sku): one fixed-size row per key.
//!
//! - [`ShardState`] ([`shard`]): everything of one shard that is persisted — what snapshots
//!   and the changelog read and write. The engine's shard owns one. This module depends on
//!   `model` (the state keeps the model replica and its label snapshots), never on `engine`.
//! - [`keys`]: the key dictionary `(location, sku) -> row`.
//! - [`columns`]: per-key rows — quantities, times, demand ring windows, availability history,
//!   alert state.
//! - [`transition`]: one event applied to one key's row and shipment schedule; its model inputs.
//! - [`inbound`]: open shipments by ETA (the in-transit schedule).
//! - [`order`]: watermark, reorder buffer and dedupe: events are applied in event-time order.
//! - [`huge`]: transparent huge pages for the large, randomly read buffers.
//! - `mem`: the prefetch and `madvise` hints: with one librdkafka call in `source::kafka`,
//!   the only `unsafe` code the lints allow.
//! - [`snapshot`]: a shard's state as one Arrow `RecordBatch` / IPC file and back.
//! - [`changelog`]: a shard's state as one record per changed key plus a shard record, and back.

pub mod changelog;
pub mod columns;
pub mod huge;
pub mod inbound;
pub mod keys;
pub(crate) mod mem;
pub mod order;
pub mod shard;
pub mod snapshot;
pub mod transition;

pub use shard::{ShardCounters, ShardState, StateConfig};
