//! Early alerts: Beam's "early firings" for the alert policy.
//!
//! Confirmed alerts wait for the watermark: an event is applied only once every event before
//! it in event time is assumed to have arrived (docs/architecture.md#event-time), which makes them
//! deterministic, and what makes them at least `allowed_lateness` late. Early alerts do not
//! wait. Each key with events waiting for the watermark has a **shadow**: a copy of its row and
//! shipments with those events applied in arrival order ([`Shadows`]). When an event arrives it
//! is applied to its key's shadow, the shadow is scored at once, and an early `raised` is
//! published when that view crosses the policy's raise threshold (or shows a stockout) while
//! neither a confirmed nor an early alert of that kind is open. A shadow goes when the
//! watermark has applied its key's events. Shadows are bounded ([`MAX_SHADOWS`] per shard):
//! beyond that, an arriving event is applied to a one-off copy of the key's applied row
//! instead (its other waiting events then missing from the view).
//!
//! Every early alert is settled when its triggering event is applied in event-time order:
//! - **confirmed**: the confirmed alert of that kind is open then (raised by this event or an
//!   earlier one): nothing more is sent on the early topic; the confirmed `raised` is on the
//!   alerts topic.
//! - **retracted**: it is not: an early `resolved` is published, and that kind is not raised
//!   early again for the key for `alerts.cooldown_minutes` of event time (no flapping when the
//!   speculation keeps being wrong the same way).
//!
//! The book below keeps only keys with an open or cooling early alert. It is not part of the
//! changelog: early alerts are provisional and at-least-once; after a restore an early alert
//! may be raised again, or never settled.

use hashbrown::HashMap;

use crate::alert::AlertKind;
use crate::state::columns::{KeyRow, NO_TIME};
use crate::state::inbound::VecSchedule;

/// Most shadows a shard holds (264 bytes each, plus up to 544 bytes of shipments: ~51 MiB at
/// the bound).
pub const MAX_SHADOWS: usize = 65_536;

/// A key's applied row with its waiting events applied in arrival order.
#[derive(Debug, Clone)]
pub struct Shadow {
    /// The row.
    pub row: KeyRow,
    /// The key's open shipments.
    pub sched: VecSchedule,
    /// Latest event time applied to it, ms.
    pub latest_ms: i64,
}

/// A shadow's entry beside the slab: its events not yet applied by the watermark (kept here,
/// not in the slab, so that the apply loop never touches the slab, which is too large for the
/// cache).
#[derive(Debug, Clone, Copy)]
struct SlotMeta {
    pending: u32,
}

/// [`Shadows::slot_of`]'s marker of a key without a shadow.
const NO_SHADOW: u32 = u32::MAX;

/// The shadows of one shard (see the module doc): a slab of shadows that stay in place (a
/// slot and its shipment buffer are reused), the slots' [`SlotMeta`], and each key row's slot,
/// so steady state neither allocates nor moves rows around. The key-to-slot index is a plain
/// array by key row (4 bytes per key, grown with the keys): the apply and ingest loops read it
/// for every event, and a hash table's probe was a cache miss each time.
#[derive(Debug, Default)]
pub struct Shadows {
    /// Slot of each key row ([`NO_SHADOW`]: none); rows past its end have none.
    slot_of: Vec<u32>,
    /// Shadows held.
    held: usize,
    meta: Vec<SlotMeta>,
    slab: Vec<Shadow>,
    free: Vec<u32>,
}

impl Shadows {
    /// The slot of `row`'s shadow, if it has one.
    #[inline]
    fn slot(&self, row: u32) -> Option<u32> {
        self.slot_of
            .get(row as usize)
            .copied()
            .filter(|&s| s != NO_SHADOW)
    }

