//! The `resnet8` preset and the ResNet of `examples/resnet.rs` against
//! PyTorch (`tools/resnet_twin.py fixture` wrote
//! `tests/fixtures/resnet8.safetensors`): the twin's initial `state_dict`
//! (torchvision's `BasicBlock` names) loads strictly into both; one
//! training-mode pass gives PyTorch's float64 logits, loss and gradients;
//! three Adam steps follow PyTorch's float32 losses and end at its weights
//! and batch-norm statistics.

mod common;

use backprop::nn::{Init, Module, ModuleExt, Pass, Sequential};
use backprop::optim::{Optimizer, OptimizerConfig};
use backprop::Tensor;
use std::collections::HashMap;
use std::path::Path;

#[allow(dead_code)]
#[path = "../examples/resnet.rs"]
mod example;

fn fixture() -> (HashMap<String, Tensor>, String) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet8.safetensors");
    let w = backprop::io::load(&p).unwrap();
    let spec = w.metadata["spec"].clone();
    (w.tensors.into_iter().collect(), spec)
}

fn init(fx: &HashMap<String, Tensor>, m: &mut dyn Module) {
    let init: Vec<(String, Tensor)> = fx
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("init.").map(|n| (n.to_string(), v.clone())))
        .collect();
    m.load_state_dict(&init, Path::new("resnet8.safetensors"))
        .unwrap();
}

/// Both networks: the preset's model line and the Rust struct.
fn models() -> (HashMap<String, Tensor>, Vec<Box<dyn Module>>) {
    let (fx, spec) = fixture();
    assert_eq!(spec, backprop::nn::spec::expand_preset("resnet8"));
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut line = Sequential::parse(&spec, Init::Default, &mut rng).unwrap();
    let mut code = example::ResNet::new(10, &mut rng);
    init(&fx, &mut line);
    init(&fx, &mut code);
    (fx, vec![Box::new(line), Box::new(code)])
}

fn labels(fx: &HashMap<String, Tensor>) -> Vec<usize> {
    fx["y"].data().iter().map(|&v| v as usize).collect()
}

#[test]
fn a_training_pass_matches_pytorch_float64() {
    let (fx, ms) = models();
    for m in &ms {
        let mut p = Pass::train(m.as_ref(), 0);
        let xv = p.input(fx["x"].clone());
        let out = m.forward(&mut p, xv);
        let e = common::scaled_error(p.value(out).data(), fx["logits"].data());
        assert!(e < 1e-5, "logits differ from PyTorch's by {e:.1e}");
        let l = p.cross_entropy(out, &labels(&fx));
        let grads = p.backward(l);
        let want = fx["loss"].data()[0] as f64;
        assert!(
            (grads.loss as f64 - want).abs() < 1e-5,
            "loss {} vs {want}",
            grads.loss
        );
        let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 29);
        for (n, g) in names.iter().zip(grads.tensors()) {
            let e =
                common::scaled_error(g.as_ref().unwrap().data(), fx[&format!("grad.{n}")].data());
            assert!(e < 1e-4, "{n}: gradient differs from PyTorch's by {e:.1e}");
        }
    }
}

#[test]
fn three_adam_steps_follow_pytorch() {
    let (fx, mut ms) = models();
    for m in ms.iter_mut() {
        let mut opt = Optimizer::new(OptimizerConfig::adam(1e-3));
        for step in 0..3 {
            let mut p = Pass::train(m.as_ref(), 0);
            let xv = p.input(fx["x"].clone());
            let out = m.forward(&mut p, xv);
            let l = p.cross_entropy(out, &labels(&fx));
            let grads = p.backward(l);
            let want = fx["losses"].data()[step] as f64;
            let e = (grads.loss as f64 - want).abs() / want;
            assert!(
                e < 1e-4,
                "step {step}: loss {} vs PyTorch {want}",
                grads.loss
            );
            opt.step(m.as_mut(), grads);
        }
        // Adam divides by √v: where a gradient is near zero, a rounding in
        // the last bits (other summation orders) changes its step by up to
        // lr. Measured at most 2.5e-4 of a tensor's scale after 3 steps.
        for (n, t) in m.state_dict() {
            let e = common::scaled_error(t.data(), fx[&format!("final.{n}")].data());
            eprintln!("{n:28} {e:.1e}");
            assert!(
                e < 1e-3,
                "{n}: differs from PyTorch's after 3 steps by {e:.1e}"
            );
        }
    }
}
