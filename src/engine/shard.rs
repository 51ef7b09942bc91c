//! One shard: the state, event order, model replica and alert state of one partition number.
//! What is persisted of it is its [`ShardState`]; the shard adds the scratch buffers, the
//! early-alert book and the mode switches (recording, change tracking, early alerts).
//!
//! `ingest` admits a decoded batch into the reorder buffer (late and duplicate events become
//! rejections); `advance` applies every event the watermark has passed, in event-time order:
//! mature labels → apply to state → features → score → label snapshot → alert policy. Nothing on
//! that path allocates in steady state except when an alert is emitted.

use arrow::array::Array;

use crate::alert::{self, Alert, AlertKind, AlertStatus, Transition};
use crate::decode::DecodedBatch;
use crate::event::EventType;
use crate::master::{LocalClock, MasterData};
use crate::model::features::{self, Features, NF};
use crate::model::labels::{self, RollingQuality, Snapshot};
use crate::model::RiskModel;
use crate::model::RollingAuc;
use crate::reject::{RejectReason, Rejection};
use crate::state::changelog::ChangedKeys;
use crate::state::columns::{flag, hour_of, KeyRow, HOUR_MS, NO_HOUR};
use crate::state::inbound::{KeySchedule, VecSchedule};
use crate::state::keys::KeyDict;
use crate::state::order::{id_hash, PendingEvent, Refused};
use crate::state::{ShardCounters, ShardState};

use super::early::{EarlyBook, Shadows};
use super::pool::Pools;

mod alerts;
mod view;

use super::EngineConfig;
pub use view::{KeyView, OpenAlertView};

/// Most alerts a shard keeps for reuse (see [`Shard::recycle_alerts`]; ~0.5 KiB each).
pub const MAX_SPARE_ALERTS: usize = 4096;

/// One partition's worth of state and model: a [`ShardState`] plus what is not persisted.
#[derive(Debug)]
pub struct Shard {
    cfg: EngineConfig,
    /// What is persisted (snapshots, changelog).
    pub(crate) state: ShardState,
    /// Windowed prequential ROC AUC (telemetry only: not in snapshots, empty after a restore).
    rolling_auc: RollingAuc,
    /// The challenger's windowed prequential ROC AUC (telemetry only, as `rolling_auc`).
    challenger_auc: RollingAuc,
    /// The challenger's risk of each key at its last scoring, by row (NaN: not scored since
    /// the shard started or was restored). Not persisted; empty without a challenger.
    challenger_risks: Vec<f32>,
    x: Features,
    hashes: Vec<u64>,
    id_hashes: Vec<u64>,
    track_applied: bool,
    applied: Vec<u64>,
    record_scores: bool,
    scores: Vec<ScoreRecord>,
    /// Early alerts not yet taken (`alerts.early`).
    early_out: Vec<Alert>,
    /// Alerts handed back once published, rebuilt in place by the next ones (see
    /// [`Shard::recycle_alerts`]).
    spare_alerts: Vec<Alert>,
    /// Open and cooling early alerts.
    early: EarlyBook,
    /// Keys with events waiting for the watermark, as early alerts see them.
    shadows: Shadows,
    /// Scratch of [`Shard::speculate`]: the key's shipments, and the features.
    spec_sched: VecSchedule,
    spec_row: KeyRow,
    spec_x: Features,
    /// Events accepted by the current ingest, to speculate on once it is done (see
    /// [`Shard::ingest_rows`]).
    spec_queue: Vec<PendingEvent>,
    /// Processing clock stamping early alerts (`None`: event time).
    processing_ms: Option<i64>,
    /// Early alerts for the next ingests (see [`Shard::set_early_now`]).
    early_now: bool,
    /// Keys changed since the changelog last took them.
    pub(crate) changed: ChangedKeys,
    /// Master data (locations' time zones); empty: every location is UTC.
    master: std::sync::Arc<MasterData>,
    /// Per location, the cached UTC offset.
    clock: LocalClock,
    /// Pooled state of the shard's locations and SKUs (derived from the rows, not persisted:
    /// see [`super::pool`]).
    pools: Pools,
}

