//! The key dictionary: `(location, sku) -> row`. Each key lives once, as its message key
//! `"{location}|{sku}"`, in a fixed 32-byte cell per row (a length byte and the key, for keys of
//! up to 31 bytes; longer ones in an overflow buffer). The index is an open-addressing table of
//! `u64` slots (32-bit hash tag | row + 1) with linear probing: a lookup hashes the borrowed
//! strings, allocates nothing, and verifies a tag match against the stored key. It is
//! hand-written, not `hashbrown`, for one reason: with a million keys every lookup is a chain of
//! cache misses (slot → cell), and [`KeyDict::prefetch_slot`] / [`KeyDict::prefetch_key`] let
//! the ingest loop issue them several events ahead. The cell is found from the row alone, with
//! no offsets column between them: each random memory access costs a page walk here, which
//! prefetching does not hide (see `docs/performance.md`). Ids cannot contain `|` (validated at
//! decode), so the split is unambiguous.

use arrow::array::{Array, StringArray};

/// Rows are `u32`: one shard holds at most 4 billion keys.
pub type Row = u32;

/// Longest key held inline in its cell.
const INLINE: usize = 31;
/// Length byte of a cell whose key is in the overflow buffer.
const LONG: u8 = u8::MAX;

/// One key: `[len, key bytes, zero padding]` for keys of up to [`INLINE`] bytes, so two cells
/// of short keys are equal exactly when the keys are; a longer key: `[LONG, offset (u32 LE)]`
/// into [`KeyStore::long`], where it is stored as `[len (u32 LE), bytes]`. 32-byte aligned: a
/// cell is one cache line's half, never two lines.
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell([u8; 32]);

impl Cell {
    /// The inline cell of `"{a}|{b}"`, if it fits.
    #[inline]
    fn inline(a: &[u8], b: &[u8]) -> Option<Cell> {
        let len = a.len() + 1 + b.len();
        if len > INLINE {
            return None;
        }
        let mut c = [0u8; 32];
        c[0] = len as u8;
        c[1..1 + a.len()].copy_from_slice(a);
        c[1 + a.len()] = crate::event::KEY_SEPARATOR;
        c[2 + a.len()..1 + len].copy_from_slice(b);
        Some(Cell(c))
    }
}

/// The keys by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyStore {
    cells: Vec<Cell>,
    long: Vec<u8>,
}

impl KeyStore {
    fn bytes(&self, row: usize) -> &[u8] {
        let c = &self.cells[row].0;
        if c[0] != LONG {
            return &c[1..1 + usize::from(c[0])];
        }
        let at = u32::from_le_bytes([c[1], c[2], c[3], c[4]]) as usize;
        let l = &self.long[at..at + 4];
        let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
        &self.long[at + 4..at + 4 + len]
    }

    fn get(&self, row: usize) -> &str {
        // Only ever filled from `&str` values, so every key is valid UTF-8.
        std::str::from_utf8(self.bytes(row)).unwrap_or_default()
    }

    fn push_parts(&mut self, a: &str, b: &str) {
        // Read at a random place by every lookup, like the table: huge pages at scale.
        super::huge::reserve(&mut self.cells, 1);
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let cell = Cell::inline(a, b).unwrap_or_else(|| {
            let at = self.long.len() as u32;
            let len = (a.len() + 1 + b.len()) as u32;
            self.long.extend_from_slice(&len.to_le_bytes());
            self.long.extend_from_slice(a);
            self.long.push(crate::event::KEY_SEPARATOR);
            self.long.extend_from_slice(b);
            let mut c = [0u8; 32];
            c[0] = LONG;
            c[1..5].copy_from_slice(&at.to_le_bytes());
            Cell(c)
        });
        self.cells.push(cell);
    }

    fn heap_bytes(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>() + self.long.capacity()
    }
}

/// `(location, sku) -> row`, rows dense from 0 in insertion order.
#[derive(Debug, Clone, Default)]
pub struct KeyDict {
    /// Power-of-two table; 0 = empty, else `(hash >> 32) << 32 | (row + 1)`.
    slots: Vec<u64>,
    len: usize,
    keys: KeyStore,
}

/// Grow when more than 5/8 of the slots are used: short probe runs for linear probing.
const MAX_LOAD_NUM: usize = 5;
const MAX_LOAD_DEN: usize = 8;

fn tag_of(h: u64) -> u64 {
    h & 0xffff_ffff_0000_0000
}

