//! The Kafka source: one consumer in the service's group over the four input topics.
//!
//! Co-partitioning: partition *p* of every input topic must land on the same instance, which the
//! `range` assignor guarantees for topics with equal partition counts. On assignment every
//! partition starts from the beginning of its topic: the shard's state is rebuilt from the input
//! itself (the service suppresses output below the committed offsets while it catches up). The
//! changelog topic of the recovery issue replaces this full re-read.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

use crate::config::Config;
use crate::telemetry::events::CommitFailed;
use crate::telemetry::Metrics;

/// Errors of the Kafka source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The consumer could not be created (bad property, missing feature).
    #[error("cannot create the Kafka consumer: {0}")]
    Create(KafkaError),
    /// The linked librdkafka cannot speak the configured security protocol or mechanism.
    #[error("cannot create the Kafka consumer: {0}")]
    Unsupported(String),
    /// Subscribing failed.
    #[error("cannot subscribe to {topics:?}: {error}")]
    Subscribe {
        /// The topics.
        topics: Vec<String>,
        /// librdkafka's error.
        error: KafkaError,
    },
}

/// A change of assignment seen by the rebalance callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// These (topic, partition)s are now ours.
    Assigned(Vec<(String, i32)>),
    /// These were taken away.
    Revoked(Vec<(String, i32)>),
}

/// Consumer context: records rebalances for the poll loop, and assigns new partitions from the
/// beginning (state is rebuilt from the input).
#[derive(Debug, Default)]
pub struct GroupContext {
    events: Mutex<Vec<Rebalance>>,
    /// Where failed commits are counted ([`GroupContext::set_metrics`]).
    metrics: Mutex<Option<Arc<Metrics>>>,
    /// Consumer lag per (topic, partition) from librdkafka's last statistics (-1: unknown).
    lags: Mutex<BTreeMap<(String, i32), i64>>,
    /// The consumer group handler's state as of librdkafka's last statistics.
    group: Mutex<String>,
    /// librdkafka's text of the last error event, not yet taken by the poll loop
    /// ([`GroupContext::take_error_text`]).
    error_text: Mutex<Option<String>>,
}

