//! Model artifacts: a model trained offline (`stockwatch evaluate --save-model FILE`), shipped
//! as a file, and loaded as the starting point of every shard (`model.initial = FILE`).
//!
//! An artifact is JSON: a format version, the model version, the feature-set [`fingerprint`]
//! (a hash of the feature names, their order, the bins and the crossed pairs: what the weight
//! layout means), the horizon the labels were taken at, the learner settings, its state (weights
//! and AdaGrad accumulators, [`super::RiskModel::export`]) and a [`ModelCard`] (the data it saw
//! and its prequential metrics there). Loading refuses another format, another fingerprint and,
//! against the configuration ([`super::ModelConfig::check`]), another horizon or learner: the
//! weights of one horizon are not a model of another, and weights laid out for other features
//! would be silently wrong.
//!
//! The configuration is a plain `Copy` value (every shard is built from it, also on a partition
//! assignment in the service), so the loaded artifact is held by an [`InitialModel`] handle: it
//! is read and checked once, when the configuration is read, and lives as long as the process.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::features::{bin_edges, CATEGORY_LEVEL, CROSSES, NAMES, NF};
use super::learner::LearnerConfig;
use super::ModelError;

/// Version of the artifact format this build reads and writes.
pub const FORMAT: u32 = 1;

/// The feature-set fingerprint of this build: xxh3-64 (hex) of the feature names in order,
/// each feature's bin cut points and the crossed pairs. Two builds with the same fingerprint
/// lay out and mean the weights the same way.
pub fn fingerprint() -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(NF as u64).to_le_bytes());
    for (i, name) in NAMES.iter().enumerate() {
        h.update(name.as_bytes());
        h.update(&[0]);
        let edges = bin_edges(i);
        h.update(&(edges.len() as u64).to_le_bytes());
        for e in edges {
            h.update(&e.to_bits().to_le_bytes());
        }
    }
    for &(a, b) in &CROSSES {
        h.update(&(a as u64).to_le_bytes());
        h.update(&(b as u64).to_le_bytes());
    }
    h.update(&(CATEGORY_LEVEL as u64).to_le_bytes());
    format!("{:016x}", h.digest())
}

/// Prequential metrics of the model over the data it was trained on (each point scored before
/// its label was learned).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardMetrics {
    /// ROC AUC.
    pub roc_auc: f64,
    /// Brier score.
    pub brier: f64,
    /// Expected calibration error (10 bins).
    pub ece: f64,
    /// Log loss.
    pub log_loss: f64,
}

/// What an artifact's model saw and how good it was there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// When it was written (RFC 3339, UTC).
    pub created: String,
    /// The stockwatch version that wrote it.
    pub stockwatch_version: String,
    /// The training data (input file, store subset).
    pub data: String,
    /// Series (keys) in the data.
    pub series: usize,
    /// Days of data.
    pub days: f64,
    /// Label sampling of the training run (one snapshot per key per this many hours).
    pub label_sample_hours: u32,
    /// Labels learned from.
    pub labels: u64,
    /// Positive labels among them.
    pub positives: u64,
    /// Prequential metrics over the training data.
    pub metrics: CardMetrics,
}

/// A trained model as shipped in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArtifact {
    /// Artifact format ([`FORMAT`]).
    pub format: u32,
    /// Model version ([`super::RiskModel::version`]).
    pub model_version: String,
    /// Feature-set fingerprint ([`fingerprint`]).
    pub fingerprint: String,
    /// Horizon of the labels it learned from, hours.
    pub horizon_hours: u32,
    /// Learner settings it was trained with.
    pub learner: LearnerConfig,
    /// The learner's state ([`super::RiskModel::export`]).
    pub state: serde_json::Value,
    /// What it saw.
    pub card: ModelCard,
}

