//! Health and readiness, as the service sees itself. The service writes (on rebalance, restore
//! and shutdown — a few times a minute at most); `/readyz` reads. A plain mutex is enough.
//!
//! Ready means: the consumer has joined the group and received its assignment, no assigned
//! partition is still restoring state, and the instance is not draining for shutdown. An empty
//! assignment counts as ready: in a group with more members than partitions a spare instance is
//! healthy, and requiring a partition would stall a rolling update that waits for readiness.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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
    /// Assigned partitions not processed because their changelog and the group's committed
    /// offsets disagree, with what was found (`changelog_missing`, `changelog_truncated`,
    /// `offsets_missing`): until `stockwatch reset-state` (see the runbook). Absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inconsistent: Vec<InconsistentPartition>,
    /// Why it is not ready, when the cause needs an operator: `changelog_missing`,
    /// `changelog_truncated` or `offsets_missing` — an assigned partition's state cannot be
    /// restored as committed (the first of [`Readiness::inconsistent`]); `not_assigned` —
    /// subscribed for longer than `kafka.not_assigned_session_timeouts` ×
    /// `kafka.session_timeout_ms` without an assignment (see the runbook). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// A partition whose state needs an operator (`/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InconsistentPartition {
    /// The partition.
    pub partition: i32,
    /// What was found: the `/readyz` reason.
    pub reason: &'static str,
}

#[derive(Debug)]
struct State {
    joined: bool,
    partitions: BTreeSet<i32>,
    restoring: BTreeSet<i32>,
    /// Assigned partitions blocked on an inconsistent state, with the reason.
    inconsistent: std::collections::BTreeMap<i32, &'static str>,
    draining: bool,
    delivery: Delivery,
    waiting_for_brokers: bool,
    master_data_loading: bool,
    /// Subscribed without an assignment since then (`None`: assigned, or not watched).
    unassigned_since: Option<Instant>,
    /// After how long without an assignment readiness says `not_assigned`.
    not_assigned_after: Option<Duration>,
}

/// Shared health state: `Arc<Health>`, written by the service, read by `/readyz`.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    /// The run loop's watchdog: when it last made progress, in ms since `epoch`, and the
    /// stall after which `/healthz` fails (0: no watchdog). Atomics: written every batch.
    epoch: Instant,
    progress_ms: AtomicU64,
    stall_ms: AtomicU64,
}

impl Health {
    /// Not ready: no assignment yet.
    pub fn new(delivery: Delivery) -> Self {
        Health {
            state: Mutex::new(State {
                joined: false,
                partitions: BTreeSet::new(),
                restoring: BTreeSet::new(),
                inconsistent: Default::default(),
                draining: false,
                delivery,
                waiting_for_brokers: false,
                master_data_loading: false,
                unassigned_since: None,
                not_assigned_after: None,
            }),
            epoch: Instant::now(),
            progress_ms: AtomicU64::new(0),
            stall_ms: AtomicU64::new(0),
        }
    }

    /// Arms the watchdog: from now on, [`Health::stalled`] reports a run loop that has made no
    /// [`Health::progress`] for longer than `stall`.
    pub fn set_watchdog(&self, stall: Duration) {
        self.progress();
        let ms = u64::try_from(stall.as_millis()).unwrap_or(u64::MAX).max(1);
        self.stall_ms.store(ms, Ordering::Relaxed);
    }

    /// The run loop made progress (a batch done, a partition restored, a wait for the
    /// brokers that goes on).
    pub fn progress(&self) {
        self.progress_at(Instant::now());
    }

    /// [`Health::progress`] at `now` (tests pass their own clock).
    pub fn progress_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        self.progress_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long the run loop has made no progress, if longer than the watchdog's stall
    /// (`/healthz` fails then); `None` when it is alive or no watchdog is armed.
    pub fn stalled(&self) -> Option<Duration> {
        self.stalled_at(Instant::now())
    }

    /// [`Health::stalled`] at `now`.
    pub fn stalled_at(&self, now: Instant) -> Option<Duration> {
        let stall = self.stall_ms.load(Ordering::Relaxed);
        if stall == 0 {
            return None;
        }
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        let idle = now_ms.saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        (idle > stall).then(|| Duration::from_millis(idle))
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
        s.unassigned_since = None;
        s.partitions = partitions.iter().copied().collect();
        let State {
            partitions,
            restoring,
            inconsistent,
            ..
        } = &mut *s;
        restoring.retain(|p| partitions.contains(p));
        inconsistent.retain(|p, _| partitions.contains(p));
    }

    /// The consumer left the group or lost its assignment (e.g. session timeout): not ready
    /// until the next assignment.
    pub fn clear_assignment(&self) {
        let mut s = self.lock();
        s.joined = false;
        s.partitions.clear();
        s.restoring.clear();
        s.inconsistent.clear();
        s.unassigned_since.get_or_insert_with(Instant::now);
    }

    /// The consumer subscribed at `now`: from now on, an instance without an assignment for
    /// longer than `after` reports `not_assigned` ([`Health::unassigned_at`]).
    pub fn watch_assignment(&self, after: Duration, now: Instant) {
        let mut s = self.lock();
        s.not_assigned_after = Some(after);
        if !s.joined {
            s.unassigned_since = Some(now);
        }
    }

