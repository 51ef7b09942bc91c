//! Event-time order: the watermark, the reorder buffer and dedupe.
//!
//! Accepted events wait in one-second buckets of event time until the watermark (max event
//! time seen − allowed lateness) has passed a whole bucket; the bucket is then sorted by
//! `(event_time, event_id hash)` and released. Input is nearly ordered, so this costs an append
//! per event and a small in-cache sort per second, where a binary heap over an hour of events
//! would cost a cache miss per level. An event behind the
//! watermark is `late`. Because nothing behind the watermark is ever applied later, the applied
//! sequence is the same for every arrival order within the lateness window: the output is a
//! function of the events, not of how topics interleaved.
//!
//! Dedupe remembers `event_id` hashes (xxh3-64) for a TTL of event time; the TTL must cover the
//! allowed lateness so that a duplicate is either remembered or late, never applied twice.

use std::collections::{BTreeMap, VecDeque};

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
    /// The type's bounded-set field as its code: a shipment's status, a count's source, an
    /// adjustment's reason (0 otherwise; see [`crate::decode::col::SUB`]).
    pub sub: u8,
    /// Quantity (0 for availability).
    pub qty: f64,
    /// ETA of a shipment, ms (0 otherwise).
    pub eta_ms: i64,
    /// xxh3-64 of `shipment_id` (0 if none).
    pub shipment_hash: u64,
    /// Opaque source position given by the caller (e.g. topic and offset), carried through.
    pub source: u64,
    /// The key's group ids in the shard's pools, resolved at admission from the names in hand
    /// (`engine::pool`), so that neither the early view nor the apply reads the key's names
    /// again. Not persisted: a restored event carries [`Groups::UNRESOLVED`].
    pub groups: Groups,
}

// One cache line: the pool ids took the padding's place and 4 bytes more (56 before them).
const _: () = assert!(std::mem::size_of::<PendingEvent>() == 64);

/// A key's dense group ids in its shard's pools (`engine::pool::Pools`): its location's and its
/// SKU's. Ids are the shard's own, never persisted nor shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    /// The location's id.
    pub location: u32,
    /// The SKU's id.
    pub sku: u32,
}

impl Groups {
    /// Not resolved (an event restored from the changelog): the engine looks the key's groups
    /// up by name instead.
    pub const UNRESOLVED: Groups = Groups {
        location: u32::MAX,
        sku: u32::MAX,
    };

    /// Whether these are ids, not [`Groups::UNRESOLVED`].
    #[inline]
    pub fn resolved(self) -> bool {
        self != Groups::UNRESOLVED
    }
}

impl Default for Groups {
    fn default() -> Self {
        Groups::UNRESOLVED
    }
}

impl PendingEvent {
    fn order_key(&self) -> (i64, u64, u64) {
        (self.time_ms, self.id_hash, self.source)
    }
}

/// A remembered id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    time_ms: i64,
    id_hash: u64,
    row: u32,
}

/// Width of a reorder bucket in event time.
pub const BUCKET_MS: i64 = 1000;
/// Emptied bucket vectors kept for reuse.
const MAX_SPARE_BUCKETS: usize = 64;

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

/// The event-time clock of one input (one topic partition of the shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputClock {
    max_ms: i64,
    idle: bool,
}

/// Watermark, reorder buffer and dedupe of one shard.
///
/// A shard reads several inputs (one partition of each input topic) that arrive at different
/// speeds. The watermark is the *minimum* over the active inputs of their max event time, minus
/// the lateness: a topic whose backlog is fetched first cannot push the others' events behind
/// the watermark (the effect Kafka Streams gets from KIP-353's merge and Flink from per-input
/// watermarks). An idle input (caught up, no data) stops holding the others back. The
/// watermark never moves backwards.
#[derive(Debug, Clone)]
pub struct EventOrder {
    lateness_ms: i64,
    dedupe_ttl_ms: i64,
    max_time_ms: i64,
    inputs: Vec<InputClock>,
    watermark_ms: i64,
    buckets: BTreeMap<i64, Vec<PendingEvent>>,
    waiting: usize,
    ready: Vec<PendingEvent>,
    ready_pos: usize,
    spare: Vec<Vec<PendingEvent>>,
    /// Sum of the capacities of the vectors in `buckets` and `spare`, kept as they change:
    /// walking a backlog's buckets for every metrics scrape cost more than the events.
    pooled_capacity: usize,
    /// Remembered id hashes (8-byte slots at ≤ 1/4 load).
    seen: IdSet,
    /// The same ids in insertion order with their time and key row, for eviction and snapshots.
    seen_fifo: VecDeque<Seen>,
    /// Ids ever pushed to `seen_fifo`: entry `i` of the FIFO is the `seen_pushed − len + i`-th
    /// (a position that does not change as the front is evicted; the changelog orders by it).
    seen_pushed: u64,
}

