//! The calibration layer on a learner's final margin: Platt scaling, `risk = σ(a·m + b)`, with
//! `(a, b)` learned online from the same delayed labels as the weights.
//!
//! Why a layer apart from the weights: the weights minimise the log loss of `σ(m)` on each
//! label as it matures, with steps that never stop (the learning-rate floor) — an online model
//! is always a little fitted to its latest labels, and so over-confident on the next ones. The
//! layer learns how far the margins the weights gave *when the snapshot was scored* should be
//! stretched or shrunk (`a`) and shifted (`b`). It is taught by that margin, kept in the label
//! snapshot ([`super::labels::Snapshot::margin`]), not by the margin the weights give at
//! maturity: by then they have learned from a horizon of newer labels, overlapping windows of
//! the same key among them, and would look better than the risks served were.
//!
//! Each step is the log-loss gradient at the layer's *current* `(a, b)` (not at the `(a, b)`
//! that served the risk): a gradient taken at the served risk would arrive a whole horizon of
//! labels late, and steps on it overshoot and oscillate (measured: it ruined the ranking).
//!
//! `a` stays positive (within [`A_MIN`, `A_MAX`]), so the layer is monotone: it never changes
//! the ranking of one model state's scores, only what they say as probabilities. Two
//! parameters, two AdaGrad accumulators: no allocation, one multiply-add per score.

use serde::{Deserialize, Serialize};

use super::learner::sigmoid;
use super::ModelError;

/// Which calibration layer (`model.learner.calibration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationKind {
    /// None: the risk is `σ(margin)`.
    None,
    /// Platt scaling learned online ([`Platt`]).
    #[default]
    Platt,
}

/// Smallest slope: the layer stays increasing in the margin.
pub const A_MIN: f64 = 0.05;
/// Largest slope.
pub const A_MAX: f64 = 20.0;

/// Online Platt scaling: `logit(risk) = a·m + b`, the slope `a` learned by AdaGrad on the log
/// loss of the scored margins, pivoting on their mean `c`: `b = (1 − a)·c`, so the layer
/// stretches or shrinks the margins around their mean and leaves the level to the weights.
/// Starts as the identity (`a = 1`, `b = 0`), where it changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platt {
    /// Slope on the margin.
    pub a: f64,
    /// Offset, `(1 − a)·centre`.
    pub b: f64,
    /// The mean margin of the labels learned from: the pivot.
    pub centre: f64,
    /// AdaGrad's squared-gradient sum of `a`.
    pub g2_a: f64,
    /// Labels learned from.
    pub updates: u64,
}

impl Default for Platt {
    fn default() -> Self {
        Platt::IDENTITY
    }
}

impl Platt {
    /// The identity: `σ(a·m + b) = σ(m)`, bit for bit.
    pub const IDENTITY: Platt = Platt {
        a: 1.0,
        b: 0.0,
        centre: 0.0,
        g2_a: 0.0,
        updates: 0,
    };

    /// The calibrated logit of margin `m`.
    #[inline]
    pub fn logit(&self, m: f64) -> f64 {
        self.a * m + self.b
    }

    /// The calibrated risk of margin `m` (both clamped to ±30, as the learners clamp).
    #[inline]
    pub fn risk(&self, m: f64) -> f64 {
        sigmoid(self.logit(m.clamp(-30.0, 30.0)).clamp(-30.0, 30.0))
    }

    /// One matured label of a snapshot whose margin was `m` when it was scored: one AdaGrad
    /// step of `a` on the log loss of `σ(a·m + b)` at rate `lr`, then the pivot moves to the
    /// mean margin of every label learned from so far. An unknown margin (NaN: a snapshot
    /// restored from a record that did not keep it) teaches nothing.
    ///
    /// Why the slope only: the weights' own bias tracks the base rate already, and an offset
    /// learned a horizon late on top of it corrects the level twice (measured: it pushed the
    /// mean risk above the base rate at H = 72 and cost ranking). Why plain AdaGrad (its step
    /// shrinks for ever): what the layer corrects is a lasting property of the learner (a
    /// model that keeps adapting is a little over-confident), not the drift the weights follow.
    pub fn learn(&mut self, m: f64, positive: bool, lr: f64) {
        if !m.is_finite() {
            return;
        }
        let m = m.clamp(-30.0, 30.0);
        let err = self.risk(m) - f64::from(u8::from(positive));
        let ga = err * (m - self.centre);
        self.g2_a += ga * ga;
        self.a = (self.a - lr / (self.g2_a.sqrt() + 1e-8) * ga).clamp(A_MIN, A_MAX);
        self.updates += 1;
        self.centre += (m - self.centre) / self.updates as f64;
        self.b = (1.0 - self.a) * self.centre;
    }

    /// Checks a restored layer.
    pub fn check(&self) -> Result<(), ModelError> {
        let finite = [self.a, self.b, self.centre, self.g2_a]
            .iter()
            .all(|v| v.is_finite());
        if !finite || !(A_MIN..=A_MAX).contains(&self.a) || self.g2_a < 0.0 {
            return Err(ModelError::BadState(format!(
                "calibration layer out of range: a = {}, b = {}",
                self.a, self.b
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over-confident margins around a mean of 0.8 (the truth is σ(0.8 + (m − 0.8) / 2)) are
    /// shrunk to it, pivoting on their mean, and the layer keeps the order of the margins.
    #[test]
    fn learns_the_slope_of_over_confident_margins_around_their_mean() {
        let mut p = Platt::default();
        let mut next = crate::xorshift(5);
        for _ in 0..400_000 {
            let m = (next() % 8001) as f64 / 1000.0 - 3.2;
            let truth = sigmoid(0.8 + (m - 0.8) / 2.0);
            let y = (next() % 1_000_000) as f64 / 1e6 < truth;
            p.learn(m, y, 0.05);
        }
        assert!((p.a - 0.5).abs() < 0.05, "a = {}", p.a);
        assert!((p.centre - 0.8).abs() < 0.02, "centre = {}", p.centre);
        assert!((p.b - 0.4).abs() < 0.05, "b = {}", p.b);
        assert_eq!(p.updates, 400_000);
        assert!(p.risk(-1.0) < p.risk(0.0) && p.risk(0.0) < p.risk(1.0));
        p.check().unwrap();
    }

    /// The identity changes nothing, bit for bit; unknown margins teach nothing; the slope stays
    /// within its bounds whatever the labels say.
    #[test]
    fn identity_is_exact_and_the_slope_stays_positive() {
        for m in [-40.0, -3.25, -0.0, 0.0, 1e-9, 2.5, 31.0] {
            assert_eq!(
                Platt::IDENTITY.risk(m).to_bits(),
                sigmoid(f64::clamp(m, -30.0, 30.0)).to_bits()
            );
        }
        let mut p = Platt::default();
        p.learn(f64::NAN, true, 0.05);
        assert_eq!(p, Platt::IDENTITY);
        // Anti-calibrated labels push the slope down to its bound, never through zero.
        for i in 0..100_000 {
            let m = if i % 2 == 0 { 3.0 } else { -3.0 };
            p.learn(m, m < 0.0, 0.5);
        }
        assert_eq!(p.a, A_MIN);
        assert!(p.risk(3.0) > p.risk(-3.0));
        p.check().unwrap();
        let bad = Platt { a: 0.0, ..p };
        assert!(bad.check().is_err());
    }
}
