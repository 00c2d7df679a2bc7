//! Language models on the command line: `train --data FILE.txt`, `eval
//! MODEL --data FILE.txt`, `sample MODEL`. Flags in, `backprop::train::lm`
//! out.

use crate::args::{SampleArgs, TrainArgs};
use crate::set_threads;
use anyhow::{bail, Context};
use backprop::data::text::{CharText, Split};
use backprop::nn::Sequential;
use backprop::nn::{Module, ModuleExt};
use backprop::optim::Optimizer;
use backprop::optim::{DecayOn, OptimizerConfig, OptimizerKind};
use backprop::run::lm::{load_lm_run, LmRunFiles};
use backprop::train::lm::metrics::LmRecorder;
use backprop::train::lm::{self, LmEval, LmObserver, LmRunState, LmSettings, LmStep, SampleConfig};
use backprop::Error;
use clap::parser::ValueSource;
use clap::ArgMatches;
use indicatif::{ProgressBar, ProgressStyle};
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
    ("normalize", "--normalize"),
    ("augment", "--augment"),
    ("test_data", "--test-data"),
    ("csv_scale", "--csv-scale"),
    ("target", "--target"),
    ("task", "--task"),
    ("test_split", "--test-split"),
    ("image_size", "--image-size"),
    ("epochs", "--epochs"),
    ("lr_schedule", "--lr-schedule"),
    ("lr_step_size", "--lr-step-size"),
    ("lr_gamma", "--lr-gamma"),
    ("loss", "--loss"),
    ("no_shuffle", "--no-shuffle"),
    ("weight_init", "--weight-init"),
    ("init", "--init"),
    ("clip_grad_value", "--clip-grad-value"),
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
    if a.grad_accum == 0 {
        bail!(Error::Config(
            "--grad-accum 0: a step needs at least one micro-batch".into()
        ));
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
    s.lm.save_every = a.save_every;
    // the classifiers' default (50) is too sparse for 2 000 short steps
    s.lm.norms_every = if set("diagnostics_every") {
        a.diagnostics_every
    } else {
        10
    };
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

/// What the terminal and the page show of a language-model run: a bar over
/// the steps, a line per estimate, the rows of `metrics.csv` (written at
/// each estimate, so a stopped run keeps them) and the live page's copy.
struct Progress<'a> {
    rec: LmRecorder,
    /// Where the run is saved (`--save`), at every save point.
    files: Option<LmRunFiles<'a>>,
    bar: Option<ProgressBar>,
    live: Option<backprop::serve::Live>,
    /// Where `metrics.csv` goes (`runs/x.` or `DIR/`).
    prefix: Option<PathBuf>,
    /// Rows already given to the page.
    sent: usize,
    start: Instant,
    steps: usize,
    last_val: Option<f64>,
}

impl Progress<'_> {
    fn send(&mut self) {
        if let Some(l) = &self.live {
            l.append_metrics(&self.rec.csv_header(), &self.rec.csv_rows(self.sent));
        }
        self.sent = self.rec.rows.len();
    }

    fn say(&self, line: String) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl LmObserver for Progress<'_> {
    fn save(
        &mut self,
        model: &dyn Module,
        opt: &Optimizer,
        st: &LmRunState,
    ) -> backprop::Result<()> {
        match &self.files {
            Some(f) => f.save(model, opt, st, Some(&self.rec)),
            None => Ok(()),
        }
    }

    fn model(&mut self, model: &dyn Module) {
        if let Some(l) = &self.live {
            l.offer_model(model);
        }
    }

    fn step(&mut self, s: &LmStep) {
        self.rec.step(s);
        self.steps = s.step;
        if self.rec.rows.len() > self.sent {
            self.send();
        }
        if let Some(b) = &self.bar {
            b.set_position(s.step as u64);
            let ms = 1e3 * self.start.elapsed().as_secs_f64() / s.step as f64;
            let val = self
                .last_val
                .map(|v| format!(", val {v:.4}"))
                .unwrap_or_default();
            b.set_message(format!("loss {:.4}{val}, {ms:.1} ms a step", s.loss));
        }
    }

    fn eval(&mut self, e: &LmEval) {
        self.rec.eval(e);
        self.last_val = Some(e.val_loss);
        self.send();
        if let Some(p) = &self.prefix {
            // the CSV alone here; the figures once, at the end
            if let Err(err) = lm::metrics::write_lm_files(&self.rec, "", p, false) {
                self.say(format!("warning: {err}"));
            }
        }
        if self.bar.is_some() {
            let ms = 1e3 * self.start.elapsed().as_secs_f64() / self.steps.max(1) as f64;
            self.say(format!(
                "step {}: train loss {:.4}, val loss {:.4} ({ms:.1} ms a step, estimates included)",
                e.step, e.train_loss, e.val_loss
            ));
        }
    }
}

/// One language-model run to train, new or resumed.
struct Job {
    settings: LmSettings,
    /// The text file.
    data: PathBuf,
    text: CharText,
    model: Sequential,
    opt: Optimizer,
    /// Where a resumed run stands.
    start: Option<LmRunState>,
    /// A resumed run's metrics so far.
    metrics: Option<LmRecorder>,
    /// Where the run is saved.
    save: Option<PathBuf>,
    /// Where its metrics and figures go (`runs/x.` or `DIR/`).
    prefix: Option<PathBuf>,
}