impl ModelArtifact {
    /// Reads an artifact and checks its format and fingerprint against this build.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io(shown.clone(), e))?;
        let a: ModelArtifact = serde_json::from_slice(&bytes)
            .map_err(|e| ModelError::BadState(format!("{shown}: {e}")))?;
        if a.format != FORMAT {
            return Err(ModelError::BadState(format!(
                "{shown}: artifact format {}, this build reads format {FORMAT}",
                a.format
            )));
        }
        let ours = fingerprint();
        if a.fingerprint != ours {
            return Err(ModelError::FingerprintMismatch {
                path: shown,
                found: a.fingerprint,
                expected: ours,
            });
        }
        Ok(a)
    }

    /// An artifact of `learner` at its start (the prior's weights, nothing learned) at
    /// `horizon_hours`: a challenger that learns only live (`stockwatch demo` runs the v1
    /// linear learner this way beside the default champion). `data` says where it comes from.
    pub fn at_prior(
        learner: LearnerConfig,
        horizon_hours: u32,
        label_sample_hours: u32,
        data: &str,
    ) -> Self {
        let state = super::fresh(learner).export();
        let model_version = state["version"].as_str().unwrap_or_default().to_owned();
        ModelArtifact {
            format: FORMAT,
            model_version,
            fingerprint: fingerprint(),
            horizon_hours,
            learner,
            state,
            card: ModelCard {
                created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                stockwatch_version: env!("CARGO_PKG_VERSION").to_owned(),
                data: data.to_owned(),
                series: 0,
                days: 0.0,
                label_sample_hours,
                labels: 0,
                positives: 0,
                // Nothing was measured: no metrics (JSON null).
                metrics: CardMetrics {
                    roc_auc: f64::NAN,
                    brier: f64::NAN,
                    ece: f64::NAN,
                    log_loss: f64::NAN,
                },
            },
        }
    }

    /// Writes the artifact as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), ModelError> {
        let shown = path.display().to_string();
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ModelError::BadState(format!("{shown}: {e}")))?;
        std::fs::write(path, bytes).map_err(|e| ModelError::Io(shown, e))
    }
}

/// A loaded artifact and the path it came from.
#[derive(Debug)]
struct Loaded {
    path: String,
    artifact: ModelArtifact,
    id: String,
}

/// `model.initial`: the artifact every shard's model starts from. A `Copy` handle to an
/// artifact read once (see the module documentation); in the configuration it is the file's
/// path.
#[derive(Clone, Copy)]
pub struct InitialModel(&'static Loaded);

impl InitialModel {
    /// Reads and checks ([`ModelArtifact::read`]) the artifact at `path`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let artifact = ModelArtifact::read(path)?;
        Ok(Self::from_artifact(path.display().to_string(), artifact))
    }

    /// A handle to an artifact already in memory (`path` names it in messages).
    pub fn from_artifact(path: String, artifact: ModelArtifact) -> Self {
        let id = artifact_id(&artifact);
        // Held for the process's life: one per configuration read, a few tens of KB.
        InitialModel(Box::leak(Box::new(Loaded { path, artifact, id })))
    }

    /// The file it was read from.
    pub fn path(&self) -> &'static str {
        &self.0.path
    }

    /// The artifact.
    pub fn artifact(&self) -> &'static ModelArtifact {
        &self.0.artifact
    }

    /// The artifact's identity ([`artifact_id`]): what the changelog records as a model's
    /// origin, so that a restart recognises the same artifact under another path (a
    /// promotion, see [`crate::state::ShardState`]).
    pub fn id(&self) -> &'static str {
        &self.0.id
    }
}

/// The identity of an artifact's content: xxh3-64 (hex) of its JSON. Two files with the same
/// model (the same weights, settings and card) have the same id, wherever they are mounted.
pub fn artifact_id(a: &ModelArtifact) -> String {
    // Serialising plain data into a Vec cannot fail.
    let bytes = serde_json::to_vec(a).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
}

impl std::fmt::Debug for InitialModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialModel")
            .field("path", &self.0.path)
            .field("fingerprint", &self.0.artifact.fingerprint)
            .field("horizon_hours", &self.0.artifact.horizon_hours)
            .finish()
    }
}

impl PartialEq for InitialModel {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
            || (self.0.path == other.0.path && self.0.artifact == other.0.artifact)
    }
}

impl Serialize for InitialModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.path)
    }
}

impl<'de> Deserialize<'de> for InitialModel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = String::deserialize(d)?;
        InitialModel::load(Path::new(&path)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_hex() {
        let f = fingerprint();
        assert_eq!(f.len(), 16);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(f, fingerprint());
    }
}
