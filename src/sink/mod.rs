//! Sinks: where alerts and rejections go. [`file`] writes JSON lines (replay, evaluation);
//! [`kafka`] produces keyed records to Kafka topics (the simulator's input topics now; alerts and
//! dead letters with the service); [`record`] encodes the service's alert and dead-letter
//! records (CloudEvents and Kafka Connect headers).

pub mod file;
pub mod kafka;
pub mod record;
