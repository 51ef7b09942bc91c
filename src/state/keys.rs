//! The key dictionary: `(location, sku) -> row`. The strings live once, in two Arrow-layout
//! string columns (offsets + bytes); the index is a `hashbrown::HashTable<u32>` of rows, so a
//! lookup hashes the borrowed strings and allocates nothing, and a new key costs one row.

use arrow::array::{Array, StringArray};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use hashbrown::HashTable;

/// Rows are `u32`: one shard holds at most 4 billion keys.
pub type Row = u32;

/// Append-only string column in Arrow's `Utf8` layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StrColumn {
    offsets: Vec<i32>,
    bytes: Vec<u8>,
}

impl StrColumn {
    fn bytes(&self, row: usize) -> &[u8] {
        let (a, b) = (self.offsets[row] as usize, self.offsets[row + 1] as usize);
        &self.bytes[a..b]
    }

    fn get(&self, row: usize) -> &str {
        let (a, b) = (self.offsets[row] as usize, self.offsets[row + 1] as usize);
        // Only ever filled from `&str` values, so every slice is valid UTF-8.
        std::str::from_utf8(&self.bytes[a..b]).unwrap_or_default()
    }

    fn push(&mut self, s: &str) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.bytes.extend_from_slice(s.as_bytes());
        self.offsets.push(self.bytes.len() as i32);
    }

    fn to_arrow(&self) -> StringArray {
        let offsets = if self.offsets.is_empty() {
            vec![0]
        } else {
            self.offsets.clone()
        };
        StringArray::new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            self.bytes.clone().into(),
            None,
        )
    }

    fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.bytes.capacity()
    }
}

/// `(location, sku) -> row`, rows dense from 0 in insertion order.
#[derive(Debug, Clone, Default)]
pub struct KeyDict {
    index: HashTable<Row>,
    len: usize,
    locations: StrColumn,
    skus: StrColumn,
}

fn hash_key(location: &[u8], sku: &[u8]) -> u64 {
    // Fixed-seed hash: stable within a build, fast, and never persisted.
    let s = foldhash::fast::FixedState::with_seed(0x5eed_57c4);
    use std::hash::BuildHasher;
    s.hash_one((location, sku))
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

    /// The row of `(location, sku)`, if tracked.
    pub fn get(&self, location: &str, sku: &str) -> Option<Row> {
        let h = hash_key(location.as_bytes(), sku.as_bytes());
        self.index
            .find(h, |&r| self.matches(r, location, sku))
            .copied()
    }

    /// The row of `(location, sku)`, and whether it was created by this call.
    pub fn get_or_insert(&mut self, location: &str, sku: &str) -> (Row, bool) {
        let h = hash_key(location.as_bytes(), sku.as_bytes());
        if let Some(&r) = self.index.find(h, |&r| self.matches(r, location, sku)) {
            return (r, false);
        }
        let row = self.len as Row;
        self.len += 1;
        self.locations.push(location);
        self.skus.push(sku);
        // Growth rehashes from the strings: rare, and saves 8 bytes per key.
        let (locs, skus) = (&self.locations, &self.skus);
        self.index.insert_unique(h, row, |&r| {
            hash_key(locs.bytes(r as usize), skus.bytes(r as usize))
        });
        (row, true)
    }

    fn matches(&self, r: Row, location: &str, sku: &str) -> bool {
        // Bytes, not str: no UTF-8 check on the lookup path.
        let r = r as usize;
        self.locations.bytes(r) == location.as_bytes() && self.skus.bytes(r) == sku.as_bytes()
    }

    /// The location of `row`.
    pub fn location(&self, row: Row) -> &str {
        self.locations.get(row as usize)
    }

    /// The sku of `row`.
    pub fn sku(&self, row: Row) -> &str {
        self.skus.get(row as usize)
    }

    /// Locations as an Arrow column (row order).
    pub fn locations_array(&self) -> StringArray {
        self.locations.to_arrow()
    }

    /// Skus as an Arrow column (row order).
    pub fn skus_array(&self) -> StringArray {
        self.skus.to_arrow()
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
        // hashbrown: one u32 slot plus one control byte per bucket (capacity is 7/8 of buckets).
        self.index.capacity() * 5 * 8 / 7
    }

    /// Heap bytes held by the key strings and their offsets.
    pub fn string_bytes(&self) -> usize {
        self.locations.heap_bytes() + self.skus.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = KeyDict::from_arrays(&d.locations_array(), &d.skus_array());
        assert_eq!(r.get("S1", "B"), Some(1));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn separator_ambiguity_is_impossible() {
        // ("a", "b|c") and ("a|b", "c") are different keys even though "a|b|c" is one string.
        let mut d = KeyDict::default();
        let (x, _) = d.get_or_insert("a", "b|c");
        let (y, _) = d.get_or_insert("a|b", "c");
        assert_ne!(x, y);
    }
}
