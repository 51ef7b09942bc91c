//! The metric catalogue and its typed handles.
//!
//! Naming follows Prometheus practice and STYLE: prefix `stockwatch_`, base units (seconds,
//! bytes), `_total` on counters, bounded labels only. Every label value of a bounded label is
//! resolved once in [`Metrics::new`] into an array of child handles, so the hot path indexes an
//! array and bumps an atomic — no label hashing, no allocation. The service reports per batch
//! (counts, not one call per event). Per-partition lag children are created on assignment and
//! removed on revoke, so a revoked partition's series disappears instead of going stale.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::proto::MetricType;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::catalogue::*;
use super::TelemetryError;
use crate::alert::{AlertKind, AlertStatus};
use crate::event::EventType;
use crate::model::ModelRole;
use crate::reject::RejectReason;
use crate::source::consumer_error::ConsumerErrorKind;

/// `type` label values of `stockwatch_events_consumed_total`: the event types in
/// [`EventType`] code order, then `unknown` (a record whose type could not be told).
pub const CONSUMED_TYPES: [&str; EventType::COUNT + 1] = [
    "sale",
    "shipment",
    "receipt",
    "availability",
    "inventory_count",
    "adjustment",
    "unknown",
];

/// Index of `unknown` in [`CONSUMED_TYPES`] (the others are `EventType as usize`).
pub const UNKNOWN_TYPE: usize = EventType::COUNT;

/// `part` label values of `stockwatch_state_bytes`, in [`crate::engine::Shard::state_bytes`]
/// order.
pub const STATE_PARTS: [&str; 3] = ["per_key", "key_strings", "shard_level"];

const ALERT_KINDS: [AlertKind; 2] = [AlertKind::StockoutRisk, AlertKind::Stockout];
const ALERT_STATUSES: [AlertStatus; 3] = [
    AlertStatus::Raised,
    AlertStatus::Updated,
    AlertStatus::Resolved,
];
const REASONS: usize = RejectReason::ALL.len();

/// Which alert stream an alert was published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `kafka.topics.alerts`: applied in event-time order once the watermark passed.
    Confirmed,
    /// `kafka.topics.early_alerts`: scored on arrival (`alerts.early`).
    Early,
}

impl Stage {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Confirmed => "confirmed",
            Stage::Early => "early",
        }
    }
}

/// Where the service's own latency of an alert is measured
/// (`stockwatch_service_latency_seconds{step}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyStep {
    /// The alert handed to the producer (`send` returned).
    Handed,
    /// Acknowledged by the brokers (`at_least_once`) or committed (`exactly_once`).
    Acknowledged,
}

impl LatencyStep {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyStep::Handed => "handed",
            LatencyStep::Acknowledged => "acknowledged",
        }
    }
}

/// Outcome of a Kafka transaction (`stockwatch_transactions_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxOutcome {
    /// Committed.
    Commit,
    /// Aborted (the batch will be reprocessed).
    Abort,
}

impl TxOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TxOutcome::Commit => "committed",
            TxOutcome::Abort => "aborted",
        }
    }
}

/// The lag gauge of one assigned partition: a handle a shard may keep (no lookup per update).
/// After the partition is revoked the handle still works but is no longer exported.
#[derive(Debug, Clone)]
pub struct PartitionLag(IntGauge);

impl PartitionLag {
    /// Sets the lag in messages (summed over the input topics of this partition). A negative
    /// value means "unknown" (librdkafka reports -1) and leaves the gauge unchanged.
    pub fn set(&self, lag: i64) {
        if lag >= 0 {
            self.0.set(lag);
        }
    }
}

