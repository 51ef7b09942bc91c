//! The inbound schedule: open shipments per key, in a slot table shared by the shard. Each key's
//! shipments form a singly linked list from `KeyRow::inbound_head`, sorted by ETA, so the
//! per-key cost is one `u32` and keys with nothing inbound (most of them) pay nothing more.
//! Shipments are found by (key row, `xxh3` hash of their `shipment_id`): an id is only ever
//! matched within its own key.
//!
//! A shipment that is received or cancelled stays in its key's list as a *closed* entry (no
//! quantity) until it is [`OVERDUE_MS`] past its ETA, or until the key's list is full
//! ([`MAX_OPEN_PER_KEY`] entries: closed ones are dropped first): that bounded memory is what
//! lets a late revision of a closed shipment be refused (contract v2) rather than reopen it. It
//! lives in the shard's table (shard-level memory, ~40 B per closed shipment), not in the rows.
//!
//! The state transition of a key sees its schedule through the [`Schedule`] trait: in the shard,
//! [`KeySchedule`] (one key's list in the shared table); apart from the shard, [`VecSchedule`]
//! (a small sorted `Vec` with the very same semantics, e.g. for a copy of one key's state).

use hashbrown::HashMap;

use super::columns::NO_SLOT;

/// One key's open shipments, as the per-key state transition sees them
/// ([`crate::state::columns::KeyRow::apply`]). Shipments are kept in ETA order (ties in the
/// order they were opened); at most [`MAX_OPEN_PER_KEY`] are open.
pub trait Schedule {
    /// No shipment is open or remembered as closed.
    fn is_empty(&self) -> bool;
    /// The shipment `id_hash` is remembered as closed (received or cancelled).
    fn is_closed(&self, id_hash: u64) -> bool;
    /// Opens (or, for an open shipment id, revises: new qty, new ETA) a shipment; beyond
    /// [`MAX_OPEN_PER_KEY`] entries the earliest closed one, else the earliest ETA, is dropped.
    /// Returns the change of the key's in-transit quantity, or `None` (nothing changed) when
    /// the shipment is closed.
    fn open(&mut self, id_hash: u64, qty: f64, eta_ms: i64) -> Option<f64>;
    /// Closes the shipment `id_hash` (a receipt), if open.
    fn close(&mut self, id_hash: u64) -> Closed;
    /// Cancels the shipment `id_hash`: closes it without stock if open, remembers it as closed
    /// (at `eta_ms`) if unknown. Returns the in-transit quantity it removed, or `None` (nothing
    /// changed) when it was closed already.
    fn cancel(&mut self, id_hash: u64, eta_ms: i64) -> Option<f64>;
    /// Drops the shipments whose ETA is more than [`OVERDUE_MS`] before `now_ms`; returns the
    /// quantity that left in-transit.
    fn expire_overdue(&mut self, now_ms: i64) -> f64;
    /// Σ qty of the shipments arriving at or before `until_ms`, and the earliest ETA.
    fn arriving(&self, until_ms: i64) -> (f64, Option<i64>);
}

/// At most this many shipments per key, open or remembered as closed: a new one beyond it evicts
/// the earliest closed one, else the earliest ETA, so scoring a key never walks a long list
/// (shipments that are never received would otherwise pile up).
pub const MAX_OPEN_PER_KEY: usize = 16;

/// A shipment this long past its ETA without a receipt is presumed lost and dropped.
pub const OVERDUE_MS: i64 = 14 * 24 * 3_600_000;

/// One open shipment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shipment {
    /// Key row it is destined to.
    pub row: u32,
    /// Hash of the shipment id.
    pub id_hash: u64,
    /// Units in transit.
    pub qty: f64,
    /// Expected arrival, ms.
    pub eta_ms: i64,
    /// Next slot of the same key ([`NO_SLOT`] at the end).
    pub next: u32,
    /// Received or cancelled: remembered only to refuse revisions (`qty` is 0).
    pub closed: bool,
}

/// The slot table of open shipments of a shard.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    slots: Vec<Shipment>,
    free: Vec<u32>,
    by_id: HashMap<(u32, u64), u32, foldhash::fast::FixedState>,
    /// Entries of `by_id` that are closed.
    closed: usize,
    /// Open shipments dropped as overdue or beyond [`MAX_OPEN_PER_KEY`].
    pub dropped: u64,
}

