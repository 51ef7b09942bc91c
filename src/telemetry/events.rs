//! Named internal events: one type per thing that happens to the service, whose `emit` writes
//! the log line and moves the metrics together (Vector's `internal_events`), so the two cannot
//! drift apart or be kept in different files.

use std::fmt::Display;
use std::time::Duration;

use super::{Health, Metrics, TxOutcome};
use crate::reject::RejectReason;
use crate::source::consumer_error::ConsumerErrorKind;

/// An offset commit failed (reported by the consumer's commit callback). Nothing is lost: the
/// records after the last successful commit are read again after a restart.
pub struct CommitFailed<'a> {
    /// What the broker or client said.
    pub error: &'a dyn Display,
}

impl CommitFailed<'_> {
    /// Logs a warning and counts `stockwatch_commit_failures_total` (when the consumer has
    /// metrics).
    pub fn emit(&self, metrics: Option<&Metrics>) {
        tracing::warn!(error = %self.error, "offset commit failed; the records will be read again after a restart");
        if let Some(m) = metrics {
            m.commit_failed();
        }
    }
}

/// The consumer returned an error instead of a message (`crate::source::consumer_error`).
/// Its topic and partition are not known: rdkafka keeps only the code (librdkafka's text,
/// logged with it, names the offset of an unreadable message set).
pub struct ConsumerErrored<'a> {
    /// Its kind.
    pub kind: ConsumerErrorKind,
    /// The error as rdkafka returned it (librdkafka's code and its description).
    pub error: &'a rdkafka::error::KafkaError,
    /// librdkafka's own text of it, when known (it names the offset of an unreadable
    /// message set, not its topic or partition).
    pub text: Option<&'a str>,
}

impl ConsumerErrored<'_> {
    /// Counts `stockwatch_consumer_errors_total{kind}`; logs the kind, the librdkafka code and
    /// what follows, at error level (a warning for `broker`, which librdkafka recovers from).
    pub fn emit(&self, metrics: &Metrics) {
        metrics.consumer_error(self.kind);
        let (kind, next) = (self.kind.as_str(), self.kind.next());
        // librdkafka's code: its name and number (`AutoOffsetReset (-140)`).
        let code = self
            .error
            .rdkafka_error_code()
            .map_or_else(|| "none".to_owned(), |c| format!("{c:?} ({})", c as i32));
        let librdkafka = self.text.unwrap_or("");
        let position =
            "not known: rdkafka returns only the code (librdkafka's text may name the offset)";
        if self.kind.is_error() {
            tracing::error!(kind, code = %code, error = %self.error, librdkafka, topic_partition_offset = position, next, "consumer error; see the runbook (consumer errors)");
        } else {
            tracing::warn!(kind, code = %code, error = %self.error, librdkafka, topic_partition_offset = position, next, "consumer error");
        }
    }
}

/// A Kafka transaction ended (`exactly_once`).
pub struct TransactionEnded<'a> {
    /// Committed or aborted.
    pub outcome: TxOutcome,
    /// The produce error an abort answers; `None` for a commit or an abort on rebalance.
    pub error: Option<&'a dyn Display>,
}

impl TransactionEnded<'_> {
    /// Counts `stockwatch_transactions_total{outcome}`; an abort after an error is logged.
    pub fn emit(&self, metrics: &Metrics) {
        if let Some(e) = self.error {
            tracing::warn!(error = %e, "transaction aborted; restoring every shard from the changelog");
        }
        metrics.transaction(self.outcome);
    }
}

/// Input records were rejected in one batch (and `dead_lettered` of them were written to the
/// dead-letter topic), by reason.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// Rejections by [`RejectReason::index`].
    pub rejected: &'a [u64; RejectReason::ALL.len()],
    /// Dead letters by [`RejectReason::index`].
    pub dead_lettered: &'a [u64; RejectReason::ALL.len()],
}