/// The service's metrics: a private registry and pre-resolved handles. Share it as
/// `Arc<Metrics>`; every method takes `&self` and is lock-free except the rebalance-time
/// partition bookkeeping.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    consumed: [IntCounter; EventType::COUNT + 1],
    applied: [IntCounter; EventType::COUNT],
    rejected: [IntCounter; REASONS],
    dead_letters: [IntCounter; REASONS],
    batch_messages: Histogram,
    batch_seconds: Histogram,
    latency_seconds: Histogram,
    early_latency_seconds: Histogram,
    /// Indexed by [`Stage`] (confirmed, early), then [`LatencyStep`].
    service_latency: [[Histogram; 2]; 2],
    early_alerts: IntCounterVec,
    lag: IntGaugeVec,
    partitions: Mutex<BTreeMap<i32, IntGauge>>,
    assigned_partitions: IntGauge,
    alerts: [[IntCounter; 3]; 2],
    open_alerts: [IntGauge; 2],
    tracked_keys: IntGauge,
    state_bytes: [IntGauge; 3],
    pending_events: IntGauge,
    paused_partitions: IntGauge,
    pauses: IntCounter,
    restore_seconds: Histogram,
    restored_keys: IntCounter,
    changelog_records: [IntCounter; 4],
    changelog_bytes: [IntCounter; 4],
    transactions: [IntCounter; 2],
    commit_failures: IntCounter,
    producer_renewals: IntCounter,
    model_quality: ModelQuality,
    label_backlog: IntGauge,
    model_updates: IntCounter,
    phantom_counts: IntCounter,
    phantom_units: prometheus::Counter,
    unassigned_seconds: IntGauge,
    consumer_errors: [IntCounter; ConsumerErrorKind::ALL.len()],
    inconsistent: [IntGauge; 3],
}

impl Metrics {
    /// Creates the registry and registers every metric of [`METRICS`] once.
    /// `stockwatch_build_info` gets this crate's version and `model_version`.
    pub fn new(model_version: &str) -> Result<Self, TelemetryError> {
        let r = Registry::new();
        let reasons = RejectReason::ALL.map(RejectReason::as_str);
        let kinds = ALERT_KINDS.map(AlertKind::as_str);

        let alerts_vec = register(&r, IntCounterVec::new(opts(&ALERTS), ALERTS.labels))?;
        let mut alerts = Vec::with_capacity(ALERT_KINDS.len());
        for kind in ALERT_KINDS {
            let mut row = Vec::with_capacity(ALERT_STATUSES.len());
            for status in ALERT_STATUSES {
                row.push(
                    alerts_vec
                        .get_metric_with_label_values(&[kind.as_str(), status.as_str()])
                        .map_err(TelemetryError::Register)?,
                );
            }
            alerts.push(to_array(row)?);
        }

        let early_alerts = register(
            &r,
            IntCounterVec::new(opts(&EARLY_ALERTS), EARLY_ALERTS.labels),
        )?;
        // Every series exists from the start at 0 (early alerts are raised or resolved).
        for kind in ALERT_KINDS {
            for status in [AlertStatus::Raised, AlertStatus::Resolved] {
                early_alerts
                    .get_metric_with_label_values(&[kind.as_str(), status.as_str()])
                    .map_err(TelemetryError::Register)?;
            }
        }

        let build_info = register(&r, IntGaugeVec::new(opts(&BUILD_INFO), BUILD_INFO.labels))?;
        build_info
            .get_metric_with_label_values(&[env!("CARGO_PKG_VERSION"), model_version])
            .map_err(TelemetryError::Register)?
            .set(1);

        let metrics = Metrics {
            consumed: counters(&r, &CONSUMED, CONSUMED_TYPES)?,
            applied: counters(&r, &APPLIED, EventType::ALL.map(EventType::as_str))?,
            rejected: counters(&r, &REJECTED, reasons)?,
            dead_letters: counters(&r, &DEAD_LETTERS, reasons)?,
            batch_messages: histogram(&r, &BATCH_MESSAGES)?,
            batch_seconds: histogram(&r, &BATCH_SECONDS)?,
            latency_seconds: histogram(&r, &LATENCY)?,
            early_latency_seconds: histogram(&r, &EARLY_LATENCY)?,
            service_latency: service_latency(&r)?,
            early_alerts,
            lag: register(&r, IntGaugeVec::new(opts(&LAG), LAG.labels))?,
            partitions: Mutex::new(BTreeMap::new()),
            assigned_partitions: gauge(&r, &ASSIGNED)?,
            alerts: to_array(alerts)?,
            open_alerts: gauges(&r, &OPEN_ALERTS, kinds)?,
            tracked_keys: gauge(&r, &TRACKED_KEYS)?,
            state_bytes: gauges(&r, &STATE_BYTES, STATE_PARTS)?,
            pending_events: gauge(&r, &PENDING)?,
            paused_partitions: gauge(&r, &PAUSED)?,
            pauses: counter(&r, &PAUSES)?,
            restore_seconds: histogram(&r, &RESTORE_SECONDS)?,
            restored_keys: counter(&r, &RESTORED_KEYS)?,
            changelog_records: counters(&r, &CHANGELOG_RECORDS, CHANGELOG_RECORD_KINDS)?,
            changelog_bytes: counters(&r, &CHANGELOG_BYTES, CHANGELOG_RECORD_KINDS)?,
            transactions: counters(
                &r,
                &TRANSACTIONS,
                [TxOutcome::Commit.as_str(), TxOutcome::Abort.as_str()],
            )?,
            commit_failures: counter(&r, &COMMIT_FAILURES)?,
            producer_renewals: counter(&r, &PRODUCER_RENEWALS)?,
            model_quality: ModelQuality::new(&r)?,
            label_backlog: gauge(&r, &LABEL_BACKLOG)?,
            model_updates: counter(&r, &MODEL_UPDATES)?,
            phantom_counts: counter(&r, &PHANTOM_COUNTS)?,
            phantom_units: register(&r, prometheus::Counter::with_opts(opts(&PHANTOM_UNITS)))?,
            unassigned_seconds: gauge(&r, &UNASSIGNED_SECONDS)?,
            consumer_errors: counters(
                &r,
                &CONSUMER_ERRORS,
                ConsumerErrorKind::ALL.map(ConsumerErrorKind::as_str),
            )?,
            inconsistent: gauges(&r, &STATE_INCONSISTENT, INCONSISTENCY_REASONS)?,
            registry: r,
        };
        // Unknown until the first labels mature: 0 would read as a perfect Brier score or a
        // broken AUC and could fire a quality alert at every start.
        metrics.model_quality.champion.0.set(f64::NAN);
        metrics.model_quality.champion.1.set(f64::NAN);
        Ok(metrics)
    }