impl GroupContext {
    /// Rebalances since the last call, in order.
    pub fn take_events(&self) -> Vec<Rebalance> {
        match self.events.lock() {
            Ok(mut e) => std::mem::take(&mut *e),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    /// Whether a rebalance happened since the last [`GroupContext::take_events`].
    pub fn rebalanced(&self) -> bool {
        match self.events.lock() {
            Ok(e) => !e.is_empty(),
            Err(p) => !p.into_inner().is_empty(),
        }
    }

    /// Consumer lag of a topic partition in messages, as of librdkafka's last statistics
    /// (`statistics.interval.ms`); `None` when unknown.
    pub fn lag(&self, topic: &str, partition: i32) -> Option<i64> {
        let lags = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        lags.get(&(topic.to_owned(), partition))
            .copied()
            .filter(|&l| l >= 0)
    }

    /// The consumer group handler's state, join state, rebalance count and last rebalance
    /// reason as of librdkafka's last statistics (`statistics.interval.ms`), for logs; empty
    /// before the first statistics.
    pub fn group_state(&self) -> String {
        self.group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts failed commits in `metrics` from now on.
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        *self.metrics.lock().unwrap_or_else(PoisonError::into_inner) = Some(metrics);
    }

    /// librdkafka's own text of the error the consumer's `poll` just returned: rdkafka hands
    /// the context each error event's text (`ClientContext::error`) before `poll` returns the
    /// error with its code only. For an unreadable message set it names the offset
    /// (`MessageSet at offset N …`, `Decompression … of message at N …`), never the topic or
    /// partition.
    pub fn take_error_text(&self) -> Option<String> {
        self.error_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn push(&self, r: Rebalance) {
        match self.events.lock() {
            Ok(mut e) => e.push(r),
            Err(p) => p.into_inner().push(r),
        }
    }
}

fn list(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {
    /// Keeps librdkafka's text for the poll loop, which logs it with the error it returns
    /// (rdkafka's default logs it here a second time, without the kind).
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(error = %error, reason, "librdkafka error event");
        *self
            .error_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
    }

    fn stats(&self, statistics: Statistics) {
        if let Some(g) = &statistics.cgrp {
            *self.group.lock().unwrap_or_else(PoisonError::into_inner) = format!(
                "state={} join_state={} state_age_ms={} rebalances={} last_rebalance_reason={:?}",
                g.state, g.join_state, g.stateage, g.rebalance_cnt, g.rebalance_reason
            );
        }
        let mut lags = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        lags.clear();
        for (topic, t) in statistics.topics {
            for (&p, part) in &t.partitions {
                // librdkafka reports the internal "unassigned" partition as -1.
                if p >= 0 {
                    lags.insert((topic.clone(), p), part.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            let metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
            CommitFailed { error: &e }.emit(metrics.as_deref());
        }
    }

    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Positions: the committed offsets; the service moves them if the state it
                // restores from the changelog ends elsewhere.
                let parts = list(tpl);
                self.push(Rebalance::Assigned(parts));
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.push(Rebalance::Revoked(list(tpl)));
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                self.push(Rebalance::Revoked(list(tpl)));
                let _ = consumer.unassign();
            }
        }
    }
}

/// The service's consumer.
pub type GroupConsumer = BaseConsumer<GroupContext>;

/// The partition's high watermark as of the last fetch response: librdkafka's cached value,
/// no broker request, cheap enough for every batch. `None` before the first fetch.
// The one FFI call outside `state::mem`: it needs the consumer's native handle, so it lives
// with the consumer (rdkafka 0.39 has no safe wrapper for it).
#[allow(unsafe_code)]
pub fn cached_high_watermark(
    consumer: &GroupConsumer,
    topic: &CStr,
    partition: i32,
) -> Option<i64> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is valid while `consumer` lives, `topic` is NUL-terminated and
    // outlives the call, and the function only reads librdkafka's own state (under its locks)
    // and writes the two out-parameters. rdkafka 0.39 has no safe wrapper for it.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// One header of a consumed record, as the broker delivered it: the name as bytes (Kafka
/// does not enforce UTF-8 on header names, and rdkafka 0.39's `Headers::get` panics on one
/// that is not), the value as bytes (`None`: a null value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'m> {
    /// The name, up to its first NUL byte (librdkafka keeps names NUL-terminated).
    pub name: &'m [u8],
    /// The value; `None` for a null header value.
    pub value: Option<&'m [u8]>,
}

impl RawHeader<'_> {
    /// Bytes of the header on the wire (name and value, without framing).
    pub fn len(&self) -> usize {
        self.name.len() + self.value.map_or(0, <[u8]>::len)
    }

    /// Whether both name and value are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The headers of `m`, in order, read without interpreting names: never panics, whatever
/// bytes a producer put there (a poison pill for `rdkafka::message::Headers::get`).
// The second librdkafka FFI use: rdkafka 0.39 exposes header names only as `&str`, unwrapping
// the UTF-8 check.
#[allow(unsafe_code)]
pub fn raw_headers<'m>(m: &'m BorrowedMessage<'_>) -> Vec<RawHeader<'m>> {
    let mut hdrs: *mut rdkafka::bindings::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m.ptr()` is the message's valid native handle while `m` lives; the call only
    // writes the out-parameter (a pointer to headers owned by the message, or nothing).
    let err = unsafe { rdkafka::bindings::rd_kafka_message_headers(m.ptr(), &mut hdrs) };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for idx in 0.. {
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
        // SAFETY: `hdrs` belongs to the message and lives as long as `m`; the call reads header
        // `idx` (or returns an error past the end) and writes the three out-parameters.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size)
        };
        if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            || name.is_null()
        {
            break;
        }
        // SAFETY: librdkafka stores every header name NUL-terminated and the value as `size`
        // bytes, both owned by the message's headers, which outlive `'m` (they are freed with
        // the message). Only bytes are read: no UTF-8 assumption.
        let header = unsafe {
            RawHeader {
                name: CStr::from_ptr(name).to_bytes(),
                value: (!value.is_null())
                    .then(|| std::slice::from_raw_parts(value.cast::<u8>(), size)),
            }
        };
        out.push(header);
    }
    out
}

/// Creates the consumer and subscribes it to the four input topics.
/// Properties come from [`crate::config::KafkaSection::consumer_config`] (group, manual
/// commits, the `range` assignor, read_committed, security, pass-through).
pub fn subscribe(cfg: &Config) -> Result<GroupConsumer, SourceError> {
    let k = &cfg.kafka;
    let config = k.consumer_config(&cfg.service);
    crate::kafka::check_client_security(&config).map_err(SourceError::Unsupported)?;
    let consumer: GroupConsumer = config
        .create_with_context(GroupContext::default())
        .map_err(SourceError::Create)?;
    let topics = k.topics.inputs();
    consumer
        .subscribe(&topics)
        .map_err(|error| SourceError::Subscribe {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            error,
        })?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn librdkafka_error_text_is_kept_for_the_poll_loop_once() {
        let c = GroupContext::default();
        assert_eq!(c.take_error_text(), None);
        c.error(
            KafkaError::Global(RDKafkaErrorCode::BadCompression),
            "Decompression (codec 0x4) of message at 1234 of 97 bytes failed: Local: Invalid compressed data",
        );
        let text = c.take_error_text().expect("kept");
        assert!(text.contains("message at 1234"), "{text}");
        assert_eq!(c.take_error_text(), None, "taken once");
    }
}
