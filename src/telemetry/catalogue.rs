//! The metric catalogue: every metric's name, type, labels, help and buckets, written once
//! ([`METRICS`]). Registration ([`super::Metrics::new`]) and the exported [`CATALOGUE`] both
//! read it.

/// The Prometheus metric type of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Monotonic count; name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Bucketed observations; name ends in a unit (`_seconds`, `_bytes`) or `_messages`.
    Histogram,
}

impl MetricKind {
    /// The `# TYPE` word of the text exposition format.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric: everything its registration and the catalogue need, written once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    /// The metric (family) name.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
    /// Histogram buckets (empty for counters and gauges).
    pub buckets: &'static [f64],
}

const fn spec(
    name: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind,
        labels,
        help,
        buckets: &[],
    }
}

const fn histogram_spec(
    name: &'static str,
    help: &'static str,
    buckets: &'static [f64],
) -> MetricSpec {
    MetricSpec {
        name,
        kind: MetricKind::Histogram,
        labels: &[],
        help,
        buckets,
    }
}

use MetricKind::{Counter, Gauge as GaugeKind};

pub(super) const CONSUMED: MetricSpec = spec(
    "stockwatch_events_consumed_total",
    Counter,
    &["type"],
    "Input records consumed, by event type (unknown: type not recognised).",
);
pub(super) const APPLIED: MetricSpec = spec(
    "stockwatch_events_applied_total",
    Counter,
    &["type"],
    "Events applied to state, by event type.",
);
pub(super) const REJECTED: MetricSpec = spec(
    "stockwatch_events_rejected_total",
    Counter,
    &["reason"],
    "Input records rejected, by reason code.",
);
pub(super) const DEAD_LETTERS: MetricSpec = spec(
    "stockwatch_dead_letters_total",
    Counter,
    &["reason"],
    "Records written to the dead-letter topic, by reason code.",
);
pub(super) const BATCH_MESSAGES: MetricSpec = histogram_spec(
    "stockwatch_batch_messages",
    "Messages per processed micro-batch.",
    BATCH_MESSAGES_BUCKETS,
);
pub(super) const BATCH_SECONDS: MetricSpec = histogram_spec(
    "stockwatch_batch_duration_seconds",
    "Time to process one micro-batch (decode, apply, score, alert).",
    BATCH_SECONDS_BUCKETS,
);
pub(super) const LATENCY: MetricSpec = histogram_spec(
    "stockwatch_end_to_end_latency_seconds",
    "From the input record's timestamp to the publication of the alert it caused.",
    LATENCY_SECONDS_BUCKETS,
);
pub(super) const EARLY_LATENCY: MetricSpec = histogram_spec(
    "stockwatch_early_alert_latency_seconds",
    "From the input record's timestamp to the publication of the early alert it caused (scored on arrival; retractions are timed with the confirmed alerts).",
    LATENCY_SECONDS_BUCKETS,
);
/// The service's own share of an alert's latency, apart from the broker's: from the triggering
/// record returned by the consumer's poll to the alert handed to the producer
/// (`step="handed"`), and to its acknowledgement (`at_least_once`) or the commit of its
/// transaction (`exactly_once`, `step="acknowledged"`).
pub(super) const SERVICE_LATENCY: MetricSpec = MetricSpec {
    name: "stockwatch_service_latency_seconds",
    kind: MetricKind::Histogram,
    labels: &["stage", "step"],
    help: "From the triggering record consumed (returned by poll) to its alert handed to the producer (step=handed) and acknowledged or committed (step=acknowledged), by stage: early (scored on arrival), confirmed (made when the watermark applied the record: confirmed alerts, and the retractions of early alerts).",
    buckets: SERVICE_LATENCY_BUCKETS,
};
pub(super) const EARLY_ALERTS: MetricSpec = spec(
    "stockwatch_early_alerts_total",
    Counter,
    &["kind", "status"],
    "Early alerts published, by kind and status (resolved: not confirmed).",
);
pub(super) const LAG: MetricSpec = spec(
    "stockwatch_consumer_lag_messages",
    GaugeKind,
    &["partition"],
    "Consumer lag of an assigned partition (log end - committed offset, so records held for the watermark count), summed over the input topics.",
);
pub(super) const ASSIGNED: MetricSpec = spec(
    "stockwatch_assigned_partitions",
    GaugeKind,
    &[],
    "Partitions currently assigned to this instance.",
);
pub(super) const ALERTS: MetricSpec = spec(
    "stockwatch_alerts_total",
    Counter,
    &["kind", "status"],
    "Alerts published, by kind and status.",
);
pub(super) const OPEN_ALERTS: MetricSpec = spec(
    "stockwatch_open_alerts",
    GaugeKind,
    &["kind"],
    "Alerts currently open (raised and not resolved) on this instance, by kind.",
);
pub(super) const TRACKED_KEYS: MetricSpec = spec(
    "stockwatch_tracked_keys",
    GaugeKind,
    &[],
    "Keys (location, sku) held in state on this instance.",
);
pub(super) const STATE_BYTES: MetricSpec = spec(
    "stockwatch_state_bytes",
    GaugeKind,
    &["part"],
    "Heap bytes of state, by part.",
);
pub(super) const PENDING: MetricSpec = spec(
    "stockwatch_pending_events",
    GaugeKind,
    &[],
    "Events held in reorder buffers, waiting for the watermark.",
);
pub(super) const PAUSED: MetricSpec = spec(
    "stockwatch_input_partitions_paused",
    GaugeKind,
    &[],
    "Input partitions paused by flow control (reorder buffers over their share).",
);
pub(super) const PAUSES: MetricSpec = spec(
    "stockwatch_input_pauses_total",
    Counter,
    &[],
    "Times flow control paused an input partition.",
);
pub(super) const RESTORE_SECONDS: MetricSpec = histogram_spec(
    "stockwatch_restore_duration_seconds",
    "Time to restore one partition's state on assignment.",
    RESTORE_SECONDS_BUCKETS,
);
pub(super) const RESTORED_KEYS: MetricSpec = spec(
    "stockwatch_restored_keys_total",
    Counter,
    &[],
    "Keys restored into state on assignment.",
);
pub(super) const CHANGELOG_RECORDS: MetricSpec = spec(
    "stockwatch_changelog_records_total",
    Counter,
    &["record"],
    "State changelog records written, by record: key (a changed key's state), journal (new remembered ids or label snapshots), tombstone (a spent journal record deleted), shard (one per shard and batch).",
);
pub(super) const CHANGELOG_BYTES: MetricSpec = spec(
    "stockwatch_changelog_bytes_total",
    Counter,
    &["record"],
    "Bytes of the state changelog records' values written, by record as stockwatch_changelog_records_total (before the producer's compression; a tombstone has none).",
);
/// The `record` label values of the changelog metrics, in [`crate::service::changelog::Written`]
/// order.
pub const CHANGELOG_RECORD_KINDS: [&str; 4] = ["key", "journal", "tombstone", "shard"];
pub(super) const TRANSACTIONS: MetricSpec = spec(
    "stockwatch_transactions_total",
    Counter,
    &["outcome"],
    "Kafka transactions ended, by outcome.",
);
pub(super) const PRODUCER_RENEWALS: MetricSpec = spec(
    "stockwatch_producer_renewals_total",
    Counter,
    &[],
    "exactly_once: producers replaced because an abort could not complete (the new one's init aborts the transaction at the coordinator).",
);
pub(super) const COMMIT_FAILURES: MetricSpec = spec(
    "stockwatch_commit_failures_total",
    Counter,
    &[],
    "Failed offset or transaction commits.",
);
pub(super) const MODEL_BRIER: MetricSpec = spec(
    "stockwatch_model_rolling_brier",
    GaugeKind,
    &["model"],
    "Rolling prequential Brier score of the risk model, champion or challenger (lower is better; NaN until labels; a challenger's only with model.challenger).",
);
pub(super) const MODEL_AUC: MetricSpec = spec(
    "stockwatch_model_rolling_auc",
    GaugeKind,
    &["model"],
    "Rolling prequential ROC AUC of the risk model, champion or challenger (NaN until both classes are seen; a challenger's only with model.challenger).",
);
pub(super) const LABEL_BACKLOG: MetricSpec = spec(
    "stockwatch_model_label_backlog",
    GaugeKind,
    &[],
    "Training snapshots waiting for their label to mature.",
);
pub(super) const MODEL_UPDATES: MetricSpec = spec(
    "stockwatch_model_updates_total",
    Counter,
    &[],
    "Online model updates (matured labels learned from).",
);
pub(super) const PHANTOM_COUNTS: MetricSpec = spec(
    "stockwatch_inventory_counts_phantom_total",
    Counter,
    &[],
    "Inventory counts that found less than the book (recorded on hand): phantom inventory.",
);
pub(super) const PHANTOM_UNITS: MetricSpec = spec(
    "stockwatch_inventory_phantom_units_total",
    Counter,
    &[],
    "Units the book over-stated, summed over the counts that found less than it.",
);
pub(super) const BUILD_INFO: MetricSpec = spec(
    "stockwatch_build_info",
    GaugeKind,
    &["version", "model_version"],
    "Always 1; labels carry the service and model versions.",
);
pub(super) const UNASSIGNED_SECONDS: MetricSpec = spec(
    "stockwatch_unassigned_seconds",
    GaugeKind,
    &[],
    "Seconds the consumer has been subscribed without an assignment (0 once it has one).",
);
pub(super) const STATE_INCONSISTENT: MetricSpec = spec(
    "stockwatch_state_inconsistent_partitions",
    GaugeKind,
    &["reason"],
    "Assigned partitions not processed because their changelog and the group's committed offsets disagree, by reason (changelog_missing, changelog_truncated, offsets_missing); resolved with `stockwatch reset-state`.",
);