    /// Records consumed in one batch, by [`CONSUMED_TYPES`] index (`EventType as usize`, then
    /// [`UNKNOWN_TYPE`]).
    pub fn consumed(&self, by_type: [u64; EventType::COUNT + 1]) {
        inc_all(&self.consumed, &by_type);
    }

    /// Events applied in one batch, by `EventType as usize` (the layout of
    /// `ShardCounters::applied`).
    pub fn applied(&self, by_type: [u64; EventType::COUNT]) {
        inc_all(&self.applied, &by_type);
    }

    /// `n` records rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason, n: u64) {
        inc(&self.rejected[reason.index()], n);
    }

    /// Rejections of one batch, by [`RejectReason::index`] (the layout of
    /// `EngineCounters::rejected`).
    pub fn rejected_by_reason(&self, by_reason: &[u64; RejectReason::ALL.len()]) {
        inc_all(&self.rejected, by_reason);
    }

    /// `n` records acknowledged by the dead-letter topic for `reason`.
    pub fn dead_lettered(&self, reason: RejectReason, n: u64) {
        inc(&self.dead_letters[reason.index()], n);
    }

    /// One micro-batch processed: its size and how long it took.
    pub fn batch(&self, messages: usize, elapsed: Duration) {
        self.batch_messages.observe(messages as f64);
        self.batch_seconds.observe(elapsed.as_secs_f64());
    }

    /// End-to-end latencies of the alerts of one publish, in seconds (publish time minus the
    /// triggering record's timestamp). Negative values (clock skew) count as 0.
    pub fn end_to_end_latencies(&self, seconds: impl IntoIterator<Item = f64>) {
        // A local histogram batches the atomic updates into one flush.
        let local = self.latency_seconds.local();
        for s in seconds {
            if s.is_finite() {
                local.observe(s.max(0.0));
            }
        }
        local.flush();
    }

    /// The end-to-end latency of one alert of `stage`, in seconds (negative: 0).
    pub fn end_to_end_latency(&self, stage: Stage, seconds: f64) {
        let h = match stage {
            Stage::Confirmed => &self.latency_seconds,
            Stage::Early => &self.early_latency_seconds,
        };
        if seconds.is_finite() {
            h.observe(seconds.max(0.0));
        }
    }

    /// The service's own share of one alert's latency, in seconds (negative: 0), at `step`.
    pub fn service_latency(&self, stage: Stage, step: LatencyStep, seconds: f64) {
        if seconds.is_finite() {
            self.service_latency[stage as usize][step as usize].observe(seconds.max(0.0));
        }
    }

    /// One early alert published.
    pub fn early_alert(&self, kind: AlertKind, status: AlertStatus) {
        if let Ok(c) = self
            .early_alerts
            .get_metric_with_label_values(&[kind.as_str(), status.as_str()])
        {
            c.inc();
        }
    }

    /// Sets the partitions currently assigned (the full set, after each rebalance): creates
    /// their lag series, removes those of partitions no longer assigned, and sets
    /// `stockwatch_assigned_partitions`.
    pub fn set_assignment(&self, partitions: &[i32]) {
        let mut map = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.retain(|p, _| {
            let keep = partitions.contains(p);
            if !keep {
                // Absent only if never created; nothing to remove then.
                let _ = self.lag.remove_label_values(&[&p.to_string()]);
            }
            keep
        });
        for &p in partitions {
            if let std::collections::btree_map::Entry::Vacant(slot) = map.entry(p) {
                if let Ok(g) = self.lag.get_metric_with_label_values(&[&p.to_string()]) {
                    slot.insert(g);
                }
            }
        }
        self.assigned_partitions.set(gauge_value(map.len()));
    }

    /// The lag handle of an assigned partition, for a shard to keep; `None` if not assigned.
    pub fn partition_lag(&self, partition: i32) -> Option<PartitionLag> {
        let map = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&partition).cloned().map(PartitionLag)
    }

    /// Sets the lag of an assigned partition (ignored if the partition is not assigned, so a
    /// late update cannot resurrect a revoked series; negative = unknown, ignored).
    pub fn consumer_lag(&self, partition: i32, lag: i64) {
        let map = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let (Some(g), true) = (map.get(&partition), lag >= 0) {
            g.set(lag);
        }
    }

    /// `n` alerts of `kind` with `status` published.
    pub fn alert(&self, kind: AlertKind, status: AlertStatus, n: u64) {
        inc(&self.alerts[kind_index(kind)][status_index(status)], n);
    }

    /// Alerts of one batch, `[kind][status]` (the layout of `ShardCounters::alerts`: kinds
    /// stockout_risk, stockout; statuses raised, updated, resolved).
    pub fn alerts(&self, counts: &[[u64; 3]; 2]) {
        for (handles, row) in self.alerts.iter().zip(counts) {
            inc_all(handles, row);
        }
    }

    /// Sets the number of open alerts of `kind`.
    pub fn open_alerts(&self, kind: AlertKind, open: u64) {
        self.open_alerts[kind_index(kind)].set(gauge_value(open));
    }

    /// Sets the number of keys held in state.
    pub fn tracked_keys(&self, keys: u64) {
        self.tracked_keys.set(gauge_value(keys));
    }

    /// Sets the heap bytes of state, `(per_key, key_strings, shard_level)` as returned by
    /// `Shard::state_bytes` (summed over the shards).
    pub fn state_bytes(&self, (per_key, key_strings, shard_level): (usize, usize, usize)) {
        for (g, v) in self
            .state_bytes
            .iter()
            .zip([per_key, key_strings, shard_level])
        {
            g.set(gauge_value(v));
        }
    }

    /// Sets the number of events waiting in reorder buffers.
    pub fn pending_events(&self, events: u64) {
        self.pending_events.set(gauge_value(events));
    }

    /// Input partitions paused by flow control now, and how many were paused just now.
    pub fn paused_partitions(&self, now: u64, newly: u64) {
        self.paused_partitions.set(gauge_value(now));
        self.pauses.inc_by(newly);
    }

    /// One partition restored: how long it took and how many keys it brought back.
    pub fn restored(&self, elapsed: Duration, keys: u64) {
        self.restore_seconds.observe(elapsed.as_secs_f64());
        inc(&self.restored_keys, keys);
    }

    /// Changelog records written by one batch and their values' bytes, per record kind
    /// ([`CHANGELOG_RECORD_KINDS`] order).
    pub fn changelog_written(&self, records: [u64; 4], bytes: [u64; 4]) {
        for (c, n) in self.changelog_records.iter().zip(records) {
            c.inc_by(n);
        }
        for (c, n) in self.changelog_bytes.iter().zip(bytes) {
            c.inc_by(n);
        }
    }

    /// One transaction ended with `outcome`.
    pub fn transaction(&self, outcome: TxOutcome) {
        let i = match outcome {
            TxOutcome::Commit => 0,
            TxOutcome::Abort => 1,
        };
        self.transactions[i].inc();
    }

    /// An offset or transaction commit failed.
    pub fn commit_failed(&self) {
        self.commit_failures.inc();
    }

    /// `exactly_once`: the producer was replaced after an abort that could not complete.
    pub fn producer_renewed(&self) {
        self.producer_renewals.inc();
    }

    /// Sets the rolling Brier score of the champion or the challenger.
    pub fn model_brier(&self, model: ModelRole, brier: f64) {
        if let Some((_, b)) = self.model_quality.of(model) {
            b.set(brier);
        }
    }

    /// Sets the rolling ROC AUC of the champion or the challenger; `None` (one class only so
    /// far) exports NaN, so a stale value never looks current.
    pub fn model_auc(&self, model: ModelRole, auc: Option<f64>) {
        if let Some((a, _)) = self.model_quality.of(model) {
            a.set(auc.unwrap_or(f64::NAN));
        }
    }

    /// Sets how long the consumer has been subscribed without an assignment (0: assigned).
    pub fn unassigned(&self, for_: Duration) {
        self.unassigned_seconds.set(gauge_value(for_.as_secs()));
    }

    /// One error returned by the consumer instead of a message.
    pub fn consumer_error(&self, kind: ConsumerErrorKind) {
        self.consumer_errors[kind.index()].inc();
    }

    /// Sets the partitions blocked on an inconsistent state, by [`INCONSISTENCY_REASONS`]
    /// index.
    pub fn inconsistent_partitions(&self, by_reason: [u64; 3]) {
        for (g, n) in self.inconsistent.iter().zip(by_reason) {
            g.set(gauge_value(n));
        }
    }

    /// Sets the number of training snapshots waiting for their label.
    pub fn label_backlog(&self, snapshots: u64) {
        self.label_backlog.set(gauge_value(snapshots));
    }

    /// Inventory counts below the book and the units they found missing (one batch's worth).
    pub fn phantom_inventory(&self, counts: u64, units: f64) {
        inc(&self.phantom_counts, counts);
        if units > 0.0 {
            self.phantom_units.inc_by(units);
        }
    }

    /// `n` online model updates.
    pub fn model_updates(&self, n: u64) {
        inc(&self.model_updates, n);
    }

    /// The registry in the Prometheus text exposition format ([`prometheus::TEXT_FORMAT`]).
    pub fn encode(&self) -> Result<String, TelemetryError> {
        let mut out = String::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .map_err(TelemetryError::Encode)?;
        Ok(out)
    }

    /// The families currently exported: (name, type, label names). A labelled family appears
    /// once it has a child (lag: once a partition is assigned).
    pub fn families(&self) -> Vec<(String, MetricKind, Vec<String>)> {
        self.registry
            .gather()
            .iter()
            .map(|mf| {
                let kind = match mf.get_field_type() {
                    MetricType::COUNTER => MetricKind::Counter,
                    MetricType::HISTOGRAM => MetricKind::Histogram,
                    // We register no summaries or untyped metrics.
                    _ => MetricKind::Gauge,
                };
                let labels = mf
                    .get_metric()
                    .first()
                    .map(|m| m.get_label().iter().map(|l| l.name().to_string()).collect())
                    .unwrap_or_default();
                (mf.name().to_string(), kind, labels)
            })
            .collect()
    }
}