fn hash_key(location: &[u8], sku: &[u8]) -> u64 {
    // Fixed-seed hash: stable within a build, fast, and never persisted.
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5eed_57c4).build_hasher();
    h.write(location);
    h.write(sku);
    h.finish()
}

/// Whether the stored key `k` is `"{l}|{s}"` (bytes, not str: no UTF-8 check on lookups).
fn matches(k: &[u8], l: &[u8], s: &[u8]) -> bool {
    k.len() == l.len() + 1 + s.len()
        && k.starts_with(l)
        && k[l.len()] == crate::event::KEY_SEPARATOR
        && k.ends_with(s)
}

/// Splits a stored `"{location}|{sku}"` at its separator.
fn split(key: &[u8]) -> (&[u8], &[u8]) {
    match key.iter().position(|&b| b == crate::event::KEY_SEPARATOR) {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => (key, &[]),
    }
}

impl KeyDict {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash the index uses for `(location, sku)`.
    pub fn hash(location: &str, sku: &str) -> u64 {
        hash_key(location.as_bytes(), sku.as_bytes())
    }

    /// Finds `(location, sku)` with hash `h`: `Ok(row)`, or `Err(empty slot index)`.
    fn find(&self, h: u64, location: &str, sku: &str) -> Result<Row, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let (l, s) = (location.as_bytes(), sku.as_bytes());
        // A short key (nearly all) is compared as a whole cell: two 16-byte compares.
        let probe = Cell::inline(l, s);
        let mask = self.slots.len() - 1;
        let tag = tag_of(h);
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            let row = (slot as u32).wrapping_sub(1);
            if tag_of(slot) == tag {
                let hit = match &probe {
                    Some(p) => self.keys.cells[row as usize] == *p,
                    None => matches(self.keys.bytes(row as usize), l, s),
                };
                if hit {
                    return Ok(row);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The row of `(location, sku)`, if tracked.
    pub fn get(&self, location: &str, sku: &str) -> Option<Row> {
        self.find(Self::hash(location, sku), location, sku).ok()
    }

    /// The row of `(location, sku)`, and whether it was created by this call.
    pub fn get_or_insert(&mut self, location: &str, sku: &str) -> (Row, bool) {
        self.get_or_insert_hashed(Self::hash(location, sku), location, sku)
    }

    /// [`KeyDict::get_or_insert`] with the hash already computed ([`KeyDict::hash`]).
    pub fn get_or_insert_hashed(&mut self, h: u64, location: &str, sku: &str) -> (Row, bool) {
        let slot = match self.find(h, location, sku) {
            Ok(row) => return (row, false),
            Err(slot) => slot,
        };
        let row = self.len as Row;
        self.len += 1;
        self.keys.push_parts(location, sku);
        if self.len * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            self.grow();
        } else {
            self.slots[slot] = tag_of(h) | (u64::from(row) + 1);
        }
        (row, true)
    }

    /// Doubles the table and re-inserts every row (hashes recomputed from the strings: rare,
    /// and saves storing them).
    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(64);
        let mut slots = vec![0u64; cap];
        super::huge::advise(&slots);
        let mask = cap - 1;
        for r in 0..self.len {
            let (l, s) = split(self.keys.bytes(r));
            let h = hash_key(l, s);
            let mut i = h as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = tag_of(h) | (r as u64 + 1);
        }
        self.slots = slots;
    }

    /// Prefetch stage 1, several events ahead: the slot a hash starts probing at.
    #[inline]
    pub fn prefetch_slot(&self, h: u64) {
        if !self.slots.is_empty() {
            super::mem::prefetch_ref(&self.slots[h as usize & (self.slots.len() - 1)]);
        }
    }

    /// The row of the first tag match at a hash's home slot, if any (prefetch stages 2 and 3).
    #[inline]
    fn candidate(&self, h: u64) -> Option<usize> {
        let s = *self
            .slots
            .get(h as usize & self.slots.len().wrapping_sub(1))?;
        (s != 0 && tag_of(s) == tag_of(h)).then(|| (s as u32 - 1) as usize)
    }

    /// Prefetch stage 2 (the slot is cached by now): the candidate's key cell.
    #[inline]
    pub fn prefetch_key(&self, h: u64) {
        if let Some(c) = self.candidate(h).and_then(|r| self.keys.cells.get(r)) {
            super::mem::prefetch_ref(c);
        }
    }

