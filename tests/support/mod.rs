//! Helpers shared by the Kafka integration tests (`tests/kafka.rs`, as `mod support;`).
//!
//! - [`broker`]: a tansu broker per test on its own loopback port, killed when dropped.
//! - [`consume`]: reading topics back by counting records (tansu's high watermarks are wrong).
//! - [`service`]: `stockwatch run` / `simulate` as child processes, HTTP probes, free ports.

pub mod broker;
pub mod consume;
pub mod service;
