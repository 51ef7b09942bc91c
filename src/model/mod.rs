//! Model: stockout risk of a key within the horizon, from its state.
//!
//! - [`features`]: the feature vector of one key at one moment (demand estimate, prior, cover,
//!   trend, intermittency, inbound timing, availability history).
//! - [`prior`]: the analytic prior P(demand over the horizon > available stock).
//! - [`learner`]: the online learners (AdaGrad logistic regressions starting at the prior):
//!   v1 linear, v2 (default) with binned and crossed features.
//! - [`labels`]: delayed labels — snapshots mature in event time into training examples, and
//!   the rolling prequential quality ([`labels::RollingQuality`]).
//! - [`auc`]: the windowed prequential ROC AUC ([`RollingAuc`]).
//!
//! The shard owns one model replica; [`RiskModel`] is the seam for a better learner.

pub mod auc;
pub mod features;
pub mod labels;
pub mod learner;
pub mod prior;

use serde::{Deserialize, Serialize};

pub use auc::RollingAuc;
use features::{Features, NF};

/// Errors of model state handling.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The saved state does not parse or has the wrong shape.
    #[error("model state is invalid: {0}")]
    BadState(String),
    /// The saved state is of another model version.
    #[error("model state is version {found:?}, this build runs {expected:?}")]
    VersionMismatch {
        /// Version found in the state.
        found: String,
        /// Version of this build.
        expected: &'static str,
    },
}

/// An online risk model: scores feature vectors, learns from matured labels, saves its state.
pub trait RiskModel: Send + std::fmt::Debug {
    /// Version string carried by every alert.
    fn version(&self) -> &str;
    /// P(stockout within the horizon), in [0, 1].
    fn score(&self, x: &Features) -> f64;
    /// One matured label.
    fn learn(&mut self, x: &Features, positive: bool);
    /// Per-feature contributions to the score's logit (for alert reasons).
    fn contributions(&self, x: &Features, out: &mut [f64; NF]);
    /// Labels learned from so far.
    fn updates(&self) -> u64;
    /// The state as JSON (weights, normalisers, version).
    fn export(&self) -> serde_json::Value;
    /// Restores a state produced by [`RiskModel::export`].
    fn import(&mut self, state: &serde_json::Value) -> Result<(), ModelError>;
}

/// Model settings (`[model]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Horizon of the risk: P(stockout within this many hours).
    pub horizon_hours: u32,
    /// At most one label snapshot per key per this many hours of event time.
    pub label_sample_hours: u32,
    /// At most this many snapshots wait for their labels per shard.
    pub max_pending_labels: usize,
    /// Learner hyper-parameters.
    pub learner: learner::LearnerConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            horizon_hours: 72,
            label_sample_hours: 12,
            max_pending_labels: 1_000_000,
            learner: learner::LearnerConfig::default(),
        }
    }
}

/// Builds the configured model.
pub fn build(cfg: &ModelConfig) -> Box<dyn RiskModel> {
    match cfg.learner.kind {
        learner::LearnerKind::Linear => Box::new(learner::AdaGradLogistic::new(cfg.learner)),
        learner::LearnerKind::Binned => Box::new(learner::BinnedLogistic::new(cfg.learner)),
    }
}
