//! A small ResNet for 32×32 RGB images, written as Rust code: a 3×3 stem,
//! three stages of one basic block each (16, 32 and 64 channels, the last
//! two halving the image), global average pooling and a linear classifier
//! — He et al.'s CIFAR ResNet with n = 1 (8 layers), the same network as
//! the `resnet8` preset of the model line, with the same parameter names
//! (`3.conv1.weight`, `4.downsample.0.weight`, …).
//!
//! It trains with the library's `train()`, the batches prepared on a
//! background thread and augmented (random crop with 4 pixels of padding,
//! horizontal flip). Without `--data` it makes its own images: ten classes
//! of a coloured square or bar on noise, somewhere in the image (5 000 to
//! train, 1 000 to test); with `--data DIR` it reads a CIFAR-10 folder
//! (`data_batch_1.bin` … `test_batch.bin`).
//!
//! Must reach 90 % test accuracy on its own images after 3 epochs
//! (`cargo run --release --example resnet`).

use backprop::data::{load_data, Augment, TensorDataset};
use backprop::nn::ResBlock;
use backprop::prelude::*;
use backprop::train::{self, Printer, TrainConfig};
use backprop::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `stem → blocks → pool → fc`.
#[derive(Clone)]
pub struct ResNet {
    pub stem: Conv2d,
    pub bn: BatchNorm2d,
    pub blocks: Vec<ResBlock>,
    pub fc: Linear,
}

impl ResNet {
    pub fn new(classes: usize, rng: &mut ChaCha8Rng) -> ResNet {
        ResNet {
            stem: Conv2d::new(3, 16, 3).padding(1).bias(false).init(rng),
            bn: BatchNorm2d::new(16),
            blocks: vec![
                ResBlock::new(16, 16, 1, rng),
                ResBlock::new(16, 32, 2, rng),
                ResBlock::new(32, 64, 2, rng),
            ],
            fc: Linear::new(64, classes).init(rng),
        }
    }
}

impl Module for ResNet {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let h = self.stem.forward(p, x);
        let h = self.bn.forward(p, h);
        let mut h = p.relu(h);
        for b in &self.blocks {
            h = b.forward(p, h);
        }
        let h = p.adaptive_avg_pool2d(h, (1, 1));
        let h = p.flatten(h);
        self.fc.forward(p, h)
    }

    /// The preset's names: the stem is layers 0 and 1, the blocks 3, 4 and
    /// 5, the classifier 8.
    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.module("0", &self.stem);
        v.module("1", &self.bn);
        for (i, b) in self.blocks.iter().enumerate() {
            v.module(&(3 + i).to_string(), b);
        }
        v.module("8", &self.fc);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.module("0", &mut self.stem);
        v.module("1", &mut self.bn);
        for (i, b) in self.blocks.iter_mut().enumerate() {
            v.module(&(3 + i).to_string(), b);
        }
        v.module("8", &mut self.fc);
    }
}

/// `n` images of 32×32: class `c` is a square (c < 5) or a bar (c ≥ 5) of
/// colour `c % 5`, at a random place, on noise.
fn shapes(n: usize, seed: u64) -> TensorDataset {
    let colours = [
        [1.0, 0.1, 0.1],
        [0.1, 1.0, 0.1],
        [0.1, 0.1, 1.0],
        [1.0, 1.0, 0.1],
        [0.1, 1.0, 1.0],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = vec![0f32; n * 3 * 32 * 32];
    let mut y = Vec::with_capacity(n);
    for (i, img) in x.chunks_mut(3 * 1024).enumerate() {
        let c = i % 10;
        img.iter_mut().for_each(|v| *v = rng.random::<f32>() * 0.4);
        let (h, w) = if c < 5 { (8, 8) } else { (4, 14) };
        let (top, left) = (rng.random_range(0..32 - h), rng.random_range(0..32 - w));
        for ch in 0..3 {
            for r in top..top + h {
                for col in left..left + w {
                    img[ch * 1024 + r * 32 + col] = colours[c % 5][ch];
                }
            }
        }
        y.push(c);
    }
    TensorDataset::new(Tensor::from_vec(vec![n, 3, 32, 32], x), y, "shapes")
}

fn main() -> backprop::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data = args
        .iter()
        .position(|a| a == "--data")
        .and_then(|i| args.get(i + 1));
    let (train_set, test_set, want) = match data {
        Some(d) => {
            let (tr, te) = load_data(d.as_ref(), None, None)?;
            (tr, te.expect("a CIFAR folder holds test_batch.bin"), 0.0)
        }
        None => (shapes(5000, 1), shapes(1000, 2), 0.90),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut net = ResNet::new(10, &mut rng);
    let mut cfg = TrainConfig::new(OptimizerConfig::adam(2e-3));
    cfg.epochs = 3;
    cfg.batch_size = 128;
    cfg.augment = vec![Augment::Crop { padding: 4 }, Augment::Flip];
    let (summary, _) = train::train(
        &mut net,
        &train_set,
        Some(&test_set),
        &cfg,
        &mut Printer::new(),
    )?;
    let acc = summary.test_accuracy.unwrap_or(0.0);
    println!(
        "resnet8 ({} parameters): test accuracy {:.2}% after {} epochs",
        net.num_parameters(),
        acc * 100.0,
        cfg.epochs
    );
    if acc < want {
        eprintln!("expected at least {:.0} %", want * 100.0);
        std::process::exit(1);
    }
    Ok(())
}