    /// How long the subscribed consumer has had no assignment at `now` (`None`: it has
    /// one, or [`Health::watch_assignment`] was not called), and whether that is past the
    /// `not_assigned` threshold.
    pub fn unassigned_at(&self, now: Instant) -> Option<(Duration, bool)> {
        let s = self.lock();
        let idle = now.saturating_duration_since(s.unassigned_since?);
        Some((idle, s.not_assigned_after.is_some_and(|a| idle > a)))
    }

    /// `partition`'s state is being restored: not ready until [`Health::restored`].
    pub fn restoring(&self, partition: i32) {
        self.lock().restoring.insert(partition);
    }

    /// `partition`'s state is restored.
    pub fn restored(&self, partition: i32) {
        self.lock().restoring.remove(&partition);
        self.progress();
    }

    /// `partition`'s changelog and committed offsets disagree (`reason`): not ready until
    /// [`Health::consistent`] or it is no longer assigned.
    pub fn inconsistent(&self, partition: i32, reason: &'static str) {
        self.lock().inconsistent.insert(partition, reason);
    }

    /// `partition` is no longer blocked.
    pub fn consistent(&self, partition: i32) {
        self.lock().inconsistent.remove(&partition);
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
            && s.inconsistent.is_empty()
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
            inconsistent: s
                .inconsistent
                .iter()
                .map(|(&partition, &reason)| InconsistentPartition { partition, reason })
                .collect(),
            reason: s.inconsistent.values().next().copied().or_else(|| {
                (!s.joined
                    && s.unassigned_since
                        .zip(s.not_assigned_after)
                        .is_some_and(|(since, after)| since.elapsed() > after))
                .then_some("not_assigned")
            }),
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
    fn an_inconsistent_partition_is_not_ready_with_its_reason_until_revoked() {
        let h = Health::new(Delivery::AtLeastOnce);
        h.set_assignment(&[0, 1, 2]);
        assert!(h.is_ready());
        h.inconsistent(2, "changelog_missing");
        h.inconsistent(1, "offsets_missing");
        let r = h.readiness();
        assert!(!r.ready);
        assert_eq!(r.reason, Some("offsets_missing"), "the lowest partition's");
        let body = serde_json::to_value(&r).expect("json");
        assert_eq!(body["inconsistent"][1]["partition"], 2);
        assert_eq!(body["inconsistent"][1]["reason"], "changelog_missing");
        h.consistent(1);
        assert_eq!(h.readiness().reason, Some("changelog_missing"));
        // Revoked: another instance owns the problem now.
        h.set_assignment(&[0, 1]);
        let r = h.readiness();
        assert!(r.ready && r.reason.is_none() && r.inconsistent.is_empty());
        let body = serde_json::to_string(&r).expect("json");
        assert!(!body.contains("inconsistent"), "{body}");
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

    #[test]
    fn the_watchdog_fires_after_the_stall_without_progress_and_not_before() {
        let h = Health::new(Delivery::AtLeastOnce);
        let t0 = Instant::now();
        // Not armed: never stalled.
        assert_eq!(h.stalled_at(t0 + Duration::from_secs(86_400)), None);
        h.set_watchdog(Duration::from_secs(900));
        h.progress_at(t0);
        assert_eq!(h.stalled_at(t0 + Duration::from_secs(900)), None);
        let late = h
            .stalled_at(t0 + Duration::from_secs(901))
            .expect("stalled");
        assert!(late >= Duration::from_secs(901), "{late:?}");
        // Progress revives it.
        h.progress_at(t0 + Duration::from_secs(1000));
        assert_eq!(h.stalled_at(t0 + Duration::from_secs(1800)), None);
        assert!(h.stalled_at(t0 + Duration::from_secs(1901)).is_some());
    }

    #[test]
    fn subscribed_without_an_assignment_too_long_is_not_assigned() {
        let h = Health::new(Delivery::AtLeastOnce);
        assert_eq!(h.unassigned_at(Instant::now()), None, "not watched");
        let t0 = Instant::now();
        h.watch_assignment(Duration::from_secs(60), t0);
        assert_eq!(
            h.unassigned_at(t0 + Duration::from_secs(60)),
            Some((Duration::from_secs(60), false))
        );
        assert_eq!(
            h.unassigned_at(t0 + Duration::from_secs(61)),
            Some((Duration::from_secs(61), true))
        );
        assert_eq!(h.readiness().reason, None, "only 0 s of real time passed");
        // An assignment (even an empty one: a spare member) ends it.
        h.set_assignment(&[]);
        assert_eq!(h.unassigned_at(t0 + Duration::from_secs(600)), None);
        assert!(h.is_ready());
        // Losing it starts the clock again.
        h.clear_assignment();
        assert!(matches!(h.unassigned_at(Instant::now()), Some((_, false))));
        // The reason in the /readyz body, with a threshold already passed.
        h.watch_assignment(Duration::ZERO, Instant::now() - Duration::from_millis(5));
        let r = h.readiness();
        assert!(!r.ready);
        assert_eq!(r.reason, Some("not_assigned"));
        let body = serde_json::to_string(&r).expect("json");
        assert!(body.contains(r#""reason":"not_assigned""#), "{body}");
    }
}