/// What a receipt did to the inbound schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Closed {
    /// A matching open shipment of the same key was closed; its in-transit qty.
    Shipment(f64),
    /// No open shipment of this key has that id (never seen, already received, or another key's).
    Unmatched,
}

impl Inbound {
    /// Number of open shipments.
    pub fn open(&self) -> usize {
        self.by_id.len() - self.closed
    }

    /// Number of closed shipments remembered.
    pub fn closed(&self) -> usize {
        self.closed
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Shipment>()
            + self.free.capacity() * 4
            + self.by_id.capacity() * 17
    }

    /// The shipment `id_hash` of key `row` is remembered as closed (received or cancelled).
    #[inline]
    pub fn is_closed(&self, row: u32, id_hash: u64) -> bool {
        self.by_id
            .get(&(row, id_hash))
            .is_some_and(|&slot| self.slots[slot as usize].closed)
    }

    /// Opens (or, for an open shipment id, revises) a shipment. Returns the change of the key's
    /// in-transit quantity, `None` if the shipment is closed (nothing changes).
    pub fn open_shipment(
        &mut self,
        head: &mut u32,
        row: u32,
        id_hash: u64,
        qty: f64,
        eta_ms: i64,
    ) -> Option<f64> {
        let mut delta = qty;
        if let Some(&slot) = self.by_id.get(&(row, id_hash)) {
            if self.slots[slot as usize].closed {
                return None;
            }
            self.by_id.remove(&(row, id_hash));
            delta -= self.slots[slot as usize].qty;
            self.unlink(head, slot);
            self.free.push(slot);
        }
        self.insert(head, row, id_hash, qty, eta_ms, false);
        Some(delta - self.bound(head))
    }

    /// Cancels the shipment `id_hash` of `row`: closed without stock if open, remembered as
    /// closed at `eta_ms` if unknown. The in-transit quantity removed, `None` if it was closed.
    pub fn cancel(&mut self, head: &mut u32, row: u32, id_hash: u64, eta_ms: i64) -> Option<f64> {
        match self.by_id.get(&(row, id_hash)) {
            Some(&slot) if self.slots[slot as usize].closed => None,
            Some(&slot) => Some(self.mark_closed(slot)),
            None => {
                self.insert(head, row, id_hash, 0.0, eta_ms, true);
                self.closed += 1;
                // A closed entry never pushes an open one out: the bound drops closed first.
                self.bound(head);
                Some(0.0)
            }
        }
    }

    fn mark_closed(&mut self, slot: u32) -> f64 {
        let s = &mut self.slots[slot as usize];
        let q = s.qty;
        s.qty = 0.0;
        s.closed = true;
        self.closed += 1;
        q
    }

