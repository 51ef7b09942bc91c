//! What is persisted of one shard: [`ShardState`] — the keys, their rows and open shipments,
//! the event order (remembered ids, events waiting for the watermark), the label snapshots,
//! the model replica and its rolling quality (and those of the challenger, with
//! `model.challenger`) and the counters. Snapshots ([`super::snapshot`]) and
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
    /// `stockout_risk` raises refused by `alerts.max_raised_per_location_per_day`.
    pub raises_over_budget: u64,
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
    /// The artifact the model started from ([`crate::model::InitialModel::id`]; `None`: the
    /// prior, or a state written before origins were recorded).
    pub(crate) origin: Option<String>,
    /// `model.challenger`: scored beside the model, learning from the same labels, never
    /// alerting.
    pub(crate) challenger: Option<Challenger>,
    /// Lifetime counters.
    pub(crate) counters: ShardCounters,
    /// The raise budgets of the shard's locations (`alerts.max_raised_per_location_per_day`).
    pub(crate) budgets: crate::alert::RaiseBudgets,
}

/// The challenger replica of a shard (`model.challenger`).
#[derive(Debug)]
pub struct Challenger {
    /// The replica.
    pub(crate) model: Box<dyn RiskModel>,
    /// Its rolling prequential quality (over the labels whose snapshot it scored).
    pub(crate) quality: RollingQuality,
    /// The artifact it started from ([`crate::model::InitialModel::id`]).
    pub(crate) origin: String,
}

impl Challenger {
    /// The replica.
    pub fn model(&self) -> &dyn RiskModel {
        self.model.as_ref()
    }

    /// Its rolling prequential quality.
    pub fn quality(&self) -> &RollingQuality {
        &self.quality
    }
}

/// A persisted model: its state, quality and origin (as a snapshot or the changelog keeps it).
#[derive(Debug, Clone, Copy)]
pub struct SavedModel<'a> {
    /// [`RiskModel::export`].
    pub state: &'a serde_json::Value,
    /// Its rolling quality.
    pub quality: RollingQuality,
    /// The artifact it started from, if known.
    pub origin: Option<&'a str>,
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
            origin: cfg.model.initial.map(|i| i.id().to_owned()),
            challenger: crate::model::build_challenger(&cfg.model).map(|model| Challenger {
                model,
                quality: RollingQuality::default(),
                origin: cfg
                    .model
                    .challenger
                    .map(|c| c.id().to_owned())
                    .unwrap_or_default(),
            }),
            counters: ShardCounters::default(),
            budgets: crate::alert::RaiseBudgets::new(),
        }
    }

    /// Restores both models of a state built by [`ShardState::new`] from a saved champion and
    /// challenger. Promotion is a configuration change, recognised by origin:
    ///
    /// - the champion continues from the saved champion, unless `model.initial` is the saved
    ///   challenger's artifact: then it continues from the saved challenger (promoted, with
    ///   what it learned live);
    /// - the challenger (with `model.challenger`) continues from the saved model that started
    ///   from its artifact (the saved challenger, or the saved champion after a swap), else it
    ///   starts from its artifact; without `model.challenger` a saved one is dropped.
    ///
    /// A saved model of another version than the replica taking it (`model.learner.kind`
    /// changed) is not taken: that replica restarts from its start (the prior or its artifact)
    /// and a warning says so — for the champion only when `restart_other_version` (else it is
    /// an error, as any other refusal is).
    pub fn restore_models(
        &mut self,
        cfg: &StateConfig,
        champion: SavedModel<'_>,
        challenger: Option<SavedModel<'_>>,
        restart_other_version: bool,
    ) -> Result<(), crate::model::ModelError> {
        let initial = cfg.model.initial.map(|i| i.id());
        // Only a change: a champion already from `model.initial` stays (a challenger from the
        // same artifact is not a promotion).
        let promoted = challenger
            .filter(|c| c.origin.is_some() && c.origin == initial && champion.origin != initial);
        let from = promoted.unwrap_or(champion);
        if promoted.is_some() {
            tracing::info!("model.initial is the saved challenger's artifact: promoted, it continues as the champion");
        }
        if !restart_other_version {
            self.model.import(from.state)?;
        }
        if take(self.model.as_mut(), &from, "champion")? {
            self.quality = from.quality;
            self.origin = from.origin.map(str::to_owned);
        }
        if let Some(ch) = &mut self.challenger {
            let mine = Some(ch.origin.as_str());
            let saved = [challenger, Some(champion)]
                .into_iter()
                .flatten()
                .find(|m| m.origin == mine);
            if let Some(saved) = saved {
                if take(ch.model.as_mut(), &saved, "challenger")? {
                    ch.quality = saved.quality;
                }
            }
        }
        Ok(())
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

    /// The challenger replica (`model.challenger`).
    pub fn challenger(&self) -> Option<&Challenger> {
        self.challenger.as_ref()
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

/// Imports `saved` into `m`; `false` (and a warning) for another model version.
fn take(
    m: &mut dyn RiskModel,
    saved: &SavedModel<'_>,
    role: &str,
) -> Result<bool, crate::model::ModelError> {
    match m.import(saved.state) {
        Ok(()) => Ok(true),
        Err(crate::model::ModelError::VersionMismatch { found, expected }) => {
            // A model of another version (a rollout that changed `model.learner.kind`, or a
            // new model) cannot take the old weights: it starts afresh, the inventory state
            // and the pending labels (features, not weights) are kept, and it learns on.
            tracing::warn!(
                model = role,
                found = %found,
                expected = %expected,
                "the saved state is another model version's: this model restarts (inventory state kept)"
            );
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
