//! The online learners: logistic regressions trained with AdaGrad, starting from weights that
//! reproduce the analytic prior (cold start = the prior) and moving away from it only as
//! matured labels arrive. Deterministic: same labels in the same order, same weights.
//!
//! - [`AdaGradLogistic`] (v1, `kind = "linear"`): one weight per feature.
//! - [`BinnedLogistic`] (v2, `kind = "binned"`, the default): the linear weights plus one
//!   weight per bin of each continuous feature ([`bin_edges`]) and per cell of a few crossed
//!   pairs ([`CROSSES`]) — a generalised additive model with pairwise interactions, still
//!   convex, still one pass, with a fixed number of weights (no per-event allocation).

use serde::{Deserialize, Serialize};

use super::calibration::{CalibrationKind, Platt};
use super::features::{
    bin_edges, bin_of, Features, CROSSES, HOUR_OF_DAY, IN_STOCKOUT, LAST_OBS_OOS, NAMES, NF,
    ON_HAND_UNKNOWN, PRIOR_LOGIT,
};
use super::{ModelError, RiskModel};

/// Which learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerKind {
    /// v1: one weight per feature.
    Linear,
    /// v2: linear + per-bin weights + crossed bins.
    #[default]
    Binned,
}

/// Hyper-parameters of the learner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerConfig {
    /// Which learner.
    #[serde(default)]
    pub kind: LearnerKind,
    /// AdaGrad base learning rate.
    pub learning_rate: f64,
    /// L2 pull towards the initial (prior-reproducing) weights.
    pub l2: f64,
    /// Smallest step per unit gradient of any weight. AdaGrad's step `learning_rate / √Σg²`
    /// shrinks without end, so after months a plain AdaGrad model no longer adapts; with a
    /// floor each weight keeps moving at least this fast (about `learning_rate_floor /
    /// learning_rate`² of a fresh weight's squared-gradient sum is its memory). 0: plain
    /// AdaGrad.
    #[serde(default)]
    pub learning_rate_floor: f64,
    /// The calibration layer on the final margin ([`super::calibration`]).
    #[serde(default)]
    pub calibration: CalibrationKind,
    /// AdaGrad base learning rate of the calibration layer (plain AdaGrad: no floor).
    #[serde(default = "default_calibration_rate")]
    pub calibration_rate: f64,
}

/// The default `calibration_rate`.
pub fn default_calibration_rate() -> f64 {
    0.003
}

impl Default for LearnerConfig {
    fn default() -> Self {
        LearnerConfig {
            kind: LearnerKind::Binned,
            learning_rate: 0.01,
            l2: 1e-4,
            learning_rate_floor: 1e-4,
            calibration: CalibrationKind::default(),
            calibration_rate: default_calibration_rate(),
        }
    }
}

impl LearnerConfig {
    /// One matured label scored at margin `margin` for the calibration layer `p` (nothing
    /// without one).
    fn calibrate(&self, p: &mut Platt, margin: f64, positive: bool) {
        if self.calibration == CalibrationKind::Platt {
            p.learn(margin, positive, self.calibration_rate);
        }
    }

    /// The layer a state carries, as exported (none without a layer: the state is then what
    /// it was before layers existed).
    fn export_platt(&self, p: &Platt) -> Option<Platt> {
        (self.calibration != CalibrationKind::None).then_some(*p)
    }

