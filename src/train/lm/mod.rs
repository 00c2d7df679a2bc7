//! Training a character-level language model: random windows of the text,
//! the next character of every position as its target, the loss estimated
//! on both splits every few steps (nanoGPT's `estimate_loss`), gradient
//! accumulation, clipping; the deterministic validation loss `eval`
//! reports; and text generation with temperature and top-k.

pub mod metrics;

use crate::data::text::{CharText, Split, TextBatch};
use crate::error::{Error, Result, Setting};
use crate::inspect::blocks::Blocks;
use crate::nn::{spec, Init, Module, ModuleExt, Pass, Sequential};
use crate::ops::loss::CrossEntropyOptions;
use crate::optim::{DecayOn, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::{Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// How a language model trains.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Characters per window (the model's context at most).
    pub block_size: usize,
    /// Micro-batches per step: their gradients are averaged, the same
    /// step as one batch `grad_accum` times larger.
    pub grad_accum: usize,
    /// Clip the gradients' global norm to this (`None`: no clipping).
    pub clip_grad_norm: Option<f32>,
    /// Estimate both splits' loss every this many steps (and after the last); 0: never.
    pub eval_every: usize,
    /// Random batches per estimate.
    pub eval_iters: usize,
    /// Seeds the windows' offsets and dropout.
    pub seed: u64,
    /// Measure the gradient norm of every named block at step 1 and every
    /// this many steps (0: never); see [`crate::inspect::blocks`].
    pub norms_every: usize,
    /// Offer the run to [`LmObserver::save`] every this many steps (0:
    /// only after the last).
    #[serde(default)]
    pub save_every: usize,
}

impl LmConfig {
    /// nanoGPT's CPU run: 2 000 steps of 12 windows of 64 characters,
    /// clipping at 1.0, estimates every 250 steps over 20 batches.
    pub fn baby() -> LmConfig {
        LmConfig {
            steps: 2000,
            batch_size: 12,
            block_size: 64,
            grad_accum: 1,
            clip_grad_norm: Some(1.0),
            eval_every: 250,
            eval_iters: 20,
            seed: 0,
            norms_every: 10,
            save_every: 0,
        }
    }

    /// Check the settings against the text.
    pub fn check(&self, text: &CharText) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid(
                Setting::BatchSize,
                0,
                "the batch size must be at least 1",
            ));
        }
        if self.grad_accum == 0 {
            return Err(Error::Config(
                "grad_accum is 0: a step needs at least one micro-batch".into(),
            ));
        }
        text.check_block(self.block_size)
    }
}

/// A language-model run: the model line and the recipe.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmSettings {
    /// A model line or preset (`gpt-baby`); a `gpt(…)` item without
    /// `vocab=` or `block=` gets the text's vocabulary and the block size.
    pub model: String,
    /// Steps, batches, windows, accumulation, clipping, estimates.
    pub lm: LmConfig,
    /// The optimizer (its `lr` the peak of the schedule).
    pub optimizer: OptimizerConfig,
    /// Steps of linear warm-up before the cosine.
    pub warmup_steps: usize,
    /// Where the cosine ends, at the last step.
    pub lr_min: f32,
    /// Gradient checkpointing: `blocks` (each of a GPT's blocks recomputed
    /// in the backward pass) or layer ranges of the model line (`0-1`).
    pub checkpoint: Option<String>,
}

impl LmSettings {
    /// nanoGPT's CPU recipe for its baby GPT: AdamW at 1e-3 (β₂ 0.99,
    /// weight decay 0.1 on matrices only), 100 warm-up steps then a cosine
    /// to 1e-4 over 2 000 steps, batches of 12 windows of 64, clipping at 1.
    pub fn baby() -> LmSettings {
        LmSettings {
            model: "gpt-baby".into(),
            lm: LmConfig::baby(),
            optimizer: OptimizerConfig {
                lr: 1e-3,
                betas: (0.9, 0.99),
                weight_decay: 0.1,
                decay_on: DecayOn::Matrices,
                ..OptimizerConfig::new(OptimizerKind::AdamW)
            },
            warmup_steps: 100,
            lr_min: 1e-4,
            checkpoint: None,
        }
    }

    /// Linear warm-up, then a cosine to `lr_min` at the last step.
    pub fn schedule(&self) -> Schedule {
        Schedule::WarmupCosine {
            warmup_steps: self.warmup_steps,
            decay_steps: self.lm.steps,
            lr_min: self.lr_min,
        }
    }

