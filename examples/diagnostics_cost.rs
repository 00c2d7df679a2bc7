//! What the per-layer diagnostics cost, measured step by step.
//!
//! `cargo run --release --example diagnostics_cost [-- MODEL BATCH EVERY]`
//!
//! Timing whole runs with and without `--diagnostics-every` compares two
//! noisy numbers (other processes, frequency scaling); this measures the
//! difference directly. On the same batches, it alternates a plain training
//! step (forward, backward, Adam update) with a measured one (the same, plus
//! `retain_grad` on every layer output, the statistics, the weight snapshot,
//! the update ratios and the warning check) and compares the median times.
//! A sampled step costs `measured − plain` extra; sampling every `EVERY`
//! steps spreads that over `EVERY` steps. Default: the `mlp-small` benchmark
//! workload (`mlp`, batch 64, Adam 1e-3, two threads), every 50 steps; the
//! estimate must stay below 5 % or the example exits non-zero.

use backprop::data::{epoch_batches, load_data};
use backprop::inspect::diagnostics::{Probe, Sample, Watch};
use backprop::nn::{Init, Module, Sequential};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::train::{compute_gradients, compute_gradients_probed, LossKind};
use rand::SeedableRng;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_line = args.first().map_or("mlp", |s| s.as_str());
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let every: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    backprop::cpu::set_threads(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .ok();

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let (train, _) = load_data(&data, None, None).expect("MNIST in data/mnist");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = Sequential::parse(model_line, Init::Default, &mut rng).expect("model line");
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam));
    let mut probe: Option<Probe> = None;
    let mut watch: Option<Watch> = None;
    let batches = epoch_batches(train.len(), batch, true, &mut rng);
    let pairs = 400.min(batches.len());
    let (mut plain, mut measured) = (Vec::new(), Vec::new());
    for (i, idx) in batches.iter().take(pairs).enumerate() {
        let (x, y) = train.batch(idx);
        // Plain step.
        let t = Instant::now();
        let r = compute_gradients(&model, x.clone(), &y, LossKind::CrossEntropy, 0);
        opt.step(&mut model, r.grads);
        plain.push(t.elapsed().as_secs_f64());
        // Measured step, on the same batch.
        let t = Instant::now();
        let (r, stats) =
            compute_gradients_probed(&model, x, &y, LossKind::CrossEntropy, 0, Some(&mut probe));
        let pr = probe.as_ref().expect("made by the probed step");
        let before = pr.snapshot(&model);
        opt.step(&mut model, r.grads);
        let mut layers = stats.expect("probed");
        pr.after_step(&mut layers, &before, &model);
        let sample = Sample {
            step: i + 1,
            epoch: 1,
            lr: 1e-3,
            layers,
        };
        let w = watch.get_or_insert_with(|| Watch::new(pr));
        std::hint::black_box(w.check(&sample));
        measured.push(t.elapsed().as_secs_f64());
    }
    let (p, m) = (median(&mut plain), median(&mut measured));
    let extra = (m - p).max(0.0);
    let share = extra / (every as f64 * p);
    println!(
        "`{}`, batch {batch}: plain step {:.3} ms, measured step {:.3} ms (median of {pairs}): \
         {:.3} ms extra per sample; sampled every {every} steps: {:.2} % of training time",
        model.describe(),
        p * 1e3,
        m * 1e3,
        extra * 1e3,
        share * 100.0
    );
    if share < 0.05 {
        ExitCode::SUCCESS
    } else {
        eprintln!("the diagnostics cost more than 5 % of training time");
        ExitCode::FAILURE
    }
}
