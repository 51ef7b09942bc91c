//! The key dictionary: `(location, sku) -> row`. Each key lives once, as its message key
//! `"{location}|{sku}"` in one Arrow-layout string column (offsets + bytes: verifying a hit
//! touches two cache lines); the index is a `hashbrown::HashTable<u32>` of rows, so a lookup
//! hashes the borrowed strings and allocates nothing, and a new key costs one row. Ids cannot
//! contain `|` (validated at decode), so the split is unambiguous.

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

    fn push_parts(&mut self, a: &str, b: &str) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.bytes.extend_from_slice(a.as_bytes());
        self.bytes.push(crate::event::KEY_SEPARATOR);
        self.bytes.extend_from_slice(b.as_bytes());
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
    keys: StrColumn,
}

fn hash_key(location: &[u8], sku: &[u8]) -> u64 {
    // Fixed-seed hash: stable within a build, fast, and never persisted.
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5eed_57c4).build_hasher();
    h.write(location);
    h.write(sku);
    h.finish()
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
        self.keys.push_parts(location, sku);
        // Growth rehashes from the strings: rare, and saves 8 bytes per key.
        let keys = &self.keys;
        self.index.insert_unique(h, row, |&r| {
            let (l, s) = split(keys.bytes(r as usize));
            hash_key(l, s)
        });
        (row, true)
    }

    fn matches(&self, r: Row, location: &str, sku: &str) -> bool {
        // Bytes, not str: no UTF-8 check on the lookup path.
        let k = self.keys.bytes(r as usize);
        let (l, s) = (location.as_bytes(), sku.as_bytes());
        k.len() == l.len() + 1 + s.len()
            && k.starts_with(l)
            && k[l.len()] == crate::event::KEY_SEPARATOR
            && k.ends_with(s)
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

    /// Message keys as an Arrow column (row order).
    pub fn keys_array(&self) -> StringArray {
        self.keys.to_arrow()
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
        self.keys.heap_bytes()
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
        let locs: StringArray = (0..2).map(|r| Some(d.location(r))).collect();
        let skus: StringArray = (0..2).map(|r| Some(d.sku(r))).collect();
        assert_eq!(d.key(1), "S1|B");
        let r = KeyDict::from_arrays(&locs, &skus);
        assert_eq!(r.get("S1", "B"), Some(1));
        assert_eq!(r.len(), 2);
    }
}
