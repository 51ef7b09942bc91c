//! The service seen from outside, against Kafka: a real Kafka-protocol broker (tansu, one per
//! test on its own loopback port) or librdkafka's mock cluster (`outage`). One test binary for
//! all of them, so a change to the library links one Kafka test executable instead of six.
//!
//! - `service`: alerts equal `replay`, bad records dead-lettered once, SIGTERM, restart.
//! - `failover`: instances killed, rescaled and restarted under load; the chaos test.
//! - `failpoints`: crashes at named points (commit, restore, dead letters), in both delivery
//!   modes; the restart's alerts, dead letters and changelog state equal `replay`'s.
//! - `outage`: broker down, request errors, latency, a full producer queue (mock cluster).
//! - `alerts_topic`: the alerts topic without a leader for a minute (a Kafka-protocol proxy in
//!   front of the broker), both delivery modes; deleted and recreated under a running
//!   instance, ignored (tansu acknowledges and drops records produced to a deleted topic).
//! - `bad_input`: the bad-input catalogue through the service.
//! - `simulate`: `simulate --bootstrap-servers` writes what `simulate --out` writes.
//! - `load_positions`: `load-positions --bootstrap-servers` writes what `--out` writes.
//! - `master_data`: the locations and items tables read before the inputs, followed live,
//!   bad records dead-lettered.
//! - `security`: the SASL password never leaks; the HTTP port is hardened.
//! - `open_alerts`: the open-alerts table equals `replay`'s after a restart; the reference
//!   subscriber (examples/subscriber.rs) bootstraps from it.
//! - `changelog_adversity`: expired offsets, a deleted and a truncated changelog are reported
//!   (`/readyz`, metric, log), the partition waits, and `reset-state` resolves each.
//! - `warm_start`: the service started from a model file publishes the warm replay's alerts.
//!
//! The tests run one at a time (`support::one_at_a_time`): each runs a broker and service
//! processes of its own, and two at once on a small machine starve each other's timers.
//!
//! Run one group with a filter: `cargo test --test kafka failover::`.

mod support;

mod kafka {
    mod alerts_topic;
    mod bad_input;
    mod changelog_adversity;
    mod failover;
    mod failpoints;
    mod load_positions;
    mod master_data;
    mod open_alerts;
    mod outage;
    mod security;
    mod service;
    mod simulate;
    mod warm_start;
}