fn kind_index(kind: AlertKind) -> usize {
    match kind {
        AlertKind::StockoutRisk => 0,
        AlertKind::Stockout => 1,
    }
}

fn status_index(status: AlertStatus) -> usize {
    match status {
        AlertStatus::Raised => 0,
        AlertStatus::Updated => 1,
        AlertStatus::Resolved => 2,
    }
}

fn inc(c: &IntCounter, n: u64) {
    if n > 0 {
        c.inc_by(n);
    }
}

fn inc_all(handles: &[IntCounter], counts: &[u64]) {
    for (c, &n) in handles.iter().zip(counts) {
        inc(c, n);
    }
}

fn gauge_value<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

fn register<C>(r: &Registry, c: Result<C, prometheus::Error>) -> Result<C, TelemetryError>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let c = c.map_err(TelemetryError::Register)?;
    r.register(Box::new(c.clone()))
        .map_err(TelemetryError::Register)?;
    Ok(c)
}

fn to_array<T, const N: usize>(v: Vec<T>) -> Result<[T; N], TelemetryError> {
    v.try_into().map_err(|v: Vec<T>| {
        TelemetryError::Register(prometheus::Error::Msg(format!(
            "expected {N} label children, built {}",
            v.len()
        )))
    })
}

fn opts(m: &MetricSpec) -> Opts {
    Opts::new(m.name, m.help)
}

