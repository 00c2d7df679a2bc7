//! `backprop train`: flags in, a [`Run`] out of the library, progress on the
//! terminal (and the page), a summary at the end.

use crate::args::TrainArgs;
use crate::procs::Procs;
use crate::progress::Progress;
use crate::{data_path, serve, set_threads};
use anyhow::Context;
use backprop::data::Dataset;
use backprop::run::{state_path, Run};
use backprop::train::{task, Summary, Task};
use clap::ArgMatches;

/// `backprop train`. Several processes: every rank trains, rank 0 alone
/// reports and writes.
pub fn run(mut a: TrainArgs, matches: &ArgMatches, procs: &Procs) -> anyhow::Result<()> {
    let given = matches
        .subcommand_matches("train")
        .expect("the train subcommand");
    let comm = procs.collective();
    let lm_resume = a
        .resume
        .as_deref()
        .filter(|p| backprop::run::lm::is_lm_run(p) || crate::lm::is_text(a.data.as_ref()));
    if crate::lm::is_text(a.data.as_ref()) || lm_resume.is_some() {
        if comm.as_ref().is_some_and(|c| c.size() > 1) {
            anyhow::bail!(backprop::Error::Config(
                "a language model (--data FILE.txt) trains in one process; run it without mpirun"
                    .into()
            ));
        }
        return match lm_resume {
            Some(p) => crate::lm::resume(&a, given, p),
            None => crate::lm::train(&a, given),
        };
    }
    for (id, flag) in crate::lm::LM_ONLY {
        if given.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
            anyhow::bail!(backprop::Error::Config(format!(
                "{flag} applies to language models only (--data FILE.txt)"
            )));
        }
    }
    let rank = comm.as_ref().map_or(0, |c| c.rank());
    if rank > 0 {
        (a.quiet, a.json, a.serve) = (true, false, false);
    }
    set_threads(a.threads)?;
    procs.set_timeout(a.collective_timeout)?;
    // Everything a user can get wrong is checked before any data is read.
    let settings = a.settings()?;
    let mut run = match &a.resume {
        Some(path) => Run::resume(path, Some((&settings, &TrainArgs::explicit(given))))
            .with_context(|| format!("--resume {}", path.display()))?,
        None => Run::new(settings)?,
    };
    run.outputs = match rank {
        0 => a.outputs(given, run.resumed_from(), run.settings.save_every)?,
        _ => Default::default(),
    };
    run.prepare_outputs().context("--save")?;
    run.prefetch = a.prefetch;
    let (train_set, test_set) = run.settings.load_data(&data_path(None)?)?;
    run.check(&train_set, test_set.as_ref())?;
    if let Some(c) = comm {
        run.collective(c);
    }
    if !a.json && !a.quiet {
        eprintln!("{}", start_line(&run, &train_set, test_set.as_deref()));
    }
    let mut progress = Progress::new(a.quiet || a.json, !a.quiet, train_set.len());
    let mut page = None;
    if a.serve {
        let live = backprop::serve::Live::new();
        if !run.recorder().rows.is_empty() {
            live.set_metrics(run.recorder().to_csv()); // a resumed run's rows so far
        }
        let folder = run
            .outputs
            .metrics_prefix()
            .and_then(|p| p.parent().map(Into::into));
        page = Some(serve::start_page(a.serve_at, folder, Some(live.clone()))?);
        show_data(&live, &run, &train_set)?;
        live.set_run_of(&run, train_set.len());
        progress.live = Some(live);
    }
    let summary = run.train(&train_set, test_set.as_ref(), &mut progress)?;
    progress.finish();
    if rank == 0 {
        report(&a, &run, &summary)?;
    }
    serve::after_run(page, a.serve_exit);
    Ok(())
}

