//! Probabilistic-forecast metrics over a stream of (probability, outcome) pairs, in bounded
//! memory: scores are counted in a fine histogram (2^20 bins over [0, 1]), so ROC AUC and PR AUC
//! over a hundred million predictions cost 16 MB and one pass. Scores falling into one bin count
//! as tied (a resolution of 1e-6; equal scores are exact ties, as they should be).

use serde::Serialize;

/// Histogram resolution: bins over [0, 1].
pub const BINS: usize = 1 << 20;
/// Calibration bins of the expected calibration error and the reliability diagram.
pub const ECE_BINS: usize = 10;

/// Metrics of one model, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Area under the ROC curve (ties count one half).
    pub roc_auc: f64,
    /// Area under the precision-recall curve (average precision, step-wise).
    pub pr_auc: f64,
    /// Mean squared error of the probability.
    pub brier: f64,
    /// Mean negative log-likelihood (probabilities clipped to [1e-7, 1 − 1e-7]).
    pub log_loss: f64,
    /// Expected calibration error over 10 equal-width bins.
    pub ece: f64,
}

/// Streaming accumulator of one model's predictions.
#[derive(Debug, Clone)]
pub struct Accumulator {
    pos: Vec<u32>,
    neg: Vec<u32>,
    n: u64,
    positives: u64,
    brier: f64,
    log_loss: f64,
    cal: [(f64, f64, u64); ECE_BINS],
}

impl Default for Accumulator {
    fn default() -> Self {
        Self::with_bins(BINS)
    }
}

/// One point of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// x (false-positive rate, or recall).
    pub x: f64,
    /// y (true-positive rate, or precision).
    pub y: f64,
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Mean predicted probability in the bin.
    pub mean_predicted: f64,
    /// Observed frequency of positives in the bin.
    pub observed: f64,
    /// Predictions in the bin.
    pub count: u64,
}

/// Index of the bin of probability `p` among `bins` bins over [0, 1].
fn bin_of(p: f64, bins: usize) -> usize {
    ((p * bins as f64) as usize).min(bins - 1)
}

impl Accumulator {
    /// An accumulator with `bins` histogram bins (coarser ones for per-period curves).
    pub fn with_bins(bins: usize) -> Self {
        let bins = bins.max(1);
        Accumulator {
            pos: vec![0; bins],
            neg: vec![0; bins],
            n: 0,
            positives: 0,
            brier: 0.0,
            log_loss: 0.0,
            cal: [(0.0, 0.0, 0); ECE_BINS],
        }
    }

    /// Adds one prediction and its outcome. A non-finite probability is counted as 0.5.
    pub fn push(&mut self, p: f64, y: bool) {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let b = bin_of(p, self.pos.len());
        if y {
            self.pos[b] += 1;
        } else {
            self.neg[b] += 1;
        }
        let yf = f64::from(u8::from(y));
        self.n += 1;
        self.positives += u64::from(y);
        self.brier += (p - yf).powi(2);
        let pc = p.clamp(1e-7, 1.0 - 1e-7);
        self.log_loss -= yf * pc.ln() + (1.0 - yf) * (1.0 - pc).ln();
        let c = &mut self.cal[bin_of(p, ECE_BINS)];
        c.0 += p;
        c.1 += yf;
        c.2 += 1;
    }

    /// Predictions seen.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// True before the first prediction.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Positive outcomes seen.
    pub fn positives(&self) -> u64 {
        self.positives
    }

    /// ROC AUC: P(score of a random positive > that of a random negative), ties one half.
    /// `None` unless both classes were seen.
    pub fn roc_auc(&self) -> Option<f64> {
        let (p, n) = (self.positives as f64, (self.n - self.positives) as f64);
        if p == 0.0 || n == 0.0 {
            return None;
        }
        // Walk bins upwards: each positive beats the negatives below it, ties count half.
        let (mut below, mut wins) = (0.0f64, 0.0f64);
        for (&pb, &nb) in self.pos.iter().zip(&self.neg) {
            let (pb, nb) = (f64::from(pb), f64::from(nb));
            wins += pb * (below + 0.5 * nb);
            below += nb;
        }
        Some(wins / (p * n))
    }

    /// Average precision: Σ over thresholds (descending) of precision × recall increment, where
    /// a group of tied scores is one threshold (scikit-learn's definition).
    pub fn pr_auc(&self) -> Option<f64> {
        let p = self.positives as f64;
        if p == 0.0 {
            return None;
        }
        let (mut tp, mut fp, mut ap) = (0.0f64, 0.0f64, 0.0f64);
        for (&pb, &nb) in self.pos.iter().zip(&self.neg).rev() {
            if pb == 0 && nb == 0 {
                continue;
            }
            tp += f64::from(pb);
            fp += f64::from(nb);
            ap += (tp / (tp + fp)) * (f64::from(pb) / p);
        }
        Some(ap)
    }

