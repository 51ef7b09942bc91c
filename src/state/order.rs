//! Event-time order: the watermark, the reorder buffer and dedupe.
//!
//! Accepted events wait in a min-heap until the watermark (max event time seen − allowed
//! lateness) passes them, then leave in `(event_time, event_id hash)` order. An event behind the
//! watermark is `late`. Because nothing behind the watermark is ever applied later, the applied
//! sequence is the same for every arrival order within the lateness window: the output is a
//! function of the events, not of how topics interleaved.
//!
//! Dedupe remembers `event_id` hashes (xxh3-64) for a TTL of event time; the TTL must cover the
//! allowed lateness so that a duplicate is either remembered or late, never applied twice.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use hashbrown::HashMap;

use crate::event::EventType;

/// An accepted event waiting for the watermark. Fixed size, no heap data: the strings were
/// resolved to a key row and hashes at ingest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingEvent {
    /// Event time, ms.
    pub time_ms: i64,
    /// xxh3-64 of `event_id`: the tie-break of the order and the dedupe key.
    pub id_hash: u64,
    /// Key row in the shard.
    pub row: u32,
    /// Event type.
    pub kind: EventType,
    /// `in_stock` of an availability observation.
    pub in_stock: bool,
    /// Quantity (0 for availability).
    pub qty: f64,
    /// ETA of a shipment, ms (0 otherwise).
    pub eta_ms: i64,
    /// xxh3-64 of `shipment_id` (0 if none).
    pub shipment_hash: u64,
    /// Opaque source position given by the caller (e.g. topic and offset), carried through.
    pub source: u64,
}

impl PendingEvent {
    fn order_key(&self) -> (i64, u64, u64) {
        (self.time_ms, self.id_hash, self.source)
    }
}

/// Min-heap adapter: `BinaryHeap` is a max-heap.
#[derive(Debug, Clone, Copy)]
struct ByTime(PendingEvent);

impl PartialEq for ByTime {
    fn eq(&self, o: &Self) -> bool {
        self.0.order_key() == o.0.order_key()
    }
}
impl Eq for ByTime {}
impl PartialOrd for ByTime {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByTime {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.order_key().cmp(&self.0.order_key())
    }
}

/// Identity hasher for keys that already are good 64-bit hashes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Builds [`PreHashed`] hashers.
pub type PreHashedState = std::hash::BuildHasherDefault<PreHashed>;

/// Why an event was not accepted into the reorder buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Behind the watermark.
    Late {
        /// The watermark at the time, ms.
        watermark_ms: i64,
    },
    /// Its id was seen within the TTL.
    Duplicate,
}

/// Watermark, reorder buffer and dedupe of one shard.
#[derive(Debug, Clone)]
pub struct EventOrder {
    lateness_ms: i64,
    dedupe_ttl_ms: i64,
    max_time_ms: i64,
    heap: BinaryHeap<ByTime>,
    seen: HashMap<u64, (i64, u32), PreHashedState>,
    seen_fifo: VecDeque<(i64, u64)>,
}

impl EventOrder {
    /// A new, empty order with the given allowed lateness and dedupe TTL (clamped to ≥ lateness).
    pub fn new(lateness_ms: i64, dedupe_ttl_ms: i64) -> Self {
        EventOrder {
            lateness_ms,
            dedupe_ttl_ms: dedupe_ttl_ms.max(lateness_ms),
            max_time_ms: i64::MIN,
            heap: BinaryHeap::new(),
            seen: HashMap::default(),
            seen_fifo: VecDeque::new(),
        }
    }

    /// Max event time seen minus the allowed lateness (`i64::MIN` before any event).
    pub fn watermark_ms(&self) -> i64 {
        self.max_time_ms.saturating_sub(self.lateness_ms)
    }

    /// Largest event time accepted so far.
    pub fn max_time_ms(&self) -> i64 {
        self.max_time_ms
    }