    /// The model line for a text of `vocab` characters: the preset
    /// expanded, `vocab=` and `block=` put into `gpt(…)` items without
    /// them, and an argument written `vocab` in other items replaced by it.
    ///
    /// ```
    /// use backprop::train::lm::LmSettings;
    /// let mut s = LmSettings::baby();
    /// assert_eq!(s.model_line(65), "gpt(vocab=65,block=64,layers=4,heads=4,embd=128)");
    /// s.model = "char-lstm".into();
    /// assert_eq!(s.model_line(65), "embedding(65,64),lstm(64,256,layers=2),linear(256,65)");
    /// ```
    pub fn model_line(&self, vocab: usize) -> String {
        let line = spec::expand_preset(&self.model);
        let items = line.split(',').collect::<Vec<_>>();
        // items are split at top-level commas only: a gpt(…) item's own
        // commas are inside its parentheses
        let mut out: Vec<String> = Vec::new();
        let mut depth = 0i32;
        for part in items {
            if depth > 0 {
                let last = out.last_mut().expect("an open item");
                last.push(',');
                last.push_str(part);
            } else {
                out.push(part.to_string());
            }
            depth += part.matches('(').count() as i32 - part.matches(')').count() as i32;
        }
        for it in &mut out {
            let t = it.trim();
            let (name, inner) = match t.find('(') {
                Some(i) => (&t[..i], t[i + 1..].trim_end_matches(')')),
                None => (t, ""),
            };
            if !name.trim().eq_ignore_ascii_case("gpt") {
                // another layer: an argument written `vocab` is the text's
                if inner.split(',').any(|a| a.trim() == "vocab") {
                    let args: Vec<String> = inner
                        .split(',')
                        .map(|a| match a.trim() {
                            "vocab" => vocab.to_string(),
                            other => other.to_string(),
                        })
                        .collect();
                    *it = format!("{}({})", name.trim(), args.join(","));
                }
                continue;
            }
            let mut args: Vec<String> = Vec::new();
            if !inner.contains("vocab") {
                args.push(format!("vocab={vocab}"));
            }
            if !inner.contains("block") {
                args.push(format!("block={}", self.lm.block_size));
            }
            args.extend(
                inner
                    .split(',')
                    .filter(|a| !a.trim().is_empty())
                    .map(str::to_string),
            );
            *it = format!("gpt({})", args.join(","));
        }
        out.join(",")
    }

    /// Check the settings against the text, then build the model (weights
    /// drawn from the seed) and its optimizer.
    pub fn build(&self, text: &CharText) -> Result<(Sequential, Optimizer)> {
        self.lm.check(text)?;
        self.optimizer.validate()?;
        if !(self.lr_min >= 0.0 && self.lr_min.is_finite()) {
            return Err(Error::Config(format!(
                "lr_min {}: must be a number ≥ 0",
                self.lr_min
            )));
        }
        let line = self.model_line(text.vocab.len());
        let mut rng = crate::rand::seeded(self.lm.seed);
        let mut model = Sequential::parse(&line, Init::Default, &mut rng)?;
        if let Some(c) = &self.checkpoint {
            crate::nn::checkpoint::apply(&mut model, c)?;
        }
        match model.input_vocab() {
            Some(v) if v >= text.vocab.len() => {}
            Some(v) => {
                return Err(Error::Spec(format!(
                    "the model reads {v} token ids, but {} holds {} distinct characters; \
                     drop vocab= from the model line (it is then the text's)",
                    text.source.display(),
                    text.vocab.len()
                )))
            }
            None => {
                return Err(Error::Spec(format!(
                    "`{line}` does not read token ids: a language model starts with an embedding \
                     (use gpt-baby, gpt(…) or embedding(…))"
                )))
            }
        }
        model.output_shape(&[self.lm.block_size])?;
        let opt = Optimizer::new(self.optimizer.clone()).with_schedule(self.schedule());
        Ok((model, opt))
    }
}

/// Save a language model with its vocabulary (and its model line), so that
/// `eval` and `sample` need only the file.
pub fn save_lm(model: &dyn Module, vocab: &[char], block: usize, path: &Path) -> Result<()> {
    crate::io::save_module_with(model, path, lm_metadata(vocab, block))
}

/// What a language model's file holds beside its tensors: its vocabulary
/// and the window it was trained on.
pub fn lm_metadata(vocab: &[char], block: usize) -> HashMap<String, String> {
    let v: String = vocab.iter().collect();
    HashMap::from([
        (
            crate::io::VOCAB_KEY.to_string(),
            serde_json::to_string(&v).expect("a string serializes"),
        ),
        (BLOCK_KEY.to_string(), block.to_string()),
    ])
}