fn counter(r: &Registry, m: &MetricSpec) -> Result<IntCounter, TelemetryError> {
    register(r, IntCounter::with_opts(opts(m)))
}

fn gauge(r: &Registry, m: &MetricSpec) -> Result<IntGauge, TelemetryError> {
    register(r, IntGauge::with_opts(opts(m)))
}

/// `stockwatch_model_rolling_auc{model}` and `_brier{model}`: the champion's children from the
/// start (NaN), the challenger's from the first value set for it (a service without
/// `model.challenger` exports none).
#[derive(Debug)]
struct ModelQuality {
    auc: GaugeVec,
    brier: GaugeVec,
    /// (AUC, Brier) of the champion.
    champion: (Gauge, Gauge),
    /// (AUC, Brier) of the challenger, once set (`None` inside: the family refused the label,
    /// which its fixed label names rule out).
    challenger: std::sync::OnceLock<Option<(Gauge, Gauge)>>,
}

impl ModelQuality {
    fn new(r: &Registry) -> Result<Self, TelemetryError> {
        let auc = register(r, GaugeVec::new(opts(&MODEL_AUC), MODEL_AUC.labels))?;
        let brier = register(r, GaugeVec::new(opts(&MODEL_BRIER), MODEL_BRIER.labels))?;
        let role = [ModelRole::Champion.as_str()];
        let champion = (
            auc.get_metric_with_label_values(&role)
                .map_err(TelemetryError::Register)?,
            brier
                .get_metric_with_label_values(&role)
                .map_err(TelemetryError::Register)?,
        );
        Ok(ModelQuality {
            auc,
            brier,
            champion,
            challenger: std::sync::OnceLock::new(),
        })
    }

