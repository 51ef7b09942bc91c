//! The Kafka service: the engine behind a consumer group, with a state changelog, in
//! at-least-once or exactly-once delivery.
//!
//! One loop, on one thread (librdkafka calls block, transaction calls too; they stay off any
//! async runtime):
//!
//! 1. poll a micro-batch: up to `kafka.poll_max_messages` messages or `kafka.poll_max_ms`;
//! 2. apply rebalances: a newly assigned partition number gets its shard restored from its
//!    changelog partition ([`changelog`]) before anything of it is processed, and its inputs
//!    resume at the offsets the restored state reflects; a revoked one is dropped;
//! 3. per shard and input topic: decode (the message key must match the body), ingest into the
//!    shard (input = topic, so the watermark follows the slowest topic), then apply what the
//!    watermark allows;
//! 4. publish alerts (CloudEvents headers), dead letters (original key, value and headers,
//!    plus Kafka Connect's `__connect.errors.*` headers) and the changelog records of every
//!    changed key;
//! 5. commit, per input partition, the offset after the last record read: the state written
//!    in 4 (reorder buffer included) covers everything before it.
//!
//! `at_least_once`: 5 happens once 4 is acknowledged; a crash in between repeats the batch's
//! alerts (same `alert_id`s). The loop does not wait for that: each commit point is a producer
//! checkpoint, and its offsets are committed by a later batch once every record sent before
//! it is acknowledged (a blocking flush per commit held every event arriving meanwhile).
//! `exactly_once`: 3–5 are one Kafka transaction (offsets with
//! `send_offsets_to_transaction`); an abortable error aborts it, and every shard is restored
//! from the changelog and its inputs rewound to the committed offsets; a fenced or fatal
//! producer ends the process (non-zero exit: the orchestrator restarts it).
//!
//! Layout: this file holds the loop ([`Service::run`], [`Service::step`], the steps of a
//! batch); `setup` starts the clients and topics, `rebalance` handles assignments and
//! restores, `commit` both delivery modes' commits, `flow` idleness and pause/resume;
//! record encoding is [`crate::sink::record`], the topic ↔ event-type check
//! [`crate::decode::TopicTypes`], log lines with their metrics [`crate::telemetry::events`].

pub mod abort;
pub mod changelog;
mod commit;
mod flow;
mod master;
pub mod observe;
pub mod offsets;
mod rebalance;
pub mod reset;
mod setup;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::alert::{Alert, AlertStatus};
use crate::config::MAX_INPUTS;
use crate::config::{Config, Delivery, KafkaSection};
use crate::decode::{Decoder, MessageRef, TopicTypes};
use crate::engine::{EngineConfig, Shard};
use crate::event::EventType;
use crate::reject::{RejectReason, Rejection};
use crate::sink::kafka::{EventProducer, ProduceError};
use crate::sink::record::{
    dead_letter_record, opens_row, AlertEncoder, DeadLetterLimits, HeaderSizes, Rejected,
};
use crate::source::consumer_error::ConsumerErrorKind;
use crate::source::kafka::{raw_headers, GroupConsumer, RawHeader, SourceError};
use crate::telemetry::events::{ConsumerErrored, Rejected as RejectedEvent, TransactionEnded};
use crate::telemetry::{LatencyStep, Metrics, Stage, TelemetryError, TxOutcome};
use changelog::{Lineage, RestoreError};
use commit::{begin, latency_tag};
use offsets::OffsetTracker;

pub use crate::sink::record::{ALERT_CE_TYPE, EARLY_ALERT_CE_TYPE};

/// Errors that stop the service (the orchestrator restarts it).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The consumer failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Publishing failed or timed out.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// Committing offsets failed.
    #[error("committing offsets failed: {0}")]
    Commit(rdkafka::error::KafkaError),
    /// The input topics are missing or not co-partitioned.
    #[error("input topics: {0}")]
    Inputs(String),
    /// Reading committed offsets after an assignment failed.
    #[error("reading committed offsets failed: {0}")]
    Committed(rdkafka::error::KafkaError),
    /// Restoring a shard from the changelog failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The changelog reader could not be created.
    #[error("changelog reader: {0}")]
    Reader(rdkafka::error::KafkaError),
    /// The master-data reader could not be started.
    #[error("master-data reader: {0}")]
    MasterData(rdkafka::error::KafkaError),
    /// The metrics could not be registered.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The consumer returned an error librdkafka marked fatal: it cannot go on.
    #[error("fatal consumer error ({kind}): {error}")]
    ConsumerFatal {
        /// Its kind ([`ConsumerErrorKind::Fatal`]).
        kind: ConsumerErrorKind,
        /// What rdkafka returned.
        error: rdkafka::error::KafkaError,
    },
    /// `exactly_once`: the same failure aborted this many transactions in a row
    /// (`service.max_identical_aborts`): redoing the batch does not help.
    #[error(
        "{consecutive} consecutive transactions aborted for the same cause \
         (service.max_identical_aborts = {consecutive}): {cause}"
    )]
    AbortLoop {
        /// Consecutive aborts.
        consecutive: u32,
        /// The failure.
        cause: String,
    },
}