/// `backprop train --data FILE.txt`.
pub fn train(a: &TrainArgs, given: &ArgMatches) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let s = settings(a, given)?;
    if let Some(p) = &a.save {
        backprop::run::prepare_save(p, a.force, None).context("--save")?;
    }
    let data = a.data.clone().expect("a text file");
    let text = CharText::load(&data)?;
    // the windows are --block-size long: say so where they do not fit
    text.check_block(s.lm.block_size)
        .with_context(|| format!("--block-size {}", s.lm.block_size))?;
    let (model, opt) = s.build(&text)?;
    go(
        a,
        Job {
            settings: s,
            data,
            text,
            model,
            opt,
            start: None,
            metrics: None,
            save: a.save.clone(),
            prefix: a.outputs(given, None, 0)?.metrics_prefix(),
        },
    )
}

/// The flags a resumed language-model run takes; every other part of it
/// is as it was saved.
const RESUME_TAKES: [&str; 13] = [
    "resume",
    "save",
    "save_every",
    "data",
    "force",
    "quiet",
    "json",
    "threads",
    "serve",
    "port",
    "bind",
    "out",
    "no_plots",
];

/// `backprop train --resume RUN.safetensors` for a language model saved with
/// `--save`: it goes on from its last save, with the same windows and
/// estimates as if it had not stopped.
pub fn resume(a: &TrainArgs, given: &ArgMatches, path: &Path) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    if let Some(id) = given.ids().map(|i| i.as_str()).find(|id| {
        !RESUME_TAKES.contains(id) && given.value_source(id) == Some(ValueSource::CommandLine)
    }) {
        bail!(Error::Config(format!(
            "--{}: a resumed language-model run keeps the settings it was saved with; \
             give only --save, --save-every, --data (the same text, moved), --out and the display flags",
            id.replace('_', "-")
        )));
    }
    let r = load_lm_run(path).with_context(|| format!("--resume {}", path.display()))?;
    let data = a.data.clone().unwrap_or_else(|| r.data.clone());
    let text = CharText::load(&data)?;
    r.check_text(&text)?;
    let save = a.save.clone().unwrap_or_else(|| path.to_path_buf());
    backprop::run::prepare_save(&save, a.force, Some(path)).context("--save")?;
    let mut settings = r.settings;
    if given.value_source("save_every") == Some(ValueSource::CommandLine) {
        settings.lm.save_every = a.save_every;
    }
    go(
        a,
        Job {
            settings,
            data,
            text,
            model: r.model,
            opt: r.opt,
            start: Some(r.state),
            metrics: r.metrics,
            save: Some(save),
            prefix: a.outputs(given, Some(path), 0)?.metrics_prefix(),
        },
    )
}

/// Train a job: the start line, the bar, the page, the saves, the metrics
/// files, the validation loss.
fn go(a: &TrainArgs, mut job: Job) -> anyhow::Result<()> {
    let (s, text) = (&job.settings, &job.text);
    let quiet = a.quiet || a.json;
    let done = job.start.as_ref().map_or(0, |st| st.steps);
    if !quiet {
        let what = match done {
            0 => "training".to_string(),
            n => format!("resuming at step {n}:"),
        };
        eprintln!(
            "{what} `{}` ({} parameters) on {} characters of {} (vocabulary {}; the last {} validate), \
             {} steps of {}×{} characters",
            job.model.describe(),
            job.model.num_parameters(),
            text.train.len(),
            job.data.display(),
            text.vocab.len(),
            text.val.len(),
            s.lm.steps,
            s.lm.batch_size * s.lm.grad_accum,
            s.lm.block_size
        );
    }
    let bar = (!quiet).then(|| {
        let b = ProgressBar::new(s.lm.steps as u64);
        b.set_style(
            ProgressStyle::with_template("step {pos}/{len} {bar:30} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_position(done as u64);
        b
    });
    let prefix = job.prefix.clone();
    let rec = job
        .metrics
        .take()
        .unwrap_or_else(|| LmRecorder::new(&job.model, s.lm.norms_every.max(1)));
    let mut obs = Progress {
        sent: 0,
        rec,
        files: job
            .save
            .as_deref()
            .map(|path| LmRunFiles::new(path, s, &job.data, text)),
        bar,
        live: None,
        prefix: prefix.clone(),
        start: Instant::now(),
        steps: done,
        last_val: None,
    };
    let mut page = None;
    if a.serve {
        let live = backprop::serve::Live::new();
        live.set_model_metadata(lm::lm_metadata(&text.vocab, s.lm.block_size));
        live.set_metrics(obs.rec.to_csv());
        obs.sent = obs.rec.rows.len();
        let folder = prefix.as_ref().and_then(|p| p.parent().map(Into::into));
        page = Some(crate::serve::start_page(
            a.serve_at,
            folder,
            Some(live.clone()),
        )?);
        obs.live = Some(live);
    }
    let summary = lm::train_lm_from(
        &mut job.model,
        text,
        &mut job.opt,
        &s.lm,
        &mut obs,
        job.start.as_ref(),
    )?;
    if let Some(b) = &obs.bar {
        b.finish_and_clear();
    }
    if let (Some(p), false) = (&job.save, quiet) {
        eprintln!("saved {}", p.display());
    }
    if let Some(p) = &prefix {
        let files = lm::metrics::write_lm_files(&obs.rec, &job.model.describe(), p, !a.no_plots)?;
        if !quiet {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("wrote {}", names.join(", "));
        }
    }
    if let Some(l) = &obs.live {
        l.finish();
        std::thread::sleep(std::time::Duration::from_millis(600));
    }
    let val = lm::split_loss(&job.model, text, Split::Val, s.lm.block_size)?;
    let ms = 1e3 * summary.train_seconds / summary.steps.max(1) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": job.model.describe(), "steps": summary.steps,
                "train_seconds": summary.train_seconds, "ms_per_step": ms,
                "val_loss": val, "evals": summary.evals})
        );
    } else {
        println!(
            "val loss {val:.4} after {} steps ({ms:.1} ms a step)",
            summary.steps
        );
    }
    crate::serve::after_run(page, a.serve_exit);
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