    fn of(&self, model: ModelRole) -> Option<&(Gauge, Gauge)> {
        match model {
            ModelRole::Champion => Some(&self.champion),
            ModelRole::Challenger => self
                .challenger
                .get_or_init(|| {
                    let role = [ModelRole::Challenger.as_str()];
                    let auc = self.auc.get_metric_with_label_values(&role).ok()?;
                    let brier = self.brier.get_metric_with_label_values(&role).ok()?;
                    // Unknown until set: NaN, as the champion's at the start.
                    auc.set(f64::NAN);
                    brier.set(f64::NAN);
                    Some((auc, brier))
                })
                .as_ref(),
        }
    }
}

fn histogram(r: &Registry, m: &MetricSpec) -> Result<Histogram, TelemetryError> {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(m.name, m.help).buckets(m.buckets.to_vec())),
    )
}

/// `stockwatch_service_latency_seconds`: its four children, by [`Stage`] then [`LatencyStep`].
fn service_latency(r: &Registry) -> Result<[[Histogram; 2]; 2], TelemetryError> {
    let m = &SERVICE_LATENCY;
    let vec = register(
        r,
        HistogramVec::new(
            HistogramOpts::new(m.name, m.help).buckets(m.buckets.to_vec()),
            m.labels,
        ),
    )?;
    let child = |stage: Stage, step: LatencyStep| {
        vec.get_metric_with_label_values(&[stage.as_str(), step.as_str()])
            .map_err(TelemetryError::Register)
    };
    let (handed, acked) = (LatencyStep::Handed, LatencyStep::Acknowledged);
    Ok([
        [
            child(Stage::Confirmed, handed)?,
            child(Stage::Confirmed, acked)?,
        ],
        [child(Stage::Early, handed)?, child(Stage::Early, acked)?],
    ])
}

