//! Sources of raw messages. [`file`]: JSON-lines event files (optionally gzip), read in
//! micro-batches without a per-line allocation. The Kafka consumer arrives with the service.

pub mod consumer_error;
pub mod file;
pub mod kafka;
