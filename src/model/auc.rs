//! Rolling prequential ROC AUC: how well the risk ranks the keys that did run out above those
//! that did not, over the last N matured labels.
//!
//! Pushing a (score, label) pair is O(1) (a ring buffer); the AUC is computed exactly when asked,
//! in O(N log N), from the Mann–Whitney rank statistic with mid-ranks for tied scores. The
//! service asks every few seconds, not per event, so sorting 5 000 pairs is negligible.

use std::collections::VecDeque;

/// The last `window` (score, label) pairs and their exact ROC AUC on demand.
#[derive(Debug, Clone)]
pub struct RollingAuc {
    pairs: VecDeque<(f64, bool)>,
    window: usize,
    positives: usize,
}

impl Default for RollingAuc {
    fn default() -> Self {
        RollingAuc::new(RollingAuc::DEFAULT_WINDOW)
    }
}

impl RollingAuc {
    /// The window used by [`Default`]: enough labels for a stable estimate, small enough to
    /// react to drift within hours of labels.
    pub const DEFAULT_WINDOW: usize = 5000;

    /// A rolling AUC over the last `window` pairs (at least 1).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        RollingAuc {
            pairs: VecDeque::with_capacity(window),
            window,
            positives: 0,
        }
    }

    /// Adds one prediction and its outcome, evicting the oldest pair when full. A non-finite
    /// score carries no ranking information and is ignored.
    pub fn push(&mut self, score: f64, label: bool) {
        if !score.is_finite() {
            return;
        }
        if self.pairs.len() == self.window {
            if let Some((_, old)) = self.pairs.pop_front() {
                self.positives -= usize::from(old);
            }
        }
        self.pairs.push_back((score, label));
        self.positives += usize::from(label);
    }

    /// Pairs in the window.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// No pair yet.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Positive labels in the window.
    pub fn positives(&self) -> usize {
        self.positives
    }

    /// The exact ROC AUC of the window: the probability that a random positive scores above a
    /// random negative, ties counting one half. `None` until both classes are present.
    pub fn auc(&self) -> Option<f64> {
        let pos = self.positives;
        let neg = self.pairs.len() - pos;
        if pos == 0 || neg == 0 {
            return None;
        }
        let mut sorted: Vec<(f64, bool)> = self.pairs.iter().copied().collect();
        sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

        // Sum of the (1-based, mid-ranked) ranks of the positives.
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i;
            let mut group_pos = 0usize;
            while j < sorted.len() && sorted[j].0 == sorted[i].0 {
                group_pos += usize::from(sorted[j].1);
                j += 1;
            }
            // Ranks i+1 ..= j share their mean.
            let mid_rank = (i + 1 + j) as f64 / 2.0;
            rank_sum += mid_rank * group_pos as f64;
            i = j;
        }
        let (p, n) = (pos as f64, neg as f64);
        let u = rank_sum - p * (p + 1.0) / 2.0;
        Some(u / (p * n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, O(P·N): the reference for the rank formula.
    fn pairwise(pairs: &[(f64, bool)]) -> Option<f64> {
        let (mut wins, mut total) = (0.0, 0.0);
        for &(sp, lp) in pairs.iter().filter(|p| p.1) {
            for &(sn, _) in pairs.iter().filter(|p| !p.1) {
                debug_assert!(lp);
                total += 1.0;
                wins += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
        (total > 0.0).then(|| wins / total)
    }

    fn auc_of(pairs: &[(f64, bool)]) -> Option<f64> {
        let mut a = RollingAuc::new(pairs.len().max(1));
        for &(s, l) in pairs {
            a.push(s, l);
        }
        a.auc()
    }

    #[test]
    fn perfect_separation_is_one() {
        let pairs: Vec<_> = (0..100).map(|i| (f64::from(i) / 100.0, i >= 50)).collect();
        assert_eq!(auc_of(&pairs), Some(1.0));
    }

    #[test]
    fn inverted_is_zero() {
        let pairs: Vec<_> = (0..100).map(|i| (f64::from(i) / 100.0, i < 50)).collect();
        assert_eq!(auc_of(&pairs), Some(0.0));
    }

    #[test]
    fn all_tied_is_one_half() {
        let pairs: Vec<_> = (0..10).map(|i| (0.3, i % 3 == 0)).collect();
        assert_eq!(auc_of(&pairs), Some(0.5));
    }

    #[test]
    fn ties_match_the_pairwise_definition() {
        let pairs = [
            (0.1, false),
            (0.4, true),
            (0.4, false),
            (0.4, false),
            (0.7, true),
            (0.7, false),
            (0.9, true),
            (0.0, true),
            (-0.0, false),
        ];
        let got = auc_of(&pairs).expect("both classes");
        let want = pairwise(&pairs).expect("both classes");
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn random_scores_are_near_one_half() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut a = RollingAuc::default();
        for _ in 0..20_000 {
            let s: f64 = rng.random();
            let l: bool = rng.random_bool(0.2);
            a.push(s, l);
        }
        assert_eq!(a.len(), RollingAuc::DEFAULT_WINDOW);
        let auc = a.auc().expect("both classes");
        assert!((auc - 0.5).abs() < 0.04, "{auc}");
    }

    #[test]
    fn window_evicts_oldest_and_needs_both_classes() {
        let mut a = RollingAuc::new(3);
        assert_eq!(a.auc(), None);
        a.push(0.9, true);
        assert_eq!(a.auc(), None);
        a.push(0.1, false);
        assert_eq!(a.auc(), Some(1.0));
        a.push(f64::NAN, true); // ignored
        assert_eq!(a.len(), 2);
        // Push three inverted pairs: the separating ones are evicted.
        a.push(0.8, false);
        a.push(0.2, true);
        a.push(0.85, false);
        assert_eq!(a.len(), 3);
        assert_eq!(a.positives(), 1);
        assert_eq!(a.auc(), Some(0.0));
    }

    #[test]
    fn matches_pairwise_on_random_windows() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let n = rng.random_range(2..60);
            // Coarse scores force many ties.
            let pairs: Vec<(f64, bool)> = (0..n)
                .map(|_| {
                    let s = f64::from(rng.random_range(0..6u8)) / 5.0;
                    (s, rng.random_bool(0.4))
                })
                .collect();
            let (got, want) = (auc_of(&pairs), pairwise(&pairs));
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{g} vs {w}"),
                (g, w) => assert_eq!(g, w),
            }
        }
    }
}
