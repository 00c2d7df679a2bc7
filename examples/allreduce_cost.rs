//! The cost of one gradient sum over MPI ranks (`Collective::sum_f32`:
//! an allgather, then the adds in rank order) for the parameter counts of
//! the five benchmark workloads. Run under mpirun; rank 0 prints a table.
//!
//! `cargo build --release --features mpi --example allreduce_cost &&
//!  mpirun --allow-run-as-root -np 2 target/release/examples/allreduce_cost`

use backprop::dist::mpi::Mpi;
use backprop::dist::Collective;
use std::time::Instant;

fn main() {
    let universe = mpi::initialize().expect("MPI");
    let comm = Mpi::new(universe.world());
    let workloads = [
        ("rnn-rows", 21_514usize),
        ("cnn-lenet", 61_706),
        ("mlp-small", 101_770),
        ("mlp-bn", 270_346),
        ("mlp-wide", 1_863_690),
    ];
    if comm.rank() == 0 {
        println!(
            "| workload | parameters | bytes per rank | µs per sum ({} ranks) |",
            comm.size()
        );
        println!("| --- | --- | --- | --- |");
    }
    for (name, n) in workloads {
        let mut v = vec![1.0f32; n];
        for _ in 0..5 {
            comm.sum_f32(&mut v); // warm up
        }
        let reps = (20_000_000 / n).clamp(20, 2000);
        let t = Instant::now();
        for _ in 0..reps {
            comm.sum_f32(&mut v);
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
        if comm.rank() == 0 {
            println!("| {name} | {n} | {} | {us:.0} |", 4 * n);
        }
    }
}
