//! Both delivery modes' commits. `at_least_once` is pipelined: each commit point is a producer
//! checkpoint, and its offsets are committed by a later batch once every record sent before
//! it is acknowledged. `exactly_once` commits the batch's transaction, offsets included.

use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{changelog, Core, KnownCommit, ServiceError, STALL_AFTER};
use crate::sink::kafka::{EventProducer, ProduceError, TAG_BITS};
use crate::source::kafka::GroupConsumer;
use crate::telemetry::events::{AcksStalled, BatchWaiting, TransactionEnded};
use crate::telemetry::{Health, LatencyStep, Metrics, Stage, TxOutcome};

impl Core {
    /// Ends a batch: the changelog records of every changed shard, then the commit — after
    /// every acknowledgement (`at_least_once`) or as the transaction's commit (`exactly_once`).
    pub(super) fn end_batch(&mut self, consumer: &GroupConsumer) -> Result<(), ServiceError> {
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
            let written = self.writer.write(
                &mut self.producer,
                topic,
                *p,
                &mut slot.shard,
                &mut slot.lineage,
                slot.next,
            )?;
            slot.written_watermark = watermark;
            slot.to_commit = true;
            self.stats.changelog_records += written.total();
            self.observe
                .metrics
                .changelog_written(written.records, written.bytes);
        }
        if eos {
            if self.in_transaction {
                let tpl = self.offsets_to_commit();
                let group = consumer.group_metadata();
                let producer = &mut self.producer;
                wait_for_brokers(&self.observe.health, || {
                    producer.commit_transaction(&tpl, group.as_ref(), STALL_AFTER)
                })?;
                self.in_transaction = false;
                self.mark_committed(&tpl);
                self.abort_loop.committed();
                self.stats.commits += 1;
                TransactionEnded {
                    outcome: TxOutcome::Commit,
                    error: None,
                }
                .emit(&self.observe.metrics);
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
        // at each acknowledgement, [`Core::report_acknowledged`]).
        let committed = chrono::Utc::now().timestamp_millis();
        report_latencies(
            &self.observe.metrics,
            self.latencies.iter().map(|&tag| (tag, committed)),
        );
        self.latencies.clear();
        Ok(())
    }

    /// `at_least_once`: end-to-end latency at the acknowledgement; serves the delivery
    /// reports that came in.
    pub(super) fn report_acknowledged(&mut self) {
        self.producer.serve_reports();
        self.producer.take_acknowledged(&mut self.acked);
        report_latencies(&self.observe.metrics, self.acked.iter().copied());
        self.acked.clear();
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
    pub(super) fn waiting_for_acks(&mut self) -> bool {
        let stalled = self
            .acks_waiting_since
            .is_some_and(|t| t.elapsed() >= STALL_AFTER);
        if stalled != self.acks_stalled {
            self.acks_stalled = stalled;
            AcksStalled {
                stalled,
                commit_points: self.commits.len(),
                in_flight: self.producer.in_flight(),
            }
            .emit(&self.observe.health);
        }
        stalled
    }

    /// `at_least_once`: commits the offsets of every commit point whose records (and all
    /// before them) are acknowledged: the latest offsets per partition, one request.
    pub(super) fn commit_acknowledged(
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
        crate::failpoint::crash_point!(crate::failpoint::BEFORE_OFFSETS_COMMIT);
        consumer.commit(&tpl, mode).map_err(ServiceError::Commit)?;
        self.mark_committed(&tpl);
        self.stats.commits += 1;
        Ok(())
    }

    /// The shards of `tpl`'s partitions have committed offsets: their next changelog records
    /// say so ([`changelog::Lineage::committed`]), so that losing the offsets is noticed.
    fn mark_committed(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            if let Some(slot) = self.slots.get_mut(&e.partition()) {
                slot.lineage.committed = true;
                slot.known_commit = Some(KnownCommit {
                    batch: (slot.lineage.epoch, slot.lineage.seq),
                    offsets: slot.committed,
                });
            }
        }
    }
}

/// `into` with every entry of `from` (offset and metadata), replacing the same partition's.
fn merge_offsets(into: &mut TopicPartitionList, from: &TopicPartitionList) {
    for e in from.elements() {
        put_offset(into, e.topic(), e.partition(), e.offset(), e.metadata());
    }
}

/// Sets (or adds) one partition's offset and metadata in `tpl`.
pub(super) fn put_offset(
    tpl: &mut TopicPartitionList,
    topic: &str,
    p: i32,
    offset: Offset,
    metadata: &str,
) {
    if tpl.find_partition(topic, p).is_none() {
        // Infallible for a plain offset.
        let _ = tpl.add_partition_offset(topic, p, offset);
    }
    if let Some(mut e) = tpl.find_partition(topic, p) {
        let _ = e.set_offset(offset);
        e.set_metadata(metadata);
    }
}

/// Calls `attempt` until it does not time out, however long an outage lasts; while it does,
/// the instance reports not ready and logs the wait every time.
fn wait_for_brokers(
    health: &Health,
    mut attempt: impl FnMut() -> Result<(), ProduceError>,
) -> Result<(), ProduceError> {
    let started = Instant::now();
    let mut waited = false;
    let result = loop {
        match attempt() {
            Err(e) if e.is_timeout() => {
                BatchWaiting {
                    error: Some(&e),
                    waited: started.elapsed(),
                }
                .emit(health);
                waited = true;
            }
            other => break other,
        }
    };
    if waited {
        BatchWaiting {
            error: None,
            waited: started.elapsed(),
        }
        .emit(health);
    }
    result
}

/// Latencies of published alerts, `(latency tag, visible at ms)`: end to end (from the
/// record's timestamp) and the service's own share (from the record consumed).
fn report_latencies(metrics: &Metrics, tags: impl Iterator<Item = (usize, i64)>) {
    for (tag, at) in tags {
        let t = untag(tag);
        metrics.end_to_end_latency(t.stage, (at - t.record_ms) as f64 / 1000.0);
        if let Some(consumed) = t.consumed_ms {
            let own = (at - consumed) as f64 / 1000.0;
            metrics.service_latency(t.stage, LatencyStep::Acknowledged, own);
        }
    }
}

/// `exactly_once`: opens the batch's transaction before its first record.
pub(super) fn begin(
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

// A latency tag (the caller's part of a delivery opaque, [`TAG_BITS`] = 58 bits): the
// record timestamp in ms since 2020 (41 bits, until 2089), the consumption delay in ms (16
// bits), the stage (1 bit).
/// The origin of the timestamps tags hold: 2020-01-01T00:00:00Z, ms since the epoch.
const TAG_EPOCH_MS: i64 = 1_577_836_800_000;
/// Bits of a latency tag holding how long after its timestamp a record was consumed (ms).
const DELAY_BITS: u32 = 16;
/// The largest consumption delay a tag holds (~65 s, all ones: "unknown"); a record consumed
/// later than that after its timestamp (a backlog) gets no `acknowledged` service-latency
/// sample (its end-to-end one is still measured).
const MAX_DELAY_MS: u64 = (1 << DELAY_BITS) - 1;
/// Bits of the record timestamp.
const RECORD_BITS: u32 = TAG_BITS - DELAY_BITS - 1;

/// What an acknowledged record's tag says of the alert it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Untagged {
    /// The triggering record's timestamp (ms since the epoch).
    record_ms: i64,
    /// When it was consumed, if within [`MAX_DELAY_MS`] of its timestamp.
    consumed_ms: Option<i64>,
    stage: Stage,
}

/// Packs an alert's triggering record's `(timestamp, consumed at)` (ms since the epoch) and the
/// alert's stage into a non-zero delivery tag below `1 << TAG_BITS`; `None` without a
/// timestamp or with one outside 2020–2089. A delay of [`MAX_DELAY_MS`] or more is stored as
/// "unknown"; a negative one (clock skew) as 0.
pub(super) fn latency_tag(times: Option<(i64, i64)>, stage: Stage) -> Option<usize> {
    let (record_ms, consumed_ms) = times?;
    let ts = u64::try_from(record_ms - TAG_EPOCH_MS)
        .ok()
        .filter(|&t| t < 1 << RECORD_BITS)?;
    let delay = u64::try_from(consumed_ms.saturating_sub(record_ms))
        .unwrap_or(0)
        .min(MAX_DELAY_MS);
    let tag = ts << (DELAY_BITS + 1) | delay << 1 | u64::from(stage == Stage::Early);
    // Non-zero even for a record at the epoch itself: the delay or stage bits, or the
    // timestamp, are set but for a confirmed alert at exactly 2020-01-01 consumed at once.
    usize::try_from(tag).ok().filter(|&t| t != 0)
}

/// Inverse of [`latency_tag`].
fn untag(tag: usize) -> Untagged {
    let tag = tag as u64;
    let stage = if tag & 1 == 1 {
        Stage::Early
    } else {
        Stage::Confirmed
    };
    let record_ms = (tag >> (DELAY_BITS + 1)) as i64 + TAG_EPOCH_MS;
    let delay = (tag >> 1) & MAX_DELAY_MS;
    Untagged {
        record_ms,
        consumed_ms: (delay < MAX_DELAY_MS).then(|| record_ms + delay as i64),
        stage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_tags_round_trip() {
        let now = 1_796_000_000_000; // 2026-12
        for stage in [Stage::Early, Stage::Confirmed] {
            let tag = latency_tag(Some((now, now + 37)), stage).expect("a tag");
            assert_ne!(tag, 0);
            let t = untag(tag);
            assert_eq!(
                (t.record_ms, t.consumed_ms, t.stage),
                (now, Some(now + 37), stage)
            );
        }
        // Within the producer's part of the opaque, at the end of the range too.
        let last = TAG_EPOCH_MS + (1 << RECORD_BITS) - 1;
        let tag = latency_tag(Some((last, last + 1)), Stage::Early).expect("a tag");
        assert!(tag < 1 << TAG_BITS);
        assert_eq!(untag(tag).record_ms, last);
        assert_eq!(latency_tag(Some((last + 1, last + 1)), Stage::Early), None);
        // A backlog: end to end still measured, the service's share not.
        let t = untag(latency_tag(Some((now, now + 3_600_000)), Stage::Confirmed).unwrap_or(0));
        assert_eq!((t.record_ms, t.consumed_ms), (now, None));
        // Clock skew: consumed "before" the timestamp counts as at it.
        let t = untag(latency_tag(Some((now, now - 5)), Stage::Early).unwrap_or(0));
        assert_eq!(t.consumed_ms, Some(now));
        assert_eq!(latency_tag(Some((5, 5)), Stage::Early), None, "before 2020");
        assert_eq!(latency_tag(None, Stage::Early), None);
    }
}