/// The metadata key of the window a language model was trained on (the
/// context `eval` and `sample` give a model without a position table).
pub const BLOCK_KEY: &str = "backprop.block_size";

/// A saved language model: the model, its vocabulary, and the context to
/// read with (its position table's, else the window it was trained on).
pub struct SavedLm {
    /// The model.
    pub model: Sequential,
    /// Its characters in id order.
    pub vocab: Vec<char>,
    /// How many characters it reads at once.
    pub context: usize,
}

/// A language model saved by [`save_lm`].
pub fn load_lm(path: &Path) -> Result<SavedLm> {
    SavedLm::from_weights(&crate::io::load(path)?, path)
}

impl SavedLm {
    /// The language model in `w` (read from `origin`, named in errors).
    pub fn from_weights(w: &crate::io::Weights, origin: &Path) -> Result<SavedLm> {
        let vocab = crate::io::vocab_of(w, origin)?.ok_or_else(|| {
            Error::weights(
                origin,
                "holds no vocabulary: it is not a language model trained on text \
                 (one trained on a text file holds its characters)",
            )
        })?;
        let model = crate::io::model_from_weights(w, origin, None)?;
        let saved = w
            .metadata
            .get(BLOCK_KEY)
            .and_then(|b| b.parse::<usize>().ok());
        let context = model
            .input_context()
            .or(saved)
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                Error::weights(origin, format!("holds no context length ({BLOCK_KEY})"))
            })?;
        Ok(SavedLm {
            model,
            vocab,
            context,
        })
    }
}

/// One optimizer step, as it is reported.
#[derive(Clone, Debug)]
pub struct LmStep {
    /// Steps done (1-based: this is the step just taken).
    pub step: usize,
    /// The mean training loss of the step's batches (nats per character).
    pub loss: f32,
    /// The learning rate of the step.
    pub lr: f32,
    /// The gradients' global norm before clipping.
    pub grad_norm: f32,
    /// Each named block's gradient norm before clipping, on the steps they
    /// are measured (`norms_every`), in the order of [`Blocks::of`].
    pub block_grad_norms: Option<Vec<f64>>,
}

/// An estimate of both splits' loss.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmEval {
    /// Steps done.
    pub step: usize,
    /// Mean loss over `eval_iters` random training batches.
    pub train_loss: f64,
    /// Mean loss over `eval_iters` random validation batches.
    pub val_loss: f64,
}

/// What a language-model run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LmSummary {
    /// Steps taken.
    pub steps: usize,
    /// The training loop's seconds (estimates excluded).
    pub train_seconds: f64,
    /// Every estimate, in order.
    pub evals: Vec<LmEval>,
}

/// Where a language-model run stands after some steps: with the model and
/// the optimizer's state, all it takes to continue it exactly
/// ([`train_lm_from`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmRunState {
    /// Optimizer steps done.
    pub steps: usize,
    /// The windows' generator position (its ChaCha8 word position, as text).
    pub batch_position: String,
    /// The estimates' generator position.
    pub eval_position: String,
    /// Every estimate so far.
    pub evals: Vec<LmEval>,
    /// The training loop's seconds so far.
    pub train_seconds: f64,
}

