//! nanoGPT's "baby GPT" on the shipped Shakespeare, as nanoGPT's README
//! trains it on a laptop CPU: 4 layers, 4 heads, 128 wide, a context of 64
//! characters, batches of 12, 2 000 steps of AdamW at 1e-3 (β₂ 0.99, weight
//! decay 0.1 on matrices only) with 100 warm-up steps and a cosine down to
//! 1e-4, gradients clipped at 1.0, no dropout. Prints the losses as it goes,
//! a sample, and last the validation loss over the whole validation split.
//! Exits non-zero if that is above 2.0 nats per character.
//!
//! `cargo run --release --example gpt [-- --steps N --seed S --save FILE]`
use backprop::data::text::{CharText, Split};
use backprop::nn::GptConfig;
use backprop::optim::{DecayOn, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use backprop::train::lm::{self, LmConfig, LmEval, LmObserver, LmStep, SampleConfig};

// Training allocates the same large buffers every step: mimalloc keeps and
// reuses them (`backprop::alloc`).
#[global_allocator]
static GLOBAL: backprop::alloc::MiMalloc = backprop::alloc::MiMalloc;

/// Prints each estimate, and a line every 100 steps.
struct Print;

impl LmObserver for Print {
    fn step(&mut self, s: &LmStep) {
        if s.step.is_multiple_of(100) {
            eprintln!("step {}: loss {:.4}, lr {:.2e}", s.step, s.loss, s.lr);
        }
    }
    fn eval(&mut self, e: &LmEval) {
        eprintln!(
            "step {}: train loss {:.4}, val loss {:.4}",
            e.step, e.train_loss, e.val_loss
        );
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn main() -> backprop::Result<()> {
    backprop::alloc::keep_freed_memory();
    let steps = arg("--steps").map_or(2000, |s| s.parse().expect("--steps N"));
    let seed = arg("--seed").map_or(0, |s| s.parse().expect("--seed S"));
    let text = CharText::load("data/shakespeare.txt".as_ref())?;
    let cfg = LmConfig {
        steps,
        seed,
        ..LmConfig::baby()
    };
    let gpt_cfg = GptConfig::baby(text.vocab.len(), cfg.block_size);
    let mut gpt = gpt_cfg.init(&mut backprop::rand::seeded(seed))?;
    let mut opt = Optimizer::new(OptimizerConfig {
        lr: 1e-3,
        betas: (0.9, 0.99),
        weight_decay: 0.1,
        decay_on: DecayOn::Matrices,
        ..OptimizerConfig::new(OptimizerKind::AdamW)
    })
    .with_schedule(Schedule::WarmupCosine {
        warmup_steps: 100,
        decay_steps: steps,
        lr_min: 1e-4,
    });
    eprintln!(
        "{}: {} parameters, vocabulary of {}",
        gpt_cfg.spec(),
        gpt_cfg.num_parameters(),
        text.vocab.len()
    );
    let s = lm::train_lm(&mut gpt, &text, &mut opt, &cfg, &mut Print)?;
    eprintln!(
        "{} steps in {:.1} s ({:.1} ms a step)",
        s.steps,
        s.train_seconds,
        1e3 * s.train_seconds / s.steps.max(1) as f64
    );
    if let Some(file) = arg("--save") {
        lm::save_lm(&gpt, &text.vocab, cfg.block_size, file.as_ref())?;
    }
    let sample = SampleConfig {
        tokens: 300,
        temperature: 0.8,
        top_k: Some(40),
        seed,
    };
    let ids = lm::generate(&gpt, &text.encode("\n")?, cfg.block_size, &sample)?;
    println!("{}\n", text.decode(&ids).trim());
    let val = lm::split_loss(&gpt, &text, Split::Val, cfg.block_size)?;
    println!("val loss {val:.4}");
    if val > 2.0 {
        std::process::exit(1);
    }
    Ok(())
}
