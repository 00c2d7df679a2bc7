//! Data-parallel training: the [`Collective`] a run shares its sums
//! through, and the MPI implementation of it (feature `mpi`).
//!
//! With N ranks, every rank draws the same seeded batch order; each global
//! batch is cut into N contiguous shards ([`shard`]), one per rank. Each rank
//! takes the loss of its shard as `Σ ℓᵢ / B` (B: the global batch), so the
//! ranks' gradients add up to the gradient of the global batch's mean loss;
//! [`Collective::sum_f32`] adds them in rank order, so every rank gets the
//! same bits and applies the same optimizer step. Batch norm in training uses
//! the statistics of the whole global batch (its sums go through
//! [`Collective::sum_f64`] in the forward and the backward pass), and dropout
//! draws each sample's mask from its index in the global batch. What differs
//! from one process is only the order of some additions.

#[cfg(feature = "mpi")]
pub mod mpi;

/// Sums over the processes of a data-parallel run. Every method is called
/// by every rank at the same point of the run (a collective operation).
pub trait Collective {
    /// This process's index, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replace `v` on every rank by the elementwise sum of every rank's `v`,
    /// added in rank order (rank 0 + rank 1 + …): the same bits everywhere,
    /// whatever the timing.
    fn sum_f64(&self, v: &mut [f64]);
    /// [`Collective::sum_f64`] for `f32`.
    fn sum_f32(&self, v: &mut [f32]);
    /// Every rank's `v`, in rank order.
    fn gather_u64(&self, v: u64) -> Vec<u64>;
}

/// The contiguous part `lo..hi` of a batch of `n` samples that rank `rank`
/// of `size` takes: the first `n % size` ranks take one sample more.
///
/// ```
/// use backprop::dist::shard;
/// assert_eq!((0..3).map(|r| shard(10, r, 3)).collect::<Vec<_>>(), [(0, 4), (4, 7), (7, 10)]);
/// ```
pub fn shard(n: usize, rank: usize, size: usize) -> (usize, usize) {
    let (base, extra) = (n / size, n % size);
    let lo = rank * base + rank.min(extra);
    (lo, lo + base + usize::from(rank < extra))
}