/// The children of a one-label family, one per value of `values`.
fn counters<const N: usize>(
    r: &Registry,
    m: &MetricSpec,
    values: [&str; N],
) -> Result<[IntCounter; N], TelemetryError> {
    let vec = register(r, IntCounterVec::new(opts(m), m.labels))?;
    let children = values
        .iter()
        .map(|v| vec.get_metric_with_label_values(&[v]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TelemetryError::Register)?;
    to_array(children)
}

/// As [`counters`], for gauges.
fn gauges<const N: usize>(
    r: &Registry,
    m: &MetricSpec,
    values: [&str; N],
) -> Result<[IntGauge; N], TelemetryError> {
    let vec = register(r, IntGaugeVec::new(opts(m), m.labels))?;
    let children = values
        .iter()
        .map(|v| vec.get_metric_with_label_values(&[v]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TelemetryError::Register)?;
    to_array(children)
}

/// The `reason` label values of `stockwatch_state_inconsistent_partitions`, in
/// [`crate::service::changelog::Inconsistency::index`] order.
pub const INCONSISTENCY_REASONS: [&str; 3] = [
    "changelog_missing",
    "changelog_truncated",
    "offsets_missing",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new("test-model").expect("metrics register")
    }

    #[test]
    fn consumed_types_follow_event_type_codes() {
        for t in EventType::ALL {
            assert_eq!(CONSUMED_TYPES[t as usize], t.as_str());
        }
        assert_eq!(CONSUMED_TYPES[UNKNOWN_TYPE], "unknown");
    }

    #[test]
    fn alert_indices_follow_shard_counter_layout() {
        // ShardCounters::alerts is [kind][status] in declaration order.
        for (i, k) in ALERT_KINDS.iter().enumerate() {
            assert_eq!(kind_index(*k), *k as usize);
            assert_eq!(kind_index(*k), i);
        }
        for (i, s) in ALERT_STATUSES.iter().enumerate() {
            assert_eq!(status_index(*s), *s as usize);
            assert_eq!(status_index(*s), i);
        }
    }

    #[test]
    fn counts_land_on_their_labels() {
        let m = metrics();
        m.applied([3, 0, 2, 0, 0, 0]);
        m.rejected(RejectReason::Miskeyed, 4);
        m.alert(AlertKind::Stockout, AlertStatus::Resolved, 2);
        m.alerts(&[[1, 0, 0], [0, 0, 5]]);
        let text = m.encode().expect("encode");
        assert!(text.contains("stockwatch_events_applied_total{type=\"sale\"} 3\n"));
        assert!(text.contains("stockwatch_events_applied_total{type=\"receipt\"} 2\n"));
        assert!(text.contains("stockwatch_events_rejected_total{reason=\"miskeyed\"} 4\n"));
        assert!(text.contains("stockwatch_events_rejected_total{reason=\"late\"} 0\n"));
        for kind in ConsumerErrorKind::ALL {
            let series = format!("stockwatch_consumer_errors_total{{kind=\"{kind}\"}} 0\n");
            assert!(text.contains(&series), "{series}");
        }
        m.consumer_error(ConsumerErrorKind::BadCompression);
        let text = m.encode().expect("encode");
        assert!(text.contains("stockwatch_consumer_errors_total{kind=\"bad_compression\"} 1\n"));
        assert!(text.contains("stockwatch_alerts_total{kind=\"stockout\",status=\"resolved\"} 7\n"));
        assert!(
            text.contains("stockwatch_alerts_total{kind=\"stockout_risk\",status=\"raised\"} 1\n")
        );
        assert!(text.contains(&format!(
            "stockwatch_build_info{{model_version=\"test-model\",version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn revoked_partitions_lose_their_lag_series() {
        let m = metrics();
        m.set_assignment(&[0, 3]);
        m.consumer_lag(3, 42);
        let held = m.partition_lag(0).expect("assigned");
        held.set(7);
        held.set(-1); // unknown: unchanged
        let text = m.encode().expect("encode");
        assert!(text.contains("stockwatch_consumer_lag_messages{partition=\"3\"} 42\n"));
        assert!(text.contains("stockwatch_consumer_lag_messages{partition=\"0\"} 7\n"));
        assert!(text.contains("stockwatch_assigned_partitions 2\n"));

        m.set_assignment(&[3]);
        m.consumer_lag(0, 99); // late update for a revoked partition: ignored
        held.set(99); // a kept handle of a revoked partition is no longer exported
        let text = m.encode().expect("encode");
        assert!(!text.contains("partition=\"0\""));
        assert!(text.contains("stockwatch_consumer_lag_messages{partition=\"3\"} 42\n"));
        assert!(text.contains("stockwatch_assigned_partitions 1\n"));
        assert!(m.partition_lag(0).is_none());
    }

    #[test]
    fn latency_histogram_clamps_skew_and_skips_nan() {
        let m = metrics();
        m.end_to_end_latencies([0.02, -1.0, f64::NAN, 0.2]);
        let text = m.encode().expect("encode");
        assert!(text.contains("stockwatch_end_to_end_latency_seconds_count 3\n"));
        assert!(text.contains("stockwatch_end_to_end_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("stockwatch_end_to_end_latency_seconds_bucket{le=\"0.025\"} 2\n"));
    }

    #[test]
    fn model_quality_is_nan_until_known_and_the_challenger_absent_until_set() {
        use ModelRole::{Challenger, Champion};
        let m = metrics();
        let text = m.encode().expect("encode");
        assert!(text.contains("stockwatch_model_rolling_auc{model=\"champion\"} NaN\n"));
        assert!(text.contains("stockwatch_model_rolling_brier{model=\"champion\"} NaN\n"));
        assert!(!text.contains("model=\"challenger\""), "{text}");
        m.model_auc(Champion, Some(0.75));
        m.model_brier(Champion, 0.125);
        m.model_auc(Challenger, Some(0.5));
        let text = m.encode().expect("encode");
        assert!(text.contains("stockwatch_model_rolling_auc{model=\"champion\"} 0.75\n"));
        assert!(text.contains("stockwatch_model_rolling_brier{model=\"champion\"} 0.125\n"));
        assert!(text.contains("stockwatch_model_rolling_auc{model=\"challenger\"} 0.5\n"));
        assert!(text.contains("stockwatch_model_rolling_brier{model=\"challenger\"} NaN\n"));
        m.model_auc(Champion, None);
        assert!(m
            .encode()
            .expect("encode")
            .contains("stockwatch_model_rolling_auc{model=\"champion\"} NaN\n"));
    }
}