    /// Events waiting for the watermark.
    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    /// Ids remembered for dedupe.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Heap bytes held (buffer, dedupe map, its eviction queue).
    pub fn heap_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<ByTime>()
            + self.seen.capacity() * 21
            + self.seen_fifo.capacity() * 16
    }

    /// Checks lateness and dedupe for an event about to be accepted, without accepting it.
    pub fn admit(&self, time_ms: i64, id_hash: u64) -> Result<(), Refused> {
        let wm = self.watermark_ms();
        if time_ms < wm {
            return Err(Refused::Late { watermark_ms: wm });
        }
        if self.seen.contains_key(&id_hash) {
            return Err(Refused::Duplicate);
        }
        Ok(())
    }

    /// Accepts an event that passed [`EventOrder::admit`].
    pub fn push(&mut self, e: PendingEvent) {
        self.seen.insert(e.id_hash, (e.time_ms, e.row));
        self.seen_fifo.push_back((e.time_ms, e.id_hash));
        if e.time_ms > self.max_time_ms {
            self.max_time_ms = e.time_ms;
        }
        self.heap.push(ByTime(e));
    }

    /// The next event the watermark has passed, in order; `flush` releases everything.
    pub fn pop_ready(&mut self, flush: bool) -> Option<PendingEvent> {
        let wm = self.watermark_ms();
        match self.heap.peek() {
            Some(top) if flush || top.0.time_ms < wm => self.heap.pop().map(|b| b.0),
            _ => None,
        }
    }

    /// Forgets ids whose event time is older than the watermark minus the TTL.
    pub fn evict_seen(&mut self) {
        let horizon = self.watermark_ms().saturating_sub(self.dedupe_ttl_ms);
        while let Some(&(t, h)) = self.seen_fifo.front() {
            if t >= horizon {
                break;
            }
            self.seen_fifo.pop_front();
            if self.seen.get(&h).map(|v| v.0) == Some(t) {
                self.seen.remove(&h);
            }
        }
    }

    /// Waiting events in no particular order (snapshots).
    pub fn pending_events(&self) -> impl Iterator<Item = &PendingEvent> + '_ {
        self.heap.iter().map(|b| &b.0)
    }

    /// Remembered ids with their event times, in insertion order (snapshots).
    pub fn seen_ids(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.seen_fifo
            .iter()
            .copied()
            .filter(|(t, h)| self.seen.get(h).map(|v| v.0) == Some(*t))
    }

    /// Remembered ids with the key row they belong to (snapshots).
    pub fn seen_rows(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.seen.iter().map(|(h, v)| (*h, v.1))
    }

    /// Restores the watermark and remembered ids (snapshots). Pending events are re-pushed by
    /// [`EventOrder::push`] afterwards.
    pub fn restore(&mut self, max_time_ms: i64, seen: impl IntoIterator<Item = (i64, u64, u32)>) {
        self.max_time_ms = max_time_ms;
        for (t, h, row) in seen {
            self.seen.insert(h, (t, row));
            self.seen_fifo.push_back((t, h));
        }
    }

    /// Re-inserts a pending event without touching dedupe (snapshots).
    pub fn restore_pending(&mut self, e: PendingEvent) {
        self.heap.push(ByTime(e));
    }
}

/// Stable 64-bit hash of an id (xxh3), used for dedupe, ordering ties and shipment ids.
pub fn id_hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, id: u64) -> PendingEvent {
        PendingEvent {
            time_ms: t,
            id_hash: id,
            row: 0,
            kind: EventType::Sale,
            in_stock: true,
            qty: 1.0,
            eta_ms: 0,
            shipment_hash: 0,
            source: 0,
        }
    }

    #[test]
    fn releases_in_order_after_watermark() {
        let mut o = EventOrder::new(10, 10);
        for (t, id) in [(5, 1), (3, 2), (3, 0), (20, 3)] {
            assert!(o.admit(t, id).is_ok());
            o.push(ev(t, id));
        }
        // watermark = 20 - 10 = 10: releases 3 (id 0), 3 (id 2), 5.
        let out: Vec<_> = std::iter::from_fn(|| o.pop_ready(false))
            .map(|e| (e.time_ms, e.id_hash))
            .collect();
        assert_eq!(out, vec![(3, 0), (3, 2), (5, 1)]);
        assert_eq!(o.admit(9, 9), Err(Refused::Late { watermark_ms: 10 }));
        assert_eq!(o.admit(15, 3), Err(Refused::Duplicate));
        assert_eq!(o.pop_ready(true).map(|e| e.time_ms), Some(20));
    }

    #[test]
    fn dedupe_forgets_after_ttl() {
        let mut o = EventOrder::new(10, 20);
        o.push(ev(0, 7));
        o.push(ev(100, 8));
        o.evict_seen();
        assert_eq!(o.remembered(), 1);
        assert!(o.admit(95, 7).is_ok());
    }
}
