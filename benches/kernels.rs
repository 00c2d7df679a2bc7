//! Criterion benchmarks of the kernels a training step spends its time in,
//! at the sizes of the five benchmark workloads (BENCHMARKS.md).
//!
//! ```sh
//! cargo bench --bench kernels                 # all, 2 threads
//! cargo bench --bench kernels -- matmul       # one group
//! BENCH_THREADS=1 cargo bench --bench kernels # one thread
//! ```
//!
//! - `matmul`: our kernel and the `gemm` crate on the products of a linear
//!   layer's step (`y = x·Wᵀ`, `∂x = δ·W`, `∂W = δᵀ·x`). Throughput is in
//!   floating-point operations: criterion's "Gelem/s" reads as GFLOP/s. This
//!   machine's peak is about 190 GFLOP/s on 2 cores (BENCHMARKS.md).
//! - `conv`: LeNet's two convolutions, each by the direct kernels and by
//!   im2col, and its two max pools (forward + backward, batch 64; conv1 as a
//!   first layer, without ∂x).
//!
//! Each forward + backward is seeded with a gradient of ones at the op's
//! output (`backward_with`), so that only the op itself is timed.
//! - `fused`: the one-node ops: linear + bias, softmax + cross-entropy,
//!   batch norm, the RNN over 28 steps (each forward + backward), and the
//!   optimizer updates over mlp-wide's 1.86 M parameters.
//!
//! End-to-end epochs against PyTorch: `tools/bench.py` (see BENCHMARKS.md).