/// Counters of a run, for the exit summary and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Batches processed.
    pub batches: u64,
    /// Messages read.
    pub messages: u64,
    /// Alerts published.
    pub alerts_published: u64,
    /// Early alerts published (`alerts.early`).
    pub early_alerts_published: u64,
    /// Transactions aborted (exactly_once), each followed by a restore of every shard.
    pub aborts: u64,
    /// Changelog records written (changed keys; shard records not counted).
    pub changelog_records: u64,
    /// Dead letters published.
    pub dead_letters: u64,
    /// Offset commits.
    pub commits: u64,
    /// Rebalances handled.
    pub rebalances: u64,
    /// Rejections by reason (index: [`crate::reject::RejectReason::index`]), including those
    /// not re-published while rebuilding.
    pub rejected: [u64; crate::reject::RejectReason::ALL.len()],
}

/// `exactly_once`: the changelog batch `(epoch, seq)` whose state and input offsets were
/// committed, as this instance knows it. Restore finds that batch by the committed offsets'
/// metadata; a broker that drops the metadata of transactional offset commits leaves only the
/// offsets, which cannot tell the committed batch from an aborted one that read no further
/// input (inputs idle, the watermark applying what waited) and that the broker still shows.
/// After an abort, restore is told this batch instead, while the committed offsets are its.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KnownCommit {
    /// `(epoch, seq)` of the batch.
    batch: (u64, u64),
    /// Per input, the offsets committed with it.
    offsets: [i64; MAX_INPUTS],
}

/// One assigned partition number: its shard and the progress of its four input partitions.
struct Slot {
    shard: Shard,
    /// The batches the shard's state descends from (the changelog's stamps).
    lineage: Lineage,
    /// Record timestamps of the records read and not yet applied (end-to-end latency).
    trackers: [OffsetTracker; MAX_INPUTS],
    /// Per input: the end of the partition when it was assigned. Before the first fetch
    /// answers, an input is caught up only once read that far: silence on a backlog only means
    /// it is not fetched yet, and calling it idle would push the backlog behind the watermark.
    catch_up: [i64; MAX_INPUTS],
    /// Per input: the offset after the last record read (what the state reflects).
    next: [i64; MAX_INPUTS],
    /// Per input: what the changelog and the committed offsets last recorded.
    committed: [i64; MAX_INPUTS],
    /// `exactly_once`: the batch whose state this instance last committed (or restored), and
    /// its offsets: what a restore after an abort starts from (see [`KnownCommit`]).
    known_commit: Option<KnownCommit>,
    last_seen: [Instant; MAX_INPUTS],
    /// Per input: paused by flow control (`flow`).
    paused: [bool; MAX_INPUTS],
    /// The watermark the changelog last recorded (an input going idle moves it without a
    /// record read or a key changed).
    written_watermark: i64,
    /// This batch wrote changelog records: its commit names them (commit metadata).
    to_commit: bool,
}

/// While a batch is polled, how often the producer's delivery reports are served.
const REPORT_EVERY: Duration = Duration::from_millis(5);
/// Bound on waiting for acknowledgements of one batch.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);
/// A batch whose outputs wait longer than this for the brokers marks the instance not ready
/// (it goes on waiting: nothing is dropped, consumption pauses, memory stays bounded).
const STALL_AFTER: Duration = Duration::from_secs(5);
/// While acknowledgements stall, how long each step serves delivery reports.
const ACK_WAIT_STEP: Duration = Duration::from_millis(100);
/// While the master data loads, how long each step waits.
const MASTER_WAIT_STEP: Duration = Duration::from_millis(20);
/// Bound on metadata / committed-offset queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Committed-offset queries on assignment: attempts of [`QUERY_TIMEOUT`] each before a
/// timeout ends the service (a broker stalled for about a minute).
const COMMITTED_ATTEMPTS: u32 = 6;

/// Whether a client call failed by timing out (worth asking again).
fn is_timeout(e: &rdkafka::error::KafkaError) -> bool {
    e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)
}

/// The running service: the consumer, and everything its messages are processed with (kept
/// apart so that a batch of messages borrowed from the consumer can be processed mutably).
pub struct Service {
    consumer: GroupConsumer,
    core: Core,
}