    /// The slot of `row`'s shadow, made from `init` (the applied row; it fills the schedule)
    /// if it has none; `None` when there is none and the bound is reached. The caller applies
    /// the arriving event to it (counted as waiting). `rows_capacity`: the key rows'
    /// allocation, which the per-row slot array grows to (so its slack is theirs, not a
    /// doubling of its own: 4 bytes per key, not up to 8).
    pub fn arrive(
        &mut self,
        row: u32,
        time_ms: i64,
        rows_capacity: usize,
        init: impl FnOnce(&mut VecSchedule) -> KeyRow,
    ) -> Option<u32> {
        let slot = match self.slot(row) {
            Some(slot) => {
                self.meta[slot as usize].pending += 1;
                slot
            }
            None if self.held >= MAX_SHADOWS => return None,
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slab.push(Shadow {
                            row: KeyRow::default(),
                            sched: VecSchedule::with_capacity(),
                            latest_ms: i64::MIN,
                        });
                        self.meta.push(SlotMeta { pending: 0 });
                        (self.slab.len() - 1) as u32
                    }
                };
                let s = &mut self.slab[slot as usize];
                s.row = init(&mut s.sched);
                s.latest_ms = i64::MIN;
                self.meta[slot as usize] = SlotMeta { pending: 1 };
                if row as usize >= self.slot_of.len() {
                    // Amortised: grows with the rows' allocation (doubling), not per event.
                    let len = rows_capacity.max(row as usize + 1);
                    self.slot_of.reserve_exact(len - self.slot_of.len());
                    self.slot_of.resize(len, NO_SHADOW);
                }
                self.slot_of[row as usize] = slot;
                self.held += 1;
                slot
            }
        };
        let s = &mut self.slab[slot as usize];
        s.latest_ms = s.latest_ms.max(time_ms);
        Some(slot)
    }

    /// The shadow in `slot` (from [`Shadows::arrive`]).
    pub fn get_mut(&mut self, slot: u32) -> &mut Shadow {
        &mut self.slab[slot as usize]
    }

    /// Hints the CPU to load `row`'s shadow, if it has one, a few events before its use (the
    /// slab is too large for the cache). No effect on contents.
    #[inline]
    pub fn prefetch(&self, row: u32) {
        let Some(slot) = self.slot(row) else {
            return;
        };
        if let Some(s) = self.slab.get(slot as usize) {
            let p = (s as *const Shadow).cast::<u8>();
            for off in (0..std::mem::size_of::<Shadow>()).step_by(64) {
                crate::state::mem::prefetch(p.wrapping_add(off));
            }
        }
    }

    /// Hints the CPU to load `row`'s slot number (the first of the dependent loads
    /// [`Shadows::prefetch_entry`] and [`Shadows::prefetch`] make: with a million keys the
    /// slot array is itself too large for the cache). No effect on contents.
    #[inline]
    pub fn prefetch_slot(&self, row: u32) {
        if let Some(s) = self.slot_of.get(row as usize) {
            crate::state::mem::prefetch_ref(s);
        }
    }

    /// Hints the CPU to load the entry of `row`'s shadow, if it has one (its count of waiting
    /// events, which [`Shadows::applied`] reads and [`Shadows::arrive`] writes). No effect on
    /// contents.
    #[inline]
    pub fn prefetch_entry(&self, row: u32) {
        if let Some(m) = self.slot(row).and_then(|slot| self.meta.get(slot as usize)) {
            crate::state::mem::prefetch_ref(m);
        }
    }

    /// An event of `row` was applied by the watermark: the shadow goes with the last of its
    /// waiting events.
    pub fn applied(&mut self, row: u32) {
        let Some(slot) = self.slot(row) else {
            return;
        };
        let m = &mut self.meta[slot as usize];
        m.pending = m.pending.saturating_sub(1);
        if m.pending == 0 {
            self.slot_of[row as usize] = NO_SHADOW;
            self.held -= 1;
            self.free.push(slot);
        }
    }

    /// Shadows held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Heap bytes: the slots' entries, the slab and the shipment buffers (the per-row slot
    /// array apart: [`Shadows::slot_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.meta.capacity() * std::mem::size_of::<SlotMeta>()
            + self.slab.capacity() * std::mem::size_of::<Shadow>()
            + self
                .slab
                .iter()
                .map(|s| s.sched.heap_bytes())
                .sum::<usize>()
            + self.free.capacity() * 4
    }

    /// Heap bytes of the per-row slot array (4 bytes per key row that ever had a shadow, by
    /// capacity): per-key state, unlike the rest of [`Shadows::heap_bytes`].
    pub fn slot_bytes(&self) -> usize {
        self.slot_of.capacity() * std::mem::size_of::<u32>()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

/// The trigger of an open early alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trigger {
    time_ms: i64,
    id_hash: u64,
}

/// One key's early alerts, by kind (`AlertKind as usize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    open: [Option<Trigger>; 2],
    /// Event time of the trigger of the last retracted early alert ([`NO_TIME`]: none).
    retracted_ms: [i64; 2],
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            open: [None; 2],
            retracted_ms: [NO_TIME; 2],
        }
    }
}

/// Counters of a shard's early alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EarlyCounters {
    /// Early alerts raised, by kind.
    pub raised: [u64; 2],
    /// ...confirmed when their trigger was applied.
    pub confirmed: [u64; 2],
    /// ...retracted (an early `resolved` published).
    pub retracted: [u64; 2],
}

/// The open and cooling early alerts of one shard (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct EarlyBook {
    keys: HashMap<u32, Entry>,
    /// Sweep the book once it holds this many keys.
    sweep_at: usize,
    counters: EarlyCounters,
}

/// Keys the book holds before its first sweep.
const FIRST_SWEEP: usize = 1024;

impl EarlyBook {
    /// Counters so far.
    pub fn counters(&self) -> &EarlyCounters {
        &self.counters
    }

    /// Early alerts open now.
    pub fn open(&self) -> usize {
        self.keys
            .values()
            .map(|e| e.open.iter().flatten().count())
            .sum()
    }

    /// Whether an early alert of `kind` may be raised for `row` at `now_ms`: none is open, and
    /// none was retracted within `cooldown_ms` before.
    pub fn may_raise(&self, row: u32, kind: AlertKind, now_ms: i64, cooldown_ms: i64) -> bool {
        let Some(e) = self.keys.get(&row) else {
            return true;
        };
        let k = kind as usize;
        e.open[k].is_none()
            && (e.retracted_ms[k] == NO_TIME
                || now_ms.saturating_sub(e.retracted_ms[k]) >= cooldown_ms)
    }