use backprop::cpu::{matmul_into, set_matmul_kernel, set_threads, MatmulKernel, Trans};
use backprop::ops::conv::set_im2col_only;
use backprop::ops::gradcheck::pseudo_random;
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::{Graph, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

fn threads() -> usize {
    let t = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    // The global pool can only be built once; later calls keep the first.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build_global();
    set_threads(t);
    t
}

fn matmul(c: &mut Criterion) {
    use Trans::{No, Yes};
    let t = threads();
    let mut group = c.benchmark_group(format!("matmul/{t}t"));
    let shapes = [
        ("mlp-wide y=xWt", 256, 1024, 1024, No, Yes),
        ("mlp-wide dx=dyW", 256, 1024, 1024, No, No),
        ("mlp-wide dW=dytx", 1024, 256, 1024, Yes, No),
        ("mlp-small y=xWt", 64, 784, 128, No, Yes),
        ("mlp-small dW=dytx", 128, 64, 784, Yes, No),
        ("lenet conv1 W.cols", 6, 25, 784, No, No),
        ("rnn step h.Whh^T", 64, 128, 128, No, Yes),
    ];
    for (name, m, k, n, ta, tb) in shapes {
        let a = pseudo_random(&[m * k], 1).into_vec();
        let b = pseudo_random(&[k * n], 2).into_vec();
        let mut out = vec![0f32; m * n];
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        for (kname, kernel) in [
            ("ours", MatmulKernel::Own),
            ("gemm-crate", MatmulKernel::GemmCrate),
        ] {
            let id = BenchmarkId::new(kname, format!("{name} {m}x{k}x{n}"));
            group.bench_function(id, |bench| {
                set_matmul_kernel(kernel);
                bench.iter(|| matmul_into(&mut out, &a, ta, &b, tb, m, k, n, false));
            });
        }
    }
    set_matmul_kernel(MatmulKernel::Own);
    group.finish();
}

fn conv(c: &mut Criterion) {
    let t = threads();
    let mut group = c.benchmark_group(format!("conv/{t}t"));
    // (name, input [N,C,H,W], weight [O,C,kh,kw], padding, whether the
    // input needs a gradient): as in a LeNet step, where conv1 reads the
    // data batch and so computes no ∂x.
    let layers = [
        ("lenet conv1", [64, 1, 28, 28], [6, 1, 5, 5], 2, false),
        ("lenet conv2", [64, 6, 14, 14], [16, 6, 5, 5], 0, true),
    ];
    // Each by the direct kernels (the default for stride 1) and by im2col.
    for ((name, xs, ws, pad, dx), im2col) in
        layers.into_iter().flat_map(|l| [(l, false), (l, true)])
    {
        // Parameters behind an `Arc`, as a model holds them: no copy per step.
        let x = Arc::new(pseudo_random(&xs, 3));
        let w = Arc::new(pseudo_random(&ws, 4));
        let b = Arc::new(pseudo_random(&[ws[0]], 5));
        let how = if im2col { "im2col" } else { "direct" };
        group.bench_function(format!("{name} {how} forward+backward"), |bench| {
            set_im2col_only(im2col);
            bench.iter(|| {
                let mut g = Graph::new();
                let xv = if dx {
                    g.param(x.clone())
                } else {
                    g.input(x.clone())
                };
                let (wv, bv) = (g.param(w.clone()), g.param(b.clone()));
                let y = g.conv2d(xv, wv, Some(bv), (1, 1), (pad, pad));
                let seed = Tensor::full(g.shape(y), 1.0);
                black_box(g.backward_with(y, seed));
            })
        });
        set_im2col_only(false);
    }
    // LeNet's two 2×2 max pools, on conv1's and conv2's outputs.
    for (name, xs) in [("pool1", [64, 6, 28, 28]), ("pool2", [64, 16, 10, 10])] {
        let x = Arc::new(pseudo_random(&xs, 6));
        group.bench_function(format!("lenet {name} forward+backward"), |bench| {
            bench.iter(|| {
                let mut g = Graph::new();
                let xv = g.param(x.clone());
                let y = g.max_pool2d(xv, (2, 2), (2, 2), (0, 0));
                let seed = Tensor::full(g.shape(y), 1.0);
                black_box(g.backward_with(y, seed));
            })
        });
    }
    group.finish();
}

fn fused(c: &mut Criterion) {
    let t = threads();
    let mut group = c.benchmark_group(format!("fused/{t}t"));

    let (x, w, b) = (
        Arc::new(pseudo_random(&[256, 1024], 6)),
        Arc::new(pseudo_random(&[1024, 1024], 7)),
        Arc::new(pseudo_random(&[1024], 8)),
    );
    group.bench_function("linear+bias 256x1024->1024 forward+backward", |bench| {
        bench.iter(|| {
            let mut g = Graph::new();
            let xv = g.input((*x).clone());
            let (wv, bv) = (g.param(w.clone()), g.param(b.clone()));
            let y = g.linear(xv, wv, Some(bv));
            let seed = Tensor::full(g.shape(y), 1.0);
            black_box(g.backward_with(y, seed));
        })
    });

    let z = pseudo_random(&[256, 10], 9);
    let labels: Vec<usize> = (0..256).map(|i| i % 10).collect();
    group.bench_function("softmax+cross-entropy 256x10 forward+backward", |bench| {
        bench.iter(|| {
            let mut g = Graph::new();
            let zv = g.param(z.clone());
            let l = g.cross_entropy(zv, &labels);
            black_box(g.backward(l));
        })
    });

    let xb = pseudo_random(&[128, 256], 10);
    let (gamma, beta) = (Tensor::full(&[256], 1.0), Tensor::zeros(&[256]));
    let (rm, rv) = (Tensor::zeros(&[256]), Tensor::full(&[256], 1.0));
    group.bench_function("batchnorm1d 128x256 train forward+backward", |bench| {
        bench.iter(|| {
            let mut g = Graph::new();
            let xv = g.param(xb.clone());
            let (gv, bv) = (g.param(gamma.clone()), g.param(beta.clone()));
            let stats = backprop::ops::batchnorm::RunningStats {
                mean: &rm,
                var: &rv,
                momentum: 0.1,
                eps: 1e-5,
            };
            let (y, _) = g.batch_norm(xv, gv, bv, stats, true);
            let seed = Tensor::full(g.shape(y), 1.0);
            black_box(g.backward_with(y, seed));
        })
    });

    let xr = pseudo_random(&[64, 28, 28], 11);
    let (wih, whh) = (
        Arc::new(pseudo_random(&[128, 28], 12)),
        Arc::new(pseudo_random(&[128, 128], 13)),
    );
    let (bih, bhh) = (
        Arc::new(pseudo_random(&[128], 14)),
        Arc::new(pseudo_random(&[128], 15)),
    );
    group.bench_function("rnn_tanh 64x28x28 -> 128 forward+backward", |bench| {
        bench.iter(|| {
            let mut g = Graph::new();
            let xv = g.input(xr.clone());
            let (a, b) = (g.param(wih.clone()), g.param(whh.clone()));
            let (c, d) = (g.param(bih.clone()), g.param(bhh.clone()));
            let h = g.rnn_tanh(xv, a, b, Some(c), Some(d));
            let seed = Tensor::full(g.shape(h), 1.0);
            black_box(g.backward_with(h, seed));
        })
    });

    // mlp-wide's parameters, one optimizer step each.
    let shapes: [&[usize]; 6] = [
        &[1024, 784],
        &[1024],
        &[1024, 1024],
        &[1024],
        &[10, 1024],
        &[10],
    ];
    let grads: Vec<Tensor> = shapes.iter().map(|s| pseudo_random(s, 16)).collect();
    group.throughput(Throughput::Elements(
        grads.iter().map(|g| g.numel() as u64).sum(),
    ));
    for (name, kind, momentum) in [
        ("sgd momentum", OptimizerKind::Sgd, 0.9),
        ("adam", OptimizerKind::Adam, 0.0),
    ] {
        let mut cfg = OptimizerConfig::new(kind);
        cfg.momentum = backprop::optim::Momentum::classic(momentum);
        cfg.lr = 1e-3;
        let mut opt = Optimizer::new(cfg);
        let mut params: Vec<Tensor> = shapes.iter().map(|s| pseudo_random(s, 17)).collect();
        group.bench_function(
            format!("{name} step, mlp-wide's 1.86M parameters"),
            |bench| {
                bench.iter(|| {
                    let mut ps: Vec<&mut Tensor> = params.iter_mut().collect();
                    opt.step_tensors(&mut ps, &grads);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, matmul, conv, fused);
criterion_main!(benches);
