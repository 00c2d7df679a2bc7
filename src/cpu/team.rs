//! The threads that the kernels split their work over: a fixed team of
//! helper threads that spin for a while between parallel loops instead of
//! going to sleep at once.
//!
//! Why not rayon for this: a training step alternates dozens of parallel
//! kernels with short serial passes (batch norm, the loss, the graph's
//! bookkeeping). Rayon puts an idle worker to sleep after a few dozen
//! yields, and waking it again costs more than a small product takes: on
//! this project's 2-core machine, the eight products of an mlp-bn step took
//! 1.3 ms back to back but 2.8 ms with 100 µs of serial work before each
//! (3.6 ms with 1 ms), and 1.4–1.6 ms when the second thread was kept busy
//! through those gaps. Rayon has no setting for how long its workers spin.
//! OpenMP runtimes (which PyTorch uses) spin by default for the same reason.
//! Here a helper spins for [`SPIN`] after its last job, then parks; when
//! there are more threads than cores it parks at once (spinning would take
//! the core from the thread that has work). So it does for [`BUSY_FOR`] after
//! a spinning helper was seen losing its core ([`PREEMPTED`]): other programs
//! want the cores (a compiler beside the run), and a spinning helper would
//! take them from our own threads too; and a caller waiting for a helper's
//! last job yields its core after [`YIELD_AFTER`] spins. On this project's
//! machine, with a `cargo build` beside it, that brought two threads from
//! 1.4–1.6× the time of one to about the time of one (BENCHMARKS.md).
//!
//! [`run`] hands out job indices `0..jobs` by an atomic counter; the calling
//! thread takes jobs too and never waits for a job nobody has started (it
//! runs those itself), only for jobs already running elsewhere. Which thread
//! runs which job varies from run to run; callers make every job's result
//! independent of that (each job writes its own part of the output), so
//! results stay bit-identical for a given thread count. A `run` inside a
//! job, or while another thread's `run` holds the team, runs its jobs on the
//! calling thread, in order.

use super::threads;
use std::any::Any;
use std::cell::Cell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// How long a helper spins after its last job before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// Spins of a caller waiting for the last jobs before it yields its core.
const YIELD_AFTER: u32 = 2000;
/// A gap this long between two looks of a spinning helper means it lost its
/// core to another program: the machine is busy.
const PREEMPTED: Duration = Duration::from_micros(200);
/// How long helpers park at once after one was seen losing its core.
const BUSY_FOR: Duration = Duration::from_secs(1);

/// The most helper threads (the team's size is `threads() − 1`).
const MAX_HELPERS: usize = 255;
/// The most jobs one `run` hands out at once (more go in rounds).
const MAX_JOBS: usize = (1 << 16) - 1;

/// One parallel loop, on the stack of the thread that called [`run`].
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    /// Jobs finished (by anyone, panicked or not).
    done: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// The team's shared state. `state` packs the generation (which `run` this
/// is, 24 bits), the number of helpers that may join (8), the number of
/// jobs (16) and the next unclaimed job (16): claiming a job is one
/// compare-and-swap that also checks the generation, so a helper that
/// wakes late cannot claim a job of a later run.
struct Team {
    state: AtomicU64,
    job: AtomicPtr<Job<'static>>,
    /// Held by the thread whose `run` owns the team.
    busy: Mutex<()>,
    /// Helpers spawned so far.
    helpers: Mutex<usize>,
    /// Helpers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    /// Whether helpers should park at once instead of spinning: the last
    /// run asked for more threads than there are cores.
    oversubscribed: AtomicBool,
    /// The cores this process may use (`available_parallelism` reads the
    /// cgroup files, so it is asked once).
    cores: usize,
    /// Until when (nanoseconds after `born`) helpers park at once instead
    /// of spinning: a spinning helper was seen losing its core.
    busy_until: AtomicU64,
    born: Instant,
}

fn pack(generation: u64, helpers: usize, jobs: usize, next: usize) -> u64 {
    (generation & 0xff_ffff) << 40 | (helpers as u64) << 32 | (jobs as u64) << 16 | next as u64
}

fn generation(s: u64) -> u64 {
    s >> 40
}

fn helpers_of(s: u64) -> usize {
    (s >> 32) as usize & 0xff
}

fn jobs_of(s: u64) -> usize {
    (s >> 16) as usize & 0xffff
}

fn next_of(s: u64) -> usize {
    s as usize & 0xffff
}

thread_local! {
    /// Whether this thread is running a job (a nested `run` stays serial).
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// `f()` with every [`run`] it makes on this thread kept serial, off the
/// team: for a thread that works beside the training thread (the data
/// loader's), so that it never holds the team the training thread's
/// kernels need. Results are the same (each job writes its own part).
pub fn alone<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_JOB.replace(true);
    let r = f();
    IN_JOB.set(was);
    r
}

fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| Team {
        state: AtomicU64::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        busy: Mutex::new(()),
        helpers: Mutex::new(0),
        sleepers: AtomicUsize::new(0),
        lock: Mutex::new(()),
        wake: Condvar::new(),
        oversubscribed: AtomicBool::new(false),
        cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        busy_until: AtomicU64::new(0),
        born: Instant::now(),
    })
}

impl Team {
    /// Claims and runs jobs of generation `g` until none is left unclaimed.
    fn work(&self, g: u64) {
        let mut s = self.state.load(Acquire);
        loop {
            if generation(s) != g || next_of(s) >= jobs_of(s) {
                return;
            }
            match self.state.compare_exchange_weak(s, s + 1, AcqRel, Acquire) {
                Ok(_) => {
                    // SAFETY: job `next_of(s)` of generation `g` is claimed
                    // and not finished, so the `run` that published `job`
                    // is still waiting, its `Job` alive.
                    let job = unsafe { &*self.job.load(Acquire) };
                    IN_JOB.set(true);
                    let r = catch_unwind(AssertUnwindSafe(|| (job.f)(next_of(s))));
                    IN_JOB.set(false);
                    if let Err(p) = r {
                        job.panic
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(p);
                    }
                    // The last use of `job`: after this, `run` may return.
                    job.done.fetch_add(1, Release);
                    s = self.state.load(Acquire);
                }
                Err(now) => s = now,
            }
        }
    }

    /// A helper's life: wait for a run it may join, work, repeat. `seen`
    /// is the generation before the run that spawned it, so that it joins
    /// that run too (it used to read the generation when it started, which
    /// could already be that run's: the caller then ran every job alone).
    fn helper(&'static self, index: usize, mut seen: u64) {
        loop {
            let s = self.wait_for_next(seen);
            seen = generation(s);
            if index < helpers_of(s) {
                self.work(seen);
            }
        }
    }

    /// Whether helpers should park at once: more threads than cores, or a
    /// spinning helper lost its core lately (other programs want the cores;
    /// spinning would take them from our own threads too).
    fn busy(&self) -> bool {
        self.oversubscribed.load(Relaxed)
            || (self.born.elapsed().as_nanos() as u64) < self.busy_until.load(Relaxed)
    }

