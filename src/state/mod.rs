//! State: what a shard knows about each (location, sku): one fixed-size row per key.
//!
//! - [`keys`]: the key dictionary `(location, sku) -> row`.
//! - [`columns`]: per-key rows — quantities, times, demand ring windows, availability history,
//!   alert state.
//! - [`transition`]: one event applied to one key's row and shipment schedule; its model inputs.
//! - [`inbound`]: open shipments by ETA (the in-transit schedule).
//! - [`order`]: watermark, reorder buffer and dedupe: events are applied in event-time order.
//! - [`huge`]: transparent huge pages for the large, randomly read buffers.
//! - [`snapshot`]: a shard's state as one Arrow `RecordBatch` / IPC file and back.

pub mod changelog;
pub mod columns;
pub mod huge;
pub mod inbound;
pub mod keys;
pub mod order;
pub mod snapshot;
pub mod transition;
