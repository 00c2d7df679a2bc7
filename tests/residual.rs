//! The residual network of `examples/residual.rs` against its PyTorch twin
//! (`tools/residual_twin.py` wrote `tests/fixtures/residual.safetensors`):
//! the twin's initial `state_dict` loads by name; one training-mode pass
//! gives PyTorch's float64 loss and gradients; 6 SGD steps (momentum 0.9)
//! follow PyTorch's float32 losses and end at its weights and batch-norm
//! statistics.

mod common;

use backprop::nn::{Module, ModuleExt, Pass};
use backprop::optim::{Momentum, Optimizer, OptimizerConfig};
use backprop::Tensor;
use std::collections::HashMap;
use std::path::Path;

#[allow(dead_code)]
#[path = "../examples/residual.rs"]
mod example;

fn fixture() -> HashMap<String, Tensor> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/residual.safetensors");
    backprop::io::load(&p)
        .unwrap()
        .tensors
        .into_iter()
        .collect()
}

fn model(fx: &HashMap<String, Tensor>) -> example::ResNet {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut m = example::ResNet::new(&mut rng);
    let init: Vec<(String, Tensor)> = fx
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("init.").map(|n| (n.to_string(), v.clone())))
        .collect();
    // Strict: the names of the Rust struct are exactly the twin's.
    m.load_state_dict(&init, Path::new("residual.safetensors"))
        .unwrap();
    m
}

fn batch(fx: &HashMap<String, Tensor>, from: usize) -> (Tensor, Vec<usize>) {
    let idx: Vec<usize> = (from..from + 8).collect();
    let x = fx["x"].gather_rows(&idx);
    let y = idx.iter().map(|&i| fx["y"].data()[i] as usize).collect();
    (x, y)
}

#[test]
fn gradients_of_a_training_pass_match_pytorch_float64() {
    let fx = fixture();
    let m = model(&fx);
    let (x, y) = batch(&fx, 0);
    let mut p = Pass::train(&m, 0);
    let xv = p.input(x);
    let out = m.forward(&mut p, xv);
    let l = p.cross_entropy(out, &y);
    let grads = p.backward(l);
    let e = (grads.loss as f64 - fx["loss0"].data()[0] as f64).abs();
    assert!(
        e < 1e-5,
        "loss {} vs PyTorch {}",
        grads.loss,
        fx["loss0"].data()[0]
    );
    let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 17);
    for (n, g) in names.iter().zip(grads.tensors()) {
        let e = common::scaled_error(g.as_ref().unwrap().data(), fx[&format!("grad.{n}")].data());
        eprintln!("{n:24} gradient error {e:.1e}");
        assert!(e < 1e-4, "{n}: gradient differs from PyTorch's by {e:.1e}");
    }
}

#[test]
fn six_sgd_steps_follow_pytorch() {
    let fx = fixture();
    let mut m = model(&fx);
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.002, Momentum::classic(0.9)));
    for step in 0..6 {
        let (x, y) = batch(&fx, (step % 2) * 8);
        let mut p = Pass::train(&m, 0);
        let xv = p.input(x);
        let out = m.forward(&mut p, xv);
        let l = p.cross_entropy(out, &y);
        let grads = p.backward(l);
        let want = fx["losses"].data()[step] as f64;
        let e = (grads.loss as f64 - want).abs() / want.abs();
        assert!(
            e < 1e-4,
            "step {step}: loss {} vs PyTorch {want}",
            grads.loss
        );
        opt.step(&mut m, grads);
    }
    for (n, t) in m.state_dict() {
        let e = common::scaled_error(t.data(), fx[&format!("final.{n}")].data());
        eprintln!("{n:32} final error {e:.1e}");
        assert!(
            e < 1e-4,
            "{n}: differs from PyTorch's after 6 steps by {e:.1e}"
        );
    }
}
