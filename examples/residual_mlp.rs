//! A residual MLP on MNIST, written as Rust code and trained by the
//! library: the program a PyTorch user writes first, line for line
//! (`tools/residual_mlp_twin.py` is the same in PyTorch). Must reach 97 %.
//!
//! `cargo run --release --example residual_mlp`
use backprop::data::load_data;
use backprop::prelude::*;

/// `x + fc2(relu(fc1(x)))`: a block that keeps the width.
#[derive(Clone)]
struct Block {
    fc1: Linear,
    fc2: Linear,
}

impl Module for Block {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let h = self.fc1.forward(p, x);
        let h = p.relu(h);
        let h = self.fc2.forward(p, h);
        p.add(x, h)
    }
    submodules!(fc1, fc2);
}

fn main() -> backprop::Result<()> {
    let rng = &mut backprop::rand::seeded(0);
    let mut block = || Block {
        fc1: Linear::new(128, 128).init(rng),
        fc2: Linear::new(128, 128).init(rng),
    };
    let (block1, block2) = (block(), block());
    let mut net = Sequential::new()
        .push(Flatten::new())
        .push(Linear::new(784, 128).init(rng))
        .push(Activation::relu())
        .push(block1)
        .push(block2)
        .push(Linear::new(128, 10).init(rng));
    let (train, test) = load_data("data/mnist".as_ref(), None, None)?;
    let mut cfg = TrainConfig::new(OptimizerConfig::adam(1e-3));
    cfg.epochs = 3;
    let (summary, _) =
        backprop::train::train(&mut net, &train, test.as_ref(), &cfg, &mut Printer::new())?;
    let acc = summary.test_accuracy.unwrap_or(0.0);
    println!("test accuracy {:.2}%", acc * 100.0);
    if acc < 0.97 {
        std::process::exit(1);
    }
    Ok(())
}
