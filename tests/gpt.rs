//! The GPT against its PyTorch twin (`tools/gpt_twin.py fixtures`, nanoGPT's
//! layout): the same logits, loss and gradient of every parameter from the
//! same weights, and the same 20 training steps (AdamW with weight decay on
//! matrices only, warm-up then cosine, clipping) from the same start; and
//! the same 20 steps of an LSTM language model written as a model line.

mod common;

use backprop::nn::{GptConfig, Init, Module, ModuleExt, Pass, Sequential};
use backprop::ops::loss::CrossEntropyOptions;
use backprop::optim::{DecayOn, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use backprop::Tensor;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// The fixture's tensors as f32 (ids and labels included) and its metadata.
struct Fixture {
    tensors: Vec<(String, Tensor)>,
    meta: std::collections::HashMap<String, String>,
}

impl Fixture {
    fn read() -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt.safetensors");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            let d = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => d
                    .chunks(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::F64 => d
                    .chunks(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::I64 => d
                    .chunks(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{name}: dtype {other:?}"),
            };
            tensors.push((name, Tensor::from_vec(view.shape().to_vec(), values)));
        }
        let meta = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Fixture { tensors, meta }
    }

    fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("the fixture has no {name}"))
    }

    /// The tensors under `prefix`, named without it.
    fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.tensors
            .iter()
            .filter_map(|(n, t)| Some((n.strip_prefix(prefix)?.to_string(), t.clone())))
            .collect()
    }

    fn config(&self, case: &str) -> (GptConfig, serde_json::Value) {
        let v: serde_json::Value = serde_json::from_str(&self.meta[case]).unwrap();
        let n = |k: &str| v[k].as_u64().unwrap() as usize;
        let cfg = GptConfig {
            vocab_size: n("vocab"),
            block_size: n("block"),
            n_layer: n("layers"),
            n_head: n("heads"),
            n_embd: n("embd"),
            bias: v["bias"].as_bool().unwrap(),
            dropout: 0.0,
        };
        (cfg, v)
    }
}

fn labels(t: &Tensor) -> Vec<usize> {
    t.data().iter().map(|&v| v as usize).collect()
}

#[test]
fn logits_loss_and_every_gradient_match_pytorch() {
    let fx = Fixture::read();
    let (cfg, _) = fx.config("fwd");
    let mut gpt = cfg.init(&mut backprop::rand::seeded(0)).unwrap();
    gpt.load_state_dict(&fx.state("fwd.init."), Path::new("gpt.safetensors"))
        .unwrap();
    let mut p = Pass::train(&gpt, 0);
    let x = p.input(fx.get("fwd.x").clone());
    let logits = gpt.forward(&mut p, x);
    let e = common::scaled_error(p.value(logits).data(), fx.get("fwd.logits").data());
    assert!(e < 1e-5, "logits differ from PyTorch's by {e:.2e}");
    let loss = p.cross_entropy_with(
        logits,
        &labels(fx.get("fwd.y")),
        &CrossEntropyOptions::default(),
    );
    let (got, want) = (p.value(loss).item(), fx.get("fwd.loss").data()[0]);
    assert!(
        (got - want).abs() < 1e-5 * want,
        "loss {got} vs PyTorch's {want}"
    );
    let grads = p.backward(loss);
    let params = gpt.parameters();
    assert_eq!(params.len(), grads.tensors().len());
    // every parameter of PyTorch's model (the tied weight once), in order
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    let theirs: Vec<String> = fx.state("fwd.grad.").into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), theirs.len(), "{names:?} vs {theirs:?}");
    for ((name, _), g) in params.iter().zip(grads.tensors()) {
        let g = g
            .as_ref()
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let e = common::scaled_error(g.data(), fx.get(&format!("fwd.grad.{name}")).data());
        assert!(e < 1e-4, "∂L/∂{name} differs from PyTorch's by {e:.2e}");
    }
}

