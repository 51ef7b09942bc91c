//! Rebalances: a newly assigned partition number gets its shard restored from its changelog
//! partition before anything of it is processed, and its inputs resume at the offsets the
//! restored state reflects; a revoked one is dropped. `exactly_once` after an abortable
//! error restores every shard the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::abort::AfterAbort;
use super::changelog::{self, RestoreError};
use super::commit::put_offset;
use super::{is_timeout, Core, KnownCommit, ServiceError, Slot, COMMITTED_ATTEMPTS, QUERY_TIMEOUT};
use crate::config::MAX_INPUTS;
use crate::sink::kafka::ProduceError;
use crate::source::kafka::{GroupConsumer, Rebalance};
use crate::telemetry::events::{AssignmentChanged, PartitionRestored};

impl Core {
    /// Applies the rebalances `events` seen by the last poll. Every partition is revoked and
    /// restored (eager protocol): the batches since the last commit are redone from the
    /// changelog, and their open transaction goes.
    pub(super) fn rebalance(
        &mut self,
        consumer: &GroupConsumer,
        events: Vec<Rebalance>,
        inputs: &[String],
    ) -> Result<(), ServiceError> {
        if self.in_transaction {
            self.abort_open_transaction(None)?;
        }
        for ev in events {
            self.stats.rebalances += 1;
            match ev {
                Rebalance::Revoked(parts) => self.revoke(parts),
                Rebalance::Assigned(parts) => self.assign(consumer, parts, inputs)?,
            }
        }
        Ok(())
    }

    /// Drops the shards of revoked partitions. Offsets not committed yet stay so: the
    /// partitions' next owner redoes their batches from the changelog (at_least_once).
    fn revoke(&mut self, parts: Vec<(String, i32)>) {
        let revoked: BTreeSet<i32> = parts.iter().map(|(_, p)| *p).collect();
        for (_, tpl) in &mut self.commits {
            *tpl = without_partitions(tpl, &revoked);
        }
        let mut dropped = Vec::new();
        for (_, p) in &parts {
            if self.blocked.remove(p).is_some() {
                self.observe.health.consistent(*p);
            }
        }
        self.report_blocked();
        for (_, p) in parts {
            if self.slots.remove(&p).is_some() {
                dropped.push(p);
            }
        }
        self.publish_assignment(&dropped);
    }

    /// Restores the shards of newly assigned partitions, their inputs paused meanwhile: the
    /// consumer is polled while the changelog is read (a long restore would outlast
    /// `max.poll.interval.ms` and drop the member from the group), and must return no
    /// message. A rebalance seen meanwhile abandons the restores; the next step applies it.
    fn assign(
        &mut self,
        consumer: &GroupConsumer,
        parts: Vec<(String, i32)>,
        inputs: &[String],
    ) -> Result<(), ServiceError> {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &parts {
            tpl.add_partition(t, *p);
        }
        if let Err(e) = consumer.pause(&tpl) {
            tracing::warn!(error = %e, "pausing the inputs of the partitions being restored");
        }
        let numbers: BTreeSet<i32> = parts.iter().map(|(_, p)| *p).collect();
        for p in &numbers {
            self.observe.health.restoring(*p);
        }
        let assigned: Vec<i32> = numbers.iter().copied().collect();
        AssignmentChanged {
            partitions: &assigned,
            revoked: &[],
        }
        .emit(&self.observe.metrics, &self.observe.health);
        self.restore_slots(consumer, &assigned, inputs, None)?;
        self.publish_assignment(&[]);
        Ok(())
    }

    /// Restores the shards of `partitions` (their inputs paused), serving the consumer
    /// meanwhile ([`keep_member_alive`]); then resumes the inputs of every shard restored (a
    /// partition paused by flow control or by an earlier restore starts unpaused: its shard is
    /// new). Stops early when a rebalance arrives: the partitions not restored stay paused
    /// until the rebalance revokes them.
    fn restore_slots(
        &mut self,
        consumer: &GroupConsumer,
        partitions: &[i32],
        inputs: &[String],
        rewind: Option<&BTreeMap<i32, KnownCommit>>,
    ) -> Result<(), ServiceError> {
        let mut strays = BTreeSet::new();
        let mut result = Ok(());
        for &p in partitions {
            // Between restores too (a restore's end and start do not poll).
            let mut fatal = None;
            if keep_member_alive(consumer, &self.observe.metrics, &mut strays, &mut fatal) {
                if let Some(e) = fatal {
                    result = Err(e);
                } else {
                    tracing::info!(
                        partition = p,
                        "restore abandoned: a rebalance arrived while the changelog was read"
                    );
                }
                break;
            }
            let known = rewind.map(|k| k.get(&p).copied());
            match self.restore_slot(consumer, p, inputs, known, &mut strays) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(
                        partition = p,
                        "restore abandoned: a rebalance arrived while the changelog was read"
                    );
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Records a poll returned anyway moved their partition's position: back to the
        // restored offsets.
        let mut seek = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for p in partitions {
            let Some(slot) = self.slots.get(p) else {
                continue; // not restored: blocked, or left for the rebalance
            };
            for (i, t) in inputs.iter().enumerate().take(MAX_INPUTS) {
                resume.add_partition(t, *p);
                if strays.contains(p) {
                    let _ = seek.add_partition_offset(t, *p, Offset::Offset(slot.next[i]));
                }
            }
        }
        if seek.count() > 0 {
            tracing::warn!(partitions = ?strays, "records returned while restoring; seeking back");
            if let Err(e) = consumer.seek_partitions(seek, QUERY_TIMEOUT) {
                tracing::warn!(error = %e, "seeking back after a restore");
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "resuming the inputs of the restored partitions");
            }
        }
        result
    }

