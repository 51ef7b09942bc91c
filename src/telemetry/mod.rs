//! Telemetry: the Prometheus metrics, the health and readiness state, and the HTTP endpoints
//! that expose them (plus the per-key state queries).
//!
//! - [`Metrics`] owns a private registry and typed handles, registered once; every bounded
//!   label value (event type, reject reason, alert kind × status, …) is resolved at
//!   construction, so the service increments plain atomics once per batch. [`CATALOGUE`] lists
//!   every metric by name, type and label names; tests (and later the dashboard and the alert
//!   rules) check names against it. No label ever carries a SKU, a location or a key.
//! - [`events`]: named internal events; each writes its log line and moves its metrics
//!   together.
//! - [`Health`] is what `/readyz` reports: assignment, partitions still restoring, draining and
//!   the delivery guarantee. The service sets it; the server only reads it.
//! - [`RollingAuc`] (defined in [`crate::model`], beside the other model-quality measures) is
//!   the windowed prequential ROC AUC behind `stockwatch_model_rolling_auc`; re-exported here.
//! - [`serve`] runs the HTTP server (`/metrics`, `/healthz`, `/readyz`, `/v1/state/…`,
//!   `/v1/risks/top`): GET only, loopback by default (the address comes from the config),
//!   header-read and request timeouts, a concurrency limit and a connection cap. Key lookups go
//!   through the [`StateQuery`] trait, which the service implements over its shards.

mod catalogue;
pub mod events;
mod health;
mod http;
mod metrics;

pub use crate::model::RollingAuc;
pub use catalogue::{MetricKind, MetricSpec, CATALOGUE, METRICS};
pub use health::{Delivery, Health, InconsistentPartition, Readiness};
pub use http::{
    serve, serve_with, AppState, HttpLimits, HttpServer, OpenAlertFilter, StateQuery,
    DEFAULT_OPEN_LIMIT, DEFAULT_TOP_N, MAX_OPEN_LIMIT, MAX_TOP_N,
};
pub use metrics::{
    LatencyStep, Metrics, PartitionLag, Stage, TxOutcome, CONSUMED_TYPES, INCONSISTENCY_REASONS,
    STATE_PARTS, UNKNOWN_TYPE,
};

use std::net::SocketAddr;

/// What can go wrong in telemetry. Nothing here is on the event path: registration happens
/// once at startup, binding once, encoding once per scrape.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A metric could not be created or registered (a programming error the catalogue test
    /// catches; also an invalid label value such as a non-UTF-8-safe model version).
    #[error("cannot register metric: {0}")]
    Register(#[source] prometheus::Error),
    /// The registry could not be encoded in the text exposition format.
    #[error("cannot encode metrics: {0}")]
    Encode(#[source] prometheus::Error),
    /// The HTTP listener could not be bound (address in use, not permitted, …).
    #[error("cannot bind the telemetry HTTP server to {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server task ended abnormally (panicked or was aborted).
    #[error("the telemetry HTTP server task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}