/// One scoring of one key, recorded for offline evaluation (see [`Shard::record_scores`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRecord {
    /// Key row.
    pub row: u32,
    /// Event time of the event that triggered the scoring, ms.
    pub time_ms: i64,
    /// Type of that event.
    pub kind: EventType,
    /// A stockout episode is open after the event.
    pub in_stockout: bool,
    /// The model's risk.
    pub risk: f32,
    /// The analytic prior (None when on hand is unknown).
    pub prior: Option<f32>,
    /// Days of cover (None when on hand is unknown).
    pub days_of_cover: Option<f32>,
    /// The features the risk was computed from.
    pub x: Features,
}

impl Shard {
    /// An empty shard.
    pub fn new(cfg: EngineConfig) -> Self {
        Shard::from_state(cfg, ShardState::new(&cfg.state_config()))
    }

    /// A shard over a restored state (fresh scratch, telemetry-only measures empty).
    pub fn from_state(cfg: EngineConfig, state: ShardState) -> Self {
        let pools = Pools::rebuild(
            cfg.model.horizon_hours,
            &state.rows,
            &state.keys,
            &MasterData::default(),
        );
        Shard {
            pools,
            state,
            rolling_auc: RollingAuc::default(),
            challenger_auc: RollingAuc::default(),
            challenger_risks: Vec::new(),
            x: [0.0; NF],
            hashes: Vec::new(),
            id_hashes: Vec::new(),
            track_applied: false,
            applied: Vec::new(),
            record_scores: false,
            scores: Vec::new(),
            early_out: Vec::new(),
            spare_alerts: Vec::new(),
            early: EarlyBook::default(),
            shadows: Shadows::default(),
            spec_sched: VecSchedule::with_capacity(),
            spec_row: KeyRow::default(),
            spec_x: [0.0; NF],
            spec_queue: Vec::new(),
            processing_ms: None,
            early_now: true,
            changed: ChangedKeys::default(),
            master: std::sync::Arc::default(),
            clock: LocalClock::default(),
            cfg,
        }
    }

    /// Uses `master` for the locations' time zones from the next event on (the model's local
    /// hour of day and day of week), and for the SKUs' categories: a changed item table
    /// rebuilds the pools from the rows (see [`super::pool`]).
    pub fn set_master(&mut self, master: std::sync::Arc<MasterData>) {
        if master.items_version() != self.master.items_version() {
            self.pools = self
                .pools
                .recategorised(&self.state.rows, &self.state.keys, &master);
        }
        self.master = master;
    }

    /// The master data in use.
    pub fn master(&self) -> &std::sync::Arc<MasterData> {
        &self.master
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// What is persisted of the shard (see [`crate::state::snapshot`] and
    /// [`crate::state::changelog`]).
    pub fn state(&self) -> &ShardState {
        &self.state
    }

    /// Keys tracked.
    pub fn keys(&self) -> usize {
        self.state.keys.len()
    }

    /// Counters so far.
    pub fn counters(&self) -> &ShardCounters {
        &self.state.counters
    }

    /// Rolling prequential model quality: labels, positives, exponentially weighted Brier score
    /// and log loss over the last ~2000 matured labels.
    pub fn quality(&self) -> &RollingQuality {
        &self.state.quality
    }

    /// Prequential ROC AUC of the risks over the last [`RollingAuc::DEFAULT_WINDOW`] matured
    /// labels (each risk scored before its outcome was known); `None` until both outcomes were
    /// seen. O(window · log window): for a metrics scrape, not per event. Telemetry only: it is
    /// not part of a snapshot and starts empty after a restore.
    pub fn rolling_auc(&self) -> Option<f64> {
        self.rolling_auc.auc()
    }

    /// The challenger replica and its rolling quality (`model.challenger`).
    pub fn challenger(&self) -> Option<&crate::state::shard::Challenger> {
        self.state.challenger()
    }

    /// The challenger's prequential ROC AUC, as [`Shard::rolling_auc`] (over the labels whose
    /// snapshot it scored); `None` without a challenger.
    pub fn challenger_rolling_auc(&self) -> Option<f64> {
        self.state.challenger.as_ref()?;
        self.challenger_auc.auc()
    }

    /// Labels waiting to mature.
    pub fn label_backlog(&self) -> usize {
        self.state.labels.len()
    }

    /// Events waiting for the watermark.
    pub fn pending_events(&self) -> usize {
        self.state.order.pending()
    }

    /// Declares how many inputs feed the shard (one per input topic partition; default 1).
    /// The watermark is the slowest active input's.
    pub fn set_inputs(&mut self, n: usize) {
        self.state.order.set_inputs(n);
    }

    /// Sets the number of inputs keeping the clocks of those it had (a restored shard read
    /// by a build with more input topics).
    pub fn resize_inputs(&mut self, n: usize) {
        self.state.order.resize_inputs(n);
    }

    /// Marks input `input` idle (caught up) or active.
    pub fn set_idle(&mut self, input: usize, idle: bool) {
        self.state.order.set_idle(input, idle);
    }

    /// Max event time of input `input` (`i64::MIN` before its first event) and whether it is
    /// idle; `None` for an unknown input.
    pub fn input_clock(&self, input: usize) -> Option<(i64, bool)> {
        self.state.order.input_clock(input)
    }

    /// Records the source of every applied event, for [`Shard::drain_applied`] (the service
    /// commits offsets from them).
    pub fn track_applied(&mut self, on: bool) {
        self.track_applied = on;
    }

    /// Sources of the events applied since the last call (empty unless tracking).
    pub fn drain_applied(&mut self) -> std::vec::Drain<'_, u64> {
        self.applied.drain(..)
    }

