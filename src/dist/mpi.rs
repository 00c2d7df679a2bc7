//! [`Collective`] over MPI (feature `mpi`), through rsmpi.
//!
//! Sums are not MPI reductions: `MPI_Allreduce` may add in an order that
//! depends on the library's algorithm and the message size. Every rank
//! sends its vector to every other rank and adds them itself in rank order,
//! so the result is the same bits on every rank and in every run. It moves
//! N times the data of a reduction, which is fine for a few ranks; see
//! BENCHMARKS.md for the cost and for what scales past them.
//!
//! The exchange is point to point and non-blocking, so a rank knows whom
//! it is still waiting for: a rank that does not answer within the
//! timeout ([`Mpi::set_timeout`]; stopped, hung, or on a lost machine) ends
//! the job on every rank that waits for it, each naming it, instead of
//! leaving them blocked forever. (A rank that dies is seen by the launcher,
//! which ends the job at once.)

use super::Collective;
use mpi::datatype::Equivalence;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::SimpleCommunicator;
use mpi::traits::Communicator;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a rank waits for the others in one collective by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The tag of the exchanges (messages between two ranks on one tag arrive
/// in the order sent, and every rank runs the collectives in one order).
const TAG: i32 = 7;

/// The processes of `MPI_COMM_WORLD`.
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    timeout: Cell<Duration>,
}

/// Whether an MPI launcher (`mpirun`, `srun`, …) started this process as
/// one of several: then a training program initializes MPI and trains
/// data-parallel; started alone it behaves exactly as without MPI.
pub fn launched() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
    .any(|n| n > 1)
}

/// The world of a launched run: MPI initialized and the collective over
/// every rank, or `None` when the process was not [`launched`] as one of
/// several (or MPI would not start). Keep the `Universe` alive while
/// training; dropping it finalizes MPI.
pub fn start() -> Option<(mpi::environment::Universe, Mpi)> {
    if !launched() {
        return None;
    }
    let u = mpi::initialize()?;
    let m = Mpi::new(u.world());
    Some((u, m))
}

impl Mpi {
    /// The world of an initialized MPI (keep the `Universe` alive meanwhile).
    pub fn new(world: SimpleCommunicator) -> Mpi {
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Mpi {
            world,
            rank,
            size,
            timeout: Cell::new(DEFAULT_TIMEOUT),
        }
    }

    /// Wait at most `t` for the other ranks in each collective (default
    /// [`DEFAULT_TIMEOUT`]); past it, end the job, naming the ranks that
    /// did not answer.
    pub fn set_timeout(&self, t: Duration) {
        self.timeout.set(t);
    }

    /// End every process of the run at once (`MPI_Abort`), so that no rank
    /// waits forever for one that stopped.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// Every rank's `mine` (all of one length), rank after rank.
    fn exchange<T: Equivalence + Copy + Default>(&self, mine: &[T]) -> Vec<T> {
        let n = mine.len();
        let mut all = vec![T::default(); n * self.size];
        all[self.rank * n..(self.rank + 1) * n].copy_from_slice(mine);
        if n == 0 || self.size == 1 {
            return all;
        }
        let timeout = self.timeout.get();
        mpi::request::scope(|scope| {
            let mut recvs = Vec::with_capacity(self.size - 1);
            for (r, part) in all.chunks_mut(n).enumerate() {
                if r != self.rank {
                    let from = self.world.process_at_rank(r as i32);
                    recvs.push((r, from.immediate_receive_into_with_tag(scope, part, TAG)));
                }
            }
            let mut sends = Vec::with_capacity(self.size - 1);
            for r in (0..self.size).filter(|&r| r != self.rank) {
                let to = self.world.process_at_rank(r as i32);
                sends.push((r, to.immediate_send_with_tag(scope, mine, TAG)));
            }
            let mut t0 = Instant::now();
            let mut last = t0;
            let mut polls = 0u32;
            while !(recvs.is_empty() && sends.is_empty()) {
                recvs = recvs
                    .into_iter()
                    .filter_map(|(r, q)| q.test().err().map(|q| (r, q)))
                    .collect();
                sends = sends
                    .into_iter()
                    .filter_map(|(r, q)| q.test().err().map(|q| (r, q)))
                    .collect();
                polls += 1;
                if polls > 10_000 {
                    // Waiting long: give the core to the kernels' threads.
                    std::thread::sleep(Duration::from_micros(100));
                }
                let now = Instant::now();
                if now - last > timeout / 2 {
                    // This process itself was stopped (SIGSTOP, a suspended
                    // machine): the others get a whole wait again.
                    t0 = now;
                }
                last = now;
                if now - t0 > timeout {
                    // The ranks whose part never came; if every part came,
                    // those that never took ours. (A rank whose part came
                    // is alive, even if our send to it is still pending
                    // while it waits on a stopped third rank.)
                    let pending = if recvs.is_empty() { &sends } else { &recvs };
                    let mut silent: Vec<usize> = pending.iter().map(|(r, _)| *r).collect();
                    silent.sort_unstable();
                    silent.dedup();
                    self.give_up(&silent, timeout);
                }
            }
        });
        all
    }

    /// The ranks `silent` did not answer within `timeout`: say so on one
    /// line and end the job on every rank.
    fn give_up(&self, silent: &[usize], timeout: Duration) -> ! {
        use std::io::Write;
        let who: Vec<String> = silent.iter().map(usize::to_string).collect();
        let line = format!(
            "error: rank {} of {}: rank {} did not answer for {} s (stopped, hung, or its machine lost); \
             ending the run on every rank (continue it from its last save with --resume, on any number of \
             ranks; --collective-timeout sets the wait)\n",
            self.rank,
            self.size,
            who.join(", "),
            timeout.as_secs_f64()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        self.abort(1)
    }
}

/// Add `gathered` (`size` vectors of `n`, rank after rank) into `v` in rank order.
fn add_in_rank_order<T: Copy + std::ops::Add<Output = T>>(v: &mut [T], gathered: &[T]) {
    let n = v.len();
    if n == 0 {
        return;
    }
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
        let all = self.exchange(v);
        add_in_rank_order(v, &all);
    }

    fn sum_f32(&self, v: &mut [f32]) {
        let all = self.exchange(v);
        add_in_rank_order(v, &all);
    }

    fn gather_u64(&self, v: u64) -> Vec<u64> {
        self.exchange(&[v])
    }
}