struct Core {
    /// Metrics, readiness and state queries: served over HTTP after [`Service::observe`],
    /// kept but not served before.
    observe: observe::Observe,
    cfg: Config,
    engine: EngineConfig,
    producer: EventProducer,
    decoder: Decoder,
    /// Per input topic (in [`crate::config::TopicsSection::inputs`] order): the event types
    /// it may carry.
    topic_types: Vec<TopicTypes>,
    slots: BTreeMap<i32, Slot>,
    stats: RunStats,
    source_name: String,
    /// The input topic names, NUL-terminated (librdkafka calls).
    input_cstrs: Vec<CString>,
    /// Reads changelog partitions on restore (outside the group, read_committed).
    reader: BaseConsumer,
    writer: changelog::Writer,
    /// `exactly_once`: a transaction is open.
    in_transaction: bool,
    /// `exactly_once`: latency tags (see `commit`) of the alerts published since the last
    /// commit, measured when it makes them visible.
    latencies: Vec<usize>,
    /// `at_least_once`: acknowledged latency tags with their acknowledgement times.
    acked: Vec<(usize, i64)>,
    /// Reused by [`Core::publish_alerts`]: no allocation per alert.
    publishing: Publishing,
    /// When the changelog was last written and the offsets committed.
    last_commit: Instant,
    /// `at_least_once`: offsets to commit once the producer's checkpoint before them is
    /// acknowledged (changelog, alerts and dead letters all delivered), oldest first.
    commits: std::collections::VecDeque<(u64, TopicPartitionList)>,
    /// `at_least_once`: since when the oldest commit point waits, with no acknowledgement
    /// progress; and whether the wait was reported (consumption paused).
    acks_waiting_since: Option<Instant>,
    acks_stalled: bool,
    /// `at_least_once`, while the brokers do not acknowledge: every input is paused and the
    /// group consumer still polled ([`Core::hold_inputs`]); the partitions that returned a
    /// record meanwhile. `None`: not held.
    held: Option<std::collections::BTreeSet<i32>>,
    /// The locations and items tables (`master`).
    master: master::MasterTables,
    /// Whether the master data was last reported loading (readiness); `None`: not yet.
    master_loading: Option<bool>,
    /// `exactly_once`: consecutive aborts for one cause (backoff, then give up).
    abort_loop: abort::AbortLoop,
    /// The `not_assigned` warning was logged (once per episode).
    not_assigned_warned: bool,
    /// Assigned partitions whose changelog and committed offsets disagree: paused, no shard,
    /// until `stockwatch reset-state` (see `rebalance`).
    blocked: BTreeMap<i32, changelog::Inconsistency>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("assigned", &self.core.slots.keys().collect::<Vec<_>>())
            .field("stats", &self.core.stats)
            .finish()
    }
}

impl Service {
    /// Reports metrics and readiness through `observe`, and answers its state queries.
    pub fn observe(&mut self, observe: observe::Observe) {
        // A batch can stall in `send` (producer queue full) before it reaches its flush.
        let health = observe.health.clone();
        self.core
            .producer
            .on_queue_stall(STALL_AFTER, move |w| health.set_waiting_for_brokers(w));
        self.consumer.context().set_metrics(observe.metrics.clone());
        self.core.observe = observe;
        self.core.master_loading = None;
    }

    /// Counters so far.
    pub fn stats(&self) -> RunStats {
        self.core.stats
    }

    /// Rejections by reason so far.
    pub fn rejected_by_reason(&self) -> [u64; RejectReason::ALL.len()] {
        self.core.stats.rejected
    }