/// The clocks of an [`EventOrder`]: what a restored shard needs to hold the same watermark.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Clocks {
    /// Largest event time accepted.
    pub max_time_ms: i64,
    /// The watermark (it never moves backwards, so it is kept, not recomputed).
    pub watermark_ms: i64,
    /// Max event time per input. Idleness is not kept: it is a wall-clock judgement that a
    /// restarted shard makes anew.
    pub inputs: Vec<i64>,
    /// Ids ever remembered (the absolute position of the next one).
    pub seen_pushed: u64,
}

impl EventOrder {
    /// A new, empty order with the given allowed lateness and dedupe TTL (clamped to ≥ lateness).
    pub fn new(lateness_ms: i64, dedupe_ttl_ms: i64) -> Self {
        EventOrder {
            lateness_ms,
            dedupe_ttl_ms: dedupe_ttl_ms.max(lateness_ms),
            max_time_ms: i64::MIN,
            inputs: vec![InputClock {
                max_ms: i64::MIN,
                idle: false,
            }],
            watermark_ms: i64::MIN,
            buckets: BTreeMap::new(),
            waiting: 0,
            ready: Vec::new(),
            ready_pos: 0,
            spare: Vec::new(),
            pooled_capacity: 0,
            seen: IdSet::default(),
            seen_fifo: VecDeque::new(),
            seen_pushed: 0,
        }
    }

    /// Min over active inputs of their max event time, minus the allowed lateness (`i64::MIN`
    /// until every active input has data).
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// Sets the number of inputs (default 1); all start active with no data.
    pub fn set_inputs(&mut self, n: usize) {
        self.inputs = vec![
            InputClock {
                max_ms: i64::MIN,
                idle: false,
            };
            n.max(1)
        ];
    }

    /// Sets the number of inputs keeping the clocks of the first `n` (restored state read by a
    /// build with more inputs: the new ones start active with no data).
    pub fn resize_inputs(&mut self, n: usize) {
        self.inputs.resize(
            n.max(1),
            InputClock {
                max_ms: i64::MIN,
                idle: false,
            },
        );
    }

    /// Marks an input idle (caught up: it no longer holds the watermark) or active again.
    pub fn set_idle(&mut self, input: usize, idle: bool) {
        if let Some(c) = self.inputs.get_mut(input) {
            c.idle = idle;
        }
        self.update_watermark();
    }

    fn update_watermark(&mut self) {
        let active = self
            .inputs
            .iter()
            .filter(|c| !c.idle)
            .map(|c| c.max_ms)
            .min();
        let base = active.unwrap_or(self.max_time_ms);
        self.watermark_ms = self.watermark_ms.max(base.saturating_sub(self.lateness_ms));
    }

    /// Max event time of input `input` (`i64::MIN` before its first event) and whether it is
    /// idle; `None` for an unknown input.
    pub fn input_clock(&self, input: usize) -> Option<(i64, bool)> {
        self.inputs.get(input).map(|c| (c.max_ms, c.idle))
    }

    /// Largest event time accepted so far.
    pub fn max_time_ms(&self) -> i64 {
        self.max_time_ms
    }

    /// Events waiting for the watermark.
    pub fn pending(&self) -> usize {
        self.waiting + self.ready.len() - self.ready_pos
    }

    /// Ids remembered for dedupe.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Heap bytes held (buffer, dedupe map, its eviction queue).
    pub fn heap_bytes(&self) -> usize {
        (self.pooled_capacity + self.ready.capacity()) * std::mem::size_of::<PendingEvent>()
            + self.seen.capacity() * 8
            + self.seen_fifo.capacity() * std::mem::size_of::<Seen>()
    }

    /// Refuses an event behind the watermark.
    pub fn check_late(&self, time_ms: i64) -> Result<(), Refused> {
        let wm = self.watermark_ms();
        if time_ms < wm {
            return Err(Refused::Late { watermark_ms: wm });
        }
        Ok(())
    }

    /// Hints the CPU to load the dedupe slot of id hash `h` (an event about to be accepted).
    #[inline]
    pub fn prefetch_seen(&self, h: u64) {
        self.seen.prefetch(h);
    }

