//! Delayed labels. A scored snapshot of a key waits in a FIFO until its horizon has passed in
//! event time; then it is positive if a stockout episode of that key started inside
//! `(t, t + horizon]`, else negative, and the learner learns from it. Snapshots are created in
//! applied (event-time) order with one horizon, so the FIFO is also ordered by maturity: maturing
//! is popping the front. The label needs only the key's last stockout start, since nothing after
//! the horizon has been applied when the snapshot matures.

use std::collections::VecDeque;

use super::features::Features;

/// One scored moment of one key, awaiting its outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Key row.
    pub row: u32,
    /// Event time of the scoring, ms.
    pub time_ms: i64,
    /// The features at that time.
    pub x: Features,
    /// The risk predicted then (for prequential metrics).
    pub risk: f32,
    /// The margin that risk came from, before the calibration layer (the layer learns from
    /// it: [`super::calibration`]); NaN for a snapshot restored from a record written before
    /// margins were kept.
    pub margin: f32,
    /// The challenger's risk then (`model.challenger`; NaN without one, and for snapshots
    /// restored from a snapshot file or the changelog, which keep only the champion's).
    pub challenger_risk: f32,
    /// The challenger's margin then (NaN as `challenger_risk`).
    pub challenger_margin: f32,
}

/// Snapshots awaiting maturity, oldest first, bounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingLabels {
    queue: VecDeque<Snapshot>,
    /// Snapshots not taken because the queue was full.
    pub dropped: u64,
    /// Snapshots ever queued: entry `i` is the `pushed − len + i`-th (a position that stays
    /// valid while the front matures; the changelog orders by it).
    pub pushed: u64,
}

impl PendingLabels {
    /// Snapshots waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when none wait.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.queue.capacity() * std::mem::size_of::<Snapshot>()
    }

    /// Queues a snapshot unless `max` are already waiting.
    pub fn push(&mut self, s: Snapshot, max: usize) -> bool {
        if self.queue.len() >= max {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(s);
        self.pushed += 1;
        true
    }

    /// Pops the oldest snapshot if its horizon ended before `now_ms`.
    pub fn pop_matured(&mut self, now_ms: i64, horizon_ms: i64) -> Option<Snapshot> {
        match self.queue.front() {
            Some(s) if s.time_ms.saturating_add(horizon_ms) < now_ms => self.queue.pop_front(),
            _ => None,
        }
    }

    /// The `n`-th waiting snapshot's key row (0: the oldest), to prefetch it before it matures.
    pub fn row_ahead(&self, n: usize) -> Option<u32> {
        self.queue.get(n).map(|s| s.row)
    }

    /// Waiting snapshots with their absolute positions, oldest first.
    pub fn positions(&self) -> impl Iterator<Item = (u64, &Snapshot)> + '_ {
        let base = self.pushed - self.queue.len() as u64;
        self.queue
            .iter()
            .enumerate()
            .map(move |(i, s)| (base + i as u64, s))
    }

    /// The position of the oldest waiting snapshot (`pushed` when none wait).
    pub fn head(&self) -> u64 {
        self.pushed - self.queue.len() as u64
    }

    /// Waiting snapshots from position `from` on (from the oldest if it is older), with
    /// their positions.
    pub fn positions_from(&self, from: u64) -> impl Iterator<Item = (u64, &Snapshot)> + '_ {
        let head = self.head();
        let skip = from.saturating_sub(head).min(self.queue.len() as u64);
        self.queue
            .range(skip as usize..)
            .enumerate()
            .map(move |(i, s)| (head + skip + i as u64, s))
    }

    /// Waiting snapshots, oldest first (snapshots of state).
    pub fn iter(&self) -> impl Iterator<Item = &Snapshot> + '_ {
        self.queue.iter()
    }
}

/// The label of a matured snapshot: did a stockout start in `(t, t + horizon]`?
pub fn label(snapshot_ms: i64, horizon_ms: i64, last_stockout_ms: i64) -> bool {
    last_stockout_ms > snapshot_ms && last_stockout_ms <= snapshot_ms.saturating_add(horizon_ms)
}

/// Prequential quality, exponentially weighted over the last ~`1/alpha` labels.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RollingQuality {
    /// Labels seen.
    pub labels: u64,
    /// Positive labels seen.
    pub positives: u64,
    /// Exponentially weighted Brier score.
    pub brier: f64,
    /// Exponentially weighted log loss.
    pub log_loss: f64,
}

impl RollingQuality {
    /// Adds one (prediction, outcome) pair.
    pub fn observe(&mut self, p: f64, y: bool, alpha: f64) {
        let yf = f64::from(u8::from(y));
        let b = (p - yf).powi(2);
        let pc = p.clamp(1e-7, 1.0 - 1e-7);
        let ll = -(yf * pc.ln() + (1.0 - yf) * (1.0 - pc).ln());
        if self.labels == 0 {
            self.brier = b;
            self.log_loss = ll;
        } else {
            let a = alpha.max(1.0 / (self.labels as f64 + 1.0));
            self.brier += a * (b - self.brier);
            self.log_loss += a * (ll - self.log_loss);
        }
        self.labels += 1;
        self.positives += u64::from(y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_window() {
        assert!(label(0, 10, 10));
        assert!(label(0, 10, 1));
        assert!(
            !label(0, 10, 0),
            "a stockout at the snapshot time is not in the future"
        );
        assert!(!label(0, 10, 11));
        assert!(!label(0, 10, i64::MIN));
    }

    /// What a waiting snapshot costs (docs/model.md, "Calibration" and "Champion and
    /// challenger"): the features, the key, the time and four 4-byte risks and margins.
    #[test]
    fn a_snapshot_is_its_features_and_32_bytes() {
        let nf = super::super::features::NF;
        assert!(std::mem::size_of::<Snapshot>() <= 4 * nf + 32);
    }

    #[test]
    fn fifo_matures_in_order_and_is_bounded() {
        let mut q = PendingLabels::default();
        let s = |t| Snapshot {
            row: 0,
            time_ms: t,
            x: [0.0; super::super::features::NF],
            risk: 0.5,
            margin: 0.0,
            challenger_risk: f32::NAN,
            challenger_margin: f32::NAN,
        };
        assert!(q.push(s(0), 2));
        assert!(q.push(s(5), 2));
        assert!(!q.push(s(6), 2));
        assert_eq!(q.dropped, 1);
        assert_eq!(q.pop_matured(10, 10), None);
        assert_eq!(q.pop_matured(11, 10).map(|s| s.time_ms), Some(0));
        assert_eq!(q.pop_matured(11, 10), None);
    }
}
