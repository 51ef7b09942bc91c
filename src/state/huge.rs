//! Transparent huge pages for the large state buffers that every event reads at a random place.
//!
//! With a million keys the rows alone are ~224 MB: with 4 KiB pages nearly every row access is
//! also a TLB miss (a page walk, twice as long under virtualisation), which prefetching does not
//! hide. Where the kernel offers transparent huge pages only on request (`madvise` mode, the
//! common default), [`HugeVec`] asks for them. A hint only: contents and behaviour are the same
//! without it, elsewhere or when the kernel declines.

/// Buffers smaller than this keep ordinary pages.
const MIN_BYTES: usize = 4 << 20;
/// The huge page size on x86_64 and aarch64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Asks for huge pages over the whole 2 MiB-aligned part of `v`'s allocation.
pub fn advise<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < MIN_BYTES {
        return;
    }
    super::mem::advise_huge_pages(v, HUGE_PAGE);
}

/// Makes room for `extra` more elements, growing by doubling into a fresh allocation that is
/// advised *before* the old elements are copied in (a `realloc` would move the old pages as
/// they are, small).
pub fn reserve<T>(v: &mut Vec<T>, extra: usize) {
    let need = v.len() + extra;
    if need <= v.capacity() {
        return;
    }
    // Vec's own growth rule (double, or what is needed if more), so the slack is the same.
    let cap = need.max(v.capacity() * 2).max(4);
    if cap * std::mem::size_of::<T>() < MIN_BYTES {
        v.reserve(cap - v.len());
        return;
    }
    let mut grown = Vec::with_capacity(cap);
    advise(&grown);
    grown.append(v);
    *v = grown;
}

#[cfg(test)]
mod tests {
    #[test]
    fn reserve_keeps_contents_and_grows_by_doubling() {
        let mut v: Vec<u64> = (0..1000).collect();
        super::reserve(&mut v, 1 << 20);
        assert!(v.capacity() >= 1000 + (1 << 20));
        assert_eq!(v.len(), 1000);
        assert!(v.iter().copied().eq(0..1000));
        let cap = v.capacity();
        super::reserve(&mut v, 10);
        assert_eq!(v.capacity(), cap, "room already");
    }
}