pub(super) const CONSUMER_ERRORS: MetricSpec = spec(
    "stockwatch_consumer_errors_total",
    Counter,
    &["kind"],
    "Errors the Kafka consumer returned instead of a message, by kind (bad_message and bad_compression: librdkafka skipped records).",
);

/// Every metric the service exports, in catalogue order: [`Metrics::new`] registers each from
/// its entry here, and [`CATALOGUE`] is derived from it.
pub const METRICS: [MetricSpec; 36] = [
    CONSUMED,
    APPLIED,
    REJECTED,
    DEAD_LETTERS,
    BATCH_MESSAGES,
    BATCH_SECONDS,
    LATENCY,
    EARLY_LATENCY,
    SERVICE_LATENCY,
    EARLY_ALERTS,
    LAG,
    ASSIGNED,
    ALERTS,
    OPEN_ALERTS,
    TRACKED_KEYS,
    STATE_BYTES,
    PENDING,
    PAUSED,
    PAUSES,
    RESTORE_SECONDS,
    RESTORED_KEYS,
    CHANGELOG_RECORDS,
    CHANGELOG_BYTES,
    TRANSACTIONS,
    PRODUCER_RENEWALS,
    COMMIT_FAILURES,
    MODEL_BRIER,
    MODEL_AUC,
    LABEL_BACKLOG,
    MODEL_UPDATES,
    PHANTOM_COUNTS,
    PHANTOM_UNITS,
    BUILD_INFO,
    UNASSIGNED_SECONDS,
    CONSUMER_ERRORS,
    STATE_INCONSISTENT,
];

