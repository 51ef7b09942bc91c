//! Kafka transactions (`exactly_once`): init, begin, commit with the consumer's offsets,
//! abort.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;

use super::{EventProducer, ProduceError};

impl EventProducer {
    /// Registers the transactional id with the cluster, aborting whatever transaction an
    /// earlier producer with the same id left open (needs `transactional.id` in the settings).
    pub fn init_transactions(&self, timeout: Duration) -> Result<(), ProduceError> {
        self.producer
            .init_transactions(timeout)
            .map_err(|e| txn_error("init", e))
    }

    /// Starts a transaction: records sent until the commit belong to it.
    pub fn begin_transaction(&mut self) -> Result<(), ProduceError> {
        self.producer
            .begin_transaction()
            .map_err(|e| txn_error("begin", e))
    }

    /// Delivers every record sent, then adds the consumer's `offsets` to the open transaction
    /// (with the consumer group's metadata, so a member of an older generation is fenced) and
    /// commits it. Retriable errors are retried within `timeout`.
    pub fn commit_transaction(
        &mut self,
        offsets: &rdkafka::TopicPartitionList,
        group: Option<&rdkafka::consumer::ConsumerGroupMetadata>,
        timeout: Duration,
    ) -> Result<(), ProduceError> {
        let started = Instant::now();
        // Every record delivered first, reports served in FLUSH_STEP slices: rdkafka's
        // `commit_transaction` flushes too, but polls 100 ms at a time, which cost each commit
        // with records in flight at least 100 ms (exactly_once load run: 200 k vs 250 k
        // events/s for at_least_once).
        self.flush(timeout)?;
        if let (true, Some(group)) = (offsets.count() > 0, group) {
            retry_txn(started, timeout, || {
                self.producer
                    .send_offsets_to_transaction(offsets, group, timeout)
                    .map_err(|e| txn_error("send_offsets", e))
            })?;
        }
        retry_txn(started, timeout, || {
            self.producer
                .commit_transaction(timeout)
                .map_err(|e| txn_error("commit", e))
        })?;
        self.check()
    }

    /// Aborts the open transaction: its records are never seen by read_committed consumers.
    /// Delivery failures counted so far belong to it and are forgotten.
    pub fn abort_transaction(&mut self, timeout: Duration) -> Result<(), ProduceError> {
        self.producer
            .abort_transaction(timeout)
            .map_err(|e| txn_error("abort", e))?;
        let ctx = self.producer.context();
        ctx.failed.store(0, Ordering::Relaxed);
        if let Ok(mut f) = ctx.first_failure.lock() {
            *f = None;
        }
        Ok(())
    }
}

/// Classifies a transaction call's error (librdkafka's own classification).
fn txn_error(op: &'static str, error: KafkaError) -> ProduceError {
    let (abortable, retriable) = match &error {
        KafkaError::Transaction(e) => (
            e.txn_requires_abort() || (e.is_retriable() && !e.is_fatal()),
            e.is_retriable() && !e.txn_requires_abort() && !e.is_fatal(),
        ),
        _ => (false, false),
    };
    ProduceError::Transaction {
        op,
        error,
        abortable,
        retriable,
    }
}

/// Retries `call` while it fails with a retriable transaction error, until `timeout`.
fn retry_txn(
    started: Instant,
    timeout: Duration,
    mut call: impl FnMut() -> Result<(), ProduceError>,
) -> Result<(), ProduceError> {
    loop {
        match call() {
            Err(ProduceError::Transaction {
                error: KafkaError::Transaction(ref e),
                ..
            }) if e.is_retriable() && !e.txn_requires_abort() && started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
