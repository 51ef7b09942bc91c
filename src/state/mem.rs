//! The crate's only `unsafe` code outside the Kafka client (see `Cargo.toml`, `[lints]`): CPU
//! prefetch hints and the kernel's huge-page advice. Both are hints — contents and behaviour
//! are the same without them — so each is a one-line wrapper with its safety argument here.
#![allow(unsafe_code)]

/// Hints the CPU to load the cache line of `p` (any address: a prefetch never faults). No
/// architectural effect; a no-op on targets other than x86_64.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint with no architectural effect (it never faults, whatever
        // the address), and SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints the CPU to load the cache line holding `v`.
#[inline(always)]
pub(crate) fn prefetch_ref<T>(v: &T) {
    prefetch((v as *const T).cast::<u8>());
}

/// Asks the kernel to back the `page`-aligned part of `v`'s allocation with transparent huge
/// pages (`MADV_HUGEPAGE`). A refusal is ignored: the advice changes how the memory is backed,
/// never its contents. A no-op outside Linux.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>, page: usize) {
    let start = v.as_ptr() as usize;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    let from = start.next_multiple_of(page);
    let to = (start + bytes) / page * page;
    if to <= from {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `from..to` lies inside `v`'s live allocation (its capacity), and MADV_HUGEPAGE
    // only changes how the kernel backs it (never its contents); a refusal is harmless.
    unsafe {
        libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
    }
}
