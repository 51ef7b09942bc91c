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

pub mod changelog;
pub mod observe;
pub mod offsets;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::alert::Alert;
use crate::config::MAX_INPUTS;
use crate::config::{Config, Delivery};
use crate::decode::{Decoder, KeyPolicy, MessageRef};
use crate::engine::{EngineConfig, Shard};
use crate::event::{EventType, TypeSet};
use crate::reject::{RejectReason, Rejection};
use crate::sink::kafka::{EventProducer, ProduceError, ProducerSettings};
use crate::source::kafka::{
    cached_high_watermark, subscribe, GroupConsumer, Rebalance, SourceError,
};
use crate::telemetry::{Stage, TxOutcome};
use changelog::{Lineage, RestoreError};
use offsets::OffsetTracker;

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

/// One assigned partition number: its shard and the progress of its input partitions (arrays
/// of [`MAX_INPUTS`], the first `kafka.topics.inputs().len()` used).
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
    last_seen: [Instant; MAX_INPUTS],
    /// Per input: paused by [`Core::flow_control`].
    paused: [bool; MAX_INPUTS],
    /// The watermark the changelog last recorded (an input going idle moves it without a
    /// record read or a key changed).
    written_watermark: i64,
    /// This batch wrote changelog records: its commit names them (commit metadata).
    to_commit: bool,
}

