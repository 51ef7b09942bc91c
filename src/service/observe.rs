//! What the service tells the outside: Prometheus metrics (reported per batch, as deltas of the
//! shards' cumulative counters), readiness, and answers to state queries. Queries arrive from
//! the HTTP threads over a channel and are answered by the service loop between batches, so
//! shards stay single-owner (no lock on the hot path).

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::Shard;
use crate::event::EventType;
use crate::model::learner::MODEL_VERSION;
use crate::model::ModelRole;
use crate::telemetry::{Delivery, Health, Metrics, OpenAlertFilter, StateQuery, TelemetryError};

/// A question for the service loop.
#[derive(Debug)]
pub enum Query {
    /// The view of one key.
    Key(String, String, SyncSender<Option<serde_json::Value>>),
    /// The `n` riskiest keys.
    Top(usize, SyncSender<Vec<serde_json::Value>>),
    /// The open alerts passing a filter.
    Open(OpenAlertFilter, SyncSender<Vec<serde_json::Value>>),
}

/// How long an HTTP query waits for the loop (a batch takes far less).
const QUERY_WAIT: Duration = Duration::from_secs(5);

/// The HTTP side of the query channel.
#[derive(Debug)]
pub struct ChannelQuery {
    tx: Mutex<Sender<Query>>,
}

impl StateQuery for ChannelQuery {
    fn key(&self, location: &str, sku: &str) -> Option<serde_json::Value> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        self.tx
            .lock()
            .ok()?
            .send(Query::Key(location.to_owned(), sku.to_owned(), rtx))
            .ok()?;
        rrx.recv_timeout(QUERY_WAIT).ok().flatten()
    }

    fn top(&self, n: usize) -> Vec<serde_json::Value> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let sent = self
            .tx
            .lock()
            .ok()
            .and_then(|tx| tx.send(Query::Top(n, rtx)).ok());
        if sent.is_none() {
            return Vec::new();
        }
        rrx.recv_timeout(QUERY_WAIT).unwrap_or_default()
    }

    fn open_alerts(&self, filter: &OpenAlertFilter) -> Vec<serde_json::Value> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let sent = self
            .tx
            .lock()
            .ok()
            .and_then(|tx| tx.send(Query::Open(filter.clone(), rtx)).ok());
        if sent.is_none() {
            return Vec::new();
        }
        rrx.recv_timeout(QUERY_WAIT).unwrap_or_default()
    }
}

/// How often the rolling AUC gauge is recomputed.
const AUC_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The service's telemetry handles.
pub struct Observe {
    /// Metrics registry and handles.
    pub metrics: Arc<Metrics>,
    /// Readiness.
    pub health: Arc<Health>,
    queries: Receiver<Query>,
    last_applied: [u64; EventType::COUNT],
    last_alerts: [[u64; 3]; 2],
    last_updates: u64,
    /// Counts below the book and phantom units, as last reported.
    last_phantom: (u64, f64),
    /// When the rolling AUC was last computed (it sorts a window of labels: not every batch).
    auc_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for Observe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

impl Observe {
    /// New handles, and the query endpoint to give the HTTP server.
    pub fn new() -> Result<(Observe, Arc<ChannelQuery>), TelemetryError> {
        let (tx, rx) = mpsc::channel();
        Ok((
            Observe {
                metrics: Arc::new(Metrics::new(MODEL_VERSION)?),
                health: Arc::new(Health::new(Delivery::AtLeastOnce)),
                queries: rx,
                last_applied: [0; EventType::COUNT],
                last_alerts: [[0; 3]; 2],
                last_updates: 0,
                last_phantom: (0, 0.0),
                auc_at: None,
            },
            Arc::new(ChannelQuery { tx: Mutex::new(tx) }),
        ))
    }

    /// Answers waiting queries from the shards.
    pub fn answer<'a>(&self, shards: impl Iterator<Item = &'a Shard> + Clone) {
        while let Ok(q) = self.queries.try_recv() {
            match q {
                Query::Key(loc, sku, reply) => {
                    let v = shards
                        .clone()
                        .find_map(|s| s.view(&loc, &sku))
                        .and_then(|v| serde_json::to_value(v).ok());
                    let _ = reply.send(v);
                }
                Query::Top(n, reply) => {
                    let mut all: Vec<_> = shards.clone().flat_map(|s| s.top_risks(n)).collect();
                    all.sort_by(|a, b| b.risk.total_cmp(&a.risk));
                    all.truncate(n);
                    let _ = reply.send(
                        all.into_iter()
                            .filter_map(|v| serde_json::to_value(v).ok())
                            .collect(),
                    );
                }
                Query::Open(f, reply) => {
                    let mut all: Vec<_> = shards
                        .clone()
                        .flat_map(|s| s.open_alert_views(f.location.as_deref(), f.kind, f.limit))
                        .collect();
                    all.sort_by(|a, b| {
                        (&a.location, &a.sku, a.kind).cmp(&(&b.location, &b.sku, b.kind))
                    });
                    all.truncate(f.limit);
                    let _ = reply.send(
                        all.into_iter()
                            .filter_map(|v| serde_json::to_value(v).ok())
                            .collect(),
                    );
                }
            }
        }
    }

