//! Matrix-product throughput of `backprop::tensor::matmul_into` at the sizes
//! of the benchmark workloads, in GFLOP/s, for 1 and 2 threads (compare with
//! `torch.mm` at the same sizes; see BENCHMARKS.md).
//!
//! `cargo run --release --example matmul_gflops`

use backprop::tensor::{matmul_into, set_threads, Trans};
use std::time::Instant;

fn main() {
    let shapes = [
        (
            "mlp-wide fwd 256x1024x1024",
            256,
            1024,
            1024,
            Trans::No,
            Trans::Yes,
        ),
        (
            "mlp-wide dW 1024x256x1024",
            1024,
            256,
            1024,
            Trans::Yes,
            Trans::No,
        ),
        (
            "mlp-small fwd 64x784x128",
            64,
            784,
            128,
            Trans::No,
            Trans::Yes,
        ),
        ("square 1024", 1024, 1024, 1024, Trans::No, Trans::No),
    ];
    for threads in [1, 2] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                set_threads(threads);
                for (name, m, k, n, ta, tb) in shapes {
                    let a = vec![0.5f32; m * k];
                    let b = vec![0.25f32; k * n];
                    let mut c = vec![0f32; m * n];
                    let flops = 2.0 * (m * k * n) as f64;
                    let reps = ((4e9 / flops) as usize).max(3);
                    matmul_into(&mut c, &a, ta, &b, tb, m, k, n, false);
                    let mut best = f64::MAX;
                    for _ in 0..5 {
                        let t0 = Instant::now();
                        for _ in 0..reps {
                            matmul_into(&mut c, &a, ta, &b, tb, m, k, n, false);
                        }
                        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
                    }
                    println!(
                        "threads {threads}  {name:28} {:7.1} GFLOP/s",
                        flops / best / 1e9
                    );
                }
            });
    }
}