    fn insert(
        &mut self,
        head: &mut u32,
        row: u32,
        id_hash: u64,
        qty: f64,
        eta_ms: i64,
        closed: bool,
    ) {
        let s = Shipment {
            row,
            id_hash,
            qty,
            eta_ms,
            next: NO_SLOT,
            closed,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = s;
                i
            }
            None => {
                self.slots.push(s);
                (self.slots.len() - 1) as u32
            }
        };
        self.link_sorted(head, slot);
        self.by_id.insert((row, id_hash), slot);
    }

    /// Keeps the key's list at [`MAX_OPEN_PER_KEY`] entries, dropping closed entries first;
    /// returns the in-transit quantity that left.
    fn bound(&mut self, head: &mut u32) -> f64 {
        let mut gone = 0.0;
        while self.iter_key(*head).nth(MAX_OPEN_PER_KEY).is_some() {
            let closed = self.iter_key(*head).any(|s| s.closed);
            gone += self.drop_first(head, closed);
        }
        gone
    }

    /// Drops the key's entries whose ETA is more than [`OVERDUE_MS`] before `now_ms` (open and
    /// closed); returns the quantity that left in-transit.
    pub fn expire_overdue(&mut self, head: &mut u32, now_ms: i64) -> f64 {
        let mut gone = 0.0;
        while *head != NO_SLOT && self.slots[*head as usize].eta_ms < now_ms - OVERDUE_MS {
            let closed = self.slots[*head as usize].closed;
            gone += self.drop_first(head, closed);
        }
        gone
    }

    /// Removes the key's earliest-ETA entry that is closed (`closed`) or open; returns its
    /// quantity.
    fn drop_first(&mut self, head: &mut u32, closed: bool) -> f64 {
        let mut cur = *head;
        while cur != NO_SLOT && self.slots[cur as usize].closed != closed {
            cur = self.slots[cur as usize].next;
        }
        if cur == NO_SLOT {
            return 0.0;
        }
        let s = self.slots[cur as usize];
        self.by_id.remove(&(s.row, s.id_hash));
        self.unlink(head, cur);
        self.free.push(cur);
        if closed {
            self.closed -= 1;
        } else {
            self.dropped += 1;
        }
        s.qty
    }

    /// Closes the shipment `id_hash` of `row` (a receipt), if open.
    pub fn close(&mut self, row: u32, id_hash: u64) -> Closed {
        match self.by_id.get(&(row, id_hash)) {
            Some(&slot) if !self.slots[slot as usize].closed => {
                Closed::Shipment(self.mark_closed(slot))
            }
            _ => Closed::Unmatched,
        }
    }

    /// Σ qty of the key's open shipments arriving at or before `until_ms`, and the earliest
    /// ETA of an open one.
    pub fn arriving(&self, head: u32, until_ms: i64) -> (f64, Option<i64>) {
        let (mut sum, mut first) = (0.0, None);
        let mut cur = head;
        while cur != NO_SLOT {
            let s = &self.slots[cur as usize];
            cur = s.next;
            if s.closed {
                continue;
            }
            if first.is_none() {
                first = Some(s.eta_ms);
            }
            if s.eta_ms > until_ms {
                break; // sorted by ETA
            }
            sum += s.qty;
        }
        (sum, first)
    }

    /// The key's shipments (open and closed) in ETA order.
    pub fn iter_key(&self, head: u32) -> impl Iterator<Item = &Shipment> + '_ {
        let mut cur = head;
        std::iter::from_fn(move || {
            if cur == NO_SLOT {
                return None;
            }
            let s = &self.slots[cur as usize];
            cur = s.next;
            Some(s)
        })
    }

    /// Restores one entry of a key (snapshot or changelog), at the end of its ETA order.
    pub fn restore(
        &mut self,
        head: &mut u32,
        row: u32,
        id_hash: u64,
        qty: f64,
        eta_ms: i64,
        closed: bool,
    ) {
        self.insert(
            head,
            row,
            id_hash,
            if closed { 0.0 } else { qty },
            eta_ms,
            closed,
        );
        if closed {
            self.closed += 1;
        }
    }

    fn link_sorted(&mut self, head: &mut u32, slot: u32) {
        let eta = self.slots[slot as usize].eta_ms;
        if *head == NO_SLOT || self.slots[*head as usize].eta_ms > eta {
            self.slots[slot as usize].next = *head;
            *head = slot;
            return;
        }
        let mut cur = *head;
        loop {
            let next = self.slots[cur as usize].next;
            if next == NO_SLOT || self.slots[next as usize].eta_ms > eta {
                self.slots[slot as usize].next = next;
                self.slots[cur as usize].next = slot;
                return;
            }
            cur = next;
        }
    }

    /// A standalone copy of the key's open shipments (same order, same semantics), with room
    /// for the most a key can hold (it does not allocate again).
    pub fn schedule_of(&self, head: u32) -> VecSchedule {
        let mut v = VecSchedule::with_capacity();
        self.schedule_into(head, &mut v);
        v
    }

    /// [`Inbound::schedule_of`] into `v` (its previous content replaced, its buffer reused).
    pub fn schedule_into(&self, head: u32, v: &mut VecSchedule) {
        v.open.clear();
        v.open.extend(self.iter_key(head).map(|s| Open {
            id_hash: s.id_hash,
            qty: s.qty,
            eta_ms: s.eta_ms,
            closed: s.closed,
        }));
    }

    fn unlink(&mut self, head: &mut u32, slot: u32) {
        let next = self.slots[slot as usize].next;
        if *head == slot {
            *head = next;
            return;
        }
        let mut cur = *head;
        while cur != NO_SLOT {
            if self.slots[cur as usize].next == slot {
                self.slots[cur as usize].next = next;
                return;
            }
            cur = self.slots[cur as usize].next;
        }
    }
}

