//! Model v1: online logistic regression trained with AdaGrad over the features, starting from
//! weights that reproduce the analytic prior (cold start = the prior), and moving away from it
//! only as matured labels arrive. Deterministic: same labels in the same order, same weights.

use serde::{Deserialize, Serialize};

use super::features::{
    Features, IN_STOCKOUT, LAST_OBS_OOS, NAMES, NF, ON_HAND_UNKNOWN, PRIOR_LOGIT,
};
use super::{ModelError, RiskModel};

/// Hyper-parameters of the learner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerConfig {
    /// AdaGrad base learning rate.
    pub learning_rate: f64,
    /// L2 pull towards the initial (prior-reproducing) weights.
    pub l2: f64,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            learning_rate: 0.05,
            l2: 1e-4,
        }
    }
}

/// Serializable learner state (part of the shard's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerState {
    /// Model version string.
    pub version: String,
    /// Weights, one per feature.
    pub weights: Vec<f64>,
    /// AdaGrad accumulated squared gradients.
    pub grad_sq: Vec<f64>,
    /// Labels learned from.
    pub updates: u64,
}

/// AdaGrad logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaGradLogistic {
    cfg: LearnerConfig,
    w: [f64; NF],
    w0: [f64; NF],
    g2: [f64; NF],
    updates: u64,
}

/// The version string of model v1; alerts carry it.
pub const MODEL_VERSION: &str = "logistic-adagrad-v1";

/// Initial weights: the prior's logit passes through, an unknown on hand means a low base rate,
/// an observed stockout means high risk. The learner corrects all of them from labels.
pub fn initial_weights() -> [f64; NF] {
    let mut w = [0.0; NF];
    w[PRIOR_LOGIT] = 1.0;
    w[ON_HAND_UNKNOWN] = -3.5;
    w[LAST_OBS_OOS] = 2.0;
    w[IN_STOCKOUT] = 3.0;
    w
}

impl AdaGradLogistic {
    /// A fresh learner at the initial weights.
    pub fn new(cfg: LearnerConfig) -> Self {
        let w0 = initial_weights();
        AdaGradLogistic {
            cfg,
            w: w0,
            w0,
            g2: [0.0; NF],
            updates: 0,
        }
    }

    /// Current weights.
    pub fn weights(&self) -> &[f64; NF] {
        &self.w
    }

    fn margin(&self, x: &Features) -> f64 {
        self.w.iter().zip(x).map(|(w, &v)| w * f64::from(v)).sum()
    }
}

/// Logistic function, safe for any finite input.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl RiskModel for AdaGradLogistic {
    fn version(&self) -> &str {
        MODEL_VERSION
    }

    fn score(&self, x: &Features) -> f64 {
        sigmoid(self.margin(x).clamp(-30.0, 30.0))
    }

    fn learn(&mut self, x: &Features, positive: bool) {
        let p = self.score(x);
        let err = p - f64::from(u8::from(positive));
        let (lr, l2) = (self.cfg.learning_rate, self.cfg.l2);
        for (((w, w0), g2), &v) in self.w.iter_mut().zip(&self.w0).zip(&mut self.g2).zip(x) {
            let g = err * f64::from(v) + l2 * (*w - w0);
            if g == 0.0 {
                continue;
            }
            *g2 += g * g;
            *w -= lr * g / (g2.sqrt() + 1e-8);
        }
        self.updates += 1;
    }

    fn contributions(&self, x: &Features, out: &mut [f64; NF]) {
        for ((o, w), &v) in out.iter_mut().zip(&self.w).zip(x) {
            *o = w * f64::from(v);
        }
    }

    fn updates(&self) -> u64 {
        self.updates
    }

    fn export(&self) -> serde_json::Value {
        serde_json::to_value(LearnerState {
            version: MODEL_VERSION.into(),
            weights: self.w.to_vec(),
            grad_sq: self.g2.to_vec(),
            updates: self.updates,
        })
        .unwrap_or(serde_json::Value::Null)
    }

    fn import(&mut self, v: &serde_json::Value) -> Result<(), ModelError> {
        let s: LearnerState =
            serde_json::from_value(v.clone()).map_err(|e| ModelError::BadState(e.to_string()))?;
        if s.version != MODEL_VERSION {
            return Err(ModelError::VersionMismatch {
                found: s.version,
                expected: MODEL_VERSION,
            });
        }
        if s.weights.len() != NF || s.grad_sq.len() != NF {
            return Err(ModelError::BadState(format!(
                "expected {NF} weights ({}), found {}",
                NAMES.join(","),
                s.weights.len()
            )));
        }
        self.w.copy_from_slice(&s.weights);
        self.g2.copy_from_slice(&s.grad_sq);
        self.updates = s.updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_signal_and_round_trips() {
        let cfg = LearnerConfig {
            learning_rate: 0.5,
            ..LearnerConfig::default()
        };
        let mut m = AdaGradLogistic::new(cfg);
        let mut pos = [0.0f32; NF];
        pos[0] = 1.0;
        pos[5] = 1.0;
        let mut neg = [0.0f32; NF];
        neg[0] = 1.0;
        let before = m.score(&pos);
        for _ in 0..2000 {
            m.learn(&pos, true);
            m.learn(&neg, false);
        }
        assert!(m.score(&pos) > 0.8 && m.score(&neg) < 0.2, "{before}");
        let mut m2 = AdaGradLogistic::new(cfg);
        m2.import(&m.export()).unwrap();
        assert_eq!(m, m2);
    }
}