    /// Accepts an event unless it is late or its id was seen (one hash probe for both the
    /// dedupe check and the insert).
    pub fn accept(&mut self, e: PendingEvent) -> Result<(), Refused> {
        self.accept_from(0, e)
    }

    /// [`EventOrder::accept`] for an event read from input `input`.
    pub fn accept_from(&mut self, input: usize, e: PendingEvent) -> Result<(), Refused> {
        self.admit(input, &e)?;
        self.enqueue(e);
        Ok(())
    }

    /// Admits an event that the state refuses (a revision of a closed shipment): its id is
    /// remembered and its time moves the clocks, as for an accepted event, but it is never
    /// applied. So a refusal on arrival leaves the same state as a refusal when applied.
    pub fn admit_refused(&mut self, input: usize, e: &PendingEvent) -> Result<(), Refused> {
        self.admit(input, e)
    }

    fn admit(&mut self, input: usize, e: &PendingEvent) -> Result<(), Refused> {
        self.check_late(e.time_ms)?;
        if !self.seen.insert(e.id_hash) {
            return Err(Refused::Duplicate);
        }
        self.seen_fifo.push_back(Seen {
            time_ms: e.time_ms,
            id_hash: e.id_hash,
            row: e.row,
        });
        self.seen_pushed += 1;
        if e.time_ms > self.max_time_ms {
            self.max_time_ms = e.time_ms;
        }
        if let Some(c) = self.inputs.get_mut(input) {
            if e.time_ms > c.max_ms {
                c.max_ms = e.time_ms;
                self.update_watermark();
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, e: PendingEvent) {
        let b = e.time_ms.div_euclid(BUCKET_MS);
        self.waiting += 1;
        // Fast path: the newest bucket.
        if let Some(mut last) = self.buckets.last_entry() {
            if *last.key() == b {
                let v = last.get_mut();
                let before = v.capacity();
                v.push(e);
                self.pooled_capacity += v.capacity() - before;
                return;
            }
        }
        let spare = &mut self.spare;
        let v = self
            .buckets
            .entry(b)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        let before = v.capacity();
        v.push(e);
        self.pooled_capacity += v.capacity() - before;
    }

    /// The next event the watermark has passed, in order; `flush` releases everything.
    pub fn pop_ready(&mut self, flush: bool) -> Option<PendingEvent> {
        if self.ready_pos == self.ready.len() && !self.release(flush) {
            return None;
        }
        let e = self.ready[self.ready_pos];
        self.ready_pos += 1;
        Some(e)
    }

    /// The event `k` places after the next one, if already released (for prefetching).
    pub fn peek_ahead(&self, k: usize) -> Option<&PendingEvent> {
        self.ready.get(self.ready_pos + k)
    }

    /// Moves the oldest bucket, if the watermark has passed all of it, into `ready`, sorted.
    fn release(&mut self, flush: bool) -> bool {
        let wm = self.watermark_ms();
        let Some(first) = self.buckets.first_entry() else {
            return false;
        };
        let end = first.key().saturating_add(1).saturating_mul(BUCKET_MS);
        if !flush && end > wm {
            return false;
        }
        let mut bucket = first.remove();
        bucket.sort_unstable_by_key(PendingEvent::order_key);
        self.waiting -= bucket.len();
        self.pooled_capacity -= bucket.capacity();
        let mut done = std::mem::replace(&mut self.ready, bucket);
        done.clear();
        // Kept for the next bucket, up to a bound: a backlog sparse in event time opens a
        // bucket per event, and a pool of all of them would keep their memory forever.
        if self.spare.len() < MAX_SPARE_BUCKETS {
            self.pooled_capacity += done.capacity();
            self.spare.push(done);
        }
        self.ready_pos = 0;
        true
    }

    /// Forgets ids whose event time is more than `TTL − lateness` behind the watermark, i.e.
    /// more than the TTL behind the slowest active input. Every id at or after the watermark is
    /// kept, which is all dedupe needs: anything older is `late`. Measured from the max event
    /// time instead (as before), an input read far ahead of the others — a backlog of sales
    /// fetched before the receipts — evicted ids that a slower input could still bring back
    /// as duplicates, and they were applied twice.
    pub fn evict_seen(&mut self) {
        self.evict_seen_with(|_| {});
    }

    /// [`EventOrder::evict_seen`], calling `evicted(row)` for each forgotten id's key row.
    pub fn evict_seen_with(&mut self, mut evicted: impl FnMut(u32)) {
        let horizon = self
            .watermark_ms
            .saturating_sub(self.dedupe_ttl_ms - self.lateness_ms);
        while let Some(s) = self.seen_fifo.front() {
            if s.time_ms >= horizon {
                break;
            }
            // Each remembered id has exactly one FIFO entry (a second insert is refused).
            if let Some(ahead) = self.seen_fifo.get(EVICT_AHEAD) {
                self.seen.prefetch(ahead.id_hash);
            }
            let s = *s;
            self.seen.remove(s.id_hash);
            evicted(s.row);
            self.seen_fifo.pop_front();
        }
    }

    /// Waiting events in no particular order (snapshots).
    pub fn pending_events(&self) -> impl Iterator<Item = &PendingEvent> + '_ {
        self.ready[self.ready_pos..]
            .iter()
            .chain(self.buckets.values().flatten())
    }

    /// Remembered ids as (event time, id hash, key row), in insertion order (snapshots).
    pub fn seen_ids(&self) -> impl Iterator<Item = (i64, u64, u32)> + '_ {
        self.seen_fifo.iter().map(|s| (s.time_ms, s.id_hash, s.row))
    }

