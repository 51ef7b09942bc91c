//! Sinks: where alerts and rejections go. [`file`] writes JSON lines (replay, evaluation); the
//! Kafka producer (alerts topic, dead-letter topic) arrives with the service.

pub mod file;