/// Train `model` for the fixture's steps of `case` (AdamW with weight decay
/// on matrices, warm-up then cosine, clipping) from its `init.` weights;
/// compare each step's loss and the final weights with PyTorch's. Returns
/// the losses.
fn replay(fx: &Fixture, case: &str, model: &mut dyn Module) -> Vec<f32> {
    let v: serde_json::Value = serde_json::from_str(&fx.meta[case]).unwrap();
    let f = |k: &str| v[k].as_f64().unwrap();
    model
        .load_state_dict(
            &fx.state(&format!("{case}.init.")),
            Path::new("gpt.safetensors"),
        )
        .unwrap();
    let mut oc = OptimizerConfig::new(OptimizerKind::AdamW);
    oc.lr = f("lr") as f32;
    oc.betas = (0.9, f("beta2"));
    oc.weight_decay = f("weight_decay") as f32;
    oc.decay_on = DecayOn::Matrices;
    let steps = v["steps"].as_u64().unwrap() as usize;
    let mut opt = Optimizer::new(oc).with_schedule(Schedule::WarmupCosine {
        warmup_steps: v["warmup"].as_u64().unwrap() as usize,
        decay_steps: steps,
        lr_min: f("lr_min") as f32,
    });
    let (xs, ys) = (fx.get(&format!("{case}.x")), fx.get(&format!("{case}.y")));
    let per = xs.numel() / steps;
    let want = fx.get(&format!("{case}.losses")).data().to_vec();
    let mut losses = Vec::new();
    for it in 0..steps {
        opt.set_step(it);
        let x = Tensor::from_vec(
            xs.shape()[1..].to_vec(),
            xs.data()[it * per..(it + 1) * per].to_vec(),
        );
        let y = labels(&Tensor::from_vec(
            vec![per],
            ys.data()[it * per..(it + 1) * per].to_vec(),
        ));
        let mut p = Pass::train(model, 0);
        let xv = p.input(x);
        let logits = model.forward(&mut p, xv);
        let loss = p.cross_entropy_with(logits, &y, &CrossEntropyOptions::default());
        losses.push(p.value(loss).item());
        let mut grads = p.backward(loss);
        grads.clip_norm(f("clip") as f32);
        opt.step(model, grads);
    }
    let e = common::scaled_error(&losses, &want);
    assert!(e < 1e-4, "{case}: losses {losses:?}\nPyTorch's {want:?}");
    let ours = model.state_dict();
    assert_eq!(ours.len(), fx.state(&format!("{case}.final.")).len());
    for (name, t) in &ours {
        let e = common::scaled_error(t.data(), fx.get(&format!("{case}.final.{name}")).data());
        assert!(
            e < 1e-4,
            "{case}: {name} after {steps} steps differs from PyTorch's by {e:.2e}"
        );
    }
    losses
}

#[test]
fn twenty_adamw_steps_match_pytorch() {
    let fx = Fixture::read();
    let (cfg, _) = fx.config("replay");
    let mut gpt = cfg.init(&mut backprop::rand::seeded(0)).unwrap();
    let losses = replay(&fx, "replay", &mut gpt);
    assert!(losses[19] < 0.7 * losses[0], "it learned: {losses:?}");
}

#[test]
fn twenty_steps_of_an_lstm_language_model_match_pytorch() {
    let fx = Fixture::read();
    let v: serde_json::Value = serde_json::from_str(&fx.meta["lstm"]).unwrap();
    let line = v["line"].as_str().unwrap();
    let mut m = Sequential::parse(line, Init::Default, &mut backprop::rand::seeded(0)).unwrap();
    let losses = replay(&fx, "lstm", &mut m);
    assert!(losses[19] < losses[0], "it learned: {losses:?}");
}

/// `--checkpoint blocks`: each block recomputed in the backward pass gives
/// the same loss and bit-identical gradients (dropout on, so the recomputed
/// masks must be the first pass's), with each block one node on the tape.
#[test]
fn checkpointed_blocks_give_identical_gradients_on_a_shorter_tape() {
    let cfg = GptConfig {
        vocab_size: 11,
        block_size: 8,
        n_layer: 3,
        n_head: 2,
        n_embd: 16,
        bias: true,
        dropout: 0.1,
    };
    let gpt = cfg.init(&mut backprop::rand::seeded(3)).unwrap();
    let mut model = Sequential::new().push(gpt);
    let ids = Tensor::from_vec(
        vec![2, 8],
        (0..16).map(|i| ((i * 7 + 3) % 11) as f32).collect(),
    );
    let targets: Vec<usize> = (0..16).map(|i| (i * 5 + 1) % 11).collect();
    let run = |m: &Sequential| {
        let mut p = Pass::train(m, 42);
        let x = p.input(ids.clone());
        let logits = m.forward(&mut p, x);
        let loss = p.cross_entropy_with(logits, &targets, &CrossEntropyOptions::default());
        let nodes = p.len();
        let g = p.backward(loss);
        (g.loss, g.tensors().to_vec(), nodes)
    };
    let (loss, grads, nodes) = run(&model);
    assert_eq!(model.checkpoint_blocks(), 3);
    let (loss_c, grads_c, nodes_c) = run(&model);
    assert_eq!(loss.to_bits(), loss_c.to_bits());
    assert!(
        nodes_c < nodes,
        "{nodes_c} nodes with checkpointing, {nodes} without"
    );
    for (i, (a, b)) in grads.iter().zip(&grads_c).enumerate() {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(
            a.data()
                .iter()
                .zip(b.data())
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "gradient {i} differs with checkpointing"
        );
    }
    // a model line without blocks says what to give instead
    let mut lstm = Sequential::parse(
        "embedding(11,8),lstm(8,8),linear(8,11)",
        Init::Default,
        &mut backprop::rand::seeded(0),
    )
    .unwrap();
    let e = backprop::nn::checkpoint::apply(&mut lstm, "blocks").unwrap_err();
    assert!(e.to_string().contains("layer ranges"), "{e}");
    backprop::nn::checkpoint::apply(&mut lstm, "1-2").unwrap();
}
