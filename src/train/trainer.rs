//! The training loop of [`Trainer::run`](super::Trainer::run), in the
//! pieces it is made of: starting (or resuming) a run, one epoch, one
//! step, the diagnostics of a sampled step, and the end.

use super::{
    chance_level_warning, check_finite, check_processes, check_run_dyn, diverged,
    eval_batch_that_fits, finish_epoch, shard_gradients, step_seed, sum_over_processes,
    weights_digest, Checkpoints, EpochTally, Observer, RunState, ShardOf, StepInfo, StepResult,
    Summary, Task, TrainConfig, Trainer,
};
use crate::data::{Dataset, Loader, Targets};
use crate::dist::{shard, Collective};
use crate::inspect::diagnostics::{
    is_sampled, overfitting, LayerStats, Probe, Sample, WarningKind, Watch, OVERFITTING,
};
use crate::nn::{Module, ModuleExt};
use crate::optim::Optimizer;
use crate::Tensor;
use crate::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::rc::Rc;
use std::time::Instant;

/// A run in progress: its settings, model, data and observer, and where it
/// stands.
pub(super) struct Loop<'r, 'a> {
    cfg: &'a TrainConfig,
    model: &'r mut dyn Module,
    train: &'r dyn Dataset,
    test: Option<&'r dyn Dataset>,
    obs: &'r mut dyn Observer,
    /// The processes of a data-parallel run (more than one).
    comm: Option<Rc<dyn Collective>>,
    checkpoints: Option<Checkpoints<'a>>,
    opt: Optimizer,
    /// The shuffling generator.
    rng: ChaCha8Rng,
    st: RunState,
    /// What the diagnostics measure (made at the first sampled step).
    probe: Option<Probe>,
    /// The warnings' memory of earlier samples.
    watch: Option<Watch>,
    /// Whether the chance-level warning was given.
    warned_chance: bool,
    /// The model's outputs per sample (classes).
    classes: usize,
    /// The evaluation's batch size.
    eval_batch: usize,
    /// Batches prepared ahead on a background thread.
    ahead: usize,
    /// The last evaluation's confusion matrix (classification).
    confusion: Option<Vec<Vec<usize>>>,
}

impl<'r, 'a> Loop<'r, 'a> {
    /// Check everything, then set up a new run or restore a saved one.
    pub(super) fn start(
        t: Trainer<'a>,
        model: &'r mut dyn Module,
        train: &'r dyn Dataset,
        test: Option<&'r dyn Dataset>,
        obs: &'r mut dyn Observer,
    ) -> Result<Self> {
        let Trainer {
            cfg,
            resume,
            checkpoints,
            collective,
            ahead,
        } = t;
        let comm = collective.filter(|c| c.size() > 1);
        check_run_dyn(model, train, test, cfg)?;
        if let Some(c) = &comm {
            check_processes(c.as_ref(), model, train, test, cfg)?;
        }
        // The data's fingerprints go into the saved state and are checked
        // on resume: only computed for a run that saves or resumes (they
        // read every feature: about 0.1 s for MNIST, 3 % of a speedrun).
        let data = if resume.is_some() || checkpoints.is_some() {
            (train.fingerprint(), test.map(|t| t.fingerprint()))
        } else {
            (0, None)
        };
        let mut opt = Optimizer::new(cfg.optimizer.clone()).with_schedule(cfg.schedule);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut st = RunState::new(cfg.clone(), data);
        if let Some(r) = resume {
            let mut saved = r.state.config.clone();
            (saved.epochs, saved.max_steps) = (cfg.epochs, cfg.max_steps);
            if let Some((name, was, now)) = super::first_difference(&saved, cfg) {
                return Err(Error::Config(format!(
                    "the run was saved with other settings: its `{name}` was {was}, now {now}"
                )));
            }
            if r.state.data != data {
                return Err(Error::Config(
                    "the data differ from the data the run was saved with (their fingerprints differ)"
                        .into(),
                ));
            }
            opt.load_state_dict(&r.optimizer, model, std::path::Path::new("the saved run"))?;
            st = RunState {
                config: cfg.clone(),
                finished: false,
                ..r.state
            };
            let pos: u128 = st.order_position.parse().map_err(|_| {
                Error::Config("the saved generator position is not a number".into())
            })?;
            rng.set_word_pos(pos);
        }
        let classes = model
            .output_shape(train.sample_shape())?
            .first()
            .copied()
            .unwrap_or(1);
        let eval_batch = test.map_or(cfg.eval_batch_size, |t| eval_batch_that_fits(model, t, cfg));
        Ok(Loop {
            cfg,
            model,
            train,
            test,
            obs,
            comm,
            checkpoints,
            opt,
            rng,
            st,
            probe: None,
            watch: None,
            warned_chance: false,
            classes,
            eval_batch,
            ahead,
            confusion: None,
        })
    }

    /// The epoch the loop starts in (0-based).
    pub(super) fn first_epoch(&self) -> usize {
        self.st.epoch
    }

    /// The epochs of the run.
    pub(super) fn epochs(&self) -> usize {
        self.cfg.epochs
    }