    /// The shards of the partitions assigned to this instance.
    pub fn shards(&self) -> impl Iterator<Item = (i32, &Shard)> + '_ {
        self.core.slots.iter().map(|(p, s)| (*p, &s.shard))
    }

    /// Runs until `stop` is set, then finishes the batch, flushes, commits and returns.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunStats, ServiceError> {
        let health = self.core.observe.health.clone();
        health.set_delivery(self.core.cfg.service.delivery);
        health.set_watchdog(Duration::from_secs(
            self.core.cfg.service.watchdog_stall_secs,
        ));
        let k = &self.core.cfg.kafka;
        let not_assigned_ms = k.session_timeout_ms * u64::from(k.not_assigned_session_timeouts);
        health.watch_assignment(Duration::from_millis(not_assigned_ms), Instant::now());
        while !stop.load(Ordering::Relaxed) {
            self.step()?;
            health.progress();
        }
        self.core.observe.health.set_draining();
        let eos = self.core.exactly_once();
        let deadline = self.core.cfg.service.shutdown_deadline();
        if !eos {
            // Every checkpoint acknowledged: room for the last one.
            self.core.producer.flush(deadline)?;
        }
        // The batches since the last commit point.
        self.core.end_batch(&self.consumer)?;
        if !eos {
            self.core.producer.flush(deadline)?;
            // The final commit waits for its answer; if the broker does not answer, the
            // shutdown deadline (enforced by the caller) ends the process.
            self.core
                .commit_acknowledged(&self.consumer, CommitMode::Sync)?;
        }
        tracing::info!(stats = ?self.core.stats, "stopped");
        Ok(self.core.stats)
    }

    /// One micro-batch: poll, rebalance, process, publish, commit.
    pub fn step(&mut self) -> Result<(), ServiceError> {
        self.core
            .observe
            .answer(self.core.slots.values().map(|s| &s.shard));
        if !self.core.sync_master() {
            // Inputs wait for the first full read of the master data (the group is not even
            // joined yet: no partition is assigned to an instance that cannot process it).
            std::thread::sleep(MASTER_WAIT_STEP);
            return Ok(());
        }
        let inputs: Vec<String> = self
            .core
            .cfg
            .kafka
            .topics
            .inputs()
            .into_iter()
            .map(str::to_owned)
            .collect();
        if self.core.waiting_for_acks() {
            // Nothing read until the brokers acknowledge again: what is in flight is all
            // that is at risk, and memory stays bounded. The consumer is still polled, its
            // inputs paused, so that an outage longer than `max.poll.interval.ms` does not
            // drop the member from the group.
            self.core.producer.poll(ACK_WAIT_STEP);
            self.core.hold_inputs(&self.consumer)?;
            let events = self.consumer.context().take_events();
            if !events.is_empty() {
                self.core.release_inputs(&self.consumer, &inputs);
                return self.core.rebalance(&self.consumer, events, &inputs);
            }
            return self
                .core
                .commit_acknowledged(&self.consumer, CommitMode::Async);
        }
        self.core.release_inputs(&self.consumer, &inputs);
        let (msgs, consumed_at) = poll_batch(
            &self.consumer,
            &self.core.producer,
            &self.core.cfg.kafka,
            &self.core.observe.metrics,
        )?;
        // Rebalances happen inside poll. A batch that saw one is dropped: its messages may
        // come from the old assignment, and every assigned partition resumes at the offsets
        // its restored state reflects anyway.
        let events = self.consumer.context().take_events();
        if !events.is_empty() {
            drop(msgs);
            return self.core.rebalance(&self.consumer, events, &inputs);
        }
        let result = self
            .core
            .process(&self.consumer, &msgs, &consumed_at, &inputs);
        drop(msgs);
        let result = result.and_then(|()| self.core.commit_due(&self.consumer));
        match result {
            Ok(()) => {}
            Err(ServiceError::Produce(e)) if self.core.exactly_once() && e.is_abortable() => {
                return self.core.abort_and_rewind(&self.consumer, &inputs, &e);
            }
            Err(e) => return Err(e),
        }
        self.core.flow_control(&self.consumer, &inputs);
        self.core.report_consumer(&self.consumer, &inputs);
        self.core.report_unassigned(&self.consumer);
        Ok(())
    }
}

/// Polls up to `kafka.poll_max_messages` messages for at most `kafka.poll_max_ms`, with the
/// time (ms since the epoch) poll returned each; a rebalance ends the batch early. A consumer
/// error is counted and logged ([`consumer_error`]); a fatal one ends the service. The
/// producer's delivery reports are served every [`REPORT_EVERY`] meanwhile, so that an
/// acknowledgement is taken when it arrives, not a batch later.
#[allow(clippy::type_complexity)]
fn poll_batch<'c>(
    consumer: &'c GroupConsumer,
    producer: &EventProducer,
    k: &KafkaSection,
    metrics: &Metrics,
) -> Result<(Vec<BorrowedMessage<'c>>, Vec<i64>), ServiceError> {
    let (max, window) = (k.poll_max_messages, Duration::from_millis(k.poll_max_ms));
    let started = Instant::now();
    let mut served = started;
    let mut msgs = Vec::with_capacity(max.min(65_536));
    let mut consumed_at = Vec::with_capacity(max.min(65_536));
    while msgs.len() < max {
        let now = Instant::now();
        let left = window.saturating_sub(now - started);
        if left.is_zero() {
            break;
        }
        if now - served >= REPORT_EVERY {
            producer.serve_reports();
            served = now;
        }
        match consumer.poll(left.min(REPORT_EVERY)) {
            Some(Ok(m)) => {
                msgs.push(m);
                consumed_at.push(wall_ms());
            }
            Some(Err(e)) => {
                let text = consumer.context().take_error_text();
                consumer_error(&e, text.as_deref(), metrics)?;
            }
            // Nothing within the window — or poll served another event: an offset commit's
            // result (the batch goes on) or a rebalance (the batch ends here).
            None if consumer.context().rebalanced() => break,
            None => {}
        }
    }
    Ok((msgs, consumed_at))
}

