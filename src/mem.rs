//! Memory a run will need, asked for before it is used.
//!
//! Rust ends the process when an allocation fails (`memory allocation of
//! 3136000000 bytes failed`, then an abort). A model or a batch too large
//! for the machine is a user's mistake, not a bug, so the large blocks are
//! asked for first with a probe that returns an error instead: [`Sequential::parse`](crate::nn::Sequential::parse) for the
//! weights, [`train::check_run`](crate::train::check_run) for the
//! gradients, the optimizer's state and a batch's activations, the IDX
//! loader for the images. The probe reserves address space without
//! touching it (no page is written), so it costs a `mmap` and a `munmap`.
//!
//! What it can see is what the operating system will hand out: a limit set
//! with `ulimit -v`, or, under Linux's default overcommit, a block larger
//! than memory and swap together. Memory promised but taken by another
//! process later is beyond it.

use crate::{Error, Result};

/// Whether a block of `bytes` can be had now (a `mmap` and a `munmap`).
pub fn can_reserve(bytes: usize) -> bool {
    crate::cpu::mem::can_reserve(bytes)
}

/// The largest block up to `upper` bytes that can be had now, within 1/64
/// of itself: halve until a block fits, then bisect (a few dozen probes).
pub fn largest_reservable(upper: usize) -> usize {
    if can_reserve(upper) {
        return upper;
    }
    let (mut lo, mut hi) = (upper / 2, upper);
    while lo > 0 && !can_reserve(lo) {
        (lo, hi) = (lo / 2, lo);
    }
    while lo > 0 && hi - lo > (lo / 64).max(1 << 20) {
        let mid = lo + (hi - lo) / 2;
        if can_reserve(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Ask for `bytes` for `what`; the error names `what`, the size and how
/// much could be had, and ends with `fix`.
pub fn reserve(bytes: usize, what: &str, fix: &str) -> Result<()> {
    if can_reserve(bytes) {
        return Ok(());
    }
    Err(Error::OutOfMemory(format!(
        "{what} need {}, more than this machine can give now (at most {}); {fix}",
        human(bytes),
        human(largest_reservable(bytes))
    )))
}

/// `3136000000` → `3.14 GB` (decimal units, as `df -H` and `ls --si`).
pub fn human(bytes: usize) -> String {
    let b = bytes as f64;
    match b {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        _ => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_answer_and_sizes_read_well() {
        assert!(can_reserve(1 << 20));
        // More than any address space: refused, and the error says so.
        assert!(!can_reserve(usize::MAX / 2));
        let e = reserve(usize::MAX / 2, "the weights", "use smaller layers")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("not enough memory: the weights need ")
                && e.ends_with("use smaller layers"),
            "{e}"
        );
        assert!(!e.contains("at most 0 bytes"), "{e}");
        assert!(largest_reservable(1 << 30) <= 1 << 30);
        assert_eq!(human(3_136_000_000), "3.14 GB");
        assert_eq!(human(2_500_000), "2.5 MB");
        assert_eq!(human(12), "12 bytes");
    }
}