    /// Whether the step limit is reached.
    fn at_limit(&self) -> bool {
        self.cfg.max_steps.is_some_and(|m| self.st.steps >= m)
    }

    /// Epoch `epoch` (0-based), or what is left of it; then its record, the
    /// checkpoint. Returns whether the run stops (the step limit).
    pub(super) fn epoch(&mut self, epoch: usize) -> Result<bool> {
        if self.at_limit() {
            return Ok(true);
        }
        let cfg = self.cfg;
        self.opt.set_epoch(epoch);
        self.opt.set_step(self.st.steps);
        // The epoch's rate in its record: its first step's.
        let lr = self.opt.lr();
        self.st.epoch = epoch;
        self.st.order_position = self.rng.get_word_pos().to_string();
        let loader = Loader::new(self.train, cfg.batch_size)
            .shuffle(cfg.shuffle)
            .drop_last(cfg.drop_last)
            .augment(cfg.augment.clone(), cfg.seed)
            .ahead(self.ahead);
        let batches = loader.order(&mut self.rng);
        if self.st.batch > 0 {
            // A run stopped by its step limit recorded the epoch so far;
            // continued, the epoch's record is the whole epoch's.
            if self.st.records.last().is_some_and(|r| r.epoch == epoch + 1) {
                self.st.records.pop();
            }
            let (done, seen) = (self.st.batch, self.st.seen);
            self.obs.epoch_resume(epoch + 1, batches.len(), done, seen);
        } else {
            self.obs.epoch_start(epoch + 1, batches.len());
            (self.st.loss_sum, self.st.right, self.st.seen) = (0.0, 0, 0);
        }
        let t0 = Instant::now();
        let save_every = self.checkpoints.as_ref().map_or(0, |c| c.every);
        let todo = &batches[self.st.batch..];
        // Each process reads its shard of each batch (one process: the batches).
        let parts: std::borrow::Cow<[Vec<usize>]> = match self.comm {
            None => todo.into(),
            Some(_) => todo
                .iter()
                .map(|idx| match self.shard_of(idx.len()) {
                    Some((range, _)) => idx[range].to_vec(),
                    None => idx.clone(),
                })
                .collect::<Vec<_>>()
                .into(),
        };
        let waited = loader.prepare(&parts, epoch, |prepared| -> Result<f64> {
            for (idx, batch) in todo.iter().zip(prepared.by_ref()) {
                let (x, y) = batch?;
                let lr = self.step(epoch, idx, x, y)?;
                if self.at_limit() {
                    break;
                }
                if save_every > 0 && self.st.steps.is_multiple_of(save_every) {
                    check_finite(self.model, None, self.st.steps, lr)?;
                    self.save()?;
                }
            }
            Ok(prepared.waited().as_secs_f64())
        })?;
        self.end_epoch(epoch, lr, (t0, waited), batches.len())
    }

    /// This process's part of a batch of `n` samples, when several
    /// processes train: the range of its samples and where they sit.
    fn shard_of(&self, n: usize) -> Option<(std::ops::Range<usize>, ShardOf)> {
        self.comm.as_ref().map(|c| {
            let (lo, hi) = shard(n, c.rank(), c.size());
            let of = ShardOf {
                first: lo,
                global: n,
                comm: c.clone(),
            };
            (lo..hi, of)
        })
    }

    /// The epoch's record (after its evaluation), then the checkpoint.
    fn end_epoch(
        &mut self,
        epoch: usize,
        lr: f32,
        (t0, waited): (Instant, f64),
        batches: usize,
    ) -> Result<bool> {
        let tally = EpochTally {
            waited,
            task: Task::of(self.train.targets(), self.cfg.loss),
            eval_batch: self.eval_batch,
            epoch,
            steps: self.st.batch,
            lr,
            loss_sum: self.st.loss_sum,
            right: self.st.right,
            seen: self.st.seen,
            t0,
        };
        let (rec, confusion) =
            finish_epoch(self.model, self.test, self.cfg, self.comm.as_deref(), tally)?;
        if let Some(m) = &confusion {
            self.obs.confusion(m);
        }
        self.confusion = confusion;
        self.obs.epoch_end(&rec);
        self.obs.model(self.model, self.st.steps);
        self.st.records.push(rec);
        let losses: Vec<(f64, f64)> = self
            .st
            .records
            .iter()
            .filter_map(|r| Some((r.train_loss, r.test_loss?)))
            .collect();
        let told = self.st.warnings.iter().any(|w| w.starts_with(OVERFITTING));
        if losses.len() == self.st.records.len() && !told {
            if let Some(msg) = overfitting(&losses) {
                self.obs.warning(WarningKind::Overfitting, &msg);
                self.st.warnings.push(msg);
            }
        }
        let stopped = self.at_limit();
        let complete = self.st.batch == batches;
        if complete {
            self.st.epoch = epoch + 1;
            self.st.batch = 0;
            self.st.order_position = self.rng.get_word_pos().to_string();
        } // else stopped by the step limit: the state stays inside the epoch
        self.st.finished = stopped || (complete && epoch + 1 == self.cfg.epochs);
        check_finite(self.model, self.st.records.last(), self.st.steps, lr)?;
        if self.checkpoints.is_some() {
            self.save()?;
        }
        Ok(stopped)
    }