    /// Partition `p`'s changelog and committed offsets disagree: its inputs are paused and it
    /// gets no shard (nothing of it is processed or committed) until an operator resets it;
    /// the other partitions go on. Loud: an error line, the metric, `/readyz`.
    fn block(&mut self, consumer: &GroupConsumer, p: i32, inputs: &[String], error: &RestoreError) {
        let RestoreError::Inconsistent { kind, .. } = error else {
            return;
        };
        tracing::error!(
            partition = p,
            reason = kind.as_str(),
            error = %error,
            "partition {p} not processed: its changelog and the group's committed offsets disagree ({kind}); not ready until `stockwatch reset-state --partition {p} --from …` (see the runbook)"
        );
        let mut tpl = TopicPartitionList::new();
        for t in inputs {
            tpl.add_partition(t, p);
        }
        if let Err(e) = consumer.pause(&tpl) {
            tracing::warn!(partition = p, error = %e, "pausing the inputs of a blocked partition");
        }
        self.blocked.insert(p, *kind);
        self.observe.health.inconsistent(p, kind.as_str());
        self.observe.health.restored(p);
        self.report_blocked();
    }

    /// The `stockwatch_state_inconsistent_partitions` gauges.
    pub(super) fn report_blocked(&self) {
        let mut by_kind = [0u64; changelog::Inconsistency::ALL.len()];
        for k in self.blocked.values() {
            by_kind[k.index()] += 1;
        }
        self.observe.metrics.inconsistent_partitions(by_kind);
    }