/// What the page shows of the data: the class names, and what the
/// augmentation makes of eight training images in the first four epochs.
fn show_data(live: &backprop::serve::Live, run: &Run, train: &dyn Dataset) -> anyhow::Result<()> {
    let info = train.info();
    if info.normalize.is_some() {
        // the live model's copies carry it, so that drawings are normalized too
        let meta = [(backprop::data::DATA_KEY.to_string(), info.to_json())];
        live.set_model_metadata(meta.into_iter().collect());
    }
    if let Some(labels) = train.targets().classes() {
        let n = labels.iter().max().map_or(0, |m| m + 1);
        live.set_classes((0..n).map(|c| info.class_name(c)).collect());
    }
    let augs = &run.settings.train.augment;
    if !augs.is_empty() && train.sample_shape().len() == 3 {
        let rows = backprop::data::preview(train, augs, run.settings.train.seed, 8, 4)?;
        live.set_augmented(train.sample_shape(), rows);
    }
    Ok(())
}

/// `training `mlp` (101770 parameters) on 60000 samples from …`, or
/// `resuming at step 50 (epoch 1) …`, and where a moved run saves.
fn start_line(run: &Run, train: &dyn Dataset, test: Option<&dyn Dataset>) -> String {
    use backprop::nn::{Module, ModuleExt};
    let what = match run.resumes_at() {
        Some((step, epoch)) => format!("resuming at step {step} (epoch {epoch})"),
        None => "training".into(),
    };
    let moved = match (run.resumed_from(), &run.outputs.save) {
        (Some(from), Some(to)) if !backprop::run::same_file(from, to) => format!(
            "\nresuming {}; saving to {} (the resumed files are left as they are)",
            from.display(),
            to.display()
        ),
        _ => String::new(),
    };
    format!(
        "{what} `{}` ({} parameters) on {} samples from {}{}{moved}",
        run.model.describe(),
        run.model.num_parameters(),
        train.len(),
        train.source().display(),
        test.map(|t| format!(", testing on {}", t.len()))
            .unwrap_or_default()
    )
}

/// What was written, and the result: one JSON line with `--json`.
fn report(a: &TrainArgs, run: &Run, summary: &Summary) -> anyhow::Result<()> {
    if !a.json && !a.quiet {
        let files: Vec<String> = run
            .written()
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        if !files.is_empty() {
            eprintln!("metrics and plots: {}", files.join(", "));
        }
        if let Some(p) = &run.outputs.save {
            eprintln!(
                "saved {} (the run's state: {})",
                p.display(),
                state_path(p).display()
            );
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    let (epochs, steps) = (summary.epochs.len(), summary.steps);
    if let (Some(l), Some(m), Task::Regression) =
        (summary.test_loss, &summary.test_metrics, summary.task)
    {
        println!(
            "test {} (loss {l:.4}) after {epochs} epochs, {steps} steps",
            task::metrics_line(m)
        );
        return Ok(());
    }
    // The details on standard error; the result line alone on standard output.
    if let Some(m) = summary
        .confusion
        .as_ref()
        .filter(|m| m.len() <= 20 && !a.quiet)
    {
        let info = &run.data_info();
        eprintln!("{}", task::confusion_text(m, &|c| info.class_name(c)));
    }
    if let Some(m) = summary
        .test_metrics
        .as_ref()
        .filter(|m| !m.is_empty() && !a.quiet)
    {
        eprintln!("{}", task::metrics_line(m));
    }
    match (summary.test_loss, summary.test_accuracy) {
        (Some(l), Some(acc)) => println!(
            "test accuracy {:.2}% (loss {l:.4}) after {} epochs, {} steps",
            acc * 100.0,
            summary.epochs.len(),
            summary.steps
        ),
        _ => println!(
            "train accuracy {:.2}% (loss {:.4}) after {} epochs, {} steps (no test set)",
            summary.train_accuracy * 100.0,
            summary.train_loss,
            summary.epochs.len(),
            summary.steps
        ),
    }
    Ok(())
}
