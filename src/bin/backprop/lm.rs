//! Language models on the command line: `train --data FILE.txt`, `eval
//! MODEL --data FILE.txt`, `sample MODEL`. Flags in, `backprop::train::lm`
//! out.

use crate::args::{SampleArgs, TrainArgs};
use crate::set_threads;
use anyhow::{bail, Context};
use backprop::data::text::{CharText, Split};
use backprop::nn::{Module, ModuleExt};
use backprop::optim::{DecayOn, OptimizerConfig, OptimizerKind};
use backprop::train::lm::{self, LmEval, LmObserver, LmSettings, LmStep, SampleConfig};
use backprop::Error;
use clap::parser::ValueSource;
use clap::ArgMatches;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Whether `--data` names a text file (a language-model run).
pub fn is_text(data: Option<&PathBuf>) -> bool {
    data.and_then(|p| p.extension())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

/// The flags of `train` that only language models read, by id and flag.
pub const LM_ONLY: [(&str, &str); 5] = [
    ("block_size", "--block-size"),
    ("warmup_steps", "--warmup-steps"),
    ("eval_every", "--eval-every"),
    ("eval_iters", "--eval-iters"),
    ("grad_accum", "--grad-accum"),
];

/// The flags of `train` a language-model run does not read (yet).
const NOT_LM: [(&str, &str); 17] = [
    ("resume", "--resume"),
    ("serve", "--serve"),
    ("test_data", "--test-data"),
    ("csv_scale", "--csv-scale"),
    ("epochs", "--epochs"),
    ("lr_schedule", "--lr-schedule"),
    ("lr_step_size", "--lr-step-size"),
    ("lr_gamma", "--lr-gamma"),
    ("loss", "--loss"),
    ("no_shuffle", "--no-shuffle"),
    ("weight_init", "--weight-init"),
    ("init", "--init"),
    ("save_every", "--save-every"),
    ("clip_grad_value", "--clip-grad-value"),
    ("diagnostics_every", "--diagnostics-every"),
    ("out", "--out"),
    ("no_plots", "--no-plots"),
];

/// The run the flags describe: nanoGPT's baby-GPT recipe, each flag given
/// replacing its part.
fn settings(a: &TrainArgs, given: &ArgMatches) -> anyhow::Result<LmSettings> {
    let set = |id: &str| given.value_source(id) == Some(ValueSource::CommandLine);
    let data = a.data.as_deref().unwrap_or(Path::new("?"));
    for (id, flag) in NOT_LM {
        if set(id) {
            bail!(Error::Config(format!(
                "{flag} does not apply to a language-model run (--data {} is text); a language model \
                 trains for --max-steps steps with a warm-up and a cosine decay (--warmup-steps, --lr-min)",
                data.display()
            )));
        }
    }
    let mut s = LmSettings::baby();
    if set("model") {
        s.model = a.model.clone();
    }
    if let Some(n) = a.max_steps {
        s.lm.steps = n;
    }
    if set("batch_size") {
        s.lm.batch_size = a.batch_size;
    }
    s.lm.block_size = a.block_size;
    s.lm.grad_accum = a.grad_accum;
    s.lm.eval_every = a.eval_every;
    s.lm.eval_iters = a.eval_iters;
    s.lm.seed = a.seed;
    s.warmup_steps = a.warmup_steps;
    s.checkpoint = a.checkpoint.clone();
    if let Some(c) = a.clip_grad_norm {
        s.lm.clip_grad_norm = Some(c);
    }
    if set("optimizer") && a.optimizer != OptimizerKind::AdamW {
        s.optimizer = OptimizerConfig {
            decay_on: DecayOn::Matrices,
            ..OptimizerConfig::new(a.optimizer)
        };
    }
    if let Some(lr) = a.lr {
        s.optimizer.lr = lr;
        s.lr_min = lr / 10.0;
    }
    if set("lr_min") {
        s.lr_min = a.lr_min;
    }
    if let Some(wd) = a.weight_decay {
        s.optimizer.weight_decay = wd;
    }
    if set("beta1") {
        s.optimizer.betas.0 = a.beta1;
    }
    if set("beta2") {
        s.optimizer.betas.1 = a.beta2;
    }
    if set("eps") {
        s.optimizer.eps = a.eps;
    }
    Ok(s)
}

/// Prints each estimate of the losses (and the time a step takes).
struct Lines {
    quiet: bool,
    start: Instant,
    steps: usize,
}

impl LmObserver for Lines {
    fn step(&mut self, s: &LmStep) {
        self.steps = s.step;
    }

    fn eval(&mut self, e: &LmEval) {
        if !self.quiet {
            let ms = 1e3 * self.start.elapsed().as_secs_f64() / self.steps.max(1) as f64;
            eprintln!(
                "step {}: train loss {:.4}, val loss {:.4} ({ms:.1} ms a step, estimates included)",
                e.step, e.train_loss, e.val_loss
            );
        }
    }
}

/// `backprop train --data FILE.txt`.
pub fn train(a: &TrainArgs, given: &ArgMatches) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let s = settings(a, given)?;
    if let Some(p) = &a.save {
        backprop::run::prepare_save(p, a.force, None).context("--save")?;
    }
    let path = a.data.clone().expect("a text file");
    let text = CharText::load(&path)?;
    let (mut model, mut opt) = s.build(&text)?;
    let quiet = a.quiet || a.json;
    if !quiet {
        eprintln!(
            "training `{}` ({} parameters) on {} characters of {} (vocabulary {}; the last {} validate), \
             {} steps of {}×{} characters",
            model.describe(),
            model.num_parameters(),
            text.train.len(),
            path.display(),
            text.vocab.len(),
            text.val.len(),
            s.lm.steps,
            s.lm.batch_size * s.lm.grad_accum,
            s.lm.block_size
        );
    }
    let mut obs = Lines {
        quiet,
        start: Instant::now(),
        steps: 0,
    };
    let summary = lm::train_lm(&mut model, &text, &mut opt, &s.lm, &mut obs)?;
    if let Some(p) = &a.save {
        lm::save_lm(&model, &text.vocab, s.lm.block_size, p)?;
        if !quiet {
            eprintln!("saved {}", p.display());
        }
    }
    let val = lm::split_loss(&model, &text, Split::Val, s.lm.block_size)?;
    let ms = 1e3 * summary.train_seconds / summary.steps.max(1) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": model.describe(), "steps": summary.steps,
                "train_seconds": summary.train_seconds, "ms_per_step": ms,
                "val_loss": val, "evals": summary.evals})
        );
    } else {
        println!(
            "val loss {val:.4} after {} steps ({ms:.1} ms a step)",
            summary.steps
        );
    }
    Ok(())
}