    /// Spins, then parks, until the generation differs from `seen`.
    fn wait_for_next(&self, seen: u64) -> u64 {
        let start = Instant::now();
        let mut last = start;
        let mut spins = 0u32;
        loop {
            let s = self.state.load(Acquire);
            if generation(s) != seen {
                return s;
            }
            spins = spins.wrapping_add(1);
            let mut park = false;
            if spins.is_multiple_of(64) {
                let now = Instant::now();
                if now - last > PREEMPTED {
                    let until = now - self.born + BUSY_FOR;
                    self.busy_until.store(until.as_nanos() as u64, Relaxed);
                }
                last = now;
                park = self.busy() || now - start >= SPIN;
            }
            if park {
                let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.sleepers.fetch_add(1, SeqCst);
                loop {
                    let s = self.state.load(SeqCst);
                    if generation(s) != seen {
                        self.sleepers.fetch_sub(1, SeqCst);
                        return s;
                    }
                    guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Makes sure `n` helpers exist.
    fn spawn_helpers(&'static self, n: usize) {
        let mut have = self.helpers.lock().unwrap_or_else(|e| e.into_inner());
        let seen = generation(self.state.load(Acquire));
        while *have < n {
            let index = *have;
            let spawned = std::thread::Builder::new()
                .name(format!("backprop-{}", index + 1))
                .spawn(move || self.helper(index, seen));
            if spawned.is_err() {
                break; // fewer helpers: the caller runs the rest itself
            }
            *have += 1;
        }
    }
}

/// Runs `f(i)` for every `i` in `0..jobs`, on up to [`threads`] threads
/// (the caller and the team's helpers), and returns when all are done. A
/// panic in a job is raised again here, after every job has finished.
pub fn run(jobs: usize, f: &(dyn Fn(usize) + Sync)) {
    if !dispatch(jobs, f) {
        serial(jobs, f)
    }
}

/// [`run`] on the team; `false` (nothing run) where it would run serially.
fn dispatch(jobs: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
    let t = threads().min(MAX_HELPERS + 1);
    if jobs <= 1 || t <= 1 || IN_JOB.get() {
        return false;
    }
    let team = team();
    let _busy = match team.busy.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    team.spawn_helpers(t - 1);
    team.oversubscribed.store(t > team.cores, Relaxed);
    for first in (0..jobs).step_by(MAX_JOBS) {
        let n = MAX_JOBS.min(jobs - first);
        let shifted = move |i: usize| f(first + i);
        let job = Job {
            f: &shifted,
            done: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        // SAFETY (of the lifetime cast): helpers use `job` only while a job
        // of this generation is claimed and unfinished, and this function
        // waits below until every job has finished.
        let ptr = &job as *const Job<'_> as *mut Job<'static>;
        team.job.store(ptr, Release);
        let g = generation(team.state.load(Relaxed)) + 1;
        team.state.store(pack(g, t - 1, n, 0), SeqCst);
        if team.sleepers.load(SeqCst) > 0 {
            let _guard = team.lock.lock().unwrap_or_else(|e| e.into_inner());
            team.wake.notify_all();
        }
        team.work(g & 0xff_ffff);
        let mut spins = 0u32;
        while job.done.load(Acquire) < n {
            // A helper that holds a job but lost its core gets it back
            // sooner if this thread gives its own up.
            spins = spins.saturating_add(1);
            if spins > YIELD_AFTER {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Some(p) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
            resume_unwind(p);
        }
    }
    true
}

/// [`run`] on the calling thread: every job in order, then the first panic
/// raised again (as `run` does).
fn serial(jobs: usize, f: &(dyn Fn(usize) + Sync)) {
    let mut first = None;
    for i in 0..jobs {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(i))) {
            first.get_or_insert(p);
        }
    }
    if let Some(p) = first {
        resume_unwind(p);
    }
}

/// `f(index, item)` for every item, each item moved into exactly one job;
/// the results in item order.
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(usize, T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    // The items are moved out one by one below; none is dropped here.
    let items = ManuallyDrop::new(items);
    let mut out: Vec<MaybeUninit<R>> = Vec::with_capacity(n);
    // SAFETY: the capacity is `n`, and MaybeUninit needs no initialization.
    unsafe { out.set_len(n) };
    // Addresses, not references, cross into the jobs.
    let (src, dst) = (items.as_ptr() as usize, out.as_mut_ptr() as usize);
    run(n, &|i| {
        // SAFETY: job `i` runs once: it alone moves item `i` out and writes
        // result `i`, both inside their vectors.
        unsafe {
            let item = std::ptr::read((src as *const T).add(i));
            (dst as *mut MaybeUninit<R>)
                .add(i)
                .write(MaybeUninit::new(f(i, item)));
        }
    });
    // SAFETY: every job ran (a panic would have been raised by `run`), so
    // every result is written; the items' buffer is freed without dropping
    // them again (they were moved out).
    unsafe {
        drop(Vec::from_raw_parts(
            items.as_ptr() as *mut T,
            0,
            items.capacity(),
        ));
        let mut out = ManuallyDrop::new(out);
        Vec::from_raw_parts(out.as_mut_ptr() as *mut R, n, out.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::set_threads;

    #[test]
    fn every_job_runs_once_for_any_team_size() {
        for t in [1, 2, 3, 8] {
            set_threads(t);
            for jobs in [0, 1, 2, 5, 64] {
                let hits: Vec<AtomicUsize> = (0..jobs).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    run(jobs, &|i| {
                        hits[i].fetch_add(1, Relaxed);
                    });
                }
                assert!(
                    hits.iter().all(|h| h.load(Relaxed) == 50),
                    "t={t} jobs={jobs}"
                );
            }
        }
        set_threads(0);
    }

    #[test]
    fn map_keeps_order_and_moves_each_item_once() {
        set_threads(2);
        let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let out = map(items, |i, s| format!("{i}:{s}"));
        assert_eq!(out.len(), 100);
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, s)| *s == format!("{i}:{i}")));
        set_threads(0);
    }

    #[test]
    fn nested_runs_are_serial_and_complete() {
        set_threads(2);
        let total = AtomicUsize::new(0);
        run(4, &|_| {
            run(3, &|_| {
                total.fetch_add(1, Relaxed);
            });
        });
        assert_eq!(total.load(Relaxed), 12);
        set_threads(0);
    }

    #[test]
    fn a_panicking_job_is_raised_after_the_others_finish() {
        set_threads(2);
        let done = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            run(8, &|i| {
                if i == 3 {
                    panic!("job 3");
                }
                done.fetch_add(1, Relaxed);
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Relaxed), 7);
        // The team still works afterwards.
        let after = AtomicUsize::new(0);
        run(4, &|_| {
            after.fetch_add(1, Relaxed);
        });
        assert_eq!(after.load(Relaxed), 4);
        set_threads(0);
    }
}