    /// Remembered ids as (absolute position, event time, id hash, key row), oldest first
    /// (the changelog: positions stay valid while the front is evicted).
    pub fn seen_positions(&self) -> impl Iterator<Item = (u64, i64, u64, u32)> + '_ {
        let base = self.seen_pushed - self.seen_fifo.len() as u64;
        self.seen_fifo
            .iter()
            .enumerate()
            .map(move |(i, s)| (base + i as u64, s.time_ms, s.id_hash, s.row))
    }

    /// The position of the oldest remembered id (`seen_pushed` when none is).
    pub fn seen_head(&self) -> u64 {
        self.seen_pushed - self.seen_fifo.len() as u64
    }

    /// Ids ever remembered: the position of the next one.
    pub fn seen_pushed(&self) -> u64 {
        self.seen_pushed
    }

    /// [`EventOrder::seen_positions`] from position `from` on (from the oldest if it is older).
    pub fn seen_from(&self, from: u64) -> impl Iterator<Item = (u64, i64, u64, u32)> + '_ {
        let head = self.seen_head();
        let skip = from.saturating_sub(head).min(self.seen_fifo.len() as u64);
        self.seen_fifo
            .range(skip as usize..)
            .enumerate()
            .map(move |(i, s)| (head + skip + i as u64, s.time_ms, s.id_hash, s.row))
    }

    /// The clocks, for the changelog.
    pub fn clocks(&self) -> Clocks {
        Clocks {
            max_time_ms: self.max_time_ms,
            watermark_ms: self.watermark_ms,
            inputs: self.inputs.iter().map(|c| c.max_ms).collect(),
            seen_pushed: self.seen_pushed,
        }
    }

    /// Restores clocks and remembered ids saved with [`EventOrder::clocks`] and
    /// [`EventOrder::seen_positions`] (`seen` oldest first); pending events are re-pushed with
    /// [`EventOrder::restore_pending`] afterwards.
    pub fn restore_clocks(&mut self, c: &Clocks, seen: impl IntoIterator<Item = (i64, u64, u32)>) {
        self.max_time_ms = c.max_time_ms;
        self.watermark_ms = c.watermark_ms;
        self.inputs = c
            .inputs
            .iter()
            .map(|&max_ms| InputClock {
                max_ms,
                idle: false,
            })
            .collect();
        if self.inputs.is_empty() {
            self.set_inputs(1);
        }
        self.remember_all(seen);
        self.seen_pushed = c.seen_pushed.max(self.seen_fifo.len() as u64);
    }

    /// Appends restored ids (oldest first) to the dedupe memory.
    fn remember_all(&mut self, seen: impl IntoIterator<Item = (i64, u64, u32)>) {
        for (t, h, row) in seen {
            self.seen.insert(h);
            self.seen_fifo.push_back(Seen {
                time_ms: t,
                id_hash: h,
                row,
            });
        }
    }

    /// Restores the watermark and remembered ids (snapshots). Pending events are re-pushed by
    /// [`EventOrder::push`] afterwards.
    pub fn restore(&mut self, max_time_ms: i64, seen: impl IntoIterator<Item = (i64, u64, u32)>) {
        self.max_time_ms = max_time_ms;
        self.inputs = vec![InputClock {
            max_ms: max_time_ms,
            idle: false,
        }];
        self.update_watermark();
        self.remember_all(seen);
        self.seen_pushed = self.seen_fifo.len() as u64;
    }

    /// Re-inserts a pending event without touching dedupe (snapshots).
    pub fn restore_pending(&mut self, e: PendingEvent) {
        self.enqueue(e);
    }
}