/// Wall-clock time, ms since the epoch (the clock of record timestamps and acknowledgements).
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An error the consumer returned instead of a message: counted
/// (`stockwatch_consumer_errors_total{kind}`) and logged with what follows
/// ([`ConsumerErrored`], with librdkafka's `text` of it). A fatal one ends the service (non-zero exit naming it); after any
/// other, librdkafka goes on (having skipped what it could not read, for `bad_message` and
/// `bad_compression`) and so does the loop. `PartitionEOF` is not an error.
fn consumer_error(
    e: &rdkafka::error::KafkaError,
    text: Option<&str>,
    metrics: &Metrics,
) -> Result<(), ServiceError> {
    let Some(kind) = ConsumerErrorKind::of(e) else {
        return Ok(());
    };
    ConsumerErrored {
        kind,
        error: e,
        text,
    }
    .emit(metrics);
    if kind.stops_the_service() {
        return Err(ServiceError::ConsumerFatal {
            kind,
            error: e.clone(),
        });
    }
    Ok(())
}

/// One batch of messages as it is processed: the messages, the processing time, the
/// rejections of the group being ingested, and what the batch did (for the report).
struct Batch<'b, 'm> {
    msgs: &'b [BorrowedMessage<'m>],
    /// When poll returned each message, ms since the epoch.
    consumed_at: &'b [i64],
    now_ms: i64,
    /// The current group's rejections (reused).
    rejects: Vec<Rejection>,
    /// Records consumed by event type code, then "unknown" (see `CONSUMED_TYPES`).
    consumed: [u64; EventType::COUNT + 1],
    /// Rejections by [`RejectReason::index`].
    rejected: [u64; RejectReason::ALL.len()],
    /// Dead letters by [`RejectReason::index`].
    dead: [u64; RejectReason::ALL.len()],
}

impl Core {
    fn exactly_once(&self) -> bool {
        self.cfg.service.delivery == Delivery::ExactlyOnce
    }