    /// Mean Brier score.
    pub fn brier(&self) -> f64 {
        self.brier / self.n.max(1) as f64
    }

    /// Mean log loss.
    pub fn log_loss(&self) -> f64 {
        self.log_loss / self.n.max(1) as f64
    }

    /// Expected calibration error: Σ_bins (n_b / n) · |mean p_b − frequency_b|.
    pub fn ece(&self) -> f64 {
        let n = self.n.max(1) as f64;
        self.cal
            .iter()
            .filter(|c| c.2 > 0)
            .map(|&(sp, sy, c)| (c as f64 / n) * ((sp - sy) / c as f64).abs())
            .sum()
    }

    /// The reliability diagram's bins.
    pub fn reliability(&self) -> Vec<ReliabilityBin> {
        self.cal
            .iter()
            .map(|&(sp, sy, c)| ReliabilityBin {
                mean_predicted: if c > 0 { sp / c as f64 } else { f64::NAN },
                observed: if c > 0 { sy / c as f64 } else { f64::NAN },
                count: c,
            })
            .collect()
    }

    /// All metrics (NaN where undefined).
    pub fn summary(&self) -> Summary {
        Summary {
            roc_auc: self.roc_auc().unwrap_or(f64::NAN),
            pr_auc: self.pr_auc().unwrap_or(f64::NAN),
            brier: self.brier(),
            log_loss: self.log_loss(),
            ece: self.ece(),
        }
    }

    /// ROC curve, thresholds descending, at most ~`max_points` points (plus both ends).
    pub fn roc_curve(&self, max_points: usize) -> Vec<CurvePoint> {
        self.curve(max_points, |tp, fp, p, n| CurvePoint {
            x: fp / n.max(1.0),
            y: tp / p.max(1.0),
        })
    }

    /// Precision-recall curve, thresholds descending.
    pub fn pr_curve(&self, max_points: usize) -> Vec<CurvePoint> {
        self.curve(max_points, |tp, fp, p, _| CurvePoint {
            x: tp / p.max(1.0),
            y: if tp + fp > 0.0 { tp / (tp + fp) } else { 1.0 },
        })
    }

    fn curve(
        &self,
        max_points: usize,
        point: impl Fn(f64, f64, f64, f64) -> CurvePoint,
    ) -> Vec<CurvePoint> {
        let (p, n) = (self.positives as f64, (self.n - self.positives) as f64);
        let step = (self.n / max_points.max(1) as u64).max(1);
        let mut out = vec![point(0.0, 0.0, p, n)];
        let (mut tp, mut fp, mut since) = (0.0, 0.0, 0u64);
        for (&pb, &nb) in self.pos.iter().zip(&self.neg).rev() {
            if pb == 0 && nb == 0 {
                continue;
            }
            tp += f64::from(pb);
            fp += f64::from(nb);
            since += u64::from(pb) + u64::from(nb);
            if since >= step {
                out.push(point(tp, fp, p, n));
                since = 0;
            }
        }
        out.push(point(tp, fp, p, n));
        out
    }
}

impl Accumulator {
    /// Adds `k` copies of `other` (same number of bins) to this one: a bootstrap replicate is
    /// a sum of resampled groups.
    pub fn add_times(&mut self, other: &Accumulator, k: u32) {
        if k == 0 || other.pos.len() != self.pos.len() {
            return;
        }
        for (a, b) in self.pos.iter_mut().zip(&other.pos) {
            *a += b * k;
        }
        for (a, b) in self.neg.iter_mut().zip(&other.neg) {
            *a += b * k;
        }
        let kf = f64::from(k);
        self.n += other.n * u64::from(k);
        self.positives += other.positives * u64::from(k);
        self.brier += other.brier * kf;
        self.log_loss += other.log_loss * kf;
        for (a, b) in self.cal.iter_mut().zip(&other.cal) {
            a.0 += b.0 * kf;
            a.1 += b.1 * kf;
            a.2 += b.2 * u64::from(k);
        }
    }
}

/// A 95 % bootstrap interval of ROC AUC and Brier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// ROC AUC, 2.5 % and 97.5 % quantiles.
    pub roc_auc: [f64; 2],
    /// Brier score, 2.5 % and 97.5 % quantiles.
    pub brier: [f64; 2],
}

/// Series are put in this many groups for the bootstrap (by a hash of the series number).
pub const BOOTSTRAP_GROUPS: usize = 64;
/// Histogram bins of the group accumulators (1e-3 resolution: enough for an interval).
pub const BOOTSTRAP_BINS: usize = 1000;

