//! Matrix-product throughput of `backprop::cpu::matmul_into` at the sizes
//! of the benchmark workloads, in GFLOP/s, for 1 and 2 threads: our AVX2
//! kernel and the `gemm` crate, alternating in the same process (best of 7
//! timed loops each), so that the machine's drift hits both alike. Compare
//! with `torch.mm` at the same sizes (see BENCHMARKS.md).
//!
//! `cargo run --release --example matmul_gflops [THREADS ...]`

use backprop::cpu::{matmul_into, set_matmul_kernel, set_threads, MatmulKernel, Trans};
use std::time::Instant;

fn main() {
    use Trans::{No, Yes};
    // (name, m, k, n, op(a) transposed, op(b) transposed): the three
    // products of a linear layer's step are y = x·Wᵀ, dx = dy·W, dW = dyᵀ·x.
    let shapes = [
        ("mlp-wide y=xWt 256x1024x1024", 256, 1024, 1024, No, Yes),
        ("mlp-wide dx=dyW 256x1024x1024", 256, 1024, 1024, No, No),
        ("mlp-wide dW=dytx 1024x256x1024", 1024, 256, 1024, Yes, No),
        ("mlp-wide y=xWt 256x784x1024", 256, 784, 1024, No, Yes),
        ("mlp-small y=xWt 64x784x128", 64, 784, 128, No, Yes),
        ("mlp-small dW=dytx 128x64x784", 128, 64, 784, Yes, No),
        ("rnn step 64x128x128", 64, 128, 128, No, Yes),
        ("square 1024", 1024, 1024, 1024, No, No),
    ];
    let threads: Vec<usize> = match std::env::args().skip(1).map(|a| a.parse()).collect() {
        Ok(t) if !Vec::<usize>::is_empty(&t) => t,
        _ => vec![1, 2],
    };
    println!("| product (m×k×n) | threads | ours GFLOP/s | gemm crate GFLOP/s | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for threads in threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                set_threads(threads);
                for (name, m, k, n, ta, tb) in shapes {
                    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
                    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
                    let mut c = vec![0f32; m * n];
                    let flops = 2.0 * (m * k * n) as f64;
                    let reps = ((1e9 / flops) as usize).max(3);
                    let mut best = [f64::MAX; 2];
                    for _ in 0..7 {
                        for (i, kernel) in [MatmulKernel::Own, MatmulKernel::GemmCrate]
                            .into_iter()
                            .enumerate()
                        {
                            set_matmul_kernel(kernel);
                            matmul_into(&mut c, &a, ta, &b, tb, m, k, n, false);
                            let t0 = Instant::now();
                            for _ in 0..reps {
                                matmul_into(&mut c, &a, ta, &b, tb, m, k, n, false);
                            }
                            best[i] = best[i].min(t0.elapsed().as_secs_f64() / reps as f64);
                        }
                    }
                    let [ours, theirs] = best.map(|s| flops / s / 1e9);
                    println!(
                        "| {name} | {threads} | {ours:.1} | {theirs:.1} | {:.2}× |",
                        ours / theirs
                    );
                }
            });
    }
}
