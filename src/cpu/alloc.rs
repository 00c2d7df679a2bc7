//! The memory allocator for training programs (feature `mimalloc`, on with
//! the default `cli`).
//!
//! A training step allocates the same few large buffers every step (each
//! op's output, each gradient). glibc's malloc serves many of them from
//! fresh pages that the kernel must zero, and hands them back at `free`:
//! a fifth of an mlp-small run went to that, and the 2-epoch speedrun was
//! 14 % slower with glibc than with mimalloc set up as here
//! (BENCHMARKS.md). A program that trains declares
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: backprop::alloc::MiMalloc = backprop::alloc::MiMalloc;
//! ```
//!
//! and calls [`keep_freed_memory`] first thing in `main`, as the `backprop`
//! command and `examples/speedrun.rs` do.
//!
//! mimalloc is built without transparent huge pages (libmimalloc-sys
//! `no_thp`): with them, the first touch of each 2 MiB region had the
//! kernel zero all of it, 0.5–1 s of system time in a 2-epoch BN-LeNet run
//! (0.3 s without), and mlp-small's epochs took 0.28 s instead of 0.22.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3; the Rust binding has
/// no name for it): milliseconds before freed memory goes back to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process. By default mimalloc hands memory freed
/// for 10 ms back to the OS, and a step that frees and re-allocates its
/// megabyte-sized buffers then pays for the kernel zeroing fresh pages again:
/// up to a tenth of an mlp-wide epoch (`perf`: `clear_page_erms`). The peak
/// resident memory is unchanged; it is just not lowered between steps.
pub fn keep_freed_memory() {
    // SAFETY: sets one integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