    /// One batch of messages: per (partition, input topic), decode and ingest into the shard
    /// and dead-letter the rejections; then advance every shard, publish its alerts, and
    /// report.
    fn process(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[BorrowedMessage<'_>],
        consumed_at: &[i64],
        inputs: &[String],
    ) -> Result<(), ServiceError> {
        let batch_started = Instant::now();
        if !msgs.is_empty() {
            self.stats.batches += 1;
        }
        self.stats.messages += msgs.len() as u64;
        let mut batch = Batch {
            msgs,
            consumed_at,
            now_ms: chrono::Utc::now().timestamp_millis(),
            rejects: Vec::new(),
            consumed: [0; EventType::COUNT + 1],
            rejected: [0; RejectReason::ALL.len()],
            dead: [0; RejectReason::ALL.len()],
        };
        for ((p, t), idx) in group_by_input(msgs, inputs) {
            self.ingest(&mut batch, p, t, &idx)?;
        }
        self.mark_idle(consumer);
        self.publish_alerts()?;
        if !self.exactly_once() {
            self.report_acknowledged();
        }
        RejectedEvent {
            rejected: &batch.rejected,
            dead_lettered: &batch.dead,
        }
        .emit(&self.observe.metrics);
        self.observe.report(
            self.slots.values().map(|s| &s.shard),
            batch.consumed,
            msgs.len(),
            batch_started.elapsed(),
        );
        Ok(())
    }

    /// The messages `idx` of the batch, read from input `t` of partition `p`: decoded,
    /// checked against the topic's event types, ingested into the shard; rejections
    /// dead-lettered.
    fn ingest(
        &mut self,
        b: &mut Batch<'_, '_>,
        p: i32,
        t: usize,
        idx: &[usize],
    ) -> Result<(), ServiceError> {
        let eos = self.exactly_once();
        let Some(slot) = self.slots.get_mut(&p) else {
            return Ok(()); // not ours (any more)
        };
        let (msgs, consumed_at, now_ms, rejects) =
            (b.msgs, b.consumed_at, b.now_ms, &mut b.rejects);
        rejects.clear();
        let batch = self.decoder.decode(
            idx.iter().map(|&i| MessageRef {
                key: msgs[i].key(),
                value: msgs[i].payload().unwrap_or_default(),
            }),
            now_ms,
            rejects,
        );
        for &i in idx {
            let ts = msgs[i].timestamp().to_millis().unwrap_or(now_ms);
            let consumed = consumed_at.get(i).copied().unwrap_or(now_ms);
            slot.trackers[t].read(msgs[i].offset(), ts, consumed);
            slot.next[t] = slot.next[t].max(msgs[i].offset() + 1);
        }
        slot.last_seen[t] = Instant::now();
        slot.shard.set_idle(t, false);
        slot.shard.set_processing_ms(Some(now_ms));
        // A backlog gets no early alerts (alerts.early_max_age_ms).
        let oldest = idx
            .iter()
            .filter_map(|&i| msgs[i].timestamp().to_millis())
            .min()
            .unwrap_or(now_ms);
        let max_age = i64::try_from(self.cfg.alerts.early_max_age_ms).unwrap_or(i64::MAX);
        slot.shard
            .set_early_now(now_ms.saturating_sub(oldest) <= max_age);
        let offsets: Vec<i64> = idx.iter().map(|&i| msgs[i].offset()).collect();
        // Each input topic carries its own event types: anything else is refused, not applied
        // under another input's clock.
        let mut rows = Vec::with_capacity(batch.len());
        self.topic_types[t].check(&batch, &mut rows, rejects);
        slot.shard.ingest_rows(
            &batch,
            &rows,
            t,
            |j| offsets::source(t, offsets[j as usize]),
            rejects,
        );
        // Consumed, by decoded type; a record that did not decode counts under its topic's
        // type when the topic carries one type, else as "unknown".
        for &kind in batch.columns().kind.values() {
            b.consumed[usize::from(kind).min(EventType::COUNT)] += 1;
        }
        let undecoded = (idx.len() - batch.len()) as u64;
        b.consumed[self.topic_types[t]
            .only()
            .map_or(EventType::COUNT, |ty| ty as usize)] += undecoded;
        for (k, r) in rejects.iter().enumerate() {
            if k > 0 {
                crate::failpoint::crash_point!(crate::failpoint::DEAD_LETTER_BATCH_MIDDLE);
            }
            self.stats.rejected[r.reason.index()] += 1;
            b.rejected[r.reason.index()] += 1;
            let m = &msgs[idx[r.index as usize]];
            begin(&mut self.producer, &mut self.in_transaction, eos)?;
            send_dead_letter(
                &mut self.producer,
                &self.cfg.kafka.topics.dead_letter,
                dead_letter_limits(&self.cfg),
                m,
                r,
            )?;
            self.stats.dead_letters += 1;
            b.dead[r.reason.index()] += 1;
            slot.trackers[t].done(m.offset());
        }
        Ok(())
    }

    /// Advances every shard to what the watermark allows and publishes its alerts: early ones
    /// first (their events arrived in this batch or an earlier one), then confirmed ones.
    fn publish_alerts(&mut self) -> Result<(), ServiceError> {
        let eos = self.exactly_once();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let Publishing {
            encoder,
            early,
            confirmed,
        } = &mut self.publishing;
        for (&p, slot) in self.slots.iter_mut() {
            // Empty but after a failed send (the batch is then redone from the changelog).
            early.clear();
            confirmed.clear();
            slot.shard.advance(false, Some(now_ms), confirmed);
            for src in slot.shard.drain_applied() {
                let (t, off) = offsets::unpack(src);
                if let Some(tr) = slot.trackers.get_mut(t) {
                    tr.done(off);
                }
            }
            early.extend(slot.shard.drain_early());
            let staged = (early.iter().map(|a| (Stage::Early, a)))
                .chain(confirmed.iter().map(|a| (Stage::Confirmed, a)));
            for (stage, a) in staged {
                let (t, off) = offsets::unpack(a.trigger_source);
                let times = slot.trackers.get(t).and_then(|tr| tr.times(off));
                let timed = timed_as(stage, a);
                let tag = latency_tag(times, timed);
                let tag = if eos {
                    self.latencies.extend(tag);
                    0
                } else {
                    tag.unwrap_or(0)
                };
                let topic = match stage {
                    Stage::Early => &self.cfg.kafka.topics.early_alerts,
                    Stage::Confirmed => &self.cfg.kafka.topics.alerts,
                };
                let record = encoder.encode(a, stage, &self.source_name);
                begin(&mut self.producer, &mut self.in_transaction, eos)?;
                self.producer
                    .send_tagged(topic, record.key, record.value, &record.headers, tag)?;
                if let Some((_, consumed)) = times {
                    let handed = (wall_ms() - consumed) as f64 / 1000.0;
                    (self.observe.metrics).service_latency(timed, LatencyStep::Handed, handed);
                }
                if stage == Stage::Confirmed {
                    // The open-alerts table, on the shard's own partition (co-partitioned with
                    // the inputs, whatever its key hashes to), in the same transaction.
                    let table = &self.cfg.kafka.topics.open_alerts;
                    if opens_row(a) {
                        self.producer.send_to_partition(
                            table,
                            p,
                            record.open_key,
                            record.value,
                            &record.headers,
                        )?;
                    } else {
                        self.producer.send_tombstone_to_partition(
                            table,
                            p,
                            record.open_key,
                            &[],
                        )?;
                    }
                }
                match stage {
                    Stage::Early => {
                        self.stats.early_alerts_published += 1;
                        self.observe.metrics.early_alert(a.kind, a.status);
                    }
                    Stage::Confirmed => self.stats.alerts_published += 1,
                }
            }
            // Published alerts go back to the shard, whose next alerts reuse their strings.
            slot.shard
                .recycle_alerts(early.drain(..).chain(confirmed.drain(..)));
        }
        Ok(())
    }

    /// Ends the transaction or sets a commit point when `service.commit_interval_ms` has
    /// passed; `at_least_once`: commits what is acknowledged.
    fn commit_due(&mut self, consumer: &GroupConsumer) -> Result<(), ServiceError> {
        let interval = Duration::from_millis(self.cfg.service.commit_interval_ms);
        if self.last_commit.elapsed() >= interval {
            self.last_commit = Instant::now();
            self.end_batch(consumer)?;
        }
        if !self.exactly_once() {
            self.commit_acknowledged(consumer, CommitMode::Async)?;
        }
        Ok(())
    }

    /// Subscribed without an assignment: the gauge, and a warning with the group's state once
    /// past `kafka.not_assigned_session_timeouts` (then `/readyz` says `not_assigned`).
    fn report_unassigned(&mut self, consumer: &GroupConsumer) {
        let unassigned = self.observe.health.unassigned_at(Instant::now());
        self.observe
            .metrics
            .unassigned(unassigned.map_or(Duration::ZERO, |(d, _)| d));
        let past = unassigned.is_some_and(|(_, past)| past);
        if past && !self.not_assigned_warned {
            let k = &self.cfg.kafka;
            tracing::warn!(
                unassigned_secs = unassigned.map_or(0, |(d, _)| d.as_secs()),
                session_timeout_ms = k.session_timeout_ms,
                not_assigned_session_timeouts = k.not_assigned_session_timeouts,
                group = %k.group_id,
                group_state = %consumer.context().group_state(),
                "subscribed without an assignment for too long: not ready (not_assigned); see the runbook"
            );
        } else if !past && self.not_assigned_warned {
            tracing::info!("the consumer has an assignment again");
        }
        self.not_assigned_warned = past;
    }

    /// `exactly_once`: aborts the open transaction (a rebalance; an abortable error). An abort
    /// that cannot complete (not fenced) replaces the producer when its transactional id is
    /// this process's alone (no `service.instance_id`): the new one's init aborts the
    /// transaction at the coordinator, as a restart would, without leaving the group. With an
    /// instance id the process ends instead, as before: a frozen instance's replacement may
    /// hold the same id (a pod force-deleted on an unreachable node), and a renewal would fence
    /// it (seen in `failover::a_frozen_instance_with_an_instance_id…`).
    fn abort_open_transaction(&mut self, error: Option<&ProduceError>) -> Result<(), ServiceError> {
        if self.in_transaction {
            let renewable = self.cfg.service.instance_id().is_none();
            match self.producer.abort_transaction(FLUSH_DEADLINE) {
                Ok(()) => {}
                Err(e @ ProduceError::Fatal { .. }) => return Err(e.into()),
                Err(e) if !renewable => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "the transaction's abort did not complete: replacing the producer (its init aborts the transaction at the coordinator)"
                    );
                    self.producer.renew(setup::init_timeout(&self.cfg))?;
                    self.observe.metrics.producer_renewed();
                    tracing::info!("producer replaced; the open transaction is aborted");
                }
            }
            self.in_transaction = false;
        }
        TransactionEnded {
            outcome: TxOutcome::Abort,
            error: error.map(|e| e as &dyn std::fmt::Display),
        }
        .emit(&self.observe.metrics);
        Ok(())
    }
}

