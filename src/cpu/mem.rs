//! Whether a block of memory can be had: the probe behind [`crate::mem`].

/// Whether a block of `bytes` can be had now.
///
/// The probe goes to the system's allocator, not the global one: the
/// global one may be mimalloc set to keep freed memory
/// ([`crate::cpu::alloc`]), which would keep the probe's address space
/// too, and every later probe (and the run) would find less. glibc maps a
/// block this large on its own and unmaps it at `dealloc`.
pub(crate) fn can_reserve(bytes: usize) -> bool {
    use std::alloc::{GlobalAlloc, Layout, System};
    let Ok(layout) = Layout::from_size_align(bytes.max(1), 64) else {
        return false;
    };
    // SAFETY: the layout has a non-zero size; the block, if any, is given
    // back at once with the same layout and never read or written.
    unsafe {
        let p = System.alloc(layout);
        if p.is_null() {
            return false;
        }
        System.dealloc(p, layout);
    }
    true
}