/// Every metric the service exports: (name, type, label names), from [`METRICS`].
/// Dashboards, alert rules and the README's metrics list are checked against this; a test
/// checks it against the registry.
pub const CATALOGUE: &[(&str, MetricKind, &[&str])] = &catalogue();

const fn catalogue() -> [(&'static str, MetricKind, &'static [&'static str]); METRICS.len()] {
    let mut out = [("", MetricKind::Counter, &[] as &[&str]); METRICS.len()];
    let mut i = 0;
    while i < METRICS.len() {
        out[i] = (METRICS[i].name, METRICS[i].kind, METRICS[i].labels);
        i += 1;
    }
    out
}

// Buckets: batch sizes up to the largest sensible poll batch; durations from sub-millisecond
// batches to multi-second stalls; latency resolves the p99 < 100 ms target finely and still
// places catch-up backlogs (minutes) in a bucket rather than only in +Inf.
const BATCH_MESSAGES_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0,
];
const BATCH_SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Fine from 100 ms to 5 s, where the produce-to-alert latency lives: with a 1 s → 2.5 s
/// bucket, every p99 in between read as ~2.4 s.
const LATENCY_SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.5,
    5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
/// The service's own share: fine from 1 ms to 250 ms around the p99 < 100 ms target.
const SERVICE_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 60.0,
];
const RESTORE_SECONDS_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
