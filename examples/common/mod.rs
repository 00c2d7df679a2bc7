//! Shared by the MNIST examples: train a model line on the shipped MNIST copy
//! with PyTorch's benchmark settings and check the accuracy it must reach.

use backprop::data::load_data;
use backprop::nn::{Init, Module, ModuleExt, Sequential};
use backprop::optim::{OptimizerConfig, OptimizerKind};
use backprop::train::{train, EpochRecord, Observer, TrainConfig};
use rand::SeedableRng;
use std::path::Path;

struct Log;
impl Observer for Log {
    fn epoch_end(&mut self, r: &EpochRecord) {
        println!(
            "epoch {}: train loss {:.4}, test accuracy {:.2}% ({:.1}s)",
            r.epoch,
            r.train_loss,
            r.test_accuracy.unwrap_or(0.0) * 100.0,
            r.train_seconds
        );
    }
}

/// Train `line` for `epochs` and exit non-zero unless the test accuracy reaches `must`.
pub fn run(line: &str, optimizer: OptimizerConfig, batch_size: usize, epochs: usize, must: f64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let (train_set, test_set) = load_data(&dir, None, None).expect("the MNIST copy in data/mnist");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = Sequential::parse(line, Init::Default, &mut rng).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let mut cfg = TrainConfig::new(optimizer);
    cfg.epochs = epochs;
    cfg.batch_size = batch_size;
    println!(
        "{} ({} parameters)",
        model.describe(),
        model.num_parameters()
    );
    let (summary, _) = train(&mut model, &train_set, test_set.as_ref(), &cfg, &mut Log)
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let acc = summary.test_accuracy.unwrap_or(0.0);
    if acc < must {
        eprintln!(
            "FAIL: test accuracy {:.2}% is below the {:.2}% this example must reach",
            acc * 100.0,
            must * 100.0
        );
        std::process::exit(1);
    }
    println!(
        "ok: test accuracy {:.2}% ≥ {:.2}%",
        acc * 100.0,
        must * 100.0
    );
}

/// Adam with learning rate `lr` (PyTorch's other defaults).
#[allow(dead_code)] // not every example uses it
pub fn adam(lr: f32) -> OptimizerConfig {
    let mut c = OptimizerConfig::new(OptimizerKind::Adam);
    c.lr = lr;
    c
}
