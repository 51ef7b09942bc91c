//! Helpers shared by the Kafka integration tests (`tests/kafka.rs`, as `mod support;`).
//!
//! - [`broker`]: a tansu broker per test on its own loopback port, killed when dropped.
//! - [`consume`]: reading topics back by counting records (tansu's high watermarks are wrong).
//! - [`proxy`]: a Kafka-protocol proxy that can take one topic's leaders away.
//! - [`service`]: `stockwatch run` / `simulate` as child processes, HTTP probes, free ports.

pub mod broker;
pub mod consume;
pub mod proxy;
pub mod service;

use std::sync::{Mutex, MutexGuard};

/// Held for the whole of each Kafka test: they run one at a time. Each runs a broker (or the
/// mock cluster), up to three service instances and a producer; two of them at once on a
/// 2-core machine starve each other's timers (sessions, transaction and poll deadlines). The
/// failures of clean-clone CI runs with two at once (a restore that ended before the
/// rebalance meant to interrupt it; the test broker refusing a transaction of an instance
/// starved of CPU) came with that load. The other test binaries run their tests in parallel.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding it poisons it; the next one runs all the same.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
