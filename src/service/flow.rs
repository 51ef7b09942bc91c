//! Flow control: which inputs hold a shard's watermark (idleness), and pausing the inputs
//! that run ahead while a shard's reorder buffer is over its share (backpressure).

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::rebalance::keep_member_alive;
use super::{Core, ServiceError};
use crate::config::MAX_INPUTS;
use crate::source::kafka::{cached_high_watermark, GroupConsumer};

impl Core {
    /// An input stops holding its shard's watermark once it is caught up — read up to the
    /// partition's high watermark of the last fetch (KIP-695: Kafka Streams waits only for a
    /// partition known to have more data) — and has been silent for `kafka.input_idle_ms`.
    /// Before the first fetch answers, "caught up" means read up to the end the partition
    /// had at assignment: silence on a backlog only means it is not fetched yet, and calling
    /// it idle would push the backlog behind the watermark. A paused input is never idle (its
    /// unread records may be older than the others').
    pub(super) fn mark_idle(&mut self, consumer: &GroupConsumer) {
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

    /// Backpressure and the event-time merge (architecture.md#event-time): while a shard holds more
    /// than its share of `kafka.max_pending_events` waiting for the watermark, its inputs that
    /// are ahead of its slowest active input are paused, so the consumer fetches what holds the
    /// watermark back instead of buffering the rest (a backlog of sales read before any
    /// receipts, say). They resume once the buffer is down to half, or once they are the
    /// slowest. Nothing is dropped: a paused partition is fetched again from where it stopped.
    pub(super) fn flow_control(&mut self, consumer: &GroupConsumer, inputs: &[String]) {
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
        let paused = self
            .slots
            .values()
            .map(|s| s.paused.iter().filter(|&&x| x).count());
        self.observe
            .metrics
            .paused_partitions(paused.sum::<usize>() as u64, pause.count() as u64);
    }

    /// `at_least_once`, while the brokers do not acknowledge: pauses every input of the
    /// shards (once), then polls the group consumer without waiting, which keeps the member in
    /// the group however long the wait (`max.poll.interval.ms`) and runs the rebalance
    /// callback (the caller applies what it recorded). A record returned anyway is dropped and
    /// its partition noted: [`Core::release_inputs`] moves it back.
    pub(super) fn hold_inputs(&mut self, consumer: &GroupConsumer) -> Result<(), ServiceError> {
        let strays = match &mut self.held {
            Some(strays) => strays,
            None => {
                let mut pause = TopicPartitionList::new();
                for p in self.slots.keys() {
                    for topic in &self.input_cstrs {
                        if let Ok(t) = topic.to_str() {
                            pause.add_partition(t, *p);
                        }
                    }
                }
                if let Err(e) = consumer.pause(&pause) {
                    tracing::warn!(error = %e, "pausing the inputs while the brokers do not acknowledge");
                }
                self.held.insert(Default::default())
            }
        };
        let mut fatal = None;
        keep_member_alive(consumer, &self.observe.metrics, strays, &mut fatal);
        fatal.map_or(Ok(()), Err)
    }

    /// Ends [`Core::hold_inputs`]: the inputs that returned a record meanwhile go back to where
    /// their shard's state ends, and every input resumes but those flow control pauses.
    pub(super) fn release_inputs(&mut self, consumer: &GroupConsumer, inputs: &[String]) {
        let Some(strays) = self.held.take() else {
            return;
        };
        let mut seek = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for (p, slot) in &mut self.slots {
            for (t, topic) in inputs.iter().enumerate().take(MAX_INPUTS) {
                // Silence while held is not idleness (as after flow control): the high
                // watermark `mark_idle` compares with is that of the last fetch, before the
                // hold, so a held input would look caught up and idle, and the watermark
                // would pass the records written meanwhile.
                slot.last_seen[t] = Instant::now();
                if strays.contains(p) {
                    // Infallible for a fresh list.
                    let _ = seek.add_partition_offset(topic, *p, Offset::Offset(slot.next[t]));
                }
                if !slot.paused[t] {
                    resume.add_partition(topic, *p);
                }
            }
        }
        if seek.count() > 0 {
            tracing::warn!(partitions = ?strays, "records returned while the inputs were held; seeking back");
            if let Err(e) = consumer.seek_partitions(seek, super::QUERY_TIMEOUT) {
                tracing::warn!(error = %e, "seeking back after holding the inputs");
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "resuming the inputs after the brokers acknowledged again");
            }
        }
    }

    /// Consumer lag per assigned partition, summed over the input topics whose lag
    /// librdkafka's statistics know (left unchanged while none is known). An input nothing
    /// was ever written to has no lag librdkafka can report (no position, no committed
    /// offset): it counts as 0 instead of hiding the others' backlog (e.g. a retailer that
    /// sends no adjustments).
    pub(super) fn report_consumer(&self, consumer: &GroupConsumer, inputs: &[String]) {
        let o = &self.observe;
        for p in self.slots.keys() {
            let lag = inputs
                .iter()
                .filter_map(|t| consumer.context().lag(t, *p))
                .fold(None, |sum: Option<i64>, l| Some(sum.unwrap_or(0) + l));
            if let (Some(lag), Some(gauge)) = (lag, o.metrics.partition_lag(*p)) {
                gauge.set(lag);
            }
        }
    }
}
