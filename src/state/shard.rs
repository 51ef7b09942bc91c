//! What is persisted of one shard: [`ShardState`] — the keys, their rows and open shipments,
//! the event order (remembered ids, events waiting for the watermark), the label snapshots,
//! the model replica, its rolling quality and the counters. Snapshots ([`super::snapshot`]) and
//! the changelog ([`super::changelog`]) read and write exactly this; the engine's shard owns
//! one and adds its scratch buffers and mode switches.

use super::columns::Rows;
use super::inbound::Inbound;
use super::keys::KeyDict;
use super::order::EventOrder;
use crate::event::EventType;
use crate::model::labels::{PendingLabels, RollingQuality};
use crate::model::{ModelConfig, RiskModel};

/// The settings a shard's state is built with (the part of the engine configuration that
/// shapes what is persisted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateConfig {
    /// Allowed lateness of event time, ms.
    pub allowed_lateness_ms: i64,
    /// How long event ids are remembered for dedupe, ms of event time.
    pub dedupe_ttl_ms: i64,
    /// Model settings (which learner the replica is).
    pub model: ModelConfig,
}

/// Counters of one shard's lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ShardCounters {
    /// Events applied, by type code (a state written before contract v2 has four).
    #[serde(deserialize_with = "by_type")]
    pub applied: [u64; EventType::COUNT],
    /// Rejections at ingest: late.
    pub late: u64,
    /// Rejections at ingest: duplicate.
    pub duplicate: u64,
    /// Rejections at ingest: a revision or cancellation of a closed shipment.
    pub shipment_closed: u64,
    /// Revisions or cancellations of a closed shipment refused when applied (the closure was
    /// still waiting for the watermark when they were admitted): nothing changed.
    pub shipments_refused: u64,
    /// Inventory counts that found the book (recorded on hand) known.
    pub counts_against_book: u64,
    /// Of those, counts below the book: phantom inventory.
    pub counts_below_book: u64,
    /// Σ (book − count) over the counts below the book: phantom units.
    pub phantom_units: f64,
    /// Receipts naming no open shipment of their key (applied to on hand all the same).
    pub receipts_unmatched: u64,
    /// Shipments dropped unreceived: overdue, or beyond the per-key bound.
    pub shipments_dropped: u64,
    /// Stockout episodes started.
    pub stockouts: u64,
    /// Alerts emitted, `[kind][status]`.
    pub alerts: [[u64; 3]; 2],
}

/// Reads per-type counters of at most [`EventType::COUNT`] types (missing ones are 0).
fn by_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u64; EventType::COUNT], D::Error> {
    let v: Vec<u64> = serde::Deserialize::deserialize(d)?;
    let mut out = [0u64; EventType::COUNT];
    if v.len() > out.len() {
        return Err(serde::de::Error::custom(format_args!(
            "{} event types (this build has {})",
            v.len(),
            out.len()
        )));
    }
    out[..v.len()].copy_from_slice(&v);
    Ok(out)
}

/// Everything of one shard that a snapshot or the changelog keeps.
#[derive(Debug)]
pub struct ShardState {
    /// The key dictionary `(location, sku) -> row`.
    pub(crate) keys: KeyDict,
    /// One row per key.
    pub(crate) rows: Rows,
    /// Open shipments by key.
    pub(crate) inbound: Inbound,
    /// Watermark, reorder buffer and remembered ids.
    pub(crate) order: EventOrder,
    /// The model replica.
    pub(crate) model: Box<dyn RiskModel>,
    /// Label snapshots waiting to mature.
    pub(crate) labels: PendingLabels,
    /// Rolling prequential quality of the model.
    pub(crate) quality: RollingQuality,
    /// Lifetime counters.
    pub(crate) counters: ShardCounters,
}

impl ShardState {
    /// An empty state with a fresh model replica.
    pub fn new(cfg: &StateConfig) -> Self {
        ShardState {
            keys: KeyDict::default(),
            rows: Rows::default(),
            inbound: Inbound::default(),
            order: EventOrder::new(cfg.allowed_lateness_ms, cfg.dedupe_ttl_ms),
            model: crate::model::build(&cfg.model),
            labels: PendingLabels::default(),
            quality: RollingQuality::default(),
            counters: ShardCounters::default(),
        }
    }

    /// Keys tracked.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Counters so far.
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// The model replica.
    pub fn model(&self) -> &dyn RiskModel {
        self.model.as_ref()
    }

    /// The key rows.
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    /// The key dictionary.
    pub fn key_dict(&self) -> &KeyDict {
        &self.keys
    }
}
