//! Why producing failed, and how the caller tells waiting from aborting.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use thiserror::Error;

/// Why producing failed. Every variant names the topic or the setting involved. The messages
/// include librdkafka's error text (so one line says everything in a log); they have no
/// `source()`, so error-chain printers do not repeat it.
#[derive(Debug, Error)]
pub enum ProduceError {
    /// librdkafka refused the configuration (an unknown property or a bad value).
    #[error("invalid producer configuration: {0}")]
    Config(KafkaError),
    /// The linked librdkafka cannot speak the configured security protocol or mechanism.
    #[error("cannot create the Kafka producer: {0}")]
    Unsupported(String),
    /// An admin request failed as a whole (e.g. no broker reachable before the timeout).
    #[error("admin request failed: {error}{}", last_error_suffix(.last_broker_error))]
    Admin {
        /// The error.
        error: KafkaError,
        /// The last error librdkafka reported about the connection, if any.
        last_broker_error: Option<String>,
    },
    /// The cluster refused to create a topic.
    #[error("cannot create topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// A topic exists with another partition count: records would be routed to other
    /// partitions than the contract expects (and the inputs would not be co-partitioned).
    #[error("topic {topic} has {actual} partitions, expected {expected}; delete it or use its partition count")]
    PartitionCount {
        /// The topic.
        topic: String,
        /// Partitions it has.
        actual: usize,
        /// Partitions asked for.
        expected: usize,
    },
    /// A topic did not show up in the cluster's metadata (with a leader for every partition)
    /// before the deadline.
    #[error("topic {topic} is not available after {waited:?}: {detail}")]
    TopicUnavailable {
        /// The topic.
        topic: String,
        /// How long we waited.
        waited: Duration,
        /// The last metadata error or what was missing.
        detail: String,
    },
    /// A record could not be enqueued (too large, unknown topic, …).
    #[error("cannot produce to {topic}: {error}")]
    Send {
        /// The topic.
        topic: String,
        /// The error.
        error: KafkaError,
    },
    /// `exactly_once`: the transaction was open longer than its `transaction.timeout.ms` when
    /// it was to be committed (the process stalled or was frozen): aborted instead.
    #[error("transaction open for {age:?}, past transaction.timeout.ms ({limit:?}): not committed (a broker aborts it by then, and the partitions' next owner may have redone its batches)")]
    TransactionExpired {
        /// How long it had been open.
        age: Duration,
        /// `transaction.timeout.ms`.
        limit: Duration,
    },
    /// Records were enqueued but not delivered (librdkafka gave up after its retries).
    #[error("{failed} record(s) not delivered; first error: {first}")]
    Delivery {
        /// Records that failed.
        failed: u64,
        /// The first delivery error.
        first: String,
    },
    /// The idempotent producer hit a fatal error (e.g. a sequence gap): it cannot go on
    /// without risking duplicates or reordering.
    #[error("fatal producer error {code}: {reason}{}", fatal_suffix(*.code))]
    Fatal {
        /// The error code.
        code: RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
    /// A transaction call failed. `abortable`: abort the transaction and go on from the last
    /// committed state; otherwise the producer is fenced or broken and the process must exit.
    #[error("transaction {op} failed: {error}")]
    Transaction {
        /// `init`, `begin`, `send_offsets`, `commit` or `abort`.
        op: &'static str,
        /// The error.
        error: KafkaError,
        /// The transaction can be aborted and the work redone.
        abortable: bool,
        /// The same call may simply be made again (e.g. it timed out: brokers unreachable).
        retriable: bool,
    },
    /// `exactly_once`: a transaction's commit timed out and was resumed this many times
    /// without an answer: the process exits (the broker aborts the transaction).
    #[error("the transaction's commit timed out {attempts} times in a row; giving up")]
    CommitStuck {
        /// Resumed commit calls.
        attempts: u32,
    },
    /// Records were still in flight when the flush deadline passed.
    #[error("{in_flight} record(s) still undelivered after {deadline:?}{}", last_error_suffix(.last_broker_error))]
    FlushTimeout {
        /// Records enqueued or in flight.
        in_flight: i32,
        /// The deadline.
        deadline: Duration,
        /// The last error librdkafka reported about the connection, if any.
        last_broker_error: Option<String>,
    },
}

impl ProduceError {
    /// The brokers did not answer in time (unreachable or stalled): waiting longer is the
    /// remedy, not giving up.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ProduceError::FlushTimeout { .. }
                | ProduceError::Transaction {
                    retriable: true,
                    ..
                }
        )
    }

    /// What failed, without counts or durations that differ between two occurrences of the
    /// same failure: two aborts with the same cause are the same failure repeating.
    pub fn cause(&self) -> String {
        match self {
            ProduceError::Delivery { first, .. } => format!("delivery failed: {first}"),
            ProduceError::TransactionExpired { limit, .. } => {
                format!("transaction open past transaction.timeout.ms ({limit:?})")
            }
            ProduceError::FlushTimeout {
                last_broker_error, ..
            } => format!(
                "records undelivered at the flush deadline{}",
                last_error_suffix(last_broker_error)
            ),
            other => other.to_string(),
        }
    }

    /// A transaction error after which aborting and redoing the batch is the remedy (a
    /// delivery failure inside a transaction is one too).
    pub fn is_abortable(&self) -> bool {
        matches!(
            self,
            ProduceError::Transaction {
                abortable: true,
                ..
            } | ProduceError::Delivery { .. }
                | ProduceError::FlushTimeout { .. }
                | ProduceError::TransactionExpired { .. }
                // A transaction in its abortable-error state refuses records with `State`.
                | ProduceError::Send {
                    error: KafkaError::MessageProduction(RDKafkaErrorCode::State),
                    ..
                }
        )
    }
}

/// Appended to a fenced producer's fatal error: what it means for the process.
const FENCED: &str = " (fenced: a newer instance initialised this transactional id and owns \
     its partitions; this one stops without aborting or flushing)";

/// What a fatal error means for the process, where the code says more than librdkafka's text.
fn fatal_suffix(code: RDKafkaErrorCode) -> &'static str {
    match code {
        RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced => FENCED,
        _ => "",
    }
}

fn last_error_suffix(e: &Option<String>) -> String {
    e.as_ref()
        .map(|e| format!(" (last broker error: {e})"))
        .unwrap_or_default()
}