/// One key's list in a shard's [`Inbound`] table, as a [`Schedule`]. It works on a copy of the
/// key's list head: write [`KeySchedule::head`] back to the key's row when done.
#[derive(Debug)]
pub struct KeySchedule<'a> {
    inbound: &'a mut Inbound,
    row: u32,
    head: u32,
}

impl<'a> KeySchedule<'a> {
    /// The schedule of key `row`, whose list starts at `head`.
    #[inline]
    pub fn new(inbound: &'a mut Inbound, row: u32, head: u32) -> Self {
        KeySchedule { inbound, row, head }
    }

    /// The key's list head now.
    #[inline]
    pub fn head(&self) -> u32 {
        self.head
    }
}

impl Schedule for KeySchedule<'_> {
    #[inline]
    fn is_empty(&self) -> bool {
        self.head == NO_SLOT
    }

    #[inline]
    fn is_closed(&self, id_hash: u64) -> bool {
        self.inbound.is_closed(self.row, id_hash)
    }

    #[inline]
    fn open(&mut self, id_hash: u64, qty: f64, eta_ms: i64) -> Option<f64> {
        self.inbound
            .open_shipment(&mut self.head, self.row, id_hash, qty, eta_ms)
    }

    #[inline]
    fn close(&mut self, id_hash: u64) -> Closed {
        self.inbound.close(self.row, id_hash)
    }

    #[inline]
    fn cancel(&mut self, id_hash: u64, eta_ms: i64) -> Option<f64> {
        self.inbound
            .cancel(&mut self.head, self.row, id_hash, eta_ms)
    }

    #[inline]
    fn expire_overdue(&mut self, now_ms: i64) -> f64 {
        self.inbound.expire_overdue(&mut self.head, now_ms)
    }

    #[inline]
    fn arriving(&self, until_ms: i64) -> (f64, Option<i64>) {
        self.inbound.arriving(self.head, until_ms)
    }
}

/// One shipment of a [`VecSchedule`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Open {
    /// Hash of the shipment id.
    pub id_hash: u64,
    /// Units in transit (0 when closed).
    pub qty: f64,
    /// Expected arrival, ms.
    pub eta_ms: i64,
    /// Received or cancelled (remembered to refuse revisions).
    pub closed: bool,
}

/// A standalone [`Schedule`] of one key: its open shipments in a small `Vec` in ETA order,
/// with the semantics of the shard's table (see [`Inbound::schedule_of`]). It holds at most
/// [`MAX_OPEN_PER_KEY`] + 1 entries, so once [`VecSchedule::with_capacity`] reserved them it
/// never allocates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VecSchedule {
    open: Vec<Open>,
    /// Shipments dropped as overdue or beyond [`MAX_OPEN_PER_KEY`].
    pub dropped: u64,
}

impl VecSchedule {
    /// An empty schedule with room for the most shipments a key can hold.
    pub fn with_capacity() -> Self {
        VecSchedule {
            open: Vec::with_capacity(MAX_OPEN_PER_KEY + 1),
            dropped: 0,
        }
    }

    /// Heap bytes (its buffer).
    pub fn heap_bytes(&self) -> usize {
        self.open.capacity() * std::mem::size_of::<Open>()
    }

    /// The shipments (open and closed) in ETA order.
    pub fn shipments(&self) -> &[Open] {
        &self.open
    }

    fn drop_first(&mut self, closed: bool) -> f64 {
        match self.open.iter().position(|s| s.closed == closed) {
            Some(i) => {
                if !closed {
                    self.dropped += 1;
                }
                self.open.remove(i).qty
            }
            None => 0.0,
        }
    }

    fn insert(&mut self, id_hash: u64, qty: f64, eta_ms: i64, closed: bool) {
        // After every shipment of an equal or earlier ETA, as the linked list links it.
        let at = self.open.partition_point(|s| s.eta_ms <= eta_ms);
        self.open.insert(
            at,
            Open {
                id_hash,
                qty,
                eta_ms,
                closed,
            },
        );
    }

    fn bound(&mut self) -> f64 {
        let mut gone = 0.0;
        while self.open.len() > MAX_OPEN_PER_KEY {
            let closed = self.open.iter().any(|s| s.closed);
            gone += self.drop_first(closed);
        }
        gone
    }
}

