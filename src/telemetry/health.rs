//! Health and readiness, as the service sees itself. The service writes (on rebalance, restore
//! and shutdown — a few times a minute at most); `/readyz` reads. A plain mutex is enough.
//!
//! Ready means: the consumer has joined the group and received its assignment, no assigned
//! partition is still restoring state, and the instance is not draining for shutdown. An empty
//! assignment counts as ready: in a group with more members than partitions a spare instance is
//! healthy, and requiring a partition would stall a rolling update that waits for readiness.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// The delivery guarantee the service runs with (reported by `/readyz`).
pub use crate::config::Delivery;

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Whether the instance is ready (the status code says the same: 200 or 503).
    pub ready: bool,
    /// The consumer has received an assignment since it (re)joined the group.
    pub joined: bool,
    /// Number of partitions assigned.
    pub assigned_partitions: usize,
    /// The assigned partitions.
    pub partitions: Vec<i32>,
    /// Assigned partitions whose state is still being restored.
    pub restoring: Vec<i32>,
    /// Shutdown has begun: stop sending traffic.
    pub draining: bool,
    /// The delivery guarantee.
    pub delivery: Delivery,
    /// The batch's outputs have waited for the brokers' acknowledgement longer than a few
    /// seconds (brokers unreachable or stalled): consumption is paused until they answer.
    pub waiting_for_brokers: bool,
    /// The first full read of the master-data tables (locations, items) is not done yet: the
    /// inputs are not read until it is.
    pub master_data_loading: bool,
}

#[derive(Debug)]
struct State {
    joined: bool,
    partitions: BTreeSet<i32>,
    restoring: BTreeSet<i32>,
    draining: bool,
    delivery: Delivery,
    waiting_for_brokers: bool,
    master_data_loading: bool,
}

/// Shared health state: `Arc<Health>`, written by the service, read by `/readyz`.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

impl Health {
    /// Not ready: no assignment yet.
    pub fn new(delivery: Delivery) -> Self {
        Health {
            state: Mutex::new(State {
                joined: false,
                partitions: BTreeSet::new(),
                restoring: BTreeSet::new(),
                draining: false,
                delivery,
                waiting_for_brokers: false,
                master_data_loading: false,
            }),
        }
    }

    // A panic elsewhere while holding the lock leaves plain data behind; keep reporting it.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the full current assignment (after each rebalance; may be empty). Partitions no
    /// longer assigned stop counting as restoring.
    pub fn set_assignment(&self, partitions: &[i32]) {
        let mut s = self.lock();
        s.joined = true;
        s.partitions = partitions.iter().copied().collect();
        let State {
            partitions,
            restoring,
            ..
        } = &mut *s;
        restoring.retain(|p| partitions.contains(p));
    }

    /// The consumer left the group or lost its assignment (e.g. session timeout): not ready
    /// until the next assignment.
    pub fn clear_assignment(&self) {
        let mut s = self.lock();
        s.joined = false;
        s.partitions.clear();
        s.restoring.clear();
    }

    /// `partition`'s state is being restored: not ready until [`Health::restored`].
    pub fn restoring(&self, partition: i32) {
        self.lock().restoring.insert(partition);
    }

    /// `partition`'s state is restored.
    pub fn restored(&self, partition: i32) {
        self.lock().restoring.remove(&partition);
    }

    /// Shutdown has begun: report not ready so traffic and rollouts move on.
    pub fn set_draining(&self) {
        self.lock().draining = true;
    }

    /// The service waits for the brokers (not ready while it does; alive all the same).
    pub fn set_waiting_for_brokers(&self, waiting: bool) {
        self.lock().waiting_for_brokers = waiting;
    }

    /// The master-data tables are being read in full (not ready while they are).
    pub fn set_master_data_loading(&self, loading: bool) {
        self.lock().master_data_loading = loading;
    }

    /// Sets the delivery guarantee.
    pub fn set_delivery(&self, delivery: Delivery) {
        self.lock().delivery = delivery;
    }

    /// Whether the instance is ready.
    pub fn is_ready(&self) -> bool {
        Self::ready(&self.lock())
    }

    fn ready(s: &State) -> bool {
        s.joined
            && s.restoring.is_empty()
            && !s.draining
            && !s.waiting_for_brokers
            && !s.master_data_loading
    }

    /// The full report `/readyz` serves.
    pub fn readiness(&self) -> Readiness {
        let s = self.lock();
        Readiness {
            ready: Self::ready(&s),
            joined: s.joined,
            assigned_partitions: s.partitions.len(),
            partitions: s.partitions.iter().copied().collect(),
            restoring: s.restoring.iter().copied().collect(),
            draining: s.draining,
            delivery: s.delivery,
            waiting_for_brokers: s.waiting_for_brokers,
            master_data_loading: s.master_data_loading,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_assignment_and_restore_until_draining() {
        let h = Health::new(Delivery::AtLeastOnce);
        assert!(!h.is_ready());
        h.restoring(1);
        h.set_assignment(&[0, 1]);
        assert!(!h.is_ready());
        assert_eq!(h.readiness().restoring, vec![1]);
        h.restored(1);
        assert!(h.is_ready());
        h.set_draining();
        let r = h.readiness();
        assert!(!r.ready && r.draining);
        assert_eq!(r.partitions, vec![0, 1]);
    }

    #[test]
    fn revoking_a_restoring_partition_unblocks_readiness() {
        let h = Health::new(Delivery::ExactlyOnce);
        h.set_assignment(&[2, 5]);
        h.restoring(5);
        assert!(!h.is_ready());
        h.set_assignment(&[2]);
        assert!(h.is_ready());
        h.clear_assignment();
        assert!(!h.is_ready());
    }

    #[test]
    fn not_ready_while_master_data_loads() {
        let h = Health::new(Delivery::AtLeastOnce);
        h.set_master_data_loading(true);
        h.set_assignment(&[]);
        let r = h.readiness();
        assert!(!r.ready && r.master_data_loading);
        h.set_master_data_loading(false);
        assert!(h.is_ready());
    }

    #[test]
    fn empty_assignment_is_ready() {
        let h = Health::new(Delivery::AtLeastOnce);
        h.set_assignment(&[]);
        let r = h.readiness();
        assert!(r.ready);
        assert_eq!(r.assigned_partitions, 0);
        let json = serde_json::to_value(&r).expect("serialize");
        assert_eq!(json["delivery"], "at_least_once");
    }
}