    /// Per-batch report (rejections are [`crate::telemetry::events::Rejected`]): counters as deltas since the last report (a rebalance that drops
    /// shards makes the sums fall; the deltas then stay at zero until they pass the old sums
    /// again), gauges as they are now.
    pub fn report<'a>(
        &mut self,
        shards: impl Iterator<Item = &'a Shard> + Clone,
        consumed: [u64; EventType::COUNT + 1],
        messages: usize,
        elapsed: Duration,
    ) {
        let m = &self.metrics;
        m.consumed(consumed);
        m.batch(messages, elapsed);
        let (mut applied, mut alerts, mut updates) =
            ([0u64; EventType::COUNT], [[0u64; 3]; 2], 0u64);
        let (mut keys, mut pending, mut backlog) = (0u64, 0u64, 0u64);
        let mut phantom = (0u64, 0.0f64);
        let (mut bytes, mut brier, mut n) = ((0, 0, 0), [0.0; 2], [0.0; 2]);
        let mut challenger_runs = false;
        let shards_for_auc = shards.clone();
        for s in shards {
            let c = s.counters();
            for (a, v) in applied.iter_mut().zip(c.applied) {
                *a += v;
            }
            for (row, src) in alerts.iter_mut().zip(c.alerts) {
                for (a, v) in row.iter_mut().zip(src) {
                    *a += v;
                }
            }
            updates += s.model().updates();
            phantom.0 += c.counts_below_book;
            phantom.1 += c.phantom_units;
            keys += s.keys() as u64;
            pending += s.pending_events() as u64;
            backlog += s.label_backlog() as u64;
            let b = s.state_bytes();
            bytes = (bytes.0 + b.0, bytes.1 + b.1, bytes.2 + b.2);
            let challenger = s.challenger().map(|c| *c.quality());
            challenger_runs |= challenger.is_some();
            for (i, q) in [Some(*s.quality()), challenger].into_iter().enumerate() {
                if let Some(q) = q.filter(|q| q.labels > 0) {
                    brier[i] += q.brier;
                    n[i] += 1.0;
                }
            }
        }
        let mut d_applied = [0u64; EventType::COUNT];
        for i in 0..EventType::COUNT {
            d_applied[i] = applied[i].saturating_sub(self.last_applied[i]);
        }
        let mut d_alerts = [[0u64; 3]; 2];
        for (k, row) in d_alerts.iter_mut().enumerate() {
            for (st, v) in row.iter_mut().enumerate() {
                *v = alerts[k][st].saturating_sub(self.last_alerts[k][st]);
            }
        }
        m.applied(d_applied);
        m.alerts(&d_alerts);
        // Each key alternates raised → resolved per kind, so open = raised − resolved.
        for (kind, k) in [
            (crate::alert::AlertKind::StockoutRisk, 0),
            (crate::alert::AlertKind::Stockout, 1),
        ] {
            m.open_alerts(kind, alerts[k][0].saturating_sub(alerts[k][2]));
        }
        m.model_updates(updates.saturating_sub(self.last_updates));
        m.phantom_inventory(
            phantom.0.saturating_sub(self.last_phantom.0),
            (phantom.1 - self.last_phantom.1).max(0.0),
        );
        self.last_phantom = phantom;
        (self.last_applied, self.last_alerts, self.last_updates) = (applied, alerts, updates);
        m.tracked_keys(keys);
        m.pending_events(pending);
        m.label_backlog(backlog);
        m.state_bytes(bytes);
        // The challenger's series exist while one runs (NaN until its labels mature).
        let roles = if challenger_runs { 2 } else { 1 };
        for (i, role) in ModelRole::ALL.into_iter().enumerate().take(roles) {
            if n[i] > 0.0 {
                m.model_brier(role, brier[i] / n[i]);
            } else if role == ModelRole::Challenger {
                m.model_brier(role, f64::NAN);
            }
        }
        // Rolling prequential ROC AUC: the label-weighted mean of the shards' windows, at most
        // every few seconds.
        if self.auc_at.is_none_or(|t| t.elapsed() >= AUC_EVERY) {
            self.auc_at = Some(std::time::Instant::now());
            let (mut sum, mut weight) = ([0.0; 2], [0.0; 2]);
            for s in shards_for_auc {
                let challenger = s
                    .challenger_rolling_auc()
                    .zip(s.challenger().map(|c| c.quality().labels));
                let champion = s.rolling_auc().map(|a| (a, s.quality().labels));
                for (i, auc) in [champion, challenger].into_iter().enumerate() {
                    if let Some((auc, labels)) = auc {
                        sum[i] += auc * labels as f64;
                        weight[i] += labels as f64;
                    }
                }
            }
            for (i, role) in ModelRole::ALL.into_iter().enumerate().take(roles) {
                m.model_auc(role, (weight[i] > 0.0).then(|| sum[i] / weight[i]));
            }
        }
    }
}