    /// Records an early alert of `kind` raised for `row` by the event `(time_ms, id_hash)`.
    pub fn raise(&mut self, row: u32, kind: AlertKind, time_ms: i64, id_hash: u64) {
        let k = kind as usize;
        self.keys.entry(row).or_default().open[k] = Some(Trigger { time_ms, id_hash });
        self.counters.raised[k] += 1;
    }

    /// The event `(time_ms, id_hash)` of `row` was applied and the confirmed alerts of the
    /// key are open as `confirmed_open` (by kind). Returns, by kind, whether an early alert
    /// this event triggered is retracted (the caller publishes its early `resolved`).
    pub fn settle(
        &mut self,
        row: u32,
        time_ms: i64,
        id_hash: u64,
        confirmed_open: [bool; 2],
    ) -> [bool; 2] {
        let mut retract = [false; 2];
        if self.keys.is_empty() {
            return retract;
        }
        let Some(e) = self.keys.get_mut(&row) else {
            return retract;
        };
        let trigger = Trigger { time_ms, id_hash };
        for k in 0..2 {
            if e.open[k] != Some(trigger) {
                continue;
            }
            e.open[k] = None;
            if confirmed_open[k] {
                self.counters.confirmed[k] += 1;
            } else {
                self.counters.retracted[k] += 1;
                e.retracted_ms[k] = time_ms;
                retract[k] = true;
            }
        }
        retract
    }

    /// Forgets keys with nothing open whose retractions are `cooldown_ms` behind
    /// `watermark_ms`, once the book has grown (amortised O(1) per call).
    pub fn sweep(&mut self, watermark_ms: i64, cooldown_ms: i64) {
        if self.keys.len() < self.sweep_at.max(FIRST_SWEEP) {
            return;
        }
        self.keys.retain(|_, e| {
            e.open.iter().any(Option::is_some)
                || e.retracted_ms
                    .iter()
                    .any(|&t| t != NO_TIME && watermark_ms.saturating_sub(t) < cooldown_ms)
        });
        self.sweep_at = 2 * self.keys.len();
    }

    /// Keys held (open or cooling).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RISK: AlertKind = AlertKind::StockoutRisk;
    const OUT: AlertKind = AlertKind::Stockout;
    const COOL: i64 = 3_600_000;

    #[test]
    fn an_early_alert_is_confirmed_or_retracted_by_its_own_trigger_only() {
        let mut b = EarlyBook::default();
        assert!(b.may_raise(7, RISK, 0, COOL));
        b.raise(7, RISK, 1_000, 11);
        assert!(
            !b.may_raise(7, RISK, 2_000, COOL),
            "open: no second early raise"
        );
        assert!(
            b.may_raise(7, OUT, 2_000, COOL),
            "the other kind is independent"
        );
        // Another event of the key, or the same time with another id, settles nothing.
        assert_eq!(b.settle(7, 1_000, 12, [false, false]), [false, false]);
        assert_eq!(b.settle(8, 1_000, 11, [false, false]), [false, false]);
        assert_eq!(b.open(), 1);
        // Its trigger applied with the confirmed alert open: confirmed, nothing to publish.
        assert_eq!(b.settle(7, 1_000, 11, [true, false]), [false, false]);
        assert_eq!(b.counters().confirmed, [1, 0]);
        assert_eq!(b.open(), 0);
        assert!(b.may_raise(7, RISK, 2_000, COOL));
    }

    #[test]
    fn a_retracted_early_alert_cools_down_before_the_next() {
        let mut b = EarlyBook::default();
        b.raise(3, OUT, 10_000, 1);
        assert_eq!(b.settle(3, 10_000, 1, [false, false]), [false, true]);
        assert_eq!(b.counters().retracted, [0, 1]);
        assert!(!b.may_raise(3, OUT, 10_000 + COOL - 1, COOL));
        assert!(b.may_raise(3, OUT, 10_000 + COOL, COOL));
        assert!(b.may_raise(3, RISK, 10_001, COOL));
    }

    #[test]
    fn sweep_keeps_open_and_cooling_keys_only() {
        let mut b = EarlyBook::default();
        for row in 0..2 * FIRST_SWEEP as u32 {
            b.raise(row, RISK, 0, u64::from(row));
            if row % 2 == 0 {
                b.settle(row, 0, u64::from(row), [false, false]); // retracted at 0
            }
        }
        b.raise(5_000, RISK, COOL, 1);
        b.settle(5_000, COOL, 1, [false, false]); // retracted later: still cooling
        b.sweep(COOL, COOL);
        // The odd rows are open; the even ones cooled down; 5000 still cools.
        assert_eq!(b.len(), FIRST_SWEEP + 1);
        assert!(!b.may_raise(5_000, RISK, COOL + 1, COOL));
        assert!(!b.may_raise(1, RISK, COOL, COOL));
        assert!(b.may_raise(0, RISK, COOL, COOL));
    }
}
