//! Model: stockout risk of a key within the horizon, from its state.
//!
//! - [`features`]: the feature vector of one key at one moment (demand estimate, prior, cover,
//!   trend, intermittency, inbound timing, availability history).
//! - [`prior`]: the analytic prior P(demand over the horizon > available stock).
//! - [`learner`]: the online learners (AdaGrad logistic regressions starting at the prior):
//!   v1 linear, v2 (default) with binned and crossed features.
//! - [`calibration`]: the calibration layer on the learners' final margin (online Platt
//!   scaling, learned from the margins the label snapshots were scored with).
//! - [`labels`]: delayed labels — snapshots mature in event time into training examples, and
//!   the rolling prequential quality ([`labels::RollingQuality`]).
//! - [`auc`]: the windowed prequential ROC AUC ([`RollingAuc`]).
//! - [`artifact`]: a model trained offline as a file (`evaluate --save-model`), the starting
//!   point of every shard with `model.initial`, and of the challenger with `model.challenger`.
//!
//! The shard owns one model replica, the champion, whose risks raise alerts; with
//! `model.challenger` it owns a second one ([`ModelRole::Challenger`]) that learns from the same
//! matured labels and is scored on every key at the same points, but never alerts.
//! [`RiskModel`] is the seam for a better learner.

pub mod artifact;
pub mod auc;
pub mod calibration;
pub mod features;
pub mod labels;
pub mod learner;
pub mod prior;

use serde::{Deserialize, Serialize};

pub use artifact::{InitialModel, ModelArtifact};
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
    /// A model artifact could not be read.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A model artifact was built for other features.
    #[error(
        "model artifact {path} has feature-set fingerprint {found}, this build's is {expected} \
         (the features, their order or their bins differ): train it again with this build"
    )]
    FingerprintMismatch {
        /// The artifact's path.
        path: String,
        /// Its fingerprint.
        found: String,
        /// This build's.
        expected: String,
    },
    /// A model artifact was trained at another horizon than the configured one.
    #[error(
        "model artifact {path} was trained for horizon_hours = {found}, but model.horizon_hours \
         = {expected}: train it at {expected} h (evaluate --horizon-hours {expected} \
         --save-model FILE) or set model.horizon_hours = {found}"
    )]
    HorizonMismatch {
        /// The artifact's path.
        path: String,
        /// Its horizon, hours.
        found: u32,
        /// The configured horizon, hours.
        expected: u32,
    },
}

/// An online risk model: scores feature vectors, learns from matured labels, saves its state.
pub trait RiskModel: Send + std::fmt::Debug {
    /// Version string carried by every alert.
    fn version(&self) -> &str;
    /// P(stockout within the horizon), in [0, 1]: the calibrated risk (the margin through the
    /// calibration layer, [`calibration`]).
    fn score(&self, x: &Features) -> f64 {
        self.score_margin(x).0
    }
    /// The risk and the margin it came from (the weights' logit, before the calibration layer:
    /// what a label snapshot keeps for the layer to learn from).
    fn score_margin(&self, x: &Features) -> (f64, f64);
    /// One matured label: the weights learn from it (on their own margin, before calibration).
    fn learn(&mut self, x: &Features, positive: bool);
    /// One matured label of a snapshot scored at margin `margin` (its [`RiskModel::score_margin`]
    /// then): the calibration layer learns from it (nothing without a layer, nor for NaN).
    fn learn_calibration(&mut self, margin: f64, positive: bool);
    /// Per-feature contributions to the score's logit (for alert reasons): they sum to
    /// `logit(score)`, the calibration layer's offset on the bias.
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
    /// A model artifact every shard's replica starts from (a path in the configuration;
    /// [`artifact`]); none: the analytic prior. A shard restored from a snapshot or the
    /// changelog continues from its restored model instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial: Option<InitialModel>,
    /// A model artifact scored beside the champion on every key, learning from the same
    /// matured labels, never alerting (a path in the configuration); none: no challenger. It
    /// runs the learner its artifact was trained with, which may differ from `learner`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenger: Option<InitialModel>,
}