impl Schedule for VecSchedule {
    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn is_closed(&self, id_hash: u64) -> bool {
        self.open.iter().any(|s| s.id_hash == id_hash && s.closed)
    }

    fn open(&mut self, id_hash: u64, qty: f64, eta_ms: i64) -> Option<f64> {
        let mut delta = qty;
        if let Some(i) = self.open.iter().position(|s| s.id_hash == id_hash) {
            if self.open[i].closed {
                return None;
            }
            delta -= self.open.remove(i).qty;
        }
        self.insert(id_hash, qty, eta_ms, false);
        Some(delta - self.bound())
    }

    fn close(&mut self, id_hash: u64) -> Closed {
        match self.open.iter_mut().find(|s| s.id_hash == id_hash) {
            Some(s) if !s.closed => {
                s.closed = true;
                Closed::Shipment(std::mem::take(&mut s.qty))
            }
            _ => Closed::Unmatched,
        }
    }

    fn cancel(&mut self, id_hash: u64, eta_ms: i64) -> Option<f64> {
        match self.open.iter_mut().find(|s| s.id_hash == id_hash) {
            Some(s) if s.closed => None,
            Some(s) => {
                s.closed = true;
                Some(std::mem::take(&mut s.qty))
            }
            None => {
                self.insert(id_hash, 0.0, eta_ms, true);
                self.bound();
                Some(0.0)
            }
        }
    }

    fn expire_overdue(&mut self, now_ms: i64) -> f64 {
        let mut gone = 0.0;
        while let Some(s) = self.open.first().filter(|s| s.eta_ms < now_ms - OVERDUE_MS) {
            let closed = s.closed;
            gone += self.drop_first(closed);
        }
        gone
    }

