//! The inbound schedule: open shipments per key, in a slot table shared by the shard. Each key's
//! shipments form a singly linked list from `Columns::inbound_head`, sorted by ETA, so the
//! per-key cost is one `u32` and keys with nothing inbound (most of them) pay nothing more.
//! Shipments are found by (key row, `xxh3` hash of their `shipment_id`): an id is only ever
//! matched within its own key.

use hashbrown::HashMap;

use super::columns::NO_SLOT;

/// At most this many open shipments per key: a new one beyond it evicts the earliest ETA, so
/// scoring a key never walks a long list (shipments that are never received would otherwise
/// pile up).
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
}

/// The slot table of open shipments of a shard.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    slots: Vec<Shipment>,
    free: Vec<u32>,
    by_id: HashMap<(u32, u64), u32, foldhash::fast::FixedState>,
    /// Shipments dropped as overdue or beyond [`MAX_OPEN_PER_KEY`].
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
        self.by_id.len()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Shipment>()
            + self.free.capacity() * 4
            + self.by_id.capacity() * 17
    }

    /// Opens (or, for a re-sent shipment id, replaces) a shipment. Returns the change of the
    /// key's in-transit quantity.
    pub fn open_shipment(
        &mut self,
        head: &mut u32,
        row: u32,
        id_hash: u64,
        qty: f64,
        eta_ms: i64,
    ) -> f64 {
        let mut delta = qty;
        if let Some(slot) = self.by_id.remove(&(row, id_hash)) {
            delta -= self.slots[slot as usize].qty;
            self.unlink(head, slot);
            self.free.push(slot);
        }
        let s = Shipment {
            row,
            id_hash,
            qty,
            eta_ms,
            next: NO_SLOT,
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
        if self.iter_key(*head).nth(MAX_OPEN_PER_KEY).is_some() {
            delta -= self.drop_head(head);
        }
        delta
    }

    /// Drops the key's shipments whose ETA is more than [`OVERDUE_MS`] before `now_ms`;
    /// returns the quantity that left in-transit.
    pub fn expire_overdue(&mut self, head: &mut u32, now_ms: i64) -> f64 {
        let mut gone = 0.0;
        while *head != NO_SLOT && self.slots[*head as usize].eta_ms < now_ms - OVERDUE_MS {
            gone += self.drop_head(head);
        }
        gone
    }

    /// Removes the earliest-ETA shipment of a key; returns its quantity.
    fn drop_head(&mut self, head: &mut u32) -> f64 {
        let slot = *head;
        let s = self.slots[slot as usize];
        self.by_id.remove(&(s.row, s.id_hash));
        *head = s.next;
        self.free.push(slot);
        self.dropped += 1;
        s.qty
    }

    /// Closes the shipment `id_hash` of `row`, if open.
    pub fn close(&mut self, head: &mut u32, row: u32, id_hash: u64) -> Closed {
        match self.by_id.remove(&(row, id_hash)) {
            Some(slot) => {
                let qty = self.slots[slot as usize].qty;
                self.unlink(head, slot);
                self.free.push(slot);
                Closed::Shipment(qty)
            }
            None => Closed::Unmatched,
        }
    }

    /// Σ qty of the key's shipments arriving at or before `until_ms`, and the earliest ETA.
    pub fn arriving(&self, head: u32, until_ms: i64) -> (f64, Option<i64>) {
        let (mut sum, mut first) = (0.0, None);
        let mut cur = head;
        while cur != NO_SLOT {
            let s = &self.slots[cur as usize];
            if first.is_none() {
                first = Some(s.eta_ms);
            }
            if s.eta_ms > until_ms {
                break; // sorted by ETA
            }
            sum += s.qty;
            cur = s.next;
        }
        (sum, first)
    }

    /// The key's open shipments in ETA order.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_close_sorted() {
        let mut ib = Inbound::default();
        let mut head = NO_SLOT;
        assert_eq!(ib.open_shipment(&mut head, 0, 1, 10.0, 300), 10.0);
        assert_eq!(ib.open_shipment(&mut head, 0, 2, 5.0, 100), 5.0);
        assert_eq!(ib.open_shipment(&mut head, 0, 3, 7.0, 200), 7.0);
        let etas: Vec<i64> = ib.iter_key(head).map(|s| s.eta_ms).collect();
        assert_eq!(etas, vec![100, 200, 300]);
        assert_eq!(ib.arriving(head, 250), (12.0, Some(100)));
        assert_eq!(ib.close(&mut head, 0, 3), Closed::Shipment(7.0));
        assert_eq!(ib.close(&mut head, 0, 3), Closed::Unmatched);
        assert_eq!(ib.close(&mut head, 1, 1), Closed::Unmatched, "other key");
        // Re-sent shipment replaces the old quantity.
        assert_eq!(ib.open_shipment(&mut head, 0, 1, 12.0, 300), 2.0);
        assert_eq!(ib.arriving(head, i64::MAX), (17.0, Some(100)));
        assert_eq!(ib.open(), 2);
    }

    #[test]
    fn lists_stay_bounded() {
        let mut ib = Inbound::default();
        let mut head = NO_SLOT;
        let mut in_transit = 0.0;
        for i in 0..100u64 {
            in_transit += ib.open_shipment(&mut head, 0, i + 1, 1.0, i as i64 * 1000);
        }
        assert_eq!(ib.iter_key(head).count(), MAX_OPEN_PER_KEY);
        assert_eq!(in_transit, MAX_OPEN_PER_KEY as f64);
        assert_eq!(ib.dropped, 100 - MAX_OPEN_PER_KEY as u64);
        // All of them are long overdue a month later.
        in_transit -= ib.expire_overdue(&mut head, 30 * 24 * 3_600_000);
        assert_eq!((head, in_transit, ib.open()), (NO_SLOT, 0.0, 0));
    }
}