/// Told about a language-model run as it goes.
pub trait LmObserver {
    /// After each optimizer step.
    fn step(&mut self, _s: &LmStep) {}
    /// After each estimate of the losses.
    fn eval(&mut self, _e: &LmEval) {}
    /// After each optimizer step, the model as it now is.
    fn model(&mut self, _model: &dyn Module) {}
    /// Every `save_every` steps and after the last: the run so far, to be
    /// saved (`run::lm::LmRunFiles::save` writes it so that it can be
    /// resumed). An error ends the run.
    fn save(&mut self, _model: &dyn Module, _opt: &Optimizer, _state: &LmRunState) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing.
impl LmObserver for () {}

/// The mean cross-entropy of the model's next-character predictions on a
/// batch (logits `[B, T, V]` against `B·T` targets).
pub fn lm_loss(p: &mut Pass, model: &dyn Module, batch: &TextBatch) -> Var {
    let x = p.input(batch.x.clone());
    let logits = model.forward(p, x);
    p.cross_entropy_with(logits, &batch.y, &CrossEntropyOptions::default())
}

/// Train `model` on `text` for `cfg.steps` optimizer steps. The learning
/// rate follows `opt`'s schedule, moved to each step.
pub fn train_lm(
    model: &mut dyn Module,
    text: &CharText,
    opt: &mut Optimizer,
    cfg: &LmConfig,
    obs: &mut dyn LmObserver,
) -> Result<LmSummary> {
    train_lm_from(model, text, opt, cfg, obs, None)
}

/// [`train_lm`], continuing from `start` (a saved run's state, with the
/// model and optimizer as they were saved with it): the same steps, the
/// same windows, the same estimates as the run that was not stopped.
pub fn train_lm_from(
    model: &mut dyn Module,
    text: &CharText,
    opt: &mut Optimizer,
    cfg: &LmConfig,
    obs: &mut dyn LmObserver,
    start: Option<&LmRunState>,
) -> Result<LmSummary> {
    cfg.check(text)?;
    model.output_shape(&[cfg.block_size])?;
    let mut rng = crate::rand::seeded(cfg.seed);
    let mut eval_rng = crate::rand::seeded(cfg.seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut summary = LmSummary {
        steps: 0,
        train_seconds: 0.0,
        evals: Vec::new(),
    };
    if let Some(st) = start {
        let pos = |p: &str| {
            p.parse::<u128>().map_err(|_| {
                Error::Config(format!("a saved generator position `{p}` is not a number"))
            })
        };
        rng.set_word_pos(pos(&st.batch_position)?);
        eval_rng.set_word_pos(pos(&st.eval_position)?);
        summary.steps = st.steps;
        summary.train_seconds = st.train_seconds;
        summary.evals = st.evals.clone();
    }
    let blocks = Blocks::of(model);
    for step in summary.steps..cfg.steps {
        let t0 = Instant::now();
        opt.set_step(step);
        let (loss, mut grads) = lm_step(model, text, cfg, step, &mut rng);
        let measured =
            cfg.norms_every > 0 && (step == 0 || (step + 1).is_multiple_of(cfg.norms_every));
        let block_grad_norms = measured.then(|| blocks.grad_norms(&grads));
        let grad_norm = grads.clip_norm(cfg.clip_grad_norm.unwrap_or(f32::INFINITY));
        let lr = opt.lr();
        opt.step(model, grads);
        summary.train_seconds += t0.elapsed().as_secs_f64();
        summary.steps = step + 1;
        obs.model(model);
        obs.step(&LmStep {
            step: step + 1,
            loss,
            lr,
            grad_norm,
            block_grad_norms,
        });
        let last = step + 1 == cfg.steps;
        if cfg.eval_every > 0 && ((step + 1).is_multiple_of(cfg.eval_every) || last) {
            let e = LmEval {
                step: step + 1,
                train_loss: estimate_loss(model, text, Split::Train, cfg, &mut eval_rng),
                val_loss: estimate_loss(model, text, Split::Val, cfg, &mut eval_rng),
            };
            obs.eval(&e);
            summary.evals.push(e);
        }
        if last || (cfg.save_every > 0 && (step + 1).is_multiple_of(cfg.save_every)) {
            let st = LmRunState {
                steps: step + 1,
                batch_position: rng.get_word_pos().to_string(),
                eval_position: eval_rng.get_word_pos().to_string(),
                evals: summary.evals.clone(),
                train_seconds: summary.train_seconds,
            };
            obs.save(model, opt, &st)?;
        }
    }
    Ok(summary)
}

/// One optimizer step's loss and gradients: `cfg.grad_accum` micro-batches
/// of random windows, their gradients averaged (the step of one batch that
/// many times larger).
fn lm_step(
    model: &dyn Module,
    text: &CharText,
    cfg: &LmConfig,
    step: usize,
    rng: &mut ChaCha8Rng,
) -> (f32, crate::ParamGrads) {
    let mut total: Option<crate::ParamGrads> = None;
    let mut loss = 0.0;
    for micro in 0..cfg.grad_accum {
        let batch = text.batch(Split::Train, cfg.batch_size, cfg.block_size, rng);
        let seed =
            cfg.seed ^ ((step * cfg.grad_accum + micro) as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut p = Pass::train(model, seed);
        let l = lm_loss(&mut p, model, &batch);
        loss += p.value(l).item() / cfg.grad_accum as f32;
        let g = p.backward(l);
        total = Some(match total {
            None => g,
            Some(mut acc) => {
                for (a, b) in acc.tensors_mut().iter_mut().zip(g.tensors()) {
                    if let (Some(a), Some(b)) = (a, b) {
                        a.add_assign(b);
                    }
                }
                acc
            }
        });
    }
    let mut grads = total.expect("grad_accum ≥ 1");
    if cfg.grad_accum > 1 {
        let s = 1.0 / cfg.grad_accum as f32;
        grads
            .tensors_mut()
            .iter_mut()
            .flatten()
            .for_each(|g| g.scale(s));
    }
    (loss, grads)
}

/// The mean loss over `cfg.eval_iters` random batches of a split, in
/// evaluation mode (nanoGPT's `estimate_loss`).
pub fn estimate_loss(
    model: &dyn Module,
    text: &CharText,
    split: Split,
    cfg: &LmConfig,
    rng: &mut ChaCha8Rng,
) -> f64 {
    let mut sum = 0.0;
    for _ in 0..cfg.eval_iters.max(1) {
        let batch = text.batch(split, cfg.batch_size, cfg.block_size, rng);
        let (total, count) = summed_loss(model, &batch);
        sum += total / count as f64;
    }
    sum / cfg.eval_iters.max(1) as f64
}

/// Positions an evaluation pass reads at most: such a pass keeps every
/// value until it ends (attention's grow with the window squared), so a
/// batch is evaluated in slices of whole windows (at least one).
const EVAL_POSITIONS: usize = 1024;

/// The summed loss of every position of `batch` and the number of positions,
/// evaluated a slice of windows at a time.
fn summed_loss(model: &dyn Module, batch: &TextBatch) -> (f64, usize) {
    let (n, t) = (batch.x.shape()[0], batch.x.shape()[1]);
    let per = (EVAL_POSITIONS / t).max(1);
    if n <= per {
        return pass_loss(model, batch);
    }
    let (mut sum, mut count) = (0.0f64, 0usize);
    for first in (0..n).step_by(per) {
        let rows = per.min(n - first);
        let slice = TextBatch {
            x: Tensor::from_vec(
                vec![rows, t],
                batch.x.data()[first * t..(first + rows) * t].to_vec(),
            ),
            y: batch.y[first * t..(first + rows) * t].to_vec(),
        };
        let (s, c) = pass_loss(model, &slice);
        sum += s;
        count += c;
    }
    (sum, count)
}

/// The summed loss of every position of `batch`, in one evaluation pass,
/// and the number of positions.
fn pass_loss(model: &dyn Module, batch: &TextBatch) -> (f64, usize) {
    let mut p = Pass::eval(model);
    let l = lm_loss(&mut p, model, batch);
    (
        p.value(l).item() as f64 * batch.y.len() as f64,
        batch.y.len(),
    )
}

/// The loss over the whole of a split, deterministically: window i reads
/// `ids[iT .. (i+1)T)` and predicts `ids[iT+1 .. (i+1)T+1)`, for every whole
/// window that fits, every position's loss averaged (what `backprop eval`
/// prints for a language model).
pub fn split_loss(model: &dyn Module, text: &CharText, split: Split, block: usize) -> Result<f64> {
    text.check_block(block)?;
    model.output_shape(&[block])?;
    let offsets = text.eval_offsets(split, block);
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in offsets.chunks((EVAL_POSITIONS / block).max(1)) {
        let (s, c) = pass_loss(model, &text.windows(split, chunk, block));
        sum += s;
        count += c;
    }
    Ok(sum / count as f64)
}

/// How [`generate`] picks each next token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleConfig {
    /// Tokens to add.
    pub tokens: usize,
    /// Divides the logits: below 1 sharper, above 1 flatter; 0 picks the
    /// most likely token.
    pub temperature: f32,
    /// Sample among the `k` most likely tokens only (`None`: all).
    pub top_k: Option<usize>,
    /// Seeds the draws.
    pub seed: u64,
}

/// Continue `prompt` (ids, at least one) by `cfg.tokens` tokens, each drawn
/// from the model's distribution for the next position given the last
/// `context` tokens.
pub fn generate(
    model: &dyn Module,
    prompt: &[usize],
    context: usize,
    cfg: &SampleConfig,
) -> Result<Vec<usize>> {
    if prompt.is_empty() {
        return Err(Error::Config(
            "the prompt must hold at least one character".into(),
        ));
    }
    if !(cfg.temperature >= 0.0 && cfg.temperature.is_finite()) {
        return Err(Error::Config(format!(
            "temperature {}: it must be a number ≥ 0",
            cfg.temperature
        )));
    }
    let mut rng = crate::rand::seeded(cfg.seed);
    let mut ids = prompt.to_vec();
    for _ in 0..cfg.tokens {
        let window = &ids[ids.len().saturating_sub(context)..];
        let x = Tensor::from_vec(
            vec![1, window.len()],
            window.iter().map(|&i| i as f32).collect(),
        );
        let logits = model.predict(&x);
        let v = *logits.shape().last().expect("logits [1, T, V]");
        let last = &logits.data()[logits.numel() - v..];
        ids.push(pick(last, cfg, &mut rng));
    }
    Ok(ids)
}

/// One draw from softmax(logits / temperature) over the top k.
fn pick(logits: &[f32], cfg: &SampleConfig, rng: &mut ChaCha8Rng) -> usize {
    let best = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut order: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    order.sort_by(best);
    if cfg.temperature == 0.0 {
        return order[0].0;
    }
    order.truncate(cfg.top_k.unwrap_or(order.len()).clamp(1, order.len()));
    let top = order[0].1 as f64;
    let w: Vec<f64> = order
        .iter()
        .map(|&(_, z)| ((z as f64 - top) / cfg.temperature as f64).exp())
        .collect();
    let mut u = rng.random::<f64>() * w.iter().sum::<f64>();
    for (&(i, _), &wi) in order.iter().zip(&w) {
        if u < wi {
            return i;
        }
        u -= wi;
    }
    order.last().expect("at least one").0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::GptConfig;
    use crate::optim::{OptimizerConfig, OptimizerKind};

    fn text() -> CharText {
        let s = "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(4);
        CharText::from_bytes(s.as_bytes(), std::path::Path::new("abc.txt")).unwrap()
    }

    fn tiny() -> crate::nn::Gpt {
        let cfg = GptConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            ..GptConfig::baby(3, 8)
        };
        cfg.init(&mut crate::rand::seeded(0)).unwrap()
    }

    fn cfg(steps: usize, batch: usize, accum: usize) -> LmConfig {
        LmConfig {
            steps,
            batch_size: batch,
            block_size: 8,
            grad_accum: accum,
            eval_every: 0,
            ..LmConfig::baby()
        }
    }

    #[test]
    fn a_tiny_gpt_learns_a_repeating_text_and_continues_it() {
        let (t, mut m) = (text(), tiny());
        let before = split_loss(&m, &t, Split::Val, 8).unwrap();
        let mut opt = Optimizer::new(OptimizerConfig {
            lr: 1e-2,
            ..OptimizerConfig::new(OptimizerKind::AdamW)
        });
        let c = LmConfig {
            eval_every: 20,
            ..cfg(60, 8, 1)
        };
        let s = train_lm(&mut m, &t, &mut opt, &c, &mut ()).unwrap();
        assert_eq!(s.evals.len(), 3);
        let after = split_loss(&m, &t, Split::Val, 8).unwrap();
        assert!(before > 1.0 && after < 0.1, "{before} → {after}");
        let out = generate(
            &m,
            &t.encode("ab").unwrap(),
            8,
            &SampleConfig {
                tokens: 10,
                temperature: 0.0,
                top_k: None,
                seed: 0,
            },
        )
        .unwrap();
        assert_eq!(t.decode(&out), "abcabcabcabc");
    }

    #[test]
    fn accumulated_micro_batches_make_the_step_of_one_large_batch() {
        // 4 micro-batches of 2 windows draw the same 8 offsets as one batch of 8
        let t = text();
        let step = |batch, accum| {
            let mut m = tiny();
            let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd));
            opt.config.lr = 0.1;
            train_lm(&mut m, &t, &mut opt, &cfg(1, batch, accum), &mut ()).unwrap();
            crate::nn::ModuleExt::state_dict(&m)
        };
        let (a, b) = (step(8, 1), step(2, 4));
        for ((n, x), (_, y)) in a.iter().zip(&b) {
            let d = x
                .data()
                .iter()
                .zip(y.data())
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-6, "{n}: {d}");
        }
    }

    #[test]
    fn top_k_and_temperature() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut rng = crate::rand::seeded(0);
        let c = |temperature, top_k| SampleConfig {
            tokens: 1,
            temperature,
            top_k,
            seed: 0,
        };
        assert_eq!(pick(&logits, &c(0.0, None), &mut rng), 1);
        for _ in 0..50 {
            let i = pick(&logits, &c(1.0, Some(2)), &mut rng);
            assert!(i == 1 || i == 3);
        }
        assert_eq!(pick(&logits, &c(1.0, Some(1)), &mut rng), 1);
    }
}