/// Which of a shard's models: the one that alerts, or the one scored beside it (the `model`
/// label of `stockwatch_model_rolling_auc` and `_brier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRole {
    /// The model whose risks raise alerts.
    Champion,
    /// `model.challenger`: scored and learning, never alerting.
    Challenger,
}

impl ModelRole {
    /// Both, champion first.
    pub const ALL: [ModelRole; 2] = [ModelRole::Champion, ModelRole::Challenger];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelRole::Champion => "champion",
            ModelRole::Challenger => "challenger",
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            horizon_hours: 72,
            label_sample_hours: 12,
            max_pending_labels: 1_000_000,
            learner: learner::LearnerConfig::default(),
            initial: None,
            challenger: None,
        }
    }
}

impl ModelConfig {
    /// Checks `initial` against the rest: the same horizon, and a state this learner imports
    /// (same model version, same number of weights). The message names both values.
    pub fn check(&self) -> Result<(), ModelError> {
        let Some(init) = self.initial else {
            return Ok(());
        };
        let a = init.artifact();
        if a.horizon_hours != self.horizon_hours {
            return Err(ModelError::HorizonMismatch {
                path: init.path().to_owned(),
                found: a.horizon_hours,
                expected: self.horizon_hours,
            });
        }
        let mut fresh = build(&ModelConfig {
            initial: None,
            ..*self
        });
        fresh
            .import(&a.state)
            .map_err(|e| ModelError::BadState(format!("model artifact {}: {e}", init.path())))
    }

    /// Checks `challenger` against the rest: the same horizon, and a state its own learner
    /// (the artifact's `learner`) imports. The fingerprint was checked when it was read.
    pub fn check_challenger(&self) -> Result<(), ModelError> {
        let Some(ch) = self.challenger else {
            return Ok(());
        };
        let a = ch.artifact();
        if a.horizon_hours != self.horizon_hours {
            return Err(ModelError::HorizonMismatch {
                path: ch.path().to_owned(),
                found: a.horizon_hours,
                expected: self.horizon_hours,
            });
        }
        fresh(a.learner)
            .import(&a.state)
            .map_err(|e| ModelError::BadState(format!("model artifact {}: {e}", ch.path())))
    }
}

pub(crate) fn fresh(learner: learner::LearnerConfig) -> Box<dyn RiskModel> {
    match learner.kind {
        learner::LearnerKind::Linear => Box::new(learner::AdaGradLogistic::new(learner)),
        learner::LearnerKind::Binned => Box::new(learner::BinnedLogistic::new(learner)),
    }
}

/// Builds the challenger of `cfg.challenger`, if any: its artifact's learner at its weights
/// (checked by [`ModelConfig::check_challenger`] when the configuration was read).
pub fn build_challenger(cfg: &ModelConfig) -> Option<Box<dyn RiskModel>> {
    let ch = cfg.challenger?;
    let a = ch.artifact();
    let mut m = fresh(a.learner);
    if let Err(e) = m.import(&a.state) {
        // Unreachable after `check_challenger`; a model at the prior is still a model.
        tracing::error!(artifact = ch.path(), error = %e, "model.challenger not applied");
    }
    Some(m)
}

/// Builds the configured model: fresh at the prior, or from `cfg.initial` (checked by
/// [`ModelConfig::check`] when the configuration was read).
pub fn build(cfg: &ModelConfig) -> Box<dyn RiskModel> {
    let mut m = fresh(cfg.learner);
    if let Some(init) = cfg.initial {
        if let Err(e) = m.import(&init.artifact().state) {
            // Unreachable after `check`; a model at the prior is still a model.
            tracing::error!(artifact = init.path(), error = %e, "model.initial not applied");
        }
    }
    m
}