/// Stable 64-bit hash of an id (xxh3), used for dedupe, ordering ties and shipment ids.
pub fn id_hash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// FIFO entries between a dedupe-slot prefetch and the removal that needs it.
const EVICT_AHEAD: usize = 8;

/// The dedupe memory: a set of event-id hashes, open addressing with linear probing (load
/// ≤ 1/4: 32–64 bytes per remembered id; at a million ids ~60 ns/event faster than ≤ 1/2, see
/// `docs/performance.md`) and backward-shift deletion, so a lookup is one probe into one
/// 8-byte slot in the common case — and, unlike a `HashSet`, its slot can be prefetched a few
/// events ahead ([`IdSet::prefetch`]): with a million ids remembered, inserts (at ingest) and
/// removals (at eviction) are cache misses otherwise.
#[derive(Debug, Clone, Default)]
pub struct IdSet {
    /// Hash values; 0 marks an empty slot (the id hash 0 is kept in `has_zero`).
    slots: Vec<u64>,
    /// Ids held, including 0.
    len: usize,
    has_zero: bool,
}

impl IdSet {
    /// Ids held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no id is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated (8 bytes each).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        // Fibonacci hashing on top of xxh3: the slot index from the well-mixed high bits.
        let bits = self.slots.len().trailing_zeros();
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    /// Hints the CPU to load the slot where `h` would be (no state change).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        if self.slots.len() > 1 {
            super::mem::prefetch((&self.slots[self.home(h)] as *const u64).cast());
        }
    }

    /// Inserts `h`; false if it was already there.
    pub fn insert(&mut self, h: u64) -> bool {
        if h == 0 {
            let new = !self.has_zero;
            self.has_zero = true;
            self.len += usize::from(new);
            return new;
        }
        if (self.len + 1) * 4 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == h {
                return false;
            }
            if s == 0 {
                self.slots[i] = h;
                self.len += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `h`; false if it was not there.
    pub fn remove(&mut self, h: u64) -> bool {
        if h == 0 {
            let had = self.has_zero;
            self.has_zero = false;
            self.len -= usize::from(had);
            return had;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return false;
            }
            if s == h {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward shift: move later members of the run into the hole when the hole lies on
        // their probe path (between their home slot and where they are, cyclically).
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let k = self.home(s);
            let movable = if i <= j {
                k <= i || k > j
            } else {
                k <= i && k > j
            };
            if movable {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.len -= 1;
        true
    }

    /// True if `h` is held.
    pub fn contains(&self, h: u64) -> bool {
        if h == 0 {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        loop {
            match self.slots[i] {
                0 => return false,
                s if s == h => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; cap]);
        super::huge::advise(&self.slots);
        let mask = cap - 1;
        for h in old.into_iter().filter(|&h| h != 0) {
            let mut i = self.home(h);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = h;
        }
    }
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
            sub: 0,
            source: 0,
            groups: Groups::UNRESOLVED,
        }
    }

    #[test]
    fn releases_in_order_after_watermark() {
        let s = BUCKET_MS;
        let mut o = EventOrder::new(10 * s, 10 * s);
        let input = [
            (5 * s, 1),
            (3 * s + 7, 2),
            (3 * s + 7, 0),
            (3 * s, 4),
            (20 * s, 3),
        ];
        for (t, id) in input {
            assert!(o.accept(ev(t, id)).is_ok());
        }
        // watermark = 20 s - 10 s = 10 s: releases every bucket before it, in order.
        let out: Vec<_> = std::iter::from_fn(|| o.pop_ready(false))
            .map(|e| (e.time_ms, e.id_hash))
            .collect();
        let want = vec![(3 * s, 4), (3 * s + 7, 0), (3 * s + 7, 2), (5 * s, 1)];
        assert_eq!(out, want);
        let late = Refused::Late {
            watermark_ms: 10 * s,
        };
        assert_eq!(o.accept(ev(9 * s, 9)), Err(late));
        assert_eq!(o.accept(ev(15 * s, 3)), Err(Refused::Duplicate));
        // An event inside the watermark's own bucket waits until the whole bucket has passed.
        assert!(o.accept(ev(10 * s + 1, 5)).is_ok());
        assert_eq!(o.pending(), 2);
        assert_eq!(o.pop_ready(false), None);
        assert_eq!(o.pop_ready(true).map(|e| e.time_ms), Some(10 * s + 1));
        assert_eq!(o.pop_ready(true).map(|e| e.time_ms), Some(20 * s));
    }

    #[test]
    fn pooled_capacity_tracks_buckets_and_spares() {
        let s = BUCKET_MS;
        let mut o = EventOrder::new(5 * s, 5 * s);
        let walked = |o: &EventOrder| {
            o.buckets.values().map(Vec::capacity).sum::<usize>()
                + o.spare.iter().map(Vec::capacity).sum::<usize>()
        };
        for i in 0..2000i64 {
            // Out of order within the lateness, several events per bucket.
            let t = (i / 7) * s / 3 + (i % 5) * 97;
            let _ = o.accept(ev(t, i as u64 + 1));
            if i % 13 == 0 {
                while o.pop_ready(false).is_some() {}
            }
            assert_eq!(o.pooled_capacity, walked(&o), "after event {i}");
        }
        while o.pop_ready(true).is_some() {}
        assert_eq!(o.pooled_capacity, walked(&o));
    }

    #[test]
    fn dedupe_forgets_after_ttl() {
        let mut o = EventOrder::new(10, 20);
        for (t, id) in [(0, 7), (15, 9), (30, 8)] {
            assert!(o.accept(ev(t, id)).is_ok());
        }
        o.evict_seen();
        // Kept: ids at or after max - ttl = 10, which covers the watermark (20).
        assert_eq!(o.remembered(), 2);
        assert_eq!(o.accept(ev(20, 8)), Err(Refused::Duplicate));
        assert!(o.accept(ev(25, 7)).is_ok(), "7 was forgotten");
    }

    #[test]
    fn an_input_far_ahead_does_not_evict_ids_a_slower_input_can_repeat() {
        let mut o = EventOrder::new(10, 10);
        o.set_inputs(2);
        assert!(o.accept_from(1, ev(100, 1)).is_ok());
        // Input 0 runs far ahead (a backlog read first): the watermark stays with input 1.
        assert!(o.accept_from(0, ev(10_000, 2)).is_ok());
        o.evict_seen();
        assert_eq!(o.accept_from(1, ev(100, 1)), Err(Refused::Duplicate));
    }

    #[test]
    fn slowest_active_input_holds_the_watermark() {
        let mut o = EventOrder::new(10, 10);
        o.set_inputs(2);
        assert!(o.accept_from(0, ev(1000, 1)).is_ok());
        // Input 1 has no data yet: nothing is released, and nothing on input 1 is late.
        assert_eq!(o.watermark_ms(), i64::MIN);
        assert!(o.accept_from(1, ev(100, 2)).is_ok());
        assert_eq!(o.watermark_ms(), 90);
        // Input 1 catches up; then goes idle and stops holding input 0 back.
        assert!(o.accept_from(1, ev(500, 3)).is_ok());
        assert_eq!(o.watermark_ms(), 490);
        o.set_idle(1, true);
        assert_eq!(o.watermark_ms(), 990);
        // Waking up with old data does not move the watermark back: that data is late.
        o.set_idle(1, false);
        assert_eq!(o.watermark_ms(), 990);
        assert_eq!(
            o.accept_from(1, ev(600, 4)),
            Err(Refused::Late { watermark_ms: 990 })
        );
    }

    #[test]
    fn id_set_is_a_set() {
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let mut set = IdSet::default();
        let mut reference = std::collections::HashSet::new();
        assert!(!set.remove(5) && !set.contains(5));
        for step in 0..200_000 {
            // Few distinct values (and 0) so that inserts, duplicates and removals all happen,
            // with long probe runs that wrap around the end of the table.
            let h = match next() % 4 {
                0 => 0,
                _ => next() % 3_000 * 0x1_0000_0001,
            };
            if next() % 3 == 0 {
                assert_eq!(set.remove(h), reference.remove(&h), "step {step}");
            } else {
                assert_eq!(set.insert(h), reference.insert(h), "step {step}");
            }
            assert_eq!(set.len(), reference.len());
            let probe = next() % 3_000 * 0x1_0000_0001;
            assert_eq!(set.contains(probe), reference.contains(&probe));
        }
        for h in reference.iter() {
            assert!(set.contains(*h));
        }
        assert!(set.capacity() >= 2 * set.len());
    }
}