    /// The layer of an imported state: its own, checked, or the identity for a state without
    /// one (written before layers, or without a layer); always the identity without a layer.
    fn import_platt(&self, p: Option<Platt>) -> Result<Platt, ModelError> {
        match p {
            Some(p) if self.calibration != CalibrationKind::None => {
                p.check()?;
                Ok(p)
            }
            _ => Ok(Platt::IDENTITY),
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
    /// The calibration layer (absent without one, and in states written before layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Platt>,
}

/// AdaGrad logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaGradLogistic {
    cfg: LearnerConfig,
    w: [f64; NF],
    w0: [f64; NF],
    g2: [f64; NF],
    updates: u64,
    platt: Platt,
}

/// The version string of the default model (v2, [`BinnedLogistic`]); alerts carry it.
pub const MODEL_VERSION: &str = "binned-logistic-adagrad-v2";
/// The version string of model v1 ([`AdaGradLogistic`]).
pub const MODEL_VERSION_V1: &str = "logistic-adagrad-v1";

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

/// Initial weights of v2: as v1, except that an unknown on hand is uninformative (logit 0,
/// a 50 % risk, below the raise threshold) rather than a confident 3 %: with delayed labels
/// nothing is learned during the first horizon, and a confident wrong start costs most there.
pub fn initial_weights_v2() -> [f64; NF] {
    let mut w = initial_weights();
    w[ON_HAND_UNKNOWN] = 0.0;
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
            platt: Platt::IDENTITY,
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

/// AdaGrad's step per unit gradient for a weight whose squared gradients sum to `g2`, never
/// below `floor` (with `floor = 0`, exactly plain AdaGrad).
#[inline]
fn step(lr: f64, floor: f64, g2: f64) -> f64 {
    (lr / (g2.sqrt() + 1e-8)).max(floor)
}

/// Contributions to the margin made contributions to the calibrated logit `a·m + b`: each
/// scaled by the layer's slope (their order and signs unchanged, `a > 0`), the offset on the
/// bias. Exact (unchanged) for the identity.
#[inline]
fn calibrate_contributions(p: &Platt, out: &mut [f64; NF]) {
    if p.a != 1.0 || p.b != 0.0 {
        for o in out.iter_mut() {
            *o *= p.a;
        }
        out[0] += p.b;
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
        MODEL_VERSION_V1
    }

    fn score_margin(&self, x: &Features) -> (f64, f64) {
        let m = self.margin(x);
        (self.platt.risk(m), m)
    }

    fn learn(&mut self, x: &Features, positive: bool) {
        let p = sigmoid(self.margin(x).clamp(-30.0, 30.0));
        let err = p - f64::from(u8::from(positive));
        let (lr, l2, floor) = (
            self.cfg.learning_rate,
            self.cfg.l2,
            self.cfg.learning_rate_floor,
        );
        for (((w, w0), g2), &v) in self.w.iter_mut().zip(&self.w0).zip(&mut self.g2).zip(x) {
            let g = err * f64::from(v) + l2 * (*w - w0);
            if g == 0.0 {
                continue;
            }
            *g2 += g * g;
            *w -= step(lr, floor, *g2) * g;
        }
        self.updates += 1;
    }

    fn learn_calibration(&mut self, margin: f64, positive: bool) {
        self.cfg.calibrate(&mut self.platt, margin, positive);
    }

    fn contributions(&self, x: &Features, out: &mut [f64; NF]) {
        for ((o, w), &v) in out.iter_mut().zip(&self.w).zip(x) {
            *o = w * f64::from(v);
        }
        calibrate_contributions(&self.platt, out);
    }

    fn updates(&self) -> u64 {
        self.updates
    }

    fn export(&self) -> serde_json::Value {
        serde_json::to_value(LearnerState {
            version: MODEL_VERSION_V1.into(),
            weights: self.w.to_vec(),
            grad_sq: self.g2.to_vec(),
            updates: self.updates,
            calibration: self.cfg.export_platt(&self.platt),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    fn import(&mut self, v: &serde_json::Value) -> Result<(), ModelError> {
        let s: LearnerState =
            serde_json::from_value(v.clone()).map_err(|e| ModelError::BadState(e.to_string()))?;
        if s.version != MODEL_VERSION_V1 {
            return Err(ModelError::VersionMismatch {
                found: s.version,
                expected: MODEL_VERSION_V1,
            });
        }
        if s.weights.len() != NF || s.grad_sq.len() != NF {
            return Err(ModelError::BadState(format!(
                "expected {NF} weights ({}), found {}",
                NAMES.join(","),
                s.weights.len()
            )));
        }
        let platt = self.cfg.import_platt(s.calibration)?;
        self.w.copy_from_slice(&s.weights);
        self.g2.copy_from_slice(&s.grad_sq);
        self.updates = s.updates;
        self.platt = platt;
        Ok(())
    }
}

/// Most weights one example touches: linear + one bin per feature + one cell per cross.
const MAX_ACTIVE: usize = 2 * NF + CROSSES.len();

/// Most cut points of a feature counted in [`EDGES_BY_CUT`].
const EDGE_LANES: usize = 8;

/// The features padded to whole vector registers (8 lanes of `f32`).
const FEATURE_LANES: usize = NF.next_multiple_of(8);

/// The cut points of every feature with at most [`EDGE_LANES`] of them ([`bin_edges`]),
/// transposed: row `k` holds every feature's `k`-th cut point, NaN where a feature has fewer
/// (no value is `>=` NaN), for the others and in the padding. [`Layout::bins_of`] then counts
/// the bins of all features together: one comparison per feature and row, in vector lanes,
/// without branches.
const EDGES_BY_CUT: [[f32; FEATURE_LANES]; EDGE_LANES] = {
    let mut t = [[f32::NAN; FEATURE_LANES]; EDGE_LANES];
    let mut i = 0;
    while i < NF {
        let e = bin_edges(i);
        if e.len() <= EDGE_LANES {
            let mut k = 0;
            while k < e.len() {
                t[k][i] = e[k];
                k += 1;
            }
        }
        i += 1;
    }
    t
};

// Only the hour of day has more cut points than lanes ([`Layout::bins_of`] relies on it).
const _: () = {
    let mut i = 0;
    while i < NF {
        assert!(i == HOUR_OF_DAY || bin_edges(i).len() <= EDGE_LANES);
        i += 1;
    }
};

/// Where each group of weights starts in the weight vector.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    bin_off: [usize; NF],
    bins: [usize; NF],
    cross_off: [usize; CROSSES.len()],
    len: usize,
    /// The features with bins, in order (the first `n_binned`).
    binned: [usize; NF],
    n_binned: usize,
}

impl Layout {
    fn new() -> Self {
        let mut l = Layout {
            bin_off: [0; NF],
            bins: [0; NF],
            cross_off: [0; CROSSES.len()],
            len: NF,
            binned: [0; NF],
            n_binned: 0,
        };
        for i in 0..NF {
            let e = bin_edges(i);
            l.bins[i] = if e.is_empty() { 0 } else { e.len() + 1 };
            l.bin_off[i] = l.len;
            l.len += l.bins[i];
            if l.bins[i] > 0 {
                l.binned[l.n_binned] = i;
                l.n_binned += 1;
            }
        }
        for (c, &(a, b)) in CROSSES.iter().enumerate() {
            l.cross_off[c] = l.len;
            l.len += l.bins[a] * l.bins[b];
        }
        l
    }

    /// The bin of every feature (0 for features without bins), as [`bin_of`] gives it: over
    /// [`EDGES_BY_CUT`], and for the hour of day (the one feature with more cut points than
    /// [`EDGE_LANES`], checked at compile time above) over its own.
    #[inline(always)]
    fn bins_of(x: &Features) -> [usize; NF] {
        let mut v = [f32::NAN; FEATURE_LANES];
        v[..NF].copy_from_slice(x);
        let mut count = [0u32; FEATURE_LANES];
        for cuts in &EDGES_BY_CUT {
            for ((n, &c), &xi) in count.iter_mut().zip(cuts).zip(&v) {
                *n += u32::from(xi >= c);
            }
        }
        let mut bin = [0usize; NF];
        for (b, &n) in bin.iter_mut().zip(&count) {
            *b = n as usize;
        }
        bin[HOUR_OF_DAY] = bin_of(x[HOUR_OF_DAY], bin_edges(HOUR_OF_DAY));
        bin
    }

    /// The active coordinates of `x` (whose bins are `bin`, from [`Layout::bins_of`]) with
    /// their values, and how many there are. The second element of each pair is the feature a
    /// coordinate belongs to (a cross: its first one).
    fn active(
        &self,
        x: &Features,
        bin: &[usize; NF],
        out: &mut [(usize, f64, usize); MAX_ACTIVE],
    ) -> usize {
        let mut n = 0;
        for i in 0..NF {
            let v = x[i];
            if v != 0.0 {
                out[n] = (i, f64::from(v), i);
                n += 1;
            }
            if self.bins[i] > 0 {
                out[n] = (self.bin_off[i] + bin[i], 1.0, i);
                n += 1;
            }
        }
        for (c, &(a, b)) in CROSSES.iter().enumerate() {
            out[n] = (self.cross_off[c] + bin[a] * self.bins[b] + bin[b], 1.0, a);
            n += 1;
        }
        n
    }
}

/// Model v2: logistic regression over linear, binned and crossed-bin coordinates (AdaGrad).
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedLogistic {
    cfg: LearnerConfig,
    layout: Layout,
    w: Vec<f64>,
    w0: Vec<f64>,
    g2: Vec<f64>,
    updates: u64,
    platt: Platt,
}

impl BinnedLogistic {
    /// A fresh learner: the linear part at the prior-reproducing weights, every bin at 0.
    pub fn new(cfg: LearnerConfig) -> Self {
        let layout = Layout::new();
        let mut w0 = vec![0.0; layout.len];
        w0[..NF].copy_from_slice(&initial_weights_v2());
        BinnedLogistic {
            cfg,
            layout,
            w: w0.clone(),
            g2: vec![0.0; layout.len],
            w0,
            updates: 0,
            platt: Platt::IDENTITY,
        }
    }

    /// The calibration layer (the identity without one).
    pub fn calibration(&self) -> &Platt {
        &self.platt
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// Never empty (the bias at least).
    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }

    /// `w · active(x)` without building the list (scoring runs on every event): the linear
    /// part as a dot product (a zero feature adds ±0), then one weight per bin and per cross
    /// cell, in four independent sums so the additions overlap instead of forming one chain.
    fn margin(&self, x: &Features, bin: &[usize; NF]) -> f64 {
        let (l, w) = (&self.layout, &self.w[..]);
        // Three runs of terms, each summed round-robin into four accumulators (the k-th term
        // of a run into accumulator k mod 4), then the accumulators pairwise. The terms are
        // gathered first so that the accumulators stay in registers: indexing them with
        // `k % 4` kept them in memory, a store-to-load chain per term.
        let mut terms = [0.0f64; NF];
        for ((t, &wi), &v) in terms.iter_mut().zip(&w[..NF]).zip(x) {
            *t = wi * f64::from(v);
        }
        let mut acc = Acc4::default();
        acc.add(&terms);
        let binned = &l.binned[..l.n_binned];
        for (t, &i) in terms.iter_mut().zip(binned) {
            *t = w[l.bin_off[i] + bin[i]];
        }
        acc.add(&terms[..binned.len()]);
        let mut cross = [0.0f64; CROSSES.len()];
        for (t, (c, &(a, b))) in cross.iter_mut().zip(CROSSES.iter().enumerate()) {
            *t = w[l.cross_off[c] + bin[a] * l.bins[b] + bin[b]];
        }
        acc.add(&cross);
        acc.sum()
    }
}

/// Four running sums, in registers: [`Acc4::add`] adds the k-th value of a slice to sum
/// k mod 4, [`Acc4::sum`] adds them pairwise.
#[derive(Default, Clone, Copy)]
struct Acc4(f64, f64, f64, f64);

impl Acc4 {
    #[inline(always)]
    fn add(&mut self, t: &[f64]) {
        let mut chunks = t.chunks_exact(4);
        for c in &mut chunks {
            self.0 += c[0];
            self.1 += c[1];
            self.2 += c[2];
            self.3 += c[3];
        }
        let r = chunks.remainder();
        if let Some(&v) = r.first() {
            self.0 += v;
        }
        if let Some(&v) = r.get(1) {
            self.1 += v;
        }
        if let Some(&v) = r.get(2) {
            self.2 += v;
        }
    }

    #[inline(always)]
    fn sum(self) -> f64 {
        (self.0 + self.1) + (self.2 + self.3)
    }
}

impl RiskModel for BinnedLogistic {
    fn version(&self) -> &str {
        MODEL_VERSION
    }

    fn score_margin(&self, x: &Features) -> (f64, f64) {
        let m = self.margin(x, &Layout::bins_of(x));
        (self.platt.risk(m), m)
    }

    fn learn(&mut self, x: &Features, positive: bool) {
        let bin = Layout::bins_of(x);
        let mut act = [(0usize, 0.0f64, 0usize); MAX_ACTIVE];
        let n = self.layout.active(x, &bin, &mut act);
        let p = sigmoid(self.margin(x, &bin).clamp(-30.0, 30.0));
        let err = p - f64::from(u8::from(positive));
        let (lr, l2, floor) = (
            self.cfg.learning_rate,
            self.cfg.l2,
            self.cfg.learning_rate_floor,
        );
        for &(j, v, _) in &act[..n] {
            let g = err * v + l2 * (self.w[j] - self.w0[j]);
            if g == 0.0 {
                continue;
            }
            self.g2[j] += g * g;
            self.w[j] -= step(lr, floor, self.g2[j]) * g;
        }
        self.updates += 1;
    }

    fn learn_calibration(&mut self, margin: f64, positive: bool) {
        self.cfg.calibrate(&mut self.platt, margin, positive);
    }

    /// Each feature's linear and bin weights, and half of the cell weight of each crossed
    /// pair it belongs to (the other half to the other feature), times the calibration
    /// layer's slope, its offset on the bias: the contributions sum to the calibrated logit,
    /// and an interaction is credited to both of its features.
    fn contributions(&self, x: &Features, out: &mut [f64; NF]) {
        out.fill(0.0);
        let (l, bin) = (&self.layout, Layout::bins_of(x));
        for (i, &v) in x.iter().enumerate() {
            if v != 0.0 {
                out[i] += self.w[i] * f64::from(v);
            }
            if l.bins[i] > 0 {
                out[i] += self.w[l.bin_off[i] + bin[i]];
            }
        }
        for (c, &(a, b)) in CROSSES.iter().enumerate() {
            let half = self.w[l.cross_off[c] + bin[a] * l.bins[b] + bin[b]] / 2.0;
            out[a] += half;
            out[b] += half;
        }
        calibrate_contributions(&self.platt, out);
    }

    fn updates(&self) -> u64 {
        self.updates
    }

    fn export(&self) -> serde_json::Value {
        serde_json::to_value(LearnerState {
            version: MODEL_VERSION.into(),
            weights: self.w.clone(),
            grad_sq: self.g2.clone(),
            updates: self.updates,
            calibration: self.cfg.export_platt(&self.platt),
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
        if s.weights.len() != self.w.len() || s.grad_sq.len() != self.w.len() {
            return Err(ModelError::BadState(format!(
                "expected {} weights, found {}",
                self.w.len(),
                s.weights.len()
            )));
        }
        if s.weights.iter().chain(&s.grad_sq).any(|v| !v.is_finite()) {
            return Err(ModelError::BadState("non-finite weight".into()));
        }
        let platt = self.cfg.import_platt(s.calibration)?;
        self.w.copy_from_slice(&s.weights);
        self.g2.copy_from_slice(&s.grad_sq);
        self.updates = s.updates;
        self.platt = platt;
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

    /// The direct margin is the sum over the active list that `learn` and `contributions`
    /// use (to rounding: it adds in another order), for NaN, zero, negative, out-of-range and
    /// edge-exact features; and the bins are [`bin_of`]'s.
    #[test]
    fn margin_equals_the_sum_over_the_active_list() {
        let mut m = BinnedLogistic::new(LearnerConfig::default());
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for w in m.w.iter_mut() {
            *w = (next() % 2001) as f64 / 1000.0 - 1.0;
        }
        for n in 0..5_000 {
            let mut x = [0.0f32; NF];
            for v in x.iter_mut() {
                *v = match next() % 8 {
                    0 => 0.0,
                    1 => f32::NAN,
                    2 => -((next() % 100) as f32) / 10.0,
                    _ => (next() % 1200) as f32 / 1000.0,
                };
            }
            if n % 2 == 0 {
                x[HOUR_OF_DAY] = (next() % 24) as f32 / 24.0;
            }
            // Exactly on a cut point, and infinite.
            let i = (next() % NF as u64) as usize;
            if let Some(&c) = bin_edges(i).get((next() % 8) as usize) {
                x[i] = c;
            }
            if n % 7 == 0 {
                x[(next() % NF as u64) as usize] = f32::INFINITY;
            }
            let bins = Layout::bins_of(&x);
            for i in 0..NF {
                assert_eq!(bins[i], bin_of(x[i], bin_edges(i)), "feature {i}: {}", x[i]);
            }
            let mut act = [(0usize, 0.0f64, 0usize); MAX_ACTIVE];
            let k = m.layout.active(&x, &bins, &mut act);
            let listed: f64 = act[..k].iter().map(|&(j, v, _)| m.w[j] * v).sum();
            let direct = m.margin(&x, &bins);
            if !listed.is_finite() {
                assert!(
                    direct == listed || direct.is_nan() && listed.is_nan(),
                    "{x:?}"
                );
            } else {
                assert!(
                    (direct - listed).abs() <= 1e-12 * (1.0 + listed.abs()),
                    "{x:?}"
                );
            }
        }
    }

    #[test]
    fn binned_starts_at_the_linear_prior_and_learns_a_nonlinear_signal() {
        let cfg = LearnerConfig {
            learning_rate: 0.2,
            ..LearnerConfig::default()
        };
        let lin = AdaGradLogistic::new(cfg);
        let mut m = BinnedLogistic::new(cfg);
        let mut x = [0.0f32; NF];
        x[0] = 1.0;
        x[PRIOR_LOGIT] = 1.3;
        assert!(
            (m.score(&x) - lin.score(&x)).abs() < 1e-12,
            "cold start = v1"
        );
        // Risky at hours 18-20 only: not linear in the hour, learnable by its bins.
        let at = |h: u32| {
            let mut x = [0.0f32; NF];
            x[0] = 1.0;
            x[HOUR_OF_DAY] = h as f32 / 24.0;
            x
        };
        for i in 0..20_000u32 {
            let h = i % 24;
            m.learn(&at(h), (18..=20).contains(&h));
        }
        assert!(m.score(&at(19)) > 0.8, "{}", m.score(&at(19)));
        assert!(m.score(&at(12)) < 0.2 && m.score(&at(23)) < 0.2);
        let mut c = [0.0; NF];
        m.contributions(&at(19), &mut c);
        let total: f64 = c.iter().sum();
        assert!(
            (sigmoid(total) - m.score(&at(19))).abs() < 1e-9,
            "contributions sum to the logit"
        );
        let mut m2 = BinnedLogistic::new(cfg);
        m2.import(&m.export()).unwrap();
        assert_eq!(m, m2);
        assert!(
            AdaGradLogistic::new(cfg).import(&m.export()).is_err(),
            "versions differ"
        );
    }

    /// The calibration layer learns from scored margins only, is part of the exported state
    /// (and round-trips), keeps the contributions summing to the served logit, and changes
    /// nothing (state nor score, bit for bit) when off.
    #[test]
    fn the_calibration_layer_round_trips_and_keeps_contributions_exact() {
        // Weights that learn slowly stay over-confident for the layer to correct.
        let cfg = LearnerConfig {
            learning_rate: 1e-3,
            learning_rate_floor: 0.0,
            calibration_rate: 0.05,
            ..LearnerConfig::default()
        };
        assert_eq!(cfg.calibration, CalibrationKind::Platt);
        let off = LearnerConfig {
            calibration: CalibrationKind::None,
            ..cfg
        };
        let (mut m, mut plain) = (BinnedLogistic::new(cfg), BinnedLogistic::new(off));
        let mut next = crate::xorshift(3);
        let mut draw = || {
            let mut x = [0.0f32; NF];
            x[0] = 1.0;
            x[HOUR_OF_DAY] = (next() % 24) as f32 / 24.0;
            x[PRIOR_LOGIT] = (next() % 400) as f32 / 100.0 - 2.0;
            // Labels noisier than the prior says: an over-confident margin.
            let y = next() % 100 < 30 + 40 * u64::from(x[PRIOR_LOGIT] > 0.0);
            (x, y)
        };
        for _ in 0..20_000 {
            let (x, y) = draw();
            for m in [&mut m, &mut plain] {
                let (_, margin) = m.score_margin(&x);
                m.learn_calibration(margin, y);
                m.learn(&x, y);
            }
        }
        assert_eq!(m.w, plain.w, "the layer does not touch the weights");
        assert_eq!(*plain.calibration(), Platt::IDENTITY);
        let p = *m.calibration();
        assert!(p.a < 0.9 && p.updates == 20_000, "{p:?}");
        let state = m.export();
        assert!(state.get("calibration").is_some());
        assert!(
            plain.export().get("calibration").is_none(),
            "off: the state is as before layers"
        );
        let mut back = BinnedLogistic::new(cfg);
        back.import(&state).unwrap();
        assert_eq!(back, m);
        // A state without a layer (off, or written before layers) starts at the identity.
        let mut from_plain = BinnedLogistic::new(cfg);
        from_plain.import(&plain.export()).unwrap();
        assert_eq!(*from_plain.calibration(), Platt::IDENTITY);
        let mut bad = state.clone();
        bad["calibration"]["a"] = serde_json::json!(-1.0);
        assert!(BinnedLogistic::new(cfg).import(&bad).is_err());
        for _ in 0..100 {
            let (x, _) = draw();
            let mut c = [0.0; NF];
            m.contributions(&x, &mut c);
            let total: f64 = c.iter().sum();
            let r = m.score(&x);
            assert!(((r / (1.0 - r)).ln() - total).abs() < 1e-9, "{total} {r}");
            let bins = Layout::bins_of(&x);
            assert_eq!(
                plain.score(&x).to_bits(),
                sigmoid(plain.margin(&x, &bins).clamp(-30.0, 30.0)).to_bits()
            );
        }
        // The same for v1.
        let mut v1 = AdaGradLogistic::new(cfg);
        for _ in 0..5_000 {
            let (x, y) = draw();
            let (_, margin) = v1.score_margin(&x);
            v1.learn_calibration(margin, y);
            v1.learn(&x, y);
        }
        assert_ne!(v1.platt, Platt::IDENTITY);
        let mut back = AdaGradLogistic::new(cfg);
        back.import(&v1.export()).unwrap();
        assert_eq!(back, v1);
    }

    /// A crossed pair's cell weight is credited half to each of its features, and the
    /// contributions still sum to the margin.
    #[test]
    fn a_cross_credits_both_of_its_features() {
        let mut m = BinnedLogistic::new(LearnerConfig::default());
        let (a, b) = CROSSES[0];
        let mut x = [0.0f32; NF];
        x[0] = 1.0;
        x[a] = 0.5;
        x[b] = 0.25;
        let bins = Layout::bins_of(&x);
        let mut before = [0.0; NF];
        m.contributions(&x, &mut before);
        let cell = m.layout.cross_off[0] + bins[a] * m.layout.bins[b] + bins[b];
        m.w[cell] += 2.0;
        let mut after = [0.0; NF];
        m.contributions(&x, &mut after);
        assert!((after[a] - before[a] - 1.0).abs() < 1e-12, "{after:?}");
        assert!((after[b] - before[b] - 1.0).abs() < 1e-12, "{after:?}");
        let total: f64 = after.iter().sum();
        assert!((total - m.margin(&x, &bins)).abs() < 1e-9);
    }

    /// A simulated shift: 2 million labels of one regime (keys at 18:00 run out 80 % of the
    /// time, at 06:00 20 %), then the hours swap. Plain AdaGrad's steps have shrunk by then; with
    /// the default learning-rate floor the model follows the shift in about half the labels (and
    /// the gap grows with the history: plain AdaGrad's step keeps shrinking, the floor's does not).
    #[test]
    fn a_learning_rate_floor_tracks_a_shift_that_plain_adagrad_misses() {
        let at = |signal: bool| {
            let mut x = [0.0f32; NF];
            x[0] = 1.0;
            x[HOUR_OF_DAY] = if signal { 18.0 / 24.0 } else { 6.0 / 24.0 };
            x
        };
        // Labels after the shift until the risk at 18:00 is below one half again.
        let labels_to_follow = |floor: f64| {
            let mut m = BinnedLogistic::new(LearnerConfig {
                learning_rate_floor: floor,
                ..LearnerConfig::default()
            });
            let mut next = crate::xorshift(7);
            let mut draw = |m: &mut BinnedLogistic, after: bool| {
                let signal = next() % 2 == 0;
                let p = if signal != after { 80 } else { 20 };
                m.learn(&at(signal), next() % 100 < p);
            };
            for _ in 0..2_000_000 {
                draw(&mut m, false);
            }
            assert!(m.score(&at(true)) > 0.75, "learned the first regime");
            let mut n = 0u32;
            while m.score(&at(true)) > 0.5 && n < 1_000_000 {
                draw(&mut m, true);
                n += 1;
            }
            n
        };
        let floor = LearnerConfig::default().learning_rate_floor;
        let (plain, floored) = (labels_to_follow(0.0), labels_to_follow(floor));
        eprintln!("labels to follow the shift: plain {plain}, floor {floor}: {floored}");
        // Plain AdaGrad's lag grows as √(labels seen); the floor caps it (here at about half).
        assert!(floored * 3 < plain * 2, "plain {plain}, floored {floored}");
        // The floor changes nothing while AdaGrad's own step is above it.
        let mut a = BinnedLogistic::new(LearnerConfig {
            learning_rate_floor: 0.0,
            ..LearnerConfig::default()
        });
        let mut b = BinnedLogistic::new(LearnerConfig::default());
        for i in 0..1000u32 {
            a.learn(&at(i % 3 == 0), i % 2 == 0);
            b.learn(&at(i % 3 == 0), i % 2 == 0);
        }
        assert_eq!(a.w, b.w);
    }
}