    fn arriving(&self, until_ms: i64) -> (f64, Option<i64>) {
        let mut sum = 0.0;
        let mut first = None;
        for s in self.open.iter().filter(|s| !s.closed) {
            first.get_or_insert(s.eta_ms);
            if s.eta_ms > until_ms {
                break; // sorted by ETA
            }
            sum += s.qty;
        }
        (sum, first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_close_sorted() {
        let mut ib = Inbound::default();
        let mut head = NO_SLOT;
        assert_eq!(ib.open_shipment(&mut head, 0, 1, 10.0, 300), Some(10.0));
        assert_eq!(ib.open_shipment(&mut head, 0, 2, 5.0, 100), Some(5.0));
        assert_eq!(ib.open_shipment(&mut head, 0, 3, 7.0, 200), Some(7.0));
        let etas: Vec<i64> = ib.iter_key(head).map(|s| s.eta_ms).collect();
        assert_eq!(etas, vec![100, 200, 300]);
        assert_eq!(ib.arriving(head, 250), (12.0, Some(100)));
        assert_eq!(ib.close(0, 3), Closed::Shipment(7.0));
        assert_eq!(ib.close(0, 3), Closed::Unmatched);
        assert_eq!(ib.close(1, 1), Closed::Unmatched, "other key");
        // A revision of an open shipment replaces its quantity and ETA.
        assert_eq!(ib.open_shipment(&mut head, 0, 1, 12.0, 50), Some(2.0));
        assert_eq!(ib.arriving(head, i64::MAX), (17.0, Some(50)));
        assert_eq!(ib.open(), 2);
        // The received one is remembered as closed: a revision or cancellation is refused.
        assert!(ib.is_closed(0, 3) && !ib.is_closed(1, 3) && !ib.is_closed(0, 1));
        assert_eq!(ib.open_shipment(&mut head, 0, 3, 4.0, 400), None);
        assert_eq!(ib.cancel(&mut head, 0, 3, 400), None);
        // Cancelling an open one removes its quantity; an unknown one is remembered closed.
        assert_eq!(ib.cancel(&mut head, 0, 2, 100), Some(5.0));
        assert_eq!(ib.cancel(&mut head, 0, 9, 100), Some(0.0));
        assert_eq!(ib.open_shipment(&mut head, 0, 9, 1.0, 100), None);
        assert_eq!(ib.arriving(head, i64::MAX), (12.0, Some(50)));
        assert_eq!((ib.open(), ib.closed()), (1, 3));
        // Closed entries leave with their ETA, like the open ones.
        assert_eq!(ib.expire_overdue(&mut head, 1_000 + OVERDUE_MS), 12.0);
        assert_eq!((head, ib.open(), ib.closed()), (NO_SLOT, 0, 0));
    }

    #[test]
    fn closed_entries_never_push_open_ones_out() {
        let mut ib = Inbound::default();
        let mut head = NO_SLOT;
        for i in 0..MAX_OPEN_PER_KEY as u64 {
            ib.open_shipment(&mut head, 0, i + 1, 1.0, i as i64);
        }
        for i in 0..40u64 {
            assert_eq!(ib.cancel(&mut head, 0, 1_000 + i, 0), Some(0.0));
        }
        assert_eq!(ib.open(), MAX_OPEN_PER_KEY);
        assert_eq!(ib.dropped, 0);
        assert_eq!(ib.iter_key(head).count(), MAX_OPEN_PER_KEY);
        // Received ones make room for the memory of closed ones.
        for i in 0..4u64 {
            assert_eq!(ib.close(0, i + 1), Closed::Shipment(1.0));
        }
        assert_eq!(ib.cancel(&mut head, 0, 2_000, 0), Some(0.0));
        assert_eq!((ib.open(), ib.closed()), (12, 4));
        assert!(ib.is_closed(0, 2_000));
    }

    #[test]
    fn lists_stay_bounded() {
        let mut ib = Inbound::default();
        let mut head = NO_SLOT;
        let mut in_transit = 0.0;
        for i in 0..100u64 {
            in_transit += ib
                .open_shipment(&mut head, 0, i + 1, 1.0, i as i64 * 1000)
                .unwrap_or_default();
        }
        assert_eq!(ib.iter_key(head).count(), MAX_OPEN_PER_KEY);
        assert_eq!(in_transit, MAX_OPEN_PER_KEY as f64);
        assert_eq!(ib.dropped, 100 - MAX_OPEN_PER_KEY as u64);
        // All of them are long overdue a month later.
        in_transit -= ib.expire_overdue(&mut head, 30 * 24 * 3_600_000);
        assert_eq!((head, in_transit, ib.open()), (NO_SLOT, 0.0, 0));
    }

    /// The standalone schedule follows the shard's table step by step.
    #[test]
    fn vec_schedule_matches_the_table() {
        let mut next = crate::xorshift(0x1234_5678_9abc_def1u64);
        let mut ib = Inbound::default();
        // Two keys share the table; key 1 is the one compared.
        let mut other = NO_SLOT;
        let mut table = KeySchedule::new(&mut ib, 1, NO_SLOT);
        let mut vec = VecSchedule::with_capacity();
        let cap = vec.open.capacity();
        let mut closed = 0;
        let day = 24 * 3_600_000i64;
        for step in 0..20_000i64 {
            let now = step * 3_600_000;
            let id = next() % 40 + 1;
            let eta = now + (next() % 20) as i64 * day - 3 * day;
            match next() % 6 {
                0 | 1 => {
                    let q = (next() % 50) as f64;
                    assert_eq!(table.open(id, q, eta), vec.open(id, q, eta), "step {step}");
                }
                2 => assert_eq!(table.close(id), vec.close(id), "step {step}"),
                5 => assert_eq!(table.cancel(id, eta), vec.cancel(id, eta), "step {step}"),
                3 => assert_eq!(
                    table.expire_overdue(now).to_bits(),
                    vec.expire_overdue(now).to_bits(),
                    "step {step}"
                ),
                _ => {
                    let head = table.head();
                    table.inbound.open_shipment(&mut other, 0, id, 1.0, eta);
                    assert_eq!(table.head(), head);
                }
            }
            assert_eq!(table.is_empty(), vec.is_empty());
            let until = now + (next() % 10) as i64 * day;
            assert_eq!(table.arriving(until), vec.arriving(until), "step {step}");
            assert_eq!(table.inbound.schedule_of(table.head()).open, vec.open);
            closed = closed.max(vec.open.iter().filter(|s| s.closed).count());
        }
        assert!(closed > 3, "closed entries were exercised ({closed})");
        assert_eq!(vec.open.capacity(), cap, "no reallocation");
        assert!(vec.dropped > 0);
    }
}