impl Rejected<'_> {
    /// Counts `stockwatch_events_rejected_total` and `stockwatch_dead_letters_total`; logs
    /// each reason seen at debug level (the records themselves are on the dead-letter topic).
    pub fn emit(&self, metrics: &Metrics) {
        for r in RejectReason::ALL {
            let (n, dead) = (self.rejected[r.index()], self.dead_lettered[r.index()]);
            if n > 0 {
                tracing::debug!(
                    reason = r.as_str(),
                    records = n,
                    dead_letters = dead,
                    "input records rejected"
                );
                metrics.rejected(r, n);
            }
            if dead > 0 {
                metrics.dead_lettered(r, dead);
            }
        }
    }
}

/// The partitions assigned to this instance changed (a rebalance, or a restore that starts).
#[derive(Debug)]
pub struct AssignmentChanged<'a> {
    /// The partitions assigned now.
    pub partitions: &'a [i32],
    /// Partitions revoked by this change (logged).
    pub revoked: &'a [i32],
}

impl AssignmentChanged<'_> {
    /// Logs each revoked partition; sets the assignment gauges and readiness.
    pub fn emit(&self, metrics: &Metrics, health: &Health) {
        for p in self.revoked {
            tracing::info!(partition = p, "partition revoked; shard dropped");
        }
        metrics.set_assignment(self.partitions);
        health.set_assignment(self.partitions);
    }
}

/// A partition's shard was restored from the changelog.
#[derive(Debug)]
pub struct PartitionRestored {
    /// The partition number.
    pub partition: i32,
    /// Keys restored.
    pub keys: usize,
    /// Changelog records read.
    pub records_read: u64,
    /// The input offsets the restored state reflects.
    pub offsets: [i64; crate::config::MAX_INPUTS],
    /// How long the restore took.
    pub elapsed: Duration,
}

impl PartitionRestored {
    /// Logs it; observes `stockwatch_restore_duration_seconds`, counts
    /// `stockwatch_restored_keys_total`; the partition is no longer restoring (readiness).
    pub fn emit(&self, metrics: &Metrics, health: &Health) {
        tracing::info!(
            partition = self.partition,
            keys = self.keys,
            records_read = self.records_read,
            offsets = ?self.offsets,
            secs = self.elapsed.as_secs_f64(),
            "partition restored from the changelog"
        );
        health.restored(self.partition);
        metrics.restored(self.elapsed, self.keys as u64);
    }
}

/// A batch's flush or transaction commit timed out, or answered after timing out: the brokers
/// do not acknowledge (consumption pauses meanwhile and the instance is not ready).
pub struct BatchWaiting<'a> {
    /// Still waiting (`Some`: the timeout just seen) or answered (`None`).
    pub error: Option<&'a dyn Display>,
    /// How long it has waited so far.
    pub waited: Duration,
}

impl BatchWaiting<'_> {
    /// Logs it (each timeout, then the answer) and sets readiness.
    pub fn emit(&self, health: &Health) {
        let waited_secs = self.waited.as_secs();
        match self.error {
            Some(e) => {
                tracing::warn!(error = %e, waited_secs, "the brokers do not acknowledge the batch; consumption paused until they do");
            }
            None => tracing::info!(waited_secs, "the brokers answer again"),
        }
        health.set_waiting_for_brokers(self.error.is_some());
        // Waiting, and saying so each time: alive (the watchdog is for a loop that hangs).
        health.progress();
    }
}

/// `at_least_once`: the oldest commit point waited too long for its acknowledgements (or they
/// came): consumption pauses until they do, and the instance is not ready meanwhile.
#[derive(Debug)]
pub struct AcksStalled {
    /// Stalled (`true`) or acknowledging again (`false`).
    pub stalled: bool,
    /// Commit points waiting.
    pub commit_points: usize,
    /// Records in flight.
    pub in_flight: i32,
}

impl AcksStalled {
    /// Logs the change and sets readiness.
    pub fn emit(&self, health: &Health) {
        if self.stalled {
            tracing::warn!(
                commit_points = self.commit_points,
                in_flight = self.in_flight,
                "the brokers do not acknowledge the published records; consumption paused until they do"
            );
        } else {
            tracing::info!("the brokers acknowledge again; consumption resumes");
        }
        health.set_waiting_for_brokers(self.stalled);
    }
}
