//! A keyed-record producer for Kafka topics: create the topics, send with backpressure, flush
//! with a deadline, and account for every delivery.
//!
//! It wraps librdkafka's [`BaseProducer`]: `send` only enqueues, and delivery reports are served
//! by `poll`, which `send` calls itself while the local queue is full. So the caller's thread
//! is the only one that touches the producer, memory stays bounded by librdkafka's queue
//! limits, and a delivery failure surfaces on the next `send` or at `flush` — nothing is lost
//! without an error.
//!
//! Records are partitioned as Kafka's Java clients do (`partitioner=murmur2_random`), so the
//! partition of a keyed record is [`crate::partition::partition_for_key`] of its key, the
//! input contract (docs/architecture.md#partitioning). The producer is idempotent: its retries
//! neither duplicate nor reorder records within a partition.
//!
//! **Checkpoints** let a caller act once everything sent before a point is acknowledged,
//! without waiting for it ([`EventProducer::checkpoint`], [`EventProducer::acknowledged`]):
//! records belong to *generations*, a checkpoint closes the current one, and a counter of
//! records in flight per generation (in the delivery callback) says when a closed generation
//! is done. The service commits its input offsets that way (pipelined, instead of a blocking
//! flush per commit).

mod admin;
mod error;
mod producer;
mod transaction;

pub use error::ProduceError;
pub use producer::{DeliveryStats, EventProducer, ProducerSettings, TopicStatus, TAG_BITS};
