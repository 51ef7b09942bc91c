//! Sinks: where alerts and rejections go. [`file`] writes JSON lines (replay, evaluation);
//! [`kafka`] produces keyed records to Kafka topics (the simulator's input topics now; alerts and
//! dead letters with the service).

pub mod file;
pub mod kafka;