/// What publishing alerts reuses from one batch to the next.
#[derive(Debug, Default)]
pub(super) struct Publishing {
    /// The alert records' buffers.
    encoder: AlertEncoder,
    /// A shard's early alerts, then published.
    early: Vec<Alert>,
    /// A shard's confirmed alerts, then published.
    confirmed: Vec<Alert>,
}

/// The stage an alert's latency is counted under: when it was made. An early alert's
/// retraction (an early `resolved`) is published on the early topic but made when the
/// watermark applies its event, as confirmed alerts are: its wait is the watermark's, and
/// counted with theirs, the early stage's latency is that of the alerts scored on arrival.
fn timed_as(stage: Stage, a: &Alert) -> Stage {
    match (stage, a.status) {
        (Stage::Early, AlertStatus::Resolved) => Stage::Confirmed,
        _ => stage,
    }
}

/// Message indices of `msgs` by (partition, input topic index), in read order.
fn group_by_input(
    msgs: &[BorrowedMessage<'_>],
    inputs: &[String],
) -> BTreeMap<(i32, usize), Vec<usize>> {
    let mut groups: BTreeMap<(i32, usize), Vec<usize>> = BTreeMap::new();
    for (i, m) in msgs.iter().enumerate() {
        if let Some(t) = inputs.iter().position(|x| x == m.topic()) {
            groups.entry((m.partition(), t)).or_default().push(i);
        }
    }
    groups
}

/// The dead-letter limits `kafka.dead_letter_max_value_bytes` and `…_max_header_bytes`.
pub(super) fn dead_letter_limits(cfg: &Config) -> DeadLetterLimits {
    DeadLetterLimits {
        max_value_bytes: cfg.kafka.dead_letter_max_value_bytes,
        max_header_bytes: cfg.kafka.dead_letter_max_header_bytes,
    }
}

/// Sends the dead letter of message `m`, rejected for `r` ([`dead_letter_record`]). Its
/// headers are read as bytes and copied as they are: rdkafka's `Headers::get` panics on a
/// name that is not UTF-8, which would stop the partition on every restart.
pub(super) fn send_dead_letter(
    producer: &mut EventProducer,
    topic: &str,
    limits: DeadLetterLimits,
    m: &BorrowedMessage<'_>,
    r: &Rejection,
) -> Result<(), ProduceError> {
    let raw = raw_headers(m);
    let rejected = Rejected {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().unwrap_or_default(),
        value: m.payload().unwrap_or_default(),
        headers: HeaderSizes {
            count: raw.len(),
            bytes: raw.iter().map(RawHeader::len).sum(),
        },
    };
    let dead = dead_letter_record(rejected, r, limits);
    let (record, headers) = (&dead.record, dead.record.header_refs());
    match m.headers().filter(|_| dead.keep_input_headers) {
        Some(original) => producer.send_after_headers(
            topic,
            &record.key,
            &record.value,
            original.detach(),
            &headers,
        ),
        None => {
            if !dead.keep_input_headers {
                tracing::warn!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    headers = rejected.headers.count,
                    header_bytes = rejected.headers.bytes,
                    limit = limits.max_header_bytes,
                    "a rejected record's headers are over kafka.dead_letter_max_header_bytes: its dead letter goes without them (stockwatch.headers_dropped)"
                );
            }
            producer.send_with_headers(topic, &record.key, &record.value, &headers)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;

    fn count(m: &Metrics, kind: &str) -> String {
        let text = m.encode().expect("encode");
        let series = format!("stockwatch_consumer_errors_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or("absent")
            .to_owned()
    }

    #[test]
    fn a_skipped_message_set_is_counted_and_the_loop_goes_on() {
        let m = Metrics::new("test-model").expect("metrics");
        let e = KafkaError::MessageConsumption(RDKafkaErrorCode::BadCompression);
        assert!(consumer_error(&e, None, &m).is_ok());
        assert!(consumer_error(&e, None, &m).is_ok());
        assert_eq!(count(&m, "bad_compression"), "2");
        assert_eq!(count(&m, "bad_message"), "0");
        assert_eq!(count(&m, "fatal"), "0");
    }

    #[test]
    fn a_fatal_consumer_error_is_counted_and_stops_the_service_naming_it() {
        let m = Metrics::new("test-model").expect("metrics");
        let e = KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fatal);
        let err = consumer_error(&e, None, &m).expect_err("fatal stops");
        assert!(
            matches!(
                err,
                ServiceError::ConsumerFatal {
                    kind: ConsumerErrorKind::Fatal,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with("fatal consumer error (fatal): "), "{text}");
        assert_eq!(count(&m, "fatal"), "1");
    }

    #[test]
    fn partition_eof_is_neither_counted_nor_fatal() {
        let m = Metrics::new("test-model").expect("metrics");
        assert!(consumer_error(&KafkaError::PartitionEOF(2), None, &m).is_ok());
        for kind in ConsumerErrorKind::ALL {
            assert_eq!(count(&m, kind.as_str()), "0", "{kind}");
        }
    }
}
