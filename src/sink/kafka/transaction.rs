//! Kafka transactions (`exactly_once`): init, begin, commit with the consumer's offsets,
//! abort.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, PurgeConfig};

use super::{EventProducer, ProduceError};
use crate::failpoint::{self, crash_point};

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
        self.commit_resumes = None;
        self.producer
            .begin_transaction()
            .map_err(|e| txn_error("begin", e))?;
        self.began = Some(Instant::now());
        Ok(())
    }

    /// Delivers every record sent, then adds the consumer's `offsets` to the open transaction
    /// (with the consumer group's metadata, so a member of an older generation is fenced) and
    /// commits it. Retriable errors are retried within `timeout`.
    ///
    /// Called again after its commit timed out, it resumes the commit alone: librdkafka keeps
    /// the commit as the call in progress, and sending the offsets again first fails with a
    /// retriable conflict, forever. At most [`MAX_COMMIT_RESUMES`] resumes, then
    /// [`ProduceError::CommitStuck`] (the process exits; the broker aborts the transaction
    /// after `transaction.timeout.ms`).
    pub fn commit_transaction(
        &mut self,
        offsets: &rdkafka::TopicPartitionList,
        group: Option<&rdkafka::consumer::ConsumerGroupMetadata>,
        timeout: Duration,
    ) -> Result<(), ProduceError> {
        let started = Instant::now();
        if let Some(resumes) = self.commit_resumes {
            if resumes >= MAX_COMMIT_RESUMES {
                return Err(ProduceError::CommitStuck { attempts: resumes });
            }
            self.commit_resumes = Some(resumes + 1);
            return self.commit_only(started, timeout);
        }
        // Every record delivered first, reports served in FLUSH_STEP slices: rdkafka's
        // `commit_transaction` flushes too, but polls 100 ms at a time, which cost each commit
        // with records in flight at least 100 ms (exactly_once load run: 200 k vs 250 k
        // events/s for at_least_once).
        self.flush(timeout)?;
        if let (true, Some(group)) = (offsets.count() > 0, group) {
            // A batch's commit (a restore's marker transaction carries no offsets).
            crash_point!(failpoint::BEFORE_OFFSETS_COMMIT);
            retry_txn(started, timeout, || {
                self.producer
                    .send_offsets_to_transaction(offsets, group, timeout)
                    .map_err(|e| txn_error("send_offsets", e))
            })?;
            crash_point!(failpoint::BETWEEN_SEND_OFFSETS_AND_COMMIT);
        }
        // A transaction older than its `transaction.timeout.ms` is not committed: a broker
        // aborts it by then, and a process frozen that long (a stopped container, a stalled
        // VM) has lost its partitions, whose next owner has redone its batches. A broker that
        // does not enforce the timeout would take the commit, and publish them twice.
        if let (Some(began), Some(limit)) = (self.began, self.transaction_timeout) {
            let age = began.elapsed();
            if age > limit {
                return Err(ProduceError::TransactionExpired { age, limit });
            }
        }
        self.commit_resumes = Some(0);
        self.commit_only(started, timeout)
    }

    /// The commit call of [`EventProducer::commit_transaction`]; a timeout leaves it pending.
    fn commit_only(&mut self, started: Instant, timeout: Duration) -> Result<(), ProduceError> {
        let result = retry_txn(started, timeout, || {
            self.producer
                .commit_transaction(timeout)
                .map_err(|e| txn_error("commit", e))
        });
        if !result.as_ref().is_err_and(ProduceError::is_timeout) {
            self.commit_resumes = None;
        }
        result?;
        self.began = None;
        self.check()
    }

    /// Aborts the open transaction: its records are never seen by read_committed consumers.
    /// Delivery failures counted so far belong to it and are forgotten.
    ///
    /// A fatal producer (fenced by a newer one with the same `transactional.id`) cannot abort:
    /// the fatal error is returned at once, without waiting for its records (which it will
    /// never deliver) or asking the coordinator (which refuses it).
    pub fn abort_transaction(&mut self, timeout: Duration) -> Result<(), ProduceError> {
        self.commit_resumes = None;
        self.began = None;
        if let Some(e) = self.fatal() {
            return Err(e);
        }
        // librdkafka's abort waits for the delivery reports of every outstanding record, and
        // this thread is the one that serves them: drop what is still queued, serve the
        // reports of what is in flight, then abort (otherwise the abort fails with "the event
        // queue must be polled for delivery report events").
        self.producer.purge(PurgeConfig::default().queue());
        let started = Instant::now();
        while self.producer.in_flight_count() > 0 && started.elapsed() < timeout {
            self.producer.poll(Duration::from_millis(1));
            if let Some(e) = self.fatal() {
                return Err(e);
            }
        }
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

impl EventProducer {
    /// Replaces a producer whose abort could not complete with a new one under the same
    /// `transactional.id`, as a restarted process would: the old client is destroyed first,
    /// and the new one's `init_transactions` aborts the open transaction at the coordinator
    /// (and fences anything the old one left in flight). The case it is for: records that
    /// timed out in the producer leave a gap in a partition's sequence numbers, the broker
    /// answers the next ones `OUT_OF_ORDER_SEQUENCE_NUMBER`, and librdkafka's abort then waits
    /// for an epoch bump that a broker without KIP-360 never grants (tansu 0.6).
    ///
    /// Not for a fenced (fatal) producer: another instance owns the id and its partitions.
    pub fn renew(&mut self, timeout: Duration) -> Result<(), ProduceError> {
        if let Some(e) = self.fatal() {
            return Err(e);
        }
        self.replace_client()?;
        self.init_transactions(timeout)
    }
}

/// Resumes of a timed-out `commit_transaction` before giving up: with the service's 5 s per
/// attempt, about 10 minutes of a coordinator that does not answer.
pub const MAX_COMMIT_RESUMES: u32 = 120;

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

#[cfg(test)]
mod tests {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;
    use crate::sink::kafka::ProducerSettings;

    /// A commit that timed out is resumed with the commit call alone. Sending the offsets
    /// again first (as before) fails with librdkafka's retriable "conflicting operation in
    /// progress" for as long as one retries: the batch could never end.
    #[test]
    fn a_timed_out_commit_is_resumed_not_restarted() {
        let cluster: MockCluster<'static, DefaultProducerContext> =
            MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let bootstrap = cluster.bootstrap_servers();
        let mut settings = ProducerSettings::new(bootstrap.as_str());
        settings
            .properties
            .push(("transactional.id".into(), "resume-test".into()));
        let mut p = EventProducer::new(settings).expect("producer");
        p.init_transactions(Duration::from_secs(10)).expect("init");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "resume-test")
            .create()
            .expect("consumer");
        let group = consumer.group_metadata();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("t", 0, Offset::Offset(1))
            .expect("offset");

        p.begin_transaction().expect("begin");
        p.send("t", b"k", b"v").expect("send");
        // The coordinator answers every EndTxn with a retriable error: the commit times out.
        let busy = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS; 200];
        cluster.request_errors(RDKafkaApiKey::EndTxn, &busy);
        let e = p
            .commit_transaction(&offsets, group.as_ref(), Duration::from_secs(2))
            .expect_err("the commit times out");
        assert!(e.is_timeout(), "{e}");
        // The coordinator answers again: calling again completes the same commit.
        cluster.clear_request_errors(RDKafkaApiKey::EndTxn);
        p.commit_transaction(&offsets, group.as_ref(), Duration::from_secs(10))
            .expect("the resumed commit completes");
        // And the next transaction starts afresh.
        p.begin_transaction().expect("begin");
        p.send("t", b"k", b"v2").expect("send");
        p.commit_transaction(&offsets, group.as_ref(), Duration::from_secs(10))
            .expect("commit");
    }

    /// A transaction older than its `transaction.timeout.ms` when it is to be committed (a
    /// frozen process) is refused, abortable; after the abort the next one commits.
    #[test]
    fn a_transaction_past_its_timeout_is_not_committed() {
        let cluster: MockCluster<'static, DefaultProducerContext> =
            MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let mut settings = ProducerSettings::new(cluster.bootstrap_servers().as_str());
        settings.properties.extend([
            ("transactional.id".into(), "expiry-test".into()),
            ("transaction.timeout.ms".into(), "1000".into()),
        ]);
        let mut p = EventProducer::new(settings).expect("producer");
        p.init_transactions(Duration::from_secs(10)).expect("init");
        let none = TopicPartitionList::new();
        p.begin_transaction().expect("begin");
        p.send("t", b"k", b"young").expect("send");
        p.commit_transaction(&none, None, Duration::from_secs(10))
            .expect("a young transaction commits");
        p.begin_transaction().expect("begin");
        p.send("t", b"k", b"old").expect("send");
        std::thread::sleep(Duration::from_millis(1200));
        let e = p
            .commit_transaction(&none, None, Duration::from_secs(10))
            .expect_err("past its timeout");
        assert!(
            matches!(e, ProduceError::TransactionExpired { .. }) && e.is_abortable(),
            "{e}"
        );
        p.abort_transaction(Duration::from_secs(10)).expect("abort");
        p.begin_transaction().expect("begin");
        p.send("t", b"k", b"next").expect("send");
        p.commit_transaction(&none, None, Duration::from_secs(10))
            .expect("the next one commits");
    }

    /// An abort that cannot complete (the coordinator answers every EndTxn with a retriable
    /// error until the deadline) leaves the producer in the middle of its abort; renewed, a
    /// new client under the same id starts the next transaction and commits it.
    #[test]
    fn a_producer_whose_abort_times_out_is_renewed_and_commits_again() {
        let (cluster, mut p) = in_a_transaction("renew-test", 1);
        let busy = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS; 500];
        cluster.request_errors(RDKafkaApiKey::EndTxn, &busy);
        let e = p
            .abort_transaction(Duration::from_secs(2))
            .expect_err("the abort times out");
        assert!(!matches!(e, ProduceError::Fatal { .. }), "{e}");
        // The old client cannot begin anew while its abort is unfinished.
        assert!(p.begin_transaction().is_err());
        cluster.clear_request_errors(RDKafkaApiKey::EndTxn);
        p.renew(Duration::from_secs(10)).expect("renewed");
        assert_eq!(p.stats().delivered, 0, "delivery accounting starts over");
        let none = TopicPartitionList::new();
        p.begin_transaction().expect("begin");
        p.send_to_partition("t", 0, b"k", b"after", &[])
            .expect("send");
        p.commit_transaction(&none, None, Duration::from_secs(10))
            .expect("the renewed producer commits");
        assert_eq!(p.stats().delivered, 1);
    }

    /// A mock cluster with topic `t` of `partitions`, and a producer with transactional id
    /// `id` in an open transaction holding one delivered record (partition 0).
    fn in_a_transaction(
        id: &str,
        partitions: i32,
    ) -> (MockCluster<'static, DefaultProducerContext>, EventProducer) {
        let cluster: MockCluster<'static, DefaultProducerContext> =
            MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", partitions, 1).expect("topic");
        let mut settings = ProducerSettings::new(cluster.bootstrap_servers().as_str());
        settings
            .properties
            .push(("transactional.id".into(), id.into()));
        let mut p = EventProducer::new(settings).expect("producer");
        p.init_transactions(Duration::from_secs(10)).expect("init");
        p.begin_transaction().expect("begin");
        p.send_to_partition("t", 0, b"k", b"before", &[])
            .expect("send");
        p.flush(Duration::from_secs(10)).expect("delivered");
        (cluster, p)
    }

    /// A producer fenced by a newer one with the same `transactional.id`: its abort and its
    /// flush return the fatal error at once instead of waiting up to their timeout for records
    /// it will never deliver (the service aborts with a 30 s deadline).
    #[test]
    fn a_fenced_producer_aborts_at_once_with_the_fatal_error() {
        let (cluster, mut old) = in_a_transaction("fence-test", 2);
        // The producer sends on, to a partition new to its transaction: the coordinator
        // refuses to add it as fenced (`PRODUCER_FENCED`, what tansu answers once another
        // instance initialised the id, see the failover zombie test; the mock cluster itself
        // does not fence a stale producer: measured, no fatal error within 10 s).
        cluster.request_errors(
            RDKafkaApiKey::AddPartitionsToTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        let _ = old.send_to_partition("t", 1, b"k", b"after", &[]);
        let seen = Instant::now();
        while old.fatal().is_none() {
            assert!(
                seen.elapsed() < Duration::from_secs(10),
                "the old producer never learnt it was fenced"
            );
            old.poll(Duration::from_millis(10));
        }
        let timeout = Duration::from_secs(30);
        let started = Instant::now();
        let e = old.abort_transaction(timeout).expect_err("fenced");
        let took = started.elapsed();
        assert!(matches!(e, ProduceError::Fatal { .. }), "{e}");
        assert!(!e.is_abortable(), "{e}");
        assert!(e.to_string().contains("fenced"), "{e}");
        assert!(
            took < Duration::from_secs(1),
            "the abort of a fenced producer took {took:?} (timeout {timeout:?})"
        );
        // Flushing does not wait either, for whatever it still holds.
        let started = Instant::now();
        let e = old.flush(timeout).expect_err("fenced");
        assert!(matches!(e, ProduceError::Fatal { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// The fence reaching the producer first on a ProduceRequest: librdkafka reports
    /// `PRODUCER_FENCED` there as an abortable transaction error, not a fatal one, and its
    /// abort then tries to bump the epoch of an id another instance owns, until its deadline
    /// (30.3 s in the zombie test on tansu). The producer takes the fenced delivery as fatal:
    /// the abort returns the fence at once.
    #[test]
    fn a_fence_on_a_produce_request_is_fatal_too() {
        let (cluster, mut old) = in_a_transaction("produce-fence-test", 1);
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        old.send_to_partition("t", 0, b"k", b"after", &[])
            .expect("send");
        let e = old.flush(Duration::from_secs(10)).expect_err("fenced");
        assert!(matches!(e, ProduceError::Fatal { .. }), "{e}");
        assert!(e.to_string().contains("fenced"), "{e}");
        let timeout = Duration::from_secs(30);
        let started = Instant::now();
        let e = old.abort_transaction(timeout).expect_err("fenced");
        let took = started.elapsed();
        assert!(matches!(e, ProduceError::Fatal { .. }), "{e}");
        assert!(!e.is_abortable(), "{e}");
        assert!(
            took < Duration::from_secs(1),
            "the abort of a fenced producer took {took:?} (timeout {timeout:?})"
        );
    }
}