    /// Write a checkpoint (the model, the optimizer, where the run stands,
    /// the observer's state).
    fn save(&mut self) -> Result<()> {
        if let Some(c) = self.checkpoints.as_mut() {
            (c.save)(self.model, &self.opt, &self.st, self.obs.save_state())?;
        }
        Ok(())
    }

    /// One optimizer step on the batch `idx` of epoch `epoch`, whose
    /// features and targets (this process's shard) are `x` and `y`; returns
    /// its learning rate.
    fn step(&mut self, epoch: usize, idx: &[usize], x: Tensor, y: Targets) -> Result<f32> {
        let cfg = self.cfg;
        self.opt.set_step(self.st.steps);
        let lr = self.opt.lr();
        let seed = step_seed(cfg.seed, self.st.steps + 1);
        let sampled = is_sampled(self.st.steps + 1, cfg.diagnostics_every);
        // One process takes the batch; several take a contiguous shard each.
        let part = self.shard_of(idx.len());
        let probe = sampled.then_some(&mut self.probe);
        let shard_of = part.as_ref().map(|(_, s)| s);
        let (res, stats) = shard_gradients(self.model, x, &y, cfg.loss, seed, probe, shard_of);
        let StepResult {
            mut grads,
            correct: mut right,
        } = res;
        if let Some(c) = &self.comm {
            right = sum_over_processes(c.as_ref(), &mut grads, right);
        }
        let l = grads.loss;
        if !l.is_finite() {
            let what = format!("the loss became {l}");
            return Err(diverged(&what, self.st.steps + 1, epoch + 1, lr));
        }
        if let Some(c) = cfg.clip_grad_norm {
            grads.clip_norm(c);
        }
        if let Some(c) = cfg.clip_grad_value {
            grads.clip_value(c);
        }
        let before = stats
            .as_ref()
            .and(self.probe.as_ref())
            .map(|pr| pr.snapshot(self.model));
        self.opt.step(self.model, grads);
        self.st.steps += 1;
        self.st.batch += 1;
        if let (Some(layers), Some(before)) = (stats, before) {
            self.diagnose(epoch, lr, layers, &before, (l, right, idx.len()));
        }
        let st = &mut self.st;
        st.loss_sum += l as f64 * idx.len() as f64;
        st.right += right;
        st.seen += idx.len();
        self.obs.step(&StepInfo {
            step: st.steps,
            loss: l,
            running_loss: st.loss_sum / st.seen as f64,
            running_accuracy: st.right as f64 / st.seen as f64,
            samples: st.seen,
            lr,
        });
        self.obs.model(self.model, self.st.steps);
        Ok(lr)
    }

    /// A sampled step's statistics after its update, the warnings they
    /// raise, and the observer's sample. `batch`: the step's loss, correct
    /// predictions and samples (not yet in the epoch's sums).
    fn diagnose(
        &mut self,
        epoch: usize,
        lr: f32,
        mut layers: Vec<LayerStats>,
        before: &[crate::Tensor],
        batch: (f32, usize, usize),
    ) {
        let Some(pr) = &self.probe else { return };
        pr.after_step(&mut layers, before, self.model);
        let sample = Sample {
            step: self.st.steps,
            epoch: epoch + 1,
            lr,
            layers,
        };
        let w = self.watch.get_or_insert_with(|| Watch::new(pr));
        let mut found = w.check(&sample);
        if !self.warned_chance {
            if let Some(w) = chance_level_warning(self.cfg, &self.st, self.classes, batch) {
                self.warned_chance = true;
                found.push(w);
            }
        }
        for (kind, msg) in found {
            self.obs.warning(kind, &msg);
            self.st.warnings.push(msg);
        }
        self.obs.diagnostics(&sample);
    }

    /// After the last epoch: the last checks, and what the run reports.
    pub(super) fn finish(self) -> Result<(Summary, Optimizer)> {
        let (model, st, opt) = (self.model, self.st, self.opt);
        let task = Task::of(self.train.targets(), self.cfg.loss);
        check_finite(model, st.records.last(), st.steps, opt.lr())?;
        if let Some(c) = &self.comm {
            // Every process must end with the same bits; say so if not.
            let all = c.gather_u64(weights_digest(model));
            if let Some(r) = all.iter().position(|&v| v != all[0]) {
                return Err(Error::Config(format!(
                    "process {r} ended with other weights than process 0 (a bug: please report it)"
                )));
            }
        }
        let last = st.records.last().ok_or_else(|| {
            Error::Config("the run had already ended: give more epochs to continue it".into())
        })?;
        let summary = Summary {
            model: model.describe(),
            parameters: model.num_parameters(),
            steps: st.steps,
            train_loss: last.train_loss,
            train_accuracy: last.train_accuracy,
            test_loss: last.test_loss,
            test_accuracy: last.test_accuracy,
            task,
            test_metrics: last.test_metrics.clone(),
            confusion: self.confusion,
            epochs: st.records,
            warnings: st.warnings,
        };
        Ok((summary, opt))
    }
}