/// Bound on waiting for acknowledgements of one batch.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);
/// A batch whose outputs wait longer than this for the brokers marks the instance not ready
/// (it goes on waiting: nothing is dropped, consumption pauses, memory stays bounded).
const STALL_AFTER: Duration = Duration::from_secs(5);
/// While acknowledgements stall, how long each step serves delivery reports.
const ACK_WAIT_STEP: Duration = Duration::from_millis(100);
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
    observe: Option<observe::Observe>,
    cfg: Config,
    engine: EngineConfig,
    producer: EventProducer,
    decoder: Decoder,
    slots: BTreeMap<i32, Slot>,
    stats: RunStats,
    source_name: String,
    /// The input topic names, NUL-terminated (librdkafka calls).
    input_cstrs: Vec<CString>,
    /// Per input topic: the event types it may carry (`kafka.topics`).
    input_types: Vec<TypeSet>,
    /// Failed offset commits already counted in the metrics.
    commit_failures_seen: u64,
    /// Reads changelog partitions on restore (outside the group, read_committed).
    reader: BaseConsumer,
    writer: changelog::Writer,
    /// `exactly_once`: a transaction is open.
    in_transaction: bool,
    /// `exactly_once`: latency tags (see [`latency_tag`]) of the alerts published since the
    /// last commit, measured when it makes them visible.
    latencies: Vec<usize>,
    /// `at_least_once`: acknowledged latency tags with their acknowledgement times.
    acked: Vec<(usize, i64)>,
    /// When the changelog was last written and the offsets committed.
    last_commit: Instant,
    /// `at_least_once`: offsets to commit once the producer's checkpoint before them is
    /// acknowledged (changelog, alerts and dead letters all delivered), oldest first.
    commits: std::collections::VecDeque<(u64, TopicPartitionList)>,
    /// `at_least_once`: since when the oldest commit point waits, with no acknowledgement
    /// progress; and whether the wait was reported (consumption paused).
    acks_waiting_since: Option<Instant>,
    acks_stalled: bool,
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
    /// Connects (lazily) and subscribes; in `exactly_once`, registers the transactional id
    /// (aborting what a predecessor with the same `service.instance_id` left open).
    pub fn new(cfg: Config) -> Result<Self, ServiceError> {
        let engine = cfg.engine_config();
        let consumer = subscribe(&cfg)?;
        let mut ps = ProducerSettings::new(cfg.kafka.bootstrap_servers.clone());
        let mut props = producer_properties(&cfg);
        props.sort();
        let exactly_once = cfg.service.delivery == Delivery::ExactlyOnce;
        if exactly_once {
            props.push(("transactional.id".into(), transactional_id(&cfg)));
            props.push((
                "transaction.timeout.ms".into(),
                cfg.service.transaction_timeout_ms.to_string(),
            ));
        }
        ps.properties = props;
        let producer = EventProducer::new(ps)?;
        // Output topics get the input topics' partition count (keyed the same way).
        let partitions = input_partitions(&consumer, &cfg)?;
        let t = &cfg.kafka.topics;
        for (topic, configs) in [
            (t.alerts.as_str(), &[][..]),
            (t.early_alerts.as_str(), &[][..]),
            (t.dead_letter.as_str(), &[][..]),
            (t.changelog.as_str(), &[("cleanup.policy", "compact")][..]),
        ] {
            match topic_partitions(&consumer, topic)? {
                0 => {
                    producer.ensure_topics_with(&[topic], partitions, 1, configs, QUERY_TIMEOUT)?;
                }
                n if n as u32 == partitions => {}
                n if topic == t.changelog => {
                    return Err(ServiceError::Inputs(format!(
                        "the changelog topic {topic} has {n} partitions but the inputs have \
                         {partitions}: partition p of the changelog holds shard p"
                    )))
                }
                n => tracing::warn!(
                    topic,
                    partitions = n,
                    "output topic is not co-partitioned with the inputs"
                ),
            }
        }
        if exactly_once {
            producer.init_transactions(Duration::from_millis(
                cfg.service.transaction_timeout_ms.max(10_000),
            ))?;
        }
        let mut rc = ClientConfig::new();
        rc.set("bootstrap.servers", &cfg.kafka.bootstrap_servers)
            .set(
                "group.id",
                format!("{}-changelog-reader", cfg.kafka.group_id),
            )
            .set("enable.auto.commit", "false")
            // Uncommitted records too: restore ignores every batch that did not commit by its
            // stamps, and a dead instance's open transaction must not hold the restore up.
            .set("isolation.level", "read_uncommitted")
            .set("fetch.queue.backoff.ms", "5")
            .set("fetch.wait.max.ms", "10");
        cfg.kafka.security.apply_to(&mut rc);
        let reader: BaseConsumer = rc.create().map_err(ServiceError::Reader)?;
        let input_cstrs = cfg
            .kafka
            .topics
            .inputs()
            .iter()
            .map(|t| CString::new(*t).map_err(|_| ServiceError::Inputs(format!("{t:?}: NUL"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Service {
            consumer,
            core: Core {
                observe: None,
                decoder: Decoder::new(engine.limits, KeyPolicy::Require),
                source_name: format!("stockwatch/{}", cfg.kafka.group_id),
                input_types: cfg.kafka.topics.input_types(),
                cfg,
                engine,
                producer,
                slots: BTreeMap::new(),
                input_cstrs,
                commit_failures_seen: 0,
                stats: RunStats::default(),
                reader,
                writer: changelog::Writer::default(),
                in_transaction: false,
                latencies: Vec::new(),
                acked: Vec::new(),
                last_commit: Instant::now(),
                commits: Default::default(),
                acks_waiting_since: None,
                acks_stalled: false,
            },
        })
    }

    /// Reports metrics and readiness through `observe`, and answers its state queries.
    pub fn observe(&mut self, observe: observe::Observe) {
        // A batch can stall in `send` (producer queue full) before it reaches its flush.
        let health = observe.health.clone();
        self.core
            .producer
            .on_queue_stall(STALL_AFTER, move |w| health.set_waiting_for_brokers(w));
        self.core.observe = Some(observe);
    }

    /// Counters so far.
    pub fn stats(&self) -> RunStats {
        self.core.stats
    }

    /// Rejections by reason so far.
    pub fn rejected_by_reason(&self) -> [u64; crate::reject::RejectReason::ALL.len()] {
        self.core.stats.rejected
    }

    /// The shards of the partitions assigned to this instance.
    pub fn shards(&self) -> impl Iterator<Item = (i32, &Shard)> + '_ {
        self.core.slots.iter().map(|(p, s)| (*p, &s.shard))
    }

    /// Runs until `stop` is set, then finishes the batch, flushes, commits and returns.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunStats, ServiceError> {
        if let Some(o) = &self.core.observe {
            o.health.set_delivery(self.core.cfg.service.delivery);
        }
        while !stop.load(Ordering::Relaxed) {
            self.step()?;
        }
        if let Some(o) = &self.core.observe {
            o.health.set_draining();
        }
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
        if let Some(o) = &self.core.observe {
            o.answer(self.core.slots.values().map(|s| &s.shard));
        }
        if self.core.waiting_for_acks() {
            // Nothing read until the brokers acknowledge again: what is in flight is all
            // that is at risk, and memory stays bounded.
            self.core.producer.poll(ACK_WAIT_STEP);
            return self
                .core
                .commit_acknowledged(&self.consumer, CommitMode::Async);
        }
        let k = &self.core.cfg.kafka;
        let (max, window) = (k.poll_max_messages, Duration::from_millis(k.poll_max_ms));
        let inputs: Vec<String> = k.topics.inputs().iter().map(|t| t.to_string()).collect();
        let started = Instant::now();
        let mut msgs: Vec<BorrowedMessage<'_>> = Vec::with_capacity(max.min(65_536));
        while msgs.len() < max {
            let left = window.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left) {
                Some(Ok(m)) => msgs.push(m),
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                // Nothing within the window — or poll served another event: an offset
                // commit's result (the batch goes on) or a rebalance (the batch ends here).
                None if self.consumer.context().rebalanced() => break,
                None => {}
            }
        }
        // Rebalances happen inside poll. A batch that saw one is dropped: its messages may
        // come from the old assignment, and every assigned partition resumes at the offsets
        // its restored state reflects anyway.
        let events = self.consumer.context().take_events();
        if !events.is_empty() {
            drop(msgs);
            // Every partition is revoked and restored (eager protocol): the batches since the
            // last commit are redone from the changelog; their open transaction goes.
            if self.core.in_transaction {
                self.core.producer.abort_transaction(FLUSH_DEADLINE)?;
                self.core.in_transaction = false;
                if let Some(o) = &self.core.observe {
                    o.metrics.transaction(TxOutcome::Abort);
                }
            }
            for ev in events {
                self.core.rebalance(&self.consumer, ev, &inputs)?;
            }
            return Ok(());
        }
        let result = self.core.process(&self.consumer, &msgs, &inputs);
        drop(msgs);
        let interval = Duration::from_millis(self.core.cfg.service.commit_interval_ms);
        let result = result.and_then(|()| {
            if self.core.last_commit.elapsed() >= interval {
                self.core.last_commit = Instant::now();
                self.core.end_batch(&self.consumer)?;
            }
            if !self.core.exactly_once() {
                self.core
                    .commit_acknowledged(&self.consumer, CommitMode::Async)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(ServiceError::Produce(e)) if self.core.exactly_once() && e.is_abortable() => {
                tracing::warn!(error = %e, "transaction aborted; restoring every shard from the changelog");
                self.core.abort_and_rewind(&self.consumer, &inputs)?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.core.flow_control(&self.consumer, &inputs);
        self.core.report_consumer(&self.consumer, &inputs);
        Ok(())
    }
}

impl Core {
    fn exactly_once(&self) -> bool {
        self.cfg.service.delivery == Delivery::ExactlyOnce
    }

    fn rebalance(
        &mut self,
        consumer: &GroupConsumer,
        ev: Rebalance,
        inputs: &[String],
    ) -> Result<(), ServiceError> {
        self.stats.rebalances += 1;
        match ev {
            Rebalance::Revoked(parts) => {
                // Offsets not committed yet stay so: the partitions' next owner redoes
                // their batches from the changelog (at_least_once).
                let revoked: std::collections::BTreeSet<i32> =
                    parts.iter().map(|(_, p)| *p).collect();
                for (_, tpl) in &mut self.commits {
                    *tpl = without_partitions(tpl, &revoked);
                }
                for (_, p) in parts {
                    if self.slots.remove(&p).is_some() {
                        tracing::info!(partition = p, "partition revoked; shard dropped");
                    }
                }
                self.publish_assignment();
            }
            Rebalance::Assigned(parts) => {
                let mut tpl = TopicPartitionList::new();
                for (t, p) in &parts {
                    tpl.add_partition(t, *p);
                }
                // A partition paused by flow control under an earlier assignment starts
                // unpaused (its shard is new).
                if let Err(e) = consumer.resume(&tpl) {
                    tracing::debug!(error = %e, "resume on assignment");
                }
                let numbers: std::collections::BTreeSet<i32> =
                    parts.iter().map(|(_, p)| *p).collect();
                for p in &numbers {
                    if let Some(o) = &self.observe {
                        o.health.restoring(*p);
                    }
                }
                self.publish_assignment_of(&numbers);
                for p in numbers {
                    self.restore_slot(consumer, p, inputs, false)?;
                }
                self.publish_assignment();
            }
        }
        Ok(())
    }

    /// Restores shard `p` from the changelog and positions its inputs where its state ends
    /// (normally the committed offsets, where the consumer starts anyway; always with `rewind`).
    fn restore_slot(
        &mut self,
        consumer: &GroupConsumer,
        p: i32,
        inputs: &[String],
        rewind: bool,
    ) -> Result<(), ServiceError> {
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for t in inputs {
            tpl.add_partition(t, p);
        }
        // A stalled or restarting broker times the query out: ask again (not ready meanwhile)
        // rather than end the process over an outage it would only restart into.
        let mut attempt = 1;
        let committed_tpl = loop {
            match consumer.committed_offsets(tpl.clone(), QUERY_TIMEOUT) {
                Err(e) if is_timeout(&e) && attempt < COMMITTED_ATTEMPTS => {
                    tracing::warn!(partition = p, attempt, error = %e, "reading committed offsets timed out; asking again");
                    attempt += 1;
                }
                other => break other.map_err(ServiceError::Committed)?,
            }
        };
        let input_names: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let committed = changelog::committed_of(&committed_tpl, &input_names);
        let eos = self.exactly_once();
        let r = changelog::restore(
            &self.reader,
            &mut self.producer,
            eos,
            &self.cfg.kafka.topics.changelog,
            p,
            committed,
            self.engine,
        )?;
        let mut r = r;
        // The shard's clocks, one per input topic (a state written by a build with fewer
        // inputs gets the new ones, starting with no data).
        r.shard.resize_inputs(inputs.len());
        let mut seek = TopicPartitionList::new();
        for (i, t) in inputs.iter().enumerate().take(MAX_INPUTS) {
            if rewind || committed.offsets[i].unwrap_or(0) != r.offsets[i] {
                // Infallible for a fresh list.
                let _ = seek.add_partition_offset(t, p, Offset::Offset(r.offsets[i]));
            }
        }
        if seek.count() > 0 {
            if let Err(e) = consumer.seek_partitions(seek, QUERY_TIMEOUT) {
                tracing::warn!(partition = p, error = %e, "seeking the inputs to the restored offsets");
            }
        }
        let mut catch_up = r.offsets;
        for (i, t) in inputs.iter().enumerate().take(MAX_INPUTS) {
            if let Ok((_, high)) = consumer.fetch_watermarks(t, p, QUERY_TIMEOUT) {
                catch_up[i] = catch_up[i].max(high);
            }
        }
        let keys = r.shard.keys();
        let now = Instant::now();
        self.slots.insert(
            p,
            Slot {
                written_watermark: r.shard.watermark_ms(),
                shard: r.shard,
                lineage: r.lineage,
                trackers: Default::default(),
                catch_up,
                next: r.offsets,
                committed: r.offsets,
                last_seen: [now; MAX_INPUTS],
                paused: [false; MAX_INPUTS],
                to_commit: false,
            },
        );
        let elapsed = started.elapsed();
        tracing::info!(
            partition = p,
            keys,
            records_read = r.records_read,
            offsets = ?r.offsets,
            secs = elapsed.as_secs_f64(),
            "partition restored from the changelog"
        );
        if let Some(o) = &self.observe {
            o.health.restored(p);
            o.metrics.restored(elapsed, keys as u64);
        }
        Ok(())
    }

    /// `exactly_once` after an abortable error: aborts the transaction, restores every shard
    /// from the changelog and rewinds its inputs to the restored offsets.
    fn abort_and_rewind(
        &mut self,
        consumer: &GroupConsumer,
        inputs: &[String],
    ) -> Result<(), ServiceError> {
        self.stats.aborts += 1;
        if let Some(o) = &self.observe {
            o.metrics.transaction(TxOutcome::Abort);
        }
        if self.in_transaction {
            self.producer.abort_transaction(FLUSH_DEADLINE)?;
            self.in_transaction = false;
        }
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        self.slots.clear();
        for p in parts {
            if let Some(o) = &self.observe {
                o.health.restoring(p);
            }
            self.restore_slot(consumer, p, inputs, true)?;
        }
        Ok(())
    }

    fn publish_assignment(&self) {
        let parts: std::collections::BTreeSet<i32> = self.slots.keys().copied().collect();
        self.publish_assignment_of(&parts);
    }

    fn publish_assignment_of(&self, parts: &std::collections::BTreeSet<i32>) {
        if let Some(o) = &self.observe {
            let parts: Vec<i32> = parts.iter().copied().collect();
            o.metrics.set_assignment(&parts);
            o.health.set_assignment(&parts);
        }
    }

    fn process(
        &mut self,
        consumer: &GroupConsumer,
        msgs: &[BorrowedMessage<'_>],
        inputs: &[String],
    ) -> Result<(), ServiceError> {
        let batch_started = Instant::now();
        if !msgs.is_empty() {
            self.stats.batches += 1;
        }
        let eos = self.exactly_once();
        let mut consumed = [0u64; EventType::COUNT + 1];
        let mut rejected = [0u64; crate::reject::RejectReason::ALL.len()];
        let mut dead = [0u64; crate::reject::RejectReason::ALL.len()];
        self.stats.messages += msgs.len() as u64;
        let now_ms = chrono::Utc::now().timestamp_millis();
        // Group message indices by (partition, input topic), keeping read order.
        let mut groups: BTreeMap<(i32, usize), Vec<usize>> = BTreeMap::new();
        for (i, m) in msgs.iter().enumerate() {
            if let Some(t) = inputs.iter().position(|x| x == m.topic()) {
                groups.entry((m.partition(), t)).or_default().push(i);
            }
        }
        let mut alerts: Vec<Alert> = Vec::new();
        let mut rejects: Vec<Rejection> = Vec::new();
        for ((p, t), idx) in &groups {
            let Some(slot) = self.slots.get_mut(p) else {
                continue; // not ours (any more)
            };
            rejects.clear();
            let batch = self.decoder.decode(
                idx.iter().map(|&i| MessageRef {
                    key: msgs[i].key(),
                    value: msgs[i].payload().unwrap_or_default(),
                }),
                now_ms,
                &mut rejects,
            );
            for &i in idx {
                let ts = msgs[i].timestamp().to_millis().unwrap_or(now_ms);
                slot.trackers[*t].read(msgs[i].offset(), ts);
                slot.next[*t] = slot.next[*t].max(msgs[i].offset() + 1);
            }
            slot.last_seen[*t] = Instant::now();
            slot.shard.set_idle(*t, false);
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
            // Each input topic carries the event types configured to it (one, or several
            // sharing it): anything else is refused, not applied under another input's clock.
            let allowed = self.input_types.get(*t).copied().unwrap_or_default();
            let kinds = batch.columns().kind.values();
            let mut rows = Vec::with_capacity(batch.len());
            for (row, &kind) in kinds.iter().enumerate() {
                consumed[usize::from(kind).min(EventType::COUNT)] += 1;
                if allowed.contains_code(kind) {
                    rows.push(row as u32);
                } else {
                    rejects.push(Rejection {
                        index: batch.columns().index.value(row),
                        reason: RejectReason::SchemaViolation,
                        detail: format!(
                            "a {} event on topic {}, which carries {} events",
                            EventType::from_code(kind).map_or("unknown", EventType::as_str),
                            inputs[*t],
                            allowed.names(", ")
                        ),
                    });
                }
            }
            // Records that did not decode count under their topic's type when it has one.
            let undecoded = (idx.len() - batch.len()) as u64;
            let mut types = allowed.iter();
            match (types.next(), types.next()) {
                (Some(only), None) => consumed[only as usize] += undecoded,
                _ => consumed[EventType::COUNT] += undecoded,
            }
            slot.shard.ingest_rows(
                &batch,
                &rows,
                *t,
                |j| offsets::source(*t, offsets[j as usize]),
                &mut rejects,
            );
            for r in &rejects {
                self.stats.rejected[r.reason.index()] += 1;
                rejected[r.reason.index()] += 1;
                let m = &msgs[idx[r.index as usize]];
                begin(&mut self.producer, &mut self.in_transaction, eos)?;
                send_dead_letter(&mut self.producer, &self.cfg, m, r)?;
                self.stats.dead_letters += 1;
                dead[r.reason.index()] += 1;
                slot.trackers[*t].done(m.offset());
            }
        }
        self.mark_idle(consumer);
        let now_ms = chrono::Utc::now().timestamp_millis();
        for slot in self.slots.values_mut() {
            slot.shard.advance(false, Some(now_ms), &mut alerts);
            for src in slot.shard.drain_applied() {
                let (t, off) = offsets::unpack(src);
                if let Some(tr) = slot.trackers.get_mut(t) {
                    tr.done(off);
                }
            }
            // Early alerts first: their events arrived in this batch or an earlier one.
            let early: Vec<Alert> = slot.shard.drain_early().collect();
            let staged = (early.into_iter().map(|a| (Stage::Early, a)))
                .chain(alerts.drain(..).map(|a| (Stage::Confirmed, a)));
            for (stage, a) in staged {
                let (t, off) = offsets::unpack(a.trigger_source);
                let ts = slot.trackers.get(t).and_then(|tr| tr.timestamp(off));
                let tag = latency_tag(ts, stage);
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
                begin(&mut self.producer, &mut self.in_transaction, eos)?;
                send_alert(&mut self.producer, topic, &self.source_name, &a, tag)?;
                match stage {
                    Stage::Early => {
                        self.stats.early_alerts_published += 1;
                        if let Some(o) = &self.observe {
                            o.metrics.early_alert(a.kind, a.status);
                        }
                    }
                    Stage::Confirmed => self.stats.alerts_published += 1,
                }
            }
        }
        if !eos {
            // End-to-end latency at the acknowledgement: serve the reports that came in.
            self.producer.serve_reports();
            self.producer.take_acknowledged(&mut self.acked);
            if let Some(o) = &self.observe {
                for &(tag, acked) in &self.acked {
                    let (ts, stage) = untag(tag);
                    o.metrics
                        .end_to_end_latency(stage, (acked - ts) as f64 / 1000.0);
                }
            }
            self.acked.clear();
        }
        if let Some(o) = &mut self.observe {
            o.report(
                self.slots.values().map(|s| &s.shard),
                consumed,
                &rejected,
                &dead,
                msgs.len(),
                batch_started.elapsed(),
            );
        }
        Ok(())
    }

    /// Ends a batch: the changelog records of every changed shard, then the commit — after
    /// every acknowledgement (`at_least_once`) or as the transaction's commit (`exactly_once`).
    fn end_batch(&mut self, consumer: &GroupConsumer) -> Result<(), ServiceError> {
        let eos = self.exactly_once();
        if !eos && !self.producer.can_checkpoint() {
            // The cluster acknowledges slowly: no new commit point until it catches up.
            return Ok(());
        }
        let topic = &self.cfg.kafka.topics.changelog;
        for (p, slot) in &mut self.slots {
            for tr in &mut slot.trackers {
                tr.committable(); // forgets what is done
            }
            let watermark = slot.shard.watermark_ms();
            if slot.shard.changed_keys() == 0
                && slot.next == slot.committed
                && watermark == slot.written_watermark
            {
                continue;
            }
            begin(&mut self.producer, &mut self.in_transaction, eos)?;
            let n = self.writer.write(
                &mut self.producer,
                topic,
                *p,
                &mut slot.shard,
                &mut slot.lineage,
                slot.next,
            )?;
            slot.written_watermark = watermark;
            slot.to_commit = true;
            self.stats.changelog_records += n as u64;
        }
        if eos {
            if self.in_transaction {
                let tpl = self.offsets_to_commit();
                let group = consumer.group_metadata();
                let producer = &mut self.producer;
                self.observe.wait_for_brokers(|| {
                    producer.commit_transaction(&tpl, group.as_ref(), STALL_AFTER)
                })?;
                self.in_transaction = false;
                self.stats.commits += 1;
                if let Some(o) = &self.observe {
                    o.metrics.transaction(TxOutcome::Commit);
                }
            }
        } else {
            // Pipelined: committed once everything sent so far is acknowledged, without
            // waiting here ([`Core::commit_acknowledged`]).
            let tpl = self.offsets_to_commit();
            if tpl.count() > 0 {
                // Room was checked above (a checkpoint only frees room): always `Some`. Had
                // it been `None`, the next commit point would carry these offsets on.
                if let Some(g) = self.producer.checkpoint() {
                    self.commits.push_back((g, tpl));
                }
            }
        }
        // exactly_once: end-to-end latency from the triggering record's Kafka timestamp
        // (producer time) to the commit that makes the alert visible (at_least_once measures
        // at each acknowledgement, in `process`).
        if let Some(o) = &self.observe {
            let committed = chrono::Utc::now().timestamp_millis();
            for &tag in &self.latencies {
                let (ts, stage) = untag(tag);
                o.metrics
                    .end_to_end_latency(stage, (committed - ts) as f64 / 1000.0);
            }
        }
        self.latencies.clear();
        Ok(())
    }

    /// An input stops holding its shard's watermark once it is caught up — read up to the
    /// partition's high watermark of the last fetch (KIP-695: Kafka Streams waits only for a
    /// partition known to have more data) — and has been silent for `kafka.input_idle_ms`.
    /// Before the first fetch answers, "caught up" means read up to the end the partition
    /// had at assignment: silence on a backlog only means it is not fetched yet, and calling
    /// it idle would push the backlog behind the watermark. A paused input is never idle (its
    /// unread records may be older than the others').
    fn mark_idle(&mut self, consumer: &GroupConsumer) {
        let idle_after = Duration::from_millis(self.cfg.kafka.input_idle_ms);
        for (p, slot) in &mut self.slots {
            for (t, topic) in self.input_cstrs.iter().enumerate().take(MAX_INPUTS) {
                if slot.paused[t] || slot.last_seen[t].elapsed() < idle_after {
                    continue;
                }
                let end = cached_high_watermark(consumer, topic, *p).unwrap_or(slot.catch_up[t]);
                if slot.next[t] >= end.max(slot.catch_up[t]) {
                    slot.shard.set_idle(t, true);
                }
            }
        }
    }

    /// Backpressure and the event-time merge of DESIGN §3 (KIP-353): while a shard holds more
    /// than its share of `kafka.max_pending_events` waiting for the watermark, its inputs that
    /// are ahead of its slowest active input are paused, so the consumer fetches what holds the
    /// watermark back instead of buffering the rest (a backlog of sales read before any
    /// receipts, say). They resume once the buffer is down to half, or once they are the
    /// slowest. Nothing is dropped: a paused partition is fetched again from where it stopped.
    fn flow_control(&mut self, consumer: &GroupConsumer, inputs: &[String]) {
        if self.slots.is_empty() {
            return;
        }
        let share = (self.cfg.kafka.max_pending_events / self.slots.len()).max(1);
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for (p, slot) in &mut self.slots {
            let limit = if slot.paused.contains(&true) {
                share / 2
            } else {
                share
            };
            let over = slot.shard.pending_events() > limit;
            let clock = |t: usize| slot.shard.input_clock(t).unwrap_or((i64::MIN, true));
            let slowest = (0..inputs.len())
                .map(clock)
                .filter(|&(_, idle)| !idle)
                .map(|(max, _)| max)
                .min();
            for (t, topic) in inputs.iter().enumerate().take(MAX_INPUTS) {
                let want = over && slowest.is_some_and(|m| clock(t).0 > m);
                if want == slot.paused[t] {
                    continue;
                }
                slot.paused[t] = want;
                if want {
                    pause.add_partition(topic, *p);
                } else {
                    resume.add_partition(topic, *p);
                    // Silence while paused is not idleness.
                    slot.last_seen[t] = Instant::now();
                }
            }
        }
        for (list, pausing) in [(&pause, true), (&resume, false)] {
            if list.count() == 0 {
                continue;
            }
            let result = if pausing {
                consumer.pause(list)
            } else {
                consumer.resume(list)
            };
            match result {
                Ok(()) => tracing::debug!(
                    partitions = list.count(),
                    pausing,
                    "flow control: reorder buffers over their share"
                ),
                Err(e) => tracing::warn!(error = %e, pausing, "flow control: pause/resume failed"),
            }
        }
        if let Some(o) = &self.observe {
            let paused = self
                .slots
                .values()
                .map(|s| s.paused.iter().filter(|&&x| x).count());
            o.metrics
                .paused_partitions(paused.sum::<usize>() as u64, pause.count() as u64);
        }
    }

    /// Consumer lag per assigned partition, summed over its input topics, from librdkafka's
    /// statistics (left unchanged while any input's lag is unknown); failed offset commits.
    fn report_consumer(&mut self, consumer: &GroupConsumer, inputs: &[String]) {
        let Some(o) = &self.observe else {
            return;
        };
        let failures = consumer.context().commit_failures();
        for _ in self.commit_failures_seen..failures {
            o.metrics.commit_failed();
        }
        self.commit_failures_seen = failures;
        for p in self.slots.keys() {
            let lags: Option<Vec<i64>> = inputs
                .iter()
                .map(|t| consumer.context().lag(t, *p))
                .collect();
            if let (Some(lags), Some(gauge)) = (lags, o.metrics.partition_lag(*p)) {
                gauge.set(lags.iter().sum());
            }
        }
    }

    /// The offsets to commit for the shards that wrote changelog records in this batch: per
    /// input partition, the offset after the last record read (the changelog covers
    /// everything before it), with the batch's id, `changelog_batch={epoch}:{seq}`, as
    /// metadata (restore picks exactly that batch's shard record).
    fn offsets_to_commit(&mut self) -> TopicPartitionList {
        let inputs = self.cfg.kafka.topics.inputs();
        let mut tpl = TopicPartitionList::new();
        for (p, slot) in &mut self.slots {
            if !std::mem::take(&mut slot.to_commit) {
                continue;
            }
            let id = format!(
                "{}{}:{}",
                changelog::BATCH_METADATA,
                slot.lineage.epoch,
                slot.lineage.seq
            );
            for (t, topic) in inputs.iter().enumerate() {
                // Infallible for a fresh list.
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(slot.next[t]));
                if let Some(mut e) = tpl.find_partition(topic, *p) {
                    e.set_metadata(id.clone());
                }
                slot.committed[t] = slot.next[t];
            }
        }
        tpl
    }

    /// `at_least_once`: whether the oldest commit point has waited [`STALL_AFTER`] for its
    /// acknowledgements with no progress; reports it (readiness, log) as it starts and ends.
    fn waiting_for_acks(&mut self) -> bool {
        let stalled = self
            .acks_waiting_since
            .is_some_and(|t| t.elapsed() >= STALL_AFTER);
        if stalled != self.acks_stalled {
            self.acks_stalled = stalled;
            if stalled {
                tracing::warn!(
                    commit_points = self.commits.len(),
                    in_flight = self.producer.in_flight(),
                    "the brokers do not acknowledge the published records; consumption paused until they do"
                );
            } else {
                tracing::info!("the brokers acknowledge again; consumption resumes");
            }
            if let Some(o) = &self.observe {
                o.health.set_waiting_for_brokers(stalled);
            }
        }
        stalled
    }

    /// `at_least_once`: commits the offsets of every commit point whose records (and all
    /// before them) are acknowledged: the latest offsets per partition, one request.
    fn commit_acknowledged(
        &mut self,
        consumer: &GroupConsumer,
        mode: CommitMode,
    ) -> Result<(), ServiceError> {
        if self.commits.is_empty() {
            self.acks_waiting_since = None;
            return Ok(());
        }
        let done = self.producer.acknowledged()?;
        let mut tpl = TopicPartitionList::new();
        while self.commits.front().is_some_and(|(g, _)| *g <= done) {
            if let Some((_, point)) = self.commits.pop_front() {
                merge_offsets(&mut tpl, &point);
            }
        }
        if !self.commits.is_empty() {
            if tpl.count() > 0 || self.acks_waiting_since.is_none() {
                // Progress: the new oldest point waits from now.
                self.acks_waiting_since = Some(Instant::now());
            }
        } else {
            self.acks_waiting_since = None;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        // Between batches, asynchronous: a synchronous commit waits without a bound when the
        // coordinator does not answer. The outcome arrives in the context's commit callback; a
        // failed commit only means records are read again after a restart (at-least-once).
        consumer.commit(&tpl, mode).map_err(ServiceError::Commit)?;
        self.stats.commits += 1;
        Ok(())
    }
}

/// `into` with every entry of `from` (offset and metadata), replacing the same partition's.
fn merge_offsets(into: &mut TopicPartitionList, from: &TopicPartitionList) {
    for e in from.elements() {
        put_offset(into, e.topic(), e.partition(), e.offset(), e.metadata());
    }
}

/// Sets (or adds) one partition's offset and metadata in `tpl`.
fn put_offset(tpl: &mut TopicPartitionList, topic: &str, p: i32, offset: Offset, metadata: &str) {
    if tpl.find_partition(topic, p).is_none() {
        // Infallible for a plain offset.
        let _ = tpl.add_partition_offset(topic, p, offset);
    }
    if let Some(mut e) = tpl.find_partition(topic, p) {
        let _ = e.set_offset(offset);
        e.set_metadata(metadata);
    }
}

/// `tpl` without the entries of `partitions`.
fn without_partitions(
    tpl: &TopicPartitionList,
    partitions: &std::collections::BTreeSet<i32>,
) -> TopicPartitionList {
    let mut out = TopicPartitionList::new();
    for e in tpl.elements() {
        if !partitions.contains(&e.partition()) {
            put_offset(&mut out, e.topic(), e.partition(), e.offset(), e.metadata());
        }
    }
    out
}

/// Everything `[kafka]` says about producing (security, then `[kafka.producer]`) as
/// properties for [`ProducerSettings`], bootstrap servers apart. The values come through `get`:
/// `config_map` replaces secrets (sasl.password) with a placeholder, which the producer would
/// then send to the broker as the password.
pub(crate) fn producer_properties(cfg: &Config) -> Vec<(String, String)> {
    let c = cfg.kafka.producer_config();
    c.config_map()
        .into_keys()
        .filter(|k| *k != "bootstrap.servers")
        .filter_map(|k| Some((k.to_owned(), c.get(k)?.to_owned())))
        .collect()
}

/// Waiting for the brokers to acknowledge a batch, however long an outage lasts.
trait WaitForBrokers {
    /// Calls `attempt` until it does not time out; while it does, the instance reports not
    /// ready and logs the wait every time.
    fn wait_for_brokers(
        &self,
        attempt: impl FnMut() -> Result<(), ProduceError>,
    ) -> Result<(), ProduceError>;
}

impl WaitForBrokers for Option<observe::Observe> {
    fn wait_for_brokers(
        &self,
        mut attempt: impl FnMut() -> Result<(), ProduceError>,
    ) -> Result<(), ProduceError> {
        let started = Instant::now();
        let mut waited = false;
        let result = loop {
            match attempt() {
                Err(e) if e.is_timeout() => {
                    tracing::warn!(error = %e, waited_secs = started.elapsed().as_secs(), "the brokers do not acknowledge the batch; consumption paused until they do");
                    if let Some(o) = self {
                        o.health.set_waiting_for_brokers(true);
                    }
                    waited = true;
                }
                other => break other,
            }
        };
        if waited {
            tracing::info!(
                waited_secs = started.elapsed().as_secs(),
                "the brokers answer again"
            );
            if let Some(o) = self {
                o.health.set_waiting_for_brokers(false);
            }
        }
        result
    }
}

/// `exactly_once`: opens the batch's transaction before its first record.
fn begin(
    producer: &mut EventProducer,
    in_transaction: &mut bool,
    eos: bool,
) -> Result<(), ProduceError> {
    if eos && !*in_transaction {
        producer.begin_transaction()?;
        *in_transaction = true;
    }
    Ok(())
}

/// `transactional.id`: stable per instance (`service.instance_id`, e.g. the pod name), so a
/// restarted instance aborts what its predecessor left open at once; without one, a random
/// suffix (an open transaction of a crashed instance then ends after
/// `service.transaction_timeout_ms`).
fn transactional_id(cfg: &Config) -> String {
    match cfg.service.instance_id() {
        Some(id) => format!("{}-{id}", cfg.kafka.group_id),
        None => format!("{}-{:016x}", cfg.kafka.group_id, rand::random::<u64>()),
    }
}

/// The partition count shared by the four input topics (they must be co-partitioned).
fn input_partitions(consumer: &GroupConsumer, cfg: &Config) -> Result<u32, ServiceError> {
    let mut counts = Vec::new();
    for topic in cfg.kafka.topics.inputs() {
        let n = topic_partitions(consumer, topic)?;
        if n == 0 {
            return Err(ServiceError::Inputs(format!(
                "topic {topic} does not exist (kafka.topics)"
            )));
        }
        counts.push((topic, n));
    }
    let n = counts[0].1;
    if let Some((t, m)) = counts.iter().find(|(_, m)| *m != n) {
        return Err(ServiceError::Inputs(format!(
            "{} has {n} partitions but {t} has {m}: the input topics must be co-partitioned",
            counts[0].0
        )));
    }
    Ok(n as u32)
}

/// Partitions of `topic` (0 if it does not exist).
fn topic_partitions(consumer: &GroupConsumer, topic: &str) -> Result<usize, ServiceError> {
    let md = consumer
        .fetch_metadata(Some(topic), QUERY_TIMEOUT)
        .map_err(|e| ServiceError::Inputs(format!("metadata of {topic}: {e}")))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// CloudEvents (binary mode) type of alerts.
pub const ALERT_CE_TYPE: &str = "com.stockwatch.alert.v1";
/// CloudEvents `ce_type` of an early alert (same schema, `kafka.topics.early_alerts`).
pub const EARLY_ALERT_CE_TYPE: &str = "com.stockwatch.alert.early.v1";

/// Packs a triggering record's Kafka timestamp (ms, > 0) and the alert's stage into a
/// delivery tag (non-zero); `None` without a timestamp.
fn latency_tag(ts_ms: Option<i64>, stage: Stage) -> Option<usize> {
    let ts = usize::try_from(ts_ms?).ok().filter(|&t| t > 0)?;
    Some(ts << 1 | usize::from(stage == Stage::Early))
}

/// Inverse of [`latency_tag`].
fn untag(tag: usize) -> (i64, Stage) {
    let stage = if tag & 1 == 1 {
        Stage::Early
    } else {
        Stage::Confirmed
    };
    ((tag >> 1) as i64, stage)
}

fn send_alert(
    producer: &mut EventProducer,
    topic: &str,
    source: &str,
    a: &Alert,
    tag: usize,
) -> Result<(), ProduceError> {
    let key = crate::event::message_key(&a.location, &a.sku);
    let value = serde_json::to_vec(a).unwrap_or_default();
    let ce_type = if a.alert_id.starts_with("e-") {
        EARLY_ALERT_CE_TYPE
    } else {
        ALERT_CE_TYPE
    };
    producer.send_tagged(
        topic,
        key.as_bytes(),
        &value,
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", a.alert_id.as_bytes()),
            ("ce_type", ce_type.as_bytes()),
            ("ce_source", source.as_bytes()),
            ("ce_time", a.emitted_at.as_bytes()),
            ("ce_subject", key.as_bytes()),
            ("content-type", b"application/json"),
        ],
        tag,
    )
}

fn send_dead_letter(
    producer: &mut EventProducer,
    cfg: &Config,
    m: &BorrowedMessage<'_>,
    r: &Rejection,
) -> Result<(), ProduceError> {
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    let class = format!("stockwatch.reject.{}", r.reason.as_str());
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let hd = h.get(i);
            headers.push((hd.key, hd.value.unwrap_or_default()));
        }
    }
    // A record too big to republish (the dead-letter topic's limit, not the input's) keeps
    // its first bytes and says so, with the original size and checksum: refusing it would stop
    // the service on every restart (a poison pill), dropping it would lose it.
    let mut value = m.payload().unwrap_or_default();
    let limit = cfg.kafka.dead_letter_max_value_bytes;
    let (size, digest);
    if value.len() > limit {
        size = value.len().to_string();
        digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(value));
        headers.extend_from_slice(&[
            ("stockwatch.truncated", b"true".as_slice()),
            ("stockwatch.original_bytes", size.as_bytes()),
            ("stockwatch.original_xxh3_128", digest.as_bytes()),
        ]);
        value = &value[..limit];
    }
    headers.extend_from_slice(&[
        ("__connect.errors.topic", m.topic().as_bytes()),
        ("__connect.errors.partition", partition.as_bytes()),
        ("__connect.errors.offset", offset.as_bytes()),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.exception.class.name", class.as_bytes()),
        ("__connect.errors.exception.message", r.detail.as_bytes()),
        ("stockwatch.reason", r.reason.as_str().as_bytes()),
    ]);
    producer.send_with_headers(
        &cfg.kafka.topics.dead_letter,
        m.key().unwrap_or_default(),
        value,
        &headers,
    )
}

/// Runs the service until `stop` is set.
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> Result<RunStats, ServiceError> {
    let mut s = Service::new(cfg)?;
    tracing::info!(
        delivery = s.core.cfg.service.delivery.as_str(),
        changelog = %s.core.cfg.kafka.topics.changelog,
        topics = ?s.core.cfg.kafka.topics.inputs(),
        "stockwatch running"
    );
    s.run(&stop)
}