    /// Hints the CPU to load the key cell of `row` (the apply loop reads a key's names for its
    /// pools: a cache miss at scale unless fetched a few events ahead).
    #[inline]
    pub fn prefetch_row(&self, row: Row) {
        if let Some(c) = self.keys.cells.get(row as usize) {
            super::mem::prefetch_ref(c);
        }
    }

    /// The location and the sku of `row`, from one read of its key.
    pub fn parts(&self, row: Row) -> (&str, &str) {
        let k = self.keys.get(row as usize);
        k.split_once('|').unwrap_or((k, ""))
    }

    /// The location of `row`.
    pub fn location(&self, row: Row) -> &str {
        let k = self.keys.get(row as usize);
        k.split_once('|').map_or(k, |(l, _)| l)
    }

    /// The message key `"{location}|{sku}"` of `row`.
    pub fn key(&self, row: Row) -> &str {
        self.keys.get(row as usize)
    }

    /// The sku of `row`.
    pub fn sku(&self, row: Row) -> &str {
        let k = self.keys.get(row as usize);
        k.split_once('|').map_or("", |(_, s)| s)
    }

    /// Rebuilds a dictionary from location and sku columns in row order.
    pub fn from_arrays(locations: &StringArray, skus: &StringArray) -> KeyDict {
        let mut d = KeyDict::default();
        for i in 0..locations.len() {
            d.get_or_insert(locations.value(i), skus.value(i));
        }
        d
    }

    /// Heap bytes held by the hash index (not the strings).
    pub fn index_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }

    /// Heap bytes held by the key strings (cells and overflow).
    pub fn string_bytes(&self) -> usize {
        self.keys.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_keys_survive_growth() {
        let mut d = KeyDict::default();
        for i in 0..10_000 {
            assert_eq!(
                d.get_or_insert(&format!("S{}", i % 97), &format!("K{i}")),
                (i, true)
            );
        }
        for i in 0..10_000 {
            assert_eq!(d.get(&format!("S{}", i % 97), &format!("K{i}")), Some(i));
        }
        assert_eq!(d.get("S1", "nope"), None);
        assert!(d.index_bytes() <= 10_000 * 8 * 4);
    }

    #[test]
    fn long_keys_live_in_the_overflow_buffer() {
        let mut d = KeyDict::default();
        // Around the inline limit (31 bytes with the separator), and ids of 128 bytes.
        let ids: Vec<(String, String)> = (25..40)
            .map(|n| ("L".repeat(n / 2), format!("{n:0w$}", w = n - n / 2 - 1)))
            .chain([
                ("x".repeat(128), "y".repeat(128)),
                ("é".repeat(64), "K".into()),
            ])
            .collect();
        for (i, (l, s)) in ids.iter().enumerate() {
            assert_eq!(d.get_or_insert(l, s), (i as Row, true), "{l}|{s}");
        }
        for _ in 0..200 {
            d.get_or_insert(&format!("G{}", d.len()), "z"); // grow: rehash from stored keys
        }
        for (i, (l, s)) in ids.iter().enumerate() {
            let r = i as Row;
            assert_eq!(d.get(l, s), Some(r));
            assert_eq!((d.location(r), d.sku(r)), (l.as_str(), s.as_str()));
            assert_eq!(d.key(r).len(), l.len() + 1 + s.len());
            // Same length, one byte different: not a match.
            assert_eq!(d.get(l, &s.replacen(|_| true, "#", 1)), None);
        }
        assert!(d.string_bytes() >= 32 * d.len());
    }

    #[test]
    fn insert_and_get() {
        let mut d = KeyDict::default();
        assert_eq!(d.get_or_insert("S1", "A"), (0, true));
        assert_eq!(d.get_or_insert("S1", "B"), (1, true));
        assert_eq!(d.get_or_insert("S1", "A"), (0, false));
        assert_eq!(d.get("S1", "B"), Some(1));
        assert_eq!(d.get("S2", "A"), None);
        assert_eq!(d.location(1), "S1");
        assert_eq!(d.sku(1), "B");
        let locs: StringArray = (0..2).map(|r| Some(d.location(r))).collect();
        let skus: StringArray = (0..2).map(|r| Some(d.sku(r))).collect();
        assert_eq!(d.key(1), "S1|B");
        let r = KeyDict::from_arrays(&locs, &skus);
        assert_eq!(r.get("S1", "B"), Some(1));
        assert_eq!(r.len(), 2);
    }
}