    /// Tracks which keys change (state, reorder buffer, dedupe ids, label snapshots), for the
    /// state changelog ([`crate::state::changelog`]). Off by default.
    pub fn track_changes(&mut self, on: bool) {
        self.changed.track(on);
    }

    /// Keys changed since the changelog last took them.
    pub fn changed_keys(&self) -> usize {
        self.changed.len()
    }

    /// Records every scoring (key, time, features, risk) for [`Shard::drain_scores`]: the
    /// hook of `stockwatch evaluate`, which scores the very same path the service runs. Off by
    /// default (the service never pays for it).
    pub fn record_scores(&mut self, on: bool) {
        self.record_scores = on;
    }

    /// Scorings recorded since the last call (empty unless recording).
    pub fn drain_scores(&mut self) -> std::vec::Drain<'_, ScoreRecord> {
        self.scores.drain(..)
    }

    /// The row of a key, if tracked.
    pub fn row_of(&self, location: &str, sku: &str) -> Option<u32> {
        self.state.keys.get(location, sku)
    }

    /// Event ids remembered for dedupe.
    pub fn remembered_ids(&self) -> usize {
        self.state.order.remembered()
    }

    /// Current watermark, ms.
    pub fn watermark_ms(&self) -> i64 {
        self.state.order.watermark_ms()
    }

    /// The model replica.
    pub fn model(&self) -> &dyn RiskModel {
        self.state.model.as_ref()
    }

    /// Heap bytes of the state, split into (per-key: rows, index and the early alerts'
    /// per-row shadow slots; key strings; shard-level structures: inbound table, reorder
    /// buffer and dedupe, pending labels, shadows).
    pub fn state_bytes(&self) -> (usize, usize, usize) {
        (
            self.state.rows.heap_bytes()
                + self.state.keys.index_bytes()
                + self.shadows.slot_bytes(),
            self.state.keys.string_bytes(),
            self.state.inbound.heap_bytes()
                + self.state.order.heap_bytes()
                + self.state.labels.heap_bytes()
                + self.shadows.heap_bytes(),
        )
    }

    /// Heap bytes of the pooled state (per location and per SKU, apart from the keys': see
    /// [`super::pool`]).
    pub fn pool_bytes(&self) -> usize {
        self.pools.heap_bytes()
    }

    /// Locations, SKUs and categories pooled.
    pub fn pool_groups(&self) -> (usize, usize, usize) {
        self.pools.groups_len()
    }

    /// The pools (tests compare them).
    #[cfg(test)]
    pub(crate) fn pools(&self) -> &Pools {
        &self.pools
    }

    /// Admits a decoded batch into the reorder buffer. `source_of(index)` gives the opaque
    /// source position of the batch's message `index` (carried through to the pending event).
    pub fn ingest(
        &mut self,
        batch: &DecodedBatch,
        source_of: impl Fn(u32) -> u64,
        rejects: &mut Vec<Rejection>,
    ) {
        let rows: Vec<u32> = (0..batch.len() as u32).collect();
        self.ingest_rows(batch, &rows, 0, source_of, rejects);
    }

    /// Like [`Shard::ingest`], for the given rows of the batch only (routing), read from input
    /// `input` of the shard (see [`Shard::set_inputs`]).
    pub fn ingest_rows(
        &mut self,
        batch: &DecodedBatch,
        rows: &[u32],
        input: usize,
        source_of: impl Fn(u32) -> u64,
        rejects: &mut Vec<Rejection>,
    ) {
        let c = batch.columns();
        // Key lookups over a large dictionary are chains of cache misses, and so is the dedupe
        // insert; hash every row first, then prefetch each stage of the lookup, and the dedupe
        // slot, a few rows ahead.
        self.hashes.clear();
        self.hashes.extend(rows.iter().map(|&i| {
            let i = i as usize;
            KeyDict::hash(c.location.value(i), c.sku.value(i))
        }));
        self.id_hashes.clear();
        self.id_hashes
            .extend(rows.iter().map(|&i| id_hash(c.event_id.value(i as usize))));
        let speculate = self.cfg.alerts.early && self.early_now;
        self.spec_queue.clear();
        for (n, &i) in rows.iter().enumerate() {
            if let Some(&h) = self.id_hashes.get(n + 8) {
                self.state.order.prefetch_seen(h);
            }
            if let Some(&h) = self.hashes.get(n + 12) {
                self.state.keys.prefetch_slot(h);
            }
            if let Some(&h) = self.hashes.get(n + 6) {
                self.state.keys.prefetch_key(h);
            }
            let i = i as usize;
            let time_ms = c.event_time.value(i);
            let idh = self.id_hashes[n];
            let index = c.index.value(i);
            if let Err(Refused::Late { watermark_ms }) = self.state.order.check_late(time_ms) {
                self.state.counters.late += 1;
                rejects.push(Rejection {
                    index,
                    reason: RejectReason::Late,
                    detail: format!(
                        "event_time {} is {} s behind the watermark {}",
                        alert::rfc3339_ms(time_ms),
                        (watermark_ms - time_ms) / 1000,
                        alert::rfc3339_ms(watermark_ms)
                    ),
                });
                continue;
            }
            let (row, new) = self.state.keys.get_or_insert_hashed(
                self.hashes[n],
                c.location.value(i),
                c.sku.value(i),
            );
            if new {
                self.state.rows.push_key();
            }
            self.changed.mark(row);
            // The key's pools, by the names in hand (its cell may be cold by the time the
            // event is speculated and applied).
            let groups = self
                .pools
                .groups(c.location.value(i), c.sku.value(i), &self.master);
            let kind = EventType::from_code(c.kind.value(i)).unwrap_or(EventType::Sale);
            let shipment_hash = if c.shipment_id.is_valid(i) {
                id_hash(c.shipment_id.value(i))
            } else {
                0
            };
            let ev = PendingEvent {
                time_ms,
                id_hash: idh,
                row,
                kind,
                in_stock: c.in_stock.is_valid(i) && c.in_stock.value(i),
                qty: if c.qty.is_valid(i) {
                    c.qty.value(i)
                } else {
                    0.0
                },
                eta_ms: if c.eta.is_valid(i) { c.eta.value(i) } else { 0 },
                shipment_hash,
                sub: if c.sub.is_valid(i) { c.sub.value(i) } else { 0 },
                source: source_of(index),
                groups,
            };
            // A revision or cancellation of a shipment closed at an applied (earlier) event
            // time is refused here, where the record can still be dead-lettered; its id and
            // time count as for an accepted event (a re-delivered copy is a duplicate). One
            // whose closure still waits for the watermark is refused when applied instead
            // (`Shard::apply`), with the same effect on the state.
            if kind == EventType::Shipment && self.state.inbound.is_closed(row, shipment_hash) {
                let (reason, detail) = match self.state.order.admit_refused(input, &ev) {
                    Ok(()) => {
                        self.state.counters.shipment_closed += 1;
                        (
                            RejectReason::ShipmentClosed,
                            format!(
                                "shipment_id {:?} was received or cancelled already",
                                c.shipment_id.value(i)
                            ),
                        )
                    }
                    Err(_) => {
                        self.state.counters.duplicate += 1;
                        (
                            RejectReason::Duplicate,
                            format!("event_id {:?} was already seen", c.event_id.value(i)),
                        )
                    }
                };
                rejects.push(Rejection {
                    index,
                    reason,
                    detail,
                });
                continue;
            }
            let accepted = self.state.order.accept_from(input, ev);
            if accepted.is_ok() && speculate {
                self.spec_queue.push(ev);
            }
            if accepted.is_err() {
                // Not late (checked above): its id was seen within the TTL.
                self.state.counters.duplicate += 1;
                rejects.push(Rejection {
                    index,
                    reason: RejectReason::Duplicate,
                    detail: format!("event_id {:?} was already seen", c.event_id.value(i)),
                });
            }
        }
        // Early alerts, in arrival order, once the batch is admitted: speculating reads only
        // applied rows, shipments and shadows, which admission does not change, so the result
        // is the same as speculating on each event as it is admitted; but now the rows and
        // shadows are known ahead and can be prefetched (each is a cache miss at scale).
        if speculate {
            /// Events between a row's prefetch and its use; the shadow's index entry is read
            /// half as far ahead (it needs no memory access the row prefetch would cover).
            const AHEAD: usize = 8;
            let queue = std::mem::take(&mut self.spec_queue);
            for (n, ev) in queue.iter().enumerate() {
                if let Some(next) = queue.get(n + AHEAD + AHEAD / 2) {
                    self.shadows.prefetch_slot(next.row);
                }
                if let Some(next) = queue.get(n + AHEAD) {
                    self.state.rows.prefetch(next.row as usize);
                    self.shadows.prefetch_entry(next.row);
                }
                if let Some(next) = queue.get(n + AHEAD / 2) {
                    self.shadows.prefetch(next.row);
                }
                self.speculate(ev);
            }
            self.spec_queue = queue;
        }
    }

    /// Applies every event the watermark has passed (all of them with `flush`), appending the
    /// alerts they trigger. `processing_ms` stamps `emitted_at`; `None` uses the event time.
    pub fn advance(&mut self, flush: bool, processing_ms: Option<i64>, alerts: &mut Vec<Alert>) {
        /// Events between a prefetch and its use: enough to cover a memory access.
        const AHEAD: usize = 6;
        while let Some(e) = self.state.order.pop_ready(flush) {
            // A shadow's entry is two dependent loads (slot, entry), a stage apart.
            if let Some(next) = self.state.order.peek_ahead(AHEAD + AHEAD / 2) {
                self.shadows.prefetch_slot(next.row);
            }
            if let Some(next) = self.state.order.peek_ahead(AHEAD) {
                self.state.rows.prefetch(next.row as usize);
                // The challenger's risk of that key is written too (empty without one).
                if let Some(r) = self.challenger_risks.get(next.row as usize) {
                    crate::state::mem::prefetch_ref(r);
                }
                self.state.keys.prefetch_row(next.row);
                self.shadows.prefetch_entry(next.row);
            }
            self.apply(&e, processing_ms, alerts);
            self.shadows.applied(e.row);
            if self.track_applied {
                self.applied.push(e.source);
            }
        }
        // Remembered ids are journaled: forgetting one changes no key's record.
        self.state.order.evict_seen();
        let cooldown = i64::from(self.cfg.alerts.cooldown_minutes) * 60_000;
        self.early.sweep(self.state.order.watermark_ms(), cooldown);
    }

    /// `ingest` then `advance`.
    pub fn process(
        &mut self,
        batch: &DecodedBatch,
        source_of: impl Fn(u32) -> u64,
        processing_ms: Option<i64>,
        rejects: &mut Vec<Rejection>,
        alerts: &mut Vec<Alert>,
    ) {
        self.ingest(batch, source_of, rejects);
        self.advance(false, processing_ms, alerts);
    }

    fn horizon_ms(&self) -> i64 {
        i64::from(self.cfg.model.horizon_hours) * HOUR_MS
    }

    fn mature_labels(&mut self, now_ms: i64) {
        /// Maturities between a prefetch and its use.
        const LABEL_AHEAD: usize = 8;
        let h = self.horizon_ms();
        while let Some(s) = self.state.labels.pop_matured(now_ms, h) {
            // Snapshots mature about one per event at scale: the row read for the label is a
            // cache miss unless fetched a few maturities ahead.
            if let Some(r) = self.state.labels.row_ahead(LABEL_AHEAD) {
                self.state
                    .rows
                    .prefetch_line(r as usize, std::mem::offset_of!(KeyRow, last_stockout_ms));
            }
            // Label snapshots are journaled: a matured one changes no key's record.
            let y = labels::label(
                s.time_ms,
                h,
                self.state.rows.get(s.row as usize).last_stockout_ms,
            );
            self.state
                .quality
                .observe(f64::from(s.risk), y, 1.0 / 2000.0);
            self.rolling_auc.push(f64::from(s.risk), y);
            // The calibration layer learns from the margin scored then, the weights from the
            // features (see `crate::model::calibration`).
            self.state.model.learn_calibration(f64::from(s.margin), y);
            self.state.model.learn(&s.x, y);
            if let Some(ch) = &mut self.state.challenger {
                // Scored when the snapshot was taken, as the champion's risk: a snapshot
                // restored without it teaches the challenger's weights but neither its
                // quality nor its calibration layer.
                if !s.challenger_risk.is_nan() {
                    ch.quality
                        .observe(f64::from(s.challenger_risk), y, 1.0 / 2000.0);
                    self.challenger_auc.push(f64::from(s.challenger_risk), y);
                    ch.model
                        .learn_calibration(f64::from(s.challenger_margin), y);
                }
                ch.model.learn(&s.x, y);
            }
        }
    }

    /// Applies one event in order, then scores its key.
    fn apply(&mut self, e: &PendingEvent, processing_ms: Option<i64>, alerts: &mut Vec<Alert>) {
        // The event left the key's reorder buffer: the key changed even if it is refused.
        self.changed.mark(e.row);
        if e.kind == EventType::Shipment && self.state.inbound.is_closed(e.row, e.shipment_hash) {
            // Refused (its closure was applied after it was admitted): nothing at all happens,
            // exactly as when it is refused on arrival.
            self.state.counters.shipments_refused += 1;
            return;
        }
        self.mature_labels(e.time_ms);
        let row = e.row as usize;
        let hour = hour_of(e.time_ms);
        let h = self.horizon_ms();
        let groups = if e.groups.resolved() {
            e.groups
        } else {
            let (location, sku) = self.state.keys.parts(e.row);
            self.pools.groups(location, sku, &self.master)
        };
        let c = self.state.rows.get_mut(row);
        let before = self.pools.contribution(c);
        let mut sched = KeySchedule::new(&mut self.state.inbound, e.row, c.inbound_head);
        let applied = c.apply(e, &mut sched);
        let mut inputs = c.inputs(&sched, e.time_ms, h);
        // The key's part of its pools moves with its row (see `super::pool`).
        let own = self.pools.contribution_with(c, &inputs.demand);
        debug_assert_eq!(own, self.pools.contribution(c));
        self.pools.update(groups, &before, &own);
        // Score.
        inputs.pools = self.pools.others(groups, &own);
        if self.master.has_locations() {
            inputs.utc_offset_ms =
                self.clock
                    .offset_ms(&self.master, self.state.keys.location(e.row), e.time_ms);
        }
        c.inbound_head = sched.head();
        self.state.counters.applied[e.kind as usize] += 1;
        if applied.receipt_unmatched {
            self.state.counters.receipts_unmatched += 1;
        }
        if let Some(gap) = applied.count_gap {
            self.state.counters.counts_against_book += 1;
            if gap < 0.0 {
                self.state.counters.counts_below_book += 1;
                self.state.counters.phantom_units -= gap;
            }
        }
        if applied.stockout == Some(AlertStatus::Raised) {
            self.state.counters.stockouts += 1;
        }
        let stockout = applied.stockout;
        self.state.counters.shipments_dropped = self.state.inbound.dropped;

        let derived = features::compute(&inputs, &mut self.x);
        let (risk, margin) = self.state.model.score_margin(&self.x);
        let (challenger_risk, challenger_margin) = match &self.state.challenger {
            Some(ch) => {
                let (r, m) = ch.model.score_margin(&self.x);
                let r = r as f32;
                if row >= self.challenger_risks.len() {
                    // Amortised: grows with the keys, not per event.
                    self.challenger_risks
                        .resize(self.state.keys.len().max(row + 1), f32::NAN);
                }
                self.challenger_risks[row] = r;
                (r, m as f32)
            }
            None => (f32::NAN, f32::NAN),
        };
        let lost = alerts::lost_units(&inputs);
        let c = self.state.rows.get_mut(row);
        c.risk = risk as f32;

        // Label snapshot: keys in stock, at most one per sampling interval.
        let in_stockout = c.in_stockout();
        if self.record_scores {
            self.scores.push(ScoreRecord {
                row: e.row,
                time_ms: e.time_ms,
                kind: e.kind,
                in_stockout,
                risk: risk as f32,
                prior: derived.prior.map(|p| p as f32),
                days_of_cover: derived.days_of_cover.map(|d| d as f32),
                x: self.x,
            });
        }
        let last = c.last_sample_hour;
        if !in_stockout
            && (last == NO_HOUR
                || i64::from(hour) - i64::from(last)
                    >= i64::from(self.cfg.model.label_sample_hours))
        {
            let s = Snapshot {
                row: e.row,
                time_ms: e.time_ms,
                x: self.x,
                risk: risk as f32,
                margin: margin as f32,
                challenger_risk,
                challenger_margin,
            };
            if self.state.labels.push(s, self.cfg.model.max_pending_labels) {
                c.last_sample_hour = hour;
            }
        }

        // Alerts.
        if let Some(status) = stockout {
            self.emit(
                AlertKind::Stockout,
                status,
                e,
                risk,
                &derived,
                lost,
                processing_ms,
                alerts,
            );
        }
        let c = self.state.rows.get(row);
        let t = match self.cfg.alerts.decide(
            c.risk_open(),
            risk,
            f64::from(c.alert_risk),
            c.last_alert_ms,
            e.time_ms,
        ) {
            // While a stockout is open its own alert says it all: no new risk alert on top.
            Transition::Raise if in_stockout => Transition::None,
            Transition::Raise if !self.within_budget(e, lost, risk) => {
                // Over the location's budget: nothing sent, the cool-down starts as if.
                self.state.counters.raises_over_budget += 1;
                self.state.rows.get_mut(row).last_alert_ms = e.time_ms;
                Transition::None
            }
            t => t,
        };
        let status = match t {
            Transition::None => None,
            Transition::Raise => Some(AlertStatus::Raised),
            Transition::Update => Some(AlertStatus::Updated),
            Transition::Resolve => Some(AlertStatus::Resolved),
        };
        if let Some(status) = status {
            let c = self.state.rows.get_mut(row);
            match t {
                Transition::Raise => c.flags |= flag::RISK_OPEN,
                Transition::Resolve => c.flags &= !flag::RISK_OPEN,
                _ => {}
            }
            c.alert_risk = risk as f32;
            c.last_alert_ms = e.time_ms;
            self.emit(
                AlertKind::StockoutRisk,
                status,
                e,
                risk,
                &derived,
                lost,
                processing_ms,
                alerts,
            );
        }

        // The early alerts this event triggered are settled now (see `super::early`).
        if !self.early.is_empty() {
            let c = self.state.rows.get(row);
            let open = [c.risk_open() || c.in_stockout(), c.in_stockout()];
            let retract = self.early.settle(e.row, e.time_ms, e.id_hash, open);
            for (kind, _) in [AlertKind::StockoutRisk, AlertKind::Stockout]
                .into_iter()
                .zip(retract)
                .filter(|(_, r)| *r)
            {
                let spare = self.spare_alerts.pop();
                let a = self.alert(
                    spare,
                    kind,
                    AlertStatus::Resolved,
                    e,
                    risk,
                    &derived,
                    lost,
                    self.state.rows.get(row),
                    &self.x,
                    processing_ms,
                    true,
                );
                self.early_out.push(a);
            }
        }
    }

    /// Early alerts (`alerts.early`): applies an event just accepted to its key's shadow (its
    /// applied row plus its waiting events) and scores that, raising an early alert if it
    /// crosses the policy (see [`super::early`]). Writes only the early book, the shadows and
    /// the outbox.
    fn speculate(&mut self, e: &PendingEvent) {
        let c = self.state.rows.get(e.row as usize);
        let (c_in_stockout, c_risk_open, c_last_alert_ms) =
            (c.in_stockout(), c.risk_open(), c.last_alert_ms);
        let inbound = &self.state.inbound;
        let h = self.horizon_ms();
        let slot = self
            .shadows
            .arrive(e.row, e.time_ms, self.state.rows.capacity(), |sched| {
                inbound.schedule_into(c.inbound_head, sched);
                *c
            });
        let spec_in_stockout = match slot {
            Some(slot) => {
                let s = self.shadows.get_mut(slot);
                s.row.apply(e, &mut s.sched);
                s.row.in_stockout()
            }
            None => {
                // Over the bound: a one-off copy without the key's other waiting events.
                self.state
                    .inbound
                    .schedule_into(c.inbound_head, &mut self.spec_sched);
                self.spec_row = *c;
                self.spec_row.apply(e, &mut self.spec_sched);
                self.spec_row.in_stockout()
            }
        };
        // What this event may raise early, decided before anything is scored: the risk
        // matters only to a risk alert's threshold, so a view that cannot raise anything (an
        // alert of the kind open or cooling, confirmed or early) is not scored at all.
        let cooldown = i64::from(self.cfg.alerts.cooldown_minutes) * 60_000;
        let kind = if spec_in_stockout {
            // The event starts a stockout (the copy is in one, the row is not).
            if c_in_stockout {
                return;
            }
            AlertKind::Stockout
        } else {
            if c_risk_open || c_in_stockout || !self.cfg.alerts.cooled(c_last_alert_ms, e.time_ms) {
                return;
            }
            AlertKind::StockoutRisk
        };
        if !self.early.may_raise(e.row, kind, e.time_ms, cooldown) {
            return;
        }
        let mut inputs = match slot {
            Some(slot) => {
                let s = self.shadows.get_mut(slot);
                s.row.inputs(&s.sched, s.latest_ms, h)
            }
            None => self.spec_row.inputs(&self.spec_sched, e.time_ms, h),
        };
        // The other keys' pools as they are now: what the apply of this event will read
        // unless another key of the pools moves first.
        let own = self.pools.contribution(self.state.rows.get(e.row as usize));
        inputs.pools = if e.groups.resolved() {
            self.pools.others(e.groups, &own)
        } else {
            let (location, sku) = self.state.keys.parts(e.row);
            self.pools.others_of(location, sku, &self.master, &own)
        };
        if self.master.has_locations() {
            inputs.utc_offset_ms =
                self.clock
                    .offset_ms(&self.master, self.state.keys.location(e.row), inputs.now_ms);
        }
        let derived = features::compute(&inputs, &mut self.spec_x);
        let lost = alerts::lost_units(&inputs);
        let risk = self.state.model.score(&self.spec_x);
        if kind == AlertKind::StockoutRisk
            && self
                .cfg
                .alerts
                .decide(false, risk, 0.0, c_last_alert_ms, e.time_ms)
                != Transition::Raise
        {
            return;
        }
        // A raise the location's budget would refuse now is not raised early either.
        if kind == AlertKind::StockoutRisk && !self.budget_has_room(e, lost, risk) {
            return;
        }
        self.early.raise(e.row, kind, e.time_ms, e.id_hash);
        let spec = match slot {
            Some(slot) => self.shadows.get_mut(slot).row,
            None => self.spec_row,
        };
        let spare = self.spare_alerts.pop();
        let a = self.alert(
            spare,
            kind,
            AlertStatus::Raised,
            e,
            risk,
            &derived,
            lost,
            &spec,
            &self.spec_x,
            self.processing_ms,
            true,
        );
        self.early_out.push(a);
    }

    /// Sets the processing clock that stamps the early alerts of the next ingests (`None`:
    /// their event time, as `replay` does).
    pub fn set_processing_ms(&mut self, processing_ms: Option<i64>) {
        self.processing_ms = processing_ms;
    }

    /// Whether the next ingests score early alerts (with `alerts.early`; the service turns
    /// them off for a backlog, see `alerts.early_max_age_ms`).
    pub fn set_early_now(&mut self, on: bool) {
        self.early_now = on;
    }

    /// The early alerts' book (counters, open alerts).
    pub fn early(&self) -> &EarlyBook {
        &self.early
    }

    /// Takes back alerts the caller is done with (published, written; any beyond the bound
    /// are dropped):
    /// the next alerts are built in their strings instead of new ones, so that emitting an
    /// alert allocates nothing in steady state. Keeps at most [`MAX_SPARE_ALERTS`].
    pub fn recycle_alerts(&mut self, spent: impl IntoIterator<Item = Alert>) {
        let room = MAX_SPARE_ALERTS.saturating_sub(self.spare_alerts.len());
        self.spare_alerts.extend(spent.into_iter().take(room));
    }

    /// Takes the early alerts of the events ingested so far (`alerts.early`).
    pub fn drain_early(&mut self) -> std::vec::Drain<'_, Alert> {
        self.early_out.drain(..)
    }
}
