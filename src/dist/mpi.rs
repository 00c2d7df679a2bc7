//! [`Collective`] over MPI (feature `mpi`), through rsmpi.
//!
//! Sums are not MPI reductions: `MPI_Allreduce` may add in an order that
//! depends on the library's algorithm and the message size. Every rank
//! gathers every rank's vector (`MPI_Allgather`) and adds them itself in rank
//! order, so the result is the same bits on every rank and in every run. It
//! moves N times the data of a reduction, which is fine for a few ranks;
//! see BENCHMARKS.md for the cost and for what scales past them.

use super::Collective;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

/// The processes of `MPI_COMM_WORLD`.
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
}

impl Mpi {
    /// The world of an initialized MPI (keep the `Universe` alive meanwhile).
    pub fn new(world: SimpleCommunicator) -> Mpi {
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Mpi { world, rank, size }
    }

    /// End every process of the run at once (`MPI_Abort`), so that no rank
    /// waits forever for one that stopped.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// Add `gathered` (`size` vectors of `n`, rank after rank) into `v` in rank order.
fn add_in_rank_order<T: Copy + std::ops::Add<Output = T>>(v: &mut [T], gathered: &[T]) {
    let n = v.len();
    v.copy_from_slice(&gathered[..n]);
    for part in gathered[n..].chunks_exact(n) {
        for (a, &b) in v.iter_mut().zip(part) {
            *a = *a + b;
        }
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f64(&self, v: &mut [f64]) {
        let mut all = vec![0f64; v.len() * self.size];
        self.world.all_gather_into(&v[..], &mut all[..]);
        add_in_rank_order(v, &all);
    }

    fn sum_f32(&self, v: &mut [f32]) {
        let mut all = vec![0f32; v.len() * self.size];
        self.world.all_gather_into(&v[..], &mut all[..]);
        add_in_rank_order(v, &all);
    }

    fn gather_u64(&self, v: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size];
        self.world.all_gather_into(&v, &mut all[..]);
        all
    }
}