/// The bootstrap group of series `s`.
pub fn bootstrap_group(s: usize) -> usize {
    ((s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % BOOTSTRAP_GROUPS
}

/// 95 % intervals by resampling series: the points of each group of series are one
/// accumulator; each of `replicates` replicates draws as many groups with replacement and sums
/// them (a cluster bootstrap — the points of one series are not independent, so series, not
/// points, are resampled). Deterministic for a given `seed`. `None` without groups.
pub fn bootstrap(groups: &[Accumulator], replicates: usize, seed: u64) -> Option<Interval> {
    let first = groups.first()?;
    // xorshift64: the resampling only needs to be deterministic and roughly uniform.
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut aucs, mut briers) = (Vec::new(), Vec::new());
    let mut times = vec![0u32; groups.len()];
    for _ in 0..replicates {
        times.fill(0);
        for _ in 0..groups.len() {
            times[(next() % groups.len() as u64) as usize] += 1;
        }
        let mut r = Accumulator::with_bins(first.pos.len());
        for (g, &k) in groups.iter().zip(&times) {
            r.add_times(g, k);
        }
        if let Some(a) = r.roc_auc() {
            aucs.push(a);
        }
        if !r.is_empty() {
            briers.push(r.brier());
        }
    }
    let q = |v: &mut Vec<f64>| -> [f64; 2] {
        if v.is_empty() {
            return [f64::NAN; 2];
        }
        v.sort_unstable_by(f64::total_cmp);
        let at = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        [at(0.025), at(0.975)]
    };
    Some(Interval {
        roc_auc: q(&mut aucs),
        brier: q(&mut briers),
    })
}

/// Histogram bins of the per-hour-of-day accumulators (1.5e-5 resolution).
pub const HOUR_BINS: usize = 1 << 16;

/// ROC AUC within hour of day: the ROC AUC of each hour's points, averaged with the hour's
/// points as weights (hours without both classes left out). A score that only knows the daily
/// cycle ranks points across hours, not inside one: it has a high pooled AUC and 0.5 here.
/// `None` when no hour has both classes.
pub fn within_hour_auc(by_hour: &[Accumulator]) -> Option<f64> {
    let (mut sum, mut w) = (0.0, 0.0);
    for a in by_hour {
        if let Some(auc) = a.roc_auc() {
            sum += auc * a.len() as f64;
            w += a.len() as f64;
        }
    }
    (w > 0.0).then(|| sum / w)
}

/// Median of a list (sorts it); `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(pairs: &[(f64, bool)]) -> Accumulator {
        let mut a = Accumulator::default();
        for &(p, y) in pairs {
            a.push(p, y);
        }
        a
    }

    #[test]
    fn auc_with_ties_by_hand() {
        // Positives 0.8, 0.4, 0.4; negatives 0.4, 0.2. Pairs (pos vs neg):
        // 0.8>0.4 1, 0.8>0.2 1, 0.4=0.4 ½, 0.4>0.2 1, 0.4=0.4 ½, 0.4>0.2 1 → 5/6.
        let a = acc(&[
            (0.8, true),
            (0.4, true),
            (0.4, true),
            (0.4, false),
            (0.2, false),
        ]);
        let auc = a.roc_auc().unwrap();
        assert!((auc - 5.0 / 6.0).abs() < 1e-12, "{auc}");
        // All tied: one half. One class only: undefined.
        assert_eq!(acc(&[(0.3, true), (0.3, false)]).roc_auc(), Some(0.5));
        assert_eq!(acc(&[(0.3, true), (0.6, true)]).roc_auc(), None);
        // Inverted ranking: zero.
        assert_eq!(acc(&[(0.1, true), (0.9, false)]).roc_auc(), Some(0.0));
    }

    #[test]
    fn average_precision_by_hand() {
        // Descending: 0.9 +, 0.7 −, 0.5 +, 0.3 −. AP = 1·½ + (2/3)·½ = 5/6.
        let a = acc(&[(0.9, true), (0.7, false), (0.5, true), (0.3, false)]);
        assert!((a.pr_auc().unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // A tied group is one threshold: {0.5: +, −} then 0.2 +. AP = ½·½ + (2/3)·½ = 7/12.
        let a = acc(&[(0.5, true), (0.5, false), (0.2, true)]);
        assert!((a.pr_auc().unwrap() - 7.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn brier_log_loss_and_ece_by_hand() {
        let a = acc(&[(0.9, true), (0.2, false), (0.6, false), (0.6, true)]);
        // Brier: (0.01 + 0.04 + 0.36 + 0.16) / 4.
        assert!((a.brier() - 0.57 / 4.0).abs() < 1e-12);
        let ll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.6f64.ln()) / 4.0;
        assert!((a.log_loss() - ll).abs() < 1e-12);
        // ECE: bin 9 {0.9: 1} |0.9−1|=0.1 ×¼; bin 2 {0.2: 0} 0.2×¼; bin 6 {0.6,0.6: ½} 0.1×½.
        let ece = 0.1 / 4.0 + 0.2 / 4.0 + 0.1 / 2.0;
        assert!((a.ece() - ece).abs() < 1e-12, "{}", a.ece());
        let r = a.reliability();
        assert_eq!(r.len(), ECE_BINS);
        assert_eq!(r[6].count, 2);
        assert!((r[6].observed - 0.5).abs() < 1e-12);
    }

    #[test]
    fn matches_the_exact_rank_auc_on_random_scores() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let pairs: Vec<(f64, bool)> = (0..3000)
            .map(|_| {
                let p: f64 = rng.random();
                (p, rng.random_bool(p))
            })
            .collect();
        let mut exact = crate::model::RollingAuc::new(pairs.len());
        for &(p, y) in &pairs {
            exact.push(p, y);
        }
        let got = acc(&pairs).roc_auc().unwrap();
        let want = exact.auc().unwrap();
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        assert!(got > 0.7, "informative scores: {got}");
    }

    #[test]
    fn curves_run_from_corner_to_corner() {
        let a = acc(&[(0.9, true), (0.7, false), (0.5, true), (0.3, false)]);
        let roc = a.roc_curve(100);
        assert_eq!(roc.first().map(|p| (p.x, p.y)), Some((0.0, 0.0)));
        assert_eq!(roc.last().map(|p| (p.x, p.y)), Some((1.0, 1.0)));
        let pr = a.pr_curve(100);
        assert_eq!(pr.last().map(|p| (p.x, p.y)), Some((1.0, 0.5)));
    }

    #[test]
    fn within_hour_auc_removes_the_daily_cycle() {
        // Hour 18 is out of stock 80 % of the time, hour 6 20 %; the score is the hour's rate
        // (the daily cycle, nothing else): pooled it ranks well, within an hour not at all.
        let mut next = crate::xorshift(5);
        let (mut pooled, mut by_hour) = (
            Accumulator::default(),
            vec![Accumulator::with_bins(HOUR_BINS); 24],
        );
        for i in 0..4000 {
            let (h, rate) = if i % 2 == 0 { (18, 0.8) } else { (6, 0.2) };
            let y = (next() % 100) as f64 / 100.0 < rate;
            pooled.push(rate, y);
            by_hour[h].push(rate, y);
        }
        assert!(pooled.roc_auc().unwrap() > 0.75, "{:?}", pooled.roc_auc());
        assert_eq!(within_hour_auc(&by_hour), Some(0.5));
        // A score that ranks inside each hour keeps its AUC; weights are the hours' points.
        let mut by_hour = vec![Accumulator::with_bins(HOUR_BINS); 24];
        for (p, y) in [(0.9, true), (0.1, false), (0.2, false)] {
            by_hour[3].push(p, y);
        }
        for (p, y) in [(0.1, true), (0.9, false)] {
            by_hour[4].push(p, y);
        }
        let want = (1.0 * 3.0 + 0.0 * 2.0) / 5.0;
        assert!((within_hour_auc(&by_hour).unwrap() - want).abs() < 1e-12);
        assert_eq!(within_hour_auc(&by_hour[..1]), None);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn bootstrap_intervals_cover_the_estimate_and_collapse_without_spread() {
        let mut next = crate::xorshift(11);
        let mut all = Accumulator::with_bins(BOOTSTRAP_BINS);
        let mut groups = vec![Accumulator::with_bins(BOOTSTRAP_BINS); BOOTSTRAP_GROUPS];
        for s in 0..2000usize {
            // Series differ: some are easy, some are noise.
            let skill = (s % 5) as f64 / 5.0;
            for _ in 0..50 {
                let y = next() % 3 == 0;
                let noise = (next() % 1000) as f64 / 1000.0;
                let p = if y { 0.3 + 0.4 * skill } else { 0.3 } * 0.5 + 0.5 * noise;
                all.push(p, y);
                groups[bootstrap_group(s)].push(p, y);
            }
        }
        let iv = bootstrap(&groups, 200, 1).unwrap();
        let (auc, brier) = (all.roc_auc().unwrap(), all.brier());
        assert!(iv.roc_auc[0] < auc && auc < iv.roc_auc[1], "{iv:?} {auc}");
        assert!(iv.brier[0] < brier && brier < iv.brier[1], "{iv:?} {brier}");
        assert!(iv.roc_auc[1] - iv.roc_auc[0] < 0.05, "{iv:?}");
        // Identical groups: every replicate is the same data, the interval is a point.
        let same = vec![groups[0].clone(); 8];
        let iv = bootstrap(&same, 50, 2).unwrap();
        assert!((iv.roc_auc[1] - iv.roc_auc[0]).abs() < 1e-12, "{iv:?}");
        assert_eq!(bootstrap(&[], 10, 1), None);
    }
}