/// `backprop eval MODEL --data FILE.txt`: the loss over the whole
/// validation split, `val loss X.XXXX`.
pub fn eval(weights: &Path, data: &Path, json: bool) -> anyhow::Result<()> {
    let saved = lm::load_lm(weights)?;
    let bytes = backprop::io::read_regular(data)?;
    let text = CharText::with_vocab(&bytes, &saved.vocab, data)?;
    let block = saved.context;
    let val = lm::split_loss(&saved.model, &text, Split::Val, block)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"val_loss": val, "characters": text.val.len(), "context": block, "data": data})
        );
    } else {
        println!("val loss {val:.4}");
    }
    Ok(())
}

/// `backprop sample MODEL`: the prompt and its continuation.
pub fn sample(a: SampleArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let lm::SavedLm {
        model,
        vocab,
        context: block,
    } = lm::load_lm(&a.weights)?;
    let prompt = backprop::data::text::encode(&vocab, &a.prompt).context("--prompt")?;
    if a.top_k == 0 {
        bail!(Error::Config(
            "--top-k 0: draw among at least 1 character".into()
        ));
    }
    let cfg = SampleConfig {
        tokens: a.tokens,
        temperature: a.temperature,
        top_k: Some(a.top_k),
        seed: a.seed,
    };
    let ids = lm::generate(&model, &prompt, block, &cfg)?;
    println!("{}", backprop::data::text::decode(&vocab, &ids));
    Ok(())
}