    /// Restores shard `p` from the changelog and positions its inputs where its state ends
    /// (normally the committed offsets, where the consumer starts anyway; always with `rewind`:
    /// after an abort, with the batch this instance last committed for `p`, if it knows one).
    /// False: abandoned for a rebalance. The partitions of records the consumer returned
    /// meanwhile are added to `strays`.
    fn restore_slot(
        &mut self,
        consumer: &GroupConsumer,
        p: i32,
        inputs: &[String],
        rewind: Option<Option<KnownCommit>>,
        strays: &mut BTreeSet<i32>,
    ) -> Result<bool, ServiceError> {
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
        let mut committed = changelog::committed_of(&committed_tpl, &input_names);
        // The committed offsets name their batch; where the broker dropped that name, the
        // batch this instance committed them with (see `KnownCommit`).
        if let Some(Some(k)) = rewind.filter(|_| committed.batch.is_none()) {
            if (0..inputs.len().min(MAX_INPUTS)).all(|i| committed.offsets[i] == Some(k.offsets[i]))
            {
                committed.batch = Some(k.batch);
            }
        }
        let eos = self.exactly_once();
        let mut fatal = None;
        let metrics = &self.observe.metrics;
        let r = changelog::restore(
            &self.reader,
            &mut self.producer,
            eos,
            &self.cfg.kafka.topics.changelog,
            p,
            committed,
            self.engine,
            &mut || keep_member_alive(consumer, metrics, strays, &mut fatal),
        );
        if let Some(e) = fatal {
            return Err(e);
        }
        let mut r = match r {
            Ok(r) => r,
            Err(RestoreError::Interrupted { .. }) => return Ok(false),
            Err(e @ RestoreError::Inconsistent { .. }) => {
                self.block(consumer, p, inputs, &e);
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        // The shard's clocks, one per input topic (a state written by a build with fewer
        // inputs gets the new ones, starting with no data).
        r.shard.resize_inputs(inputs.len());
        let mut seek = TopicPartitionList::new();
        for (i, t) in inputs.iter().enumerate().take(MAX_INPUTS) {
            if rewind.is_some() || committed.offsets[i].unwrap_or(0) != r.offsets[i] {
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
                known_commit: r.batch.map(|batch| KnownCommit {
                    batch,
                    offsets: r.offsets,
                }),
                last_seen: [now; MAX_INPUTS],
                paused: [false; MAX_INPUTS],
                to_commit: false,
            },
        );
        PartitionRestored {
            partition: p,
            keys,
            records_read: r.records_read,
            offsets: r.offsets,
            elapsed: started.elapsed(),
        }
        .emit(&self.observe.metrics, &self.observe.health);
        Ok(true)
    }

    /// `exactly_once` after an abortable error: aborts the transaction, restores every shard
    /// from the changelog and rewinds its inputs to the restored offsets.
    pub(super) fn abort_and_rewind(
        &mut self,
        consumer: &GroupConsumer,
        inputs: &[String],
        error: &ProduceError,
    ) -> Result<(), ServiceError> {
        self.stats.aborts += 1;
        self.abort_open_transaction(Some(error))?;
        // A failure that repeats would abort, restore and rewind forever: wait longer each
        // time, and give up after `service.max_identical_aborts` in a row.
        let cause = error.cause();
        match self.abort_loop.aborted(&cause) {
            AfterAbort::GiveUp { consecutive } => {
                return Err(ServiceError::AbortLoop { consecutive, cause });
            }
            AfterAbort::Retry {
                backoff,
                consecutive,
            } => {
                tracing::warn!(
                    consecutive,
                    limit = self.cfg.service.max_identical_aborts,
                    backoff_ms = backoff.as_millis() as u64,
                    cause = %cause,
                    "transaction aborted; redoing the batch after a backoff"
                );
                // Delivery reports are served meanwhile (the producer's queue drains).
                let until = Instant::now() + backoff;
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.producer.poll(left.min(Duration::from_millis(100)));
                }
            }
        }
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        let mut pause = TopicPartitionList::new();
        for &p in &parts {
            for t in inputs {
                pause.add_partition(t, p);
            }
        }
        if let Err(e) = consumer.pause(&pause) {
            tracing::warn!(error = %e, "pausing the inputs of the partitions being restored");
        }
        let known: BTreeMap<i32, KnownCommit> = self
            .slots
            .iter()
            .filter_map(|(p, s)| Some((*p, s.known_commit?)))
            .collect();
        self.slots.clear();
        for &p in &parts {
            self.observe.health.restoring(p);
        }
        self.restore_slots(consumer, &parts, inputs, Some(&known))
    }

    /// The assignment as the shards held now, after dropping `revoked`.
    fn publish_assignment(&self, revoked: &[i32]) {
        // Blocked partitions are assigned too (not processed).
        let mut parts: Vec<i32> = self.slots.keys().copied().collect();
        parts.extend(self.blocked.keys());
        parts.sort_unstable();
        AssignmentChanged {
            partitions: &parts,
            revoked,
        }
        .emit(&self.observe.metrics, &self.observe.health);
    }
}

/// Serves `consumer` while a restore reads the changelog, every input paused: the poll keeps
/// the member in the group (`max.poll.interval.ms`) and runs the rebalance callback. Returns
/// true once a rebalance is waiting (the restore is abandoned). A record returned anyway is
/// dropped and its partition added to `strays` (its position is moved back afterwards); a
/// consumer error is counted, and a fatal one is kept in `fatal` and ends the restore.
pub(super) fn keep_member_alive(
    consumer: &GroupConsumer,
    metrics: &crate::telemetry::Metrics,
    strays: &mut BTreeSet<i32>,
    fatal: &mut Option<ServiceError>,
) -> bool {
    // One event per call is enough to reset the poll interval; a few more drain what queued.
    for _ in 0..64 {
        match consumer.poll(Duration::ZERO) {
            None => break,
            Some(Ok(m)) => {
                strays.insert(m.partition());
            }
            Some(Err(e)) => {
                let text = consumer.context().take_error_text();
                if let Err(stop) = super::consumer_error(&e, text.as_deref(), metrics) {
                    *fatal = Some(stop);
                    return true;
                }
            }
        }
    }
    consumer.context().rebalanced()
}

/// `tpl` without the entries of `partitions`.
fn without_partitions(tpl: &TopicPartitionList, partitions: &BTreeSet<i32>) -> TopicPartitionList {
    let mut out = TopicPartitionList::new();
    for e in tpl.elements() {
        if !partitions.contains(&e.partition()) {
            put_offset(&mut out, e.topic(), e.partition(), e.offset(), e.metadata());
        }
    }
    out
}
